-- Hot reload against the real binary: plain edits, editor-style saves, the
-- Kubernetes ConfigMap sequence exactly as kubelet performs it, bad then good
-- reloads, SIGHUP, POST /-/reload, the rescan without a directory watch, and
-- 100 reloads under load.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/reload_spec.lua
local agent = require "helpers.agent"
local sh, quote, write = agent.sh, agent.quote, agent.write

local FAST = 'return { shutdown_delay = "0s", rescan_interval = "1h" }\n'

local function check_src(name, out, extra)
  return ('health.check { name = %q, probes = { "readiness", "liveness" }, ttl = "1h", %s run = function() return true, %q end }\n')
    :format(name, extra or "", out or name)
end

local wait_until = agent.wait_until

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

local function reloads(a) return count(a:log(), "reload: generation %d+") end

local function status(a)
  local r = a:get("/-/status")
  assert.equal(200, r.status)
  return r.json
end

local function components(a)
  local r = a:get("/healthz")
  local names = {}
  for k in pairs(r.json.components) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ","), r
end

-- Waits for the generation to pass gen, then for the debounce window to
-- prove no second reload follows.
local function await_generation(a, gen, timeout)
  local s = wait_until(function()
    local s = status(a)
    return s.generation > gen and s
  end, timeout or 3)
  assert.truthy(s, "no reload after generation " .. gen .. ":\n" .. a:log())
  return s
end

local a
after_each(function()
  if a == nil then return end
  local x = a
  a = nil
  x:stop() -- fails on a sanitizer report or a handle left open at exit
end)

describe("reload on a plain directory", function()
  it("reloads once per in-place edit, keeps unchanged checks, starts new ones INIT", function()
    a = agent.start { scripts = { ["a.lua"] = check_src("keep") .. check_src("old") }, config = FAST }
    local before = a:get("/healthz").json.components.keep
    assert.equal("UP", before.status)
    assert.equal(1, status(a).generation)
    -- in place: truncate and write (several inotify events, one reload)
    write(a.scripts .. "/a.lua", check_src("keep") .. check_src("new"))
    local s = await_generation(a, 1)
    health.sleep(0.5)
    assert.equal(2, status(a).generation)
    assert.equal(1, reloads(a))
    assert.equal(1, s.reloads)
    assert.equal("keep,new", (components(a)))
    -- the unchanged check kept its result (same time stamp, no new run)
    assert.equal(before.time, a:get("/healthz").json.components.keep.time)
    assert.truthy(a:log():find("1 added, 1 removed, 0 changed", 1, true), a:log())
  end)

  it("reloads once for an editor-style save (temp file renamed over)", function()
    a = agent.start { scripts = { ["a.lua"] = check_src("x", "v1") }, config = FAST }
    assert.equal("v1", a:get("/healthz").json.components.x.output)
    write(a.scripts .. "/.a.lua.swp", check_src("x", "v2"))
    sh("mv " .. quote(a.scripts .. "/.a.lua.swp") .. " " .. quote(a.scripts .. "/a.lua"))
    await_generation(a, 1)
    health.sleep(0.5)
    assert.equal(1, reloads(a))
    assert.equal("v2", a:get("/healthz").json.components.x.output)
    assert.truthy(a:log():find("0 added, 0 removed, 1 changed", 1, true))
  end)

  it("does nothing when the content hash is unchanged (touch, a new non-script file)", function()
    a = agent.start { scripts = { ["a.lua"] = check_src("x") }, config = FAST }
    sh("touch " .. quote(a.scripts .. "/a.lua"))
    write(a.scripts .. "/README.txt", "not a script")
    health.sleep(0.6)
    assert.equal(1, status(a).generation)
    assert.equal(0, reloads(a))
  end)
end)

