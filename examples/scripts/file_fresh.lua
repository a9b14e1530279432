-- File freshness: a worker touches a heartbeat file every few seconds; when
-- it stops (hung, crashed, disk full) the file grows old and the check fails.
local fs = require "health.fs"
local heartbeat = os.getenv("WORKER_HEARTBEAT") or "/run/worker/heartbeat"

-- The one-line factory: DOWN "missing" or "stale: 42s old (max 30s)".
health.checks.file_fresh {
  name = "worker-heartbeat",
  path = heartbeat,
  max_age = "30s",
  interval = "10s",
}

-- The same by hand, with more to say: the heartbeat file holds the number
-- of jobs the worker has done; WARN when it is old but not yet dead.
health.check {
  name = "worker-progress",
  probes = { "readiness" },
  interval = "10s",
  run = function()
    local age, err = fs.age(heartbeat)
    if not age then
      return false, err -- "no such file: /run/worker/heartbeat"
    end
    local jobs = tonumber((fs.read(heartbeat, 64) or ""):match("%d+"))
    local details = { age = math.floor(age), jobs = jobs }
    if age > 120 then
      return false, ("no heartbeat for %ds"):format(math.floor(age)), details
    elseif age > 30 then
      return health.warn(("heartbeat %ds old"):format(math.floor(age)), details)
    end
    return true, ("%s jobs done"):format(jobs or "?"), details
  end,
}
