-- health.grpc and health.checks.grpc against the harness's gRPC health server:
--   HA_HARNESS_DIR=/tmp/ha-harness busted --lua=build/healthagent tests/unit/grpc_spec.lua
-- The server's statuses are switched through its HTTP control endpoint
-- (/grpc/set, /grpc/reset on HA_HTTP_PORT).
local grpc = require "health.grpc"
local http = require "health.http"
local testing = require "health.testing"
local H = require "helpers.spec"

local env = H.env()
local HOST = env.HA_HOST
local TARGET = HOST .. ":" .. env.HA_GRPC_PORT
local TLS_TARGET = HOST .. ":" .. env.HA_GRPC_TLS_PORT

local function control(path)
  local r = assert(http.get(("http://%s:%d%s"):format(HOST, env.HA_HTTP_PORT, path)))
  assert.equal(200, r.status, r.body)
end

local function set(service, status) control(("/grpc/set?service=%s&status=%s"):format(service, status)) end

local load = H.load

local fds = H.fds

local function settle() health.sleep(0.01) end

after_each(function()
  control("/grpc/reset")
  settle()
  collectgarbage()
  assert.equal(0, testing.handles())
end)

describe("grpc.check", function()
  it("SERVING for the server and a known service", function()
    assert.equal("SERVING", grpc.check(TARGET, ""))
    assert.equal("SERVING", grpc.check(TARGET))
    assert.equal("SERVING", grpc.check(TARGET, "app", { timeout = 2 }))
  end)

  it("follows the server's switch to NOT_SERVING and UNKNOWN", function()
    set("app", "NOT_SERVING")
    assert.equal("NOT_SERVING", grpc.check(TARGET, "app"))
    assert.equal("SERVING", grpc.check(TARGET, ""))
    set("app", "UNKNOWN")
    assert.equal("UNKNOWN", grpc.check(TARGET, "app"))
    set("app", "SERVING")
    assert.equal("SERVING", grpc.check(TARGET, "app"))
  end)

  it("SERVICE_UNKNOWN for a service the server does not know", function()
    assert.equal("SERVICE_UNKNOWN", grpc.check(TARGET, "no-such-service"))
    set("app", "SERVICE_UNKNOWN") -- removes it
    assert.equal("SERVICE_UNKNOWN", grpc.check(TARGET, "app"))
  end)

  it("over TLS with the CA, by authority, and fails clearly without it", function()
    assert.equal("SERVING", grpc.check(TLS_TARGET, "app", { tls = true, ca_file = env.HA_CA_FILE }))
    assert.equal("SERVING", grpc.check(TLS_TARGET, "app",
      { tls = true, ca_file = env.HA_CA_FILE, authority = "localhost" }))
    local st, err = grpc.check(TLS_TARGET, "app", { tls = true })
    assert.is_nil(st)
    assert.equal("tls: certificate verify failed: unable to get local issuer certificate", err) -- as health.tcp says it
    st, err = grpc.check(TLS_TARGET, "app", { tls = true, ca_file = env.HA_CA_FILE, authority = "wrong.test" })
    assert.is_nil(st)
    assert.equal("tls: certificate does not match host name 'wrong.test'", err)
    assert.equal("SERVING", grpc.check(TLS_TARGET, "app", { tls = true, verify = false }))
  end)

  it("nil and a message for faults, at the right time", function()
    assert.same({ nil, "connection refused" }, { grpc.check(HOST .. ":" .. env.HA_REFUSED_PORT, "app") })
    for _, port in ipairs { env.HA_BACKLOG_PORT, env.HA_SILENT_PORT } do
      local t0 = health.now()
      local st, err = grpc.check(HOST .. ":" .. port, "app", { timeout = 0.3 })
      local dt = health.now() - t0
      assert.is_nil(st)
      assert.equal("timeout", err)
      assert.is_true(dt >= 0.29 and dt < 0.6, "took " .. dt)
    end
    assert.same({ nil, "connection reset" }, { grpc.check(HOST .. ":" .. env.HA_RESET_PORT, "app") })
  end)

  it("nil and a message from servers that are not gRPC health servers", function()
    -- an HTTP/2 server without the service: 404
    assert.same({ nil, "grpc: HTTP status 404" }, { grpc.check(HOST .. ":" .. env.HA_H2C_PORT, "app") })
    -- an HTTP/1.1-only server answers the HTTP/2 preface with garbage
    local st, err = grpc.check(HOST .. ":" .. env.HA_HTTP_PORT, "app", { timeout = 2 })
    assert.is_nil(st)
    assert.is_string(err)
  end)

  it("raises on misuse", function()
    assert.has_error(function() grpc.check("no-port", "app") end)
    assert.has_error(function() grpc.check("http://x:1", "app") end)
    assert.has_error(function() grpc.check(TARGET, 42 and {}) end)
    local ok, msg = pcall(grpc.check, TARGET, "app", { tls = "yes" })
    assert.is_false(ok)
    assert.matches("option 'tls' must be a boolean", msg, 1, true)
    ok, msg = pcall(grpc.check, TARGET, "app", { tiemout = 1 })
    assert.is_false(ok)
    assert.matches("unknown option 'tiemout'", msg, 1, true)
  end)

  it("a check deadline during the call ends DOWN and closes everything", function()
    local before = fds()
    local g = load(([[
local grpc = require "health.grpc"
health.check { name = "g", timeout = 0.3, run = function()
  local st, err = grpc.check("%s", "app")
  return st == "SERVING", st or err
end }
]]):format(HOST .. ":" .. env.HA_BACKLOG_PORT))
    local r = g:run("g")
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 300ms", r.output)
    g:close()
    settle()
    assert.equal(0, testing.handles())
    assert.equal(before, fds())
  end)

  it("1,000 calls leave no file descriptor or handle behind", function()
    local before = fds()
    for i = 1, 1000 do
      if i % 2 == 0 then
        assert.equal("SERVING", grpc.check(TARGET, "app"))
      else
        assert.equal("SERVICE_UNKNOWN", grpc.check(TARGET, "x" .. i))
      end
    end
    settle()
    assert.equal(0, testing.handles())
    assert.equal(before, fds())
  end)
end)

