-- Black-box tests of the probe endpoints: start the real binary with
-- fixture scripts and a config, send real HTTP requests, assert on status,
-- body and log lines.
local agent = require "helpers.agent"

local FIXTURE = {
  ["main.lua"] = [[
health.check { name = "up", probes = { "liveness", "readiness" }, ttl = "1h", run = function()
  return true, "all good", { answer = 42 } end }
health.check { name = "warned", probes = { "readiness" }, ttl = "1h", run = function()
  return health.warn("running hot", { temp = 80 }) end }
health.check { name = "soft", probes = { "readiness" }, critical = false, ttl = "1h", run = function()
  return false, "optional cache down" end }
health.check { name = "starter", probes = { "startup" }, ttl = "1h", run = function() return true, "started" end }
]],
  ["bad.lua"] = [[
health.check { name = "broken", probes = { "liveness" }, ttl = "1h", run = function()
  return false, "disk \"full\"\nsecond line" end }
]],
}

local wait_until = agent.wait_until

describe("probe endpoints", function()
  local a
  setup(function()
    a = agent.start {
      scripts = FIXTURE,
      config = [[return {
        shutdown_delay = 0,
        token = "s3cret-0123456789abcdef",
        probes = {
          readiness = { paths = { "/health/ready", "/actuator/health/readiness" } },
          liveness = { paths = { "/health/live", "/actuator/health/liveness" } },
          health = { paths = { "/actuator/health" } },
          startup = { success_status = 204 },
        },
      }]],
    }
    assert.is_true(wait_until(function() return a:get("/readyz").status ~= 503 or a:get("/livez").status == 503 end))
    assert.is_true(wait_until(function()
      local r = a:get("/healthz")
      return r.json and r.json.components.up.status == "UP" and r.json.components.broken.status == "DOWN"
    end))
  end)
  teardown(function() a:stop() end)

  it("/readyz takes the worst critical check: WARN is 200", function()
    local r = a:get("/readyz")
    assert.equal(200, r.status)
    assert.equal("application/json", r.headers["content-type"])
    assert.equal("no-store", r.headers["cache-control"])
    assert.equal("WARN", r.json.status)
    assert.equal("UP", r.json.components.up.status)
    assert.equal("all good", r.json.components.up.output)
    assert.same({ answer = 42 }, r.json.components.up.details)
    assert.is_number(r.json.components.up.duration_ms)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", r.json.components.up.time)
    assert.equal("WARN", r.json.components.warned.status)
    -- a failing non-critical check shows as WARN and does not fail the probe
    assert.equal("WARN", r.json.components.soft.status)
    assert.equal("optional cache down", r.json.components.soft.output)
    assert.is_nil(r.json.components.broken)
  end)

  it("/livez fails when a critical liveness check is DOWN", function()
    local r = a:get("/livez")
    assert.equal(503, r.status)
    assert.equal("DOWN", r.json.status)
    assert.equal('disk "full"\nsecond line', r.json.components.broken.output)
  end)

  it("/healthz covers every check", function()
    local r = a:get("/healthz")
    assert.equal(503, r.status)
    local names = {}
    for k in pairs(r.json.components) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ "broken", "soft", "starter", "up", "warned" }, names)
  end)

  it("/startupz uses its configured success code", function()
    local r = a:get("/startupz")
    assert.equal(204, r.status)
    assert.equal("", r.body)
  end)

  it("serves the configured extra paths", function()
    assert.equal(200, a:get("/health/ready").status)
    assert.equal(200, a:get("/actuator/health/readiness").status)
    assert.equal(503, a:get("/health/live").status)
    assert.equal(503, a:get("/actuator/health/liveness").status)
    assert.equal(503, a:get("/actuator/health").status)
    assert.equal("WARN", a:get("/actuator/health/readiness").json.status)
  end)

  it("answers one check at /<probe>/<check>", function()
    local r = a:get("/readyz/up")
    assert.equal(200, r.status)
    assert.same({ status = "UP", output = "all good", details = { answer = 42 } },
      { status = r.json.status, output = r.json.output, details = r.json.details })
    assert.equal(503, a:get("/livez/broken").status)
    local miss = a:get("/readyz/broken") -- exists, but not a readiness check
    assert.equal(404, miss.status)
    assert.equal(404, a:get("/readyz/nosuch").status)
  end)

  it("?verbose gives the kube-apiserver text", function()
    local r = a:get("/livez?verbose", { interface = "127.0.0.1" })
    assert.equal(503, r.status)
    assert.matches("^text/plain", r.headers["content-type"])
    assert.equal('[-]broken failed: disk "full" second line\n[+]up ok\nlivez check failed\n', r.body)
  end)

  it("?exclude leaves checks out", function()
    local r = a:get("/livez?exclude=broken")
    assert.equal(200, r.status)
    assert.equal("UP", r.json.status)
    assert.is_nil(r.json.components.broken)
    r = a:get("/readyz?exclude=warned&exclude=soft&verbose")
    assert.equal("[+]up ok\nreadyz check passed\n", r.body)
  end)

  it("speaks application/health+json when asked", function()
    local r = a:get("/livez", { headers = { Accept = "application/health+json" } })
    assert.equal(503, r.status)
    assert.equal("application/health+json", r.headers["content-type"])
    assert.equal("fail", r.json.status)
    assert.equal("fail", r.json.checks["broken:responseTime"][1].status)
    assert.equal("pass", r.json.checks["up:responseTime"][1].status)
    assert.equal("up", r.json.checks["up:responseTime"][1].componentId)
  end)

  it("answers HEAD without a body and refuses other methods", function()
    local r = a:get("/readyz", { method = "HEAD" })
    assert.equal(200, r.status)
    assert.equal("", r.body)
    r = a:get("/readyz", { method = "POST" })
    assert.equal(405, r.status)
    assert.equal("GET, HEAD", r.headers["allow"])
    assert.equal("method not allowed", r.json.error)
    assert.equal(405, a:get("/livez", { method = "DELETE" }).status)
  end)

  it("refuses request bodies on probes", function()
    local r = a:get("/readyz", { method = "GET", body = "x" })
    assert.equal(413, r.status)
  end)

  it("answers unknown paths with a JSON 404", function()
    local r = a:get("/nope")
    assert.equal(404, r.status)
    assert.equal("not found", r.json.error)
  end)

  it("upgrades HTTP/1.1 to h2c", function()
    local out = agent.sh(("curl -s --http2 -o /dev/null -w '%%{http_version} %%{http_code}' http://127.0.0.1:%d/readyz"):format(a.port))
    assert.equal("2 200", out)
  end)

  it("speaks HTTP/2 with prior knowledge", function()
    local r = a:get("/readyz", { http2 = true })
    assert.equal(200, r.status)
    assert.equal("WARN", r.json.status)
  end)
