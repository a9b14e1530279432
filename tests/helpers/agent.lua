-- tests/helpers/agent.lua: start the real healthagent binary on a temporary
-- scripts directory and config, talk to it over HTTP with curl, stop it.
-- Runs inside the agent's own runtime (busted --lua=healthagent), so waiting
-- uses health.sleep and never blocks the spec's loop for long.
--
--   local agent = require "helpers.agent"
--   local a = agent.start { scripts = { ["a.lua"] = "health.check{...}" }, config = "return {...}" }
--   local r = a:get("/readyz", { headers = { Accept = "application/health+json" } })
--   -- r.status, r.body, r.headers["content-type"], r.json (decoded when JSON)
--   a:stop()   -- SIGTERM, waits for exit; a.exit_code, a:log()
local M = {}

local BIN = os.getenv("HA_BIN") or "build/healthagent"

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, how, code = p:close()
  return out, code or 0, ok
end
M.sh = sh

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

function M.tmpdir()
  local d = sh("mktemp -d /tmp/ha-test.XXXXXX"):gsub("%s+$", "")
  return d
end

function M.write(path, content)
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
end

function M.read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Minimal JSON decoder for test assertions (objects, arrays, strings,
-- numbers, booleans, null -> M.null).
M.null = setmetatable({}, { __tostring = function() return "null" end })
local function decode(s)
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
M.decode = decode

local Agent = {}
Agent.__index = Agent

-- The admin endpoints (/-/) need a bearer token from every address. Agents
-- started here get this one (through HEALTHAGENT_TOKEN) unless the config
-- or env sets a token of its own or opts.admin_token is false, and their
-- requests to /-/ send it unless headers carry an Authorization or
-- opts.token is false.
M.ADMIN_TOKEN = "spec-admin-token-0123456789"

-- env with HEALTHAGENT_TOKEN added as described above; and the token used.
function M.admin_env(opts)
  local env = opts.env or ""
  if opts.admin_token == false or env:find("HEALTHAGENT_TOKEN", 1, true) or (opts.config or ""):find("token", 1, true) then
    return env, nil
  end
  return "HEALTHAGENT_TOKEN=" .. M.ADMIN_TOKEN .. " " .. env, M.ADMIN_TOKEN
end

-- headers for a request to path: the admin token added where described above.
function M.admin_headers(path, opts, token)
  local headers = opts.headers or {}
  if not token or opts.token == false or path:sub(1, 3) ~= "/-/" then return headers end
  for k in pairs(headers) do
    if k:lower() == "authorization" then return headers end
  end
  local h = { Authorization = "Bearer " .. token }
  for k, v in pairs(headers) do h[k] = v end
  return h
end

local function free_port()
  return 30000 + math.random(0, 9999)
end

