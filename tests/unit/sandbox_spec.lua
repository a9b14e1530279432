-- Script abuse inside the agent's runtime: each spec loads a generation
-- exactly as the agent does and runs the hostile check; the runner itself
-- (this busted process) must survive every one of them.
--   busted --lua=build/healthagent tests/unit/sandbox_spec.lua
local testing = require "health.testing"

local function load(src, name)
  local g, err = testing.load({ [name or "t.lua"] = src })
  assert(g, err)
  return g
end

local function timed_run(g, name)
  local t0 = health.now()
  local r = g:run(name)
  return r, health.now() - t0
end

after_each(function()
  collectgarbage()
  assert.equal(0, testing.handles())
end)

describe("C recursion a script can reach", function()
  local nested_close = [[
    local coro = false
    local mt = { __close = function(o) if o[1] then coroutine.close(o[1]) end end }
    for i = 1, 12000 do
      local cc = setmetatable({ coro }, mt)
      coro = coroutine.create(function() local c <close> = cc; coroutine.yield() end)
      coroutine.resume(coro)
    end
    coroutine.close(coro)
  ]]

  it("12,000 coroutine.close calls nested through __close end the run DOWN, not the process", function()
    local g = load("health.check { name = 'crash', timeout = '2s', run = function()\n" .. nested_close ..
      "\nreturn true end }", "crash.lua")
    local r = g:run("crash")
    assert.equal("DOWN", r.status)
    assert.matches("coroutine.close: C stack overflow", r.output)
    -- the generation still works afterwards
    g:close()
    g = load([[health.check { name = "ok", run = function() return true end }]])
    assert.equal("UP", g:run("ok").status)
    g:close()
  end)

  it("cannot be hidden by pcall inside the __close handlers", function()
    local g = load([[
      health.check { name = "hidden", timeout = "2s", run = function()
        local coro = false
        local mt = { __close = function(o) if o[1] then pcall(coroutine.close, o[1]) end end }
        for i = 1, 12000 do
          local cc = setmetatable({ coro }, mt)
          coro = coroutine.create(function() local c <close> = cc; coroutine.yield() end)
          coroutine.resume(coro)
        end
        pcall(coroutine.close, coro)
        return true
      end }
    ]])
    local r = g:run("hidden")
    assert.equal("DOWN", r.status)
    assert.matches("C stack overflow", r.output)
    g:close()
  end)

  it("at load time is a load error (what lint reports)", function()
    local g, err = testing.load({ ["loadcrash.lua"] = nested_close })
    assert.is_nil(g)
    assert.matches("C stack overflow", err)
  end)

  it("nested resume, wrap, pcall and load readers stop with an error", function()
    local g = load([[
      local function deep_resume(n)
        if n == 0 then return "bottom" end
        local co = coroutine.create(deep_resume)
        local ok, v = coroutine.resume(co, n - 1)
        if not ok then error(v, 0) end
        return v
      end
      local function deep_wrap(n)
        if n == 0 then return "bottom" end
        return coroutine.wrap(deep_wrap)(n - 1)
      end
      local function deep_pcall(n)
        if n == 0 then return "bottom" end
        local ok, v = pcall(deep_pcall, n - 1)
        if not ok then error(v, 0) end
        return v
      end
      local function deep_load(n)
        local done = false
        return load(function()
          if done then return nil end
          done = true
          if n > 0 then
            local f, e = deep_load(n - 1)
            if not f then error(e, 0) end
          end
          return "return 1"
        end)
      end
      local function load_or_raise(n) return assert(deep_load(n)) end
      local cases = { resume = deep_resume, wrap = deep_wrap, pcall = deep_pcall, load = load_or_raise }
      for name, f in pairs(cases) do
        health.check { name = name, run = function()
          local ok, err = pcall(f, 100000)
          return not ok, tostring(err):find("stack overflow", 1, true) and "stack overflow" or tostring(err)
        end }
      end
    ]])
    for _, name in ipairs { "resume", "wrap", "pcall", "load" } do
      local r = g:run(name)
      assert.equal("UP", r.status, name .. ": " .. r.output)
      assert.matches("stack overflow", r.output, 1, true)
    end
    g:close()
  end)
end)