end)

describe("details policy", function()
  local a
  setup(function()
    a = agent.start {
      scripts = { ["a.lua"] = [[health.check { name = "c", ttl = "1h", run = function() return false, "secret reason", { k = 1 } end }]] },
      config = [[return { shutdown_delay = 0, token = "tok-123-0123456789abc", trusted_networks = { "127.0.0.1/32" } }]],
    }
    assert.is_true(wait_until(function() return a:get("/readyz").json.components.c.status == "DOWN" end))
  end)
  teardown(function() a:stop() end)

  it("shows outputs and details to trusted clients", function()
    local r = a:get("/readyz", { interface = "127.0.0.1" })
    assert.equal("secret reason", r.json.components.c.output)
    assert.same({ k = 1 }, r.json.components.c.details)
  end)

  it("shows names and statuses only to other clients", function()
    local r = a:get("/readyz", { interface = "127.0.0.2" })
    assert.equal(503, r.status)
    assert.same({ status = "DOWN", components = { c = { status = "DOWN" } } }, r.json)
    r = a:get("/readyz?verbose", { interface = "127.0.0.2" })
    assert.equal("[-]c failed: reason withheld\nreadyz check failed\n", r.body)
    r = a:get("/readyz", { interface = "127.0.0.2", headers = { Accept = "application/health+json" } })
    assert.is_nil(r.json.checks["c:responseTime"][1].output)
  end)

  it("shows everything to a client with the bearer token", function()
    local r = a:get("/readyz", { interface = "127.0.0.2", headers = { Authorization = "Bearer tok-123-0123456789abc" } })
    assert.equal("secret reason", r.json.components.c.output)
    r = a:get("/readyz", { interface = "127.0.0.2", headers = { Authorization = "Bearer wrong" } })
    assert.is_nil(r.json.components.c.output)
  end)
end)