describe("health.checks.grpc", function()
  it("SERVING is UP; NOT_SERVING, UNKNOWN and SERVICE_UNKNOWN are DOWN with that word", function()
    local g = load(("health.checks.grpc { name = 'g', target = %q, service = 'app' }"):format(TARGET))
    local r = g:run("g")
    assert.equal("UP", r.status)
    assert.equal("SERVING", r.output)
    set("app", "NOT_SERVING")
    r = g:run("g")
    assert.equal("DOWN", r.status)
    assert.equal("NOT_SERVING", r.output)
    set("app", "UNKNOWN")
    assert.equal("UNKNOWN", g:run("g").output)
    set("app", "SERVICE_UNKNOWN")
    r = g:run("g")
    assert.equal("DOWN", r.status)
    assert.equal("SERVICE_UNKNOWN", r.output)
    g:close()
  end)

  it("TLS, and failures as DOWN with the message", function()
    local g = load(([[
health.checks.grpc { name = "tls", target = %q, tls = true, ca_file = %q, timeout = 2 }
health.checks.grpc { name = "refused", target = %q }
]]):format(TLS_TARGET, env.HA_CA_FILE, HOST .. ":" .. env.HA_REFUSED_PORT))
    assert.equal("UP", g:run("tls").status)
    local r = g:run("refused")
    assert.equal("DOWN", r.status)
    assert.equal("connection refused", r.output)
    g:close()
  end)

  it("rejects bad options at the script's line", function()
    local g, err = testing.load({ ["f.lua"] = "\nhealth.checks.grpc { name = 'g', target = 'nohost' }" })
    assert.is_nil(g)
    assert.matches("f.lua:2: health.checks.grpc: option 'target'", err, 1, true)
    g, err = testing.load({ ["f.lua"] = "health.checks.grpc { name = 'g', target = 'h:1', colour = 1 }" })
    assert.is_nil(g)
    assert.matches("f.lua:1: health.checks.grpc: unknown option 'colour'", err, 1, true)
  end)
end)