describe("C loops no hook can stop", function()
  it("string.rep of empty strings answers at once", function()
    local g = load [[
      health.check { name = "rep", run = function()
        return true, #string.rep("", math.maxinteger) .. "," .. #string.rep("", 1 << 62, "") .. "," ..
          #(""):rep(math.maxinteger) .. "," .. string.rep("ab", 3, "-")
      end }
    ]]
    local r, dt = timed_run(g, "rep")
    assert.equal("0,0,0,ab-ab-ab", r.output)
    assert.is_true(dt < 0.5, "took " .. dt)
    g:close()
  end)

  for _, case in ipairs {
    { "move", "table.move({}, 1, math.maxinteger, 1)" },
    { "move_to", "table.move({}, 1, 1 << 40, 2, {})" },
    { "move_c_mm", "local t = setmetatable({}, { __index = rawlen, __newindex = rawlen }) table.move(t, 1, math.maxinteger, 2)" },
    { "insert", "table.insert(setmetatable({}, { __len = function() return math.maxinteger - 1 end }), 1, 0)" },
    { "remove", "table.remove(setmetatable({}, { __len = function() return math.maxinteger - 1 end }), 1)" },
  } do
    it(case[1] .. " ends at the check's deadline, even under pcall", function()
      local g = load(("health.check { name = 'x', timeout = '300ms', run = function()\n" ..
        "while true do pcall(function() %s end) end end }"):format(case[2]))
      local r, dt = timed_run(g, "x")
      assert.equal("DOWN", r.status)
      assert.equal("timeout after 300ms", r.output)
      assert.is_true(dt < 1.3, "took " .. dt)
      g:close()
    end)
  end

  it("table.move names itself when the time is up", function()
    local g = load [[
      health.check { name = "x", timeout = "200ms", run = function()
        local ok, err = pcall(table.move, {}, 1, math.maxinteger, 1)
        return true, err
      end }
    ]]
    local r = g:run("x")
    assert.equal("DOWN", r.status) -- past its deadline: the run is over
    assert.equal("timeout after 200ms", r.output)
    g:close()
  end)

  it("table.sort refuses a __len table too large for any heap", function()
    local g = load [[
      health.check { name = "x", run = function()
        local t = setmetatable({}, { __len = function() return (1 << 31) - 2 end, __index = rawlen })
        local ok, err = pcall(table.sort, t)
        local small = { 3, 1, 2 }
        table.sort(small)
        return not ok, err .. " | " .. table.concat(small, ",")
      end }
    ]]
    local r = g:run("x")
    assert.equal("UP", r.status)
    assert.matches("table.sort: 2147483646 elements %(from __len%) are more than", r.output)
    assert.matches("| 1,2,3$", r.output)
    g:close()
  end)

  it("table.move, insert and remove keep their results", function()
    local g = load [[
      health.check { name = "x", run = function()
        local t = table.move({ 1, 2, 3, 4 }, 2, 4, 1)
        local u = table.move({ 1, 2, 3 }, 1, 3, 3, { 9, 9 })
        local v = { 1, 2, 3 }
        table.insert(v, 1, 0) table.insert(v, 5)
        local removed = table.remove(v, 2) .. table.remove(v)
        local ok, err = pcall(table.insert, { 1 }, 5, 0)
        return true, table.concat(t, ",") .. " " .. table.concat(u, ",") .. " " .. table.concat(v, ",") ..
          " " .. removed .. " " .. tostring(ok) .. " " .. err
      end }
    ]]
    assert.matches("^2,3,4,4 9,9,1,2,3 0,2,3 15 false .*position out of bounds", g:run("x").output)
    g:close()
  end)
end)

