-- The connection-per-probe fast path (agent/front_fast.h): a one-shot
-- "Connection: close" GET whose answer is cached is written by the front
-- itself; every other request is h2o's, also when its first bytes were read
-- by the fast path. Raw requests over health.tcp, so the exact bytes on the
-- wire are the spec's.
local agent = require "helpers.agent"
local tcp = require "health.tcp"

local SCRIPTS = {
  ["a.lua"] = [[
health.check { name = "db", probes = { "liveness", "readiness" }, ttl = "1h", run = function()
  return true, "secret output", { rows = 1 } end }
health.check { name = "slow", probes = { "startup" }, ttl = "200ms", run = function()
  health.sleep(0.1) return true, "fresh again" end }
]],
}

-- Sends raw bytes (a string, or a list of strings sent 50 ms apart) and
-- reads until the agent closes. Returns the whole answer.
local function raw(a, parts)
  if type(parts) == "string" then parts = { parts } end
  local s = assert(tcp.connect("127.0.0.1", a.port, { timeout = 5 }))
  for i, p in ipairs(parts) do
    if i > 1 then health.sleep(0.05) end
    assert(s:send(p))
  end
  local all, err, partial = s:receive("*a")
  s:close()
  return all or partial, err
end

-- Splits an HTTP/1.1 answer (one or more) into responses {status, headers, body}.
local function responses(text)
  local out = {}
  while #text > 0 do
    local head, rest = text:match("^(.-)\r\n\r\n(.*)$")
    assert(head, "no end of head in: " .. text)
    local r = { headers = {} }
    r.status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
    for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do r.headers[k:lower()] = v end
    local n = tonumber(r.headers["content-length"] or "0")
    r.body = rest:sub(1, n)
    text = rest:sub(n + 1)
    out[#out + 1] = r
  end
  return out
end

-- kubelet's request; the second %s adds fields (Accept: */* unless one is given)
local KUBELET = "GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.31\r\n%sConnection: close\r\n\r\n"
local CLOSE = setmetatable({}, { __index = { format = function(_, path, extra)
  if not extra:find("^Accept:") then extra = "Accept: */*\r\n" .. extra end
  return KUBELET:format(path, extra)
end } })

describe("the connection-per-probe fast path", function()
  local a
  setup(function()
    a = agent.start { scripts = SCRIPTS, config = [[return { shutdown_delay = 0, token = "fast-path-token-0123", trusted_networks = { "127.0.0.1/32", "::1/128" } }]] }
    assert.equal(200, a:get("/readyz").status)
  end)
  teardown(function() a:stop() end)

  it("answers a kubelet-style probe with the same status, fields and body as h2o", function()
    local fast = responses(raw(a, CLOSE:format("/readyz", "")))
    assert.equal(1, #fast)
    local slow = responses(raw(a, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert.equal(2, #slow) -- pipelined: h2o answers both
    for _, r in ipairs { fast[1], slow[2] } do
      assert.equal(200, r.status)
      assert.equal("close", r.headers.connection)
      assert.equal("healthagent", r.headers.server)
      assert.equal("application/json", r.headers["content-type"])
      assert.equal("no-store", r.headers["cache-control"])
      assert.truthy(r.headers.date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"), r.headers.date)
      assert.equal(#r.body, tonumber(r.headers["content-length"]))
    end
    assert.equal(slow[1].body, fast[1].body)
    assert.truthy(fast[1].body:find('"secret output"', 1, true)) -- loopback is trusted
  end)

  it("serves HEAD, HTTP/1.0, health+json and the other probes", function()
    local h = responses(raw(a, "HEAD /livez HTTP/1.1\r\nConnection: close\r\n\r\n"))
    assert.equal(1, #h)
    assert.equal(200, h[1].status)
    assert.equal("", h[1].body)
    assert.equal(#a:get("/livez").body, tonumber(h[1].headers["content-length"]))
    local old = responses(raw(a, "GET /livez HTTP/1.0\r\n\r\n"))
    assert.equal(200, old[1].status)
    assert.equal(a:get("/livez").body, old[1].body)
    local ietf = responses(raw(a, CLOSE:format("/readyz", "Accept: application/health+json\r\n")))
    assert.equal("application/health+json", ietf[1].headers["content-type"])
    assert.truthy(ietf[1].body:find('"status":"pass"', 1, true))
  end)

  it("leaves a request split across packets, keep-alive and HTTP/2 to h2o", function()
    local split = responses(raw(a, { "GET /readyz HTTP/1.1\r\nHo", "st: x\r\nConnection: close\r\n\r\n" }))
    assert.equal(1, #split)
    assert.equal(200, split[1].status)
    assert.equal(a:get("/readyz").body, split[1].body)
    local r = a:get("/readyz", { http2 = true })
    assert.equal(200, r.status)
    local big = responses(raw(a, CLOSE:format("/readyz", "X-Pad: " .. ("p"):rep(3000) .. "\r\n")))
    assert.equal(200, big[1].status)
  end)

  it("does not answer a stale check from the cache", function()
    health.sleep(0.3) -- slow's ttl (200 ms) has passed
    local t0 = health.now()
    local r = responses(raw(a, CLOSE:format("/startupz", "")))
    assert.equal(200, r[1].status)
    assert.truthy(r[1].body:find('"fresh again"', 1, true))
    assert.is_true(health.now() - t0 >= 0.09, "the probe waited for the run")
  end)

  it("routes like h2o: paths, queries, methods and unknown checks", function()
    assert.equal(404, responses(raw(a, CLOSE:format("/nope", "")))[1].status)
    assert.equal(404, responses(raw(a, CLOSE:format("/readyz/nope", "")))[1].status)
    local one = responses(raw(a, CLOSE:format("/readyz/db", "")))[1]
    assert.equal(200, one.status)
    assert.equal(a:get("/readyz/db").body, one.body)
    local verbose = responses(raw(a, CLOSE:format("/readyz?verbose", "")))[1]
    assert.truthy(verbose.body:find("[+]db", 1, true), verbose.body)
    local post = responses(raw(a, "POST /readyz HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))[1]
    assert.equal(405, post.status)
  end)

  it("shows outputs to a token holder only, from an untrusted address", function()
    local function from_mesh(extra)
      local out = agent.sh(("curl -s --max-time 5 --interface 127.0.0.6 -H 'Connection: close' %s http://127.0.0.1:%d/readyz")
        :format(extra, a.port))
      return out
    end
    local anon = from_mesh("")
    assert.truthy(anon:find('"status":"UP"', 1, true), anon)
    assert.falsy(anon:find("secret output", 1, true))
    local holder = from_mesh("-H 'Authorization: Bearer fast-path-token-0123'")
    assert.truthy(holder:find("secret output", 1, true), holder)
    assert.falsy(from_mesh("-H 'Authorization: Bearer wrong-token-00000000'"):find("secret output", 1, true))
  end)
end)
