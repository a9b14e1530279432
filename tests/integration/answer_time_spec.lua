-- Answer time and age: every probe is answered within max_wait whatever the
-- checks and the engine do; within that budget a probe waits for fresh
-- results; past it a check shows its last result marked stale while it is
-- younger than max_age, INIT when never decided, DOWN "no result for Ns"
-- once older. Measured with a kubelet-style prober (agent.probe in helpers.agent): new
-- connection per probe, 1 s client timeout, consecutive-failure count.
-- The machine running the suite is shared: bounds are the budget plus a
-- generous margin. HA_PROBER_REPORT=1 prints each case's figures.
local agent = require "helpers.agent"

local MAX_WAIT = 0.5     -- the default budget
local MARGIN = 0.4       -- scheduling noise of a loaded 2-core machine

local wait_until = agent.wait_until

-- agent.start, and a kill at the end of the test should an assertion end it
-- before its own stop.
local function start(opts)
  local a = agent.start(opts)
  finally(function() if a:alive() then a:kill() end end)
  return a
end

-- Every probe answered, none slower than the budget plus the margin at p99.
local function assert_bounded(r, what, budget)
  budget = budget or MAX_WAIT
  assert.equal(0, r.unanswered, what .. ": unanswered probes: " .. agent.describe_probe(r))
  assert.is_true(r.p99 < budget + MARGIN, what .. ": p99 over budget: " .. agent.describe_probe(r))
end

describe("a hung check", function()
  it("probed at 10 Hz with a 1 s timeout: every probe answered within max_wait, the last pass shown stale", function()
    local a = start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "ok", probes = { "liveness", "readiness" }, ttl = "1h", run = function() return true end }
health.check { name = "hung", probes = { "liveness", "readiness" }, timeout = "3s", ttl = "1s", run = function()
  n = n + 1
  if n > 1 then health.sleep(10) end
  return true, "first run"
end }
]] },
      config = [[return { shutdown_delay = 0 }]],
    }
    assert.is_true(wait_until(function() return a:get("/readyz/hung").status == 200 end))
    health.sleep(1.1) -- stale now: the next probe starts a run that hangs for 3 s
    local res = agent.probe { port = a.port, label = "hung check", seconds = 4,
                             paths = { "/readyz", "/livez", "/healthz", "/readyz/hung", "/readyz/ok" } }
    for path, r in pairs(res) do assert_bounded(r, path) end
    -- the unrelated check is fresh: answered at once
    assert.is_true(res["/readyz/ok"].p99 < 0.1 + MARGIN, agent.describe_probe(res["/readyz/ok"]))
    -- within its max_age (ttl + timeout = 4 s) the pass is shown, marked stale,
    -- after waiting the whole budget; then the hung run ends DOWN at its timeout
    local stale, down = 0, 0
    for _, x in ipairs(res["/readyz/hung"].answers) do
      local j = x.body and x.body ~= "" and agent.decode(x.body)
      if x.code == 200 then
        assert.is_true(j.stale, x.body)
        assert.equal("first run", j.output)
        assert.is_true(x.time >= MAX_WAIT - 0.05, "a stale answer came before the budget: " .. x.time)
        stale = stale + 1
      else
        -- DOWN at its timeout; or, between its max_age (4 s after the
        -- result) and the timeout of the run that started later, no result
        assert.equal(503, x.code)
        assert.is_true(j.output == "timeout after 3s" or j.output == "no result for 4s", j.output)
        down = down + 1
      end
    end
    assert.is_true(stale > 10 and down > 0, ("stale %d, down %d"):format(stale, down))
    a:stop()
  end)
end)

describe("fresh when cheap", function()
  it("a probe of a stale on-demand check waits for its run and shows the new result", function()
    local a = start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "counter", ttl = 0, run = function() n = n + 1 health.sleep(0.05) return true, tostring(n) end }
]] },
      config = [[return { shutdown_delay = 0 }]],
    }
    local last = 0
    for _ = 1, 10 do
      local r = a:get("/readyz/counter")
      assert.equal(200, r.status)
      assert.is_nil(r.json.stale)
      local n = tonumber(r.json.output)
      assert.is_true(n > last, "a probe was answered from an old result: " .. n .. " after " .. last)
      last = n
      assert.is_true(r.time < 0.05 + MARGIN, "took " .. r.time)
    end
    a:stop() -- single flight: probes_spec "shares one run among concurrent probes"
  end)
end)

