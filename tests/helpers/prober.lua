-- tests/helpers/prober.lua: a kubelet-style prober. Sends GET <path> every
-- `period` seconds over a new connection each time (kubelet does not reuse
-- them), gives up on an answer after `timeout` (kubelet's timeoutSeconds,
-- 1 s by default) and keeps kubelet's consecutive-failure count. Unlike one
-- kubelet worker it does not wait for an answer before the next probe: each
-- probe is its own task, so a slow answer shows as latency, not as fewer
-- probes. Runs inside the agent (busted --lua=healthagent).
--
--   local prober = require "helpers.prober"
--   local res = prober.run { port = a.port, paths = { "/readyz", "/livez" }, seconds = 4 }
--   res["/readyz"].p99, .max, .unanswered, .codes[200], .tripped, .answers[i] = {code=, body=, time=, at=}
local http = require "health.http"
local testing = require "health.testing"

local M = {}

-- The q-quantile (0..1) of the sorted list xs, nearest rank.
local function quantile(xs, q)
  if #xs == 0 then return 0 end
  local i = math.ceil(q * #xs)
  return xs[math.max(1, math.min(#xs, i))]
end
M.quantile = quantile

-- One probe: {code=, body=, time= seconds, at= seconds since start, json=}
-- with code = nil when no answer came within the timeout.
local function probe_once(url, opts, t_start)
  local t0 = health.now()
  local r, err = http.get(url, { timeout = opts.timeout, headers = opts.headers })
  local t1 = health.now()
  local a = { at = t0 - t_start, time = t1 - t0, err = err }
  if r then
    a.code, a.body = r.status, r.body
    a.time = r.time_ms and r.time_ms / 1000 or a.time
  end
  return a
end

-- Probes every path of opts.paths every opts.period seconds (default 0.1)
-- for opts.seconds (default 3), each probe with opts.timeout (default 1 s)
-- and opts.headers. Returns per path: answers (in sending order), n,
-- unanswered, codes (code -> count), sorted times, p50, p99, max, and
-- tripped = true when opts.failure_threshold (default 3) consecutive
-- probes failed (no answer, or a code outside 200..399), as kubelet counts.
function M.run(opts)
  local period, seconds = opts.period or 0.1, opts.seconds or 3
  local popts = { timeout = opts.timeout or 1, headers = opts.headers }
  local threshold = opts.failure_threshold or 3
  local tasks = {}
  local t_start = health.now()
  local k = 0
  while health.now() - t_start < seconds do
    for _, path in ipairs(opts.paths) do
      local url = ("http://127.0.0.1:%d%s"):format(opts.port, path)
      k = k + 1
      tasks[k] = { path = path, h = testing.spawn(probe_once, url, popts, t_start) }
    end
    health.sleep(period)
  end
  local res = {}
  for _, path in ipairs(opts.paths) do
    res[path] = { answers = {}, codes = {}, times = {}, n = 0, unanswered = 0, tripped = false, streak = 0 }
  end
  for _, t in ipairs(tasks) do
    local ok, a = t.h:wait()
    assert(ok, a)
    local r = res[t.path]
    r.n = r.n + 1
    r.answers[#r.answers + 1] = a
    r.times[#r.times + 1] = a.time
    if a.code then
      r.codes[a.code] = (r.codes[a.code] or 0) + 1
    else
      r.unanswered = r.unanswered + 1
    end
    if a.code and a.code >= 200 and a.code < 400 then
      r.streak = 0
    else
      r.streak = r.streak + 1
      if r.streak >= threshold then r.tripped = true end
    end
  end
  for path, r in pairs(res) do
    table.sort(r.times)
    r.p50, r.p99, r.max = quantile(r.times, 0.5), quantile(r.times, 0.99), r.times[#r.times] or 0
    if os.getenv("HA_PROBER_REPORT") then
      io.stderr:write(("prober %-28s %-12s n=%d unanswered=%d p50=%.0fms p99=%.0fms max=%.0fms\n"):format(
        opts.label or "", path, r.n, r.unanswered, r.p50 * 1000, r.p99 * 1000, r.max * 1000))
    end
  end
  return res
end

-- A one-line summary of a result for assertion messages.
function M.describe(r)
  local codes = {}
  for c, n in pairs(r.codes) do codes[#codes + 1] = c .. "x" .. n end
  table.sort(codes)
  return ("n=%d unanswered=%d codes=%s p50=%.0fms p99=%.0fms max=%.0fms"):format(r.n, r.unanswered,
    table.concat(codes, ","), r.p50 * 1000, r.p99 * 1000, r.max * 1000)
end

return M
