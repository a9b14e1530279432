-- Certificate expiry: DOWN when the certificate the server presents has
-- expired or has fewer than min_days days left, WARN below 2 * min_days.
-- The chain is not verified by default, so an expired or privately signed
-- certificate is still read (verify = true checks chain and name as well).
-- details: {days_left=, not_after= (RFC 3339), subject=, issuer=}.
health.checks.tls_expiry {
  name = "cert-example", min_days = 14,
  host = os.getenv("API_HOST") or "example.com", port = tonumber(os.getenv("API_PORT")) or 443,
  interval = "1h", critical = false,   -- tell, but do not pull the pod from service
}

-- The same by hand with health.tcp, for a server reached by address with SNI:
local tcp = require "health.tcp"
local internal_port = tonumber(os.getenv("INTERNAL_TLS_PORT")) or 8443
health.check { name = "cert-internal", timeout = "5s", critical = false, run = function()
  local s <close>, err = tcp.connect("127.0.0.1", internal_port,
    { tls = true, sni = "internal.example", verify = false })
  if not s then return false, err end
  local c = assert(s:certificate())
  return c.days_left >= 14, ("%s: %d days left (until %s)"):format(c.subject, c.days_left, c.not_after)
end }
