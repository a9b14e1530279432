-- health.redis and health.checks.redis against the harness' redis-server
-- (requirepass) and its fault fixtures. Run:
--   HA_HARNESS_DIR=/tmp/ha-harness busted --lua=build/healthagent tests/unit/redis_spec.lua
local redis = require "health.redis"
local testing = require "health.testing"
local H = require "helpers.spec"

local env = H.env()
local PW = env.HA_REDIS_PASSWORD
local URL = ("redis://:%s@127.0.0.1:%d/0"):format(PW, env.HA_REDIS_PORT)

local fds, settle, elapsed = H.fds, H.settle, H.elapsed
local function server(cmd) H.server("redis", cmd) end

describe("health.redis", function()
  after_each(function()
    settle()
    assert.are.equal(0, testing.handles())
  end)

  it("connects with AUTH and SELECT, and converts replies", function()
    local c = assert(redis.connect(URL, { timeout = 2 }))
    assert.are.equal("PONG", c:command("PING"))
    local info = c:command("INFO", "replication")
    assert.is_string(info)
    assert.truthy(info:match("role:master"))
    assert.are.equal("OK", c:command("SET", "ha:k", 41))
    assert.are.equal(42, c:command("INCR", "ha:k"))
    assert.are.equal("42", c:command("GET", "ha:k"))
    assert.is_nil(c:command("GET", "ha:missing"))
    assert.are.same({ "42", false }, c:command("MGET", "ha:k", "ha:missing"))
    c:command("DEL", "ha:list")
    assert.are.equal(2, c:command("RPUSH", "ha:list", "a", "b"))
    assert.are.same({ "a", "b" }, c:command("LRANGE", "ha:list", 0, -1))
    local v, err = c:command("NOSUCHCOMMAND", "x")
    assert.is_nil(v)
    assert.truthy(err:match("^ERR unknown command"))
    c:close()
    c:close() -- idempotent
    assert.are.same({ nil, "closed" }, { c:command("PING") })
  end)

  it("takes a table and selects a database", function()
    local c = assert(redis.connect { host = "127.0.0.1", port = env.HA_REDIS_PORT, password = PW, db = 3, timeout = 2 })
    assert.are.equal("OK", c:command("SET", "ha:db3", "x"))
    c:close()
    c = assert(redis.connect(("redis://:%s@127.0.0.1:%d/3"):format(PW, env.HA_REDIS_PORT)))
    assert.are.equal("x", c:command("GET", "ha:db3"))
    c:close()
    c = assert(redis.connect(URL))
    assert.is_nil(c:command("GET", "ha:db3"))
    c:close()
    local nc, err = redis.connect { port = env.HA_REDIS_PORT, password = PW, db = 999 }
    assert.is_nil(nc)
    assert.are.equal("select 999 failed: ERR DB index is out of range", err)
  end)

  it("connects over the unix socket", function()
    local c = assert(redis.connect { path = env.HA_REDIS_SOCKET, password = PW })
    assert.are.equal("PONG", c:command("PING"))
    c:close()
  end)

  it("reports a wrong password without the password", function()
    local secret = "wrong-S3cret-pw"
    local c, err = redis.connect(("redis://:%s@127.0.0.1:%d/0"):format(secret, env.HA_REDIS_PORT))
    assert.is_nil(c)
    assert.truthy(err:match("^auth failed: WRONGPASS"), err)
    assert.falsy(err:find(secret, 1, true))
  end)

  it("returns the server's NOAUTH error when no password is given", function()
    local c = assert(redis.connect(("redis://127.0.0.1:%d"):format(env.HA_REDIS_PORT)))
    local v, err = c:command("PING")
    assert.is_nil(v)
    assert.truthy(err:match("^NOAUTH"), err)
    c:close()
  end)

  it("reports a refused port and an unknown host", function()
    assert.are.same({ nil, "connection refused" }, { redis.connect(("redis://127.0.0.1:%d"):format(env.HA_REFUSED_PORT)) })
    assert.are.same({ nil, "cannot resolve host 'no-such-host.invalid'" }, { redis.connect("redis://no-such-host.invalid:6379") })
  end)

  it("times out a connect to a full backlog at its timeout", function()
    local c, err, dt = elapsed(function()
      return redis.connect(("redis://127.0.0.1:%d"):format(env.HA_BACKLOG_PORT), { timeout = 0.3 })
    end)
    assert.is_nil(c)
    assert.are.equal("timeout", err)
    assert.is_true(dt >= 0.25 and dt < 0.6, "took " .. dt)
  end)

  it("times out on a silent server (AUTH, then a command)", function()
    local silent = ("127.0.0.1:%d"):format(env.HA_SILENT_PORT)
    local c, err, dt = elapsed(function()
      return redis.connect("redis://:pw@" .. silent, { timeout = 0.3 })
    end)
    assert.are.same({ nil, "timeout" }, { c, err })
    assert.is_true(dt >= 0.25 and dt < 0.6, "took " .. dt)
    c = assert(redis.connect("redis://" .. silent, { timeout = 0.3 }))
    local v
    v, err, dt = elapsed(function() return c:command("PING") end)
    assert.are.same({ nil, "timeout" }, { v, err })
    assert.is_true(dt >= 0.25 and dt < 0.6, "took " .. dt)
    assert.are.same({ nil, "closed" }, { c:command("PING") })
    c:close()
  end)

  it("times out a command on a stopped server, then works again", function()
    local c = assert(redis.connect(URL, { timeout = 0.3 }))
    server("pause")
    local ok, v, err, dt = pcall(elapsed, function() return c:command("PING") end)
    server("resume")
    assert.is_true(ok, v)
    assert.are.same({ nil, "timeout" }, { v, err })
    assert.is_true(dt >= 0.25 and dt < 0.6, "took " .. dt)
    c:close()
    c = assert(redis.connect(URL, { timeout = 2 }))
    assert.are.equal("PONG", c:command("PING"))
    c:close()
  end)

  it("raises on misuse", function()
    assert.has_error(function() redis.connect(42) end)
    assert.has_error(function() redis.connect("http://127.0.0.1/") end, "bad argument #1 to 'connect' (expected a redis:// URL)")
    assert.has_error(function() redis.connect("rediss://127.0.0.1/") end,
      "bad argument #1 to 'connect' (rediss:// (TLS) is not supported; use redis://)")
    assert.has_error(function() redis.connect(URL, { timeout = -1 }) end)
    assert.has_error(function() redis.connect { port = "x" } end)
    local c = assert(redis.connect(URL))
    assert.has_error(function() c:command() end)
    assert.has_error(function() c:command("GET", {}) end)
    c:close()
  end)

  it("refuses to run outside a check", function()
    local g, err = testing.load({ ["a.lua"] = 'require("health.redis").connect("redis://127.0.0.1:1")' })
    assert.is_nil(g)
    assert.truthy(err:find("called outside a check run", 1, true), err)
  end)
end)

