-- Observability against the real binary and real tools: /metrics checked by
-- promtool and scraped by a real Prometheus server (queried through its HTTP
-- API), the status page at / and /status loaded in headless Chromium (DOM
-- assertions, a screenshot kept under the build directory), the history and
-- counters in /-/status, and what untrusted clients (curl from 127.0.0.6,
-- with the trusted networks narrowed to 127.0.0.1/32) never see.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/observe_spec.lua
local agent = require "helpers.agent"
local sh, quote, wait_until = agent.sh, agent.quote, agent.wait_until

local UNTRUSTED = { interface = "127.0.0.6" }
local NARROW = 'trusted_networks = { "127.0.0.1/32" }, shutdown_delay = "0s"'
local HOSTILE_OUT = [[<script>alert("x")</script> & 'quoted' "double" \back\slash]]
local LONG_NAME = ("n"):rep(60) .. "-" .. ("9"):rep(60) .. ".x_Y-z"

local a, prom, tmp
after_each(function()
  local log = a and a:stop()
  a = nil
  if log then agent.assert_clean(log) end
  if prom then
    sh("kill " .. prom .. " 2>/dev/null; sleep 0.2")
    prom = nil
  end
  if tmp then sh("rm -rf " .. quote(tmp)) end
  tmp = nil
end)

-- A scripts directory whose checks cover every state and result kind.
local function scripts(dir)
  return {
    ["a.lua"] = ([[
      local fs = require "health.fs"
      health.check { name = "up", interval = "200ms", run = function() return true, %q end }
      health.check { name = "down", interval = "200ms", run = function() return false, "refused <b>" end }
      health.check { name = "warn", interval = "200ms", run = function() return health.warn("slow") end }
      health.check { name = "raises", interval = "200ms", run = function() error("boom") end }
      health.check { name = "times-out", interval = "300ms", timeout = "50ms", run = function() health.sleep(1) return true end }
      health.check { name = "init", initial_delay = "1h", run = function() return true end }
      health.check { name = "stale", ttl = "100ms", max_age = "1h", run = function() return true end }
      health.check { name = "optional", critical = false, interval = "200ms", run = function() return false, "meh" end }
      health.check { name = %q, interval = "200ms", run = function() return true end }
      health.check { name = "flag", interval = "200ms", run = function()
        if fs.exists(%q) then return false, "flag set" end
        return true, "no flag"
      end }
    ]]):format(HOSTILE_OUT, LONG_NAME, dir .. "/down.flag"),
  }
end

local function metrics(opts)
  local r = a:get("/metrics", opts)
  return r, r.body
end

-- Runs promtool check metrics over body; returns its exit code and output.
local function promtool(body)
  local f = os.tmpname()
  agent.write(f, body)
  local out, code = sh("promtool check metrics < " .. quote(f) .. " 2>&1")
  os.remove(f)
  return code, out
end

-- { [check] = status } read from the state-set gauges; fails unless each
-- check has exactly one state at 1 and all four states listed.
local function states(body)
  local seen, one = {}, {}
  for check, st, v in body:gmatch('healthagent_check_status{check="([^"]+)",status="(%u+)"} (%d)') do
    seen[check] = (seen[check] or 0) + 1
    if v == "1" then
      assert.is_nil(one[check], "two states at 1 for " .. check)
      one[check] = st
    end
  end
  for check, n in pairs(seen) do
    assert.equal(4, n, check)
    assert.truthy(one[check], "no state at 1 for " .. check)
  end
  return one
end

local function sample(body, series)
  local pat = series:gsub("[%p]", "%%%0") .. " ([%d%.e+-]+)\n"
  return tonumber(body:match(pat))
end

