-- health.exec and the nagios factory, inside the agent's runtime:
--   busted --lua=build/healthagent tests/unit/exec_spec.lua
-- Processes are inspected through /proc: the spec's own children (zombies
-- included), descriptors in /proc/self/fd, and commands carrying a marker
-- argument so that a leftover is found even outside our process tree.
local exec = require "health.exec"
local testing = require "health.testing"
local lfs = require "lfs"
local H = require "helpers.spec"

local PLUGINS = "/usr/lib/nagios/plugins"

local read_file = H.read

local SELF = tonumber(read_file("/proc/self/stat"):match("^(%d+)"))

-- Every process: {pid=, ppid=, pgid=, state=, comm=, cmdline=}.
local function processes()
  local list = {}
  for name in lfs.dir("/proc") do
    local pid = tonumber(name)
    local stat = pid and read_file("/proc/" .. name .. "/stat")
    if stat then
      local comm, rest = stat:match("^%d+ %((.*)%) (.*)$")
      local state, ppid, pgid = rest:match("^(%S) (%d+) (%d+)")
      list[#list + 1] = { pid = pid, ppid = tonumber(ppid), pgid = tonumber(pgid), state = state, comm = comm,
                          cmdline = (read_file("/proc/" .. name .. "/cmdline") or ""):gsub("%z", " ") }
    end
  end
  return list
end

