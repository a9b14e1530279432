-- Core engine semantics, run inside the agent's own runtime:
--   busted --lua=build/healthagent tests/unit/core_spec.lua
-- Each spec loads scripts into a generation exactly as the agent does and
-- runs its checks; every spec ends with no libuv handle left open.
local testing = require "health.testing"

local function load(src, name)
  local g, err = testing.load({ [name or "t.lua"] = src })
  assert(g, err)
  return g
end

local function load_err(src, name)
  local g, err = testing.load({ [name or "t.lua"] = src })
  assert.is_nil(g)
  return err
end

local function elapsed(f)
  local t0 = health.now()
  local r = f()
  return r, health.now() - t0
end

after_each(function()
  collectgarbage()
  assert.equal(0, testing.handles())
end)

describe("health.sleep", function()
  it("yields only the calling check and wakes after the delay", function()
    local g = load [[
      health.check { name = "s", run = function() health.sleep(0.1) return true, "slept" end }
    ]]
    local r, dt = elapsed(function() return g:run("s") end)
    assert.equal("UP", r.status)
    assert.equal("slept", r.output)
    assert.is_true(dt >= 0.095 and dt < 0.5, "took " .. dt)
    g:close()
  end)

  it("lets concurrent checks overlap", function()
    local g = load [[
      for i = 1, 20 do
        health.check { name = "s" .. i, run = function() health.sleep(0.2) return true end }
      end
    ]]
    local t0 = health.now()
    local hs = {}
    for i = 1, 20 do
      hs[i] = testing.spawn(function() return g:run("s" .. i).status end)
    end
    for i = 1, 20 do
      local ok, status = hs[i]:wait()
      assert.is_true(ok)
      assert.equal("UP", status)
    end
    assert.is_true(health.now() - t0 < 0.6, "20 x 0.2s sleeps should overlap")
    g:close()
  end)

  it("rejects bad arguments with the script's file:line", function()
    local g = load([[
health.check { name = "bad", run = function()
  health.sleep(-1)
end }
]], "sleepy.lua")
    local r = g:run("bad")
    assert.equal("DOWN", r.status)
    assert.matches("^sleepy.lua:2: bad argument #1 to 'sleep'", r.output)
    g:close()
  end)

  it("inside coroutine.wrap suspends the whole check, and resumes the coroutine", function()
    local g = load [[
      health.check { name = "wrapped", run = function()
        local log = {}
        local co = coroutine.wrap(function(a)
          log[#log + 1] = "in " .. a
          health.sleep(0.02)
          local b = coroutine.yield("y1")
          log[#log + 1] = "got " .. b
          return "done"
        end)
        local first = co("x")
        log[#log + 1] = first
        local second = co("z")
        log[#log + 1] = second
        return true, table.concat(log, ",")
      end }
    ]]
    assert.equal("in x,y1,got z,done", g:run("wrapped").output)
    g:close()
  end)

  it("cannot be called while a script loads", function()
    local err = load_err([[health.sleep(1)]], "early.lua")
    assert.matches("^early.lua:1: health.sleep: called outside a check run", err)
  end)

  it("coroutine.yield outside the script's own coroutines raises at its file:line", function()
    local g = load([[
health.check { name = "bare", run = function()
  coroutine.yield()
end }
health.check { name = "caught", run = function()
  local ok, err = pcall(coroutine.yield, 1)
  local inner = coroutine.wrap(function() return coroutine.isyieldable() end)()
  return not ok and inner and not coroutine.isyieldable(), tostring(err)
end }
]], "yields.lua")
    local r = g:run("bare")
    assert.equal("DOWN", r.status)
    assert.equal("yields.lua:2: attempt to yield from outside a coroutine", r.output)
    r = g:run("caught")
    assert.equal("UP", r.status, r.output)
    assert.equal("attempt to yield from outside a coroutine", r.output)
    g:close()
    assert.matches("^early.lua:2: attempt to yield from outside a coroutine",
      load_err("local x = 1\ncoroutine.yield()", "early.lua"))
  end)

  it("cannot yield from inside a metamethod called by C", function()
    local g = load [[
      health.check { name = "sorted", run = function()
        local t = { 3, 1, 2 }
        table.sort(t, function(a, b) health.sleep(0) return a < b end)
        return true
      end }
    ]]
    local r = g:run("sorted")
    assert.equal("DOWN", r.status)
    assert.matches("health.sleep: cannot wait here", r.output)
    g:close()
  end)
end)

describe("deadlines", function()
  it("ends a sleeping check at its timeout", function()
    local g = load [[
      health.check { name = "slow", timeout = "150ms", run = function() health.sleep(5) return true end }
    ]]
    local r, dt = elapsed(function() return g:run("slow") end)
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 150ms", r.output)
    assert.is_true(dt >= 0.14 and dt < 0.6, "took " .. dt)
    assert.equal(0, g:tasks())
    g:close()
  end)

  it("stops CPU-bound Lua: a bare loop", function()
    local g = load [[
      health.check { name = "spin", timeout = "200ms", run = function() while true do end end }
    ]]
    local r, dt = elapsed(function() return g:run("spin") end)
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 200ms", r.output)
    assert.is_true(dt < 1, "took " .. dt)
    g:close()
  end)

  it("stops CPU-bound Lua that swallows errors with pcall", function()
    local g = load [[
      health.check { name = "pspin", timeout = "200ms", run = function()
        while true do pcall(function() while true do end end) end
      end }
      health.check { name = "xspin", timeout = "200ms", run = function()
        while true do xpcall(function() while true do end end, function(e) return e end) end
      end }
    ]]
    for _, n in ipairs { "pspin", "xspin" } do
      local r, dt = elapsed(function() return g:run(n) end)
      assert.equal("DOWN", r.status)
      assert.equal("timeout after 200ms", r.output)
      assert.is_true(dt < 1, n .. " took " .. dt)
    end
    g:close()
  end)

  it("stops a loop hidden in a user coroutine", function()
    local g = load [[
      health.check { name = "cospin", timeout = "200ms", run = function()
        local co = coroutine.wrap(function() while true do end end)
        co()
      end }
    ]]
    local r = g:run("cospin")
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 200ms", r.output)
    g:close()
  end)

  it("shares the engine fairly: a spinning check does not delay a sleeper", function()
    local g = load [[
      health.check { name = "spin", timeout = "500ms", run = function() while true do end end }
      health.check { name = "quick", timeout = "1s", run = function() health.sleep(0.05) return true end }
    ]]
    local spin = testing.spawn(function() return g:run("spin") end)
    health.sleep(0.05) -- the spinner is running now
    local r, dt = elapsed(function() return g:run("quick") end)
    assert.equal("UP", r.status)
    assert.is_true(dt < 0.3, "sleeper delayed by the spinner: " .. dt)
    local _, sr = spin:wait()
    assert.equal("timeout after 500ms", sr.output)
    g:close()
  end)

  it("runs to-be-closed variables of a killed run", function()
    local g = load [[
      closed = 0
      health.check { name = "tbc", timeout = "100ms", run = function()
        local guard <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
        health.sleep(1)
      end }
      health.check { name = "count", run = function() return true, tostring(closed) end }
    ]]
    assert.equal("timeout after 100ms", g:run("tbc").output)
    assert.equal("1", g:run("count").output)
    g:close()
  end)
end)

describe("health.spawn", function()
  it("runs I/O of one check in parallel", function()
    local g = load [[
      health.check { name = "par", timeout = "1s", run = function()
        local hs = {}
        for i = 1, 5 do hs[i] = health.spawn(function(n) health.sleep(0.1) return n * 2 end, i) end
        local sum = 0
        for i = 1, 5 do
          local ok, v = hs[i]:wait()
          assert(ok, v)
          sum = sum + v
        end
        return true, tostring(sum)
      end }
    ]]
    local r, dt = elapsed(function() return g:run("par") end)
    assert.equal("30", r.output)
    assert.is_true(dt < 0.3, "5 x 0.1s in parallel took " .. dt)
    g:close()
  end)

  it("reports a child's error through wait", function()
    local g = load([[
health.check { name = "err", run = function()
  local h = health.spawn(function() error("child failed") end)
  local ok, e = h:wait()
  return ok == false, e
end }
]], "sp.lua")
    local r = g:run("err")
    assert.equal("UP", r.status)
    assert.equal("sp.lua:2: child failed", r.output)
    g:close()
  end)

  it("children share the check's deadline and end with it", function()
    local g = load [[
      done = 0
      health.check { name = "slowkids", timeout = "150ms", run = function()
        health.spawn(function() health.sleep(5) done = done + 1 end)
        local h = health.spawn(function() while true do end end)
        h:wait()
      end }
      health.check { name = "parent_returns", run = function()
        health.spawn(function() health.sleep(0.05) done = done + 1 end)
        return true
      end }
      health.check { name = "count", run = function() return true, tostring(done) end }
    ]]
    local r, dt = elapsed(function() return g:run("slowkids") end)
    assert.equal("timeout after 150ms", r.output)
    assert.is_true(dt < 0.5)
    assert.equal(0, g:tasks())
    assert.equal("UP", g:run("parent_returns").status)
    health.sleep(0.1)
    assert.equal("0", g:run("count").output) -- the children were cancelled, not finished
    g:close()
  end)

  it("cannot be called while a script loads", function()
    assert.matches("health.spawn: called outside a check run", load_err([[health.spawn(function() end)]]))
  end)
end)

describe("results", function()
  local g
  before_each(function()
    g = load([[
health.check { name = "up", run = function() return true, "fine", { n = 3, list = { 1, 2, 3 }, ok = true, s = "a\"b" } end }
health.check { name = "down", run = function() return false, "broken" end }
health.check { name = "warned", run = function() return health.warn("degraded", { lag = 7 }) end }
health.check { name = "raises", run = function()
  error("boom")
end }
health.check { name = "raises_table", run = function()
  error({ code = 1 })
end }
health.check { name = "nothing", run = function() end }
health.check { name = "number", run = function() return 1 end }
health.check { name = "long", run = function() return true, ("x"):rep(5000) end }
health.check { name = "bigdetails", run = function()
  local t = {} for i = 1, 5000 do t[i] = "item" .. i end return true, "big", t end }
health.check { name = "cyclic", run = function() local t = {} t.self = t return true, "c", t end }
health.check { name = "ctx", run = function(ctx) return true, ctx.name .. " " .. ctx.timeout .. " " .. ctx.attempt end }
]], "results.lua")
  end)
  after_each(function() g:close() end)

  it("true with message and details is UP with JSON details", function()
    local r = g:run("up")
    assert.equal("UP", r.status)
    assert.equal("fine", r.output)
    local d = require("helpers.spec").decode(r.details)
    assert.same({ n = 3, list = { 1, 2, 3 }, ok = true, s = 'a"b' }, d)
  end)

  it("false is DOWN with the message", function()
    local r = g:run("down")
    assert.equal("DOWN", r.status)
    assert.equal("broken", r.output)
  end)

  it("health.warn is WARN", function()
    local r = g:run("warned")
    assert.equal("WARN", r.status)
    assert.equal("degraded", r.output)
    assert.equal('{"lag":7}', r.details)
  end)

  it("a raised error is DOWN with file:line", function()
    assert.equal("results.lua:5: boom", g:run("raises").output)
    assert.equal("results.lua:8: error object is a table value", g:run("raises_table").output)
  end)

  it("no status or a non-boolean is DOWN", function()
    assert.equal("check returned no status", g:run("nothing").output)
    assert.equal("DOWN", g:run("number").status)
  end)

  it("caps output and details", function()
    assert.equal(1024, #g:run("long").output)
    assert.equal('{"error":"details exceed 8192 bytes"}', g:run("bigdetails").details)
    assert.matches('"<too deep>"', g:run("cyclic").details)
  end)

  it("passes ctx with name, timeout and attempt", function()
    assert.equal("ctx 1.0 1", g:run("ctx").output)
    assert.equal("ctx 1.0 2", g:run("ctx").output)
  end)
end)

describe("thresholds", function()
  it("stays INIT until thresholds decide, then moves only after N consecutive results", function()
    local g = load [[
      local script = { false, false, false, true, false, true, true, false }
      local i = 0
      health.check { name = "flap", failure_threshold = 3, success_threshold = 2, run = function()
        i = i + 1
        return script[i], "run " .. i
      end }
    ]]
    assert.equal("INIT", g:state("flap").status)
    local seen = {}
    for i = 1, 8 do seen[i] = g:run("flap").status end
    assert.same({ "INIT", "INIT", "DOWN", "DOWN", "DOWN", "DOWN", "UP", "UP" }, seen)
    g:close()
  end)

  it("UP needs failure_threshold failures to turn DOWN", function()
    local g = load [[
      local i = 0
      health.check { name = "c", failure_threshold = 2, run = function() i = i + 1 return i == 1 end }
    ]]
    assert.equal("UP", g:run("c").status)
    local r = g:run("c")
    assert.equal("UP", r.status)   -- one failure is tolerated
    assert.equal("DOWN", r.result) -- but the run itself failed
    assert.equal("DOWN", g:run("c").status)
    g:close()
  end)

  it("single flight: concurrent demands share one run", function()
    local g = load [[
      runs = 0
      health.check { name = "c", run = function() runs = runs + 1 health.sleep(0.1) return true, tostring(runs) end }
    ]]
    local hs = {}
    for i = 1, 5 do hs[i] = testing.spawn(function() return g:run("c") end) end
    for i = 1, 5 do
      local _, r = hs[i]:wait()
      assert.equal("1", r.output)
    end
    assert.equal(1, g:state("c").runs)
    g:close()
  end)
end)

describe("steady states", function()
  -- Runs the check once per entry of script ("UP", "WARN", "DOWN") and
  -- returns the statuses seen after each run.
  local function statuses(fthr, sthr, script)
    local g = load(([[
      local script, i = { %s }, 0
      health.check { name = "c", failure_threshold = %d, success_threshold = %d, run = function()
        i = i + 1
        local r = script[i]
        if r == "WARN" then return health.warn("w" .. i) end
        return r == "UP", r .. i
      end }
    ]]):format('"' .. table.concat(script, '", "') .. '"', fthr, sthr))
    local seen = {}
    for i = 1, #script do seen[i] = g:run("c").status end
    g:close()
    return seen
  end

  it("WARN and DOWN alternating below the failure threshold stays WARN", function()
    local script = { "WARN" }
    for i = 1, 10 do script[#script + 1] = "DOWN" script[#script + 1] = "WARN" end
    local seen = statuses(3, 1, script)
    for i = 1, #seen do assert.equal("WARN", seen[i], "run " .. i .. ": " .. table.concat(seen, ",")) end
  end)

  it("a DOWN below the failure threshold keeps UP; a WARN turns UP into WARN at once", function()
    assert.same({ "INIT", "UP", "UP", "WARN", "WARN", "UP" },
      statuses(3, 2, { "UP", "UP", "DOWN", "WARN", "UP", "UP" }))
  end)

  it("WARN back to UP needs success_threshold UP results in a row", function()
    assert.same({ "INIT", "INIT", "WARN", "UP", "WARN", "WARN", "WARN", "UP" },
      statuses(2, 3, { "WARN", "UP", "UP", "UP", "WARN", "UP", "UP", "UP" }))
  end)

  it("leaving INIT or DOWN: UP when the passing streak was all UP, else WARN", function()
    assert.same({ "INIT", "WARN", "DOWN", "DOWN", "WARN", "WARN", "UP" },
      statuses(1, 2, { "WARN", "UP", "DOWN", "UP", "WARN", "UP", "UP" }))
    assert.same({ "INIT", "DOWN", "DOWN", "UP", "UP" },
      statuses(2, 2, { "DOWN", "DOWN", "UP", "UP", "DOWN" }))
  end)
end)

describe("only the culprit pays", function()
  -- Each hog holds the engine inside a C function that calls back into Lua
  -- (no yield possible) until its own deadline.
  local hogs = {
    gsub = [[("abc"):gsub(".", function() while true do end end)]],
    sort = [[table.sort({3, 2, 1, 4, 5}, function(a, b) while true do end end)]],
    tostring = [[tostring(setmetatable({}, { __tostring = function() while true do end end }))]],
  }
  for name, body in pairs(hogs) do
    it("a " .. name .. " hog: the bystanders it blocked stay UP, the hog reads timeout", function()
      local g = load(([[
        health.check { name = "hog", timeout = "1s", run = function() %s end }
        health.check { name = "sleeper", timeout = "500ms", run = function() health.sleep(0.05) return true, "slept" end }
        health.check { name = "spinner", timeout = "500ms", run = function()
          local t0 = os.clock() while os.clock() - t0 < 0.03 do end return true, "spun" end }
      ]]):format(body))
      local sl = testing.spawn(function() return g:run("sleeper") end)
      local sp = testing.spawn(function() return g:run("spinner") end)
      health.sleep(0.01) -- both started: their deadlines run from now
      local hog = testing.spawn(function() return g:run("hog") end)
      local t0 = health.now()
      local _, hr = hog:wait()
      local _, slr = sl:wait()
      local _, spr = sp:wait()
      assert.is_true(health.now() - t0 >= 0.8, "the hog did not hold the engine")
      assert.equal("timeout after 1s", hr.output)
      assert.equal("UP", slr.status, slr.output)
      assert.equal("slept", slr.output)
      assert.equal("UP", spr.status, spr.output)
      g:close()
    end)
  end

  it("a run that overran its deadline inside a C call is a timeout, whatever it returned", function()
    local g = load [[
      health.check { name = "c", timeout = "100ms", run = function()
        local found = ("a"):rep(1000):find(".-.-b") -- about 0.85 s of backtracking here: no hook runs inside
        return found == nil, "returned late"
      end }
    ]]
    local r, dt = elapsed(function() return g:run("c") end)
    assert.is_true(dt > 0.15, "the C call was too quick to prove anything: " .. dt)
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 100ms", r.output)
    g:close()
  end)
end)

describe("sandbox", function()
  it("keeps each file's globals to itself", function()
    local g, err = testing.load({
      ["a.lua"] = [[ shared = "a" health.check { name = "a", run = function() return true, tostring(shared) end } ]],
      ["b.lua"] = [[ health.check { name = "b", run = function() return true, tostring(shared) end } ]],
    })
    assert(g, err)
    assert.equal("a", g:run("a").output)
    assert.equal("nil", g:run("b").output)
    g:close()
  end)

  it("removes dangerous functions", function()
    local g = load [[
      health.check { name = "probe", run = function()
        local out = {}
        for _, n in ipairs { "os.exit", "os.execute", "io.popen", "string.dump", "debug.getinfo",
                             "debug.sethook", "debug.traceback", "package", "dofile" } do
          local v = _G
          for part in n:gmatch("[^.]+") do v = v and v[part] end
          out[#out + 1] = n .. "=" .. type(v)
        end
        return true, table.concat(out, " ")
      end }
    ]]
    assert.equal("os.exit=nil os.execute=nil io.popen=nil string.dump=nil debug.getinfo=nil " ..
      "debug.sethook=nil debug.traceback=function package=nil dofile=nil", g:run("probe").output)
    g:close()
  end)

  it("refuses __gc metamethods and binary chunks", function()
    local g = load([[
health.check { name = "gc", run = function() setmetatable({}, { __gc = function() end }) end }
health.check { name = "bin", run = function()
  local f, err = load("\27Lua", "x", "b")
  return f == nil, err
end }
health.check { name = "bin2", run = function()
  local f, err = load("\27Lua")
  return f == nil, err
end }
]], "sb.lua")
    assert.equal("sb.lua:1: setmetatable: __gc metamethods are not available to scripts", g:run("gc").output)
    assert.matches("binary chunks are not available", g:run("bin").output)
    local r = g:run("bin2")
    assert.equal("UP", r.status)
    assert.matches("binary chunk", r.output)
    g:close()
  end)

  it("makes health read-only", function()
    local err = load_err([[health.check = nil]], "ro.lua")
    assert.equal("ro.lua:1: cannot modify a library table (field 'check')", err)
  end)

  it("finds modules in lib/ beside the scripts, in text mode only", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir .. "/lib")
    local f = io.open(dir .. "/lib/mylib.lua", "w")
    f:write("return { answer = 42 }")
    f:close()
    f = io.open(dir .. "/main.lua", "w")
    f:write([[local m = require "mylib"
health.check { name = "req", run = function() return true, tostring(m.answer) end }]])
    f:close()
    local g, err = testing.load(dir)
    assert(g, err)
    assert.equal("42", g:run("req").output)
    g:close()
    os.execute("rm -rf " .. dir)
  end)
end)

describe("sandbox holds against", function()
  it("require of the full standard libraries", function()
    local g = load [[
      health.check { name = "req", run = function()
        local out = {}
        for _, m in ipairs { "os", "debug", "io", "_G", "package" } do
          local ok, v = pcall(require, m)
          out[#out + 1] = m .. ":" .. (ok and type(v) or "error")
        end
        local os2, dbg = require "os", require "debug"
        out[#out + 1] = tostring(os2.execute) .. tostring(dbg.sethook) .. tostring(io.read) .. tostring(io.popen)
        return true, table.concat(out, " ")
      end }
    ]]
    assert.equal("os:table debug:table io:table _G:error package:error nilnilnilnil", g:run("req").output)
    g:close()
  end)

  it("one file tampering with what another calls", function()
    local g, err = testing.load({
      ["a.lua"] = [[
        local tries = {}
        local function try(name, f) local ok = pcall(f) tries[#tries + 1] = name .. "=" .. tostring(ok) end
        try("string", function() string.upper = function() return "PWNED" end end)
        try("rawset", function() rawset(string, "upper", function() return "PWNED" end) end)
        try("health", function() rawset(health, "sleep", function() end) end)
        try("envmt", function() getmetatable(_ENV).__index.shared = "PWNED" end)
        try("strmt", function() getmetatable("").__index = {} end)
        try("setmt", function() setmetatable(_ENV, {}) end)
        try("load", function() load("leaked = 'PWNED'")() end)
        report = table.concat(tries, " ")
        health.check { name = "a", run = function() return true, report end }
      ]],
      ["b.lua"] = [[
        health.check { name = "b", run = function()
          return true, ("x"):upper() .. string.upper("y") .. tostring(shared) .. tostring(leaked)
        end }
      ]],
    })
    assert(g, err)
    assert.equal("string=false rawset=false health=false envmt=false strmt=false setmt=false load=true",
      g:run("a").output)
    assert.equal("XYnilnil", g:run("b").output)
    g:close()
  end)

  it("reading the agent's stdin", function()
    local g = load [[
      health.check { name = "stdin", run = function()
        local ok = pcall(io.lines)
        return true, tostring(io.read) .. tostring(io.stdin) .. tostring(ok)
      end }
    ]]
    assert.equal("nilnilfalse", g:run("stdin").output)
    g:close()
  end)

  it("resuming or closing another check's coroutine", function()
    local g = load [[
      victim = nil
      health.check { name = "a", run = function() victim = coroutine.running() health.sleep(0.2) return true, "a ok" end }
      health.check { name = "b", run = function()
        local ok1, e1 = pcall(coroutine.resume, victim, "forged")
        local ok2, e2 = pcall(coroutine.close, victim)
        return true, tostring(ok1) .. " " .. tostring(ok2) .. " " .. e2
      end }
    ]]
    local a = testing.spawn(function() return g:run("a") end)
    health.sleep(0.05)
    assert.matches("^false false .*cannot close the coroutine of a check run", g:run("b").output)
    local _, ra = a:wait()
    assert.equal("a ok", ra.output)
    g:close()
  end)
end)

describe("deadlines hold", function()
  local cases = {
    sort = [[table.sort({3, 2, 1, 4, 5}, function(a, b) while true do pcall(function() while true do end end) end end)]],
    gsub = [[("abc"):gsub(".", function() while true do pcall(function() while true do end end) end end)]],
    tostring = [[tostring(setmetatable({}, { __tostring = function() while true do pcall(function() while true do end end) end end }))]],
    handler = [[xpcall(function() error("x") end, function() while true do pcall(function() while true do end end) end end)]],
  }
  for name, body in pairs(cases) do
    it("in a non-yieldable context: " .. name, function()
      local g = load(("health.check { name = 'c', timeout = '200ms', run = function() %s end }"):format(body))
      local r, dt = elapsed(function() return g:run("c") end)
      assert.equal("timeout after 200ms", r.output)
      assert.is_true(dt < 1, "took " .. dt)
      g:close()
    end)
  end

  it("in a __close handler of a killed run", function()
    local g = load [[
      health.check { name = "c", timeout = "100ms", run = function()
        local x <close> = setmetatable({}, { __close = function() while true do pcall(function() while true do end end) end end })
        health.sleep(5)
      end }
      health.check { name = "after", run = function() return true end }
    ]]
    local _, dt = elapsed(function() return g:run("c") end)
    assert.is_true(dt < 1, "took " .. dt)
    assert.equal("UP", g:run("after").status)
    g:close()
  end)

  it("for a coroutine made while the script loaded", function()
    local g = load [[
      local gen = coroutine.wrap(function() for i = 1, 1e9 do coroutine.yield(i) end end)
      health.check { name = "c", timeout = "200ms", run = function() return true, tostring(gen() + gen()) end }
      health.check { name = "spin", timeout = "200ms", run = function() gen = coroutine.wrap(function() while true do end end) gen() end }
    ]]
    assert.equal("3", g:run("c").output)
    assert.equal("timeout after 200ms", g:run("spin").output)
    g:close()
  end)

  it("while a script loads, even with pcall", function()
    local err = load_err([[while true do pcall(function() while true do end end) end]], "slow.lua")
    assert.matches("^slow.lua:1: scripts took longer than", err)
  end)

  it("spawned children share one memory allowance", function()
    local g = load [[
      health.check { name = "kids", memory = "4MiB", timeout = "5s", run = function()
        local hs, keep = {}, {}
        for i = 1, 4 do
          hs[i] = health.spawn(function() local t = {} for k = 1, 3000 do t[k] = ("x"):rep(1000) .. k end keep[i] = t health.sleep(0.1) end)
        end
        for i = 1, 4 do local ok, e = hs[i]:wait() if not ok then return false, e end end
        return true, "all held"
      end }
    ]]
    assert.equal("not enough memory", g:run("kids").output)
    g:close()
  end)
end)

describe("results stay bounded", function()
  it("a cyclic, exploding details table", function()
    local g = load [[
      health.check { name = "c", run = function() local t = {} for i = 1, 6 do t[i] = t end return true, "ok", { t } end }
    ]]
    local r, dt = elapsed(function() return g:run("c") end)
    assert.equal('{"error":"details exceed 8192 bytes"}', r.details)
    assert.is_true(dt < 1, "took " .. dt)
    g:close()
  end)

  it("a child returning a huge number of values", function()
    local g = load [[
      health.check { name = "c", timeout = "5s", run = function()
        local t = {} for i = 1, 100000 do t[i] = i end
        local ok, e = health.spawn(function() return table.unpack(t) end):wait()
        return true, tostring(ok) .. " " .. tostring(e)
      end }
    ]]
    assert.equal("true 1", g:run("c").output) -- delivered, without overflowing the caller's stack
    g:close()
  end)
end)

describe("memory", function()
  it("a memory bomb ends its own check and nothing else", function()
    local g = load [[
      health.check { name = "bomb", timeout = "5s", run = function()
        local t = {}
        for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end
      end }
      health.check { name = "hoard", timeout = "5s", run = function()
        local t = {}
        for i = 1, 1e9 do t[i] = ("y"):rep(1000) .. i if i % 1000 == 0 then health.sleep(0) end end
      end }
      health.check { name = "fine", run = function()
        local t = {} for i = 1, 1000 do t[i] = tostring(i) end health.sleep(0.01) return true, "ok " .. #t end }
    ]]
    local r = g:run("bomb")
    assert.equal("DOWN", r.status)
    assert.equal("not enough memory", r.output)
    -- a hoarder that yields while holding memory does not starve the others
    local hoarder = testing.spawn(function() return g:run("hoard") end)
    health.sleep(0.02)
    local f = g:run("fine")
    assert.equal("UP", f.status)
    assert.equal("ok 1000", f.output)
    local _, hoard = hoarder:wait()
    assert.equal("not enough memory", hoard.output)
    assert.equal("UP", g:run("fine").status)
    g:close()
  end)
end)

describe("definitions", function()
  local cases = {
    { [[health.check { name = "x", timeout = "2 s", run = function() end }]],
      "^d.lua:1: health.check: field 'timeout': bad duration '2 s'" },
    { [[health.check { name = "x", ttl = {}, run = function() end }]], "field 'ttl': bad duration" },
    { [[health.check { name = "bad name!", run = function() end }]], "field 'name' must be" },
    -- a dot segment: clients and h2o resolve /healthz/.. to /, so the check could never be served
    { [[health.check { name = "..", run = function() end }]], "field 'name' must be 1 to 128 characters of %[A%-Za%-z0%-9_.%-%], not . or .." },
    { [[health.check { name = ".", run = function() end }]], "field 'name' must be" },
    { [[health.check { name = "x", probes = { "alive" }, run = function() end }]], "field 'probes'" },
    { [[health.check { name = "x" }]], "field 'run' must be a function" },
    { [[health.check { name = "x", failure_threshold = 0, run = function() end }]], "failure_threshold" },
    { [[health.check { name = "x", critical = "yes", run = function() end }]], "field 'critical' must be a boolean" },
    { [[health.check { name = "x", timout = "1s", run = function() end }]], "unknown field 'timout'" },
    { "health.check { name = 'x', run = function() end }\nhealth.check { name = 'x', run = function() end }",
      "^d.lua:2: health.check: duplicate check name 'x' %(first defined at d.lua:1%)" },
    { [[health.check { name = "x", run = function() end ]], "^d.lua:1: .*expected" },
    { [[error("at load")]], "^d.lua:1: at load" },
    { [[while true do end]], "took longer than" },
  }
  for i, c in ipairs(cases) do
    it("reports bad definition #" .. i .. " with file:line", function()
      assert.matches(c[2], load_err(c[1], "d.lua"))
    end)
  end

  it("accepts durations as seconds or strings, and probes", function()
    local g = load [[
      health.check { name = "a", timeout = 0.5, ttl = "250ms", interval = "1m", probes = { "liveness", "startup" },
                     critical = false, run = function() return true end }
      health.check { name = "b", run = function() return true end }
    ]]
    local a, b = g:state("a"), g:state("b")
    assert.equal(0.5, a.timeout)
    assert.equal(0.25, a.ttl)
    assert.equal(60, a.interval)
    assert.same({ "liveness", "startup" }, a.probes)
    assert.is_false(a.critical)
    assert.same({ "readiness" }, b.probes)
    assert.equal(1, b.timeout)
    assert.equal(5, b.ttl)
    g:close()
  end)

  it("max_age: given, or ttl + timeout with the stretched ttl; factories pass it on", function()
    local g = load [[
      health.check { name = "a", ttl = "2s", max_age = "1m", run = function() return true end }
      health.check { name = "b", timeout = 2, run = function() return true end }
      health.check { name = "c", interval = "10s", timeout = 1, run = function() return true end }
      health.checks.tcp { name = "t", host = "127.0.0.1", port = 1, max_age = "7s" }
      health.checks.file_fresh { name = "f", path = "/nonexistent", max_age = "1h" }
    ]]
    assert.equal(60, g:state("a").max_age)
    assert.equal(5 + 2, g:state("b").max_age)
    -- ttl stretched to interval + interval/10 + timeout + 200ms = 12.2 s
    assert.is_true(math.abs(g:state("c").ttl - 12.2) < 1e-6, g:state("c").ttl)
    assert.is_true(math.abs(g:state("c").max_age - (12.2 + 1)) < 1e-6, g:state("c").max_age)
    assert.equal(7, g:state("t").max_age)
    assert.equal(6, g:state("f").max_age)   -- file_fresh's max_age is the file's age
    g:close()
    assert.matches("field 'max_age' %(2s%) must not be shorter than the ttl %(5s%)",
      load_err([[health.check { name = "x", max_age = 2, run = function() return true end }]], "m.lua"))
    assert.matches("field 'max_age' must be greater than zero",
      load_err([[health.check { name = "x", max_age = 0, run = function() return true end }]], "m.lua"))
  end)
end)