describe("/metrics", function()
  it("exposes every check in every state, promtool-clean, with counters that add up, and no outputs", function()
    tmp = agent.tmpdir()
    a = agent.start { scripts = scripts(tmp), config = "return { " .. NARROW .. " }" }
    -- a few refreshes of every interval check, plus probe traffic
    assert.truthy(wait_until(function()
      local st = a:get("/-/status").json
      for _, c in ipairs(st.check_states) do
        if c.name ~= "init" and c.name ~= "stale" and c.runs < 3 then return false end
      end
      return true
    end, 10))
    local before = a:get("/metrics").body
    local function count(body, probe, code)
      return sample(body, ('healthagent_probe_requests_total{probe="%s",code="%s"}'):format(probe, code)) or 0
    end
    for _ = 1, 3 do a:get("/readyz") end
    a:get("/livez")
    a:get("/livez", { headers = { Connection = "close" } }) -- kubelet's way: the front's fast path
    a:get("/readyz/nope")
    a:request("/readyz", { method = "POST" })
    -- the readiness probes just refreshed "stale" (ttl 100ms, no interval): let that result age past its ttl
    health.sleep(0.25)

    local r, body = metrics()
    assert.equal(200, r.status) -- checks are DOWN: still a successful scrape
    assert.equal("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
    local code, out = promtool(body)
    assert.equal(0, code, out)
    assert.equal("", out)

    local st = states(body)
    assert.same({
      up = "UP", down = "DOWN", warn = "WARN", raises = "DOWN", ["times-out"] = "DOWN", init = "INIT",
      optional = "DOWN", [LONG_NAME] = "UP", flag = "UP", stale = "UP",
    }, st)
    -- past its ttl, within max_age: served marked stale; the others are fresh
    assert.equal(1, sample(body, 'healthagent_check_stale{check="stale"}'))
    assert.equal(0, sample(body, 'healthagent_check_stale{check="up"}'))
    assert.equal(0, sample(body, 'healthagent_check_stale{check="init"}'))
    -- results by kind; the histogram counts every run once
    assert.is_true(sample(body, 'healthagent_check_runs_total{check="up",result="up"}') >= 3)
    assert.is_true(sample(body, 'healthagent_check_runs_total{check="down",result="down"}') >= 3)
    assert.is_true(sample(body, 'healthagent_check_runs_total{check="warn",result="warn"}') >= 3)
    assert.is_true(sample(body, 'healthagent_check_runs_total{check="raises",result="error"}') >= 3)
    assert.is_true(sample(body, 'healthagent_check_runs_total{check="times-out",result="timeout"}') >= 3)
    assert.equal(0, sample(body, 'healthagent_check_runs_total{check="times-out",result="up"}'))
    assert.equal(0, sample(body, 'healthagent_check_duration_seconds_count{check="init"}'))
    for _, name in ipairs { "up", "down", "times-out" } do
      local total = 0
      for _, res in ipairs { "up", "warn", "down", "timeout", "error" } do
        total = total + sample(body, ('healthagent_check_runs_total{check="%s",result="%s"}'):format(name, res))
      end
      assert.equal(total, sample(body, ('healthagent_check_duration_seconds_count{check="%s"}'):format(name)))
      assert.equal(total, sample(body, ('healthagent_check_duration_seconds_bucket{check="%s",le="+Inf"}'):format(name)))
    end
    -- the timed-out runs lasted 50 ms or a little more (a loaded host fires timers late): none
    -- in the 25 ms bucket, all in the 1 s one, most in the 100 ms one
    local n = sample(body, 'healthagent_check_duration_seconds_count{check="times-out"}')
    assert.equal(0, sample(body, 'healthagent_check_duration_seconds_bucket{check="times-out",le="0.025"}'))
    assert.is_true(sample(body, 'healthagent_check_duration_seconds_bucket{check="times-out",le="0.1"}') >= n / 2)
    assert.equal(n, sample(body, 'healthagent_check_duration_seconds_bucket{check="times-out",le="1"}'))
    local sum = sample(body, 'healthagent_check_duration_seconds_sum{check="times-out"}')
    assert.is_true(sum >= 0.045 * n and sum <= 1.0 * n, tostring(sum))
    assert.equal(0, sample(body, 'healthagent_check_transitions_total{check="init"}'))
    assert.equal(1, sample(body, 'healthagent_check_transitions_total{check="up"}'))
    local ts = sample(body, 'healthagent_check_last_run_timestamp_seconds{check="up"}')
    assert.is_true(math.abs(ts - os.time()) < 5, tostring(ts))
    assert.equal(0, sample(body, 'healthagent_check_last_run_timestamp_seconds{check="init"}'))
    -- probes: status by their success code, requests by code
    assert.equal(1, sample(body, 'healthagent_probe_status{probe="liveness"}'))
    assert.equal(0, sample(body, 'healthagent_probe_status{probe="readiness"}'))
    for _, c in ipairs { { "readiness", "503", 3 }, { "readiness", "404", 1 }, { "readiness", "405", 1 },
                         { "liveness", "200", 2 }, { "startup", "200", 0 } } do
      assert.equal(c[3], count(body, c[1], c[2]) - count(before, c[1], c[2]), c[1] .. " " .. c[2])
    end
    assert.equal(0, sample(body, "healthagent_engine_stalled"))
    assert.is_true(sample(body, "healthagent_engine_lag_seconds") < 1)
    assert.equal(1, sample(body, "healthagent_scripts_last_reload_successful"))
    assert.truthy(body:find('healthagent_build_info{version="0.1.0",commit="', 1, true))
    assert.is_true(sample(body, "process_resident_memory_bytes") > 1e6)
    assert.is_true(sample(body, "process_open_fds") > 3)
    assert.is_true(math.abs(sample(body, "process_start_time_seconds") - os.time()) < 60)
    -- outputs are never in metrics, whoever asks
    for _, needle in ipairs { "<script", "alert", "refused", "slow", "boom", "meh", "flag set", "no flag" } do
      assert.is_nil(body:find(needle, 1, true), needle)
    end
    -- public by default: the untrusted client gets the same families
    local ru = a:get("/metrics", UNTRUSTED)
    assert.equal(200, ru.status)
    assert.same(st, states(ru.body))
    assert.equal(0, (promtool(ru.body)))
  end)

  it("stays promtool-clean across a failed and a successful reload, and counts both", function()
    a = agent.start {
      scripts = { ["a.lua"] = 'health.check { name = "x", run = function() return true end }' },
      config = 'return { shutdown_delay = "0s", rescan_interval = "1h" }',
    }
    local function reload() a:request("/-/reload", { method = "POST" }) end
    local body = select(2, metrics())
    assert.equal(0, sample(body, 'healthagent_scripts_reloads_total{result="success"}'))
    assert.equal(0, sample(body, 'healthagent_scripts_reloads_total{result="failure"}'))
    agent.write(a.scripts .. "/a.lua", "health.check { name = ")
    reload()
    assert.truthy(wait_until(function()
      return sample(select(2, metrics()), "healthagent_scripts_last_reload_successful") == 0
    end, 5))
    body = select(2, metrics())
    assert.equal(1, sample(body, 'healthagent_scripts_reloads_total{result="failure"}'))
    assert.equal(0, (promtool(body)))
    local t_fail = sample(body, "healthagent_scripts_last_reload_timestamp_seconds")
    assert.is_true(math.abs(t_fail - os.time()) < 5)
    -- the old generation keeps serving: its check is still exposed
    assert.equal("UP", states(body).x or "UP")
    agent.write(a.scripts .. "/a.lua", 'health.check { name = "y", run = function() return true end }')
    reload()
    assert.truthy(wait_until(function()
      return sample(select(2, metrics()), 'healthagent_scripts_reloads_total{result="success"}') == 1
    end, 5))
    body = select(2, metrics())
    assert.equal(1, sample(body, "healthagent_scripts_last_reload_successful"))
    assert.is_nil(body:find('check="x"', 1, true))
    assert.truthy(body:find('check="y"', 1, true))
    assert.equal(0, (promtool(body)))
  end)

  it("shows a stalled engine: stalled 1, liveness failing, still promtool-clean; the page says STALLED", function()
    a = agent.start {
      scripts = { ["a.lua"] = [[
        health.check { name = "ok", probes = { "liveness", "readiness" }, ttl = "1h", run = function() return true end }
        health.check { name = "stuck", timeout = "10s", ttl = "1h", initial_delay = "300ms", run = function()
          ("a"):rep(300):find(".-.-.-b") -- seconds inside C: no hook can stop it
          return true, "back"
        end }
      ]] },
      config = 'return { shutdown_delay = "0s", watchdog = "500ms" }',
    }
    local page
    local body = wait_until(function()
      local b = a:get("/metrics").body
      page = a:get("/").body
      return sample(b, "healthagent_engine_stalled") == 1 and b
    end, 10)
    assert.truthy(body, "never stalled")
    assert.equal(0, sample(body, 'healthagent_probe_status{probe="liveness"}'))
    assert.is_true(sample(body, "healthagent_engine_lag_seconds") >= 0.5)
    local code, out = promtool(body)
    assert.equal(0, code, out)
    assert.truthy(page:find('id="engine"><b>engine</b><span class="v t-DOWN">STALLED for ', 1, true))
    assert.truthy(page:find('id="probe-liveness"><b>liveness</b><span class="v t-DOWN">DOWN</span>', 1, true))
    -- and back: the engine recovers, the gauges follow
    assert.truthy(wait_until(function() return sample(a:get("/metrics").body, "healthagent_engine_stalled") == 0 end, 60))
    assert.truthy(wait_until(function()
      return a:get("/").body:find('id="engine"><b>engine</b><span class="v">running</span>', 1, true)
    end, 5))
  end)

  it("metrics = \"trusted\" answers 403 to others, \"off\" 404 to everyone", function()
    a = agent.start {
      scripts = scripts("/nonexistent"),
      config = "return { metrics = 'trusted', token = 'tok-0123456789abcdef', " .. NARROW .. " }",
    }
    local r = a:get("/metrics", UNTRUSTED)
    assert.equal(403, r.status)
    assert.is_nil(r.body:find("healthagent_", 1, true))
    assert.equal(200, a:get("/metrics").status)
    r = a:get("/metrics", { interface = "127.0.0.6", headers = { Authorization = "Bearer tok-0123456789abcdef" } })
    assert.equal(200, r.status)
    assert.truthy(r.body:find("healthagent_check_status", 1, true))
    a:stop()
    a = agent.start {
      scripts = scripts("/nonexistent"),
      config = "return { metrics = 'off', status_page = 'off', token = 'tok-0123456789abcdef', " .. NARROW .. " }",
    }
    for _, p in ipairs { "/metrics", "/", "/status" } do
      assert.equal(404, a:get(p).status, p)
      assert.equal(404, a:get(p, { headers = { Authorization = "Bearer tok-0123456789abcdef" } }).status, p)
    end
    assert.equal(200, a:get("/livez").status)
  end)

  it("a bad access value or a probe path on a reserved path is a one-line error naming the field", function()
    for _, case in ipairs {
      { "metrics = 'private'", "metrics" },
      { "status_page = true", "status_page" },
      { "history = -1", "history" },
      { "history = 1001", "history" },
      { "probes = { readiness = { paths = { '/metrics' } } }", "probes.readiness.paths" },
      { "probes = { liveness = { paths = { '/' } } }", "probes.liveness.paths" },
      { "probes = { liveness = { paths = { '/status' } } }", "probes.liveness.paths" },
    } do
      local dir = agent.tmpdir()
      agent.write(dir .. "/c.lua", "return { " .. case[1] .. " }")
      local rc, out = agent.run("--config " .. quote(dir .. "/c.lua") .. " --listen 127.0.0.1:0 --scripts " .. quote(dir))
      sh("rm -rf " .. quote(dir))
      assert.are_not.equal(0, rc, case[1])
      local line = out:match("[^\n]*" .. case[2]:gsub("%.", "%%.") .. "[^\n]*")
      assert.truthy(line, case[1] .. " -> " .. out)
      assert.truthy(line:find("c.lua", 1, true), out)
    end
  end)
end)

describe("history", function()
  local function check(name, opts)
    for _, c in ipairs(a:get("/-/status", opts).json.check_states) do
      if c.name == name then return c end
    end
  end

  it("keeps the last N results with time, status, duration and short output, bounded by history", function()
    a = agent.start {
      scripts = { ["a.lua"] = [[
        health.check { name = "flip", interval = "100ms", run = function(ctx)
          if ctx.attempt % 2 == 0 then return false, ("x"):rep(200) .. " #" .. ctx.attempt end
          return true, "ok #" .. ctx.attempt
        end }
      ]] },
      config = 'return { history = 5, shutdown_delay = "0s" }',
    }
    assert.truthy(wait_until(function() return check("flip").runs >= 8 end, 10))
    local c = check("flip")
    assert.equal(5, #c.history)
    assert.equal(5, a:get("/-/status").json.history_size)
    for i, e in ipairs(c.history) do
      assert.truthy(e.time:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"), e.time)
      assert.is_true(e.duration_ms >= 0 and e.duration_ms < 100)
      assert.is_true(#e.output <= 49, e.output)
      if e.result == "up" then
        assert.equal("UP", e.status)
        assert.truthy(e.output:match("^ok #%d+$"))
      else
        assert.equal("down", e.result)
        assert.equal("DOWN", e.status)
        assert.equal(("x"):rep(49), e.output)
      end
      if i > 1 then assert.is_true(e.time >= c.history[i - 1].time) end
      if i > 1 then assert.are_not.equal(e.result, c.history[i - 1].result) end
    end
    -- every run flips the status: as many transitions as runs, the last one is "since"
    assert.is_true(c.transitions >= c.runs - 1)
    assert.truthy(c.since)
    assert.is_true(c.since >= c.history[#c.history - 1].time)
  end)

  it("survives a reload for unchanged checks and starts over for changed ones", function()
    a = agent.start {
      scripts = {
        ["keep.lua"] = 'health.check { name = "keep", interval = "100ms", run = function() return true end }',
        ["change.lua"] = 'health.check { name = "change", interval = "100ms", run = function() return true end }',
      },
      config = 'return { shutdown_delay = "0s", rescan_interval = "1h" }',
    }
    assert.truthy(wait_until(function() return check("keep").runs >= 5 and check("change").runs >= 5 end, 10))
    local before, old = check("keep"), check("change")
    agent.write(a.scripts .. "/change.lua",
      'health.check { name = "change", interval = "100ms", run = function() return true, "v2" end }')
    a:request("/-/reload", { method = "POST" })
    assert.truthy(wait_until(function() return a:get("/-/status").json.generation == 2 end, 5))
    -- the redefined check's first run of the new generation may still be ahead
    -- (interval checks start spread over their interval)
    local changed = wait_until(function() local c = check("change") return #c.history > 0 and c end, 5)
    assert.truthy(changed, "the changed check never ran in generation 2")
    local kept = check("keep")
    assert.is_true(#kept.history >= #before.history)
    assert.equal(before.history[1].time, kept.history[1].time)
    assert.equal(before.since, kept.since)
    -- the changed check starts over: its first entry is younger than the last one before
    assert.is_true(changed.history[1].time > old.history[#old.history].time)
    local body = a:get("/metrics").body
    assert.is_true(sample(body, 'healthagent_check_runs_total{check="keep",result="up"}') >= before.runs)
  end)
end)

-- Runs headless Chromium on url with the given mode flags; returns stdout.
local function chromium(url, mode)
  local profile = agent.tmpdir()
  local out = sh(("timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run " ..
    "--disable-background-networking --disable-component-update --disable-sync --user-data-dir=%s %s %s 2>/dev/null")
    :format(quote(profile), mode, quote(url)))
  sh("rm -rf " .. quote(profile))
  return out
end

local function artifacts()
  local bin = os.getenv("HA_BIN") or "build/healthagent"
  local dir = bin:match("^(.*)/[^/]+$") or "."
  dir = dir .. "/artifacts"
  sh("mkdir -p " .. quote(dir))
  return dir
end

describe("status page", function()
  it("renders every check with its status in words, escapes outputs, and shows them to trusted clients only", function()
    tmp = agent.tmpdir()
    a = agent.start { scripts = scripts(tmp), config = "return { " .. NARROW .. " }" }
    assert.truthy(wait_until(function()
      for _, c in ipairs(a:get("/-/status").json.check_states) do
        if c.name ~= "init" and c.name ~= "stale" and c.runs < 2 then return false end
      end
      return true
    end, 10))
    local url = ("http://127.0.0.1:%d/"):format(a.port)
    local dom = chromium(url, "--dump-dom")
    assert.truthy(dom:find("<title>DOWN - healthagent</title>", 1, true), dom:sub(1, 300))
    -- one row per check, status in words
    local rows = {}
    for id, row in dom:gmatch('<tr class="check" id="check%-([^"]+)">(.-)</tr>') do rows[id] = row end
    for name, want in pairs { up = "UP", down = "DOWN", warn = "WARN", raises = "DOWN", ["times-out"] = "DOWN",
                              init = "INIT", optional = "DOWN", [LONG_NAME] = "UP", flag = "UP", stale = "UP" } do
      assert.truthy(rows[name], name)
      assert.truthy(rows[name]:find("<b>" .. want .. "</b>", 1, true), name)
    end
    assert.truthy(rows.optional:find("non-critical", 1, true))
    assert.truthy(rows.stale:find('<span class="tag">stale</span>', 1, true))
    assert.is_nil(rows.up:find('<span class="tag">stale</span>', 1, true))
    -- the hostile output is text, not markup: no script element made it into the DOM
    assert.is_nil(dom:find("<script", 1, true))
    assert.truthy(rows.up:find("&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; 'quoted'", 1, true), rows.up)
    assert.truthy(rows.down:find("refused &lt;b&gt;", 1, true))
    -- history strips with hover text, probes and agent facts
    local _, strips = rows.up:gsub('<i class="UP" title="%d%d:%d%d:%d%d UP up ', "")
    assert.is_true(strips >= 2)
    assert.truthy(dom:find('id="probe-readiness"><b>readiness</b><span class="v t-DOWN">DOWN</span>', 1, true))
    assert.truthy(dom:find('id="probe-liveness"><b>liveness</b><span class="v t-UP">UP</span>', 1, true))
    assert.truthy(dom:find('id="engine"><b>engine</b><span class="v">running</span>', 1, true))
    assert.truthy(dom:find('http-equiv="refresh"', 1, true))
    assert.truthy(dom:find("prefers-color-scheme:dark", 1, true))
    -- the screenshot is kept for CI (build/artifacts/status_page.png)
    local png = artifacts() .. "/status_page.png"
    os.remove(png)
    chromium(url, "--window-size=1280,1000 --screenshot=" .. quote(png))
    local shot = agent.read(png)
    assert.truthy(shot and shot:sub(1, 8) == "\137PNG\r\n\26\n", "no screenshot at " .. png)
    local phone = artifacts() .. "/status_page_phone.png"
    chromium(url, "--window-size=390,844 --screenshot=" .. quote(phone))
    -- the same page for an untrusted client: statuses, no output at all
    local html = a:get("/", UNTRUSTED).body
    assert.truthy(html:find('id="check-up"', 1, true))
    assert.truthy(html:find('id="no-outputs"', 1, true))
    for _, needle in ipairs { "<script", "alert", "refused", "slow", "boom", "meh", "flag set", "no flag", "quoted" } do
      assert.is_nil(html:find(needle, 1, true), needle)
    end
    local other = a:get("/status", UNTRUSTED)
    assert.equal(200, other.status)
    assert.equal("text/html; charset=utf-8", other.headers["content-type"])
    assert.truthy(other.body:find('id="no-outputs"', 1, true))
    assert.is_nil(other.body:find("refused", 1, true))
  end)

  it("shows each group: status as its answer reads, aggregate, paths, members linked to their rows, escaped message", function()
    a = agent.start { scripts = { ["g.lua"] = ([[
      health.check { name = "a", ttl = "1h", run = function() return true end }
      health.check { name = "b", ttl = "1h", run = function() return false, "broken" end }
      health.group { name = "q", include = { "a", "b" }, path = "/health/q", aggregate = health.aggregate.quorum { min_up = 1 } }
      health.group { name = "lua", include = { "a", "b" }, aggregate = function() return health.warn(%q) end }
    ]]):format(HOSTILE_OUT) }, config = "return { " .. NARROW .. " }" }
    assert.truthy(wait_until(function()
      local g = a:get("/-/status").json.groups
      return g and g[1] and g[1].status == "WARN"
    end, 10), a:log())
    local dom = chromium(("http://127.0.0.1:%d/"):format(a.port), "--dump-dom")
    local rows = {}
    for id, row in dom:gmatch('<tr class="group" id="group%-([^"]+)">(.-)</tr>') do rows[id] = row end
    assert.truthy(rows.q, dom:sub(1, 400))
    assert.truthy(rows.q:find('<b>UP</b>', 1, true), rows.q)
    assert.truthy(rows.q:find('quorum: 1 up', 1, true), rows.q)
    assert.truthy(rows.q:find('/groupz/q<br>/health/q', 1, true), rows.q)
    assert.truthy(rows.q:find('<a class="t-UP" href="#check-a">a</a> <a class="t-DOWN" href="#check-b">b</a>', 1, true),
      rows.q)
    assert.truthy(rows.q:find("1 of 2 up (1 needed); failing: b", 1, true), rows.q)
    assert.truthy(rows.lua:find('<b>WARN</b>', 1, true), rows.lua)
    assert.truthy(rows.lua:find("&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; 'quoted'", 1, true), rows.lua)
    assert.truthy(rows.lua:find("<time ", 1, true), rows.lua) -- the verdict's time
    assert.is_nil(dom:find("<script", 1, true))
    local html = a:get("/", UNTRUSTED).body
    assert.truthy(html:find('id="group-lua"', 1, true))
    for _, needle in ipairs { "alert", "quoted", "needed" } do
      assert.is_nil(html:find(needle, 1, true), needle)
    end
  end)

  it("in Chromium from an untrusted address shows no output; status_page = \"trusted\" refuses it", function()
    -- nothing of loopback is trusted here, so Chromium itself is the untrusted client
    a = agent.start {
      scripts = scripts("/nonexistent"),
      config = 'return { trusted_networks = { "10.255.255.0/24" }, shutdown_delay = "0s" }',
    }
    assert.truthy(wait_until(function() return a:get("/readyz").status == 503 end, 5))
    health.sleep(0.5)
    local dom = chromium(("http://127.0.0.1:%d/status"):format(a.port), "--dump-dom")
    assert.truthy(dom:find('id="check-up"', 1, true), dom:sub(1, 200))
    assert.truthy(dom:find('id="no-outputs"', 1, true))
    for _, needle in ipairs { "alert", "refused", "boom", "meh", "quoted", ">output<" } do
      assert.is_nil(dom:find(needle, 1, true), needle)
    end
    a:stop()
    a = agent.start { scripts = scripts("/nonexistent"), config = "return { status_page = 'trusted', " .. NARROW .. " }" }
    assert.equal(403, a:get("/", UNTRUSTED).status)
    assert.equal(200, a:get("/").status)
    assert.equal(405, a:request("/", { method = "POST" }).status)
  end)
end)

describe("a real Prometheus server", function()
  local function free_port()
    return tonumber(os.getenv("HA_PORT_BASE") or "24700") + 16
  end

  local function query(port, q)
    local out = sh(("curl -s --max-time 5 'http://127.0.0.1:%d/api/v1/query' --data-urlencode %s"):format(port,
      quote("query=" .. q)))
    local ok, v = pcall(agent.decode, out)
    return ok and v.status == "success" and v.data.result or nil
  end

  it("scrapes the agent: up == 1, one state at 1 per check, a status change within two scrape intervals", function()
    tmp = agent.tmpdir()
    a = agent.start { scripts = scripts(tmp), config = "return { " .. NARROW .. " }" }
    local port = free_port()
    agent.write(tmp .. "/prometheus.yml", ([[
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: healthagent
    static_configs:
      - targets: ["127.0.0.1:%d"]
]]):format(a.port))
    prom = tonumber((sh(("prometheus --config.file=%s --storage.tsdb.path=%s --web.listen-address=127.0.0.1:%d " ..
      "--log.level=warn > %s 2>&1 & echo $!"):format(quote(tmp .. "/prometheus.yml"), quote(tmp .. "/data"), port,
      quote(tmp .. "/prometheus.log")))))
    local up = wait_until(function()
      local r = query(port, 'up{job="healthagent"}')
      return r and r[1] and r[1].value[2] == "1" and r
    end, 30)
    assert.truthy(up, agent.read(tmp .. "/prometheus.log"))
    -- one healthagent_check_status series at 1 per check, four per check in all
    local r = wait_until(function()
      local v = query(port, "healthagent_check_status == 1")
      return v and #v == 10 and v
    end, 10)
    assert.truthy(r)
    local seen = {}
    for _, s in ipairs(r) do
      assert.is_nil(seen[s.metric.check])
      seen[s.metric.check] = s.metric.status
    end
    assert.equal("UP", seen.flag)
    assert.equal("INIT", seen.init)
    assert.equal(40, #query(port, "healthagent_check_status"))
    assert.equal("0", query(port, 'healthagent_probe_status{probe="readiness"}')[1].value[2])
    -- flip the flag check; once the agent shows it, Prometheus has it within two intervals
    agent.write(tmp .. "/down.flag", "")
    assert.truthy(wait_until(function()
      return states(a:get("/metrics").body).flag == "DOWN"
    end, 5))
    local t0 = health.now()
    local seen_down = wait_until(function()
      local v = query(port, 'healthagent_check_status{check="flag",status="DOWN"}')
      return v and v[1] and v[1].value[2] == "1"
    end, 10)
    local elapsed = health.now() - t0
    assert.truthy(seen_down)
    assert.is_true(elapsed <= 2 * 1 + 1.0, ("seen after %.2fs"):format(elapsed))
    -- rates work on the counters
    local rate = query(port, 'rate(healthagent_check_runs_total{check="down",result="down"}[5s])')
    assert.truthy(rate and rate[1])
  end)

  it("promtool accepts the example alerting rules, and the Grafana dashboard is valid JSON on these metrics", function()
    local src = os.getenv("HA_SOURCE_DIR") or "."
    local out, code = sh("promtool check rules " .. quote(src .. "/examples/prometheus/alerts.yml") .. " 2>&1")
    assert.equal(0, code, out)
    assert.truthy(out:find("SUCCESS: 4 rules found", 1, true), out)
    local rules = agent.read(src .. "/examples/prometheus/alerts.yml")
    for _, m in ipairs { "healthagent_check_status", "healthagent_probe_status", "healthagent_engine_stalled",
                         "healthagent_scripts_last_reload_successful" } do
      assert.truthy(rules:find(m, 1, true), m)
    end
    local dash = agent.decode(agent.read(src .. "/examples/grafana/healthagent-dashboard.json"))
    assert.truthy(#dash.panels >= 4)
    local exprs = {}
    for _, p in ipairs(dash.panels) do
      for _, t in ipairs(p.targets or {}) do exprs[#exprs + 1] = t.expr end
    end
    local all = table.concat(exprs, "\n")
    for _, m in ipairs { "healthagent_check_status", "healthagent_check_duration_seconds_bucket",
                         "healthagent_probe_status", "healthagent_engine_lag_seconds" } do
      assert.truthy(all:find(m, 1, true), m)
    end
  end)
end)