describe("a bad reload", function()
  it("keeps the old generation serving, shows the error, and the next good change clears it", function()
    a = agent.start { scripts = { ["a.lua"] = check_src("x") }, config = FAST }
    write(a.scripts .. "/b.lua", 'health.check { name = "y", run = function() return true end }\nlocal = 1\n')
    assert.truthy(a:wait_log("reload failed: ", 3), a:log())
    assert.truthy(a:log():find("reload failed: " .. a.scripts .. "/b.lua:2: ", 1, true), a:log())
    local s = wait_until(function()
      local s = status(a)
      return s.load_error ~= agent.null and s
    end, 3)
    assert.equal(1, s.generation)
    assert.matches("^" .. a.scripts:gsub("%p", "%%%0") .. "/b%.lua:2: ", s.load_error.message)
    assert.matches("^%d+%-%d+%-%d+T", s.load_error.time)
    -- old generation untouched, and the error is in /healthz JSON for a trusted client
    local h = a:get("/healthz")
    assert.equal(200, h.status)
    assert.equal("x", (components(a)))
    assert.equal(s.load_error.message, h.json.load_error.message)
    assert.equal(200, a:get("/livez").status)
    -- an invalid definition fails the same way, with its line
    write(a.scripts .. "/b.lua", 'health.check { name = "y", bogus = 1, run = function() return true end }\n')
    assert.truthy(wait_until(function()
      local e = status(a).load_error
      return e and e.message:find("b.lua:1: health.check: unknown field 'bogus'", 1, true)
    end, 3), a:log())
    -- the fix recovers
    write(a.scripts .. "/b.lua", 'health.check { name = "y", run = function() return true end }\n')
    s = await_generation(a, 1)
    assert.equal(agent.null, s.load_error)
    assert.equal("x,y", (components(a)))
    assert.is_nil(a:get("/healthz").json.load_error)
  end)

  it("clears the error when the directory returns to the served content", function()
    a = agent.start { scripts = { ["a.lua"] = check_src("x") }, config = FAST }
    write(a.scripts .. "/b.lua", "syntax error here\n")
    assert.truthy(wait_until(function() return status(a).load_error ~= agent.null end, 3))
    os.remove(a.scripts .. "/b.lua")
    assert.truthy(wait_until(function() return status(a).load_error == agent.null end, 3), a:log())
    assert.equal(1, status(a).generation)
    assert.truthy(a:log():find("load error cleared", 1, true))
  end)
end)

describe("explicit reloads", function()
  it("SIGHUP and POST /-/reload change nothing while the content hash is unchanged", function()
    a = agent.start { scripts = { ["a.lua"] = check_src("x") }, config = FAST }
    local t = wait_until(function()
      local c = (a:get("/healthz").json or {}).components
      return c and c.x and c.x.time
    end, 5)
    assert.truthy(t, a:log())
    a:signal("HUP")
    assert.truthy(a:wait_log("reload: scripts unchanged", 3), a:log())
    assert.truthy(a:log():find("SIGHUP: reloading the scripts", 1, true))
    health.sleep(0.3) -- past the minimum interval between reloads
    local r = a:request("/-/reload", { method = "POST" })
    assert.equal(202, r.status)
    assert.equal("requested", r.json.reload)
    assert.truthy(wait_until(function() return count(a:log(), "reload: scripts unchanged") == 2 end, 3), a:log())
    assert.equal(0, reloads(a))
    assert.equal(1, status(a).generation)
    assert.equal(t, a:get("/healthz").json.components.x.time)
  end)

  it("a changed lib/ module is part of the content: the next reload picks it up", function()
    local dir = agent.tmpdir()
    sh("mkdir -p " .. quote(dir .. "/lib"))
    write(dir .. "/a.lua", 'local m = require "mod" health.check { name = "x", ttl = 0, run = function() return true, m.v end }\n')
    write(dir .. "/lib/mod.lua", 'return { v = "v1" }\n')
    a = agent.start { scripts_dir = dir, config = FAST }
    assert.equal("v1", a:get("/healthz").json.components.x.output)
    write(dir .. "/lib/mod.lua", 'return { v = "v2" }\n') -- no event on the watched directory
    a:request("/-/reload", { method = "POST" })
    await_generation(a, 1)
    assert.equal("v2", a:get("/healthz").json.components.x.output)
    sh("rm -rf " .. quote(dir))
  end)
end)

