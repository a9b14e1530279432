-- health.tcp and the tcp / tls_expiry factories, against the harness's real
-- servers and fault fixtures:
--   HA_HARNESS_DIR=... busted --lua=build/healthagent tests/unit/tcp_spec.lua
-- The spec's main chunk is a task without a deadline, so tcp calls made here
-- yield like in a check; every call passes its own timeout.
local testing = require "health.testing"
local tcp = require "health.tcp"
local H = require "helpers.spec"

local env = H.env()
local HOST = env.HA_HOST

local function load(files, opts)
  if type(files) == "string" then
    files = { ["t.lua"] = files }
  end
  return assert(testing.load(files, opts))
end

-- Runs f and returns its results followed by the seconds it took.
local function timed(f, ...)
  local t0 = health.now()
  local r = table.pack(f(...))
  r[r.n + 1] = health.now() - t0
  return table.unpack(r, 1, r.n + 1)
end

local function within(dt, lo, hi)
  assert.is_true(dt >= lo and dt <= hi, ("took %.3f s, expected %.2f..%.2f"):format(dt, lo, hi))
end

local function tls_opts(extra)
  local o = { tls = true, ca_file = env.HA_CA_FILE, timeout = 2 }
  for k, v in pairs(extra or {}) do
    o[k] = v
  end
  return o
end

local fds_before, list_before

setup(function()
  -- libuv opens a spare descriptor (/dev/null) for its loop with the first
  -- stream: take that one before counting
  tcp.connect(HOST, env.HA_REFUSED_PORT, { timeout = 1 })
end)

before_each(function()
  H.settle()
  fds_before, list_before = H.fds(), H.fd_list()
end)

after_each(function()
  H.settle()
  assert.equal(0, testing.handles())
  local now = H.fds()
  assert.equal(fds_before, now, "file descriptors leaked:\n" .. list_before .. "\nnow:\n" .. H.fd_list())
end)

