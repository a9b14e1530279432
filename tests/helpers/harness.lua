-- helpers.harness: the set-up the unit specs share: the harness' env.lua
-- (tests/harness/servers.sh), counting this process' descriptors, waiting
-- for closed handles, and timing a call. Runs inside the agent (busted
-- --lua=build/healthagent), so health.* is available.
local lfs = require "lfs"
local testing = require "health.testing"

local M = {}

M.DIR = os.getenv("HA_HARNESS_DIR")           -- where servers.sh put its env.lua, or nil
M.SRC = os.getenv("HA_SOURCE_DIR") or "."     -- the source tree (servers.sh lives there)

-- The harness' env.lua: ports, users, passwords, CA file. Raises when
-- HA_HARNESS_DIR is not set.
function M.env()
  local dir = assert(M.DIR, "HA_HARNESS_DIR: start tests/harness/servers.sh first")
  return dofile(dir .. "/env.lua")
end

-- Runs `servers.sh cmd service DIR` (pause, resume, ...) and refreshes the
-- loop clock after blocking.
function M.server(service, cmd)
  assert(os.execute(("%s/tests/harness/servers.sh %s %s %s >/dev/null 2>&1"):format(M.SRC, cmd, service, M.DIR)))
  health.sleep(0)
end

-- Open descriptors of this process (the directory listing's own one
-- included: compare counts, not absolute values).
function M.fds()
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  return n
end

-- Open descriptors of this process, listed by a shell whose output goes to
-- a file (a pipe of ours would be counted, racily). HA_SPEC_VERBOSE=1
-- prints the listing.
local pid, list
function M.fds_listed()
  if pid == nil then
    local f = assert(io.open("/proc/self/stat"))
    pid = f:read("l"):match("^(%d+)")
    f:close()
    list = os.tmpname()
  end
  assert(os.execute("ls -l /proc/" .. pid .. "/fd > " .. list))
  local f = assert(io.open(list))
  local out = f:read("a")
  f:close()
  local n = 0
  for line in out:gmatch("[^\n]+") do
    if line:match("^l") then n = n + 1 end
  end
  if os.getenv("HA_SPEC_VERBOSE") then io.stderr:write(out) end
  return n
end

-- Collects garbage (closing forgotten objects), then lets the pending
-- uv_close callbacks run.
function M.settle()
  collectgarbage()
  collectgarbage()
  health.sleep(0.02)
end

-- Polls f every 5 ms until it returns true or seconds (default 1) pass;
-- returns f's last answer.
function M.eventually(f, seconds)
  local t0 = health.now()
  repeat
    if f() then return true end
    health.sleep(0.005)
  until health.now() - t0 > (seconds or 1)
  return f()
end

-- Waits up to a second for every libuv handle to close; returns how many
-- are still open.
function M.wait_handles()
  for _ = 1, 200 do
    if testing.handles() == 0 then return 0 end
    health.sleep(0.005)
  end
  return testing.handles()
end

-- Calls f(...) and returns its first two results and the seconds it took.
function M.elapsed(f, ...)
  local t0 = health.now()
  local a, b = f(...)
  return a, b, health.now() - t0
end

-- Loads src as the script name (default "t.lua") into a new generation;
-- raises with the load error.
function M.load(src, name)
  local g, err = testing.load({ [name or "t.lua"] = src })
  assert(g, err)
  return g
end

-- The database modules' shared contracts (redis, postgres, mysql specs).
local luassert = require "luassert"

-- A check whose server is SIGSTOPped (servers.sh pause NAME) ends DOWN at its
-- own 500 ms deadline. g holds check `name`, defined with timeout = 0.5.
function M.db_stopped_server(g, name, service)
  luassert.are.equal("UP", g:run(name).status)
  M.server(service, "pause")
  local ok, r = pcall(g.run, g, name)
  M.server(service, "resume")
  luassert.is_true(ok, r)
  luassert.are.equal("DOWN", r.status)
  luassert.are.equal("timeout after 500ms", r.output)
  luassert.is_true(r.duration_ms >= 490 and r.duration_ms < 800, "took " .. r.duration_ms)
end

-- 680 refused connects, 300 good checks and 20 silent-server timeouts of the
-- factory health.checks.<kind> leave no descriptor behind. urls = {refused=,
-- ok=, silent=}. The silent check's op timeout equals its deadline, which the
-- core leaves to the deadline: always "timeout after 50ms".
function M.db_no_leaks(kind, urls)
  M.settle()
  local before = M.fds()
  local g = M.load(([[
    health.checks.%s { name = "refused", url = %q, timeout = 2 }
    health.checks.%s { name = "ok", url = %q, timeout = 5 }
    health.checks.%s { name = "silent", url = %q, timeout = 0.05 }
  ]]):format(kind, urls.refused, kind, urls.ok, kind, urls.silent))
  for _ = 1, 680 do
    luassert.are.equal("connection refused", g:run("refused").output)
  end
  for _ = 1, 300 do
    luassert.are.equal("UP", g:run("ok").status)
  end
  for _ = 1, 20 do
    luassert.are.equal("timeout after 50ms", g:run("silent").output)
  end
  g:close()
  M.settle()
  luassert.are.equal(before, M.fds())
end

return M
