-- health.mysql and health.checks.mysql against the harness' private MariaDB
-- (user ha / ha-secret, database hadb) and its fault fixtures. Run:
--   HA_HARNESS_DIR=/tmp/ha-harness busted --lua=build/healthagent tests/unit/mysql_spec.lua
local mysql = require "health.mysql"
local testing = require "health.testing"
local H = require "helpers.spec"

local env = H.env()
local PW = env.HA_MARIADB_PASSWORD
local function url(port, db, pw, host)
  return ("mysql://%s:%s@%s:%d/%s"):format(env.HA_MARIADB_USER, pw or PW, host or "127.0.0.1",
    port or env.HA_MARIADB_PORT, db or env.HA_MARIADB_DATABASE)
end
local URL = url()

local fds, settle, elapsed = H.fds, H.settle, H.elapsed
local function server(cmd) H.server("mariadb", cmd) end

describe("health.mysql", function()
  after_each(function()
    settle()
    assert.are.equal(0, testing.handles())
  end)

  it("queries rows with converted types", function()
    local c = assert(mysql.connect(URL, { timeout = 5 }))
    local rows = assert(c:query([[SELECT 1 AS one, 2.5e0 AS f, NULL AS n, 'x' AS t, 12345678901234 AS big,
      1.50 AS num, CAST(18446744073709551615 AS UNSIGNED) AS u]]))
    assert.are.same({ { one = 1, f = 2.5, t = "x", big = 12345678901234, num = "1.50", u = "18446744073709551615" } }, rows)
    assert.are.equal("integer", math.type(rows[1].one))
    assert.are.same({ { id = 1, name = "one" }, { id = 2, name = "two" } }, c:query("SELECT id, name FROM items ORDER BY id"))
    assert.are.same({}, c:query("CREATE TEMPORARY TABLE t (a int)"))
    assert.are.same({ nil, "Table 'hadb.nope' doesn't exist" }, { c:query("SELECT * FROM nope") })
    assert.are.same({ { ok = 1 } }, c:query("SELECT 1 AS ok")) -- usable after an error
    c:close()
    c:close()
    assert.are.same({ nil, "closed" }, { c:query("SELECT 1") })
  end)

  it("resolves a host name", function()
    local c = assert(mysql.connect(url(nil, nil, nil, "localhost")))
    assert.are.same({ { x = 1 } }, c:query("SELECT 1 AS x"))
    c:close()
  end)

  it("reports a wrong password without the password", function()
    local secret = "Wr0ng-Secret-pw"
    local c, err = mysql.connect(url(nil, nil, secret))
    assert.is_nil(c)
    assert.are.equal("auth failed: Access denied for user 'ha'@'127.0.0.1' (using password: YES)", err)
    assert.falsy(err:find(secret, 1, true))
  end)

  it("reports an unknown database, a refused port, an unknown host, a closed connection", function()
    -- ha has no global SELECT: the server answers 1044 for a missing database
    assert.are.same({ nil, "unknown database 'nodb' (or access denied)" }, { mysql.connect(url(nil, "nodb")) })
    assert.are.same({ nil, "connection refused" }, { mysql.connect(url(env.HA_REFUSED_PORT)) })
    assert.are.same({ nil, "cannot resolve host 'no-such-host.invalid'" }, { mysql.connect("mysql://ha:x@no-such-host.invalid/db") })
    local c, err = mysql.connect(url(env.HA_CLOSE_PORT))
    assert.is_nil(c)
    assert.equal("closed", err) -- as in every module
  end)

  it("times out connects to a full backlog and a silent server", function()
    for _, port in ipairs { env.HA_BACKLOG_PORT, env.HA_SILENT_PORT } do
      local c, err, dt = elapsed(function() return mysql.connect(url(port), { timeout = 0.3 }) end)
      assert.are.same({ nil, "timeout" }, { c, err })
      assert.is_true(dt >= 0.25 and dt < 0.6, "took " .. dt)
    end
  end)

  it("kills a timed-out query on the server (PROCESSLIST)", function()
    local marker = "ha_kill_" .. math.random(1e6)
    local watcher = assert(mysql.connect(URL, { timeout = 5 }))
    local running = ("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE '%%%s%%' " ..
                     "AND ID <> CONNECTION_ID()"):format(marker)
    local c = assert(mysql.connect(URL, { timeout = 0.5 }))
    local v, err = c:query(("SELECT SLEEP(5) AS %s"):format(marker))
    assert.are.same({ nil, "timeout" }, { v, err })
    c:close()
    local n
    H.wait_until(function() n = assert(watcher:query(running))[1].n return n == 0 end, 2, 0.05)
    assert.are.equal(0, n, "the server still runs the query")
    watcher:close()
  end)

  it("times out a query and a connect on a stopped server, then works again", function()
    local c = assert(mysql.connect(URL, { timeout = 0.4 }))
    server("pause")
    local ok, v, err, dt = pcall(elapsed, function() return c:query("SELECT 1") end)
    local ok2, c2, err2, dt2 = pcall(elapsed, function() return mysql.connect(URL, { timeout = 0.4 }) end)
    server("resume")
    assert.is_true(ok, v)
    assert.are.same({ nil, "timeout" }, { v, err })
    assert.is_true(dt >= 0.35 and dt < 0.7, "took " .. dt)
    assert.is_true(ok2, c2)
    assert.are.same({ nil, "timeout" }, { c2, err2 })
    assert.is_true(dt2 >= 0.35 and dt2 < 0.7, "took " .. dt2)
    assert.are.same({ nil, "closed" }, { c:query("SELECT 1") })
    c:close()
    c = assert(mysql.connect(URL, { timeout = 5 }))
    assert.are.same({ { x = 1 } }, c:query("SELECT 1 AS x"))
    c:close()
  end)

  it("raises on misuse", function()
    assert.has_error(function() mysql.connect(42) end)
    assert.has_error(function() mysql.connect("postgresql://h/x") end)
    assert.has_error(function() mysql.connect("mysql://ha:pw@h:99999/x") end)
    assert.has_error(function() mysql.connect(URL, { timeout = {} }) end)
    local c = assert(mysql.connect(URL))
    assert.has_error(function() c:query() end)
    c:close()
  end)
end)

