-- smtp: UP on a 220 greeting (RFC 5321), WARN on a 4xx ("try later"); then QUIT.
local tcp = require "health.tcp"
local host, port = os.getenv("SMTP_HOST") or "127.0.0.1", tonumber(os.getenv("SMTP_PORT")) or 25

health.check { name = "smtp", timeout = "5s", run = function()
  local s <close>, err = tcp.connect(host, port, { timeout = 3 })
  if not s then return false, err end
  local banner
  repeat                                                -- "220-..." lines continue, "220 ..." ends
    local line, rerr = s:receive("*l")
    if not line then return false, "no banner: " .. rerr end
    banner = banner and banner .. " " .. line:sub(5) or line
  until line:sub(4, 4) ~= "-"
  s:send("QUIT\r\n")
  local code = banner:sub(1, 3)
  if code == "220" then return true, banner end
  if code:sub(1, 1) == "4" then return health.warn(banner) end
  return false, banner
end }
