-- Admin endpoints against the real binary: access (trusted networks, bearer
-- token), readiness overrides (PUT /-/ready, POST /-/drain,
-- health.set_ready) in every format, /-/status and /info.
-- A mesh peer is played by curl --interface 127.0.0.6 (Istio's inbound
-- source address, on loopback). Requests to /-/ send the helper's admin token
-- (helpers/agent.lua) unless a test says otherwise.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/admin_spec.lua
local agent = require "helpers.agent"
local wait_until = agent.wait_until

local SCRIPTS = {
  ["a.lua"] = [[
    health.info { team = "payments", owner = { name = "ops", pager = 42 } }
    health.check { name = "db", probes = { "readiness", "liveness" }, run = function() return true, "fine" end }
  ]],
}

local a
after_each(function()
  local log = a and a:stop()
  a = nil
  if log then agent.assert_clean(log) end
end)


local function with(t, extra)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

describe("admin access", function()
  local MESH = { interface = "127.0.0.6" } -- where Istio's sidecar delivers every mesh peer from
  local ADMIN = {
    { "/-/status", "GET" }, { "/-/ready", "GET" }, { "/-/ready", "PUT" }, { "/-/drain", "POST" },
    { "/-/reload", "POST" }, { "/-/nope", "GET" },
  }
  local function body_for(method) return method ~= "GET" and '{"ready":false}' or nil end

  it("without a token: every /-/ endpoint answers 403 to every address, loopback included", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }', admin_token = false }
    assert.truthy(a:log():find("admin endpoints (/-/) are off: no token configured", 1, true), a:log())
    for _, from in ipairs { {}, MESH } do
      for _, req in ipairs(ADMIN) do
        local r = a:request(req[1], with(from, { method = req[2], body = body_for(req[2]) }))
        assert.equal(403, r.status, req[1])
        assert.equal("", r.body, req[1])
      end
    end
    -- nothing changed behind the refusals
    assert.equal(200, a:get("/readyz").status)
    assert.equal(200, a:get("/livez", MESH).status)
    -- probes and /info stay public; outputs only for 127.0.0.1, not for the mesh
    assert.equal("fine", a:get("/readyz").json.components.db.output)
    local m = a:get("/readyz", MESH)
    assert.equal(200, m.status)
    assert.is_nil(m.json.components.db.output)
    assert.falsy(a:get("/readyz?verbose", MESH).body:find("fine", 1, true))
    assert.equal(200, a:get("/info", MESH).status)
  end)

  it("with a token: the bearer token from every address, 401 with nothing else without it", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s", token = "s3cret-token-0123456789" }' }
    assert.falsy(a:log():find("admin endpoints (/-/) are off", 1, true))
    local good = { Authorization = "Bearer s3cret-token-0123456789" }
    -- missing or wrong token: 401, loopback or not
    for _, opts in ipairs {
      {}, MESH, { headers = { Authorization = "Bearer wrong" } },
      { headers = { Authorization = "Bearer s3cret-token-012345678" } },
      { headers = { Authorization = "Basic s3cret-token-0123456789" } },
      { headers = { Authorization = "Bearer s3cret-token-0123456789 " } },
    } do
      for _, req in ipairs(ADMIN) do
        local r = a:request(req[1], with(opts, { method = req[2], body = body_for(req[2]) }))
        assert.equal(401, r.status, req[1])
        assert.equal("", r.body, req[1])
        assert.equal("Bearer", r.headers["www-authenticate"], req[1])
      end
    end
    assert.equal(200, a:get("/readyz").status) -- nothing was drained
    assert.equal(200, a:get("/-/status", { headers = good }).status)
    assert.equal(200, a:get("/-/status", with(MESH, { headers = good })).status)
    -- the mesh client with the token sees outputs, and can drain
    assert.equal("fine", a:get("/readyz", with(MESH, { headers = good })).json.components.db.output)
    local r = a:request("/-/drain", with(MESH, { method = "POST", headers = good }))
    assert.equal(200, r.status)
    assert.truthy(wait_until(function() return a:get("/readyz").status == 503 end, 2))
  end)

  it("the token also comes from HEALTHAGENT_TOKEN", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }',
                     env = "HEALTHAGENT_TOKEN=envtok-0123456789abcdef" }
    assert.equal(401, a:get("/-/status", { token = false }).status)
    assert.equal(200, a:get("/-/status", { headers = { Authorization = "Bearer envtok-0123456789abcdef" } }).status)
  end)

  it("warns at start-up about trusted networks wider than 127.0.0.1 and ::1", function()
    a = agent.start { scripts = SCRIPTS,
                     config = 'return { shutdown_delay = "0s", trusted_networks = { "127.0.0.0/8", "::1", "10.0.0.0/8" } }' }
    assert.truthy(a:log():find("trusted_networks: 127.0.0.0/8 is wider than 127.0.0.1/32 and ::1", 1, true), a:log())
    assert.truthy(a:log():find("trusted_networks: 10.0.0.0/8 is wider", 1, true), a:log())
    assert.falsy(a:log():find("::1/128 is wider", 1, true), a:log())
    -- and those networks do see outputs
    assert.equal("fine", a:get("/readyz", MESH).json.components.db.output)
  end)