describe("one file's environment", function()
  it("is not reachable through load called from C", function()
    local g, err = testing.load({
      ["a.lua"] = [[
        local got = {}
        local function grab(tag, G)
          if type(G) == "table" then pcall(rawset, G, "tostring", function() return "PWNED" end) end
          got[#got + 1] = tag
        end
        grab("pcall", select(2, pcall(load, "return _G"))())
        grab("pcall_env", select(2, pcall(load, "return _ENV"))())
        grab("xpcall", select(2, xpcall(load, print, "return _G"))())
        string.gsub("return _G", ".+", function(s) grab("gsub", load(s)()) end)
        grab("gsub_c", (load(select(1, string.gsub("return _G", ".+", "%0"))))())
        grab("wrap", coroutine.wrap(load)("return _G")())
        local co = coroutine.create(load)
        grab("resume", select(2, coroutine.resume(co, "return _ENV"))())
        grab("mt", setmetatable({}, { __index = function(_, k) return load("return " .. k)() end })._G)
        grab("field", select(2, pcall(load, "return getmetatable(_ENV)")) and nil)
        health.check { name = "a", run = function()
          grab("run", select(2, pcall(load, "return _G"))())
          return true, table.concat(got, ",")
        end }
      ]],
      ["b.lua"] = [[
        health.check { name = "b", run = function() return true, tostring(42) .. tostring(rawget(_ENV, "tostring")) end }
      ]],
    })
    assert(g, err)
    assert.equal("UP", g:run("a").status)
    assert.equal("42nil", g:run("b").output)
    g:close()
  end)

  it("gives load a fresh table when no script function called it", function()
    local g = load [[
      health.check { name = "x", run = function()
        local env = coroutine.wrap(load)("return _ENV")()
        env.leak = 1
        local again = coroutine.wrap(load)("return leak")()
        return true, tostring(env._G == env) .. " " .. tostring(again) .. " " .. tostring(getmetatable(env))
      end }
    ]]
    assert.equal("true nil false", g:run("x").output)
    g:close()
  end)

  it("is not shared through a module in lib/: its globals and its table are its own", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir .. "/lib")
    local f = io.open(dir .. "/lib/shared.lua", "w")
    f:write("modglobal = 'set by module'\nlocal M = { n = 1, nested = { v = 1 } }\n" ..
      "function M.get() return M.n .. tostring(modglobal) end\nreturn M")
    f:close()
    f = io.open(dir .. "/a.lua", "w")
    f:write([[local m = require "shared"
local r = {}
r[#r + 1] = tostring(pcall(function() m.get = function() return "PWNED" end end))
r[#r + 1] = tostring(pcall(function() m.nested.v = 2 end))
r[#r + 1] = tostring(pcall(rawset, m, "n", 2))
r[#r + 1] = tostring(modglobal)
health.check { name = "a", run = function() return true, table.concat(r, ",") end }]])
    f:close()
    f = io.open(dir .. "/b.lua", "w")
    f:write([[local m = require "shared"
health.check { name = "b", run = function() return true, m.get() .. " " .. m.nested.v .. " " .. tostring(modglobal) end }]])
    f:close()
    local g, err = testing.load(dir)
    assert(g, err)
    assert.equal("false,false,false,nil", g:run("a").output)
    assert.equal("1set by module 1 nil", g:run("b").output)
    g:close()
    os.execute("rm -rf " .. dir)
  end)
end)

describe("the health module", function()
  it("is read-only through every path", function()
    local g, err = testing.load({
      ["a.lua"] = [[
        local tries = {}
        local function try(name, f) tries[#tries + 1] = name .. "=" .. tostring((pcall(f))) end
        try("require", function() require("health").sleep = function() end end)
        try("require_check", function() require("health").check = function() end end)
        try("rawset", function() rawset(require("health"), "sleep", 1) end)
        try("global", function() health.sleep = 1 end)
        try("checks", function() health.checks.http = function() end end)
        try("tcp", function() require("health.tcp").connect = function() end end)
        try("fs", function() require("health.fs").read = function() end end)
        try("checks_mod", function() require("health.checks").tcp = 1 end)
        try("envhealth", function() _ENV.health = nil end)
        report = table.concat(tries, " ")
        health.check { name = "a", run = function() return true, report end }
      ]],
      ["b.lua"] = [[
        health.check { name = "b", run = function()
          local t0 = health.now()
          health.sleep(0.05)
          return health.now() - t0 >= 0.04, type(require("health.tcp").connect) .. " " .. type(health.checks.http)
        end }
      ]],
    })
    assert(g, err)
    assert.equal("require=false require_check=false rawset=false global=false checks=false tcp=false fs=false " ..
      "checks_mod=false envhealth=true", g:run("a").output)
    local r = g:run("b")
    assert.equal("UP", r.status)
    assert.equal("function function", r.output)
    assert.same({ "a", "b" }, g:names())
    g:close()
  end)

  it("still iterates and counts like a table", function()
    local g = load [[
      health.check { name = "x", run = function()
        local n = 0
        for k, v in pairs(require "health") do n = n + 1 end
        local views = require("health") == health and require("health") == require("health")
        return true, tostring(n > 5) .. " " .. tostring(views) .. " " .. #require("health")
      end }
    ]]
    assert.equal("true true 0", g:run("x").output)
    g:close()
  end)
end)

describe("files scripts may open", function()
  it("are read-only, and never the agent's own /proc entries", function()
    local g = load [[
      local function try(f, ...) local ok, a, b = pcall(f, ...) if not ok then return "raise" end
        if a then if io.type(a) == "file" then a:close() end return "open" end return b end
      health.check { name = "x", run = function()
        local out = {}
        out[#out + 1] = try(io.open, "/proc/self/mem", "r+b")
        out[#out + 1] = try(io.open, "/tmp/ha-sandbox-write", "w")
        out[#out + 1] = try(io.open, "/proc/self/mem")
        out[#out + 1] = try(io.open, "/proc/self/environ")
        out[#out + 1] = try(io.open, "/proc/thread-self/environ")
        out[#out + 1] = try(io.open, "/proc/self/task/../environ")
        out[#out + 1] = try(io.open, "/proc/loadavg")
        out[#out + 1] = try(loadfile, "/proc/self/environ")
        out[#out + 1] = tostring((pcall(io.lines, "/proc/self/environ")))
        out[#out + 1] = tostring(io.output)
        local fs = require "health.fs"
        out[#out + 1] = tostring(select(2, fs.read("/proc/self/environ")))
        return true, table.concat(out, "\n")
      end }
    ]]
    local r = g:run("x")
    local lines = {}
    for l in (r.output .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
    assert.equal("raise", lines[1])
    assert.equal("raise", lines[2])
    for i = 3, 6 do assert.matches("permission denied", lines[i], 1, true) end
    assert.equal("open", lines[7])
    assert.matches("permission denied", lines[8], 1, true)
    assert.equal("false", lines[9])
    assert.equal("nil", lines[10])
    assert.equal("permission denied: /proc/self/environ", lines[11])
    local f = io.open("/tmp/ha-sandbox-write")
    assert.is_nil(f)
    g:close()
  end)

  it("io.lines still reads a file and closes it in a for loop", function()
    local path = os.tmpname()
    local f = io.open(path, "w")
    f:write("one\ntwo\n")
    f:close()
    local g = load(([[
      health.check { name = "x", run = function()
        local got = {}
        for l in io.lines(%q) do got[#got + 1] = l end
        return true, table.concat(got, ",")
      end }
    ]]):format(path))
    assert.equal("one,two", g:run("x").output)
    g:close()
    os.remove(path)
  end)
end)

describe("a run that errors or times out", function()
  it("runs its to-be-closed variables", function()
    local g = load [[
      local log = {}
      local function closer(tag) return setmetatable({}, { __close = function() log[#log + 1] = tag end }) end
      health.check { name = "err", run = function() local c <close> = closer("err") error("boom") end }
      health.check { name = "sleep", timeout = "100ms", run = function() local c <close> = closer("sleep") health.sleep(5) end }
      health.check { name = "spin", timeout = "100ms", run = function() local c <close> = closer("spin") while true do end end }
      health.check { name = "mem", memory = "1MB", run = function() local c <close> = closer("mem") local t = {} for i = 1, 1e7 do t[i] = i end end }
      health.check { name = "report", run = function() table.sort(log) return true, table.concat(log, ",") end }
    ]]
    assert.equal("DOWN", g:run("err").status)
    assert.equal("timeout after 100ms", g:run("sleep").output)
    assert.equal("timeout after 100ms", g:run("spin").output)
    assert.equal("not enough memory", g:run("mem").output)
    assert.equal("err,mem,sleep,spin", g:run("report").output)
    g:close()
  end)

  it("gives __close handlers a short budget only", function()
    local g = load [[
      health.check { name = "x", timeout = "100ms", run = function()
        local c <close> = setmetatable({}, { __close = function() while true do pcall(function() end) end end })
        error("boom")
      end }
      health.check { name = "y", run = function() return true end }
    ]]
    local r, dt = timed_run(g, "x")
    assert.equal("DOWN", r.status)
    assert.is_true(dt < 1, "took " .. dt)
    assert.equal("UP", g:run("y").status)
    g:close()
  end)
end)

describe("outputs", function()
  it("are capped at exactly 1024 bytes, keep what follows a NUL (escaped)", function()
    local g = load [[
      health.check { name = "nul", run = function() return true, "before\0after" end }
      health.check { name = "long", run = function() return true, string.rep("a", 2000) end }
      health.check { name = "utf8", run = function() return true, "a" .. string.rep("é", 2000) end }
      health.check { name = "nuls", run = function() return true, string.rep("\0", 2000) end }
      health.check { name = "err", run = function() error(string.rep("b", 2000) .. "\0") end }
    ]]
    assert.equal("before\\0after", g:run("nul").output)
    assert.equal(1024, #g:run("long").output)
    local u = g:run("utf8").output
    assert.equal(1023, #u) -- 1 + 511 * 2: the cut never splits a character
    assert.is_truthy(utf8.len(u))
    assert.equal(string.rep("\\0", 512), g:run("nuls").output)
    assert.equal(1024, #g:run("err").output)
    g:close()
  end)
end)

describe("retained memory", function()
  local LEAKER = [[
    local keep = {}
    health.check { name = "leaker", timeout = "5s", run = function()
      local size = 4 * 1024 * 1024
      while size >= 16 do
        local ok = pcall(function() keep[#keep + 1] = string.rep("x", size) end)
        if not ok then size = size // 2 end
      end
      return true
    end }
  ]]
  local VICTIM = [[
    health.check { name = "victim", probes = "liveness", run = function()
      local t = {}
      for i = 1, 5000 do t[i] = ("v"):rep(100) .. i end
      return true, tostring(#t)
    end }
  ]]

  it("is charged to the check that keeps it: the leaker fails, the others never starve", function()
    local g, err = testing.load({ ["a_leaker.lua"] = LEAKER, ["b_victim.lua"] = VICTIM })
    assert(g, err)
    local statuses = {}
    for i = 1, 8 do
      local r = g:run("leaker")
      statuses[#statuses + 1] = r.status
      if r.status == "DOWN" then assert.equal("not enough memory", r.output) end
      local v = g:run("victim")
      assert.equal("UP", v.status, "victim after leaker run " .. i .. ": " .. tostring(v.output))
    end
    assert.equal("DOWN", statuses[#statuses], table.concat(statuses, ","))
    -- what the leaker keeps stays within its allowance (16 MiB by default)
    assert.is_true(g:memory() < 24 * 1024 * 1024, "heap " .. g:memory())
    g:close()
  end)

  it("several memory bombs at once leave room for a check that holds little", function()
    -- the victim's deadline is generous: this pins memory, and five bombs share one CPU with it
    local src = { ["z.lua"] = VICTIM:gsub('probes = "liveness",', 'probes = "liveness", timeout = "10s",') }
    for i = 1, 5 do
      src["bomb" .. i .. ".lua"] = ([[
        health.check { name = "bomb%d", timeout = "20s", run = function()
          local t = {}
          for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i if i %% 500 == 0 then health.sleep(0) end end
        end }
      ]]):format(i)
    end
    local g, err = testing.load(src)
    assert(g, err)
    local hs = {}
    for i = 1, 5 do hs[i] = testing.spawn(function() return g:run("bomb" .. i) end) end
    health.sleep(0.05)
    for _ = 1, 5 do
      local v = g:run("victim")
      assert.equal("UP", v.status, tostring(v.output))
      health.sleep(0.02)
    end
    for i = 1, 5 do
      local ok, r = hs[i]:wait()
      assert.is_true(ok)
      assert.equal("not enough memory", r.output)
    end
    g:close()
  end)
end)
