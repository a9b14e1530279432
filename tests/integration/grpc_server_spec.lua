-- The gRPC health server (grpc.health.v1.Health) against two independent
-- real clients, @grpc/grpc-js (tests/harness/grpc_client.js) and Debian's
-- python3-grpcio (tests/harness/grpc_health.py), plus raw HTTP/2 peers on
-- python3-h2 (tests/harness/grpc_raw.py) for what real clients never send.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/grpc_server_spec.lua
local agent = require "helpers.agent"
local sh, quote, write = agent.sh, agent.quote, agent.write

local SRC = os.getenv("HA_SOURCE_DIR") or "."
local HARNESS = SRC .. "/tests/harness"
local BIN = os.getenv("HA_BIN") or "build/healthagent"
local SANITIZED = (os.getenv("HA_SANITIZE") or "") ~= ""
local SLACK = SANITIZED and 3 or 1 -- timing bounds widen under sanitizers
-- the admin endpoints (/-/drain, /-/ready) need a token
local TOKEN = "grpc-spec-token-0123456789"
local AUTH = { Authorization = "Bearer " .. TOKEN }
local ADMIN = ("token = %q, "):format(TOKEN)

local wait_until = agent.wait_until

-- Starts an agent with a gRPC listener on a free port: a.gaddr.
local function start(opts)
  for _ = 1, 8 do
    local gport = 10000 + math.random(0, 1999) -- below the ephemeral range (32768-) and the benches (12000-)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.args = { "--grpc-listen", "127.0.0.1:" .. gport }
    for _, x in ipairs(opts.args or {}) do o.args[#o.args + 1] = x end
    local ok, a = pcall(agent.start, o)
    if ok then
      -- the HTTP port answers before the first snapshot is served; so does gRPC
      a.gaddr = "127.0.0.1:" .. gport
      return a
    end
    if not tostring(a):find("address already in use", 1, true) and not tostring(a):find("no free port", 1, true) then
      error(a, 2)
    end
  end
  error("no free port pair found")
end

local function js(args) return (sh("node " .. HARNESS .. "/grpc_client.js " .. args .. " 2>&1")):gsub("%s+$", "") end
local function py(args) return (sh("/usr/bin/python3 " .. HARNESS .. "/grpc_health.py " .. args .. " 2>&1")):gsub("%s+$", "") end
local function raw(args) return sh("/usr/bin/python3 " .. HARNESS .. "/grpc_raw.py " .. args .. " 2>&1") end

-- Check through both clients; they must agree. Returns the answer.
local function check(a, service, timeout_s)
  local t = timeout_s or 5
  local j = js(("--timeout %d %s %s"):format(t * 1000, a.gaddr, quote(service)))
  local p = py(("check %s %s --timeout %s"):format(a.gaddr, quote(service), t))
  assert.equal(j, p, "grpc-js and grpcio disagree on service '" .. service .. "'")
  return j
end

local function kv(out)
  local t = {}
  for k, v in out:gmatch("([%w_.]+)=([^\n]*)") do t[k] = v end
  return t
end

-- A background Watch: lines() returns what it printed so far.
local function watch(a, client, service, timeout_s)
  local file = os.tmpname()
  local cmd
  if client == "js" then
    cmd = ("node %s/grpc_client.js --watch 0 --timeout %d %s %s"):format(HARNESS, (timeout_s or 30) * 1000, a.gaddr,
      quote(service))
  else
    cmd = ("/usr/bin/python3 %s/grpc_health.py watch %s %s --timeout %d"):format(HARNESS, a.gaddr, quote(service),
      timeout_s or 30)
  end
  local pid = tonumber((sh(("sh -c %s"):format(quote(cmd .. " > " .. file .. " 2>&1 & echo $!")))))
  local w = { file = file, pid = pid }
  function w.lines()
    local t = {}
    for l in (agent.read(file) or ""):gmatch("[^\n]+") do t[#t + 1] = l end
    return t
  end
  function w.text() return table.concat(w.lines(), ",") end
  function w.wait(text, timeout)
    return wait_until(function() return w.text():find(text, 1, true) end, timeout or 15 * SLACK)
  end
  function w.stop()
    sh("kill " .. pid .. " 2>/dev/null")
    os.remove(file)
  end
  return w
end

-- A check whose result is the content of a state file ("up" passes).
local function flip_script(state, name)
  return ([[
local state = %q
health.check { name = %q, probes = { "readiness" }, interval = "50ms", ttl = "1h", run = function()
  local f = io.open(state) local s = f and f:read("a") or "" if f then f:close() end
  return s == "up", s
end }
]]):format(state, name or "flip")
end

local SCRIPTS = {
  ["a.lua"] = [[
health.check { name = "db", probes = { "readiness" }, ttl = "1h", run = function() return true, "ok" end }
health.check { name = "disk", probes = { "liveness", "readiness" }, ttl = "1h", run = function() return false, "full" end }
health.check { name = "cache", probes = { "readiness" }, critical = false, ttl = "1h",
  run = function() return false, "cold" end }
health.check { name = "later", probes = { "liveness", "startup" }, initial_delay = "1h", ttl = "1h",
  run = function() return true end }
]],
}

-- One passing readiness check: the drain turns readiness NOT_SERVING.
local OK = { ["a.lua"] = [[health.check { name = "db", probes = { "readiness" }, ttl = "1h", run = function() return true end }]] }

describe("gRPC Check", function()
  local a
  setup(function() a = start { scripts = SCRIPTS, config = "return { shutdown_delay = 0 }" } end)
  teardown(function() a:stop() end)

  it("answers every kind of service as the HTTP endpoints do", function()
    -- disk is DOWN (critical), cache DOWN but not critical (WARN), later INIT
    assert.equal("NOT_SERVING", check(a, ""))          -- /healthz: disk fails
    assert.equal(503, a:get("/healthz").status)
    assert.equal("NOT_SERVING", check(a, "liveness"))  -- disk is in liveness
    assert.equal("NOT_SERVING", check(a, "readiness"))
    assert.equal("NOT_SERVING", check(a, "startup"))   -- later is INIT
    assert.equal(503, a:get("/startupz").status)
    assert.equal("SERVING", check(a, "db"))
    assert.equal("NOT_SERVING", check(a, "disk"))
    assert.equal("SERVING", check(a, "cache"))          -- WARN serves
    assert.equal("NOT_SERVING", check(a, "later"))      -- INIT does not, but ...
  end)

  it("NOT_FOUND for an unknown service, the name percent-encoded in grpc-message", function()
    assert.equal("error NOT_FOUND: unknown service: nope", check(a, "nope"))
    assert.equal("error NOT_FOUND: unknown service: café 100%", check(a, "café 100%"))
    local r = kv(raw("edges " .. a.gaddr))
    assert.equal("unknown service: caf%C3%A9 100%25", r["percent.message"])
    assert.equal("True", r["percent.trailers_only"])
  end)

  it("probe --grpc exits as grpc_health_probe does", function()
    local function probe(args)
      local out, code = sh(("%s probe %s 2>&1; echo rc=$?"):format(quote(BIN), args))
      return tonumber(out:match("rc=(%d+)")), out
    end
    local rc, out = probe("--grpc " .. a.gaddr .. " --service db")
    assert.equal(0, rc, out)
    assert.truthy(out:find("status: SERVING", 1, true))
    rc, out = probe("--grpc " .. a.gaddr .. " --service readiness")
    assert.equal(4, rc, out)
    assert.truthy(out:find('service unhealthy (responded with "NOT_SERVING")', 1, true), out)
    rc, out = probe("--grpc " .. a.gaddr .. " --service nope")
    assert.equal(3, rc, out)
    assert.truthy(out:find("code = NotFound", 1, true), out)
    rc = probe("--grpc 127.0.0.1:1 --timeout 500ms")
    assert.equal(2, rc)
    rc = probe("--grpc nowhere")
    assert.equal(1, rc)
    rc = probe("--grpc " .. a.gaddr .. " --timeout soon")
    assert.equal(1, rc)
    -- the HTTP listener speaks no gRPC: an RPC failure
    rc = probe("--grpc 127.0.0.1:" .. a.port)
    assert.equal(3, rc)
  end)

  it("the module is mapped only by an agent with a gRPC listener", function()
    local maps = agent.read("/proc/" .. a.pid .. "/maps")
    assert.truthy(maps:find("ha_grpcserver.so", 1, true))
    local b = agent.start { scripts = SCRIPTS, config = "return { shutdown_delay = 0 }" }
    maps = agent.read("/proc/" .. b.pid .. "/maps")
    b:stop()
    assert.falsy(maps:find("ha_grpcserver.so", 1, true))
    assert.falsy(maps:find("libnghttp2", 1, true))
  end)
end)

describe("gRPC liveness during start-up", function()
  it("INIT serves liveness only", function()
    local a = start {
      scripts = { ["a.lua"] = [[
health.check { name = "later", probes = { "liveness", "readiness", "startup" }, initial_delay = "1h",
  run = function() return true end }
]] },
      config = "return { shutdown_delay = 0 }",
    }
    assert.equal("SERVING", check(a, "liveness"))
    assert.equal("NOT_SERVING", check(a, "readiness"))
    assert.equal("NOT_SERVING", check(a, "startup"))
    assert.equal("NOT_SERVING", check(a, ""))
    a:stop()
  end)
end)

describe("gRPC answers from fresh results", function()
  it("runs a stale check and waits for it, at most the call's deadline minus a margin", function()
    local a = start {
      scripts = { ["a.lua"] = [[
health.check { name = "slow", ttl = "200ms", timeout = "5s", run = function() health.sleep(0.3) return true end }
health.check { name = "stuck", ttl = "100ms", timeout = "120s", run = function() health.sleep(60) return true end }
]] },
      -- max_wait above the calls' deadlines: grpc-timeout is what bounds the wait
      config = "return { shutdown_delay = 0, max_wait = '10s' }",
    }
    -- slow's first result needs 0.3 s: the Check waits for it and serves
    assert.equal("SERVING", py(("check %s slow --timeout 3"):format(a.gaddr)))
    -- stuck never finishes: the answer comes before the client's deadline
    -- (not DEADLINE_EXCEEDED), from what is known: INIT, NOT_SERVING
    local t0 = health.now()
    assert.equal("NOT_SERVING", py(("check %s stuck --timeout 1"):format(a.gaddr)))
    assert.is_true(health.now() - t0 > 0.7, "answered without waiting")
    assert.equal("NOT_SERVING", js(("--timeout 1000 %s stuck"):format(a.gaddr)))
    -- the kubelet's way, one timeout for dial and call
    local out = sh(("%s probe --grpc %s --service stuck --timeout 1s 2>&1; echo rc=$?"):format(quote(BIN), a.gaddr))
    assert.truthy(out:find("rc=4", 1, true), out)
    a:stop()
  end)
end)

describe("gRPC Watch", function()
  local a, dir, state
  before_each(function()
    dir = agent.tmpdir()
    state = dir .. "/state"
    write(state, "up")
    a = start { scripts = { ["a.lua"] = flip_script(state) }, config = "return { " .. ADMIN .. "shutdown_delay = '1s' }" }
  end)
  after_each(function()
    a:stop()
    sh("rm -rf " .. quote(dir))
  end)

  for _, client in ipairs { "js", "py" } do
    it("sends the current status, then one message per change (" .. client .. ")", function()
      local w = watch(a, client, "flip")
      local r = watch(a, client, "readiness")
      assert.truthy(w.wait("SERVING"), w.text())
      assert.truthy(r.wait("SERVING"), r.text())
      write(state, "down")
      assert.truthy(w.wait("SERVING,NOT_SERVING"), w.text())
      assert.truthy(r.wait("SERVING,NOT_SERVING"), r.text())
      health.sleep(0.3) -- more runs, same result: no repeat
      write(state, "up")
      assert.truthy(w.wait("SERVING,NOT_SERVING,SERVING"), w.text())
      health.sleep(0.3)
      assert.equal("SERVING,NOT_SERVING,SERVING", w.text())
      assert.equal("SERVING,NOT_SERVING,SERVING", r.text())
      w.stop()
      r.stop()
    end)
  end

  it("shows an override and its end", function()
    local w = watch(a, "py", "readiness")
    local l = watch(a, "js", "liveness")
    assert.truthy(w.wait("SERVING"))
    assert.equal(200, a:request("/-/drain", { method = "POST", headers = AUTH }).status)
    assert.truthy(w.wait("SERVING,NOT_SERVING"), w.text())
    assert.equal("NOT_SERVING", check(a, "readiness"))
    assert.equal("SERVING", check(a, "liveness"))
    assert.equal(200, a:request("/-/ready", { method = "PUT", body = '{"ready":true}', headers = AUTH }).status)
    assert.truthy(w.wait("SERVING,NOT_SERVING,SERVING"), w.text())
    assert.equal("SERVING", l.text())
    w.stop()
    l.stop()
  end)

  it("SERVICE_UNKNOWN until a reload adds the check, again when one removes it", function()
    local w = watch(a, "js", "extra")
    local p = watch(a, "py", "extra")
    assert.truthy(w.wait("SERVICE_UNKNOWN"), w.text())
    assert.truthy(p.wait("SERVICE_UNKNOWN"), p.text())
    assert.equal("error NOT_FOUND: unknown service: extra", check(a, "extra"))
    write(a.scripts .. "/b.lua", [[health.check { name = "extra", ttl = "1h", run = function() return true end }]])
    a:signal("HUP")
    -- the new check may show its INIT (NOT_SERVING) before its first result
    assert.truthy(w.wait("SERVING"), w.text())
    assert.truthy(p.wait("SERVING"), p.text())
    assert.truthy(wait_until(function() return w.text():match("^SERVICE_UNKNOWN,[A-Z_,]*SERVING$") end), w.text())
    assert.equal("SERVING", check(a, "extra"))
    os.remove(a.scripts .. "/b.lua")
    a:signal("HUP")
    assert.truthy(w.wait("SERVING,SERVICE_UNKNOWN"), w.text())
    assert.truthy(p.wait("SERVING,SERVICE_UNKNOWN"), p.text())
    assert.truthy(p.text():match("^SERVICE_UNKNOWN,[A-Z_,]*SERVING,SERVICE_UNKNOWN$"), p.text())
    w.stop()
    p.stop()
  end)

  it("a client cancelling mid-Watch leaves the server serving the others", function()
    -- Watch streams opened and cancelled after their first message
    local cmd = {}
    for i = 1, 10 do
      cmd[#cmd + 1] = ("node %s/grpc_client.js --watch 1 %s flip > /dev/null 2>&1 &"):format(HARNESS, a.gaddr)
    end
    cmd[#cmd + 1] = "wait"
    local w = watch(a, "py", "flip", 120)
    assert.truthy(w.wait("SERVING"))
    sh("sh -c " .. quote(table.concat(cmd, "\n")))
    -- a change now walks the Watch list: the cancelled ones must be gone
    write(state, "down")
    assert.truthy(w.wait("SERVING,NOT_SERVING"), w.text())
    assert.equal("NOT_SERVING", check(a, "flip"))
    assert.truthy(a:alive())
    w.stop()
  end)

  it("SIGTERM: readiness NOT_SERVING at once, liveness SERVING until the listeners close, then GOAWAY", function()
    a:stop()
    a = start { scripts = { ["a.lua"] = flip_script(state) }, config = "return { shutdown_delay = '6s' }" }
    local r = watch(a, "js", "readiness")
    local l = watch(a, "py", "liveness")
    local h = watch(a, "py", "")
    assert.truthy(r.wait("SERVING"), r.text())
    assert.truthy(l.wait("SERVING"), l.text())
    assert.truthy(h.wait("SERVING"), h.text())
    local t0 = health.now()
    a:signal("TERM")
    assert.truthy(r.wait("SERVING,NOT_SERVING", 0.5 * SLACK), r.text())
    assert.is_true(health.now() - t0 < 0.5 * SLACK)
    assert.equal("NOT_SERVING", py(("check %s readiness"):format(a.gaddr)))
    assert.equal("SERVING", py(("check %s liveness"):format(a.gaddr)))
    assert.equal("SERVING", l.text())
    -- shutdown_delay is 6s: then every stream ends (GOAWAY) and the agent exits
    assert.truthy(l.wait("SERVING,end UNAVAILABLE: shutting down", 8 * SLACK), l.text())
    assert.is_true(health.now() - t0 >= 5.9, "liveness ended before the listeners closed")
    assert.truthy(r.wait("end UNAVAILABLE"), r.text())
    assert.truthy(h.wait("end UNAVAILABLE"), h.text())
    assert.equal(0, a:wait_exit(5))
    r.stop()
    l.stop()
    h.stop()
  end)
end)

describe("gRPC List", function()
  it("lists every service with its status, both clients", function()
    local a = start { scripts = SCRIPTS, config = "return { shutdown_delay = 0 }" }
    local want = "=NOT_SERVING,cache=SERVING,db=SERVING,disk=NOT_SERVING,later=NOT_SERVING," ..
                 "liveness=NOT_SERVING,readiness=NOT_SERVING,startup=NOT_SERVING"
    assert.equal(want, (js("--list " .. a.gaddr):gsub("\n", ",")))
    assert.equal(want, (py("list " .. a.gaddr):gsub("\n", ",")))
    a:stop()
  end)

  it("RESOURCE_EXHAUSTED beyond 1000 services", function()
    local a = start {
      scripts = { ["a.lua"] = [[
for i = 1, 996 do health.check { name = "c" .. i, ttl = "1h", run = function() return true end } end
]] },
      config = "return { shutdown_delay = 0 }",
    }
    -- 996 checks + "", liveness, readiness, startup: exactly the limit
    local out = js("--list " .. a.gaddr)
    assert.equal(1000, select(2, out:gsub("\n", "")) + 1)
    write(a.scripts .. "/b.lua", [[health.check { name = "one_more", ttl = "1h", run = function() return true end }]])
    a:signal("HUP")
    assert.truthy(wait_until(function() return a:get("/healthz").json.components.one_more end, 5 * SLACK))
    assert.equal("error RESOURCE_EXHAUSTED: 1001 services, more than List answers (1000)", js("--list " .. a.gaddr))
    assert.equal("error RESOURCE_EXHAUSTED: 1001 services, more than List answers (1000)", py("list " .. a.gaddr))
    a:stop()
  end)
end)

describe("gRPC protocol edges", function()
  local a
  setup(function() a = start { scripts = SCRIPTS, config = "return { shutdown_delay = 0 }" } end)
  teardown(function() a:stop() end)

  it("answers malformed and foreign requests as gRPC says", function()
    local r = kv(raw("edges " .. a.gaddr))
    assert.equal("128", r.settings_3)             -- MAX_CONCURRENT_STREAMS
    assert.equal("16384", r.settings_6)           -- MAX_HEADER_LIST_SIZE
    assert.equal("0", r["ok.status"])
    assert.equal("00000000020802", r["ok.body"])  -- HealthCheckResponse{NOT_SERVING}
    assert.equal("False", r["ok.trailers_only"])
    assert.equal("415", r["ctype.http"])
    assert.equal("0", r["ctype_plus.status"])
    for _, k in ipairs { "unknown_method", "unknown_service_path" } do
      assert.equal("200", r[k .. ".http"])
      assert.equal("True", r[k .. ".trailers_only"])
      assert.equal("12", r[k .. ".status"])        -- UNIMPLEMENTED
    end
    for _, k in ipairs { "no_message", "truncated_frame", "truncated_message", "two_messages", "compressed",
                         "bad_timeout" } do
      assert.equal("13", r[k .. ".status"], k)     -- INTERNAL
    end
    assert.equal("3", r["bad_proto.status"])       -- INVALID_ARGUMENT
    assert.equal("3", r["bad_wire_type.status"])
    assert.equal("0", r["unknown_field.status"])   -- skipped, as protobuf does
    assert.equal("8", r["too_large.status"])       -- RESOURCE_EXHAUSTED
    assert.equal("431", r["big_headers.http"])
    assert.equal("0", r["list.status"])
  end)

  it("a deadline shorter than the answer ends the call with DEADLINE_EXCEEDED on the client", function()
    local out = js(("--watch 0 --timeout 2000 %s readiness"):format(a.gaddr))
    assert.truthy(out:find("NOT_SERVING\nend DEADLINE_EXCEEDED", 1, true), out)
    out = py(("watch %s readiness --timeout 2"):format(a.gaddr))
    assert.truthy(out:find("NOT_SERVING\nend DEADLINE_EXCEEDED", 1, true), out)
  end)
end)

describe("a Kubernetes-style gRPC prober", function()
  -- dial + Check under one timeout, a fresh connection each period, as the
  -- kubelet does; exit codes of probe --grpc
  local function probe(addr, service)
    local out = sh(("%s probe --grpc %s --service %s --timeout 1s >/dev/null 2>&1; echo $?"):format(quote(BIN), addr,
      quote(service)))
    return tonumber(out)
  end

  it("follows start-up and the drain for service \"\" and readiness", function()
    local dir = agent.tmpdir()
    local a = start {
      scripts = { ["a.lua"] = [[
health.check { name = "warmup", probes = { "readiness", "startup" }, ttl = "1h", timeout = "5s",
  run = function() health.sleep(0.8) return true end }
]] },
      config = "return { shutdown_delay = '1500ms' }",
    }
    -- the first result needs 0.8 s: readiness waits for it within the 1 s timeout
    local seen = {}
    for _ = 1, 3 do seen[#seen + 1] = probe(a.gaddr, "readiness") end
    assert.equal(0, seen[#seen], table.concat(seen, ","))
    assert.equal(0, probe(a.gaddr, ""))
    a:signal("TERM")
    health.sleep(0.2)
    -- draining: readiness fails, the whole agent ("") still serves
    assert.equal(4, probe(a.gaddr, "readiness"))
    assert.equal(0, probe(a.gaddr, ""))
    assert.equal(0, probe(a.gaddr, "liveness"))
    -- the listeners close after shutdown_delay: connection failure
    local closed = wait_until(function() return probe(a.gaddr, "") == 2 end, 4 * SLACK)
    assert.truthy(closed)
    a:wait_exit(5)
    a:stop()
    sh("rm -rf " .. quote(dir))
  end)

  it("before the listener is up: connection failure", function()
    assert.equal(2, probe("127.0.0.1:1", ""))
  end)
end)

describe("gRPC abuse", function()
  local a
  before_each(function() a = start { scripts = OK, config = "return { " .. ADMIN .. "shutdown_delay = 0 }" } end)
  after_each(function() a:stop() end)

  it("rapid reset: GOAWAY once the RST_STREAM budget is spent; others unaffected", function()
    local r = kv(raw("rapid-reset " .. a.gaddr .. " 20000"))
    assert.truthy(r.goaway ~= "None", "no GOAWAY after " .. r.sent .. " resets")
    assert.is_true(tonumber(r.sent) < 20000)
    assert.equal("SERVING", check(a, "db"))
  end)

  it("garbage and broken frames close the connection at once", function()
    local r = kv(raw("garbage " .. a.gaddr))
    assert.is_true(tonumber(r["http1.closed_after"]) < 1)
    assert.is_true(tonumber(r["random.closed_after"]) < 1)
    assert.equal("1", r["bad_frame.goaway"]) -- PROTOCOL_ERROR
    assert.equal("SERVING", check(a, "db"))
  end)

  it("connections from one address count against the HTTP front's max_connections_per_address", function()
    local b = start { scripts = OK, config = "return { shutdown_delay = 0, max_connections_per_address = 20 }" }
    local r = kv(raw("conns " .. b.gaddr .. " 30"))
    assert.equal("20", r.served)
    assert.equal("10", r.closed)
    b:stop()
  end)

  it("a client that never reads holds no more than its window", function()
    local function rss()
      return tonumber(agent.read("/proc/" .. a.pid .. "/status"):match("VmRSS:%s+(%d+)"))
    end
    local before = rss()
    local out = os.tmpname()
    sh(("sh -c %s"):format(quote(("/usr/bin/python3 %s/grpc_raw.py noread %s 100 6 > %s 2>&1 &"):format(HARNESS,
      a.gaddr, out))))
    assert.truthy(wait_until(function() return (agent.read(out) or ""):find("opened=100", 1, true) end, 5))
    for i = 1, 100 do
      assert.equal(200, a:request(i % 2 == 1 and "/-/drain" or "/-/ready",
        { method = i % 2 == 1 and "POST" or "PUT", body = i % 2 == 0 and '{"ready":true}' or nil, headers = AUTH })
        .status)
    end
    -- meanwhile other clients are served at once: dial + Check within 1s
    local out2 = sh(("%s probe --grpc %s --service db --timeout 1s 2>&1; echo rc=$?"):format(quote(BIN), a.gaddr))
    assert.truthy(out2:find("rc=0", 1, true), out2)
    assert.is_true(rss() - before < 4096, ("RSS grew by %d KiB"):format(rss() - before))
    assert.truthy(wait_until(function() return (agent.read(out) or ""):find("alive=", 1, true) end, 10))
    os.remove(out)
  end)
end)

describe("gRPC Watch flood", function()
  it("10,000 Watch streams over 100 connections: memory per stream and fan-out", function()
    local a = start { scripts = OK, config = "return { " .. ADMIN .. "shutdown_delay = 0 }" }
    local out = sh(("node %s/grpc_watch_flood.js %s 100 100 readiness %d http://127.0.0.1:%d %s 2>&1"):format(HARNESS,
      a.gaddr, a.pid, a.port, TOKEN))
    local r = kv(out)
    assert.equal("10000", r.streams, out)
    assert.truthy(r.fanout_ms, out) -- every watcher saw the drain
    print(("\n# 10,000 Watch streams: %s bytes of agent RSS per stream, opened in %s ms, drain seen by all in %s ms")
      :format(r.bytes_per_stream, r.open_ms, r.fanout_ms))
    -- ThreadSanitizer's shadow memory multiplies what every byte costs in RSS
    local limit = os.getenv("HA_SANITIZE") == "thread" and 16384 or 4096
    assert.is_true(tonumber(r.bytes_per_stream) < limit, out)
    a:stop()
  end)
end)

describe("gRPC on a group's name", function()
  it("Check, Watch and List answer a health.group as /groupz/<name> does", function()
    local state = os.tmpname()
    write(state, "up")
    local a = start { scripts = {
      ["a.lua"] = flip_script(state, "flip") ..
        'health.check { name = "steady", ttl = "1h", run = function() return true end }\n' ..
        'health.group { name = "pair", include = { "flip", "steady" } }\n' ..
        'health.group { name = "either", include = { "flip", "steady" }, aggregate = health.aggregate.any }\n',
    }, config = "return { shutdown_delay = 0 }" }
    assert.truthy(wait_until(function() return a:get("/groupz/pair").status == 200 end, 10), a:log())
    assert.equal("SERVING", check(a, "pair"))
    assert.equal("SERVING", check(a, "either"))
    local w = watch(a, "py", "pair", 30)
    assert.truthy(w.wait("SERVING"), w.text())
    write(state, "down")
    assert.truthy(w.wait("NOT_SERVING"), w.text())
    assert.equal(503, a:get("/groupz/pair").status)
    assert.equal("NOT_SERVING", check(a, "pair"))
    assert.equal("SERVING", check(a, "either")) -- one passing member is enough
    local list = kv(py("list " .. a.gaddr))
    assert.equal("NOT_SERVING", list.pair)
    assert.equal("SERVING", list.either)
    w.stop()
    a:stop()
    os.remove(state)
  end)
end)
