-- HTTP checks. The one-liner (health.checks.http) covers the usual "GET the
-- health endpoint, expect 200" case; a hand-written check can look inside.
local http = require "health.http"
local app = os.getenv("APP_URL") or "http://127.0.0.1:8080"   -- the application next to the agent

-- The Dapr-style endpoint check: wait 10 s after start, probe every 5 s with
-- a 2 s timeout, report DOWN after 3 failures in a row.
health.checks.http {
  name = "app",
  url = app .. "/healthz",
  expect_status = { 200, 204 },
  initial_delay = 10, interval = 5, timeout = 2, failure_threshold = 3,
}

-- HTTPS against a private CA, following the redirect to the login-free
-- status page, and checking a word in the body.
health.checks.http {
  name = "admin-ui",
  url = os.getenv("ADMIN_URL") or "https://admin.internal/status",
  ca_file = "/etc/ssl/certs/internal-ca.pem",
  follow = true,
  expect_body = "operational",
  probes = "liveness",
}

-- Looking inside: an upstream's own JSON health document, WARN when slow.
health.check {
  name = "search-upstream",
  timeout = 3,
  interval = 10,
  run = function()
    local r, err = http.get((os.getenv("SEARCH_URL") or "http://127.0.0.1:9200") .. "/_cluster/health", {
      headers = { Accept = "application/json" },
      timeout = 2,                 -- the request's own limit, inside the check's 3 s
      max_body = 64 * 1024,        -- we only need the start of it
    })
    if not r then
      return false, err            -- "timeout", "connection refused", ...
    end
    if r.status ~= 200 then
      return false, "HTTP " .. r.status
    end
    local colour = r.body:match('"status"%s*:%s*"(%a+)"')
    if colour == "red" then
      return false, "cluster red"
    elseif colour == "yellow" or r.time_ms > 500 then
      return health.warn(("cluster %s in %d ms"):format(colour or "?", r.time_ms))
    end
    return true, "cluster green", { time_ms = r.time_ms }
  end,
}
