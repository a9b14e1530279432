-- Hostile scripts against the real binary, in every mode that runs scripts:
-- the agent lives, other files keep their environment, secrets stay out of
-- reach.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/sandbox_spec.lua
local agent = require "helpers.agent"
local quote, write = agent.quote, agent.write

local TOKEN = "s3cret-token-0123456789abcdef"

-- A check that reports every way it found to the token.
local THIEF = [[
local function slurp(path)
  local ok, f = pcall(io.open, path, "rb")
  if not ok or not f then return "" end
  local s = f:read("a") or ""
  f:close()
  return s
end
health.check { name = "thief", run = function()
  local found = {}
  local token = ]] .. ("%q"):format(TOKEN) .. [[
  local function look(where, s) if s and s:find(token, 1, true) then found[#found + 1] = where end end
  look("getenv", os.getenv("HEALTHAGENT_TOKEN"))
  local file = os.getenv("HEALTHAGENT_TOKEN_FILE")
  look("token_file_env", file and slurp(file))
  look("token_file", TOKEN_FILE and slurp(TOKEN_FILE))
  look("environ", slurp("/proc/self/environ"))
  look("task_environ", slurp("/proc/thread-self/environ"))
  local fs = require "health.fs"
  look("fs_environ", fs.read("/proc/self/environ"))
  look("fs_token", TOKEN_FILE and fs.read(TOKEN_FILE))
  local maps = slurp("/proc/self/maps")
  local ok, mem = pcall(io.open, "/proc/self/mem", "rb")
  look("mem", ok and mem and "opened" or nil)
  return #found == 0, table.concat(found, ",") .. " " .. tostring(#maps > 0)
end }
]]

-- Agents a spec started, stopped after it even when an assertion failed.
local started = {}
local function start(opts)
  local a = agent.start(opts)
  started[#started + 1] = a
  return a
end
after_each(function()
  for _, a in ipairs(started) do
    if a:alive() then a:stop() end
  end
  started = {}
end)

local function scripts_dir(files)
  local d = agent.tmpdir()
  for name, src in pairs(files) do write(d .. "/" .. name, src) end
  return d
end

describe("the token", function()
  local dir, token_file
  setup(function()
    dir = agent.tmpdir()
    token_file = dir .. "/token"
    write(token_file, TOKEN .. "\n")
  end)
  teardown(function() agent.sh("rm -rf " .. quote(dir)) end)

  -- the agent's token file, when it is one (with HEALTHAGENT_TOKEN the file is nobody's secret)
  local function thief(with_file, extra)
    local head = with_file and ("TOKEN_FILE = %q\n"):format(token_file) or ""
    return { ["thief.lua"] = head .. THIEF .. (extra or "") }
  end

  it("is unreachable from scripts of the agent (HEALTHAGENT_TOKEN)", function()
    local a = start { scripts = thief(false), config = 'return { shutdown_delay = 0 }',
                            env = "HEALTHAGENT_TOKEN=" .. TOKEN }
    local r = a:get("/readyz/thief", { headers = { Authorization = "Bearer " .. TOKEN } })
    assert.equal(200, r.status, r.body)
    assert.equal(" true", r.json.output)
    a:stop()
  end)

  it("is unreachable from scripts of the agent (HEALTHAGENT_TOKEN_FILE)", function()
    local a = start { scripts = thief(true), config = 'return { shutdown_delay = 0 }',
                            env = "HEALTHAGENT_TOKEN_FILE=" .. quote(token_file) }
    local r = a:get("/readyz/thief", { headers = { Authorization = "Bearer " .. TOKEN } })
    assert.equal(200, r.status, r.body)
    assert.equal(" true", r.json.output)
    -- and the token still works for the admin endpoints
    assert.equal(401, a:get("/-/reload", { method = "POST" }).status)
    a:stop()
  end)

  it("is unreachable from scripts of `healthagent check` and `lint`", function()
    local guard = "\nassert(not os.getenv('HEALTHAGENT_TOKEN') and not io.open('/proc/self/environ'))"
    for _, env in ipairs { "HEALTHAGENT_TOKEN=" .. TOKEN, "HEALTHAGENT_TOKEN_FILE=" .. quote(token_file) } do
      local d = scripts_dir(thief(env:find("FILE", 1, true) ~= nil, guard))
      local code, out = agent.run("check --scripts " .. quote(d), env)
      assert.equal(0, code, out)
      assert.matches("UP%s+thief", out)
      code, out = agent.run("lint " .. quote(d), env)
      assert.equal(0, code, out)
      agent.sh("rm -rf " .. quote(d))
    end
  end)

  it("is not in the script runner's environment either", function()
    local f = dir .. "/runner.lua"
    write(f, [[
      local e = io.open("/proc/self/environ", "rb"):read("a")
      io.write(tostring(os.getenv("HEALTHAGENT_TOKEN")), " ", tostring(e:find("]] .. TOKEN .. [[", 1, true)))
    ]])
    local code, out = agent.run(quote(f), "HEALTHAGENT_TOKEN=" .. TOKEN)
    assert.equal(0, code, out)
    assert.equal("nil nil", out)
  end)
end)

describe("a hostile file", function()
  it("crashing the engine by nesting coroutine.close ends DOWN; the agent and /livez live", function()
    local a = start {
      scripts = {
        ["crash.lua"] = [[
health.check { name = "crash", timeout = "2s", interval = "1s", run = function()
  local coro = false
  local mt = { __close = function(o) if o[1] then coroutine.close(o[1]) end end }
  for i = 1, 12000 do
    local cc = setmetatable({ coro }, mt)
    coro = coroutine.create(function() local c <close> = cc; coroutine.yield() end)
    coroutine.resume(coro)
  end
  coroutine.close(coro)
  return true
end }
]],
        ["live.lua"] = [[health.check { name = "live", probes = "liveness", run = function() return true end }]],
      },
      config = 'return { shutdown_delay = 0 }',
    }
    local r
    assert.is_true(agent.wait_until(function()
      r = a:get("/readyz/crash")
      return r.json and r.json.status == "DOWN"
    end, 5), a:log())
    assert.matches("C stack overflow", r.json.output)
    health.sleep(1.2) -- and again on the next interval
    assert.is_true(a:alive())
    assert.equal(200, a:get("/livez").status)
    a:stop()
  end)

  it("leaking memory run after run fails alone; /livez stays up", function()
    -- under a sanitizer the leaker's runs are slow enough to hold the victim's
    -- on-demand runs past their max_age (ttl 0 + 1 s); memory is what is tested
    local sanitized = (os.getenv("HA_SANITIZE") or "") ~= ""
    local a = start {
      scripts = {
        ["a_leaker.lua"] = [[
local keep = {}
health.check { name = "leaker", interval = "0.3s", timeout = "2s", run = function()
  local size = 4 * 1024 * 1024
  while size >= 16 do
    local ok = pcall(function() keep[#keep + 1] = string.rep("x", size) end)
    if not ok then size = size // 2 end
  end
  return true
end }
]],
        ["b_victim.lua"] = [[
health.check { name = "victim", probes = "liveness", ttl = 0, ]] .. (sanitized and 'max_age = "10s", ' or "") .. [[run = function()
  local t = {}
  for i = 1, 5000 do t[i] = ("v"):rep(100) .. i end
  return true, tostring(#t)
end }
]],
      },
      config = 'return { shutdown_delay = 0 }',
    }
    local t_end = health.now() + 4
    while health.now() < t_end do
      local r = a:get("/livez/victim")
      assert.equal(200, r.status, r.body)
      health.sleep(0.1)
    end
    local r = a:get("/readyz/leaker")
    assert.equal(503, r.status)
    assert.equal("not enough memory", r.json.output)
    a:stop()
  end)

  it("whose main chunk nests coroutine.close is an error for lint, not a crash", function()
    local d = scripts_dir { ["deep.lua"] = [[
local coro = false
local mt = { __close = function(o) if o[1] then coroutine.close(o[1]) end end }
for i = 1, 12000 do
  local cc = setmetatable({ coro }, mt)
  coro = coroutine.create(function() local c <close> = cc; coroutine.yield() end)
  coroutine.resume(coro)
end
coroutine.close(coro)
]] }
    local code, out = agent.run("lint " .. quote(d))
    assert.equal(1, code, out)
    assert.matches("deep.lua:2: coroutine.close: C stack overflow", out, 1, true)
    agent.sh("rm -rf " .. quote(d))
  end)

  it("cannot rebind the globals another file sees", function()
    local a = start {
      scripts = {
        ["a_attacker.lua"] = [[
local G = select(2, pcall(load, "return _G"))()
pcall(rawset, G, "tostring", function() return "PWNED" end)
local E = coroutine.wrap(load)("return _ENV")()
pcall(rawset, E, "tostring", function() return "PWNED" end)
health.check { name = "attacker", run = function() return true end }
]],
        ["b_victim.lua"] = [[health.check { name = "victim", run = function() return true, tostring(42) end }]],
      },
      config = 'return { shutdown_delay = 0 }',
    }
    local r = a:get("/readyz/victim")
    assert.equal(200, r.status)
    assert.equal("42", r.json.output)
    a:stop()
  end)

  it("cannot hang start-up from the config file", function()
    local d = scripts_dir { ["a.lua"] = [[health.check { name = "a", run = function() return true end }]] }
    write(d .. "/cfg.lua", 'x = string.rep("", math.maxinteger)\n')
    local t0 = health.now()
    local code, out = agent.run("--config " .. quote(d .. "/cfg.lua") .. " --scripts " .. quote(d))
    assert.is_true(health.now() - t0 < 2, "took " .. (health.now() - t0))
    assert.equal(2, code)
    assert.matches("cfg.lua: unknown key 'x'", out, 1, true)
    assert.equal(1, select(2, out:gsub("\n", "")))
    agent.sh("rm -rf " .. quote(d))
  end)
end)

describe("as PID 1", function()
  it("reaps a daemonised grandchild of an exec check when it exits, not at the next exec run", function()
    local _, can = agent.sh("unshare --pid --fork --mount-proc true 2>/dev/null")
    if can ~= 0 then
      pending("needs unshare --pid (root)")
      return
    end
    local d = agent.tmpdir()
    local ready = d .. "/ready"
    write(d .. "/t.lua", ([[
local exec = require "health.exec"
health.check { name = "pid1", timeout = "5s", run = function()
  exec.run { "sh", "-c", "setsid sh -c 'touch %s; exec sleep 0.2' </dev/null >/dev/null 2>&1 & while [ ! -e %s ]; do sleep 0.01; done" }
  health.sleep(0.8)
  local z = {}
  for n = 2, 500 do
    local f = io.open("/proc/" .. n .. "/stat")
    if f then local s = f:read("a") f:close() if s:match("^%%d+ %%b() Z") then z[#z + 1] = s:match("^%%d+ %%b()") end end
  end
  local me = io.open("/proc/self/stat"):read("a"):match("^%%d+")
  return me == "1" and #z == 0, "self=" .. me .. " zombies=" .. table.concat(z, ",")
end }
]]):format(ready, ready))
    local out, code = agent.sh(("unshare --pid --fork --mount-proc %s check --scripts %s 2>&1"):format(quote(agent.BIN), quote(d)))
    assert.equal(0, code, out)
    assert.matches("UP%s+pid1.*self=1 zombies=\n", out)
    agent.sh("rm -rf " .. quote(d))
  end)
end)
