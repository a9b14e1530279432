-- The pod lifecycle against the real binary: start-up (readiness and
-- startup fail until first results, liveness answers at once), the SIGTERM
-- and SIGINT sequence with its timing and its log, requests in flight
-- finishing, and the second signal that exits at once.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/lifecycle_spec.lua
local agent = require "helpers.agent"
local wait_until = agent.wait_until

local a
after_each(function()
  local log = a and a:stop()
  a = nil
  if log then agent.assert_clean(log) end
end)

describe("start-up", function()
  it("answers 503 on /startupz and /readyz until the first results, /livez 200 at once", function()
    a = agent.start {
      scripts = {
        ["boot.lua"] = [[
          health.check { name = "warmup", probes = { "startup", "readiness" }, initial_delay = "1s",
                         run = function() return true, "warm" end }
          health.check { name = "alive", probes = "liveness", run = function() return true end }
        ]],
      },
      config = 'return { shutdown_delay = "0s" }',
    }
    local t0 = health.now()
    local s, r, l = a:get("/startupz"), a:get("/readyz"), a:get("/livez")
    assert.is_true(health.now() - t0 < 0.9, "answers must not wait for the initial delay")
    assert.equal(503, s.status)
    assert.equal("INIT", s.json.status)
    assert.equal("INIT", s.json.components.warmup.status)
    assert.equal(503, r.status)
    assert.equal(200, l.status)
    assert.truthy(wait_until(function() return a:get("/startupz").status == 200 end, 3))
    assert.equal(200, a:get("/readyz").status)
    assert.is_true(health.now() - t0 >= 0.9)
  end)
end)

