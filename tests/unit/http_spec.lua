-- health.http and health.checks.http against the harness upstreams:
--   HA_HARNESS_DIR=/tmp/ha-harness busted --lua=build/healthagent tests/unit/http_spec.lua
-- Real servers only (tests/harness/README.md); every spec ends with no libuv
-- handle left open.
local http = require "health.http"
local testing = require "health.testing"
local H = require "helpers.spec"

local env = H.env()
local HOST = env.HA_HOST

local function url(port, path) return ("http://%s:%d%s"):format(HOST, port, path or "/") end
local function surl(port, path) return ("https://%s:%d%s"):format(HOST, port, path or "/") end
local PLAIN = env.HA_HTTP_PORT

local elapsed = H.elapsed
local load = H.load

local fds = H.fds

-- Lets close callbacks of just-closed handles run.
local function settle() health.sleep(0.01) end

after_each(function()
  settle()
  collectgarbage()
  assert.equal(0, testing.handles())
end)

describe("http.request", function()
  it("returns status, lower-case headers, body and timing", function()
    local r, err = http.get(url(PLAIN, "/ok"))
    assert.is_nil(err)
    assert.equal(200, r.status)
    assert.equal("ok", r.body)
    assert.equal("text/plain", r.headers["content-type"])
    assert.equal("2", r.headers["content-length"])
    assert.is_nil(r.headers["Content-Type"])
    assert.equal("1.1", r.http_version)
    assert.is_false(r.truncated)
    assert.equal(0, r.redirects)
    assert.equal("number", math.type(r.time_ms) and "number")
    assert.is_true(r.time_ms >= 0 and r.time_ms < 1000)
  end)

  it("returns any status as a response, not an error", function()
    local r = assert(http.get(url(PLAIN, "/status/503")))
    assert.equal(503, r.status)
    assert.equal("status 503", r.body)
    r = assert(http.request { url = url(PLAIN, "/status/204") })
    assert.equal(204, r.status)
    assert.equal("", r.body)
  end)

  it("sends method, headers and body", function()
    local r = assert(http.request {
      url = url(PLAIN, "/echo?x=1"), method = "PUT", body = "hello\0world",
      headers = { ["X-Test"] = "yes", ["X-Num"] = 42 },
    })
    assert.equal(200, r.status)
    assert.matches('"method":"PUT"', r.body, 1, true)
    assert.matches('"x-test":"yes"', r.body, 1, true)
    assert.matches('"x-num":"42"', r.body, 1, true)
    assert.matches('"body":"hello\\u0000world"', r.body, 1, true)
    assert.matches('"user-agent":"healthagent/', r.body, 1, true)
    assert.not_matches('expect', r.body, 1, true)
    r = assert(http.request { url = url(PLAIN, "/echo"), body = "{}" })
    assert.matches('"method":"POST"', r.body, 1, true)
    r = assert(http.request { url = url(PLAIN, "/ok"), method = "HEAD" })
    assert.equal(200, r.status)
    assert.equal("", r.body)
  end)

  it("follows redirects only when asked", function()
    local r = assert(http.get(url(PLAIN, "/redirect")))
    assert.equal(302, r.status)
    assert.equal("/ok", r.headers.location)
    r = assert(http.get(url(PLAIN, "/redirect"), { follow = true }))
    assert.equal(200, r.status)
    assert.equal("ok", r.body)
    assert.equal(1, r.redirects)
    assert.is_nil(r.headers.location) -- the final response's headers only
    local _, err = http.get(url(PLAIN, "/redirect"), { follow = true, max_redirects = 0 })
    assert.equal("too many redirects", err)
  end)

  it("caps the body at 1 MiB and says so", function()
    assert.equal(1024 * 1024, http.max_body)
    local r = assert(http.get(url(PLAIN, "/big")))
    assert.equal(200, r.status)
    assert.equal(1024 * 1024, #r.body)
    assert.is_true(r.truncated)
    assert.equal(("x"):rep(16), r.body:sub(1, 16))
    r = assert(http.get(url(PLAIN, "/big"), { max_body = 10 }))
    assert.equal(("x"):rep(10), r.body)
    assert.is_true(r.truncated)
    r = assert(http.get(url(PLAIN, "/chunked"), { max_body = 1000 }))
    assert.equal("chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n", r.body)
    assert.is_false(r.truncated)
  end)

  it("speaks HTTP/2 cleartext with prior knowledge", function()
    local r = assert(http.get(url(env.HA_H2C_PORT, "/echo"), { http2 = "prior_knowledge" }))
    assert.equal(200, r.status)
    assert.equal("2", r.http_version)
    assert.matches('"httpVersion":"2.0"', r.body, 1, true)
  end)

  describe("over TLS", function()
    it("verifies against ca_file and negotiates h2 by ALPN", function()
      local r = assert(http.get(surl(env.HA_HTTPS_PORT, "/ok"), { ca_file = env.HA_CA_FILE }))
      assert.equal(200, r.status)
      assert.equal("ok", r.body)
      assert.equal("2", r.http_version)
      r = assert(http.get(surl(env.HA_HTTPS_PORT, "/ok"), { ca_file = env.HA_CA_FILE, http2 = false }))
      assert.equal("1.1", r.http_version)
    end)

    it("fails with a clear message without the CA", function()
      local r, err = http.get(surl(env.HA_HTTPS_PORT, "/ok"))
      assert.is_nil(r)
      assert.equal("tls: certificate verify failed: unable to get local issuer certificate", err) -- as health.tcp says it
      r = assert(http.get(surl(env.HA_HTTPS_PORT, "/ok"), { verify = false }))
      assert.equal(200, r.status)
    end)

    it("reports an expired certificate", function()
      local r, err = http.get(surl(env.HA_HTTPS_EXPIRED_PORT, "/ok"), { ca_file = env.HA_CA_FILE })
      assert.is_nil(r)
      assert.equal("tls: certificate has expired", err)
    end)

    it("reports a name mismatch", function()
      local r, err = http.get(("https://wrong.test:%d/ok"):format(env.HA_HTTPS_PORT), {
        ca_file = env.HA_CA_FILE, connect_to = HOST .. ":" .. env.HA_HTTPS_PORT,
      })
      assert.is_nil(r)
      assert.equal("tls: certificate does not match host name 'wrong.test'", err)
    end)

    it("reports TLS spoken to a plain HTTP port", function()
      local r, err = http.get(surl(PLAIN, "/ok"))
      assert.is_nil(r)
      assert.matches("^tls: ", err)
    end)
  end)

  describe("faults", function()
    it("connection refused", function()
      local r, err, dt = elapsed(http.get, url(env.HA_REFUSED_PORT))
      assert.is_nil(r)
      assert.equal("connection refused", err)
      assert.is_true(dt < 0.5)
    end)

    it("a server that closes at once", function()
      assert.same({ nil, "closed" }, { http.get(url(env.HA_CLOSE_PORT)) })
    end)

    it("a server that resets at once", function()
      assert.same({ nil, "connection reset" }, { http.get(url(env.HA_RESET_PORT)) })
    end)

    it("a slow answer beyond the timeout ends at the timeout", function()
      local r, err, dt = elapsed(http.get, url(PLAIN, "/slow?ms=3000"), { timeout = 0.3 })
      assert.is_nil(r)
      assert.equal("timeout", err)
      assert.is_true(dt >= 0.29 and dt < 0.6, "took " .. dt)
      r = assert(http.get(url(PLAIN, "/slow?ms=100"), { timeout = "2s" }))
      assert.equal("slow", r.body)
      assert.is_true(r.time_ms >= 95, "time_ms " .. r.time_ms)
    end)

    it("a full backlog (connect hangs) ends at the timeout", function()
      local r, err, dt = elapsed(http.get, url(env.HA_BACKLOG_PORT), { timeout = 0.3 })
      assert.is_nil(r)
      assert.equal("timeout", err)
      assert.is_true(dt >= 0.29 and dt < 0.6, "took " .. dt)
    end)

    it("a silent server ends at the timeout", function()
      local _, err, dt = elapsed(http.get, url(env.HA_SILENT_PORT), { timeout = 0.3 })
      assert.equal("timeout", err)
      assert.is_true(dt >= 0.29 and dt < 0.6, "took " .. dt)
    end)

    it("a trickling server ends at the timeout", function()
      local _, err, dt = elapsed(http.get, url(env.HA_TRICKLE_PORT), { timeout = 1.2 })
      assert.equal("timeout", err)
      assert.is_true(dt >= 1.19 and dt < 1.6, "took " .. dt)
    end)

    it("a missing unix socket", function()
      local _, err = http.get("http://localhost/ok", { unix_socket = "/nonexistent/http.sock" })
      assert.equal("connect failed: No such file or directory", err)
    end)

    it("an unknown host", function()
      local _, err = http.get("http://no-such-host.invalid/ok", { timeout = 5 })
      assert.equal("cannot resolve host 'no-such-host.invalid'", err)
    end)
  end)

  it("never shows URL credentials", function()
    local r, err = http.get(("http://alice:s3cr3t-pw@%s:%d/"):format(HOST, env.HA_REFUSED_PORT))
    assert.is_nil(r)
    assert.equal("connection refused", err)
    local ok, msg = pcall(http.get, "ftp://alice:s3cr3t-pw@example.org/")
    assert.is_false(ok)
    assert.not_matches("s3cr3t", msg, 1, true)
    -- credentials are sent as basic auth, and echoed only by the server
    r = assert(http.get(("http://alice:s3cr3t-pw@%s:%d/echo"):format(HOST, PLAIN)))
    assert.matches('"authorization":"Basic ', r.body, 1, true)
  end)

  describe("misuse raises with the caller's line", function()
    it("bad arguments", function()
      assert.has_error(function() http.request("x") end)
      assert.has_error(function() http.request {} end)
      local ok, msg = pcall(http.request, { url = url(PLAIN), tiemout = 1 })
      assert.is_false(ok)
      assert.matches("unknown option 'tiemout'", msg, 1, true)
      ok, msg = pcall(http.get, url(PLAIN), { headers = { ["X-A"] = "a\r\nX-Evil: 1" } })
      assert.is_false(ok)
      assert.matches("line break", msg, 1, true)
      ok, msg = pcall(http.get, "file:///etc/passwd")
      assert.is_false(ok)
      assert.matches("http:// or https://", msg, 1, true)
      ok, msg = pcall(http.get, url(PLAIN), { timeout = -1 })
      assert.is_false(ok)
      ok, msg = pcall(http.get, url(PLAIN), { http2 = "yes" })
      assert.is_false(ok)
    end)

    it("outside a check run", function()
      local g, err = testing.load({ ["early.lua"] = "local http = require 'health.http'\nhttp.get('http://127.0.0.1/')\n" })
      assert.is_nil(g)
      assert.matches("early.lua:2: health.http.get: called outside a check run", err, 1, true)
    end)

    it("inside a check, the script's file:line", function()
      local g = load([[
local http = require "health.http"
health.check { name = "bad", run = function()
  return http.get(42)
end }
]], "bad.lua")
      local r = g:run("bad")
      assert.equal("DOWN", r.status)
      assert.matches("^bad.lua:3: ", r.output)
      g:close()
    end)
  end)

  it("a check deadline during a request ends DOWN and closes everything", function()
    local before = fds()
    local g = load(([[
local http = require "health.http"
health.check { name = "slow", timeout = 0.3, run = function()
  local r, err = http.get("%s")
  return r ~= nil, err
end }
health.check { name = "hang", timeout = 0.3, run = function()
  return http.get("%s") ~= nil
end }
]]):format(url(PLAIN, "/slow?ms=5000"), url(env.HA_BACKLOG_PORT)))
    for _, name in ipairs { "slow", "hang" } do
      local r, _, dt = elapsed(g.run, g, name)
      assert.equal("DOWN", r.status)
      assert.equal("timeout after 300ms", r.output)
      assert.is_true(dt >= 0.29 and dt < 0.7, "took " .. dt)
    end
    g:close()
    settle()
    assert.equal(0, testing.handles())
    assert.equal(before, fds())
  end)
end)

describe("health.checks.http", function()
  local function check(fields)
    return load(("health.checks.http { name = 'c', %s }"):format(fields))
  end

  it("UP on the expected status, DOWN otherwise, with details", function()
    local g = check(("url = %q"):format(url(PLAIN, "/ok")))
    local r = g:run("c")
    assert.equal("UP", r.status)
    assert.matches("^status 200 in %d+ ms$", r.output)
    assert.matches('"status":200', r.details, 1, true)
    g:close()
    g = check(("url = %q"):format(url(PLAIN, "/status/503")))
    r = g:run("c")
    assert.equal("DOWN", r.status)
    assert.equal("status 503, expected 200", r.output)
    g:close()
    g = check(("url = %q, expect_status = {200, 503}"):format(url(PLAIN, "/status/503")))
    assert.equal("UP", g:run("c").status)
    g:close()
  end)

  it("matches the body against expect_body", function()
    local g = check(("url = %q, expect_body = '^ok$'"):format(url(PLAIN, "/ok")))
    assert.equal("UP", g:run("c").status)
    g:close()
    g = check(("url = %q, expect_body = 'ready'"):format(url(PLAIN, "/ok")))
    local r = g:run("c")
    assert.equal("DOWN", r.status)
    assert.equal("body does not match the expected pattern", r.output)
    g:close()
  end)

  it("DOWN with the request's error, never the URL's password", function()
    local g = check(("url = %q"):format(("http://bob:pa55w0rd@%s:%d/"):format(HOST, env.HA_REFUSED_PORT)))
    local r = g:run("c")
    assert.equal("DOWN", r.status)
    assert.equal("connection refused", r.output)
    assert.not_matches("pa55w0rd", r.output .. (r.details or ""), 1, true)
    g:close()
  end)

  it("takes health.check fields and request options", function()
    local g = check(("url = %q, timeout = 0.3, interval = 60, failure_threshold = 2, follow = true, method = 'GET'")
      :format(url(PLAIN, "/redirect")))
    assert.equal("UP", g:run("c").status)
    g:close()
    g = check(("url = %q, timeout = 0.3"):format(url(PLAIN, "/slow?ms=2000")))
    local r = g:run("c")
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 300ms", r.output)
    g:close()
  end)

  it("rejects bad options at the script's line", function()
    local g, err = testing.load({ ["f.lua"] = "\nhealth.checks.http { name = 'c', url = 'http://x/', expect_status = 'ok' }" })
    assert.is_nil(g)
    assert.matches("f.lua:2: health.checks.http: 'expect_status'", err, 1, true)
    g, err = testing.load({ ["f.lua"] = "health.checks.http { name = 'c', url = 'http://x/', colour = 1 }" })
    assert.is_nil(g)
    assert.matches("f.lua:1: health.checks.http: unknown option 'colour'", err, 1, true)
    g, err = testing.load({ ["f.lua"] = "health.checks.http { name = 'c', url = 'x' }" })
    assert.is_nil(g)
    assert.matches("f.lua:1: health.checks.http: option 'url'", err, 1, true)
  end)
end)

describe("1,000 requests", function()
  it("leave no file descriptor or handle behind", function()
    local before = fds()
    for i = 1, 1000 do
      local r, err
      if i % 4 == 0 then
        r, err = http.get(url(env.HA_REFUSED_PORT))
        assert.equal("connection refused", err)
      elseif i % 4 == 1 then
        r, err = http.get(url(env.HA_SILENT_PORT), { timeout = 0.001 })
        assert.equal("timeout", err)
      else
        r = assert(http.get(url(PLAIN, "/ok")))
        assert.equal(200, r.status)
      end
    end
    settle()
    assert.equal(0, testing.handles())
    assert.equal(before, fds())
  end)

  it("concurrently, in checks cut by their deadline, leave nothing behind", function()
    local before = fds()
    local g = load(([[
local http = require "health.http"
for i = 1, 200 do
  health.check { name = "c" .. i, timeout = 0.2, run = function()
    local r, err = http.get(i %% 2 == 0 and "%s" or "%s")
    return r ~= nil, err
  end }
end
]]):format(url(env.HA_BACKLOG_PORT), url(PLAIN, "/slow?ms=2000")))
    local hs = {}
    for i = 1, 200 do hs[i] = testing.spawn(function() return g:run("c" .. i) end) end
    for i = 1, 200 do
      local ok, r = hs[i]:wait()
      assert.is_true(ok, r)
      assert.equal("timeout after 200ms", r.output, require("pl.pretty").write(r))
    end
    g:close()
    settle()
    assert.equal(0, testing.handles())
    assert.equal(before, fds())
  end)
end)

describe("http.request connect_to", function()
  it("takes curl's HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT form, and the short host:port", function()
    local target = HOST .. ":" .. PLAIN
    for _, ct in ipairs { "service.test:80:" .. target, "::" .. target, "service.test::" .. target, target } do
      local r, err = http.get("http://service.test/ok", { connect_to = ct, timeout = 2 })
      assert.is_nil(err, ct)
      assert.equal(200, r.status, ct)
    end
  end)

  it("a rule for another host and port leaves the request alone", function()
    local r, err = http.get(url(PLAIN, "/ok"), { connect_to = "other.test:81:" .. HOST .. ":1", timeout = 2 })
    assert.is_nil(err)
    assert.equal(200, r.status)
  end)

  it("refuses what is neither form, naming the option", function()
    for _, bad in ipairs { "nocolon", "a:b:c", "h:99999", "a:1:b:c:d", "a:x:b:1" } do
      local ok, msg = pcall(http.get, url(PLAIN, "/ok"), { connect_to = bad })
      assert.is_false(ok, bad)
      assert.matches("option 'connect_to' must be \"host:port\" or curl's", msg, 1, true)
    end
  end)
end)

-- Redirects are followed by health.http itself (so that every hop resolves
-- through the shared resolver); these pin that they behave as libcurl's
-- CURLOPT_FOLLOWLOCATION did: status, count, methods, credentials.
describe("http.request follow", function()
  local function echo(r) return H.decode(r.body) end

  it("counts hops against max_redirects and reports the final response", function()
    local r = assert(http.get(url(PLAIN, "/redirect?hops=2"), { follow = true }))
    assert.equal(200, r.status)
    assert.equal("ok", r.body)
    assert.equal(3, r.redirects)
    r = assert(http.get(url(PLAIN, "/redirect?hops=2"), { follow = true, max_redirects = 3 }))
    assert.equal(3, r.redirects)
    local _, err = http.get(url(PLAIN, "/redirect?hops=2"), { follow = true, max_redirects = 2 })
    assert.equal("too many redirects", err)
    r = assert(http.get(url(PLAIN, "/redirect?code=307&to=/slow%3Fms%3D100"), { follow = true }))
    assert.equal("slow", r.body)
    assert.is_true(r.time_ms >= 95, "time_ms " .. r.time_ms) -- every hop counts
  end)

  it("turns a POST into a GET on 301, 302 and 303, repeats it on 307 and 308", function()
    for _, code in ipairs { 301, 302, 303, 307, 308 } do
      local r = assert(http.request {
        url = url(PLAIN, "/redirect?to=/echo&code=" .. code), body = "payload", follow = true,
      })
      local e = echo(r)
      local repeated = code == 307 or code == 308
      assert.equal(repeated and "POST" or "GET", e.method, code)
      assert.equal(repeated and "payload" or "", e.body, code)
      assert.equal(1, r.redirects, code)
    end
    -- 303 keeps HEAD; a custom method name stays on every hop, as libcurl keeps it
    local r = assert(http.request { url = url(PLAIN, "/redirect?to=/echo&code=303"), method = "HEAD", follow = true })
    assert.equal(200, r.status)
    assert.equal("", r.body)
    r = assert(http.request {
      url = url(PLAIN, "/redirect?to=/echo&code=303"), method = "PUT", body = "x", follow = true,
    })
    assert.same({ "PUT", "" }, { echo(r).method, echo(r).body })
    r = assert(http.request {
      url = url(PLAIN, "/redirect?to=/echo&code=307"), method = "PUT", body = "x", follow = true,
    })
    assert.same({ "PUT", "x" }, { echo(r).method, echo(r).body })
  end)

  it("sends credentials and Authorization/Cookie headers only to the first origin", function()
    local hdrs = { Authorization = "Bearer t0ken", Cookie = "c=1", ["X-Other"] = "kept" }
    local base = ("http://alice:s3cr3t@%s:%d"):format(HOST, PLAIN)
    local r = assert(http.get(base .. "/redirect?to=/echo", { follow = true, headers = hdrs }))
    local h = echo(r).headers
    assert.equal("Bearer t0ken", h.authorization) -- the header wins over the URL's basic auth
    assert.equal("c=1", h.cookie)
    r = assert(http.get(base .. "/redirect?to=/echo", { follow = true }))
    assert.matches("^Basic ", echo(r).headers.authorization)
    -- another host; the same host on another port and scheme
    for _, other in ipairs { ("http://localhost:%d/echo"):format(PLAIN), surl(env.HA_HTTPS_PORT, "/echo") } do
      r = assert(http.get(base .. "/redirect?to=" .. other, { follow = true, headers = hdrs, ca_file = env.HA_CA_FILE }))
      h = echo(r).headers
      assert.is_nil(h.authorization, other)
      assert.is_nil(h.cookie, other)
      assert.equal("kept", h["x-other"], other)
    end
  end)

  it("refuses a redirect to another scheme, as before", function()
    local _, err = http.get(url(PLAIN, "/redirect?to=ftp://127.0.0.1/x"), { follow = true })
    assert.equal('unsupported protocol: Protocol "ftp" not supported or disabled in libcurl', err)
  end)
end)

-- Every name health.http connects to goes through the shared resolver
-- (api_dns.c) and is pinned for libcurl; testing.dns_stats counts its
-- lookups, and testing.dns_hosts adds names only it knows (no system
-- resolver does: a request to one works only if curl used our answer).
describe("http.request name resolution", function()
  local ONLY_OURS = "only-ours.test"
  local function lookups() return testing.dns_stats().started end
  local function echo(r) return H.decode(r.body) end

  before_each(function() testing.dns_hosts { [ONLY_OURS] = "127.0.0.1" } end)
  after_each(function() testing.dns_hosts {} end)

  it("resolves the URL's host with the shared resolver, and curl uses its answer", function()
    local n = lookups()
    local r = assert(http.get(("http://localhost:%d/ok"):format(PLAIN)))
    assert.equal(200, r.status)
    assert.equal(n + 1, lookups()) -- libcurl answers localhost itself: this lookup was ours
    r = assert(http.get(("http://%s:%d/echo"):format(ONLY_OURS, PLAIN)))
    assert.equal(ONLY_OURS .. ":" .. PLAIN, echo(r).headers.host)
    assert.equal(n + 2, lookups())
  end)

  it("IP literals and Unix sockets need no lookup", function()
    local n = lookups()
    assert(http.get(url(PLAIN, "/ok")))
    assert.same({ nil, "connection refused" }, { http.get("http://[::1]:" .. env.HA_REFUSED_PORT .. "/") })
    local _, err = http.get(("http://%s/ok"):format(ONLY_OURS), { unix_socket = "/nonexistent/http.sock" })
    assert.equal("connect failed: No such file or directory", err)
    assert.equal(n, lookups())
  end)

  it("an unknown name reads as health.tcp and the database clients say it", function()
    local n = lookups()
    local _, err = http.get("http://no-such-host.invalid:8080/ok", { timeout = 5 })
    assert.equal("cannot resolve host 'no-such-host.invalid'", err)
    assert.equal(n + 1, lookups())
    local _, tcp_err = require("health.tcp").connect("no-such-host.invalid", 8080, { timeout = 5 })
    assert.equal(tcp_err, err)
    _, err = http.get(url(PLAIN, "/redirect?to=http://no-such-host.invalid/ok"), { follow = true, timeout = 5 })
    assert.equal("cannot resolve host 'no-such-host.invalid'", err)
  end)

  it("resolves each redirect's host the same way", function()
    local n = lookups()
    local r = assert(http.get(url(PLAIN, ("/redirect?to=http://localhost:%d/ok"):format(PLAIN)), { follow = true }))
    assert.same({ 200, "ok", 1 }, { r.status, r.body, r.redirects })
    assert.equal(n + 1, lookups())
    r = assert(http.get(url(PLAIN, ("/redirect?to=http://%s:%d/echo"):format(ONLY_OURS, PLAIN)), { follow = true }))
    assert.equal(ONLY_OURS .. ":" .. PLAIN, echo(r).headers.host)
    -- and back to a literal: no lookup for that hop
    r = assert(http.get(("http://%s:%d/redirect?to=%s"):format(ONLY_OURS, PLAIN, url(PLAIN, "/ok")), { follow = true }))
    assert.equal("ok", r.body)
    assert.equal(n + 3, lookups())
  end)

  it("resolves connect_to's target, never the URL's host it replaces", function()
    local n = lookups()
    for _, ct in ipairs { "unknown.invalid:80:" .. ONLY_OURS .. ":" .. PLAIN, ONLY_OURS .. ":" .. PLAIN } do
      local r, err = http.get("http://unknown.invalid/echo", { connect_to = ct, timeout = 2 })
      assert.is_nil(err, ct)
      assert.equal("unknown.invalid", echo(r).headers.host, ct)
    end
    -- an empty target host keeps the URL's, which is then what resolves
    local r = assert(http.get(("http://%s/ok"):format(ONLY_OURS), { connect_to = ":::" .. PLAIN }))
    assert.equal(200, r.status)
    -- a rule for another host leaves the URL's host to resolve
    r = assert(http.get(("http://%s:%d/ok"):format(ONLY_OURS, PLAIN), { connect_to = "other.test:80:nowhere.invalid:1" }))
    assert.equal(200, r.status)
    assert.equal(n + 4, lookups())
    local _, err = http.get("http://unknown.invalid/ok", { connect_to = "nowhere.invalid:" .. PLAIN, timeout = 5 })
    assert.equal("cannot resolve host 'nowhere.invalid'", err)
  end)

  it("libcurl starts no resolver thread of its own", function()
    -- a child agent with pthread_create counted (LD_PRELOAD): 20 lookups
    -- may only use libuv's pool (2 threads here); libcurl's threaded
    -- resolver would start one thread per lookup
    local dir = H.tmpdir()
    H.write(dir .. "/count.c", [[
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
static int created;
int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *), void *arg)
{
    int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
        (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(RTLD_NEXT, "pthread_create");
    __atomic_add_fetch(&created, 1, __ATOMIC_SEQ_CST);
    return real(t, a, f, arg);
}
__attribute__((destructor)) static void report(void) { fprintf(stderr, "THREADS_CREATED %d\n", created); }
]])
    H.write(dir .. "/req.lua", [[
local http = require "health.http"
for _ = 1, 20 do
  local _, err = http.get("http://no-such-host.invalid:8080/ok", { timeout = 5 })
  assert(err == "cannot resolve host 'no-such-host.invalid'", err)
end
]])
    local _, code = H.sh(("cc -shared -fPIC -o %s/count.so %s/count.c -ldl 2>&1"):format(dir, dir))
    assert.equal(0, code, "cc failed")
    local out = H.sh(("UV_THREADPOOL_SIZE=2 ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0 LD_PRELOAD=%s/count.so %s %s/req.lua 2>&1")
      :format(dir, H.quote(os.getenv("HA_BIN")), dir))
    H.sh("rm -rf " .. H.quote(dir))
    local n = tonumber(out:match("THREADS_CREATED (%d+)"))
    assert(n, out)
    assert.is_true(n <= 2, ("%d threads started for 20 lookups: %s"):format(n, out))
  end)

  it("a request cut during its lookup cancels it and leaves nothing behind", function()
    local before, st = fds(), testing.dns_stats()
    local g = load(([[
local http = require "health.http"
for i = 1, 200 do -- odd: cut by the check's deadline, even: by the request's timeout
  health.check { name = "c" .. i, timeout = i %% 2 == 1 and "20ms" or 5, run = function()
    local r, err = http.get(i %% 4 < 2 and "http://localhost:%d/ok" or "http://%s:%d/ok", { timeout = i %% 2 == 0 and 0.02 or nil })
    return r ~= nil, err
  end }
end
]]):format(PLAIN, ONLY_OURS, PLAIN))
    -- the resolver's threads are busy for 300 ms, as behind a slow DNS
    -- server: every lookup waits in libuv's queue when its request is closed
    testing.hold_threadpool(0.3)
    local hs = {}
    for i = 1, 200 do hs[i] = testing.spawn(function() return g:run("c" .. i) end) end
    for i = 1, 200 do
      local ok, r = hs[i]:wait()
      assert.is_true(ok, r)
      assert.equal(i % 2 == 1 and "timeout after 20ms" or "timeout", r.output)
    end
    g:close()
    local now = testing.dns_stats()
    assert.equal(200, now.started - st.started)
    assert.equal(200, now.cancelled - st.cancelled) -- each one's done ran, and freed its request
    assert.equal(st.in_flight, now.in_flight)
    settle()
    assert.equal(0, testing.handles())
    assert.equal(before, fds())
  end)

  it("a deadline at any point of the lookup or the transfer leaves nothing behind", function()
    local st, before = testing.dns_stats(), fds()
    local g = load(([[
local http = require "health.http"
health.check { name = "c", timeout = "20ms", run = function()
  return http.get("http://localhost:%d/ok") ~= nil
end }
]]):format(PLAIN))
    -- the lookup waits from 0 to 40 ms: the deadline falls before it
    -- runs, around its answer, or during the transfer
    local seen = {}
    for i = 0, 40 do
      testing.hold_threadpool(0.0001 + i * 0.001)
      local out = g:run("c").output or "UP"
      assert.is_true(out == "UP" or out == "timeout after 20ms", out)
      seen[out] = true
    end
    assert.is_true(seen.UP and seen["timeout after 20ms"])
    g:close()
    assert.truthy(H.wait_until(function() return testing.dns_stats().in_flight == st.in_flight end, 5))
    settle()
    assert.equal(0, testing.handles())
    assert.equal(before, fds())
  end)
end)
