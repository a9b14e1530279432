-- health.checks.tls_expiry{name=, host=, port=443, min_days=14, ...}: reads
-- the certificate a TLS server presents and checks how long it stays valid.
--   DOWN  expired, or fewer than min_days days left
--   WARN  fewer than 2 * min_days days left
--   UP    otherwise
-- The chain is not verified by default (verify = false) so that an expired or
-- privately signed certificate can still be inspected; verify = true (with
-- ca_file) checks the chain and the name as well. Every health.check field is
-- accepted too.
--   health.checks.tls_expiry { name = "cert", host = "api.example", min_days = 21 }
-- details: {days_left = n, not_after = "2027-01-31T12:00:00Z", subject = "CN=...", issuer = "CN=..."}.
local common = require "health.checks.common"
local health = require "health"

local own = { host = true, port = true, min_days = true, sni = true, verify = true, ca_file = true,
              connect_timeout = true }

return function(opts)
  local def, o = common.split("tls_expiry", opts, own)
  if type(o.host) ~= "string" or o.host == "" then
    error("health.checks.tls_expiry: option 'host' is required (a host name or address)", 2)
  end
  local port = o.port or 443
  if math.type(port) ~= "integer" or port < 1 or port > 65535 then
    error("health.checks.tls_expiry: option 'port' must be an integer from 1 to 65535", 2)
  end
  local min_days = o.min_days or 14
  if type(min_days) ~= "number" or min_days < 0 then
    error("health.checks.tls_expiry: option 'min_days' must be a number of days >= 0", 2)
  end
  local tcp = require "health.tcp"
  local copts = { tls = true, sni = o.sni, verify = o.verify == true, ca_file = o.ca_file,
                  timeout = common.duration("tls_expiry", "connect_timeout", o.connect_timeout, true) }
  local target = o.host .. ":" .. port
  def.run = function()
    local s, err = tcp.connect(o.host, port, copts)
    if not s then
      return false, target .. ": " .. err
    end
    local cert
    cert, err = s:certificate()
    s:close()
    if not cert then
      return false, target .. ": " .. err
    end
    local details = { days_left = cert.days_left, not_after = cert.not_after, subject = cert.subject,
                      issuer = cert.issuer }
    local left = cert.days_left
    if left < 0 then
      return false, ("certificate expired on %s (%d days ago)"):format(cert.not_after, -left), details
    elseif left < min_days then
      return false, ("certificate expires in %d days (on %s), fewer than %g"):format(left, cert.not_after, min_days),
        details
    elseif left < 2 * min_days then
      return health.warn(("certificate expires in %d days (on %s)"):format(left, cert.not_after), details)
    end
    return true, ("certificate valid for %d more days (until %s)"):format(left, cert.not_after), details
  end
  health.check(def)
end
