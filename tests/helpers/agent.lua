-- tests/helpers/agent.lua: the healthagent binary under test, for the
-- integration specs: start it on a temporary scripts directory and config
-- (its exact exit status recorded), talk to it over HTTP with curl, probe it
-- as kubelet does, read its log, stop it and fail on what its log says went
-- wrong at exit; and run its one-shot commands. Builds on helpers.spec,
-- whose names (wait_until, wait_for, sh, quote, read, write, tmpdir, decode,
-- null) it also exports, so that a spec needs one require.
--
--   local agent = require "helpers.agent"
--   local a = agent.start { scripts = { ["a.lua"] = "health.check{...}" }, config = "return {...}" }
--   local r = a:get("/readyz", { headers = { Accept = "application/health+json" } })
--   -- r.status, r.body, r.headers["content-type"], r.json (decoded when JSON)
--   a:stop()   -- SIGTERM, waits for exit, raises on sanitizer reports and leaked handles
local spec = require "helpers.spec"

local M = {}
for _, k in ipairs { "wait_until", "wait_for", "sh", "quote", "tmpdir", "write", "read", "decode", "null" } do M[k] = spec[k] end
local sh, quote, wait_until = spec.sh, spec.quote, spec.wait_until

M.BIN = os.getenv("HA_BIN") or "build/healthagent"

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

