-- The command line a platform engineer expects: help and version as commands
-- and flags of every command, --log-level and the HEALTHAGENT_* environment,
-- the man page, probe's list of failing checks, the start-up line, and the
-- exit-code table of docs/commands.md, each code exercised.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/cli_spec.lua
local agent = require "helpers.agent"
local quote, write, sh = agent.quote, agent.write, agent.sh
local run = agent.run_split

local ROOT = os.getenv("HA_SOURCE_DIR") or "."
local BIN = agent.BIN
local COMMANDS = { "probe", "check", "lint", "report", "help", "version" }

local function scripts(files)
  local d = agent.tmpdir()
  for name, src in pairs(files) do write(d .. "/" .. name, src) end
  return d
end

local VERSION_LINE = "^healthagent %d+%.%d+%.%d+ %(commit [%w]+, built [%dT:Z-]+%)\n$"

describe("help and version", function()
  it("`help`, `--help` and `-h` print the usage with every command, exit 0", function()
    for _, args in ipairs { "help", "--help", "-h" } do
      local code, out, err = run(args)
      assert.equal(0, code, args)
      assert.equal("", err, args)
      assert.matches("^usage: healthagent ", out)
      for _, c in ipairs(COMMANDS) do assert.truthy(out:find("\n  " .. c .. " ", 1, true), args .. ": " .. c) end
      for _, v in ipairs { "HEALTHAGENT_CONFIG", "HEALTHAGENT_LOG_FORMAT", "HEALTHAGENT_LOG_LEVEL" } do
        assert.truthy(out:find(v, 1, true), v)
      end
    end
  end)

  it("every command takes --help and -h, and `help COMMAND` says the same", function()
    for _, c in ipairs { "probe", "check", "lint", "report", "version" } do
      local code, out, err = run(c .. " --help")
      assert.equal(0, code, c)
      assert.equal("", err, c)
      assert.matches("^usage: healthagent " .. c, out)
      assert.equal(out, select(2, run(c .. " -h")), c)
      assert.equal(out, select(2, run("help " .. c)), c)
    end
  end)

  it("`version`, `--version` and COMMAND --version print one version line", function()
    local code, line = run("version")
    assert.equal(0, code)
    assert.matches(VERSION_LINE, line)
    for _, args in ipairs { "--version", "probe --version", "check --version", "lint --version", "version --version" } do
      local c, out, err = run(args)
      assert.equal(0, c, args)
      assert.equal(line, out, args)
      assert.equal("", err, args)
    end
  end)

  it("exit 2 on an unknown command after help, or an argument to version", function()
    local code, out, err = run("help nothing")
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("healthagent: help: no command 'nothing' (commands: probe, check, lint, report, help, version)\n", err)
    code, _, err = run("version now")
    assert.equal(2, code)
    assert.equal("healthagent: version: unexpected argument 'now'\n", err)
  end)
end)

