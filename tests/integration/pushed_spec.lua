-- Checks the application pushes (health.push): INIT until the first report;
-- a report through PUT /-/checks/<name>, `healthagent report` or
-- health.report is applied before its 2xx, so the next probe shows it; no
-- report within ttl reads DOWN "no report for <ttl>"; a report survives a
-- reload; a bad report is answered 4xx with one line and changes nothing.
local agent = require "helpers.agent"

local MARGIN = 0.6 -- scheduling noise of a loaded 2-core machine
local TOKEN = agent.ADMIN_TOKEN

local wait_until = agent.wait_until

local function start(opts)
  local a = agent.start(opts)
  finally(function() if a:alive() then a:kill() end end)
  return a
end

local SRC = [[
health.push { name = "app-worker", ttl = "TTL", probes = { "readiness" } }
health.check { name = "ok", ttl = "1h", run = function() return true, "fine" end }
-- report from Lua each time a probe runs them (GET /startupz/reporter);
-- their first, automatic run at load does nothing
health.check { name = "reporter", probes = { "startup" }, ttl = 0, run = function(ctx)
  if ctx.attempt > 1 then health.report("app-worker", "WARN", "from lua") end
  return true
end }
health.check { name = "misuser", probes = { "startup" }, ttl = 0, run = function(ctx)
  if ctx.attempt > 1 then health.report("ok", "UP") end
  return true
end }
]]
local SCRIPTS = { ["a.lua"] = (SRC:gsub("TTL", "1500ms")) }
local LONG = { ["a.lua"] = (SRC:gsub("TTL", "1h")) } -- no deadline within the test

local function put(a, name, body, opts)
  opts = opts or {}
  opts.method = "PUT"
  opts.body = body
  return a:request("/-/checks/" .. name, opts)
end

-- The pushed check as /readyz/app-worker shows it (trusted: with output).
local function shown(a)
  return a:get("/readyz/app-worker").json
end

