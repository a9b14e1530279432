-- meta/: the LuaLS annotations of the scripting API match the API. Every
-- function and value of `health` and of each health.* module is annotated,
-- every annotated module function exists, every check factory of
-- lualib/health/checks/ has its entry, and the testing generation's methods
-- are all there.
local ROOT = os.getenv("HA_SOURCE_DIR") or "."
local MODULES = { "tcp", "dns", "http", "grpc", "fs", "exec", "redis", "postgres", "mysql", "testing", "checks" }

local function read(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

local function ls(dir)
  local p = assert(io.popen("ls " .. dir))
  local names = {}
  for n in p:read("a"):gmatch("[^\n]+") do names[#names + 1] = n end
  p:close()
  return names
end

-- The names a meta file annotates on table `alias`: its `function alias.x(`
-- and `alias.x =`, and the ---@field lines of the class right above it.
local function annotated(text, alias)
  local names = {}
  for n in text:gmatch("\nfunction " .. alias .. "%.([%w_]+)%(") do names[n] = "function" end
  for n in text:gmatch("\n" .. alias .. "%.([%w_]+) =") do names[n] = "value" end
  -- the comment lines right above `local alias = {}` (or `health = {}`)
  local at = text:find("\nlocal " .. alias .. " = {}", 1, true) or text:find("\n" .. alias .. " = {}", 1, true)
  local lines = {}
  for line in text:sub(1, at or 0):gmatch("[^\n]+") do lines[#lines + 1] = line end
  for i = #lines, 1, -1 do
    if not lines[i]:match("^%-%-%-") then break end
    local n = lines[i]:match("^%-%-%-@field ([%w_]+)")
    if n then names[n] = names[n] or "field" end
  end
  return names
end

describe("meta/ (LuaLS annotations)", function()
  it("annotates every function and value of the health global", function()
    local text = read(ROOT .. "/meta/health.lua")
    assert.matches("^%-%-%-@meta health\n", text)
    local names = annotated(text, "health")
    local n = 0
    for k in pairs(health) do
      assert.is_not_nil(names[k], "meta/health.lua lacks health." .. k)
      n = n + 1
    end
    assert.is_true(n >= 8)
    for k, kind in pairs(names) do
      if kind == "function" then assert.equal("function", type(health[k]), "health." .. k .. " is annotated but absent") end
    end
    assert.is_not_nil(names.checks)
  end)

  for _, m in ipairs(MODULES) do
    it("annotates every member of health." .. m .. ", and only real functions", function()
      local text = read(ROOT .. "/meta/health/" .. m .. ".lua")
      assert.matches("^%-%-%-@meta health%." .. m .. "\n", text)
      local mod = require("health." .. m)
      local names = annotated(text, m)
      for k in pairs(m == "checks" and {} or mod) do
        assert.is_not_nil(names[k], "meta/health/" .. m .. ".lua lacks " .. m .. "." .. k)
      end
      for k, kind in pairs(names) do
        if kind == "function" then
          assert.equal("function", type(mod[k]), m .. "." .. k .. " is annotated but absent")
        end
      end
    end)
  end

  it("has an entry for every check factory of lualib/health/checks/", function()
    local names = annotated(read(ROOT .. "/meta/health/checks.lua"), "checks")
    local n = 0
    for _, f in ipairs(ls(ROOT .. "/lualib/health/checks")) do
      local kind = f:match("^(.+)%.lua$")
      if kind and kind ~= "common" then
        assert.equal("function", names[kind], "meta/health/checks.lua lacks checks." .. kind)
        n = n + 1
      end
    end
    assert.is_true(n >= 10)
  end)

  it("annotates every method of a testing generation, and a spawned task's wait", function()
    local text = read(ROOT .. "/meta/health/testing.lua")
    local testing = require "health.testing"
    local g = assert(testing.load { ["a.lua"] = 'health.check { name = "a", run = function() return true end }' })
    local methods = getmetatable(g).__index
    local n = 0
    for k, v in pairs(methods) do
      if type(v) == "function" and not k:match("^__") then
        assert.truthy(text:find("\nfunction gen:" .. k .. "(", 1, true), "meta lacks gen:" .. k)
        n = n + 1
      end
    end
    assert.is_true(n >= 5, n)
    g:close()
    -- a task's metatable is locked: its one method, h:wait(), by use
    local h = testing.spawn(function() return 1 end)
    assert.same({ true, 1 }, { h:wait() })
    assert.truthy(read(ROOT .. "/meta/health.lua"):find("\nfunction task:wait()", 1, true))
  end)
end)