describe("probes waiting across a reload", function()
  local function slow(out, secs)
    return ('health.check { name = "slow", ttl = 0, timeout = "3s", run = function() health.sleep(%s) return true, %q end }\n')
      :format(secs, out)
  end

  -- Starts a GET in the background; returns a function that waits for it
  -- and gives code, body and seconds.
  local function background_get(a, path)
    local f = a.dir .. "/bg" .. math.random(1e6)
    os.execute(("(curl -s -o %s.body -w '%%{http_code} %%{time_total}' --max-time 10 http://127.0.0.1:%d%s > %s.code &)")
      :format(f, a.port, path, f))
    return function()
      local r = wait_until(function()
        local c = agent.read(f .. ".code")
        return c and c:match("^%d+ [%d.]+$") and c
      end, 10)
      local code, secs = r:match("^(%d+) ([%d.]+)$")
      return tonumber(code), agent.read(f .. ".body"), tonumber(secs)
    end
  end

  -- a budget above the runs' length: these probes wait for results
  local WAIT = 'return { shutdown_delay = "0s", rescan_interval = "1h", max_wait = "5s" }\n'

  it("an unchanged check whose run the reload cancelled runs again and answers", function()
    a = agent.start { scripts = { ["a.lua"] = slow("one", 0.6) }, config = WAIT }
    assert.equal(200, a:get("/healthz/slow").status) -- a result to inherit, stale at once (ttl 0)
    local done = background_get(a, "/healthz/slow")
    health.sleep(0.2)
    write(a.scripts .. "/a.lua", slow("one", 0.6) .. "-- a comment\n")
    a:signal("HUP") -- same definition: the run in flight is cancelled and restarted
    local code, body, secs = done()
    assert.equal(200, code, body)
    assert.truthy(body:find('"output":"one"', 1, true), body)
    assert.is_true(secs < 2.5, "answered after " .. secs .. " s")
    assert.equal(1, reloads(a))
  end)

  it("a check redefined while a probe waits for it answers with the new definition's first result", function()
    -- the old run lasts long enough for the new generation to be built (a loader thread,
    -- slower under sanitizers) and to cancel it
    a = agent.start { scripts = { ["a.lua"] = slow("old", 2.5) }, config = WAIT }
    assert.equal(200, a:get("/healthz/slow").status) -- one result: the waiter below counts from 1
    local done = background_get(a, "/healthz/slow")
    health.sleep(0.2)
    write(a.scripts .. "/a.lua", slow("new", 0.2))
    a:request("/-/reload", { method = "POST" })
    local code, body, secs = done()
    assert.equal(200, code, body)
    assert.truthy(body:find('"output":"new"', 1, true), body)
    assert.is_true(secs < 2.5, "answered after " .. secs .. " s")
  end)
end)