describe("running checks on demand", function()
  local a, counter
  setup(function()
    local dir = agent.tmpdir()
    counter = dir .. "/runs"
    a = agent.start {
      scripts = { ["a.lua"] = ([[
local counter = %q
health.check { name = "slow", ttl = "1s", timeout = "2s", run = function()
  print("run of slow") -- scripts cannot write files: the log counts the runs
  health.sleep(0.3)
  return true, "done"
end }
health.check { name = "hang", probes = { "liveness" }, ttl = "100ms", timeout = "400ms", run = function()
  health.sleep(10)
end }
]]):format(counter) },
      config = [[return { shutdown_delay = 0, log_level = "debug" }]],
    }
  end)
  teardown(function() a:stop() end)

  local function runs() return select(2, a:log():gsub("run of slow", "")) end

  it("answers INIT 503 until the first result, then UP", function()
    -- the first run started at load and takes 0.3 s: an early probe waits for it
    local r = a:get("/readyz")
    assert.equal(200, r.status)
    assert.equal("done", r.json.components.slow.output)
  end)

  it("shares one run among concurrent probes of a stale check", function()
    assert.is_true(wait_until(function() return not (a:get("/readyz").json.components.slow.output ~= "done") end))
    health.sleep(1.05) -- let the result go stale; 20 curls then start within its ttl
    local before = runs()
    local codes = a:parallel("/readyz", 20)
    if runs() ~= before + 1 then print(before, runs(), a:log()) end
    assert.equal(20, #codes)
    for _, c in ipairs(codes) do assert.equal(200, c) end
    assert.equal(before + 1, runs())
  end)

  it("answers a hanging check at its timeout with DOWN", function()
    health.sleep(0.15)
    local r = a:get("/livez")
    assert.equal(503, r.status)
    assert.equal("timeout after 400ms", r.json.components.hang.output)
    assert.is_true(r.time < 1.0, "probe took " .. r.time)
  end)
end)

describe("start-up", function()
  it("/livez answers at once while liveness checks have no result; readiness answers INIT within max_wait", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
health.check { name = "slowlive", probes = { "liveness" }, timeout = "3s", run = function() health.sleep(1) return true, "alive" end }
health.check { name = "slowready", probes = { "readiness" }, timeout = "3s", run = function() health.sleep(1) return true end }
]] },
      config = [[return { shutdown_delay = 0, max_wait = "300ms" }]],
    }
    local r = a:get("/livez")
    assert.equal(200, r.status)
    assert.equal("INIT", r.json.components.slowlive.status)
    assert.is_true(r.time < 0.25, "/livez took " .. r.time)
    r = a:get("/readyz")
    assert.equal(503, r.status)
    assert.equal("INIT", r.json.components.slowready.status)
    assert.is_true(r.time > 0.25 and r.time < 0.3 + 0.4, "/readyz should wait max_wait, took " .. r.time)
    assert.is_true(wait_until(function() return a:get("/readyz").status == 200 end, 3))
    assert.equal("alive", a:get("/livez").json.components.slowlive.output)
    a:stop()
  end)
end)