describe("a slow first run", function()
  it("readiness and startup answer 503 INIT within max_wait while it runs; liveness 200", function()
    local a = start {
      scripts = { ["a.lua"] = [[
health.check { name = "warmup", probes = { "startup", "readiness" }, timeout = "12s", run = function()
  health.sleep(9) return true, "warm" end }
health.check { name = "alive", probes = { "liveness" }, ttl = "1h", run = function() return true end }
]] },
      config = [[return { shutdown_delay = 0 }]],
    }
    local t0 = health.now()
    local res = agent.probe { port = a.port, label = "slow first run", seconds = 2,
                             paths = { "/readyz", "/startupz", "/livez" } }
    assert.is_true(health.now() - t0 < 8, "the prober ran past the first run: the case proves nothing")
    for _, path in ipairs { "/readyz", "/startupz" } do
      local r = res[path]
      assert_bounded(r, path)
      assert.equal(r.n, r.codes[503], path .. ": " .. agent.describe_probe(r))
      for _, x in ipairs(r.answers) do
        assert.equal("INIT", agent.decode(x.body).components.warmup.status)
      end
      assert.is_true(r.tripped, path .. " should fail a kubelet-style probe during the first run")
    end
    assert_bounded(res["/livez"], "/livez", 0.1)
    assert.equal(res["/livez"].n, res["/livez"].codes[200], agent.describe_probe(res["/livez"]))
    assert.is_true(wait_until(function() return a:get("/startupz").status == 200 end, 15))
    a:stop()
  end)
end)

describe("an engine stuck in a C call", function()
  it("probes are answered within the budget before and after the watchdog trips; an old pass turns DOWN", function()
    local a = start {
      scripts = { ["a.lua"] = [[
health.check { name = "alive", probes = { "liveness", "readiness" }, ttl = "1h", run = function() return true end }
health.check { name = "od", probes = { "readiness" }, ttl = "500ms", timeout = "500ms", run = function()
  return true, "passing" end }
health.check { name = "stuck", probes = { "readiness" }, timeout = "60s", ttl = "1h", initial_delay = "1500ms",
  run = function() ("a"):rep(500):find(".-.-.-b") return true end }
]] },
      config = [[return { shutdown_delay = 0, shutdown_timeout = "1s", watchdog = "2s" }]],
    }
    local first = a:get("/readyz/od")
    assert.equal(200, first.status)
    -- the engine sticks 1.5 s after the load, the watchdog trips 2 s later,
    -- the find holds it far longer than the prober runs (12 s of CPU at least)
    local res = agent.probe { port = a.port, label = "stuck engine", seconds = 6,
                             paths = { "/readyz", "/livez", "/readyz/od", "/readyz/alive" } }
    for path, r in pairs(res) do assert_bounded(r, path) end
    -- /livez: passing before the watchdog trips (2 s after the stall began), failing after
    local live = res["/livez"].answers
    assert.equal(200, live[1].code)
    assert.equal(503, live[#live].code)
    assert.matches("^engine stalled for %d+s$", agent.decode(live[#live].body).reason)
    -- od's last pass is from before the engine stuck (1.5 s after the load,
    -- which was before the prober started); past its max_age (ttl + timeout
    -- = 1 s) it is never served as a pass again
    local od = res["/readyz/od"].answers
    local expired, last_time = 0, nil
    for _, x in ipairs(od) do
      if x.at > 1.5 + 1.0 + 0.2 then
        local j = agent.decode(x.body)
        assert.equal(503, x.code, x.body)
        assert.equal("DOWN", j.status)
        assert.equal("no result for 1s", j.output)
        last_time = last_time or j.time -- the time of the last pass, the same in every answer
        assert.equal(last_time, j.time)
        expired = expired + 1
      end
    end
    assert.is_true(expired > 15, "expired answers: " .. expired)
    assert.is_true(a:log():find("engine stalled for", 1, true) ~= nil)
    a:kill() -- the engine stays stuck for many seconds: do not wait for it
    a:stop()
  end)
end)

describe("the stale marker", function()
  it("shows in every format with the result's own time, and an answer past max_age reads DOWN", function()
    local a = start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "c", ttl = "300ms", timeout = "10s", max_age = "3s", run = function()
  n = n + 1
  if n > 1 then health.sleep(30) end
  return true, "fresh"
end }
]] },
      config = [[return { shutdown_delay = 0, max_wait = "200ms", trusted_networks = { "127.0.0.1/32" } }]],
    }
    local fresh
    assert.is_true(wait_until(function() fresh = a:get("/readyz") return fresh.status == 200 end))
    assert.is_nil(fresh.json.components.c.stale)
    health.sleep(0.35)
    local r = a:get("/readyz")
    assert.equal(200, r.status)
    assert.is_true(r.time >= 0.15 and r.time < 0.2 + MARGIN, "waited " .. r.time)
    assert.same({ status = "UP", stale = true, output = "fresh", duration_ms = fresh.json.components.c.duration_ms,
                  time = fresh.json.components.c.time }, r.json.components.c)
    assert.equal(r.body, a:get("/readyz").body) -- prebuilt: no per-request content
    r = a:get("/readyz", { headers = { Accept = "application/health+json" } })
    assert.equal(200, r.status)
    assert.is_true(r.json.checks["c:responseTime"][1].stale)
    assert.equal(fresh.json.components.c.time, r.json.checks["c:responseTime"][1].time)
    r = a:get("/readyz?verbose")
    assert.equal("[+]c ok (stale)\nreadyz check passed\n", r.body)
    r = a:get("/readyz/c", { interface = "127.0.0.2" }) -- names and statuses only
    assert.same({ status = "UP", stale = true }, r.json)
    -- 3 s after the result: no longer shown, whatever the engine does
    assert.is_true(wait_until(function() return a:get("/readyz").status == 503 end, 4))
    r = a:get("/readyz")
    assert.same({ status = "DOWN", output = "no result for 3s", duration_ms = fresh.json.components.c.duration_ms,
                  time = fresh.json.components.c.time }, r.json.components.c)
    assert.equal("[-]c failed: no result for 3s\nreadyz check failed\n", a:get("/readyz?verbose").body)
    a:stop()
  end)

  it("max_wait = 0 answers at once from what is known and still starts the run", function()
    local a = start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "c", ttl = "200ms", timeout = "2s", run = function()
  n = n + 1 health.sleep(0.3) return true, tostring(n) end }
]] },
      config = [[return { shutdown_delay = 0, max_wait = 0 }]],
    }
    local r = a:get("/readyz/c")
    assert.equal(503, r.status) -- the first run is still going: INIT, at once
    assert.equal("INIT", r.json.status)
    assert.is_true(r.time < 0.2, "took " .. r.time)
    assert.is_true(wait_until(function() return a:get("/readyz/c").json.output == "1" end))
    health.sleep(0.25)
    r = a:get("/readyz/c")
    assert.same({ true, "1" }, { r.json.stale, r.json.output })
    assert.is_true(wait_until(function() return a:get("/readyz/c").json.output == "2" end, 2))
    a:stop()
  end)
