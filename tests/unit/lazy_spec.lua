-- The client modules loaded on first require (agent/api_lazy.c):
--   busted --lua=build/healthagent tests/unit/lazy_spec.lua
-- health.http and health.grpc live in ha_http.so, health.redis in ha_redis.so,
-- health.postgres in ha_postgres.so, health.mysql in ha_mysql.so: the binary
-- maps none of them, nor their client libraries, until a script requires one.
local testing = require "health.testing"
local lfs = require "lfs"

local bin = os.getenv("HA_BIN") or "build/healthagent"

-- Number of lines of /proc/self/maps naming a file that contains pattern
-- (a plain string).
local function mappings(pattern)
  local n = 0
  for line in io.lines("/proc/self/maps") do
    if line:find(pattern, 1, true) then n = n + 1 end
  end
  return n
end

-- Runs script with a copy of the binary alone in a fresh directory (no
-- modules next to it), after setup(dir); returns its output.
local function run_alone(script, setup)
  local dir = os.tmpname()
  os.remove(dir)
  assert(lfs.mkdir(dir))
  assert(os.execute("cp '" .. bin .. "' '" .. dir .. "/healthagent'"))
  if setup then setup(dir) end
  local f = assert(io.open(dir .. "/t.lua", "w"))
  f:write(script)
  f:close()
  local p = assert(io.popen("'" .. dir .. "/healthagent' '" .. dir .. "/t.lua' 2>&1"))
  local out = p:read("a")
  p:close()
  os.execute("rm -rf '" .. dir .. "'")
  return out, dir
end

describe("lazily loaded modules", function()
  it("are not mapped, nor their libraries, before a script requires one", function()
    for _, lib in ipairs { "ha_http.so", "ha_redis.so", "ha_postgres.so", "ha_mysql.so",
                           "libcurl", "libnghttp2", "libhiredis", "libpq", "libmariadb", "libgnutls", "libkrb5" } do
      assert.equal(0, mappings(lib), lib .. " is mapped")
    end
  end)

  it("load their shared object and its libraries on first require", function()
    for _, c in ipairs {
      { "health.redis", "ha_redis.so", "libhiredis" },
      { "health.postgres", "ha_postgres.so", "libpq" },
      { "health.mysql", "ha_mysql.so", "libmariadb" },
      { "health.http", "ha_http.so", "libcurl" },
    } do
      local m = require(c[1])
      assert.equal("table", type(m))
      assert.is_true(mappings(c[2]) > 0, c[2] .. " not mapped")
      assert.is_true(mappings(c[3]) > 0, c[3] .. " not mapped")
    end
    assert.equal("function", type(require("health.http").request))
  end)

  it("load each shared object once: grpc shares ha_http.so, a new state reuses it", function()
    require "health.http"
    local before = mappings("ha_http.so")
    assert.equal("function", type(require("health.grpc").check))
    local g = assert(testing.load { ["x.lua"] = [[
local http, grpc, redis = require "health.http", require "health.grpc", require "health.redis"
health.check { name = "x", run = function() return type(http.get) == "function" and type(grpc.check) == "function" end }
]] })
    assert.equal("UP", g:run("x").status)
    g:close()
    assert.equal(before, mappings("ha_http.so"))
  end)

  it("name the file when the shared object is missing", function()
    local out, dir = run_alone([[print(select(2, pcall(require, "health.redis")))]])
    assert.matches("^health%.redis: cannot load ha_redis%.so: not found next to the binary %(" .. dir:gsub("%p", "%%%0")
                   .. "%), in " .. dir:gsub("%p", "%%%0") .. "/%.%./lib/healthagent nor in /[^\n]*\n$", out)
  end)

  it("name the file and the loader's reason when the shared object is broken", function()
    local out, dir = run_alone([[print(select(2, pcall(require, "health.postgres")))]], function(d)
      local f = assert(io.open(d .. "/ha_postgres.so", "w"))
      f:write("not an ELF file\n")
      f:close()
    end)
    local path = dir .. "/ha_postgres.so"
    assert.equal("health.postgres: cannot load " .. path .. ": " .. path .. ": file too short\n", out)
  end)
end)
