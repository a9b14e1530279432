-- health.postgres and health.checks.postgres against the harness' private
-- PostgreSQL cluster (user ha / ha-secret, database hadb) and its fault
-- fixtures. Run:
--   HA_HARNESS_DIR=/tmp/ha-harness busted --lua=build/healthagent tests/unit/postgres_spec.lua
local postgres = require "health.postgres"
local testing = require "health.testing"
local H = require "helpers.spec"

local env = H.env()
local PW = env.HA_PG_PASSWORD
local function url(port, db, pw)
  return ("postgresql://%s:%s@127.0.0.1:%d/%s"):format(env.HA_PG_USER, pw or PW, port or env.HA_PG_PORT, db or env.HA_PG_DATABASE)
end
local URL = url()

local fds, settle, elapsed = H.fds, H.settle, H.elapsed
local function server(cmd) H.server("pg", cmd) end

describe("health.postgres", function()
  after_each(function()
    settle()
    assert.are.equal(0, testing.handles())
  end)

  it("queries rows with converted types", function()
    local c = assert(postgres.connect(URL, { timeout = 5 }))
    local rows = assert(c:query([[SELECT 1 AS one, 2.5::float8 AS f, true AS b, NULL AS n, 'x'::text AS t,
      12345678901234::int8 AS big, 1.50::numeric AS num]]))
    assert.are.same({ { one = 1, f = 2.5, b = true, t = "x", big = 12345678901234, num = "1.50" } }, rows)
    assert.are.equal("integer", math.type(rows[1].one))
    assert.are.same({ { id = 1, name = "one" }, { id = 2, name = "two" } }, c:query("SELECT id, name FROM items ORDER BY id"))
    assert.are.same({}, c:query("CREATE TEMP TABLE t (a int)"))
    assert.are.same({ { two = 2 } }, c:query("SELECT 1; SELECT 2 AS two"))
    assert.are.same({ nil, 'relation "nope" does not exist' }, { c:query("SELECT * FROM nope") })
    assert.are.same({ { ok = 1 } }, c:query("SELECT 1 AS ok")) -- usable after an error
    c:close()
    c:close()
    assert.are.same({ nil, "closed" }, { c:query("SELECT 1") })
  end)

  it("takes key=value conninfo, a host name and a unix socket", function()
    local c = assert(postgres.connect(("host=localhost port=%d user=ha password=%s dbname=hadb"):format(env.HA_PG_PORT, PW)))
    assert.are.same({ { x = 1 } }, c:query("SELECT 1 AS x"))
    c:close()
    c = assert(postgres.connect(("host=%s port=%d user=postgres dbname=hadb"):format(env.HA_PG_SOCKET_DIR, env.HA_PG_PORT)))
    assert.are.same({ { x = 1 } }, c:query("SELECT 1 AS x"))
    c:close()
  end)

  it("reports a wrong password without the password", function()
    local secret = "Wr0ng-Secret-pw"
    local c, err = postgres.connect(url(nil, nil, secret))
    assert.is_nil(c)
    assert.are.equal('auth failed: password authentication failed for user "ha"', err)
    c, err = postgres.connect(("host=127.0.0.1 port=%d user=ha dbname=hadb password=%s"):format(env.HA_PG_PORT, secret))
    assert.is_nil(c)
    assert.falsy(err:find(secret, 1, true))
    assert.truthy(err:match("^auth failed: "))
  end)

  it("reports an unknown database, a refused port and an unknown host", function()
    assert.are.same({ nil, 'database "nodb" does not exist' }, { postgres.connect(url(nil, "nodb")) })
    assert.are.same({ nil, "connection refused" }, { postgres.connect(url(env.HA_REFUSED_PORT)) })
    assert.are.same({ nil, "cannot resolve host 'no-such-host.invalid'" }, { postgres.connect("postgresql://ha:x@no-such-host.invalid/db") })
    -- a server that accepts and closes reads "closed", as in every module
    assert.are.same({ nil, "closed" }, { postgres.connect(url(env.HA_CLOSE_PORT)) })
  end)

  it("times out connects to a full backlog and a silent server", function()
    for _, port in ipairs { env.HA_BACKLOG_PORT, env.HA_SILENT_PORT } do
      local c, err, dt = elapsed(function() return postgres.connect(url(port), { timeout = 0.3 }) end)
      assert.are.same({ nil, "timeout" }, { c, err })
      assert.is_true(dt >= 0.25 and dt < 0.6, "took " .. dt)
    end
  end)

  it("times out a connect to a stopped postmaster", function()
    server("pause")
    local ok, c, err, dt = pcall(elapsed, function() return postgres.connect(URL, { timeout = 0.4 }) end)
    server("resume")
    assert.is_true(ok, c)
    assert.are.same({ nil, "timeout" }, { c, err })
    assert.is_true(dt >= 0.35 and dt < 0.7, "took " .. dt)
  end)

  it("times out a query on a stopped backend, then works again", function()
    local c = assert(postgres.connect(URL, { timeout = 0.4 }))
    local pid = assert(c:query("SELECT pg_backend_pid() AS pid"))[1].pid
    assert(os.execute("kill -STOP " .. pid))
    health.sleep(0)
    local ok, v, err, dt = pcall(elapsed, function() return c:query("SELECT 1") end)
    assert(os.execute("kill -CONT " .. pid))
    assert.is_true(ok, v)
    assert.are.same({ nil, "timeout" }, { v, err })
    assert.is_true(dt >= 0.35 and dt < 0.7, "took " .. dt)
    assert.are.same({ nil, "closed" }, { c:query("SELECT 1") })
    c:close()
    c = assert(postgres.connect(URL, { timeout = 5 }))
    assert.are.same({ { x = 1 } }, c:query("SELECT 1 AS x"))
    c:close()
  end)

  it("cancels a timed-out query on the server (pg_stat_activity)", function()
    local marker = "ha_cancel_" .. math.random(1e6)
    local watcher = assert(postgres.connect(URL, { timeout = 5 }))
    local running = ("SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%%%s%%' " ..
                     "AND pid <> pg_backend_pid()"):format(marker)
    local c = assert(postgres.connect(URL, { timeout = 0.5 }))
    local v, err = c:query(("SELECT pg_sleep(5) AS %s"):format(marker))
    assert.are.same({ nil, "timeout" }, { v, err })
    c:close()
    local t0, n = health.now(), nil
    H.wait_until(function() n = assert(watcher:query(running))[1].n return n == 0 end, 2, 0.05)
    assert.are.equal(0, n, "the backend still runs the query")
    assert.is_true(health.now() - t0 < 2)
    watcher:close()
  end)

  it("raises on misuse, with the password masked", function()
    assert.has_error(function() postgres.connect(42) end)
    local ok, err = pcall(postgres.connect, "postgresql://ha:pw%zzSECRET@h/x")
    assert.is_false(ok)
    assert.truthy(err:find("invalid percent-encoded token", 1, true), err)
    assert.falsy(err:find("SECRET", 1, true), err)
    assert.has_error(function() postgres.connect("host=a,b") end)
    assert.has_error(function() postgres.connect(URL, { timeout = "soon" }) end)
    local c = assert(postgres.connect(URL))
    assert.has_error(function() c:query() end)
    c:close()
    assert.are.equal("postgresql://ha:***@h/x password=*** x", postgres.redact("postgresql://ha:pw@h/x password='a b' x"))
  end)
end)

