-- One vocabulary: the same failure reads the same in every module of the
-- check library (health.tcp, dns, http, grpc, redis, postgres, mysql) and
-- in the factories built on them; and one duration grammar for check
-- fields, factory options and per-call timeouts.
--   HA_HARNESS_DIR=/tmp/ha-harness busted --lua=build/healthagent tests/unit/vocabulary_spec.lua
local testing = require "health.testing"
local H = require "helpers.spec"

local env = H.env()
local HOST = env.HA_HOST
local BAD = "no-such-host.invalid"

after_each(function()
  health.sleep(0.01)
  collectgarbage()
  assert.equal(0, testing.handles())
end)

-- Each module's call against host:port, returning its error message.
local calls = {
  tcp = function(host, port) return select(2, require("health.tcp").connect(host, port, { timeout = 5 })) end,
  dns = function(host) return select(2, require("health.dns").resolve(host, { timeout = 5 })) end,
  http = function(host, port) return select(2, require("health.http").get(("http://%s:%d/"):format(host, port),
    { timeout = 5 })) end,
  grpc = function(host, port) return select(2, require("health.grpc").check(host .. ":" .. port, "", { timeout = 5 })) end,
  redis = function(host, port) return select(2, require("health.redis").connect(("redis://%s:%d"):format(host, port),
    { timeout = 5 })) end,
  postgres = function(host, port) return select(2, require("health.postgres").connect(
    ("postgresql://ha:x@%s:%d/db"):format(host, port), { timeout = 5 })) end,
  mysql = function(host, port) return select(2, require("health.mysql").connect(
    ("mysql://ha:x@%s:%d/db"):format(host, port), { timeout = 5 })) end,
}

describe("one vocabulary", function()
  for _, m in ipairs { "tcp", "dns", "http", "grpc", "redis", "postgres", "mysql" } do
    it(m .. ": an unknown host reads cannot resolve host '<name>'", function()
      assert.equal("cannot resolve host '" .. BAD .. "'", calls[m](BAD, 1))
    end)
  end

  for _, m in ipairs { "tcp", "http", "grpc", "redis", "postgres", "mysql" } do
    it(m .. ": a closed port reads connection refused", function()
      assert.equal("connection refused", calls[m](HOST, tonumber(env.HA_REFUSED_PORT)))
    end)
  end

  it("the factories pass the same words through", function()
    local g = assert(testing.load({ ["f.lua"] = ([[
health.checks.tcp { name = "t", host = %q, port = 1 }
health.checks.http { name = "h", url = "http://%s/" }
health.checks.redis { name = "r", url = "redis://%s:6379" }
]]):format(BAD, BAD, BAD) }))
    assert.equal(BAD .. ":1: cannot resolve host '" .. BAD .. "'", g:run("t").output)
    assert.equal("cannot resolve host '" .. BAD .. "'", g:run("h").output)
    assert.equal("cannot resolve host '" .. BAD .. "'", g:run("r").output)
    g:close()
  end)
end)

describe("one duration grammar", function()
  local function load_err(src)
    local g, err = testing.load({ ["d.lua"] = src })
    if g then g:close() end
    return err
  end

  it("accepts d as a unit in check fields, like file_fresh's max_age", function()
    assert.is_nil(load_err('health.check { name = "a", interval = "1d", ttl = "2d", run = function() return true end }'))
    assert.is_nil(load_err('health.checks.file_fresh { name = "b", path = "/x", max_age = "1d" }'))
  end)

  it("refuses the same malformed values everywhere, naming the field", function()
    for _, bad in ipairs { "1 d", "1w", "-1s", "1e3", "soon" } do
      assert.matches("field 'timeout': bad duration", load_err(
        ('health.check { name = "a", timeout = %q, run = function() return true end }'):format(bad)))
      assert.matches("option 'max_age'", load_err(
        ('health.checks.file_fresh { name = "b", path = "/x", max_age = %q }'):format(bad)))
      for m, f in pairs {
        tcp = function() return require("health.tcp").connect(HOST, 1, { timeout = bad }) end,
        dns = function() return require("health.dns").resolve("localhost", { timeout = bad }) end,
        http = function() return require("health.http").get("http://" .. HOST .. ":1/", { timeout = bad }) end,
        fs = function() return require("health.fs").stat("/", { timeout = bad }) end,
        exec = function() return require("health.exec").run({ "/bin/true" }, { timeout = bad }) end,
        redis = function() return require("health.redis").connect("redis://" .. HOST .. ":1", { timeout = bad }) end,
      } do
        local ok, msg = pcall(f)
        assert.is_false(ok, m .. " " .. bad)
        assert.matches("'timeout'", msg, 1, true)
        assert.matches("bad duration '" .. bad .. "'", msg, 1, true)
      end
    end
  end)

  it("takes the same good values everywhere", function()
    for _, good in ipairs { 0.5, "500ms", "1.5s", "1m", "1h", "1d" } do
      local r, err = require("health.fs").stat("/", { timeout = good })
      assert.truthy(r, tostring(good) .. ": " .. tostring(err))
      r, err = require("health.dns").resolve("localhost", { timeout = good })
      assert.truthy(r, tostring(good) .. ": " .. tostring(err))
    end
  end)
end)