describe("probes while checks refresh, overrides, secrets and a stuck engine", function()
  it("serves a fresh result while a background refresh runs", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
health.check { name = "slowint", interval = "200ms", ttl = "1h", timeout = "5s", run = function()
  health.sleep(2) return true, "ok" end }
]] },
      config = [[return { shutdown_delay = 0, max_wait = "3s" }]],
    }
    finally(function() a:stop() end)
    assert.is_true(wait_until(function() return a:get("/readyz").status == 200 end, 5)) -- the first result
    local worst = 0
    for _ = 1, 15 do
      for _, path in ipairs { "/readyz", "/readyz/slowint", "/readyz?exclude=x" } do
        local r = a:get(path)
        assert.equal(200, r.status)
        if r.time > worst then worst = r.time end
      end
      health.sleep(0.05)
    end
    -- one that waited for the 2 s refresh would take a second on average
    assert.is_true(worst < 0.8, "a probe waited for a refresh: " .. worst .. " s")
  end)

  it("an override shows on the very next probe", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[health.check { name = "c", ttl = "1h", run = function() return true end }]] },
      config = [[return { shutdown_delay = 0 }]],
    }
    assert.equal(200, a:get("/readyz").status)
    for i = 1, 10 do
      assert.equal(200, a:request("/-/drain", { method = "POST" }).status)
      local r = a:get("/readyz")
      assert.equal(503, r.status, "round " .. i)
      assert.equal("draining", r.json.reason)
      assert.equal(200, a:request("/-/ready", { method = "PUT", body = '{"ready":true}' }).status)
      assert.equal(200, a:get("/readyz").status, "round " .. i)
    end
    a:stop()
  end)

  it("hides the token from scripts", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[health.check { name = "c", ttl = "1h", run = function()
        return true, tostring(os.getenv("HEALTHAGENT_TOKEN")) end }]] },
      config = [[return { shutdown_delay = 0 }]],
      env = "HEALTHAGENT_TOKEN=sekrit-0123456789abcdef",
    }
    local r = a:get("/readyz/c", { headers = { Authorization = "Bearer sekrit-0123456789abcdef" } })
    assert.equal("nil", r.json.output)
    a:stop()
  end)

  it("exits at shutdown_timeout when a script holds the engine inside C", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
health.check { name = "ok", probes = { "liveness" }, ttl = "1h", run = function() return true end }
health.check { name = "stuck", timeout = "30s", initial_delay = "200ms", run = function()
  ("a"):rep(400):find(".-.-.-b") return true end }
]] },
      config = [[return { shutdown_delay = 0, shutdown_timeout = "1s", watchdog = "500ms" }]],
    }
    assert.is_true(wait_until(function() return a:get("/livez").status == 503 end, 5)) -- stuck now
    local t0 = health.now()
    a:signal("TERM")
    local code = a:wait_exit(8)
    local took = health.now() - t0
    assert.is_not_nil(code, "still running " .. took .. " s after SIGTERM")
    assert.is_true(took < 4, "took " .. took)
    assert.is_true(a:log():find("engine did not stop within 1s", 1, true) ~= nil)
    a:stop()
  end)
end)