end)

describe("readiness overrides", function()
  local function formats(a)
    local j = a:get("/readyz")
    local h = a:get("/readyz", { headers = { Accept = "application/health+json" } })
    local v = a:get("/readyz?verbose")
    return j, h, v
  end

  it("PUT /-/ready false with a reason and back, shown in every format; liveness untouched", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    assert.equal(200, a:get("/readyz").status)
    local r = a:request("/-/ready", { method = "PUT", body = '{"ready":false,"reason":"maintenance"}' })
    assert.equal(200, r.status)
    assert.same({ ready = false, reason = "maintenance" }, r.json)
    assert.truthy(wait_until(function() return a:get("/readyz").status == 503 end, 2))
    local j, h, v = formats(a)
    assert.equal(503, j.status)
    assert.equal("maintenance", j.json.reason)
    assert.equal("DOWN", j.json.status)
    assert.equal(503, h.status)
    assert.equal("fail", h.json.status)
    assert.equal("maintenance", h.json.output)
    assert.equal(503, v.status)
    assert.truthy(v.body:find("maintenance", 1, true), v.body)
    assert.equal(200, a:get("/livez").status)
    local s = a:get("/-/status").json
    assert.same({ ready = false, reason = "maintenance" }, s.override)
    assert.same({ ready = false, override = { ready = false, reason = "maintenance" } }, a:get("/-/ready").json)
    assert.truthy(a:log():find("readiness override: not ready: maintenance", 1, true))

    r = a:request("/-/ready", { method = "PUT", body = '{"ready":true}' })
    assert.equal(200, r.status)
    assert.truthy(wait_until(function() return a:get("/readyz").status == 200 end, 2))
    assert.equal(agent.null, a:get("/-/status").json.override)
    assert.truthy(a:log():find("readiness override: cleared", 1, true))
  end)

  it("POST /-/drain is not ready \"draining\"", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    local r = a:request("/-/drain", { method = "POST" })
    assert.equal(200, r.status)
    assert.same({ ready = false, reason = "draining" }, r.json)
    assert.truthy(wait_until(function() return a:get("/readyz").status == 503 end, 2))
    assert.equal("draining", a:get("/readyz").json.reason)
  end)

  it("refuses malformed bodies and wrong methods", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    for body, msg in pairs {
      [""] = "expected a JSON object",
      ["{"] = "malformed JSON",
      ['{"ready":"no"}'] = '"ready" must be true or false',
      ['{"reason":"x"}'] = 'missing field "ready"',
      ['{"ready":false,"why":"x"}'] = "unknown field",
      ['{"ready":false} x'] = "trailing data",
      ['{"ready":true,"ready":false}'] = '"ready" is given twice',
      ['{"ready":false,"reason":"' .. ("r"):rep(300) .. '"}'] = "longer than 256 bytes",
    } do
      local r = a:request("/-/ready", { method = "PUT", body = body })
      assert.equal(400, r.status, body)
      assert.truthy(r.json.error:find(msg, 1, true), body .. " -> " .. r.body)
    end
    assert.equal(405, a:request("/-/reload", { method = "GET" }).status)
    assert.equal("POST", a:request("/-/drain", { method = "GET" }).headers["allow"])
    assert.equal(405, a:request("/-/status", { method = "POST" }).status)
    assert.equal(404, a:get("/-/nothing").status)
    -- escapes in the reason survive
    local r = a:request("/-/ready", { method = "PUT", body = '{"ready":false,"reason":"caf\\u00e9 \\"x\\""}' })
    assert.equal(200, r.status)
    assert.equal('café "x"', r.json.reason)
    assert.equal(200, a:get("/livez").status)
  end)

  it("health.set_ready(false, reason) from a check's run, and back", function()
    a = agent.start {
      scripts = { ["gate.lua"] = 'health.check { name = "db", probes = "readiness", run = function() return true end }' },
      config = 'return { shutdown_delay = "0s" }',
    }
    assert.equal(200, a:get("/readyz").status)
    -- a reload brings in a check that takes the pod out of rotation
    agent.write(a.scripts .. "/gate.lua", [[
      health.check { name = "db", probes = "readiness", run = function() return true end }
      health.check { name = "gate", probes = "liveness", interval = "100ms", run = function()
        health.set_ready(false, "script says no")
        return true
      end }
    ]])
    assert.truthy(wait_until(function() return a:get("/readyz").status == 503 end, 3), a:log())
    assert.equal("script says no", a:get("/readyz").json.reason)
    assert.equal(200, a:get("/livez").status)
    agent.write(a.scripts .. "/gate.lua", [[
      health.check { name = "db", probes = "readiness", run = function() return true end }
      health.check { name = "gate", probes = "liveness", interval = "100ms", run = function()
        health.set_ready(true)
        return true
      end }
    ]])
    assert.truthy(wait_until(function() return a:get("/readyz").status == 200 end, 3), a:log())
  end)

  it("health.set_ready while a script loads is a load error", function()
    local d = agent.tmpdir()
    agent.write(d .. "/x.lua", 'health.set_ready(false, "no")\n')
    local code, _, err = agent.run_split("lint " .. agent.quote(d))
    os.execute("rm -rf " .. agent.quote(d))
    assert.equal(1, code)
    assert.truthy(err:find("x.lua:1: health.set_ready: call it from a check's run, not while a script loads", 1, true), err)
  end)
end)

