-- Admin endpoints against the real binary: access (trusted networks, bearer
-- token), readiness overrides (PUT /-/ready, POST /-/drain,
-- health.set_ready) in every format, /-/status and /info.
-- An untrusted client is played by curl --interface 127.0.0.2 with the
-- trusted networks narrowed to 127.0.0.1/32.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/admin_spec.lua
local agent = require "helpers.agent"
local util = require "helpers.lifecycle_util"
local wait_for = util.wait_for

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
  if log then util.assert_clean(log) end
end)

local UNTRUSTED = { interface = "127.0.0.2" }

local function with(t, extra)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

describe("admin access", function()
  it("without a token: trusted networks only, 403 with nothing else for the others", function()
    a = util.spawn { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s", trusted_networks = { "127.0.0.1/32" } }' }
    assert.equal(200, a:get("/-/status").status)
    for _, req in ipairs {
      { "/-/status", "GET" }, { "/-/ready", "PUT" }, { "/-/drain", "POST" }, { "/-/reload", "POST" }, { "/-/nope", "GET" },
    } do
      local r = a:request(req[1], with(UNTRUSTED, { method = req[2], body = req[2] ~= "GET" and '{"ready":false}' or nil }))
      assert.equal(403, r.status, req[1])
      assert.equal("", r.body, req[1])
    end
    -- nothing changed behind the refusals
    local s = a:get("/-/status").json
    assert.equal(1, s.generation)
    assert.equal(agent.null, s.override)
    -- probes and /info stay public
    assert.equal(200, a:get("/readyz", UNTRUSTED).status)
    assert.equal(200, a:get("/info", UNTRUSTED).status)
  end)

  it("with a token: the bearer token from anywhere, 401 with nothing else without it", function()
    a = util.spawn {
      scripts = SCRIPTS,
      config = 'return { shutdown_delay = "0s", token = "s3cret-token", trusted_networks = { "127.0.0.1/32" } }',
    }
    local good = { Authorization = "Bearer s3cret-token" }
    -- missing or wrong token: 401, trusted or not
    for _, opts in ipairs {
      {}, UNTRUSTED, { headers = { Authorization = "Bearer wrong" } },
      { headers = { Authorization = "Bearer s3cret-toke" } }, { headers = { Authorization = "Basic s3cret-token" } },
      { headers = { Authorization = "Bearer s3cret-token " } },
    } do
      local r = a:get("/-/status", opts)
      assert.equal(401, r.status)
      assert.equal("", r.body)
      assert.equal("Bearer", r.headers["www-authenticate"])
    end
    assert.equal(200, a:get("/-/status", { headers = good }).status)
    assert.equal(200, a:get("/-/status", with(UNTRUSTED, { headers = good })).status)
    local r = a:request("/-/drain", with(UNTRUSTED, { method = "POST", headers = good }))
    assert.equal(200, r.status)
    assert.truthy(wait_for(function() return a:get("/readyz").status == 503 end, 2))
  end)

  it("the token also comes from HEALTHAGENT_TOKEN", function()
    a = util.spawn { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }', env = "HEALTHAGENT_TOKEN=envtok" }
    assert.equal(401, a:get("/-/status").status)
    assert.equal(200, a:get("/-/status", { headers = { Authorization = "Bearer envtok" } }).status)
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
    a = util.spawn { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    assert.equal(200, a:get("/readyz").status)
    local r = a:request("/-/ready", { method = "PUT", body = '{"ready":false,"reason":"maintenance"}' })
    assert.equal(200, r.status)
    assert.same({ ready = false, reason = "maintenance" }, r.json)
    assert.truthy(wait_for(function() return a:get("/readyz").status == 503 end, 2))
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
    assert.truthy(wait_for(function() return a:get("/readyz").status == 200 end, 2))
    assert.equal(agent.null, a:get("/-/status").json.override)
    assert.truthy(a:log():find("readiness override: cleared", 1, true))
  end)

  it("POST /-/drain is not ready \"draining\"", function()
    a = util.spawn { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    local r = a:request("/-/drain", { method = "POST" })
    assert.equal(200, r.status)
    assert.same({ ready = false, reason = "draining" }, r.json)
    assert.truthy(wait_for(function() return a:get("/readyz").status == 503 end, 2))
    assert.equal("draining", a:get("/readyz").json.reason)
  end)

  it("refuses malformed bodies and wrong methods", function()
    a = util.spawn { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
    for body, msg in pairs {
      [""] = "expected a JSON object",
      ["{"] = "malformed JSON",
      ['{"ready":"no"}'] = '"ready" must be true or false',
      ['{"reason":"x"}'] = 'missing field "ready"',
      ['{"ready":false,"why":"x"}'] = "unknown field",
      ['{"ready":false} x'] = "trailing data",
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
    a = util.spawn {
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
    assert.truthy(wait_for(function() return a:get("/readyz").status == 503 end, 3), a:log())
    assert.equal("script says no", a:get("/readyz").json.reason)
    assert.equal(200, a:get("/livez").status)
    agent.write(a.scripts .. "/gate.lua", [[
      health.check { name = "db", probes = "readiness", run = function() return true end }
      health.check { name = "gate", probes = "liveness", interval = "100ms", run = function()
        health.set_ready(true)
        return true
      end }
    ]])
    assert.truthy(wait_for(function() return a:get("/readyz").status == 200 end, 3), a:log())
  end)

  it("health.set_ready while a script loads is a load error", function()
    local d = agent.tmpdir()
    agent.write(d .. "/x.lua", 'health.set_ready(false, "no")\n')
    local code, _, err = util.run("lint " .. agent.quote(d))
    os.execute("rm -rf " .. agent.quote(d))
    assert.equal(1, code)
    assert.truthy(err:find("x.lua:1: health.set_ready: call it from a check's run, not while a script loads", 1, true), err)
  end)
end)

describe("/-/status and /info", function()
  it("report generation, content hash, reloads, errors, build facts and health.info values", function()
    a = util.spawn { scripts = SCRIPTS, config = 'return { shutdown_delay = "0s" }' }
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
    local s2 = wait_for(function()
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

  it("health.info from a run updates /info", function()
    a = util.spawn {
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
    assert.truthy(wait_for(function() return a:get("/info").json.info.runs_seen == true end, 3))
  end)
end)