describe("watchdog", function()
  -- the engine thread's voluntary context switches: each one is a wake-up
  -- that ended in a sleep (a thread asleep in poll has no other kind)
  local function engine_switches(pid)
    local p = io.popen("grep -l '^ha-engine$' /proc/" .. pid .. "/task/*/comm 2>/dev/null | sort -t/ -k5 -n | head -n 1")
    local comm = p:read("l")
    p:close()
    local status = comm and agent.read((comm:gsub("comm$", "status"))) or ""
    return tonumber(status:match("voluntary_ctxt_switches:%s*(%d+)"))
  end

  it("leaves an engine with nothing due asleep: the front's looks do not wake it", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
health.check { name = "ok", probes = { "liveness", "readiness" }, ttl = "1h", run = function() return true end }
]] },
      config = [[return { shutdown_delay = 0, watchdog = "500ms" }]], -- the front looks every 500 ms
    }
    assert.equal(200, a:get("/livez").status)
    health.sleep(0.3) -- the first run's publication and log are behind
    local before = engine_switches(a.pid)
    assert.is_not_nil(before, "no engine thread found")
    health.sleep(2) -- four looks of the watchdog
    local after = engine_switches(a.pid)
    assert.equal(0, after - before, "the engine woke " .. (after - before) .. " times with nothing to do")
    assert.equal(200, a:get("/livez").status) -- and the watchdog did not mistake sleep for a stall
    a:stop()
  end)

  -- the front thread is the process's first: its wake-ups are snapshots,
  -- the watchdog's looks and requests
  local function front_switches(pid)
    local status = agent.read("/proc/" .. pid .. "/task/" .. pid .. "/status") or ""
    return tonumber(status:match("voluntary_ctxt_switches:%s*(%d+)"))
  end

  it("wakes the front once for a short run, and shows a long one running", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "short", probes = { "liveness" }, interval = "100ms", run = function()
  n = n + 1
  health.sleep(0.01) -- as the bundled engine check does
  return true, tostring(n)
end }
health.check { name = "long", probes = {}, interval = "1h", timeout = "10s", initial_delay = "2500ms", run = function()
  health.sleep(1)
  return true, "long done"
end }
]] },
      config = [[return { shutdown_delay = 0, watchdog = "500ms" }]],
    }
    finally(function() a:stop() end)
    assert.equal(200, a:get("/livez").status)
    local function runs() return tonumber(a:get("/healthz/short").json.output) end
    local r0, before = runs(), front_switches(a.pid)
    health.sleep(2)
    local r1, after = runs(), front_switches(a.pid)
    local woke, ran = after - before, r1 - r0
    assert.is_true(ran >= 10, "only " .. ran .. " runs in 2 s")
    -- one snapshot per run (its result), four looks of the watchdog, the
    -- two requests above; a publication at each start as well would be 2 x ran
    assert.is_true(woke <= ran + 4 + 2 + 5, ("the front woke %d times for %d runs"):format(woke, ran))
    local long
    assert.is_true(wait_until(function()
      for _, c in ipairs(a:get("/-/status").json.check_states) do
        if c.name == "long" then long = c end
      end
      return long.running
    end, 5), "the long run was never shown running")
    assert.equal("INIT", long.status)
    assert.is_true(wait_until(function() return a:get("/healthz/long").json.output == "long done" end, 5))
  end)

  it("fails /livez while the engine is stuck inside C, keeps answering, and recovers", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
health.check { name = "ok", probes = { "liveness", "readiness" }, ttl = "1h", run = function() return true end }
health.check { name = "stuck", probes = { "readiness" }, timeout = "60s", ttl = "1h", initial_delay = "300ms", run = function()
  ("a"):rep(270):find(".-.-.-b")
  return true, "back"
end }
]] },
      config = [[return { shutdown_delay = 0, watchdog = "500ms" }]],
    }
    assert.equal(200, a:get("/livez").status)
    local stalled
    assert.is_true(wait_until(function()
      stalled = a:get("/livez")
      return stalled.status == 503
    end, 5))
    assert.matches("^engine stalled for %d+s$", stalled.json.reason)
    local t0 = health.now()
    local r = a:get("/readyz")
    assert.is_true(health.now() - t0 < 0.5, "probes must keep being answered")
    assert.equal(503, r.status)
    assert.equal("DOWN", r.json.components.stuck.status)
    assert.matches("^timeout", r.json.components.stuck.output)
    -- the find takes seconds, more on a loaded machine (past its timeout it would read timeout)
    assert.is_true(wait_until(function() return a:get("/livez").status == 200 end, 40))
    assert.is_true(wait_until(function() return a:get("/readyz/stuck").json.output == "back" end, 5))
    assert.is_true(a:log():find("engine stalled for", 1, true) ~= nil)
    assert.is_true(a:log():find("engine recovered", 1, true) ~= nil)
    a:stop()
  end)
end)

