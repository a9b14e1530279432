-- memcached: UP when `stats` answers; uptime and connection count in details.
-- A custom protocol check in a few lines of health.tcp (send a line, read
-- lines until "END"). Set MEMCACHED_HOST / MEMCACHED_PORT or edit below.
local tcp = require "health.tcp"
local host, port = os.getenv("MEMCACHED_HOST") or "127.0.0.1", tonumber(os.getenv("MEMCACHED_PORT")) or 11211

health.check { name = "memcached", timeout = "2s", run = function()
  local s <close>, err = tcp.connect(host, port, { timeout = 1 })
  if not s then return false, err end
  assert(s:send("stats\r\n"))
  local stats = {}
  repeat
    local line, rerr = s:receive("*l")                 -- "STAT uptime 1234", ..., "END"
    if not line then return false, "stats: " .. rerr end
    local k, v = line:match("^STAT (%S+) (.*)$")
    if k then stats[k] = v end
  until line == "END"
  local uptime = tonumber(stats.uptime)
  if not uptime then return false, "stats: no uptime" end
  return true, ("up %d s"):format(uptime), { uptime = uptime, curr_connections = tonumber(stats.curr_connections) }
end }
