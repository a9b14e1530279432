-- health.group and health.aggregate inside the agent (health.testing): the
-- built-ins' arguments, membership (include, match, exclude, probes), and a
-- Lua aggregate's results view and verdicts, run per member change.
local testing = require "health.testing"

local function settle(g, name, runs)
  local deadline = health.now() + 5
  while health.now() < deadline do
    local s = g:group(name)
    if s.runs >= runs then return s end
    health.sleep(0.01)
  end
  error("group " .. name .. " never reached " .. runs .. " runs")
end

describe("health.aggregate", function()
  it("has the built-ins, and quorum takes exactly one of min_up and ratio", function()
    assert.equal("health.aggregate.worst", tostring(health.aggregate.worst))
    assert.equal("health.aggregate.any", tostring(health.aggregate.any))
    assert.equal("health.aggregate.quorum{min_up=2}", tostring(health.aggregate.quorum { min_up = 2 }))
    assert.has_error(function() health.aggregate.quorum {} end)
    assert.has_error(function() health.aggregate.quorum { min_up = 1, ratio = 0.5 } end)
    assert.has_error(function() health.aggregate.quorum { ratio = 1.5 } end)
    assert.has_error(function() health.aggregate.quorum { min_up = 1.5 } end)
    assert.has_error(function() health.aggregate.quorum { min = 1 } end)
  end)

  it("health.group outside a script's load is an error", function()
    local ok, err = pcall(health.group, { name = "g", include = {} })
    assert.is_false(ok)
    assert.matches("health.group: groups are defined when a script loads, not while one runs$", err)
  end)
end)

describe("group members", function()
  it("come from include, match and the probes, minus exclude, in name order", function()
    local g = assert(testing.load({ ["a.lua"] = [[
for _, n in ipairs { "db-1", "db-2", "db-3", "cache", "live" } do
  health.check { name = n, probes = n == "live" and { "liveness" } or n == "cache" and {} or nil,
                 run = function() return true end }
end
health.group { name = "dbs", match = "^db%-", include = { "cache" }, exclude = { "db-2" } }
health.group { name = "liveness", aggregate = health.aggregate.any }
health.group { name = "readiness" }
]] }, { autorun = false }))
    assert.same({ "cache", "db-1", "db-3" }, g:group("dbs").members)
    assert.same({ "live" }, g:group("liveness").members)
    assert.equal("any", g:group("liveness").kind)
    assert.same({ "db-1", "db-2", "db-3" }, g:group("readiness").members) -- the default probe
    g:close()
  end)
end)

describe("a Lua aggregate", function()
  it("sees a read-only view of its members and runs again when one changes", function()
    local g = assert(testing.load({ ["a.lua"] = [[
local state = { x = true, y = true }
health.check { name = "x", run = function() state.x = not state.x; return state.x, "x is " .. tostring(state.x) end }
health.check { name = "y", critical = false, run = function() return true, "y ok" end }
health.group { name = "view", include = { "x", "y" }, aggregate = function(results)
  local seen = {}
  for i, r in ipairs(results) do
    local fields = {}
    for k in pairs(r) do fields[#fields + 1] = k end
    table.sort(fields)
    seen[#seen + 1] = i .. ":" .. r.name .. "=" .. r.status .. "/" .. tostring(r.critical) .. "/" .. table.concat(fields, ",")
  end
  assert(#results == 2 and results[3] == nil and results[0] == nil and results.x == nil)
  local n = 0
  for i, r in pairs(results) do n = n + 1; assert(r == results[i] and r.name) end
  assert(n == 2, "pairs over the results")
  assert(not pcall(function() results[1] = 1 end))
  assert(not pcall(function() results[1].status = "UP" end))
  if results[1].status == "DOWN" then return health.warn("x is down") end
  return "UP", table.concat(seen, " ")
end }
]] }, { autorun = false }))
    local first = settle(g, "view", 1)
    assert.equal("UP", first.status)
    assert.equal("1:x=INIT/true/critical,duration_ms,name,status 2:y=INIT/false/critical,duration_ms,name,status",
      first.output)
    g:run("x") -- x DOWN
    local s = settle(g, "view", 2)
    assert.equal("WARN", s.status)
    assert.equal("x is down", s.output)
    g:run("y")
    s = settle(g, "view", 3)
    assert.equal("WARN", s.status)
    g:run("x") -- x UP again
    s = settle(g, "view", 4)
    assert.equal("UP", s.status)
    assert.truthy(s.output:find("1:x=UP/true/critical,duration_ms,name,output,since,status", 1, true), s.output)
    g:close()
  end)

  it("returning no status, raising or running out of time reads DOWN naming the line", function()
    local g = assert(testing.load({ ["a.lua"] = [[
health.check { name = "x", run = function() return true end }
health.group { name = "none", include = { "x" }, aggregate = function() return 42 end }
health.group { name = "boom", include = { "x" }, aggregate = function() local t = nil; return t.field end }
health.group { name = "slow", include = { "x" }, timeout = "50ms", aggregate = function() health.sleep(5) end }
health.group { name = "yields", include = { "x" }, aggregate = function(results)
  coroutine.yield(results)
end }
]] }, { autorun = false }))
    local s = settle(g, "none", 1)
    assert.equal("DOWN", s.status)
    assert.matches("aggregate returned no status .* %(a%.lua:2%)$", s.output)
    s = settle(g, "boom", 1)
    assert.equal("DOWN", s.status)
    assert.matches("^aggregate error: a%.lua:3: attempt to index a nil value", s.output)
    s = settle(g, "slow", 1)
    assert.equal("DOWN", s.status)
    assert.equal("aggregate timeout after 50ms (a.lua:4)", s.output)
    s = settle(g, "yields", 1)
    assert.equal("DOWN", s.status)
    assert.equal("aggregate error: a.lua:6: attempt to yield from outside a coroutine", s.output)
    g:close()
  end)
end)
