-- The paths a probe answers: the built-in aliases of the systems this agent
-- replaces (dubbo-go, Layotto/Spring Boot Actuator), `aliases = false`,
-- extra paths from the config, and the names and paths nothing may shadow.
local agent = require "helpers.agent"

local SCRIPTS = {
  ["a.lua"] = [[
health.check { name = "alive", probes = { "liveness" }, ttl = "1h", run = function() return true, "beating" end }
health.check { name = "db", probes = { "readiness" }, ttl = "1h", run = function() return false, "db down" end }
]],
}

local function wait_decided(a)
  local deadline = health.now() + 5
  while health.now() < deadline do
    local r = a:get("/healthz")
    if r.json and r.json.components.db and r.json.components.db.status == "DOWN" then return end
    health.sleep(0.02)
  end
  error("checks not decided:\n" .. a:log())
end

describe("built-in alias paths", function()
  local a
  setup(function()
    a = agent.start { scripts = SCRIPTS, config = "return { shutdown_delay = 0 }" }
    wait_decided(a)
  end)
  teardown(function() a:stop() end)

  it("answers the dubbo-go and Actuator paths with no configuration", function()
    assert.equal(200, a:get("/health/live").status)
    assert.equal(200, a:get("/actuator/health/liveness").status)
    assert.equal(503, a:get("/health/ready").status)
    assert.equal(503, a:get("/actuator/health/readiness").status)
    local h = a:get("/actuator/health")
    assert.equal(503, h.status)
    assert.equal("DOWN", h.json.status)
    assert.equal("UP", h.json.components.alive.status)
    local info = a:get("/actuator/info")
    assert.equal(200, info.status)
    assert.is_table(info.json)
  end)

  it("/actuator/health/liveness is the liveness probe, /actuator/health/<check> one check", function()
    local r = a:get("/actuator/health/liveness")
    assert.is_table(r.json.components)
    assert.equal("UP", r.json.status)
    local one = a:get("/actuator/health/db")
    assert.equal(503, one.status)
    assert.same({ status = "DOWN", output = "db down" }, { status = one.json.status, output = one.json.output })
    assert.equal(200, a:get("/health/live/alive").status)
  end)
end)

describe("aliases = false and probes.<probe>.paths", function()
  it("turns the built-ins off; extra paths add to what is served", function()
    local a = agent.start { scripts = SCRIPTS, config = [[return {
      shutdown_delay = 0, aliases = false,
      probes = { liveness = { paths = { "/alive" } } },
    }]] }
    wait_decided(a)
    assert.equal(404, a:get("/health/live").status)
    assert.equal(404, a:get("/actuator/health").status)
    assert.equal(200, a:get("/alive").status)
    assert.equal(200, a:get("/livez").status)
    a:stop()
  end)

  it("adds extra paths to the built-ins", function()
    local a = agent.start { scripts = SCRIPTS, config = [[return {
      shutdown_delay = 0, probes = { readiness = { paths = { "/ready" } } },
    }]] }
    wait_decided(a)
    assert.equal(503, a:get("/ready").status)
    assert.equal(503, a:get("/health/ready").status)
    assert.equal(503, a:get("/actuator/health/readiness").status)
    a:stop()
  end)
end)

describe("reserved names and paths", function()
  local dir
  before_each(function() dir = agent.tmpdir() end)
  after_each(function() agent.sh("rm -rf " .. agent.quote(dir)) end)

  for _, name in ipairs { "liveness", "readiness", "startup", "health" } do
    it("a check named " .. name .. " is a load error at file:line", function()
      agent.write(dir .. "/x.lua", "\n\nhealth.check { name = '" .. name .. "', run = function() return true end }\n")
      local rc, out = agent.run("--scripts " .. dir .. " --listen 127.0.0.1:19999", "timeout 10")
      assert.equal(2, rc)
      assert.equal("healthagent: " .. dir .. "/x.lua:3: health.check: the name '" .. name ..
        "' is reserved: liveness, readiness, startup and health name the probes\n", out)
    end)
  end

  it("a check whose /<probe path>/<name> is another probe's path is a load error", function()
    agent.write(dir .. "/c.lua", "return { probes = { readiness = { paths = { '/livez/db' } } } }")
    agent.write(dir .. "/x.lua", "health.check { name = 'db', probes = { 'liveness' }, run = function() return true end }\n")
    local rc, out = agent.run("--config " .. dir .. "/c.lua --scripts " .. dir .. " --listen 127.0.0.1:19999",
      "timeout 10")
    assert.equal(2, rc)
    assert.equal("healthagent: " .. dir .. "/x.lua:1: health.check: check 'db' cannot be served at /livez/db: " ..
      "that path belongs to probe readiness\n", out)
  end)

  it("a probe path that a front route reserves or that normalisation removes: one line naming the key", function()
    agent.write(dir .. "/c.lua", "return { probes = { readiness = { paths = { '/metrics' } } } }")
    local rc, out = agent.run("--config " .. dir .. "/c.lua --listen 127.0.0.1:19999", "timeout 10")
    assert.equal(2, rc)
    assert.equal("healthagent: " .. dir .. "/c.lua: field 'probes.readiness.paths': path '/metrics' is reserved " ..
      "for the metrics endpoint\n", out)
    agent.write(dir .. "/c.lua", "return { probes = { readiness = { paths = { '/a/../b' } } } }")
    rc, out = agent.run("--config " .. dir .. "/c.lua --listen 127.0.0.1:19999", "timeout 10")
    assert.equal(2, rc)
    assert.equal("healthagent: " .. dir .. "/c.lua: field 'probes.readiness.paths': path '/a/../b' has a '.' or " ..
      "'..' segment: no request could reach it\n", out)
  end)

  it("lint reports a reserved name too", function()
    agent.write(dir .. "/x.lua", "health.check { name = 'health', run = function() return true end }\n")
    local rc, out = agent.run("lint " .. dir)
    assert.equal(1, rc)
    assert.matches(dir:gsub("%p", "%%%0") .. "/x.lua:1: health.check: the name 'health' is reserved", out)
  end)
end)
