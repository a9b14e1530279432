-- health.checks.tcp{name=, host=, port=, ...}: UP when a TCP connection (and,
-- with tls = true, a TLS handshake) to host:port succeeds; the socket is
-- closed at once. Every health.check field is accepted too.
--   health.checks.tcp { name = "db-port", host = "10.0.0.5", port = 5432 }
--   health.checks.tcp { name = "api-tls", host = "api.example", port = 443, tls = true }
-- Options: host (name or address), port, tls (false), sni, verify (true),
-- ca_file, connect_timeout (seconds; default: the check's timeout).
-- details: {address = "ip:port", connect_ms = n}.
local common = require "health.checks.common"
local health = require "health"

local own = { host = true, port = true, tls = true, sni = true, verify = true, ca_file = true,
              connect_timeout = true }

return function(opts)
  local def, o = common.split("tcp", opts, own)
  if type(o.host) ~= "string" or o.host == "" then
    error("health.checks.tcp: option 'host' is required (a host name or address)", 2)
  end
  if math.type(o.port) ~= "integer" or o.port < 1 or o.port > 65535 then
    error("health.checks.tcp: option 'port' must be an integer from 1 to 65535", 2)
  end
  local tcp = require "health.tcp"
  local copts = { tls = o.tls, sni = o.sni, verify = o.verify, ca_file = o.ca_file,
                  timeout = common.duration("tcp", "connect_timeout", o.connect_timeout, true) }
  local target = o.host .. ":" .. o.port
  def.run = function()
    local t0 = health.now()
    local s, err = tcp.connect(o.host, o.port, copts)
    if not s then
      return false, target .. ": " .. err
    end
    local ms = math.floor((health.now() - t0) * 1000 + 0.5)
    local address = s:address()
    s:close()
    return true, "connected to " .. address, { address = address, connect_ms = ms }
  end
  health.check(def)
end