describe("health.checks.postgres", function()
  after_each(function()
    settle()
    assert.are.equal(0, testing.handles())
  end)

  local function load(src)
    return assert(testing.load({ ["p.lua"] = src }, { autorun = false }))
  end

  it("is UP when the query succeeds", function()
    local g = load(('health.checks.postgres { name = "db", url = %q, timeout = 5 }'):format(URL))
    local r = g:run("db")
    assert.are.equal("UP", r.status)
    assert.are.equal("1 row", r.output)
    assert.are.equal('{"rows":1}', r.details)
    g:close()
  end)

  it("is DOWN on a wrong password and an unknown database, without the password", function()
    local secret = "Very-Secret-88"
    local g = load(('health.checks.postgres { name = "a", url = %q }\nhealth.checks.postgres { name = "b", url = %q, query = "SELECT nope" }')
      :format(url(nil, nil, secret), url(nil, "nodb", secret)))
    local a, b = g:run("a"), g:run("b")
    assert.are.equal("DOWN", a.status)
    assert.are.equal('auth failed: password authentication failed for user "ha"', a.output)
    assert.are.equal("DOWN", b.status)
    for _, r in ipairs { a, b } do
      for _, v in pairs(r) do assert.falsy(tostring(v):find(secret, 1, true)) end
    end
    g:close()
  end)

  it("ends at the check's deadline when the server is stopped", function()
    local g = load(([[
      health.checks.postgres { name = "db", url = %q, timeout = 0.5 }
      health.checks.postgres { name = "slow", url = %q, timeout = 0.5, query = "SELECT pg_sleep(5)" }
    ]]):format(URL, URL))
    H.db_stopped_server(g, "db", "pg") -- the postmaster: new connections hang
    local r = g:run("slow") -- a query that outlives the deadline
    assert.are.equal("timeout after 500ms", r.output)
    assert.is_true(r.duration_ms >= 490 and r.duration_ms < 800, "took " .. r.duration_ms)
    g:close()
  end)

  it("leaves no fd or handle behind after 1,000 runs", function()
    H.db_no_leaks("postgres", { refused = url(env.HA_REFUSED_PORT), ok = URL, silent = url(env.HA_SILENT_PORT) })
  end)
end)
