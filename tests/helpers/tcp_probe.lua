-- tests/helpers/tcp_probe.lua: what a spec needs to prove it leaks nothing
-- and to run many checks at once.
--   local probe = require "helpers.tcp_probe"
--   probe.fds()                  -- open file descriptors of this process
--   probe.settle()               -- collect garbage, let close callbacks run
--   probe.wait_runs(g, names, n, timeout) -- until the runs add up to n
local M = {}

local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

local PID = self_pid()

-- Runs a shell command with os.execute (the caller waits: no pipe of ours is
-- open while it looks at /proc) and returns its output.
local function run(cmd)
  local tmp = os.tmpname()
  os.execute(cmd .. " > " .. tmp .. " 2>&1")
  local f = assert(io.open(tmp))
  local out = f:read("a")
  f:close()
  os.remove(tmp)
  return out
end

-- Number of open file descriptors of this process.
function M.fds()
  return tonumber((run("ls /proc/" .. PID .. "/fd | wc -l")))
end

-- Lists the descriptors with what they point at (for failure messages).
function M.fd_list()
  return run("ls -l /proc/" .. PID .. "/fd | tail -n +2")
end

-- Collects garbage and gives close callbacks a loop turn or two.
function M.settle()
  collectgarbage()
  collectgarbage()
  health.sleep(0.02)
end

-- Waits (sleeping 5 ms at a time) until the checks named in names of the
-- autorun generation g have run n times in all, or timeout seconds pass.
-- Returns the total runs and the per-check runs.
function M.wait_runs(g, names, n, timeout)
  local deadline = health.now() + (timeout or 10)
  local total, each
  repeat
    total, each = 0, {}
    for _, name in ipairs(names) do
      local r = g:state(name).runs
      each[name] = r
      total = total + r
    end
    if total >= n then
      break
    end
    health.sleep(0.005)
  until health.now() > deadline
  return total, each
end

return M