-- Starts the agent. opts: scripts = { name = source } (or scripts_dir),
-- config = Lua source of a config file, args = { extra argv }, env = "K=V ...",
-- wait = false to not wait for the port. Raises if it does not come up.
function M.start(opts)
  opts = opts or {}
  local a = setmetatable({ dir = M.tmpdir() }, Agent)
  local env
  env, a.admin_token = M.admin_env(opts)
  a.scripts = opts.scripts_dir or (a.dir .. "/scripts")
  if not opts.scripts_dir then
    sh("mkdir -p " .. quote(a.scripts))
    for name, src in pairs(opts.scripts or {}) do
      M.write(a.scripts .. "/" .. name, src)
    end
  end
  for attempt = 1, 5 do
    a.port = opts.port or free_port()
    local args = { "--scripts", a.scripts, "--listen", "127.0.0.1:" .. a.port }
    if opts.config then
      local cfg = a.dir .. "/agent.lua"
      M.write(cfg, opts.config)
      table.insert(args, 1, cfg)
      table.insert(args, 1, "--config")
    end
    for _, x in ipairs(opts.args or {}) do args[#args + 1] = x end
    local qargs = {}
    for i, x in ipairs(args) do qargs[i] = quote(x) end
    a.logfile = a.dir .. "/agent.log"
    local cmd = ("%s exec %s %s > %s 2>&1 & echo $!"):format(env, quote(BIN), table.concat(qargs, " "),
      quote(a.logfile))
    a.pid = tonumber((sh("sh -c " .. quote(cmd))))
    if opts.wait == false then return a end
    local deadline = health.now() + 10
    while health.now() < deadline do
      if not a:alive() then break end
      local out = sh(("curl -s -o /dev/null -w '%%{http_code}' --max-time 1 http://127.0.0.1:%d/livez"):format(a.port))
      if out ~= "000" and out ~= "" then return a end
      health.sleep(0.02)
    end
    local log = a:log()
    if not log:find("address already in use", 1, true) then
      a:kill()
      error("agent did not start:\n" .. log)
    end
  end
  error("no free port found")
end

function Agent:alive()
  local _, code = sh("kill -0 " .. self.pid .. " 2>/dev/null")
  if code ~= 0 then return false end
  -- a zombie is not alive
  local stat = M.read("/proc/" .. self.pid .. "/stat") or ""
  return not stat:match("^%d+ %b() Z")
end

function Agent:log()
  return self.saved_log or M.read(self.logfile) or ""
end

-- Waits until the log contains text (plain) or the timeout passes.
function Agent:wait_log(text, timeout)
  local deadline = health.now() + (timeout or 5)
  while health.now() < deadline do
    if self:log():find(text, 1, true) then return true end
    health.sleep(0.02)
  end
  return false
end

-- One HTTP request. opts: method, headers = {k=v}, interface (source
-- address), body, http2 = true (prior knowledge), timeout (s).
function Agent:request(path, opts)
  opts = opts or {}
  local hdr, body = self.dir .. "/h", self.dir .. "/b"
  local args = { "curl", "-s", "-o", body, "-D", hdr, "-w", "'%{http_code}'", "--max-time", tostring(opts.timeout or 10) }
  if opts.method == "HEAD" then
    args[#args + 1] = "-I"
    args[4] = "/dev/null" -- curl -I would write the headers to the body file
  elseif opts.method then
    args[#args + 1] = "-X " .. opts.method
  end
  if opts.interface then args[#args + 1] = "--interface " .. opts.interface end
  if opts.http2 then args[#args + 1] = "--http2-prior-knowledge" end
  if opts.body then args[#args + 1] = "--data-binary " .. quote(opts.body) end
  for k, v in pairs(M.admin_headers(path, opts, self.admin_token)) do args[#args + 1] = "-H " .. quote(k .. ": " .. v) end
  args[#args + 1] = quote(("http://127.0.0.1:%d%s"):format(self.port, path))
  local t0 = health.now()
  local code = sh(table.concat(args, " "))
  local r = { status = tonumber(code), time = health.now() - t0, headers = {} }
  r.body = M.read(body) or ""
  for line in (M.read(hdr) or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then r.headers[k:lower()] = v end
  end
  if opts.method == "HEAD" then
    r.body = ""
  elseif (r.headers["content-type"] or ""):find("json", 1, true) and #r.body > 0 then
    r.json = decode(r.body)
  end
  os.remove(hdr)
  os.remove(body)
  return r
end

function Agent:get(path, opts)
  return self:request(path, opts)
end

-- n concurrent GETs; returns the list of HTTP codes.
function Agent:parallel(path, n, extra)
  local cmd = {}
  for i = 1, n do
    cmd[#cmd + 1] = ("curl -s -o /dev/null -w '%%{http_code}\\n' --max-time 10 %s http://127.0.0.1:%d%s &"):format(
      extra or "", self.port, path)
  end
  cmd[#cmd + 1] = "wait"
  local out = sh("sh -c " .. quote(table.concat(cmd, "\n")))
  local codes = {}
  for c in out:gmatch("%d+") do codes[#codes + 1] = tonumber(c) end
  return codes
end

function Agent:signal(sig)
  sh("kill -" .. sig .. " " .. self.pid .. " 2>/dev/null")
end

-- Waits for the process to exit; returns its exit code (or nil on timeout).
function Agent:wait_exit(timeout)
  local deadline = health.now() + (timeout or 10)
  while health.now() < deadline do
    if not self:alive() then
      -- the shell that started it is gone: read the code the log records
      local code = self:log():match("exit (%d+)%s*$")
      self.exit_code = tonumber(code)
      return self.exit_code or -1
    end
    health.sleep(0.02)
  end
  return nil
end

function Agent:stop()
  if self.pid and self:alive() then
    self:signal("TERM")
    if not self:wait_exit(15) then self:kill() end
  end
  self.saved_log = self:log()
  sh("rm -rf " .. quote(self.dir))
  -- sanitizer builds report into the agent's stderr: any report fails the spec
  for _, marker in ipairs { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                            "WARNING: ThreadSanitizer" } do
    if self.saved_log:find(marker, 1, true) then
      error("sanitizer report in the agent's log:\n" .. self.saved_log, 2)
    end
  end
  -- a handle left on either loop at exit is a leak, as open handles fail the unit specs
  if self.saved_log:find("loop not empty at exit", 1, true) then
    error("the agent left handles open at exit:\n" .. self.saved_log, 2)
  end
end

function Agent:kill()
  self:signal("KILL")
  self:wait_exit(5)
end

-- Runs the binary to completion (start-up failures): returns exit code and output.
function M.run(args, env)
  local out, code = sh(("%s %s %s 2>&1; echo \"rc=$?\""):format(env or "", quote(BIN), args))
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)

return M
