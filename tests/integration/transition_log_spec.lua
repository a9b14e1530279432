-- Status transitions as structured log events: in --log-format json each
-- carries check, from, to, output, duration_ms and probes as fields, so a
-- log pipeline can alert on them without parsing msg.
local agent = require "helpers.agent"

describe("status-change logs in JSON", function()
  it("carry check, from, to, output, duration_ms and probes", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[
local n = 0
health.check { name = "flappy", probes = { "liveness", "readiness" }, ttl = "50ms", interval = "100ms",
  run = function() n = n + 1; health.sleep(0.02); if n == 1 then return false, "first down" end
  return true end }
]] },
      config = "return { shutdown_delay = 0 }",
      args = { "--log-format", "json" },
    }
    assert.is_true(a:wait_log("DOWN -> UP", 5), a:log())
    a:stop()
    local seen = {}
    for line in a:log():gmatch("[^\n]+") do
      local obj = agent.decode(line)
      if obj.check == "flappy" and obj.from then seen[#seen + 1] = obj end
    end
    assert.equal(2, #seen)
    local d = seen[1]
    assert.same({ "INIT", "DOWN", "first down", { "liveness", "readiness" }, "warn" },
      { d.from, d.to, d.output, d.probes, d.level })
    assert.equal("INIT -> DOWN: first down", d.msg)
    assert.is_true(math.type(d.duration_ms) == "integer" and d.duration_ms >= 15 and d.duration_ms < 2000,
      tostring(d.duration_ms))
    local u = seen[2]
    assert.same({ "DOWN", "UP", agent.null, "info" }, { u.from, u.to, u.output, u.level })
  end)

  it("text logs keep the one-sentence form", function()
    local a = agent.start {
      scripts = { ["a.lua"] = [[health.check { name = "c", ttl = "1h", run = function() return false, "nope" end }]] },
      config = "return { shutdown_delay = 0 }",
    }
    assert.is_true(a:wait_log("INIT -> DOWN", 5))
    a:stop()
    assert.matches("%[c%] INIT %-> DOWN: nope\n", a:log())
    assert.not_matches("duration_ms", a:log())
  end)
end)
