-- application/health+json as draft-inadarei-api-health-check defines it:
-- "checks" keys "{componentName}:{measurementName}", entries with
-- componentId, componentType, observedValue/observedUnit, status, time and
-- (for trusted clients, not for pass) output. The validator encodes the
-- draft's rules and is first run against a document in the shape of the
-- draft's own example, then against the agent's answers.
local agent = require "helpers.agent"

local TOP = { status = true, version = true, releaseId = true, notes = true, output = true, checks = true,
  links = true, serviceId = true, description = true }
local ENTRY = { componentId = true, componentType = true, observedValue = true, observedUnit = true, status = true,
  affectedEndpoints = true, time = true, output = true, links = true, node = true, thresholdValue = true,
  stale = true } -- stale: this agent's documented extension (a result served past its ttl)
local STATUS = { pass = true, warn = true, fail = true }

-- Returns nil when doc follows the draft, else the first violation.
local function violation(doc)
  if type(doc) ~= "table" then return "not an object" end
  for k in pairs(doc) do
    if not TOP[k] then return "unknown top-level member " .. k end
  end
  if not STATUS[doc.status] then return "bad status " .. tostring(doc.status) end
  if doc.checks == nil then return nil end
  for key, list in pairs(doc.checks) do
    if not (key:match("^[^:]+:[^:]+$") or key:match("^[^:]+$")) then return "bad key " .. key end
    if type(list) ~= "table" or #list < 1 then return key .. ": not a non-empty array" end
    for _, e in ipairs(list) do
      for k in pairs(e) do
        if not ENTRY[k] then return key .. ": unknown member " .. k end
      end
      if e.status ~= nil and not STATUS[e.status] then return key .. ": bad status" end
      if (e.observedValue == nil) ~= (e.observedUnit == nil) then return key .. ": observedUnit without value" end
      if e.thresholdValue ~= nil and e.observedValue == nil then return key .. ": threshold without value" end
      if e.componentType ~= nil and type(e.componentType) ~= "string" then return key .. ": bad componentType" end
      if e.time ~= nil and not e.time:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*Z$") then
        return key .. ": time is not RFC 3339 UTC"
      end
      if e.status == "pass" and e.output ~= nil and e.output ~= "" then return key .. ": output on pass" end
    end
  end
  return nil
end

-- A document in the shape of the draft's example response (values ours).
local DRAFT_SHAPED = [[{
  "status": "pass", "version": "1", "releaseId": "1.2.2", "notes": [""], "output": "",
  "serviceId": "svc-1", "description": "health of a service",
  "checks": {
    "db:responseTime": [{"componentId": "c-1", "componentType": "datastore", "observedValue": 250,
      "observedUnit": "ms", "status": "pass", "affectedEndpoints": ["/users/{userId}"],
      "time": "2018-01-17T03:36:48Z", "output": ""}],
    "db:connections": [{"componentId": "c-1", "componentType": "datastore", "observedValue": 75,
      "status": "warn", "observedUnit": "connections", "time": "2018-01-17T03:36:48Z", "output": "near the limit"}],
    "uptime": [{"componentType": "system", "observedValue": 1209600.245, "observedUnit": "s",
      "status": "pass", "time": "2018-01-17T03:36:48Z"}],
    "cpu:utilization": [{"componentId": "n-1", "node": 1, "componentType": "system", "observedValue": 85,
      "observedUnit": "percent", "status": "warn", "time": "2018-01-17T03:36:48Z", "output": ""}]
  },
  "links": {"about": "http://api.example.com/about/authz"}
}]]

describe("application/health+json", function()
  local a
  setup(function()
    a = agent.start {
      scripts = { ["a.lua"] = [[
health.check { name = "orders-db", component_type = "datastore", ttl = "1h",
  run = function() health.sleep(0.01) return false, "connection refused" end }
health.check { name = "api", ttl = "1h", run = function() return true, "fine" end }
health.checks.disk { name = "disk", path = "/", min_free_percent = 0, ttl = "1h" }
]] },
      config = "return { shutdown_delay = 0, trusted_networks = { '127.0.0.1/32' } }",
    }
    local deadline = health.now() + 5
    repeat
      local r = a:get("/readyz")
      if r.json and r.json.components.disk and r.json.components.disk.status ~= "INIT" and
        r.json.components["orders-db"].status == "DOWN" then break end
      health.sleep(0.02)
    until health.now() > deadline
  end)
  teardown(function() a:stop() end)

  local function hj(path, interface)
    local r = a:get(path, { interface = interface, headers = { Accept = "application/health+json" } })
    assert.equal("application/health+json", r.headers["content-type"])
    return r
  end

  it("the validator accepts the draft's example shape and refuses what the draft forbids", function()
    assert.is_nil(violation(agent.decode(DRAFT_SHAPED)))
    assert.matches("bad key", violation { status = "pass", checks = { ["a:b:c"] = { { status = "pass" } } } })
    assert.matches("observedUnit", violation { status = "pass", checks = { a = { { observedValue = 1 } } } })
    assert.matches("bad status", violation { status = "UP" })
  end)

  it("keys are <check>:responseTime with componentType, observedValue in ms, time and output", function()
    local r = hj("/readyz")
    assert.equal(503, r.status)
    assert.is_nil(violation(r.json))
    local db = r.json.checks["orders-db:responseTime"][1]
    assert.same({ "orders-db", "datastore", "fail", "ms", "connection refused" },
      { db.componentId, db.componentType, db.status, db.observedUnit, db.output })
    assert.is_true(math.type(db.observedValue) == "integer" and db.observedValue >= 5, tostring(db.observedValue))
    local api = r.json.checks["api:responseTime"][1]
    assert.same({ "api", "component", "pass" }, { api.componentId, api.componentType, api.status })
    assert.is_nil(api.output) -- the draft omits output on pass
    assert.equal("system", r.json.checks["disk:responseTime"][1].componentType)
    assert.is_nil(r.json.checks["orders-db"])
  end)

  it("untrusted clients see names, types and statuses only", function()
    local r = hj("/readyz", "127.0.0.2")
    assert.is_nil(violation(r.json))
    assert.same({ componentId = "orders-db", componentType = "datastore", status = "fail" },
      r.json.checks["orders-db:responseTime"][1])
  end)

  it("one check at /<probe>/<check> and a bad component_type at load", function()
    local r = hj("/readyz/api")
    assert.is_nil(violation(r.json))
    assert.same({ "api:responseTime" }, (function() local k = {} for n in pairs(r.json.checks) do k[#k + 1] = n end return k end)())
    local dir = agent.tmpdir()
    agent.write(dir .. "/x.lua", "health.check { name = 'x', component_type = 'a:b', run = function() return true end }\n")
    local rc, out = agent.run("lint " .. dir)
    agent.sh("rm -rf " .. agent.quote(dir))
    assert.equal(1, rc)
    assert.matches("x%.lua:1: health%.check: field 'component_type' must be 1 to 32 characters", out)
  end)
end)