describe("Kubernetes ConfigMap volume", function()
  -- Lays out the volume as kubelet does: ..T1/<files>, ..data -> ..T1,
  -- and one top-level symlink per key through ..data.
  local function volume(dir, ts, files)
    sh("mkdir -p " .. quote(dir .. "/" .. ts))
    for name, src in pairs(files) do write(dir .. "/" .. ts .. "/" .. name, src) end
  end

  -- kubelet's atomic update: new timestamped dir, ..data_tmp symlink, rename
  -- over ..data, new top-level links added, stale ones removed, old dir deleted.
  local function update(dir, old_ts, new_ts, files, add, remove)
    volume(dir, new_ts, files)
    sh(("cd %s && ln -s %s ..data_tmp && mv -T ..data_tmp ..data"):format(quote(dir), quote(new_ts)))
    for _, name in ipairs(add or {}) do sh(("cd %s && ln -s ..data/%s %s"):format(quote(dir), name, name)) end
    for _, name in ipairs(remove or {}) do os.remove(dir .. "/" .. name) end
    sh("rm -rf " .. quote(dir .. "/" .. old_ts))
  end

  it("reloads exactly once per update, through the symlinks", function()
    local dir = agent.tmpdir()
    volume(dir, "..2026_01_01_00_00_00.1", { ["a.lua"] = check_src("a"), ["c.lua"] = check_src("c") })
    sh(("cd %s && ln -s ..2026_01_01_00_00_00.1 ..data && ln -s ..data/a.lua a.lua && ln -s ..data/c.lua c.lua")
      :format(quote(dir)))
    a = agent.start { scripts_dir = dir, config = FAST }
    assert.equal("a,c", (components(a)))

    -- update 1: a changes, b appears, c goes away
    update(dir, "..2026_01_01_00_00_00.1", "..2026_01_01_00_01_00.2",
      { ["a.lua"] = check_src("a", "a2"), ["b.lua"] = check_src("b") }, { "b.lua" }, { "c.lua" })
    await_generation(a, 1)
    health.sleep(0.6)
    assert.equal(2, status(a).generation)
    assert.equal(1, reloads(a))
    assert.equal("a,b", (components(a)))
    assert.equal("a2", a:get("/healthz").json.components.a.output)
    assert.equal(agent.null, status(a).load_error)

    -- update 2: only contents change (no top-level link touched)
    update(dir, "..2026_01_01_00_01_00.2", "..2026_01_01_00_02_00.3",
      { ["a.lua"] = check_src("a", "a3"), ["b.lua"] = check_src("b") })
    await_generation(a, 2)
    health.sleep(0.6)
    assert.equal(2, reloads(a))
    assert.equal("a3", a:get("/healthz").json.components.a.output)
    sh("rm -rf " .. quote(dir))
  end)

  it("tolerates a dangling link between the rename and the link removal", function()
    local dir = agent.tmpdir()
    volume(dir, "..T1", { ["a.lua"] = check_src("a"), ["c.lua"] = check_src("c") })
    sh(("cd %s && ln -s ..T1 ..data && ln -s ..data/a.lua a.lua && ln -s ..data/c.lua c.lua"):format(quote(dir)))
    a = agent.start { scripts_dir = dir, config = FAST }
    -- the new data has no c.lua: after the rename, c.lua dangles
    volume(dir, "..T2", { ["a.lua"] = check_src("a") })
    sh(("cd %s && ln -s ..T2 ..data_tmp && mv -T ..data_tmp ..data"):format(quote(dir)))
    a:request("/-/reload", { method = "POST" }) -- reload right now, mid-update
    await_generation(a, 1)
    assert.equal(agent.null, status(a).load_error)
    assert.equal("a", (components(a)))
    os.remove(dir .. "/c.lua")
    sh("rm -rf " .. quote(dir .. "/..T1"))
    health.sleep(0.6)
    assert.equal(agent.null, status(a).load_error)
    sh("rm -rf " .. quote(dir))
  end)
end)

describe("without a directory watch", function()
  it("starts and finds changes by the rescan (HEALTHAGENT_WATCH=off)", function()
    a = agent.start {
      scripts = { ["a.lua"] = check_src("x", "v1") },
      config = 'return { shutdown_delay = "0s", rescan_interval = "200ms" }\n',
      env = "HEALTHAGENT_WATCH=off",
    }
    assert.truthy(a:wait_log("not watching", 3), a:log())
    write(a.scripts .. "/a.lua", check_src("x", "v2"))
    await_generation(a, 1, 3)
    assert.equal("v2", a:get("/healthz").json.components.x.output)
    health.sleep(0.5)
    assert.equal(1, reloads(a)) -- the rescan does nothing while the hash is unchanged
  end)
end)

