-- Dependencies (depends_on): while a dependency is neither UP nor WARN the
-- dependent does not run and shows DOWN naming the root cause, in every
-- format; it runs again at once when the dependency recovers; chains are
-- transitive; a cycle or an unknown name is a load error at file:line that
-- keeps the old generation; a probe refreshes the stale dependencies of what
-- it covers within its own budget. Against the harness' real PostgreSQL,
-- stopped with SIGSTOP (servers.sh pause pg).
local agent = require "helpers.agent"
local harness = require "helpers.spec"

local MARGIN = 1.0 -- scheduling noise of a loaded 2-core machine

local wait_until = agent.wait_until

local function start(opts)
  local a = agent.start(opts)
  finally(function() if a:alive() then a:kill() end end)
  return a
end

local function component(a, name)
  local r = a:get("/healthz/" .. name)
  return r.json or {}, r
end

-- The run count a counting check put in its output ("runs=N"), whether it
-- shows its own output or, blocked, keeps it in details.last_output.
local function runs_of(c)
  local out = c.details and c.details.last_output or c.output or ""
  return tonumber(out:match("runs=(%d+)"))
end

describe("a chain api -> orders -> db over a stopped PostgreSQL", function()
  it("the dependents run zero times while the database is down, name the root cause in every format, and recover on the next cycle", function()
    local env = harness.env()
    local url = ("postgresql://%s:%s@127.0.0.1:%s/%s"):format(env.HA_PG_USER, env.HA_PG_PASSWORD, env.HA_PG_PORT,
      env.HA_PG_DATABASE)
    local a = start {
      scripts = { ["a.lua"] = ([[
health.checks.postgres { name = "db", url = %q, timeout = 0.5, interval = "300ms" }
local orders, api = 0, 0
health.check { name = "orders", depends_on = { "db" }, interval = "300ms", run = function()
  orders = orders + 1
  return true, "runs=" .. orders
end }
health.check { name = "api", depends_on = "orders", interval = "300ms", run = function()
  api = api + 1
  return true, "runs=" .. api
end }
]]):format(url) },
      config = [[return { shutdown_delay = 0 }]],
    }
    assert.is_true(wait_until(function() return a:get("/readyz").status == 200 end), a:log())
    finally(function() harness.server("pg", "resume") end)
    harness.server("pg", "pause")
    assert.is_true(wait_until(function()
      local c = component(a, "api")
      return c.output == "dependency db is DOWN (via orders)"
    end, 5), a:get("/healthz").body)
    local o, ap = component(a, "orders"), component(a, "api")
    local o_runs, a_runs = runs_of(o), runs_of(ap)
    assert.is_number(o_runs)
    assert.is_number(a_runs)
    assert.equal("DOWN", o.status)
    assert.equal("dependency db is DOWN", o.output)
    assert.same({ dependency = "db", via = {}, last_output = "runs=" .. o_runs }, o.details)
    assert.same({ dependency = "db", via = { "orders" }, last_output = "runs=" .. a_runs }, ap.details)
    -- many cycles later: not one run of either
    health.sleep(2)
    o, ap = component(a, "orders"), component(a, "api")
    assert.equal(o_runs, runs_of(o), "orders ran while its database was down")
    assert.equal(a_runs, runs_of(ap), "api ran while its dependency was down")
    -- every format names the root cause
    local r = a:get("/readyz")
    assert.equal(503, r.status)
    assert.equal("dependency db is DOWN", r.json.components.orders.output)
    assert.equal("dependency db is DOWN (via orders)", r.json.components.api.output)
    assert.matches("timeout after 500ms", r.json.components.db.output, 1, true)
    r = a:get("/readyz", { headers = { Accept = "application/health+json" } })
    assert.equal(503, r.status)
    assert.equal("fail", r.json.checks["api:responseTime"][1].status)
    assert.equal("dependency db is DOWN (via orders)", r.json.checks["api:responseTime"][1].output)
    assert.equal("dependency db is DOWN", r.json.checks["orders:responseTime"][1].output)
    r = a:get("/readyz?verbose")
    assert.equal(503, r.status)
    assert.truthy(r.body:find("[-]api failed: dependency db is DOWN (via orders)\n", 1, true), r.body)
    assert.truthy(r.body:find("[-]orders failed: dependency db is DOWN\n", 1, true), r.body)
    r = a:get("/readyz/api")
    assert.equal(503, r.status)
    assert.equal("dependency db is DOWN (via orders)", r.json.output)
    -- the database returns: the next db cycle (300 ms) turns it UP, and the
    -- dependents run at once, one after the other down the chain
    local t0 = health.now()
    harness.server("pg", "resume")
    assert.is_true(wait_until(function()
      local c = component(a, "api")
      return c.status == "UP" and c.output == "runs=" .. (a_runs + 1)
    end, 5), a:get("/healthz").body)
    local took = health.now() - t0
    assert.is_true(took < 0.3 + 0.5 + MARGIN, ("recovered after %.2f s"):format(took))
    o = component(a, "orders")
    assert.equal("UP", o.status)
    assert.is_true(runs_of(o) >= o_runs + 1)
    assert.is_nil(o.details)
    assert.equal(200, a:get("/readyz").status)
    a:stop()
    assert.truthy(a:log():find("[orders] UP -> DOWN: dependency db is DOWN", 1, true), a:log())
  end)
end)