end)

describe("the drain", function()
  it("keeps checks running for the probes still served: liveness answers from live results", function()
    local a = start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "beat", probes = { "liveness", "readiness" }, ttl = "100ms", run = function()
  n = n + 1 return true, tostring(n) end }
]] },
      config = [[return { shutdown_delay = "6s" }]],
    }
    assert.equal(200, a:get("/livez").status)
    a:signal("TERM")
    assert.is_true(a:wait_log("/readyz now fails", 2))
    local seen = {}
    for _ = 1, 5 do -- well within the 6 s of the drain, even on a loaded machine
      health.sleep(0.15)
      local r = a:get("/livez/beat")
      assert.equal(200, r.status)
      assert.is_nil(r.json.stale)
      seen[#seen + 1] = tonumber(r.json.output)
      local ready = a:get("/readyz")
      assert.equal(503, ready.status)
      assert.equal("shutting down", ready.json.reason)
    end
    for i = 2, #seen do
      assert.is_true(seen[i] > seen[i - 1], "frozen result during the drain: " .. table.concat(seen, ","))
    end
    assert.equal(0, a:wait_exit(15))
    a:stop()
  end)
end)

describe("answer-time settings", function()
  local dir
  before_each(function() dir = agent.tmpdir() end)
  after_each(function() agent.sh("rm -rf " .. agent.quote(dir)) end)

  it("max_wait is a duration from 0 to 60s", function()
    agent.write(dir .. "/c.lua", "return { max_wait = '2m' }")
    local rc, out = agent.run("--config " .. dir .. "/c.lua --scripts " .. dir)
    assert.equal(2, rc)
    assert.equal("healthagent: " .. dir .. "/c.lua: field 'max_wait': must be at most 60s (a probe's whole answer time)\n", out)
    agent.write(dir .. "/c.lua", "return { max_wait = 'soon' }")
    rc, out = agent.run("--config " .. dir .. "/c.lua --scripts " .. dir)
    assert.equal(2, rc)
    assert.matches("field 'max_wait': bad duration 'soon'", out)
  end)

  it("max_age may not be shorter than the ttl", function()
    agent.write(dir .. "/x.lua", "health.check { name = 'x', ttl = '5s', max_age = '2s', run = function() return true end }\n")
    local rc, out = agent.run("--scripts " .. dir .. " --listen 127.0.0.1:19999")
    assert.equal(2, rc)
    assert.equal("healthagent: " .. dir .. "/x.lua:1: health.check: field 'max_age' (2s) must not be shorter than the ttl (5s)\n", out)
  end)
end)
