-- tests/helpers/spec.lua: what every spec shares, unit or integration: waiting
-- for a condition, proving nothing leaked (this process' descriptors, libuv
-- handles), shell and file helpers, a JSON decoder for assertions, and the
-- harness servers of tests/harness/servers.sh. Runs inside the agent (busted
-- --lua=build/healthagent), so waiting uses health.sleep and never blocks
-- the spec's loop for long. helpers.agent builds on it for the binary.
--
--   local spec = require "helpers.spec"
--   assert.truthy(spec.wait_until(function() return x == 1 end, 2))
--   spec.settle(); local before = spec.fds() ... assert.equal(before, spec.fds(), spec.fd_list())
local lfs = require "lfs"

local M = {}

-- --- waiting --------------------------------------------------------------

-- Calls f every step seconds (default 0.02) until it returns a true value
-- or timeout seconds (default 5) pass, then once more; returns f's last
-- answer (its true value, or what it returned on that last call).
function M.wait_until(f, timeout, step)
  local deadline = health.now() + (timeout or 5)
  repeat
    local v = f()
    if v then return v end
    health.sleep(step or 0.02)
  until health.now() > deadline
  return f()
end

-- wait_until(f, timeout) that raises "timed out waiting for <what>" (at the
-- caller) when f never returns a true value; returns that value.
function M.wait_for(f, timeout, what)
  local v = M.wait_until(f, timeout)
  if not v then error("timed out waiting for " .. (what or "a condition"), 2) end
  return v
end

-- Collects garbage (closing forgotten objects), then lets the pending
-- uv_close callbacks run.
function M.settle()
  collectgarbage()
  collectgarbage()
  health.sleep(0.02)
end

-- Calls f(...) and returns its first two results and the seconds it took.
function M.elapsed(f, ...)
  local t0 = health.now()
  local a, b = f(...)
  return a, b, health.now() - t0
end

-- --- shell and files -------------------------------------------------------

-- Runs cmd with io.popen; returns its output, exit code and success flag.
function M.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, code or 0, ok
end

-- s quoted for sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.tmpdir()
  return (M.sh("mktemp -d /tmp/ha-test.XXXXXX"):gsub("%s+$", ""))
end

function M.write(path, content)
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
end

-- The contents of path, or nil when it cannot be read.
function M.read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- --- what this process holds -------------------------------------------------

-- Counts this process' open file descriptors: the entries of /proc/self/fd,
-- the listing's own descriptor included (compare counts, never absolute
-- values). No child process and no pipe is involved, so nothing of the
-- count's own is open but the directory. HA_SPEC_VERBOSE=1 also prints
-- fd_list() to stderr.
function M.fds()
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  if os.getenv("HA_SPEC_VERBOSE") then io.stderr:write(M.fd_list()) end
  return n - 2 -- "." and ".."
end

-- Lists this process' descriptors with what they point at, for failure
-- messages: `ls -l` run by a shell whose output goes to a file (a pipe of
-- ours would show in the list).
local PID
function M.fd_list()
  if PID == nil then
    local f = assert(io.open("/proc/self/stat"))
    PID = f:read("l"):match("^(%d+)")
    f:close()
  end
  local tmp = os.tmpname()
  os.execute("ls -l /proc/" .. PID .. "/fd | tail -n +2 > " .. tmp .. " 2>&1")
  local out = M.read(tmp) or ""
  os.remove(tmp)
  return out
end

-- Waits up to a second for every libuv handle of the engine to close
-- (health.testing.handles); returns how many are still open.
function M.wait_handles()
  local testing = require "health.testing"
  M.wait_until(function() return testing.handles() == 0 end, 1, 0.005)
  return testing.handles()
end

-- --- JSON ------------------------------------------------------------------

-- JSON null, as M.decode returns it.
M.null = setmetatable({}, { __tostring = function() return "null" end })

-- Minimal JSON decoder for test assertions (objects, arrays, strings,
-- numbers, booleans, null -> M.null). Raises on malformed input.
function M.decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then error("unterminated string") end
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        if e == "u" then
          local cp = tonumber(s:sub(i + 2, i + 5), 16)
          out[#out + 1] = utf8.char(cp)
          i = i + 6
        else
          out[#out + 1] = map[e]
          i = i + 2
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        local k = str()
        ws()
        assert(s:sub(pos, pos) == ":", "expected : at " .. pos)
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        assert(d == ",", "expected , at " .. pos)
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        assert(d == ",", "expected , at " .. pos)
      end
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return M.null
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      assert(num and #num > 0, "bad JSON at " .. pos .. ": " .. s:sub(pos, pos + 20))
      pos = pos + #num
      return tonumber(num)
    end
  end
  local v = value()
  ws()
  assert(pos > #s, "trailing data in JSON at " .. pos)
  return v
end

-- --- the harness servers (unit specs) ----------------------------------------

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

-- --- generations of checks (unit specs) ----------------------------------------

-- Loads src as the script name (default "t.lua") into a new generation;
-- raises with the load error.
function M.load(src, name)
  local testing = require "health.testing"
  local g, err = testing.load({ [name or "t.lua"] = src })
  assert(g, err)
  return g
end

-- Waits (sleeping 5 ms at a time) until the checks named in names of the
-- autorun generation g have run n times in all, or timeout seconds
-- (default 10) pass. Returns the total runs and the per-check runs.
function M.wait_runs(g, names, n, timeout)
  local total, each
  M.wait_until(function()
    total, each = 0, {}
    for _, name in ipairs(names) do
      local r = g:state(name).runs
      each[name] = r
      total = total + r
    end
    return total >= n
  end, timeout or 10, 0.005)
  return total, each
end

-- The database modules' shared contracts (redis, postgres, mysql specs).

-- A check whose server is SIGSTOPped (servers.sh pause NAME) ends DOWN at its
-- own 500 ms deadline. g holds check `name`, defined with timeout = 0.5.
function M.db_stopped_server(g, name, service)
  local luassert = require "luassert"
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
-- core leaves to the deadline: always "timeout after 50ms". Every URL's host is
-- a numeric address, and none of the 1,000 connects asks the resolver.
function M.db_no_leaks(kind, urls)
  local luassert = require "luassert"
  local testing = require "health.testing"
  M.settle()
  local before, lookups = M.fds(), testing.dns_stats().started
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
  luassert.are.equal(before, M.fds(), M.fd_list())
  luassert.are.equal(lookups, testing.dns_stats().started, "numeric hosts went through the resolver")
end

return M