describe("a dependency that is not decided yet (INIT)", function()
  it("holds the dependent back without failing it: not run, INIT, then run at once when the dependency decides", function()
    local a = start {
      scripts = { ["a.lua"] = [[
health.check { name = "db", initial_delay = "4s", ttl = "1h", run = function() return true, "db up" end }
local n = 0
health.check { name = "app", depends_on = { "db" }, interval = "100ms", run = function()
  n = n + 1
  return true, "runs=" .. n
end }
]] },
      config = [[return { shutdown_delay = 0 }]],
    }
    local t0 = health.now()
    -- within db's initial delay: app waits, INIT, with no result and no
    -- run; a probe waits for it (db may decide within the budget) no
    -- longer than max_wait
    health.sleep(0.6)
    local app, r = component(a, "app")
    assert.equal("INIT", app.status)
    assert.is_nil(app.output)
    assert.is_nil(app.details)
    assert.is_true(r.time < 0.5 + MARGIN, r.time)
    r = a:get("/readyz")
    assert.equal(503, r.status)
    assert.is_true(r.time < 0.5 + MARGIN, r.time)
    assert.is_true(health.now() - t0 < 3.5, "the test outran db's initial delay: the machine is too slow")
    assert.is_true(wait_until(function() return component(a, "db").status == "UP" end, 6))
    assert.is_true(health.now() - t0 >= 3.9)
    -- db decided: app runs at once (its interval goes on from there)
    assert.is_true(wait_until(function() return component(a, "app").status == "UP" end, 0.1 + MARGIN),
      a:get("/healthz").body)
    assert.matches("^runs=%d+$", component(a, "app").output)
    assert.equal(200, a:get("/readyz").status)
    a:stop()
  end)
end)

describe("the dependency graph at load time", function()
  local GOOD = [[
health.check { name = "db", ttl = "1h", run = function() return true end }
health.check { name = "app", depends_on = { "db" }, ttl = "1h", run = function() return true, "app ok" end }
]]

  it("a cycle, an unknown name or a group fails the reload at file:line and keeps the old generation", function()
    local a = start { scripts = { ["a.lua"] = GOOD }, config = [[return { shutdown_delay = 0 }]] }
    assert.is_true(wait_until(function() return a:get("/readyz").status == 200 end), a:log())
    local gen = a:get("/-/status").json.generation
    for _, case in ipairs {
      { [[
health.check { name = "db", ttl = "1h", run = function() return true end }
health.check { name = "x", depends_on = { "y" }, run = function() return true end }

health.check { name = "y", depends_on = { "z" }, run = function() return true end }
health.check { name = "z", depends_on = { "x" }, run = function() return true end }
]], "/a.lua:2: health.check: dependency cycle: x -> y -> z -> x" },
      { [[
health.check { name = "db", ttl = "1h", run = function() return true end }
health.check { name = "app", run = function() return true end,
  depends_on = { "db", "cache" } }
]], "/a.lua:2: health.check: 'app' depends on 'cache', which no health.check or health.push defines" },
      { [[
health.check { name = "self", depends_on = { "self" }, run = function() return true end }
]], "/a.lua:1: health.check: dependency cycle: self -> self" },
      { [[
health.check { name = "db", ttl = "1h", run = function() return true end }
health.group { name = "dbs", include = { "db" } }
health.check { name = "app", depends_on = { "dbs" }, run = function() return true end }
]], "/a.lua:3: health.check: 'app' depends on 'dbs', which is a group: depends_on names checks (list the group's members instead)" },
    } do
      agent.write(a.scripts .. "/a.lua", case[1])
      assert.equal(202, a:request("/-/reload", { method = "POST" }).status)
      local st
      assert.is_true(wait_until(function()
        st = a:get("/-/status").json
        return st.load_error ~= agent.null and st.load_error.message:find(case[2], 1, true) ~= nil
      end, 5), case[2] .. "\n" .. a:get("/-/status").body .. a:log())
      assert.equal(gen, st.generation, "the old generation serves on")
      assert.is_true(st.load_error.message:find(a.scripts, 1, true) == 1, st.load_error.message)
      local r = a:get("/readyz/app")
      assert.equal(200, r.status)
      assert.equal("app ok", r.json.output)
      assert.is_nil(a:get("/readyz").json.components.x)
    end
    -- a good reload after the failures: the new graph serves
    agent.write(a.scripts .. "/a.lua", GOOD .. [[
health.check { name = "extra", depends_on = { "app" }, ttl = "1h", run = function() return true, "extra ok" end }
]])
    a:request("/-/reload", { method = "POST" })
    assert.is_true(wait_until(function() return a:get("/-/status").json.generation == gen + 1 end, 5), a:log())
    assert.is_true(wait_until(function() return a:get("/readyz/extra").status == 200 end, 5))
    a:stop()
  end)

  it("at start-up and in lint: the same message, exit 2 and exit 1; lint resolves names across files", function()
    local d = agent.tmpdir()
    agent.write(d .. "/a.lua", [[
health.check { name = "a", depends_on = { "b" }, run = function() return true end }
]])
    agent.write(d .. "/b.lua", [[
health.check { name = "b", depends_on = { "a" }, run = function() return true end }
]])
    local code, out = agent.run("--scripts " .. agent.quote(d) .. " --listen 127.0.0.1:1")
    assert.equal(2, code, out)
    assert.truthy(out:find(d .. "/a.lua:1: health.check: dependency cycle: a -> b -> a", 1, true), out)
    code, out = agent.run("lint " .. agent.quote(d))
    assert.equal(1, code, out)
    assert.truthy(out:find(d .. "/a.lua:1: health.check: dependency cycle: a -> b -> a", 1, true), out)
    -- each file alone does not know the other's checks: no error for that
    agent.write(d .. "/b.lua", [[
health.check { name = "b", run = function() return true end }
]])
    code, out = agent.run("lint " .. agent.quote(d))
    assert.equal(0, code, out)
    agent.sh("rm -rf " .. agent.quote(d))
  end)
end)