describe("health.checks.mysql", function()
  after_each(function()
    settle()
    assert.are.equal(0, testing.handles())
  end)

  local function load(src)
    return assert(testing.load({ ["m.lua"] = src }, { autorun = false }))
  end

  it("is UP when the query succeeds", function()
    local g = load(('health.checks.mysql { name = "db", url = %q, query = "SELECT * FROM items", timeout = 5 }'):format(URL))
    local r = g:run("db")
    assert.are.equal("UP", r.status)
    assert.are.equal("2 rows", r.output)
    assert.are.equal('{"rows":2}', r.details)
    g:close()
  end)

  it("is DOWN on a wrong password and a bad query, without the password", function()
    local secret = "Very-Secret-99"
    local g = load(('health.checks.mysql { name = "a", url = %q }\nhealth.checks.mysql { name = "b", url = %q, query = "SELECT nope" }')
      :format(url(nil, nil, secret), URL))
    local a, b = g:run("a"), g:run("b")
    assert.are.equal("DOWN", a.status)
    assert.are.equal("auth failed: Access denied for user 'ha'@'127.0.0.1' (using password: YES)", a.output)
    assert.are.equal("DOWN", b.status)
    assert.truthy(b.output:match("^Unknown column 'nope' in "), b.output)
    for _, r in ipairs { a, b } do
      for _, v in pairs(r) do
        assert.falsy(tostring(v):find(secret, 1, true))
        assert.falsy(tostring(v):find(PW, 1, true))
      end
    end
    g:close()
  end)

  it("ends at the check's deadline when the server is stopped", function()
    local g = load(('health.checks.mysql { name = "db", url = %q, timeout = 0.5 }'):format(URL))
    H.db_stopped_server(g, "db", "mariadb")
    g:close()
  end)

  it("leaves no fd or handle behind after 1,000 runs", function()
    H.db_no_leaks("mysql", { refused = url(env.HA_REFUSED_PORT), ok = URL, silent = url(env.HA_SILENT_PORT) })
  end)
end)