describe("a pushed check", function()
  it("is INIT until the first report, shows each report on the next probe, and reads DOWN after ttl without one", function()
    local a = start { scripts = SCRIPTS, config = [[return { shutdown_delay = 0 }]] }
    local r = a:get("/readyz")
    assert.equal(503, r.status)
    assert.equal("INIT", r.json.components["app-worker"].status)
    assert.equal(200, a:get("/livez").status) -- INIT does not fail liveness
    -- PUT: 200 once applied; the very next probe shows it
    local t0 = health.now()
    r = put(a, "app-worker", '{"status":"UP","output":"queue drained"}')
    assert.equal(200, r.status, r.body)
    assert.same({ name = "app-worker", reported = "UP", status = "UP", reports = 1 }, r.json)
    local s = shown(a)
    assert.equal("UP", s.status)
    assert.equal("queue drained", s.output)
    assert.equal(200, a:get("/readyz").status)
    -- held within the ttl (1.5 s) ...
    health.sleep(1.0 - (health.now() - t0))
    assert.equal("UP", shown(a).status)
    -- ... DOWN "no report for 1500ms" once it passes, on time
    assert.is_true(wait_until(function() return shown(a).status == "DOWN" end, 3))
    local took = health.now() - t0
    assert.is_true(took >= 1.45 and took < 1.5 + MARGIN, ("expired after %.3f s"):format(took))
    s = shown(a)
    assert.equal("no report for 1500ms", s.output)
    r = a:get("/readyz?verbose")
    assert.truthy(r.body:find("[-]app-worker failed: no report for 1500ms\n", 1, true), r.body)
    -- a new report brings it back at once
    assert.equal(200, put(a, "app-worker", '{"status":"UP"}').status)
    assert.equal("UP", shown(a).status)
    a:stop()
    assert.truthy(a:log():find("[app-worker] UP -> DOWN: no report for 1500ms", 1, true), a:log())
  end)

  it("takes reports from `healthagent report` (config file, HEALTHAGENT_TOKEN, HEALTHAGENT_TOKEN_FILE) and from health.report", function()
    local a = start { scripts = SCRIPTS, config = [[return { shutdown_delay = 0 }]] }
    local cfg = a.dir .. "/cli.lua"
    agent.write(cfg, ('return { listen = { "127.0.0.1:%d" } }'):format(a.port))
    -- the token from the environment, the address from the config file
    local code, out = agent.run(("report --config %s app-worker DOWN 'queue stuck: 42 jobs'"):format(agent.quote(cfg)),
      "HEALTHAGENT_TOKEN=" .. TOKEN)
    assert.equal(0, code, out)
    assert.equal("", out)
    local s = shown(a)
    assert.equal("DOWN", s.status)
    assert.equal("queue stuck: 42 jobs", s.output)
    -- the token from a file
    local tf = a.dir .. "/token"
    agent.write(tf, TOKEN .. "\n")
    code, out = agent.run(("report --config %s app-worker UP"):format(agent.quote(cfg)), "HEALTHAGENT_TOKEN_FILE=" .. tf)
    assert.equal(0, code, out)
    s = shown(a)
    assert.equal("UP", s.status)
    assert.is_nil(s.output)
    -- the token and the address from the config file, no environment
    local cfg2 = a.dir .. "/cli2.lua"
    agent.write(cfg2, ('return { listen = { "0.0.0.0:%d" }, token = %q }'):format(a.port, TOKEN))
    code, out = agent.run(("report --config %s app-worker WARN slow"):format(agent.quote(cfg2)))
    assert.equal(0, code, out)
    assert.equal("WARN", shown(a).status)
    assert.equal("slow", shown(a).output)
    -- Lua: a check's run reports it
    assert.equal(200, a:get("/startupz/reporter").status)
    s = shown(a)
    assert.equal("WARN", s.status)
    assert.equal("from lua", s.output)
    -- misuse raises, at the caller's line: the reporting check fails
    local m = a:get("/startupz/misuser")
    assert.equal(503, m.status)
    assert.matches("'ok' is not a pushed check", m.json.output, 1, true)
    a:stop()
  end)

  it("keeps its last report and its deadline across a reload", function()
    local a = start { scripts = SCRIPTS, config = [[return { shutdown_delay = 0 }]] }
    local gen = a:get("/-/status").json.generation
    local t0 = health.now()
    assert.equal(200, put(a, "app-worker", '{"status":"UP","output":"before the reload"}').status)
    agent.write(a.scripts .. "/b.lua", 'health.check { name = "new", ttl = "1h", run = function() return true end }\n')
    assert.equal(202, a:request("/-/reload", { method = "POST" }).status)
    assert.is_true(wait_until(function() return a:get("/-/status").json.generation == gen + 1 end, 5), a:log())
    local s = shown(a)
    assert.equal("UP", s.status)
    assert.equal("before the reload", s.output)
    -- the deadline counts from the report, not from the reload
    assert.is_true(wait_until(function() return shown(a).status == "DOWN" end, 3))
    local took = health.now() - t0
    assert.is_true(took >= 1.45 and took < 1.5 + MARGIN, ("expired after %.3f s"):format(took))
    a:stop()
  end)
end)

-- An agent whose app-worker reads UP "before" and whose engine is then held
-- inside one C call (a backtracking find over n bytes, within timeout) by
-- the probe of a check "spin"; max_wait bounds that probe's answer.
local function busy_engine(n, timeout, max_wait)
  local a = start {
    scripts = { ["a.lua"] = LONG["a.lua"] .. ([[
health.check { name = "spin", probes = { "startup" }, ttl = 0, timeout = "%s", run = function(ctx)
  if ctx.attempt > 1 then ("a"):rep(%d):find(".-.-b") end
  return true
end }
]]):format(timeout, n) },
    config = ([[return { shutdown_delay = 0, max_wait = "%s" }]]):format(max_wait),
  }
  assert.equal(200, put(a, "app-worker", '{"status":"UP","output":"before"}').status)
  a:get("/startupz/spin") -- answered after max_wait; the engine now spins
  return a
end

describe("a report the engine cannot apply in time", function()
  it("is answered 503 saying so within max_wait, and applies once the engine turns again", function()
    local a = busy_engine(800, "20s", "150ms")
    local r = put(a, "app-worker", '{"status":"DOWN","output":"while busy"}')
    assert.equal(503, r.status, r.body)
    assert.is_true(r.time < 0.15 + MARGIN, r.time)
    assert.same({ error = "the engine has not applied the report within max_wait (stalled or busy): it may still apply it; report again" }, r.json)
    assert.equal("before", shown(a).output) -- not applied yet, as the 503 said
    assert.is_true(wait_until(function() return shown(a).output == "while busy" end, 20), a:get("/readyz").body)
    assert.equal("DOWN", shown(a).status)
    a:stop()
  end)
end)