describe("answer time", function()
  it("a probe of a fresh dependent refreshes its stale dependency within the same answer", function()
    local flag = agent.tmpdir() .. "/down"
    finally(function() os.remove(flag) end)
    local a = start {
      -- dep is in no probe (probes = {}): only the dependency closure
      -- brings it into a /readyz answer
      scripts = { ["a.lua"] = ([[
local fs = require "health.fs"
local n = 0
health.check { name = "dep", probes = {}, ttl = "400ms", max_age = "1h", run = function()
  n = n + 1
  if fs.age(%q) then return false, "flag set, run " .. n end
  return true, "run " .. n
end }
local m = 0
health.check { name = "app", depends_on = { "dep" }, ttl = "1h", run = function()
  m = m + 1
  return true, "runs=" .. m
end }
health.group { name = "g", include = { "app" } }
]]):format(flag) },
      config = [[return { shutdown_delay = 0, max_wait = "2s" }]],
    }
    assert.is_true(wait_until(function() return a:get("/readyz").status == 200 end), a:log())
    local runs = component(a, "dep").output
    assert.matches("^run %d+$", runs)
    -- app is fresh for an hour, dep stale after 400 ms: the next /readyz
    -- runs dep first and answers with what it found
    agent.write(flag, "x")
    health.sleep(0.5)
    local r = a:get("/readyz")
    assert.equal(503, r.status, r.body)
    assert.equal("dependency dep is DOWN", r.json.components.app.output)
    assert.is_nil(r.json.components.dep)
    assert.matches("^flag set, run %d+$", component(a, "dep").output)
    -- recovered: again in one answer: dep runs, then app (it had been blocked)
    os.remove(flag)
    health.sleep(0.5)
    r = a:get("/readyz")
    assert.equal(200, r.status, r.body)
    assert.equal("UP", r.json.components.app.status)
    assert.matches("^runs=%d+$", r.json.components.app.output)
    assert.is_true(r.time < 2 + MARGIN, r.time)
    -- a single check's path and a group get the same refresh
    agent.write(flag, "x")
    health.sleep(0.5)
    r = a:get("/readyz/app")
    assert.equal(503, r.status, r.body)
    assert.equal("dependency dep is DOWN", r.json.output)
    os.remove(flag)
    health.sleep(0.5)
    r = a:get("/groupz/g")
    assert.equal(200, r.status, r.body)
    assert.equal("UP", r.json.components.app.status)
    agent.write(flag, "x")
    health.sleep(0.5)
    r = a:get("/groupz/g")
    assert.equal(503, r.status, r.body)
    assert.equal("dependency dep is DOWN", r.json.components.app.output)
    a:stop()
  end)
end)
