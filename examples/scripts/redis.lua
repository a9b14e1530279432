-- Redis: the one-line factory, and a custom check that also watches memory.
-- Keep passwords out of scripts: read them from the environment or a file
-- the agent can read (passwords never appear in outputs or logs).
local host, port = os.getenv("REDIS_HOST") or "127.0.0.1", tonumber(os.getenv("REDIS_PORT")) or 6379
local password = os.getenv("REDIS_PASSWORD")

-- PING must answer PONG; details.role says master or slave.
health.checks.redis {
  name = "cache",
  url = ("redis://:%s@%s:%d/0"):format(password or "", host, port),
  timeout = 2,
  probes = { "readiness" },
}

-- A custom check: WARN above 80% of maxmemory.
local redis = require "health.redis"
health.check {
  name = "cache-memory",
  timeout = 2,
  interval = 30,
  run = function()
    local c <close>, err = redis.connect { host = host, port = port, password = password }
    if not c then return false, err end
    local info, ierr = c:command("INFO", "memory")
    if not info then return false, ierr end
    local used = tonumber(info:match("used_memory:(%d+)"))
    local max = tonumber(info:match("maxmemory:(%d+)"))
    if max and max > 0 and used / max > 0.8 then
      return health.warn(("%.0f%% of maxmemory"):format(100 * used / max), { used = used, max = max })
    end
    return true, "ok", { used = used }
  end,
}