describe("reports and overrides the engine is behind on", function()
  it("queue 256 at most: the next get a 503 saying nothing was queued, and nothing changes", function()
    local a = busy_engine(1200, "60s", "100ms")
    local out = agent.sh(("curl -s --parallel --parallel-max 40 --max-time 20 -X PUT -H %s --data-binary %s -w '\\n' %s")
      :format(agent.quote("Authorization: Bearer " .. TOKEN), agent.quote('{"status":"DOWN","output":"flood"}'),
        agent.quote(("http://127.0.0.1:%d/-/checks/app-worker?n=[1-300]"):format(a.port))))
    local _, waited = out:gsub("has not applied the report within max_wait", "")
    local _, stalled = out:gsub("the engine is stalled: the report is queued", "")
    local _, refused = out:gsub("256 reports and overrides are waiting for the engine %(stalled or busy%): this one was not queued", "")
    assert.equal(256, waited + stalled, out:sub(1, 400))
    assert.equal(44, refused, out:sub(1, 400))
    local r = a:request("/-/ready", { method = "PUT", body = '{"ready":false,"reason":"x"}' })
    assert.equal(503, r.status, r.body)
    assert.truthy(r.json.error:find("this one was not queued", 1, true), r.body)
    assert.equal("before", shown(a).output) -- none applied yet
    -- the engine turns: the queued reports apply, and the queue takes reports again
    assert.is_true(wait_until(function() return shown(a).output == "flood" end, 60), a:get("/readyz").body)
    assert.is_true(wait_until(function()
      return put(a, "app-worker", '{"status":"UP","output":"after"}').status == 200
    end, 10))
    assert.equal("after", shown(a).output)
    assert.equal(200, a:request("/-/ready", { method = "PUT", body = '{"ready":true}' }).status)
    a:stop()
  end)
end)