describe("/-/status and /info", function()
  it("report generation, content hash, reloads, errors, build facts and health.info values", function()
    a = agent.start { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    local s = a:get("/-/status").json
    assert.equal(1, s.generation)
    assert.matches("^%x+$", s.scripts_hash)
    assert.equal(16, #s.scripts_hash)
    assert.equal(0, s.reloads)
    assert.equal(1, s.checks)
    assert.equal(a.scripts, s.scripts_dir)
    assert.matches("^%d+%-%d+%-%d+T%d+:%d+:%d+%.%d+Z$", s.last_reload)
    assert.equal(agent.null, s.load_error)
    assert.equal(agent.null, s.override)
    assert.is_false(s.shutting_down)

    local i = a:get("/info")
    assert.equal(200, i.status)
    local j = i.json
    assert.equal("healthagent", j.build.name)
    assert.matches("^%d+%.%d+%.%d+$", j.build.version)
    assert.is_string(j.build.commit)
    assert.is_string(j.build.date)
    assert.matches("^%d+%-%d+%-%d+T", j.process.start_time)
    assert.is_true(j.process.uptime_s >= 0 and j.process.uptime_s < 60)
    assert.equal(1, j.scripts.generation)
    assert.equal(s.scripts_hash, j.scripts.hash)
    assert.same({ team = "payments", owner = { name = "ops", pager = 42 } }, j.info)
    local act = a:get("/actuator/info").json
    assert.same(j.build, act.build)
    assert.same(j.info, act.info)

    -- a reload replaces the values and moves the generation and hash on
    agent.write(a.scripts .. "/a.lua", [[
      health.info { team = "checkout" }
      health.check { name = "db", probes = { "readiness", "liveness" }, run = function() return true, "fine" end }
    ]])
    local s2 = wait_until(function()
      local x = a:get("/-/status").json
      return x.generation == 2 and x
    end, 3)
    assert.truthy(s2)
    assert.are_not.equal(s.scripts_hash, s2.scripts_hash)
    assert.equal(1, s2.reloads)
    local j2 = a:get("/info").json
    assert.same({ team = "checkout" }, j2.info)
    assert.equal(s2.scripts_hash, j2.scripts.hash)
  end)

  it("lists every group: aggregate, status as its answer reads, message, members, Lua verdict time", function()
    a = agent.start { scripts = { ["g.lua"] = [[
      health.check { name = "a", ttl = "1h", run = function() return true end }
      health.check { name = "b", ttl = "1h", run = function() return false, "broken" end }
      health.check { name = "c", ttl = "1h", probes = {}, run = function() return true end }
      health.group { name = "q", match = "^[abc]$", path = "/health/q", aggregate = health.aggregate.quorum { min_up = 2 } }
      health.group { name = "v", include = { "a", "b" }, aggregate = function(results)
        return "WARN", "<b>" .. #results .. " seen</b>"
      end }
      health.group { name = "readiness", aggregate = health.aggregate.any }
    ]] }, config = 'return { shutdown_delay = "0s" }' }
    local s = wait_until(function()
      local x = a:get("/-/status").json
      return x.groups and x.groups[3] and x.groups[3].last_run ~= agent.null and x.groups[1].status == "UP" and x
    end, 10)
    assert.truthy(s, a:log())
    local q, r, v = s.groups[1], s.groups[2], s.groups[3]
    assert.same({ name = "q", status = "UP", aggregate = "quorum", min_up = 2, probe = agent.null, path = "/health/q",
                  output = "2 of 3 up (2 needed); failing: b", last_run = agent.null, member_count = 3,
                  members = { "a", "b", "c" }, members_truncated = false }, q)
    assert.equal(a:get("/groupz/q").json.status, q.status)
    assert.same({ "readiness", "readiness", "any", "UP", agent.null },
      { r.name, r.probe, r.aggregate, r.status, r.path })
    assert.same({ "a", "b" }, r.members)
    assert.equal(a:get("/readyz").json.status, r.status)
    assert.same({ "v", "lua", "WARN", "<b>2 seen</b>" }, { v.name, v.aggregate, v.status, v.output })
    assert.matches("^%d+%-%d+%-%d+T%d+:%d+:%d+%.%d+Z$", v.last_run)
    -- a reload: the groups of the new generation, their status as they now answer
    agent.write(a.scripts .. "/g.lua", [[
      health.check { name = "a", ttl = "1h", run = function() return false end }
      health.check { name = "b", ttl = "1h", run = function() return false, "broken" end }
      health.check { name = "c", ttl = "1h", run = function() return true end }
      health.group { name = "q", match = "^[abc]$", aggregate = health.aggregate.quorum { min_up = 2 } }
    ]])
    -- DOWN as soon as a and b fail (c cannot make the quorum alone); then
    -- the message counts c once it has run
    local s2 = wait_until(function()
      local x = a:get("/-/status").json
      return x.generation == 2 and #x.groups == 1 and x.groups[1].status == "DOWN"
        and x.groups[1].output:find("^1 of 3") and x
    end, 10)
    assert.truthy(s2, a:log())
    assert.equal("1 of 3 up, 2 needed; failing: a, b", s2.groups[1].output)
  end)

  it("health.info from a run updates /info", function()
    a = agent.start {
      scripts = {
        ["a.lua"] = [[
          local n = 0
          health.check { name = "v", probes = "liveness", interval = "100ms", run = function()
            n = n + 1
            health.info { runs_seen = n > 1 }
            return true
          end }
        ]],
      },
      config = 'return { shutdown_delay = "0s" }',
    }
    assert.truthy(wait_until(function() return a:get("/info").json.info.runs_seen == true end, 3))
  end)
end)
