-- Errors name the user's file and line: a bad field or a duplicate name in a
-- health.checks.* factory call is reported at the call, not inside lualib/,
-- in `lint`, in `check` (its error and the `where` of every format), and
-- in reload errors; lint finds duplicates while another file is broken.
local agent = require "helpers.agent"

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("errors at the user's line", function()
  local dir
  before_each(function() dir = agent.tmpdir() end)
  after_each(function() agent.sh("rm -rf " .. agent.quote(dir)) end)

  it("lint: a bad timeout in a factory call", function()
    agent.write(dir .. "/t.lua", "-- a comment\n\nhealth.checks.tcp { name = 'p', host = '127.0.0.1', port = 1,\n" ..
      "  timeout = 'soon' }\n")
    local rc, out = agent.run("lint " .. dir)
    assert.equal(1, rc)
    assert.matches("^" .. esc(dir) .. "/t%.lua:3: health%.check: field 'timeout': bad duration 'soon'", out)
    assert.not_matches("lualib", out)
  end)

  it("lint: a duplicate name across factory calls names both user lines", function()
    agent.write(dir .. "/a.lua", "health.checks.tcp { name = 'dup', host = '127.0.0.1', port = 1 }\n")
    agent.write(dir .. "/b.lua", "\nhealth.checks.disk { name = 'dup', path = '/' }\n")
    local rc, out = agent.run("lint " .. dir)
    assert.equal(1, rc)
    assert.matches(esc(dir) .. "/b%.lua:2: health%.check: duplicate check name 'dup' %(first defined at " ..
      esc(dir) .. "/a%.lua:1%)", out)
    assert.not_matches("lualib", out)
  end)

  it("lint reports a duplicate name while another file has a syntax error", function()
    agent.write(dir .. "/a.lua", "health.check { name = 'dup', run = function() return true end }\n")
    agent.write(dir .. "/b.lua", "health.check { name = 'dup', run = function() return true end }\n")
    agent.write(dir .. "/c.lua", "local = 1\n")
    local rc, out = agent.run("lint " .. dir)
    assert.equal(1, rc)
    assert.matches(esc(dir) .. "/c%.lua:1: ", out)
    assert.matches(esc(dir) .. "/b%.lua:1: health%.check: duplicate check name 'dup'", out)
    assert.matches("2 error%(s%) in 3 file%(s%)", out)
  end)

  it("check: the load error and the where of json, tap and junit name the user's line", function()
    agent.write(dir .. "/t.lua", "health.checks.tcp { name = 'p', host = '127.0.0.1', port = 1, timeout = 'x' }\n")
    local rc, out = agent.run("check --scripts " .. dir)
    assert.equal(2, rc)
    assert.matches("healthagent check: " .. esc(dir) .. "/t%.lua:1: health%.check: field 'timeout'", out)
    agent.write(dir .. "/t.lua", "\nhealth.checks.tcp { name = 'p', host = '127.0.0.1', port = 1 }\n")
    for _, fmt in ipairs { "json", "tap", "junit" } do
      rc, out = agent.run("check --format " .. fmt .. " --scripts " .. dir)
      assert.equal(1, rc)
      assert.matches(esc(dir) .. "/t%.lua:2", out, fmt)
      assert.not_matches("lualib", out, fmt)
    end
    rc, out = agent.run("check --format json --scripts " .. dir)
    assert.equal(dir .. "/t.lua:2", agent.decode(out).checks[1].where)
  end)

  it("a reload error names the user's line", function()
    local a = agent.start { scripts = { ["a.lua"] = "health.check { name = 'x', run = function() return true end }\n" },
      config = 'return { shutdown_delay = 0, rescan_interval = "1h" }' }
    agent.write(a.scripts .. "/b.lua", "\n\nhealth.checks.disk { name = 'x', path = '/' }\n")
    assert.truthy(a:wait_log("reload failed: ", 3), a:log())
    assert.truthy(a:log():find("reload failed: " .. a.scripts .. "/b.lua:3: health.check: duplicate check name 'x'",
      1, true), a:log())
    a:stop()
  end)

  it("the library's own line when the library itself is at fault", function()
    agent.sh("cp -r " .. agent.quote(os.getenv("HA_SOURCE_DIR") .. "/lualib") .. " " .. agent.quote(dir .. "/lualib"))
    -- a factory with a bug of its own, and one that defines a bad check
    agent.write(dir .. "/lualib/health/checks/buggy.lua", "return function(o)\n  return o.missing.field\nend\n")
    agent.write(dir .. "/lualib/health/checks/strict.lua",
      "return function(o)\n  health.check { name = o.name, timeout = 'bad', run = function() end }\nend\n")
    agent.sh("mkdir -p " .. agent.quote(dir .. "/s") .. " " .. agent.quote(dir .. "/t"))
    agent.write(dir .. "/s/a.lua", "\nhealth.checks.buggy { name = 'b' }\n")
    agent.write(dir .. "/t/a.lua", "\n\nhealth.checks.strict { name = 'b' }\n")
    agent.write(dir .. "/c.lua", "return { lualib = '" .. dir .. "/lualib' }")
    local rc, out = agent.run("lint --config " .. dir .. "/c.lua " .. dir .. "/s")
    assert.equal(1, rc)
    assert.matches(esc(dir) .. "/lualib/health/checks/buggy%.lua:2: attempt to index a nil value", out)
    rc, out = agent.run("lint --config " .. dir .. "/c.lua " .. dir .. "/t")
    assert.equal(1, rc)
    assert.matches("^" .. esc(dir) .. "/t/a%.lua:3: health%.check: field 'timeout'", out)
  end)
end)