describe("health.checks.redis", function()
  after_each(function()
    settle()
    assert.are.equal(0, testing.handles())
  end)

  local function load(src)
    return assert(testing.load({ ["r.lua"] = src }, { autorun = false }))
  end

  it("is UP with PONG and the replication role", function()
    local g = load(('health.checks.redis { name = "cache", url = %q, timeout = 2 }'):format(URL))
    local r = g:run("cache")
    assert.are.equal("UP", r.status)
    assert.are.equal("PONG", r.output)
    assert.truthy(r.details:find('"role":"master"', 1, true), r.details)
    assert.falsy(r.details:find(PW, 1, true))
    g:close()
  end)

  it("is DOWN on a wrong password, and the password appears nowhere", function()
    local secret = "Very-Secret-77"
    local g = load(('health.checks.redis { name = "cache", url = %q }'):format(
      ("redis://:%s@127.0.0.1:%d/0"):format(secret, env.HA_REDIS_PORT)))
    local r = g:run("cache")
    assert.are.equal("DOWN", r.status)
    assert.truthy(r.output:match("^auth failed: WRONGPASS"), r.output)
    for _, v in pairs(r) do
      assert.falsy(tostring(v):find(secret, 1, true))
    end
    g:close()
  end)

  it("rejects unknown options at the caller's line", function()
    local g, err = testing.load({ ["r.lua"] = 'health.checks.redis { name = "x", url = "redis://h", bogus = 1 }' })
    assert.is_nil(g)
    assert.truthy(err:find("r.lua:1:", 1, true) and err:find("unknown option 'bogus'", 1, true), err)
  end)

  it("ends at the check's deadline when the server is stopped", function()
    local g = load(('health.checks.redis { name = "cache", url = %q, timeout = 0.5 }'):format(URL))
    H.db_stopped_server(g, "cache", "redis")
    g:close()
  end)

  it("leaves no fd or handle behind after 1,000 runs", function()
    H.db_no_leaks("redis", { refused = ("redis://127.0.0.1:%d"):format(env.HA_REFUSED_PORT), ok = URL,
                   silent = ("redis://127.0.0.1:%d"):format(env.HA_SILENT_PORT) })
  end)
end)