describe("a bad report", function()
  it("is answered 4xx with a one-line message and changes nothing; `healthagent report`: refused reports exit 1, bad usage 2, no agent 3", function()
    local a = start { scripts = LONG, config = [[return { shutdown_delay = 0 }]] }
    assert.equal(200, put(a, "app-worker", '{"status":"UP","output":"good"}').status)
    local before = a:get("/readyz/app-worker").body
    local ok_before = a:get("/readyz/ok").body
    local big = ('{"status":"DOWN","output":"%s"}'):format(("x"):rep(1025))
    for _, case in ipairs {
      { "nope", '{"status":"DOWN"}', {}, 404, "no check named 'nope'" },
      { "ok", '{"status":"DOWN"}', {}, 409, "'ok' is not a pushed check: it runs its own script (declare it with health.push)" },
      { "app-worker", '{"status":"down"}', {}, 400, '"status" must be "UP", "WARN" or "DOWN"' },
      { "app-worker", '{"status":"FAIL"}', {}, 400, '"status" must be "UP", "WARN" or "DOWN"' },
      { "app-worker", '{"output":"x"}', {}, 400, 'missing field "status"' },
      { "app-worker", big, {}, 413, '"output" is longer than 1024 bytes' },
      { "app-worker", '{"status":"DOWN"', {}, 400, "malformed JSON" },
      { "app-worker", 'DOWN', {}, 400, 'expected a JSON object like {"status":"UP","output":"queue drained"}' },
      { "app-worker", '{"status":"DOWN","extra":1}', {}, 400, 'unknown field: only "status" and "output" are accepted' },
      { "app-worker", '{"status":"DOWN","output":7}', {}, 400, '"output" must be a string' },
      { "app-worker", '{"status":"DOWN"} x', {}, 400, "trailing data after the JSON object" },
      { "app-worker", '{"status":"UP","status":"DOWN"}', {}, 400, '"status" is given twice' },
      { "app-worker", '{"status":"DOWN"}', { token = false }, 401, nil },
      { "app-worker", '{"status":"DOWN"}', { headers = { Authorization = "Bearer wrong-token-0123456789" } }, 401, nil },
      { "app-worker", '{"status":"DOWN"}', { method = "POST" }, 405, "method not allowed" },
    } do
      local opts = case[3]
      local r
      if opts.method then
        r = a:request("/-/checks/" .. case[1], { method = opts.method, body = case[2] })
      else
        r = put(a, case[1], case[2], opts)
      end
      assert.equal(case[4], r.status, case[2] .. ": " .. r.body)
      if case[5] then
        assert.same({ error = case[5] }, r.json, r.body)
        assert.equal(1, select(2, r.body:gsub("\n", "")), "one line: " .. r.body)
      else
        assert.equal("", r.body)
      end
      assert.equal(before, a:get("/readyz/app-worker").body, "changed by " .. case[2])
      assert.equal(ok_before, a:get("/readyz/ok").body, "changed by " .. case[2])
    end
    -- the command: refused reports exit 1 with the agent's reason, bad usage
    -- 2, no agent 3; nothing changes either
    local env = "HEALTHAGENT_TOKEN=" .. TOKEN .. " HEALTHAGENT_LISTEN=127.0.0.1:" .. a.port
    for _, case in ipairs {
      { "report nope UP", 1, "healthagent report: nope: HTTP 404: no check named 'nope'\n" },
      { "report ok UP", 1, "healthagent report: ok: HTTP 409: 'ok' is not a pushed check" },
      { "report app-worker up", 2, "healthagent report: STATUS must be UP, WARN or DOWN, not 'up'\n" },
      { "report app-worker", 2, "healthagent report: expected NAME and STATUS (see --help)\n" },
      { "report app-worker DOWN " .. ("x"):rep(1025), 2, "healthagent report: MESSAGE is longer than 1024 bytes\n" },
      { "report 'bad name' DOWN", 2, "is not a check name" },
      { "report '' DOWN", 2, "healthagent report: NAME '' is not a check name" },
      { "report .. DOWN", 2, "healthagent report: NAME '..' is not a check name" },
      { "report " .. ("n"):rep(129) .. " DOWN", 2, "healthagent report: NAME '" .. ("n"):rep(129) .. "' is not a check name" },
      { "report app-worker DOWN --url http://127.0.0.1:1", 3, "healthagent report: connect: connection refused\n" },
    } do
      local code, out = agent.run(case[1], env)
      assert.equal(case[2], code, case[1] .. ": " .. out)
      assert.truthy(out:find(case[3], 1, true), case[1] .. ": " .. out)
      assert.equal(before, a:get("/readyz/app-worker").body, "changed by " .. case[1])
    end
    local code, out = agent.run("report app-worker DOWN", "HEALTHAGENT_TOKEN=wrong-token-0123456789 HEALTHAGENT_LISTEN=127.0.0.1:" .. a.port)
    assert.equal(1, code, out)
    assert.equal("healthagent report: app-worker: HTTP 401: the token was refused\n", out)
    code, out = agent.run("report app-worker DOWN", "HEALTHAGENT_LISTEN=127.0.0.1:" .. a.port)
    assert.equal(2, code, out)
    assert.truthy(out:find("no token", 1, true), out)
    assert.equal(before, a:get("/readyz/app-worker").body)
    a:stop()
  end)

  it("at load time: health.push refuses run, a missing or zero ttl and unknown fields at file:line", function()
    for _, case in ipairs {
      { 'health.push { name = "p" }\n', "a.lua:1: health.push: field 'ttl' is required" },
      { 'health.push { name = "p", ttl = "0s" }\n', "a.lua:1: health.push: field 'ttl' must be greater than zero" },
      { 'health.push { name = "p", ttl = 1, run = function() end }\n', "a.lua:1: health.push: unknown field 'run'" },
      { 'health.push { name = "p", ttl = 1, depends_on = { "x" } }\n', "a.lua:1: health.push: unknown field 'depends_on'" },
      -- PUT /-/checks/.. would be resolved to /-/ before it reached the handler
      { 'health.push { name = "..", ttl = 1 }\n', "a.lua:1: health.push: field 'name' must be 1 to 128 characters of [A-Za-z0-9_.-], not . or .." },
      { 'health.check { name = "p", run = function() return true end }\nhealth.push { name = "p", ttl = 1 }\n',
        "a.lua:2: health.push: duplicate check name 'p'" },
    } do
      local d = agent.tmpdir()
      agent.write(d .. "/a.lua", case[1])
      local code, out = agent.run("lint " .. agent.quote(d))
      assert.equal(1, code, out)
      assert.truthy(out:find(case[2], 1, true), out)
      agent.sh("rm -rf " .. agent.quote(d))
    end
  end)
end)