-- Our children (zombies included), and the processes whose command line
-- starts with marker (a zombie has none: children() finds those, since the
-- agent is the subreaper of its commands' orphans).
local function children()
  local out = {}
  for _, p in ipairs(processes()) do
    if p.ppid == SELF then out[#out + 1] = p end
  end
  return out
end

local function marked(marker)
  local out = {}
  for _, p in ipairs(processes()) do
    if p.cmdline:sub(1, #marker) == marker then out[#out + 1] = p end
  end
  return out
end

local function describe_procs(list)
  local t = {}
  for _, p in ipairs(list) do t[#t + 1] = ("%d %s %s %q"):format(p.pid, p.state, p.comm, p.cmdline) end
  return table.concat(t, "; ")
end

local fd_count, wait_until = H.fds, H.wait_until

local function nothing_left(marker)
  -- 0.5 s: our own reaping takes milliseconds; an init that reaps orphans
  -- in its own time (this sandbox: about 2 s) would not pass
  return wait_until(function() return #children() == 0 and (not marker or #marked(marker) == 0) end, 0.5, 0.005)
end

after_each(function()
  collectgarbage()
  assert.is_true(wait_until(function() return testing.handles() == 0 end, 2, 0.005), "handles left: " .. testing.handles())
  assert.is_true(nothing_left(), "children left: " .. describe_procs(children()))
end)

describe("exec.run", function()
  it("runs a command and captures its output", function()
    local r = assert(exec.run { "echo", "hello", "world" })
    assert.same({ code = 0, stdout = "hello world\n", stderr = "", truncated = false }, r)
  end)

  it("reports exit codes and stderr", function()
    local r = assert(exec.run { "sh", "-c", "echo out; echo err >&2; exit 3" })
    assert.equal(3, r.code)
    assert.is_nil(r.signal)
    assert.equal("out\n", r.stdout)
    assert.equal("err\n", r.stderr)
    assert.equal(1, exec.run({ "false" }).code)
  end)

  it("reports the signal that ended the command", function()
    local r = assert(exec.run { "sh", "-c", "kill -TERM $$" })
    assert.is_nil(r.code)
    assert.equal(15, r.signal)
  end)

  it("passes arguments verbatim, without a shell", function()
    local r = assert(exec.run { "printf", "[%s]", "a b", "$HOME", "*", "'" })
    assert.equal("[a b][$HOME][*][']", r.stdout)
  end)

  it("replaces the environment with env, keeping PATH", function()
    local r = assert(exec.run({ "sh", "-c", 'echo "$FOO|$N|${HOME-unset}|$PATH"' }, { env = { FOO = "bar", N = 42 } }))
    assert.equal("bar|42|unset|" .. os.getenv("PATH") .. "\n", r.stdout)
    r = assert(exec.run({ "/bin/sh", "-c", 'echo "$PATH"' }, { env = { PATH = "/nowhere" } }))
    assert.equal("/nowhere\n", r.stdout)
    r = assert(exec.run({ "sh", "-c", 'echo "$HOME"' })) -- no env: inherited
    assert.equal((os.getenv("HOME") or "") .. "\n", r.stdout)
  end)

  it("runs in cwd", function()
    assert.equal("/tmp\n", exec.run({ "pwd" }, { cwd = "/tmp" }).stdout)
    assert.same({ nil, "no such directory: /no/such/dir" }, { exec.run({ "pwd" }, { cwd = "/no/such/dir" }) })
    assert.same({ nil, "not a directory: /etc/hostname" }, { exec.run({ "pwd" }, { cwd = "/etc/hostname" }) })
  end)

  it("feeds stdin, or /dev/null without it", function()
    assert.equal("some input", exec.run({ "cat" }, { stdin = "some input" }).stdout)
    assert.equal("", exec.run({ "cat" }).stdout)
    assert.equal("", exec.run({ "cat" }, { stdin = "" }).stdout)
    -- a command that does not read a large input still ends normally
    local r = assert(exec.run({ "true" }, { stdin = ("x"):rep(4 * 1024 * 1024) }))
    assert.equal(0, r.code)
  end)

  it("caps each stream at max_output (64 KiB by default) and keeps the exit code", function()
    assert.equal(65536, exec.max_output_default)
    local r = assert(exec.run { "sh", "-c", "head -c 1000000 /dev/zero; head -c 100 /dev/zero >&2; exit 4" })
    assert.equal(65536, #r.stdout)
    assert.equal(100, #r.stderr)
    assert.is_true(r.truncated)
    assert.equal(4, r.code)
    r = assert(exec.run({ "sh", "-c", "echo 0123456789; echo abcdef >&2" }, { max_output = 4 }))
    assert.equal("0123", r.stdout)
    assert.equal("abcd", r.stderr)
    assert.is_true(r.truncated)
  end)

  it("fails cleanly when the command cannot run", function()
    assert.same({ nil, "no such file: no-such-command-x" }, { exec.run { "no-such-command-x" } })
    assert.same({ nil, "no such file: /no/such/bin" }, { exec.run { "/no/such/bin" } })
    assert.same({ nil, "permission denied" }, { exec.run { "/etc/passwd" } })
    assert.same({ nil, "permission denied" }, { exec.run { "/tmp" } })
  end)

  it("raises on misuse", function()
    assert.has_error(function() exec.run("echo hi") end)
    assert.has_error(function() exec.run {} end)
    assert.has_error(function() exec.run { "echo", 42 } end, "health.exec.run: argv[2] must be a string, got number")
    assert.has_error(function() exec.run { "echo", "a\0b" } end)
    assert.has_error(function() exec.run({ "echo" }, { bogus = 1 }) end, "health.exec.run: unknown option 'bogus'")
    assert.has_error(function() exec.run({ "echo" }, { env = { ["A=B"] = "x" } }) end)
    assert.has_error(function() exec.run({ "echo" }, { env = { A = {} } }) end)
    assert.has_error(function() exec.run({ "echo" }, { max_output = -1 }) end)
    assert.has_error(function() exec.run({ "echo" }, { timeout = "later" }) end)
    assert.has_error(function() exec.run({ "echo" }, { cwd = 1 }) end)
  end)

  it("raises at load time (outside a check run)", function()
    local g, err = testing.load({ ["x.lua"] = 'require("health.exec").run{"true"}' })
    assert.is_nil(g)
    assert.matches("health.exec.run: called outside a check run", err)
  end)
end)

describe("exec.run timeouts", function()
  it("answers timeout on time and leaves no process behind", function()
    local marker = "4242.125"
    local t0 = health.now()
    local r, err = exec.run({ "sh", "-c", "sleep " .. marker .. " & sleep " .. marker }, { timeout = 0.2 })
    local dt = health.now() - t0
    assert.is_nil(r)
    assert.equal("timeout", err)
    assert.is_true(dt >= 0.19 and dt < 0.5, "took " .. dt)
    assert.is_true(nothing_left("sleep " .. marker),
                   "left: " .. describe_procs(marked("sleep " .. marker)) .. " children: " .. describe_procs(children()))
  end)

  it("kills the whole process group, grandchildren included, and reaps it", function()
    local marker = "4242.25"
    local h = testing.spawn(function()
      return exec.run({ "sh", "-c", "sleep " .. marker .. " & sleep " .. marker }, { timeout = 1 })
    end)
    -- the child and the grandchild it forked are both running
    assert.is_true(wait_until(function() return #marked("sleep " .. marker) == 2 end, 0.9, 0.005),
                   describe_procs(marked("sleep " .. marker)))
    local ok, r, err = h:wait()
    assert.is_true(ok)
    assert.is_nil(r)
    assert.equal("timeout", err)
    assert.is_true(nothing_left("sleep " .. marker),
                   "left: " .. describe_procs(marked("sleep " .. marker)) .. " children: " .. describe_procs(children()))
  end)

  it("does not wait for a grandchild holding the pipes after the child exits", function()
    local marker = "4243.125"
    local t0 = health.now()
    local r = assert(exec.run({ "sh", "-c", "sleep " .. marker .. " & echo started; exit 5" }, { timeout = 5 }))
    assert.is_true(health.now() - t0 < 2, "took " .. (health.now() - t0))
    assert.equal(5, r.code)
    assert.equal("started\n", r.stdout)
    assert.is_true(nothing_left("sleep " .. marker), describe_procs(marked("sleep " .. marker)))
  end)

  it("reaps a daemonised (setsid) grandchild when it exits after the run, with no further exec run", function()
    local marker = "0.3"
    local ready = os.tmpname()
    os.remove(ready)
    -- the child exits only once the grandchild is in a session of its own
    local cmd = ("setsid sh -c 'touch %s; exec sleep %s' </dev/null >/dev/null 2>&1 & " ..
                 "while [ ! -e %s ]; do sleep 0.01; done; exit 0"):format(ready, marker, ready)
    local r = assert(exec.run({ "sh", "-c", cmd }, { timeout = 5 }))
    os.remove(ready)
    assert.equal(0, r.code)
    -- the grandchild left the group (setsid): it outlives the run, then exits
    assert.is_true(wait_until(function() return #marked("sleep " .. marker) == 1 end, 0.5, 0.005),
                   "children: " .. describe_procs(children()))
    health.sleep(0.35)
    assert.is_true(nothing_left(), "left: " .. describe_procs(children()))
  end)

  it("kills and reaps when the check's deadline passes", function()
    local marker = "4244.125"
    local g = assert(testing.load({ ["t.lua"] = ([[
      local exec = require "health.exec"
      health.check { name = "t", timeout = "300ms", run = function()
        local r, err = exec.run { "sh", "-c", "sleep %s & sleep %s & wait" }
        return false, "not reached"
      end }
    ]]):format(marker, marker) }))
    local t0 = health.now()
    local r = g:run("t")
    assert.equal("DOWN", r.status)
    assert.equal("timeout after 300ms", r.output)
    assert.is_true(health.now() - t0 < 1, "took " .. (health.now() - t0))
    g:close()
    assert.is_true(nothing_left("sleep " .. marker), describe_procs(marked("sleep " .. marker)))
  end)

  it("kills and reaps when the generation is closed mid-run", function()
    local marker = "4245.125"
    local g = assert(testing.load({ ["t.lua"] = ([[
      local exec = require "health.exec"
      health.check { name = "t", timeout = "10s", run = function()
        return exec.run { "sh", "-c", "sleep %s; sleep %s" }
      end }
    ]]):format(marker, marker) }))
    local h = testing.spawn(function() return g:run("t") end)
    assert.is_true(wait_until(function() return #marked("sleep " .. marker) == 1 end, 2, 0.005))
    g:close()
    h:wait()
    assert.is_true(nothing_left("sleep " .. marker), describe_procs(marked("sleep " .. marker)))
  end)
end)

describe("exec.run leaks", function()
  it("leaves no descriptor, handle or child after 1,000 runs", function()
    exec.run { "true" } -- warm up: libuv's signal pipes are made once
    local fds = fd_count()
    for i = 1, 1000 do
      local r
      if i % 3 == 0 then
        r = assert(exec.run { "false" })
        assert.equal(1, r.code)
      elseif i % 3 == 1 then
        r = assert(exec.run { "true" })
        assert.equal(0, r.code)
      else
        assert.is_nil((exec.run { "no-such-command-x" }))
      end
    end
    assert.is_true(wait_until(function() return testing.handles() == 0 end, 1, 0.005))
    assert.equal(fds, fd_count())
    assert.same({}, children())
  end)

  it("leaves nothing behind after 100 killed process trees", function()
    local marker = "4246.125"
    local fds = fd_count()
    for _ = 1, 100 do
      local r, err = exec.run({ "sh", "-c", "sleep " .. marker .. " & sleep " .. marker }, { timeout = "10ms" })
      assert.is_nil(r)
      assert.equal("timeout", err)
    end
    assert.is_true(nothing_left("sleep " .. marker), describe_procs(marked("sleep " .. marker)))
    assert.is_true(wait_until(function() return testing.handles() == 0 end, 1, 0.005))
    assert.equal(fds, fd_count())
  end)

  it("runs many commands at once", function()
    -- a barrier, not a stopwatch: each command says it runs, then waits for
    -- "go", which comes only once all 50 run at the same time
    local dir = H.tmpdir()
    local hs = {}
    for i = 1, 50 do
      local script = ("touch %s/%d; while [ ! -e %s/go ]; do sleep 0.02; done; echo %d"):format(dir, i, dir, i)
      hs[i] = testing.spawn(function() return exec.run({ "sh", "-c", script }, { timeout = 60 }) end)
    end
    local running = 0
    H.wait_until(function()
      running = 0
      for i = 1, 50 do
        if lfs.attributes(dir .. "/" .. i) then running = running + 1 end
      end
      return running == 50
    end, 60, 0.05)
    H.write(dir .. "/go", "")
    for i = 1, 50 do
      local ok, r = hs[i]:wait()
      assert.is_true(ok)
      assert.equal(i .. "\n", r.stdout)
    end
    os.execute("rm -rf " .. dir)
    assert.equal(50, running, "the commands did not all run at once")
  end)
end)

describe("exec.nagios", function()
  local dummy = PLUGINS .. "/check_dummy"

  it("maps check_dummy's exit codes", function()
    assert.same({ "UP", "OK: fine", {} }, { exec.nagios { dummy, "0", "fine" } })
    assert.same({ "WARN", "WARNING: meh", {} }, { exec.nagios { dummy, "1", "meh" } })
    assert.same({ "DOWN", "CRITICAL: down", {} }, { exec.nagios { dummy, "2", "down" } })
    assert.same({ nil, "unknown: UNKNOWN: what", {} }, { exec.nagios { dummy, "3", "what" } })
    assert.same({ "DOWN", "CRITICAL", {} }, { exec.nagios { dummy, "2" } })
  end)

  it("treats other exit codes and signals as unknown", function()
    assert.same({ nil, "unknown: exit code 7", {} }, { exec.nagios { "sh", "-c", "exit 7" } })
    assert.same({ nil, "unknown: weird", {} }, { exec.nagios { "sh", "-c", "echo weird; exit 4" } })
    assert.same({ nil, "unknown: killed by signal 9", {} }, { exec.nagios { "sh", "-c", "kill -9 $$" } })
  end)

  it("parses check_disk's perfdata", function()
    local status, msg, perf = exec.nagios { PLUGINS .. "/check_disk", "-w", "0%", "-c", "0%", "-p", "/" }
    assert.equal("UP", status)
    assert.matches("^DISK OK", msg)
    assert.is_nil(msg:find("|", 1, true))
    local root = perf["/"]
    assert.is_table(root, "perfdata: " .. tostring(next(perf)))
    assert.equal("B", root.uom)
    assert.equal("integer", math.type(root.value))
    assert.equal(0, root.min)
    assert.is_true(root.max >= root.value)
  end)

  it("parses quoted labels, units, ranges and long output", function()
    local script = [[
printf '%s\n' "LOAD WARNING - high | 'load 1'=2.5;2;4;0; 'it''s'=10% rta=0.05ms;;;; pl=U"
printf '%s\n' "second line of long text"
printf '%s\n' "third | conns=17c;@10:20;~:30 'bytes in'=1.5KB"
printf '%s\n' "x=3;;;0;9"
exit 1]]
    local status, msg, perf = exec.nagios { "sh", "-c", script }
    assert.equal("WARN", status)
    assert.equal("LOAD WARNING - high", msg)
    assert.same({ value = 2.5, warn = 2, crit = 4, min = 0 }, perf["load 1"])
    assert.same({ value = 10, uom = "%" }, perf["it's"])
    assert.same({ value = 0.05, uom = "ms" }, perf.rta)
    assert.same({ value = "U" }, perf.pl)
    assert.same({ value = 17, uom = "c", warn = "@10:20", crit = "~:30" }, perf.conns)
    assert.same({ value = 1.5, uom = "KB" }, perf["bytes in"])
    assert.same({ value = 3, min = 0, max = 9 }, perf.x)
  end)

  it("takes the message from stderr when stdout is empty", function()
    assert.same({ nil, "unknown: bad option", {} }, { exec.nagios { "sh", "-c", "echo 'bad option' >&2; exit 3" } })
  end)

  it("passes run failures through", function()
    assert.same({ nil, "no such file: /no/plugin" }, { exec.nagios { "/no/plugin" } })
    assert.same({ nil, "timeout" }, { exec.nagios({ "sleep", "5" }, { timeout = 0.05 }) })
  end)
end)

describe("health.checks.nagios", function()
  local function run(argv)
    local g = assert(testing.load({ ["n.lua"] = ("health.checks.nagios { name = 'n', argv = %s }"):format(argv) }))
    local r = g:run("n")
    g:close()
    return r
  end

  it("maps plugin results to check results", function()
    local d = "'" .. PLUGINS .. "/check_dummy'"
    local r = run("{ " .. d .. ", '0', 'all good' }")
    assert.equal("UP", r.status)
    assert.equal("OK: all good", r.output)
    r = run("{ " .. d .. ", '1', 'hmm' }")
    assert.equal("WARN", r.status)
    assert.equal("WARNING: hmm", r.output)
    r = run("{ " .. d .. ", '2', 'bad' }")
    assert.equal("DOWN", r.status)
    assert.equal("CRITICAL: bad", r.output)
    r = run("{ " .. d .. ", '3', 'odd' }")
    assert.equal("DOWN", r.status)
    assert.equal("unknown: UNKNOWN: odd", r.output)
    r = run("{ '/no/plugin' }")
    assert.equal("DOWN", r.status)
    assert.equal("no such file: /no/plugin", r.output)
  end)

  it("puts perfdata in details", function()
    local r = run("{ '" .. PLUGINS .. "/check_disk', '-w', '0%', '-c', '0%', '-p', '/' }")
    assert.equal("UP", r.status)
    assert.matches('^{"/":{', r.details)
    assert.matches('"uom":"B"', r.details)
  end)

  it("rejects a missing argv at the script's line", function()
    local g, err = testing.load({ ["n.lua"] = "health.checks.nagios { name = 'n' }" })
    assert.is_nil(g)
    assert.matches("n.lua:1: health.checks.nagios: option 'argv' is required", err)
  end)
end)
