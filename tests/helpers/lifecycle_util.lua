-- tests/helpers/lifecycle_util.lua: what the lifecycle, admin and command
-- specs need beyond helpers.agent: an agent whose exact exit status is
-- recorded (it runs under a waiting shell), polling, and running commands.
local agent = require "helpers.agent"
local sh, quote = agent.sh, agent.quote

local M = {}

local BIN = os.getenv("HA_BIN") or "build/healthagent"
M.BIN = BIN

-- Polls f until it returns a true value or timeout seconds pass.
function M.wait_for(f, timeout)
  local deadline = health.now() + (timeout or 5)
  repeat
    local v = f()
    if v then return v end
    health.sleep(0.02)
  until health.now() > deadline
  return nil
end

local Proc = {}
Proc.__index = Proc

function Proc:log() return agent.read(self.logfile) or "" end

function Proc:wait_log(text, timeout)
  return M.wait_for(function() return self:log():find(text, 1, true) end, timeout)
end

function Proc:signal(sig) sh("kill -" .. sig .. " " .. self.pid .. " 2>/dev/null") end

function Proc:alive() return agent.read(self.dir .. "/rc") == nil end

-- One request with curl. opts: method, headers, body, interface, timeout.
-- Returns {status (0 when no answer), body, headers, json}.
function Proc:request(path, opts)
  opts = opts or {}
  local hdr, body = os.tmpname(), os.tmpname()
  local args = { "curl -s", "-o", quote(body), "-D", quote(hdr), "-w '%{http_code}'", "--max-time",
    tostring(opts.timeout or 10) }
  if opts.method then args[#args + 1] = "-X " .. opts.method end
  if opts.interface then args[#args + 1] = "--interface " .. opts.interface end
  if opts.body then args[#args + 1] = "--data-binary " .. quote(opts.body) end
  for k, v in pairs(agent.admin_headers(path, opts, self.admin_token)) do
    args[#args + 1] = "-H " .. quote(k .. ": " .. v)
  end
  args[#args + 1] = quote(("http://127.0.0.1:%d%s"):format(self.port, path))
  local code = sh(table.concat(args, " "))
  local r = { status = tonumber(code) or 0, headers = {}, body = agent.read(body) or "" }
  for line in (agent.read(hdr) or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then r.headers[k:lower()] = v end
  end
  if (r.headers["content-type"] or ""):find("json", 1, true) and #r.body > 0 then r.json = agent.decode(r.body) end
  os.remove(hdr)
  os.remove(body)
  return r
end

Proc.get = Proc.request

-- Waits for the process to end; returns its exit status, or nil on timeout.
function Proc:exit_status(timeout)
  local rc = M.wait_for(function() return agent.read(self.dir .. "/rc") end, timeout or 10)
  return rc and tonumber(rc:match("%d+"))
end

-- SIGTERM, then SIGKILL if it does not end; removes its directory. Returns
-- the whole log, sanitizer reports at exit included.
function Proc:stop()
  if self:alive() then
    self:signal("TERM")
    if not self:exit_status(15) then
      self:signal("KILL")
      self:exit_status(5)
    end
  end
  local log = self:log()
  sh("rm -rf " .. quote(self.dir))
  return log
end

-- Fails when a log holds an AddressSanitizer/LeakSanitizer/UBSan report.
function M.assert_clean(log)
  local at = log:find("Sanitizer", 1, true) or log:find("runtime error:", 1, true)
  assert(at == nil, "sanitizer report in the agent's log:\n" .. log:sub(math.max(1, (at or 1) - 200), (at or 1) + 2000))
end

-- Starts the agent under `sh -c 'agent & wait'`, so that its exit status is
-- written to a file whatever way it ends. Same options as agent.start
-- (scripts, config, env); returns the agent object with :exit_status().
function M.spawn(opts)
  local dir = agent.tmpdir()
  local scripts = dir .. "/scripts"
  sh("mkdir -p " .. quote(scripts))
  for name, src in pairs(opts.scripts or {}) do agent.write(scripts .. "/" .. name, src) end
  local cfg = dir .. "/agent.lua"
  agent.write(cfg, opts.config or "return {}\n")
  local env, token = agent.admin_env(opts)
  for _ = 1, 5 do
    local port = 30000 + math.random(0, 9999)
    local inner = ("%s %s --config %s --scripts %s --listen 127.0.0.1:%d > %s 2>&1 & echo $! > %s; wait $!; echo $? > %s")
      :format(env, quote(BIN), quote(cfg), quote(scripts), port, quote(dir .. "/agent.log"),
        quote(dir .. "/pid"), quote(dir .. "/rc"))
    os.remove(dir .. "/rc")
    os.remove(dir .. "/pid")
    sh("sh -c " .. quote(inner) .. " >/dev/null 2>&1 &")
    local pid = M.wait_for(function() return tonumber(agent.read(dir .. "/pid") or "") end, 5)
    local a = setmetatable({ dir = dir, scripts = scripts, port = port, pid = pid, logfile = dir .. "/agent.log",
      admin_token = token }, Proc)
    local up = M.wait_for(function()
      if agent.read(dir .. "/rc") then return "exited" end
      local code = sh(("curl -s -o /dev/null -w '%%{http_code}' --max-time 1 http://127.0.0.1:%d/livez"):format(port))
      return code ~= "000" and code ~= "" and "up"
    end, 10)
    if up == "up" then return a end
    local log = agent.read(dir .. "/agent.log") or ""
    if not log:find("address already in use", 1, true) then error("agent did not start:\n" .. log) end
  end
  error("no free port found")
end

-- Runs the binary with args (a shell-quoted string); returns exit code,
-- stdout and stderr separately, and the elapsed seconds.
function M.run(args, env)
  local out, err = os.tmpname(), os.tmpname()
  local t0 = health.now()
  local _, code = sh(("%s %s %s > %s 2> %s"):format(env or "", quote(BIN), args, quote(out), quote(err)))
  local dt = health.now() - t0
  local o, e = agent.read(out) or "", agent.read(err) or ""
  os.remove(out)
  os.remove(err)
  return code, o, e, dt
end

return M