describe("reloads under load", function()
  local function rss_kb(pid)
    local s = agent.read("/proc/" .. pid .. "/status") or ""
    return tonumber(s:match("VmRSS:%s*(%d+)"))
  end

  it("100 edits, each with POST /-/reload: coalesced, the last content served, no socket error", function()
    local src = {}
    for i = 1, 20 do src[#src + 1] = check_src("c" .. i) end
    a = agent.start { scripts = { ["a.lua"] = table.concat(src) }, config = FAST }
    local url = ("http://127.0.0.1:%d/readyz"):format(a.port)
    -- warm up: results, caches, allocator arenas
    sh(("wrk -t1 -c4 -d1s %s >/dev/null 2>&1"):format(url))
    for i = 1, 5 do
      write(a.scripts .. "/a.lua", table.concat(src) .. "-- warm " .. i .. "\n")
      a:request("/-/reload", { method = "POST" })
      await_generation(a, i)
    end
    local rss0 = rss_kb(a.pid)
    local out = a.dir .. "/wrk.txt"
    sh(("(wrk -t2 -c8 -d4s --latency %s > %s 2>&1 &)"):format(url, quote(out)))
    health.sleep(0.3)
    local gen0 = status(a).generation
    local t0 = health.now()
    for i = 1, 100 do
      -- alternate a comment so the content hash changes; the checks do not
      write(a.scripts .. "/a.lua", table.concat(src) .. "-- edit " .. i .. "\n")
      local r = a:request("/-/reload", { method = "POST" })
      assert.equal(202, r.status)
    end
    local secs = health.now() - t0
    health.sleep(1.5) -- the pending reload runs (the minimum interval is 250 ms)
    local s = status(a)
    assert.truthy(wait_until(function() return (agent.read(out) or ""):find("Requests/sec", 1, true) end, 10))
    local w = agent.read(out)
    local rss1 = rss_kb(a.pid)
    local n = s.generation - gen0
    print(("\n    100 reload requests in %.1f s: %d reloads (coalesced), wrk: %s req, RSS %d kB before, %d kB after")
      :format(secs, n, w:match("(%d+) requests in") or "?", rss0, rss1))
    assert.is_true(n >= 1, "no reload at all")
    assert.is_true(n <= math.ceil(secs / 0.25) + 2, ("%d reloads in %.1f s: not coalesced"):format(n, secs))
    -- the generation served is the last edit's
    local unchanged = count(a:log(), "reload: scripts unchanged")
    a:request("/-/reload", { method = "POST" })
    assert.truthy(wait_until(function() return count(a:log(), "reload: scripts unchanged") > unchanged end, 3),
      a:log():sub(-2000))
    assert.equal(s.generation, status(a).generation)
    assert.is_nil(w:find("Socket errors", 1, true), w)
    assert.is_nil(w:find("Non-2xx", 1, true), w)
    assert.equal(agent.null, s.load_error)
    assert.equal(20, s.checks)
    -- (a sanitizer's quarantine keeps freed memory: no RSS figure to hold it to)
    if (os.getenv("HA_SANITIZE") or "") == "" then
      assert.is_true(rss1 < rss0 + 8 * 1024, ("RSS grew from %d kB to %d kB"):format(rss0, rss1))
    end
  end)
end)

-- Asserts every probe was answered 200 within bound seconds; returns the slowest.
local function all_fast(rs, bound, what)
  local worst = 0
  for _, x in ipairs(rs) do
    assert.equal(200, x[1], what .. ": a probe answered " .. x[1])
    worst = math.max(worst, x[2])
  end
  assert.truthy(#rs >= 10, what .. ": the prober ran " .. #rs .. " probes")
  assert.is_true(worst < bound, ("%s: a probe took %.0f ms"):format(what, worst * 1000))
  return worst
end

-- A liveness check refreshed every 100 ms: its output counts its runs.
local TICKER = [[
  local n = 0
  health.check { name = "ticker", probes = { "liveness", "readiness" }, interval = "100ms", run = function()
    n = n + 1 return true, tostring(n) end }
]]

local function ticks(a) return tonumber(a:get("/healthz").json.components.ticker.output) end

describe("reloads never stall the engine", function()
  it("a top-level loop is ended by the load budget with file:line; probes and runs go on meanwhile", function()
    a = agent.start { scripts = { ["a.lua"] = TICKER }, config = FAST }
    local probe = a:probe_in_background("/livez", 0.05, 4)
    health.sleep(0.3)
    local n0 = ticks(a)
    write(a.scripts .. "/b.lua", "local x = 0\nwhile true do x = x + 1 end\n")
    a:request("/-/reload", { method = "POST" })
    health.sleep(1.5) -- the loader is looping now
    local n1 = ticks(a)
    assert.truthy(a:wait_log("reload failed: ", 4), a:log())
    local worst = all_fast(probe(), 0.25, "/livez during the reload")
    print(("\n    looping top level: slowest /livez %.0f ms, ticker ran %d times in 1.5 s of the load"):format(
      worst * 1000, n1 - n0))
    assert.truthy(a:log():find("reload failed: " .. a.scripts .. "/b.lua:2: scripts took longer than 2500ms to load", 1,
      true), a:log())
    assert.is_true(n1 - n0 >= 3, "the checks stopped running during the load: " .. (n1 - n0))
    assert.equal(1, status(a).generation)
    local err = wait_until(function() local e = status(a).load_error return e ~= agent.null and e.message end, 3)
    assert.truthy(err and err:find("b.lua:2:", 1, true), err)
  end)

  it("a top-level C stall: the loader is abandoned, later reloads are refused, checks and probes unaffected", function()
    a = agent.start { scripts = { ["a.lua"] = TICKER }, config = FAST }
    local probe = a:probe_in_background("/livez", 0.05, 6)
    write(a.scripts .. "/b.lua", 'local found = ("a"):rep(4000):find(".-.-b")\n')
    a:request("/-/reload", { method = "POST" })
    assert.truthy(a:wait_log("loading is stuck inside a C function", 6), a:log())
    local err = wait_until(function() local e = status(a).load_error return e ~= agent.null and e.message end, 3)
    assert.truthy(err:find(a.scripts .. "/b.lua: loading is stuck inside a C function", 1, true), err)
    -- a further reload, even of content that would load, is refused with that reason
    write(a.scripts .. "/b.lua", check_src("b"))
    a:request("/-/reload", { method = "POST" })
    assert.truthy(a:wait_log("reload refused: " .. a.scripts .. "/b.lua: loading is stuck", 3), a:log())
    local n0 = ticks(a)
    health.sleep(1)
    assert.is_true(ticks(a) - n0 >= 3, "the checks stopped running")
    local worst = all_fast(probe(), 0.25, "/livez while the loader is stuck")
    print(("\n    C-stuck top level: slowest /livez %.0f ms"):format(worst * 1000))
    assert.equal(1, status(a).generation)
    assert.equal("ticker", (components(a)))
    -- the stuck thread does not hold up the shutdown
    a:signal("TERM")
    assert.equal(0, a:wait_exit(10))
  end)

  it("a C stall that ends: its result is discarded and reloads are accepted again", function()
    a = agent.start { scripts = { ["a.lua"] = TICKER },
      config = 'return { shutdown_delay = "0s", rescan_interval = "1h", watchdog = "3s" }\n' }
    -- a few seconds of backtracking: past the 1.5 s budget plus the 1 s grace
    write(a.scripts .. "/b.lua", 'local found = ("a"):rep(1700):find(".-.-b")\n')
    a:request("/-/reload", { method = "POST" })
    assert.truthy(a:wait_log("loading is stuck inside a C function", 5), a:log())
    assert.truthy(a:wait_log("the stuck load returned after", 90), a:log())
    write(a.scripts .. "/b.lua", check_src("b"))
    a:request("/-/reload", { method = "POST" })
    await_generation(a, 1, 5)
    assert.equal("b,ticker", (components(a)))
    assert.equal(agent.null, status(a).load_error)
  end)
end)

describe("reload storms", function()
  it("POST /-/reload and SIGHUP as fast as they come with nothing changed: nothing happens, /livez stays 200", function()
    a = agent.start { scripts = { ["a.lua"] = TICKER }, config = FAST }
    local probe = a:probe_in_background("/livez", 0.05, 4)
    local t0 = health.now()
    local sent = 0
    while sent < 40 and health.now() - t0 < 3.5 do
      sh(("curl -s -o /dev/null -X POST http://127.0.0.1:%d/-/reload"):format(a.port))
      a:signal("HUP")
      sent = sent + 1
    end
    local secs = health.now() - t0
    local worst = all_fast(probe(), 0.25, "/livez during the storm")
    print(("\n    storm: %d POST + %d SIGHUP in %.1f s, %d reloads, slowest /livez %.0f ms"):format(sent, sent, secs,
      reloads(a), worst * 1000))
    assert.is_true(sent >= 10, "only " .. sent .. " requests sent")
    assert.equal(0, reloads(a))
    assert.equal(1, status(a).generation)
    assert.equal(agent.null, status(a).load_error)
  end)

  it("a storm of changes: at most one reload per 250 ms, the last change served", function()
    a = agent.start { scripts = { ["a.lua"] = TICKER }, config = FAST }
    local probe = a:probe_in_background("/livez", 0.05, 4)
    local t0 = health.now()
    local i = 0
    while health.now() - t0 < 3 do
      i = i + 1
      write(a.scripts .. "/b.lua", check_src("b", "v" .. i))
      a:request("/-/reload", { method = "POST" })
      health.sleep(0.05)
    end
    local secs = health.now() - t0
    health.sleep(1)
    local n = reloads(a)
    all_fast(probe(), 0.25, "/livez during the storm")
    print(("\n    storm of changes: %d edits in %.1f s, %d reloads"):format(i, secs, n))
    assert.is_true(n >= 2 and n <= math.ceil(secs / 0.25) + 2, ("%d reloads for %d edits in %.1f s"):format(n, i, secs))
    assert.equal("v" .. i, a:get("/healthz").json.components.b.output)
  end)
end)

describe("what a reload changes besides the checks", function()
  -- the names-only answers (a client neither trusted nor holding a token)
  -- and healthagent_probe_status are cached on a hash of what they show;
  -- a quorum is in no check, and a reload that changes it must reach them
  it("a stricter quorum changes the names-only answer and /metrics, not only the full one", function()
    local src = [[
      health.check { name = "a", ttl = "1h", run = function() return true end }
      health.check { name = "b", ttl = "1h", run = function() return false, "down" end }
      health.group { name = "readiness", aggregate = health.aggregate.quorum { min_up = %d } }
    ]]
    a = agent.start { scripts = { ["a.lua"] = src:format(1) },
                      config = 'return { shutdown_delay = "0s", trusted_networks = { "10.255.255.254/32" } }\n' }
    assert.truthy(wait_until(function() return a:get("/readyz").status == 200 end, 5), a:log())
    local function probe_status()
      return a:get("/metrics").body:match('healthagent_probe_status{probe="readiness"} (%d)')
    end
    assert.equal("1", probe_status())
    local r = a:get("/readyz")
    assert.is_nil(r.body:find("down", 1, true), "a names-only answer shows no output: " .. r.body)
    local gen = status(a).generation
    agent.write(a.scripts .. "/a.lua", src:format(2))
    await_generation(a, gen)
    assert.equal(503, a:get("/readyz").status)
    assert.equal("0", probe_status())
  end)
end)
