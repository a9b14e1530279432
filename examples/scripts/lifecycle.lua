-- Scripts that take part in the pod's lifecycle: /info values, and a
-- readiness override decided by a check (the same override an operator sets
-- with PUT /-/ready or POST /-/drain; the last one set wins).

-- Shown under "info" by /info and /actuator/info. Any JSON-able values; they
-- belong to this scripts generation (a reload starts from what the new
-- scripts set). Never put secrets here: /info is public.
health.info {
  app = "shop-frontend",
  team = "web",
  runbook = "https://wiki.example.com/shop-frontend",
}

-- Out of rotation during the nightly maintenance window, in UTC, without
-- failing any check: /readyz answers 503 "nightly maintenance" in every
-- format while /livez is untouched. Runs every 30 s on its own.
health.check {
  name = "maintenance-window",
  probes = "liveness",          -- it never fails, so it cannot hurt liveness
  interval = "30s",
  run = function()
    local hour = math.floor(health.now() / 3600) % 24
    if hour == 3 then
      health.set_ready(false, "nightly maintenance")
      return true, "in the maintenance window"
    end
    health.set_ready(true)
    return true, "outside the maintenance window"
  end,
}

-- A value learnt at run time, published to /info as it changes.
local http = require "health.http"
health.check {
  name = "app-version",
  probes = "readiness",
  interval = "1m",
  critical = false,
  run = function()
    local r, err = http.request { url = (os.getenv("APP_URL") or "http://127.0.0.1:8080") .. "/version", timeout = 2 }
    if not r then return false, err end
    if r.status ~= 200 then return false, "status " .. r.status end
    health.info { app_version = r.body:match("^%s*(.-)%s*$") }
    return true, r.body
  end,
}