describe("the man page", function()
  local man = agent.read(ROOT .. "/docs/healthagent.1")

  it("names every option of every command's usage", function()
    local texts = {}
    for _, c in ipairs { "", "probe", "check", "lint" } do
      local _, out = run(c .. " --help")
      texts[#texts + 1] = out
    end
    local n = 0
    for _, t in ipairs(texts) do
      for opt in t:gmatch("%-%-[%w-]+") do
        n = n + 1
        assert.truthy(man:find(opt:gsub("%-", "\\-"), 1, true), "man page lacks " .. opt)
      end
    end
    assert.is_true(n >= 15, "options found: " .. n)
    for _, v in ipairs { "HEALTHAGENT_CONFIG", "HEALTHAGENT_LISTEN", "HEALTHAGENT_SCRIPTS", "HEALTHAGENT_TOKEN_FILE",
      "HEALTHAGENT_LOG_FORMAT", "HEALTHAGENT_LOG_LEVEL" } do
      assert.truthy(man:find(v, 1, true), v)
    end
  end)

  it("renders without warnings and is installed with the binary, with the editor annotations", function()
    local out, code = sh("groff -man -ww -z " .. quote(ROOT .. "/docs/healthagent.1") .. " 2>&1")
    assert.equal(0, code)
    assert.equal("", out)
    local build = BIN:match("^(.*)/[^/]+$")
    local prefix = agent.tmpdir()
    out, code = sh(("cmake --install %s --prefix %s 2>&1"):format(quote(build), quote(prefix)))
    assert.equal(0, code, out)
    assert.equal(man, agent.read(prefix .. "/share/man/man1/healthagent.1"))
    assert.truthy(agent.read(prefix .. "/bin/healthagent"))
    -- editor support: the annotations and the .luarc.json that points at them
    assert.equal(agent.read(ROOT .. "/meta/health.lua"), agent.read(prefix .. "/share/healthagent/meta/health.lua"))
    assert.truthy(agent.read(prefix .. "/share/healthagent/meta/health/tcp.lua"))
    local luarc = agent.decode(agent.read(prefix .. "/share/healthagent/meta/.luarc.json"))
    assert.truthy(table.concat(luarc["workspace.library"], " "):find("/share/healthagent/meta", 1, true))
    local page = sh("MANWIDTH=80 man -l " .. quote(prefix .. "/share/man/man1/healthagent.1") .. " 2>/dev/null")
    assert.truthy(page:find("EXIT STATUS", 1, true), page)
    sh("rm -rf " .. quote(prefix))
  end)
end)

describe("log level, log format and HEALTHAGENT_CONFIG", function()
  local dir
  setup(function()
    dir = scripts { ["a.lua"] = 'health.check { name = "a", probes = "liveness", run = function() return true end }\n' }
  end)
  teardown(function() sh("rm -rf " .. quote(dir)) end)

  -- Starts the agent, waits until it serves, stops it; returns its log.
  local function serve_log(args, env)
    local a = agent.start { scripts_dir = dir, args = args, env = env, config = 'return { shutdown_delay = "0s" }' }
    assert.equal(200, a:get("/livez").status)
    a:stop()
    return a:log()
  end

  it("--log-level warn drops the info lines; HEALTHAGENT_LOG_LEVEL does the same; the flag wins", function()
    local log = serve_log({ "--log-level", "warn" })
    assert.falsy(log:find("serving 1 check", 1, true), log)
    log = serve_log({}, "HEALTHAGENT_LOG_LEVEL=warn")
    assert.falsy(log:find("serving 1 check", 1, true), log)
    log = serve_log({ "--log-level", "info" }, "HEALTHAGENT_LOG_LEVEL=error")
    assert.truthy(log:find("serving 1 check", 1, true), log)
    log = serve_log({}, "HEALTHAGENT_LOG_LEVEL=debug")
    assert.truthy(log:find("serving 1 check", 1, true), log)
  end)

  it("HEALTHAGENT_LOG_FORMAT=json makes every line a JSON object; --log-format wins", function()
    local log = serve_log({}, "HEALTHAGENT_LOG_FORMAT=json")
    local n = 0
    for line in log:gmatch("[^\n]+") do
      local j = agent.decode(line)
      assert.truthy(j.time and j.level and j.msg, line)
      n = n + 1
    end
    assert.is_true(n >= 2, log)
    log = serve_log({ "--log-format", "text" }, "HEALTHAGENT_LOG_FORMAT=json")
    assert.matches("\n%d+%-%d+%-%d+T[%d:.]+Z info  healthagent 0", "\n" .. log)
  end)

  it("bad values exit 2 with one line naming the variable or flag", function()
    for _, case in ipairs {
      { "", "HEALTHAGENT_LOG_LEVEL=loud", "healthagent: HEALTHAGENT_LOG_LEVEL: want debug, info, warn or error, got 'loud'\n" },
      { "", "HEALTHAGENT_LOG_FORMAT=xml", "healthagent: HEALTHAGENT_LOG_FORMAT: want text or json, got 'xml'\n" },
      { "--log-level loud", "", "healthagent: --log-level: expected debug, info, warn or error, got 'loud'\n" },
      { "--log-level", "", "healthagent: option '--log-level' needs a value\n" },
    } do
      local code, out, err = run("--scripts " .. quote(dir) .. " --listen 127.0.0.1:1 " .. case[1], case[2])
      assert.equal(2, code, case[3])
      assert.equal("", out)
      assert.equal(case[3], err)
    end
  end)

  it("HEALTHAGENT_CONFIG is the config file of the agent and of every command; --config wins", function()
    local cfg, bad = dir .. "/../cfg-" .. math.random(1e6) .. ".lua", dir .. "/../bad-" .. math.random(1e6) .. ".lua"
    write(bad, "return { listen = 7 }\n")
    local code, _, err = run("--scripts " .. quote(dir), "HEALTHAGENT_CONFIG=" .. quote(bad))
    assert.equal(2, code)
    assert.matches("^healthagent: " .. bad:gsub("%p", "%%%0") .. ": field 'listen'", err)
    for _, c in ipairs { "probe", "check --scripts " .. quote(dir), "lint " .. quote(dir) } do
      code, _, err = run(c, "HEALTHAGENT_CONFIG=" .. quote(bad))
      assert.is_true(code == 1 or code == 2, c)
      assert.truthy(err:find(bad .. ": field 'listen'", 1, true), c .. ": " .. err)
    end
    local a = agent.start { scripts_dir = dir }
    write(cfg, ('return { listen = "127.0.0.1:%d", log_level = "warn" }\n'):format(a.port))
    assert.equal(0, (run("probe --probe liveness", "HEALTHAGENT_CONFIG=" .. quote(cfg))))
    assert.equal(0, (run("probe --probe liveness --config " .. quote(cfg), "HEALTHAGENT_CONFIG=" .. quote(bad))))
    a:stop()
    os.remove(cfg)
    os.remove(bad)
  end)
end)

describe("the start-up line and /info", function()
  it("lists every listen address and names the scripts directory as an absolute path", function()
    local base = agent.tmpdir()
    sh("mkdir -p " .. quote(base .. "/checks"))
    write(base .. "/checks/a.lua", 'health.check { name = "a", run = function() return true end }\n')
    local log = base .. "/agent.log"
    local p1, p2, pid, line
    for _ = 1, 5 do -- random ports: another may be taken
      p1, p2 = 30000 + math.random(0, 4999), 35000 + math.random(0, 4999)
      pid = sh(("cd %s && exec %s --scripts ./checks --listen 127.0.0.1:%d --listen 127.0.0.1:%d > %s 2>&1 & echo $!")
        :format(quote(base), quote(BIN), p1, p2, quote(log))):match("%d+")
      line = agent.wait_until(function()
        local text = agent.read(log) or ""
        return text:match("[^\n]*serving[^\n]*") or text:match("address already in use")
      end, 5)
      if line ~= "address already in use" then break end
    end
    assert.truthy(line, agent.read(log))
    assert.truthy(line:find(("serving 1 check(s) from %s/checks on 127.0.0.1:%d, 127.0.0.1:%d"):format(base, p1, p2), 1,
      true), line)
    local info = agent.decode(sh(("curl -s --max-time 5 http://127.0.0.1:%d/info"):format(p2)))
    assert.equal(base .. "/checks", info.scripts.dir)
    sh("kill -INT " .. pid .. "; sleep 0.1; kill -INT " .. pid .. " 2>/dev/null")
    sh("rm -rf " .. quote(base))
  end)
end)

describe("healthagent probe on a failing probe", function()
  local a
  setup(function()
    a = agent.start {
      scripts = {
        ["a.lua"] = [[
          health.check { name = "fine", run = function() return true, "ok" end }
          health.check { name = "orders-db", run = function() return false, "connection \"refused\"\nby 10.0.0.7" end }
          health.check { name = "cache", run = function() error("cache: no route") end }
          health.check { name = "soft", critical = false, run = function() return false, "cold" end }
          health.check { name = "late", initial_delay = "1h", run = function() return true end }
        ]],
      },
      config = 'return { shutdown_delay = "0s" }',
    }
  end)
  teardown(function() agent.assert_clean(a:stop()) end)

  it("prints the status, then each failing check with its output, one per line", function()
    local url = ("http://127.0.0.1:%d/readyz"):format(a.port)
    local code, out, err = run("probe " .. quote(url))
    assert.equal(1, code)
    assert.equal("", out)
    local lines = {}
    for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("healthagent probe: " .. url .. ": HTTP 503", lines[1])
    table.remove(lines, 1)
    table.sort(lines)
    assert.same({
      "  DOWN  cache: " .. a.scripts .. "/a.lua:3: cache: no route",
      '  DOWN  orders-db: connection "refused" by 10.0.0.7',
      "  INIT  late",
    }, lines)
  end)

  it("an answer without outputs lists names and statuses; a body that is not the agent's shows its start", function()
    local url = ("http://127.0.0.1:%d/readyz?exclude=cache&exclude=late"):format(a.port)
    local code, _, err = run("probe " .. quote(url))
    assert.equal(1, code)
    assert.equal("healthagent probe: " .. url .. ": HTTP 503\n  DOWN  orders-db: connection \"refused\" by 10.0.0.7\n", err)
    local env = dofile((os.getenv("HA_HARNESS_DIR") or "/tmp/ha-harness") .. "/env.lua")
    local plain = ("http://127.0.0.1:%d/status/503"):format(env.HA_HTTP_PORT)
    code, _, err = run("probe " .. quote(plain))
    assert.equal(1, code)
    assert.equal("healthagent probe: " .. plain .. ": HTTP 503: status 503\n", err)
    local missing = ("http://127.0.0.1:%d/nowhere"):format(a.port)
    code, _, err = run("probe " .. quote(missing))
    assert.equal(1, code)
    assert.equal("healthagent probe: " .. missing .. ": HTTP 404: not found\n", err)
  end)
end)

describe("healthagent check exit codes", function()
  it("a check whose exec.run was killed by its timeout does not turn the exit code into 3", function()
    local d = scripts {
      ["a.lua"] = [[
        local exec = require "health.exec"
        health.check { name = "killed", critical = false, timeout = "200ms", run = function()
          local r, err = exec.run({ "sh", "-c", "sleep 5 & sleep 5" })
          return r ~= nil, err
        end }
      ]],
    }
    for _ = 1, 5 do
      local code, out, err, dt = run("check --scripts " .. quote(d))
      assert.equal(0, code, err)
      assert.matches("^WARN  killed +[%d.]+ ms  %(non%-critical%)  timeout after 200ms\n", out)
      assert.equal("", err)
      assert.is_true(dt < 2, "took " .. dt)
    end
    write(d .. "/a.lua", (agent.read(d .. "/a.lua"):gsub("critical = false, ", "")))
    local code, _, err = run("check --scripts " .. quote(d))
    assert.equal(1, code, err)
    assert.equal("", err)
    sh("rm -rf " .. quote(d))
  end)

  it("the JUnit failure body names the location once", function()
    local d = scripts {
      ["a.lua"] = 'health.check { name = "bad", run = function() return false, "db down" end }\n'
        .. 'health.check { name = "err", run = function()\n  error("boom")\nend }\n',
    }
    local code, out = run("check --format junit --scripts " .. quote(d))
    assert.equal(1, code)
    assert.truthy(out:find('<failure type="DOWN" message="db down">' .. d .. "/a.lua:1: db down</failure>", 1, true), out)
    assert.truthy(out:find('<failure type="DOWN" message="' .. d .. '/a.lua:3: boom">' .. d .. "/a.lua:3: boom</failure>",
      1, true), out)
    sh("rm -rf " .. quote(d))
  end)
end)

describe("the exit-code table of docs/commands.md", function()
  local grpc_mode = select(2, run("probe --help")):find("--grpc", 1, true) and "probe --grpc" or nil
  -- Every row of the table, and where it is exercised: spec file and the
  -- description of the `it` that does it.
  local where = {
    ["healthagent (serve) 0"] = { "lifecycle", "closes, exits 0" },
    ["healthagent (serve) 1"] = { "lifecycle", "a second signal exits at once" },
    ["healthagent (serve) 2"] = { "cli", "bad values exit 2" },
    ["healthagent probe (HTTP) 0"] = { "commands", "exits 0 on 2xx" },
    ["healthagent probe (HTTP) 1"] = { "commands", "exits 1 on 503" },
    ["healthagent check 0"] = { "commands", "a non-critical failure alone exits 0" },
    ["healthagent check 1"] = { "commands", "exits 1 when a critical one fails" },
    ["healthagent check 2"] = { "commands", "exits 2 when the scripts do not load" },
    ["healthagent lint 0"] = { "commands", "exits 0 on good scripts" },
    ["healthagent lint 1"] = { "commands", "and exits 1" },
    ["healthagent lint 2"] = { "commands", "exits 2 when the directory cannot be read" },
    ["healthagent report 0"] = { "pushed", "takes reports from `healthagent report`" },
    ["healthagent report 1"] = { "pushed", "refused reports exit 1" },
    ["healthagent report 2"] = { "pushed", "bad usage 2" },
    ["healthagent report 3"] = { "pushed", "no agent 3" },
    ["healthagent help, healthagent version 0"] = { "cli", "`version`, `--version` and COMMAND --version" },
    ["healthagent help, healthagent version 2"] = { "cli", "exit 2 on an unknown command" },
    ["healthagent FILE.lua 0"] = { "cli", "the runner's exit codes" },
    ["healthagent FILE.lua N"] = { "cli", "the runner's exit codes" },
    ["healthagent FILE.lua 1"] = { "cli", "the runner's exit codes" },
    -- no script can leave a handle open (the runner closes everything): the
    -- code guards the agent's own leaks in every unit spec run
    ["healthagent FILE.lua 3"] = false,
    -- the gRPC mode's codes are grpc_health_probe's; its own spec exercises
    -- them (once `probe --help` lists --grpc, that spec must name the mode)
    ["healthagent probe --grpc 0"] = { "grpc_server", grpc_mode },
    ["healthagent probe --grpc 1"] = { "grpc_server", grpc_mode },
    ["healthagent probe --grpc 2"] = { "grpc_server", grpc_mode },
    ["healthagent probe --grpc 3"] = { "grpc_server", grpc_mode },
    ["healthagent probe --grpc 4"] = { "grpc_server", grpc_mode },
  }

  it("has a row for every code and each row is exercised", function()
    local doc = agent.read(ROOT .. "/docs/commands.md")
    local section = doc:match("\n## Exit codes\n(.-)\n## ")
    local rows, command = {}, nil
    for cmd, code in section:gmatch("\n|%s*([^|\n]-)%s*|%s*(%w+)%s*|") do
      cmd = cmd:gsub("`", "")
      if cmd ~= "" then command = cmd end
      if code ~= "code" then rows[#rows + 1] = command .. " " .. code end
    end
    assert.is_true(#rows >= 20, #rows)
    local seen = {}
    for _, row in ipairs(rows) do
      seen[row] = true
      assert.is_not_nil(where[row], "no test named for the row '" .. row .. "'")
      local w = where[row]
      local spec = w and agent.read(ROOT .. "/tests/integration/" .. w[1] .. "_spec.lua")
      if w and w[2] then
        assert.truthy(spec and spec:find(w[2], 1, true), row .. ": no such test in " .. w[1] .. "_spec.lua")
      end
    end
    for row in pairs(where) do assert.truthy(seen[row], "the table lacks '" .. row .. "'") end
  end)

  it("the runner's exit codes: 0 at the end, N from os.exit(N), 1 on an error", function()
    local d = agent.tmpdir()
    for _, case in ipairs {
      { "local x = 1\n", 0 },
      { "os.exit()\n", 0 },
      { "os.exit(true)\n", 0 },
      { "os.exit(false)\n", 1 },
      { "health.sleep(0.01) os.exit(7)\n", 7 },
      { "error('broken')\n", 1 },
      { "local = 1\n", 1 },
    } do
      write(d .. "/s.lua", case[1])
      local code, _, err = run(quote(d .. "/s.lua"))
      assert.equal(case[2], code, case[1] .. err)
    end
    sh("rm -rf " .. quote(d))
  end)
end)