describe("SIGTERM", function()
  local SCRIPTS = {
    ["a.lua"] = [[
      health.check { name = "ok", probes = { "readiness", "liveness" }, run = function() return true end }
      health.check { name = "slow", probes = "startup", ttl = 0, timeout = "5s",
                     run = function() health.sleep(1.2) return true, "slow done" end }
    ]],
  }

  it("fails readiness at once, keeps answering for shutdown_delay, closes, exits 0, logging each step", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "1s", shutdown_timeout = "3s" }' }
    assert.equal(200, a:get("/readyz").status)
    local t0 = health.now()
    a:signal("TERM")
    assert.truthy(a:wait_log("/readyz now fails", 1))
    local r = a:get("/readyz")
    assert.equal(503, r.status)
    assert.equal("shutting down", r.json.reason)
    assert.equal(200, a:get("/livez").status)
    health.sleep(0.5)
    -- still answering half-way through the delay
    assert.equal(503, a:get("/readyz").status)
    assert.equal(200, a:get("/livez").status)
    local code = a:wait_exit(5)
    local dt = health.now() - t0
    assert.equal(0, code)
    assert.is_true(dt >= 0.95 and dt < 2.0, "exited after " .. dt .. " s")
    assert.equal(0, a:get("/livez", { timeout = 1 }).status) -- nobody listens
    local log = a:log()
    local steps = {
      "signal 15: /readyz now fails; still answering probes for 1s",
      "shutdown: closing listeners, finishing requests in flight",
      "shutdown: cancelling checks",
      "exit 0",
    }
    local pos = 1
    for _, step in ipairs(steps) do
      local at = log:find(step, pos, true)
      assert.truthy(at, "missing or out of order: " .. step .. "\n" .. log)
      pos = at
    end
  end)

  it("lets a request in flight finish before exiting", function()
    a = agent.start { scripts = SCRIPTS,
                     config = 'return { shutdown_delay = "200ms", shutdown_timeout = "3s", max_wait = "5s" }' }
    local out = a.dir .. "/inflight"
    -- /startupz waits for the slow check's run (1.2 s, within max_wait); the
    -- shell notes when the answer came, in the clock of health.now()
    os.execute(("(curl -s -o %s.body -w '%%{http_code}' --max-time 5 http://127.0.0.1:%d/startupz > %s.code;"
      .. " date +%%s.%%N > %s.done) &"):format(out, a.port, out, out))
    health.sleep(0.2)
    local t0 = health.now()
    a:signal("TERM")
    local code = a:wait_exit(5)
    local t1 = health.now()
    local read = require("helpers.agent").read
    assert.equal(0, code)
    assert.equal("200", read(out .. ".code"))
    assert.truthy((read(out .. ".body") or ""):find("slow done", 1, true))
    local answered = tonumber(read(out .. ".done") or "")
    assert.truthy(answered, "the request in flight never finished")
    -- it was still in flight when the signal came, finished before the exit,
    -- and the exit did not wait for shutdown_timeout
    assert.is_true(answered > t0, "answered before the signal")
    assert.is_true(answered <= t1 + 0.05, "the agent exited before answering")
    assert.is_true(t1 - t0 < 3, "exited after " .. (t1 - t0) .. " s")
  end)

  it("answers a report that comes while requests in flight finish 503, saying the agent is shutting down", function()
    local scripts = { ["a.lua"] = [[
      health.check { name = "ok", probes = { "readiness", "liveness" }, run = function() return true end }
      health.check { name = "slower", probes = "startup", ttl = 0, timeout = "6s",
                     run = function() health.sleep(3) return true, "slower done" end }
      health.push { name = "worker", ttl = "1m" }
    ]] }
    a = agent.start { scripts = scripts,
                     config = 'return { shutdown_delay = "0s", shutdown_timeout = "5s", max_wait = "6s" }' }
    local out = a.dir .. "/late"
    -- /startupz waits for the slower check (3 s) and so holds the shutdown
    -- in "finishing requests in flight"; a keep-alive connection opened
    -- before the signal sends a report once the log says so (listeners are
    -- closed by then)
    local py = ([[
import socket, sys, time
s = socket.create_connection(("127.0.0.1", %d))
s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
first = s.recv(65536)
open("%s.ready", "w").close()
deadline = time.time() + 5
while time.time() < deadline and "finishing requests in flight" not in open("%s").read():
    time.sleep(0.02)
body = b'{"status":"UP"}'
s.sendall(b"PUT /-/checks/worker HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
          b"Content-Length: %%d\r\n\r\n" %% len(body) + body)
s.settimeout(3)
data = b""
while b"\r\n\r\n" not in data or not data.endswith(b"}\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
open("%s.answer", "wb").write(data)
]]):format(a.port, out, a.logfile, agent.ADMIN_TOKEN, out)
    local f = assert(io.open(out .. ".py", "w"))
    f:write(py)
    f:close()
    os.execute(("(curl -s -o /dev/null --max-time 8 http://127.0.0.1:%d/startupz &)"):format(a.port))
    os.execute(("(python3 %s.py > %s.log 2>&1 &)"):format(out, out))
    local read = require("helpers.agent").read
    assert.truthy(wait_until(function() return read(out .. ".ready") ~= nil end, 3))
    health.sleep(0.2)
    a:signal("TERM")
    assert.truthy(a:wait_log("finishing requests in flight", 3))
    assert.equal(0, a:wait_exit(8))
    local answer = read(out .. ".answer") or ""
    assert.truthy(answer:find("^HTTP/1.1 503"), answer .. (read(out .. ".log") or ""))
    assert.truthy(answer:find("the agent is shutting down", 1, true), answer)
  end)

  it("SIGINT follows the same sequence", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "300ms" }' }
    a:signal("INT")
    assert.truthy(a:wait_log("signal 2: /readyz now fails", 1))
    assert.equal(0, a:wait_exit(5))
  end)

  it("a second signal exits at once", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "30s" }' }
    a:signal("TERM")
    assert.truthy(a:wait_log("/readyz now fails", 1))
    local t0 = health.now()
    a:signal("TERM")
    -- ThreadSanitizer delivers signals at its next synchronisation point
    local limit = (os.getenv("HA_SANITIZE") or "") == "" and 0.5 or 2
    assert.equal(1, a:wait_exit(limit + 1))
    local took = health.now() - t0
    assert.is_true(took < limit, "exited after " .. took .. " s")
    assert.truthy(a:log():find("second signal 15: exiting now", 1, true))
  end)

  it("exits 0 at once with shutdown_delay 0 and keeps connections from blocking the exit", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    -- idle keep-alive connections held open by wrk while the signal arrives
    os.execute(("(wrk -t1 -c4 -d3s http://127.0.0.1:%d/livez > /dev/null 2>&1 &)"):format(a.port))
    health.sleep(0.5)
    local t0 = health.now()
    a:signal("TERM")
    assert.equal(0, a:wait_exit(3))
    assert.is_true(health.now() - t0 < 1.5)
    assert.is_nil(a:log():find("still open at exit", 1, true))
  end)
end)