describe("start-up errors", function()
  local dir
  before_each(function() dir = agent.tmpdir() end)
  after_each(function() agent.sh("rm -rf " .. agent.quote(dir)) end)

  local function one_line(out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    return lines
  end

  it("a script that fails to load: file:line on one line, exit 2", function()
    agent.write(dir .. "/x.lua", "health.check { name = 'x', timeout = 'soon', run = function() end }\n")
    local rc, out = agent.run("--scripts " .. dir .. " --listen 127.0.0.1:19999")
    assert.equal(2, rc)
    local lines = one_line(out)
    assert.equal(1, #lines)
    assert.equal("healthagent: " .. dir .. "/x.lua:1: health.check: field 'timeout': bad duration 'soon' " ..
      "(use seconds or \"250ms\", \"2s\", \"1m\")", lines[1])
  end)

  it("an unreadable scripts directory", function()
    local rc, out = agent.run("--scripts " .. dir .. "/missing --listen 127.0.0.1:19999")
    assert.equal(2, rc)
    assert.equal("healthagent: " .. dir .. "/missing: cannot read scripts directory: No such file or directory\n", out)
  end)

  it("unknown config keys and bad values name the field", function()
    agent.write(dir .. "/c.lua", "return { lisen = '1.2.3.4:80' }")
    local rc, out = agent.run("--config " .. dir .. "/c.lua")
    assert.equal(2, rc)
    assert.equal("healthagent: " .. dir .. "/c.lua: unknown key 'lisen'\n", out)
    agent.write(dir .. "/c.lua", "return { watchdog = 'abc' }")
    rc, out = agent.run("--config " .. dir .. "/c.lua")
    assert.equal(2, rc)
    assert.matches("c.lua: field 'watchdog': bad duration 'abc'", out)
  end)

  it("a port in use", function()
    local a = agent.start { scripts = { ["a.lua"] = "" }, config = "return { shutdown_delay = 0 }" }
    local rc, out = agent.run("--scripts " .. a.scripts .. " --listen 127.0.0.1:" .. a.port)
    a:stop()
    assert.equal(2, rc)
    assert.equal("healthagent: listen 127.0.0.1:" .. a.port .. ": address already in use\n", out)
  end)

  it("bad command-line options", function()
    local rc, out = agent.run("--frobnicate")
    assert.equal(2, rc)
    assert.equal("healthagent: unknown option '--frobnicate' (see --help)\n", out)
    rc, out = agent.run("--log-format xml")
    assert.equal(2, rc)
    rc, out = agent.run("--version")
    assert.equal(0, rc)
    assert.matches("^healthagent %d+%.%d+%.%d+", out)
  end)
end)

describe("logs", function()
  it("writes one JSON object per line with --log-format json", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[health.check { name = "c", ttl = "1h", run = function() return false, "nope" end }]] },
      config = "return { shutdown_delay = 0 }",
      args = { "--log-format", "json" },
    }
    assert.is_true(a:wait_log("INIT -> DOWN"))
    a:stop()
    local n = 0
    for line in a:log():gmatch("[^\n]+") do
      local obj = agent.decode(line)
      assert.is_string(obj.time)
      assert.is_string(obj.level)
      assert.is_string(obj.msg)
      n = n + 1
    end
    assert.is_true(n >= 3)
    assert.matches('"check":"c","msg":"INIT %-> DOWN: nope"', a:log())
  end)

  it("logs each status transition once", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "flip", interval = "50ms", ttl = "1h", run = function() n = n + 1 return n < 4 or n > 6 end }
]] },
      config = "return { shutdown_delay = 0 }",
    }
    assert.is_true(a:wait_log("DOWN -> UP", 5))
    a:stop()
    local log = a:log()
    local function count(s) local c = 0 for _ in log:gmatch(s) do c = c + 1 end return c end
    assert.equal(1, count("INIT %-> UP"))
    assert.equal(1, count("UP %-> DOWN"))
    assert.equal(1, count("DOWN %-> UP"))
  end)
end)