-- Fails (at the caller's caller) when log holds a sanitizer report
-- (AddressSanitizer, LeakSanitizer, ThreadSanitizer, UBSan's "runtime
-- error:"), quoting the report.
function M.assert_clean(log, level)
  local at = log:find("Sanitizer", 1, true) or log:find("runtime error:", 1, true)
  if at then
    error("sanitizer report in the agent's log:\n" .. log:sub(math.max(1, at - 200), at + 2000), (level or 1) + 1)
  end
end

local Agent = {}
Agent.__index = Agent

-- Starts the agent under `sh -c 'agent & wait'`, so that its exit status is
-- written to a file however it ends. opts: scripts = { name = source } (or
-- scripts_dir), config = Lua source of a config file, args = { extra argv },
-- env = "K=V ...", port, admin_token (see M.ADMIN_TOKEN), wait = false to
-- not wait for the port. Retries on another port when the one drawn is in
-- use; raises if the agent does not come up (with its log).
function M.start(opts)
  opts = opts or {}
  local a = setmetatable({ dir = spec.tmpdir() }, Agent)
  local env
  env, a.admin_token = M.admin_env(opts)
  a.scripts = opts.scripts_dir or (a.dir .. "/scripts")
  if not opts.scripts_dir then
    sh("mkdir -p " .. quote(a.scripts))
    for name, src in pairs(opts.scripts or {}) do
      spec.write(a.scripts .. "/" .. name, src)
    end
  end
  a.logfile = a.dir .. "/agent.log"
  local rcfile, pidfile = a.dir .. "/rc", a.dir .. "/pid"
  for _ = 1, 5 do
    a.port = opts.port or 30000 + math.random(0, 9999)
    local args = { "--scripts", a.scripts, "--listen", "127.0.0.1:" .. a.port }
    if opts.config then
      local cfg = a.dir .. "/agent.lua"
      spec.write(cfg, opts.config)
      table.insert(args, 1, cfg)
      table.insert(args, 1, "--config")
    end
    for _, x in ipairs(opts.args or {}) do args[#args + 1] = x end
    local qargs = {}
    for i, x in ipairs(args) do qargs[i] = quote(x) end
    local inner = ("%s %s %s > %s 2>&1 & echo $! > %s; wait $!; echo $? > %s"):format(env, quote(M.BIN),
      table.concat(qargs, " "), quote(a.logfile), quote(pidfile), quote(rcfile))
    os.remove(rcfile)
    os.remove(pidfile)
    sh("sh -c " .. quote(inner) .. " >/dev/null 2>&1 &")
    a.pid = wait_until(function() return tonumber(spec.read(pidfile) or "") end, 5)
    if opts.wait == false then return a end
    local up = wait_until(function()
      if not a:alive() then return "exited" end
      local code = sh(("curl -s -o /dev/null -w '%%{http_code}' --max-time 1 http://127.0.0.1:%d/livez"):format(a.port))
      return code ~= "000" and code ~= "" and "up"
    end, 10)
    if up == "up" then return a end
    local log = a:log()
    if not log:find("address already in use", 1, true) then
      a:kill()
      error("agent did not start:\n" .. log)
    end
  end
  error("no free port found")
end

-- True until the agent has exited (its exit status is recorded), and
-- false once stop() has run (it removes the directory the status is in).
function Agent:alive()
  if self.stopped then return false end
  return spec.read(self.dir .. "/rc") == nil
end

function Agent:log()
  return self.saved_log or spec.read(self.logfile) or ""
end

-- Waits until the log contains text (plain) or timeout seconds (default 5)
-- pass; returns whether it did.
function Agent:wait_log(text, timeout)
  return wait_until(function() return self:log():find(text, 1, true) ~= nil end, timeout)
end

-- One HTTP request. opts: method (HEAD too), headers = {k=v}, interface
-- (source address), body, http2 = true (prior knowledge), timeout (s,
-- default 10). Returns {status (0 when no answer), time (s), headers (names
-- in lower case), body, json (decoded when the answer is JSON)}.
function Agent:request(path, opts)
  opts = opts or {}
  local hdr, body = os.tmpname(), os.tmpname()
  local args = { "curl", "-s", "-o", quote(body), "-D", quote(hdr), "-w", "'%{http_code}'", "--max-time",
    tostring(opts.timeout or 10) }
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
  local r = { status = tonumber(code) or 0, time = health.now() - t0, headers = {} }
  r.body = spec.read(body) or ""
  for line in (spec.read(hdr) or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then r.headers[k:lower()] = v end
  end
  if opts.method == "HEAD" then
    r.body = ""
  elseif (r.headers["content-type"] or ""):find("json", 1, true) and #r.body > 0 then
    r.json = spec.decode(r.body)
  end
  os.remove(hdr)
  os.remove(body)
  return r
end

Agent.get = Agent.request

-- A kubelet-style prober in the background, outside this process: curl GETs
-- path every period seconds for secs seconds, 1 s client timeout, a new
-- connection each. Returns a function that waits for it and gives the list
-- of { code, seconds } (code 0: no answer in time).
function Agent:probe_in_background(path, period, secs)
  local f = self.dir .. "/prober" .. math.random(1e6)
  local script = ([[end=$(( $(date +%%s) + %d )); while [ $(date +%%s) -lt $end ]; do
    curl -s -o /dev/null -w '%%{http_code} %%{time_total}\n' --max-time 1 http://127.0.0.1:%d%s; echo; sleep %s; done > %s; echo done > %s.done]])
    :format(secs, self.port, path, period, f, f)
  sh("(sh -c " .. quote(script) .. " >/dev/null 2>&1 &)")
  return function()
    assert(wait_until(function() return spec.read(f .. ".done") end, secs + 10), "prober did not finish")
    local out = {}
    for code, t in (spec.read(f) or ""):gmatch("(%d+) ([%d.]+)") do
      out[#out + 1] = { tonumber(code), tonumber(t) }
    end
    return out
  end
end

-- n concurrent GETs; returns the list of HTTP codes.
function Agent:parallel(path, n, extra)
  local cmd = {}
  for _ = 1, n do
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

-- Waits for the process to end; returns its exit status (128 + N when
-- signal N ended it), or nil when timeout seconds (default 10) pass first.
function Agent:wait_exit(timeout)
  local rc = wait_until(function() return spec.read(self.dir .. "/rc") end, timeout or 10)
  self.exit_code = rc and tonumber(rc:match("%d+"))
  return self.exit_code
end

-- SIGTERM, then SIGKILL if it does not end within 15 s; removes its
-- directory and returns the whole log. Raises when the log holds a sanitizer
-- report, or says a loop was not empty at exit (a handle left open is a
-- leak, as open handles fail the unit specs).
function Agent:stop()
  if self.pid and self:alive() then
    self:signal("TERM")
    if not self:wait_exit(15) then self:kill() end
  end
  self.saved_log = self:log()
  self.stopped = true
  sh("rm -rf " .. quote(self.dir))
  M.assert_clean(self.saved_log, 2)
  if self.saved_log:find("loop not empty at exit", 1, true) then
    error("the agent left handles open at exit:\n" .. self.saved_log, 2)
  end
  return self.saved_log
end

function Agent:kill()
  self:signal("KILL")
  self:wait_exit(5)
end

-- Runs the binary with args (a shell-quoted string) to completion, env
-- ("K=V ..." or a command prefix such as "timeout 10") before it. Returns
-- its exit status (128 + N when signal N ended it), its output (stdout and
-- stderr interleaved, as a terminal shows them), and the elapsed seconds.
function M.run(args, env)
  local out = os.tmpname()
  local t0 = health.now()
  local rc = sh(("%s %s %s > %s 2>&1; echo $?"):format(env or "", quote(M.BIN), args, quote(out)))
  local dt = health.now() - t0
  local o = spec.read(out) or ""
  os.remove(out)
  return tonumber(rc:match("(%d+)%s*$")), o, dt
end

-- M.run with stdout and stderr apart: returns exit status, stdout, stderr
-- and the elapsed seconds.
function M.run_split(args, env)
  local out, err = os.tmpname(), os.tmpname()
  local t0 = health.now()
  local rc = sh(("%s %s %s > %s 2> %s; echo $?"):format(env or "", quote(M.BIN), args, quote(out), quote(err)))
  local dt = health.now() - t0
  local o, e = spec.read(out) or "", spec.read(err) or ""
  os.remove(out)
  os.remove(err)
  return tonumber(rc:match("(%d+)%s*$")), o, e, dt
end

-- --- probing like kubelet -----------------------------------------------------
-- Sends GET <path> every `period` seconds over a new connection each time
-- (kubelet does not reuse them), gives up on an answer after `timeout`
-- (kubelet's timeoutSeconds, 1 s by default) and keeps kubelet's
-- consecutive-failure count. Unlike one kubelet worker it does not wait for
-- an answer before the next probe: each probe is its own task, so a slow
-- answer shows as latency, not as fewer probes.
--
--   local res = agent.probe { port = a.port, paths = { "/readyz", "/livez" }, seconds = 4 }
--   res["/readyz"].p99, .max, .unanswered, .codes[200], .tripped, .answers[i] = {code=, body=, time=, at=}

-- The q-quantile (0..1) of the sorted list xs, nearest rank.
function M.quantile(xs, q)
  if #xs == 0 then return 0 end
  local i = math.ceil(q * #xs)
  return xs[math.max(1, math.min(#xs, i))]
end

-- One probe: {code=, body=, time= seconds, at= seconds since start, err=}
-- with code = nil when no answer came within the timeout.
local function probe_once(url, opts, t_start)
  local http = require "health.http"
  local t0 = health.now()
  local r, err = http.get(url, { timeout = opts.timeout, headers = opts.headers })
  local t1 = health.now()
  local a = { at = t0 - t_start, time = t1 - t0, err = err }
  if r then
    a.code, a.body = r.status, r.body
    a.time = r.time_ms and r.time_ms / 1000 or a.time
  end
  return a
end

-- Probes every path of opts.paths on 127.0.0.1:opts.port every opts.period
-- seconds (default 0.1) for opts.seconds (default 3), each probe with
-- opts.timeout (default 1 s) and opts.headers. Returns per path: answers
-- (in sending order), n, unanswered, codes (code -> count), sorted times,
-- p50, p99, max, and tripped = true when opts.failure_threshold (default 3)
-- consecutive probes failed (no answer, or a code outside 200..399), as
-- kubelet counts. HA_PROBER_REPORT=1 prints a line per path to stderr.
function M.probe(opts)
  local testing = require "health.testing"
  local period, seconds = opts.period or 0.1, opts.seconds or 3
  local popts = { timeout = opts.timeout or 1, headers = opts.headers }
  local threshold = opts.failure_threshold or 3
  local tasks = {}
  local t_start = health.now()
  local k = 0
  while health.now() - t_start < seconds do
    for _, path in ipairs(opts.paths) do
      local url = ("http://127.0.0.1:%d%s"):format(opts.port, path)
      k = k + 1
      tasks[k] = { path = path, h = testing.spawn(probe_once, url, popts, t_start) }
    end
    health.sleep(period)
  end
  local res = {}
  for _, path in ipairs(opts.paths) do
    res[path] = { answers = {}, codes = {}, times = {}, n = 0, unanswered = 0, tripped = false, streak = 0 }
  end
  for _, t in ipairs(tasks) do
    local ok, a = t.h:wait()
    assert(ok, a)
    local r = res[t.path]
    r.n = r.n + 1
    r.answers[#r.answers + 1] = a
    r.times[#r.times + 1] = a.time
    if a.code then
      r.codes[a.code] = (r.codes[a.code] or 0) + 1
    else
      r.unanswered = r.unanswered + 1
    end
    if a.code and a.code >= 200 and a.code < 400 then
      r.streak = 0
    else
      r.streak = r.streak + 1
      if r.streak >= threshold then r.tripped = true end
    end
  end
  for path, r in pairs(res) do
    table.sort(r.times)
    r.p50, r.p99, r.max = M.quantile(r.times, 0.5), M.quantile(r.times, 0.99), r.times[#r.times] or 0
    if os.getenv("HA_PROBER_REPORT") then
      io.stderr:write(("prober %-28s %-12s n=%d unanswered=%d p50=%.0fms p99=%.0fms max=%.0fms\n"):format(
        opts.label or "", path, r.n, r.unanswered, r.p50 * 1000, r.p99 * 1000, r.max * 1000))
    end
  end
  return res
end

-- A one-line summary of one path's result of M.probe, for assertion messages.
function M.describe_probe(r)
  local codes = {}
  for c, n in pairs(r.codes) do codes[#codes + 1] = c .. "x" .. n end
  table.sort(codes)
  return ("n=%d unanswered=%d codes=%s p50=%.0fms p99=%.0fms max=%.0fms"):format(r.n, r.unanswered,
    table.concat(codes, ","), r.p50 * 1000, r.p99 * 1000, r.max * 1000)
end

math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)

return M