describe("tcp.connect", function()
  it("talks HTTP/1.0 to the upstream: lines, byte counts and the rest until close", function()
    local s, err = tcp.connect(HOST, env.HA_HTTP_PORT, { timeout = 2 })
    assert.is_nil(err)
    assert.equal(HOST .. ":" .. env.HA_HTTP_PORT, s:address())
    assert.equal(20, s:send("GET /ok HTTP/1.0\r\n\r\n"))
    assert.equal("HTTP/1.1 200 OK", s:receive("*l")) -- no CR, no LF
    local headers = {}
    repeat
      local line = assert(s:receive()) -- "*l" is the default
      headers[#headers + 1] = line
    until line == ""
    assert.truthy(table.concat(headers, "\n"):lower():find("content%-length: 2"))
    assert.equal("o", s:receive(1))
    assert.equal("k", s:receive(1))
    assert.equal("", s:receive("*a")) -- the server closed: all of nothing
    local data, e, partial = s:receive("*l")
    assert.is_nil(data)
    assert.equal("closed", e)
    assert.equal("", partial)
    s:close()
    assert.same({ nil, "closed" }, { s:send("x") })
    s:close() -- twice is fine
  end)

  it("returns what arrived as the partial result when the peer closes early", function()
    local s = assert(tcp.connect(HOST, env.HA_HTTP_PORT, { timeout = 2 }))
    assert(s:send("GET /ok HTTP/1.0\r\n\r\n"))
    local data, err, partial = s:receive(100000)
    assert.is_nil(data)
    assert.equal("closed", err)
    assert.matches("^HTTP/1.1 200 OK\r\n.*\r\n\r\nok$", partial)
    s:close()
  end)

  it("reads a large body with receive(n) and *a", function()
    local s <close> = assert(tcp.connect(HOST, env.HA_HTTP_PORT, { timeout = 5 }))
    assert(s:send("GET /big HTTP/1.0\r\n\r\n"))
    repeat
      local line = assert(s:receive("*l"))
    until line == ""
    local first = assert(s:receive(1000))
    assert.equal(("x"):rep(1000), first)
    local rest = assert(s:receive("*a"))
    assert.equal(10 * 1024 * 1024 - 1000, #rest)
    assert.is_nil(rest:find("[^x]"))
  end)

  it("resolves names and tries every address (localhost)", function()
    local s = assert(tcp.connect("localhost", env.HA_HTTP_PORT, { timeout = 2 }))
    assert.equal("127.0.0.1:" .. env.HA_HTTP_PORT, s:address())
    s:close()
  end)

  it("says which name has no address", function()
    local s, err = tcp.connect("no-such-host.invalid", 80, { timeout = 5 })
    assert.is_nil(s)
    assert.equal("cannot resolve host 'no-such-host.invalid'", err)
  end)

  it("reports a refused port at once", function()
    local s, err, dt = timed(tcp.connect, HOST, env.HA_REFUSED_PORT, { timeout = 2 })
    assert.is_nil(s)
    assert.equal("connection refused", err)
    within(dt, 0, 0.2)
  end)

  it("times out on a full backlog at the timeout given", function()
    local s, err, dt = timed(tcp.connect, HOST, env.HA_BACKLOG_PORT, { timeout = 0.3 })
    assert.is_nil(s)
    assert.equal("timeout", err)
    within(dt, 0.29, 0.45)
    -- durations as strings work too
    s, err, dt = timed(tcp.connect, HOST, env.HA_BACKLOG_PORT, { timeout = "150ms" })
    assert.equal("timeout", err)
    within(dt, 0.14, 0.3)
  end)

  it("times out a receive from a silent server, then the socket is closed", function()
    local s = assert(tcp.connect(HOST, env.HA_SILENT_PORT, { timeout = 2 }))
    assert.equal(5, s:send("hello"))
    local data, err, dt = timed(s.receive, s, "*l", { timeout = 0.2 })
    assert.is_nil(data)
    assert.equal("timeout", err)
    within(dt, 0.19, 0.35)
    assert.same({ nil, "closed" }, { s:send("more") })
    assert.same({ nil, "closed", "" }, { s:receive(1) })
    s:close()
  end)

  it("uses the connect timeout for later calls, and settimeout changes it", function()
    local s = assert(tcp.connect(HOST, env.HA_SILENT_PORT, { timeout = 0.15 }))
    local data, err, dt = timed(s.receive, s, 1)
    assert.equal("timeout", err)
    within(dt, 0.14, 0.3)
    s = assert(tcp.connect(HOST, env.HA_SILENT_PORT, { timeout = 2 }))
    s:settimeout(0.1)
    data, err, dt = timed(s.receive, s, "*a")
    assert.is_nil(data)
    assert.equal("timeout", err)
    within(dt, 0.09, 0.25)
  end)

  it("gets a trickle byte by byte but times out waiting for all of it", function()
    local s = assert(tcp.connect(HOST, env.HA_TRICKLE_PORT, { timeout = 3 }))
    local b, err = s:receive(1)
    assert.is_nil(err)
    assert.equal(1, #b)
    local data, dt
    data, err, dt = timed(s.receive, s, "*a", { timeout = 1.2 })
    assert.is_nil(data)
    assert.equal("timeout", err)
    within(dt, 1.19, 1.4)
    s:close()
  end)

  it("sees a clean close and a reset", function()
    local s = assert(tcp.connect(HOST, env.HA_CLOSE_PORT, { timeout = 2 }))
    assert.equal("", s:receive("*a"))
    s:close()
    -- the reset may come before libuv reports the connect done: then the
    -- connect itself fails with it
    local err
    s, err = tcp.connect(HOST, env.HA_RESET_PORT, { timeout = 2 })
    if s then
      local data
      data, err = s:receive("*a")
      assert.is_nil(data)
      s:close()
    end
    assert.equal("connection reset", err)
  end)

  it("raises on misuse", function()
    assert.has_error(function() tcp.connect() end)
    assert.has_error(function() tcp.connect(HOST, 0) end)
    assert.has_error(function() tcp.connect(HOST, 70000) end)
    assert.has_error(function() tcp.connect(HOST, 80, { timeout = -1 }) end)
    assert.has_error(function() tcp.connect(HOST, 80, { tls = "yes" }) end)
    assert.has_error(function() tcp.connect(HOST, 80, { sni = "x" }) end, "health.tcp.connect: options 'sni' and 'ca_file' need tls = true")
    assert.has_error(function() tcp.connect(HOST, 80, { bogus = 1 }) end, "health.tcp.connect: unknown option 'bogus'")
    local s = assert(tcp.connect(HOST, env.HA_HTTP_PORT, { timeout = 2 }))
    assert.has_error(function() s:receive("*x") end)
    assert.has_error(function() s:send({}) end)
    assert.has_error(function() s:certificate() end, "certificate: not a TLS socket")
    s:close()
  end)

  it("cannot be called while a script loads, and says where", function()
    local g, err = testing.load({ ["early.lua"] = [[
local tcp = require "health.tcp"
tcp.connect("127.0.0.1", 1)
]] })
    assert.is_nil(g)
    assert.matches("^early.lua:2: health.tcp.connect: called outside a check run", err)
  end)
end)

describe("tcp.connect with tls", function()
  it("verifies the harness certificate with its CA, by name and by address", function()
    for _, host in ipairs({ "localhost", HOST }) do
      local s, err = tcp.connect(host, env.HA_HTTPS_PORT, tls_opts())
      assert.is_nil(err)
      assert(s:send("GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
      assert.equal("HTTP/1.1 200 OK", s:receive("*l"))
      local rest = assert(s:receive("*a"))
      assert.matches("\r\n\r\nok$", rest)
      s:close()
    end
  end)

  it("describes the peer certificate", function()
    local s = assert(tcp.connect(HOST, env.HA_HTTPS_PORT, tls_opts()))
    local c = assert(s:certificate())
    s:close()
    assert.equal("CN=localhost", c.subject)
    assert.equal("CN=healthagent test CA", c.issuer)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", c.not_after)
    assert.equal("integer", math.type(c.days_left))
    assert.is_true(c.days_left >= 820 and c.days_left <= 825, "days_left " .. c.days_left)
    -- still there after close
    assert.equal("CN=localhost", s:certificate().subject)
  end)

  it("fails verification against the system trust store", function()
    local s, err = tcp.connect(HOST, env.HA_HTTPS_PORT, { tls = true, timeout = 2 })
    assert.is_nil(s)
    assert.equal("tls: certificate verify failed: unable to get local issuer certificate", err)
  end)

  it("refuses an expired certificate, but shows it without verification", function()
    local s, err = tcp.connect(HOST, env.HA_HTTPS_EXPIRED_PORT, tls_opts())
    assert.is_nil(s)
    assert.equal("tls: certificate has expired", err)
    s = assert(tcp.connect(HOST, env.HA_HTTPS_EXPIRED_PORT, tls_opts({ verify = false })))
    local c = assert(s:certificate())
    s:close()
    assert.equal("2020-02-01T00:00:00Z", c.not_after)
    assert.is_true(c.days_left < -365)
  end)

  it("checks the name given as sni", function()
    local s, err = tcp.connect(HOST, env.HA_HTTPS_PORT, tls_opts({ sni = "wrong.example" }))
    assert.is_nil(s)
    assert.equal("tls: certificate does not match host name 'wrong.example'", err) -- as health.http says it
    s = assert(tcp.connect(HOST, env.HA_HTTPS_PORT, tls_opts({ sni = "localhost" })))
    s:close()
    s = assert(tcp.connect(HOST, env.HA_HTTPS_PORT, tls_opts({ sni = "wrong.example", verify = false })))
    s:close()
  end)

  it("fails the handshake cleanly on a plain-text or silent server", function()
    local s, err = tcp.connect(HOST, env.HA_HTTP_PORT, tls_opts())
    assert.is_nil(s)
    assert.matches("^tls: ", err)
    s, err = tcp.connect(HOST, env.HA_SILENT_PORT, tls_opts({ timeout = 0.2 }))
    assert.is_nil(s)
    assert.equal("timeout", err)
    s, err = tcp.connect(HOST, env.HA_CLOSE_PORT, tls_opts())
    assert.is_nil(s)
    assert.equal("tls: handshake failed: closed", err)
  end)

  it("reports an unreadable ca_file", function()
    local s, err = tcp.connect(HOST, env.HA_HTTPS_PORT, tls_opts({ ca_file = "/nonexistent/ca.pem" }))
    assert.is_nil(s)
    assert.equal("tls: cannot read ca_file /nonexistent/ca.pem", err)
  end)
end)

describe("tcp in checks", function()
  it("ends a check whose deadline passes while it receives, closing the socket", function()
    local g = load(([[
local tcp = require "health.tcp"
health.check { name = "stuck", timeout = "300ms", run = function()
  local s = assert(tcp.connect("%s", %d))
  s:send("hi")
  s:receive("*l")
  return true
end }
]]):format(HOST, env.HA_SILENT_PORT))
    local fds = H.fds()
    local r = g:run("stuck")
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 300ms", r.output)
    within(r.duration_ms / 1000, 0.29, 0.45)
    assert.equal(fds, H.fds(), "the socket is closed without waiting for GC")
    g:close()
  end)

  it("passes API yields through user coroutines", function()
    local g = load(([[
local tcp = require "health.tcp"
health.check { name = "co", run = function()
  local get = coroutine.wrap(function()
    local s <close> = assert(tcp.connect("%s", %d, { timeout = 2 }))
    s:send("GET /ok HTTP/1.0\r\n\r\n")
    return s:receive("*l")
  end)
  return true, get()
end }
]]):format(HOST, env.HA_HTTP_PORT))
    local r = g:run("co")
    assert.equal("UP", r.status)
    assert.equal("HTTP/1.1 200 OK", r.output)
    g:close()
  end)

  it("health.checks.tcp: UP with address and connect time, DOWN with the reason", function()
    local g = load(([[
health.checks.tcp { name = "up", host = "%s", port = %d }
health.checks.tcp { name = "tls", host = "localhost", port = %d, tls = true, ca_file = "%s" }
health.checks.tcp { name = "refused", host = "%s", port = %d }
health.checks.tcp { name = "hang", host = "%s", port = %d, timeout = "250ms" }
health.checks.tcp { name = "hang2", host = "%s", port = %d, connect_timeout = 0.1 }
]]):format(HOST, env.HA_HTTP_PORT, env.HA_HTTPS_PORT, env.HA_CA_FILE, HOST, env.HA_REFUSED_PORT, HOST,
      env.HA_BACKLOG_PORT, HOST, env.HA_BACKLOG_PORT))
    local r = g:run("up")
    assert.equal("UP", r.status)
    assert.equal("connected to " .. HOST .. ":" .. env.HA_HTTP_PORT, r.output)
    assert.matches('"address":"127.0.0.1:' .. env.HA_HTTP_PORT .. '"', r.details)
    assert.matches('"connect_ms":%d+', r.details)
    r = g:run("tls")
    assert.equal("UP", r.status)
    r = g:run("refused")
    assert.equal("DOWN", r.status)
    assert.equal(HOST .. ":" .. env.HA_REFUSED_PORT .. ": connection refused", r.output)
    r = g:run("hang")
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 250ms", r.output)
    r = g:run("hang2")
    assert.equal("DOWN", r.status)
    assert.equal(HOST .. ":" .. env.HA_BACKLOG_PORT .. ": timeout", r.output)
    within(r.duration_ms / 1000, 0.09, 0.25)
    g:close()
  end)

  it("health.checks.tcp rejects bad options at the caller's line", function()
    local g, err = testing.load({ ["f.lua"] = "\nhealth.checks.tcp { name = 'x', host = 'h', port = 0 }" })
    assert.is_nil(g)
    assert.matches("^f.lua:2: health.checks.tcp: option 'port'", err)
    g, err = testing.load({ ["f.lua"] = "health.checks.tcp { name = 'x', host = 'h', port = 1, colour = 1 }" })
    assert.is_nil(g)
    assert.matches("^f.lua:1: health.checks.tcp: unknown option 'colour'", err)
  end)

  it("health.checks.tls_expiry: UP, WARN and DOWN by days left", function()
    local function src(name, port, min_days)
      return ('health.checks.tls_expiry { name = "%s", host = "%s", port = %d, min_days = %d }\n')
        :format(name, HOST, port, min_days)
    end
    local g = load(src("fine", env.HA_HTTPS_PORT, 30) .. src("warn", env.HA_HTTPS_PORT, 500)
      .. src("soon", env.HA_HTTPS_PORT, 900) .. src("expired", env.HA_HTTPS_EXPIRED_PORT, 30)
      .. src("refused", env.HA_REFUSED_PORT, 30))
    local r = g:run("fine")
    assert.equal("UP", r.status)
    assert.matches("^certificate valid for 82%d more days %(until %d+%-", r.output)
    assert.matches('"subject":"CN=localhost"', r.details)
    assert.matches('"days_left":82%d', r.details)
    assert.matches('"not_after":"%d+%-%d%d%-%d%dT', r.details)
    r = g:run("warn")
    assert.equal("WARN", r.status)
    assert.matches("^certificate expires in 82%d days", r.output)
    r = g:run("soon")
    assert.equal("DOWN", r.status)
    assert.matches("^certificate expires in 82%d days %(on .*%), fewer than 900$", r.output)
    r = g:run("expired")
    assert.equal("DOWN", r.status)
    assert.matches("^certificate expired on 2020%-02%-01T00:00:00Z %(%d+ days ago%)$", r.output)
    r = g:run("refused")
    assert.equal("DOWN", r.status)
    assert.equal(HOST .. ":" .. env.HA_REFUSED_PORT .. ": connection refused", r.output)
    g:close()
  end)
end)

describe("tcp under load", function()
  it("1,000 failing runs (refused, timeouts, cancellations) leave no fd or handle behind", function()
    local src, names = {}, {}
    local function add(kind, n, body)
      for i = 1, n do
        local name = kind .. i
        names[#names + 1] = name
        src[#src + 1] = body:gsub("NAME", name)
      end
    end
    local common = ('host = "%s", interval = "10ms"'):format(HOST)
    add("refused", 20, ('health.checks.tcp { name = "NAME", %s, port = %d }'):format(common, env.HA_REFUSED_PORT))
    add("byname", 5, ('health.checks.tcp { name = "NAME", %s, port = %d }'):gsub("host = \"[^\"]*\"", 'host = "localhost"')
      :format(common, env.HA_REFUSED_PORT))
    add("backlog", 20, ('health.checks.tcp { name = "NAME", %s, port = %d, connect_timeout = 0.1 }')
      :format(common, env.HA_BACKLOG_PORT))
    add("silent", 20, ([[
health.check { name = "NAME", interval = "10ms", run = function()
  local s = assert(require("health.tcp").connect("%s", %d, { timeout = 1 }))
  local _, err = s:receive("*l", { timeout = 0.1 })
  s:close()
  return false, err
end }]]):format(HOST, env.HA_SILENT_PORT))
    add("killed", 20, ([[
health.check { name = "NAME", interval = "10ms", timeout = "120ms", run = function()
  local s = assert(require("health.tcp").connect("%s", %d))
  s:receive("*l")
end }]]):format(HOST, env.HA_SILENT_PORT))
    add("forgot", 5, ([[
health.check { name = "NAME", interval = "10ms", run = function()
  local s = assert(require("health.tcp").connect("%s", %d, { timeout = 1 }))
  return false, "never closed " .. tostring(s)
end }]]):format(HOST, env.HA_HTTP_PORT))
    local fds = H.fds()
    local g = load({ ["load.lua"] = table.concat(src, "\n") }, { autorun = true })
    local total, each = H.wait_runs(g, names, 1000, 20)
    local per = {}
    for name, n in pairs(each) do
      local kind = name:match("^%a+")
      per[kind] = (per[kind] or 0) + n
    end
    g:close()
    assert.is_true(total >= 1000, "only " .. total .. " runs")
    for _, kind in ipairs({ "refused", "byname", "backlog", "silent", "killed", "forgot" }) do
      assert.is_true((per[kind] or 0) >= 20, kind .. " ran " .. tostring(per[kind]) .. " times")
    end
    H.settle()
    assert.equal(0, testing.handles())
    assert.equal(fds, H.fds(), "file descriptors leaked:\n" .. H.fd_list())
  end)
end)
