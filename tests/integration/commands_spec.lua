-- The one-shot commands: `probe` (exit codes, reasons, timeout, default URL,
-- speed), `check` (formats, exit codes, --only, load errors) and `lint`.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/commands_spec.lua
local agent = require "helpers.agent"
local quote, write = agent.quote, agent.write
local run = agent.run_split

local function scripts(files)
  local d = agent.tmpdir()
  for name, src in pairs(files) do write(d .. "/" .. name, src) end
  return d
end

describe("healthagent probe", function()
  local a
  setup(function()
    a = agent.start {
      scripts = {
        ["a.lua"] = [[
          health.check { name = "up", probes = { "liveness", "startup" }, run = function() return true end }
          health.check { name = "down", probes = "readiness", run = function() return false, "db unreachable" end }
          health.check { name = "slow", probes = "readiness", ttl = 0, timeout = "5s",
                         run = function() health.sleep(2) return true end }
        ]],
      },
      config = 'return { shutdown_delay = "0s" }',
    }
  end)
  teardown(function() agent.assert_clean(a:stop()) end)

  local function url(path) return ("http://127.0.0.1:%d%s"):format(a.port, path) end

  it("exits 0 on 2xx, quietly", function()
    local code, out, err = run("probe " .. quote(url("/livez")))
    assert.equal(0, code)
    assert.equal("", out)
    assert.equal("", err)
  end)

  it("exits 1 on 503 with the status and the reason on stderr", function()
    local code, out, err = run("probe " .. quote(url("/readyz/down")))
    assert.equal(1, code)
    assert.equal("", out)
    assert.equal("healthagent probe: " .. url("/readyz/down") .. ": HTTP 503: db unreachable\n", err)
    a:request("/-/ready", { method = "PUT", body = '{"ready":false,"reason":"maintenance"}' })
    agent.wait_until(function() return a:get("/readyz").status == 503 end, 2)
    code, out, err = run("probe " .. quote(url("/readyz?exclude=slow&exclude=down")))
    assert.equal(1, code)
    assert.equal("healthagent probe: " .. url("/readyz?exclude=slow&exclude=down") .. ": HTTP 503: maintenance\n", err)
    a:request("/-/ready", { method = "PUT", body = '{"ready":true}' })
  end)

  it("exits 1 when nothing listens, and on a timeout, within the timeout", function()
    local code, _, err = run("probe http://127.0.0.1:1/livez")
    assert.equal(1, code)
    assert.equal("healthagent probe: http://127.0.0.1:1/livez: connect: connection refused\n", err)
    local dt
    code, _, err, dt = run("probe --timeout 300ms " .. quote(url("/readyz/slow")))
    assert.equal(1, code)
    assert.equal("healthagent probe: " .. url("/readyz/slow") .. ": timeout waiting for the response\n", err)
    assert.is_true(dt >= 0.29 and dt < 1.0, "took " .. dt)
  end)

  it("builds the default URL from the listen address and --probe", function()
    local env = ("HEALTHAGENT_LISTEN=0.0.0.0:%d"):format(a.port)
    assert.equal(0, (run("probe --probe liveness", env)))
    assert.equal(0, (run("probe --probe startup", env)))
    local code, _, err = run("probe --timeout 300ms", env) -- readiness by default: DOWN
    assert.equal(1, code)
    assert.truthy(err:find(url("/readyz"), 1, true), err)
    -- a config file's listen works the same
    local cfg = os.tmpname()
    write(cfg, ('return { listen = "127.0.0.1:%d" }'):format(a.port))
    assert.equal(0, (run("probe --probe liveness --config " .. quote(cfg))))
    os.remove(cfg)
  end)

  it("refuses bad usage with exit 1 (Docker reserves 2)", function()
    for _, args in ipairs {
      "--probe nothing", "--timeout soon", "https://127.0.0.1/livez", "ftp://x", "--bogus 1", "http://a/ http://b/",
    } do
      local code, _, err = run("probe " .. args)
      assert.equal(1, code, args)
      assert.matches("^healthagent probe: ", err)
    end
  end)

  it("takes a few milliseconds on loopback and starts no Lua", function()
    local n, t0 = 20, health.now()
    for _ = 1, n do assert.equal(0, (run("probe " .. quote(url("/livez"))))) end
    local per = (health.now() - t0) / n
    print(("\n    probe: %.1f ms per run (process start included)"):format(per * 1000))
    -- a sanitized binary takes longer just to start
    local bound = (os.getenv("HA_SANITIZE") or "") ~= "" and 0.3 or 0.1
    assert.is_true(per < bound, "probe took " .. per .. " s")
  end)
end)

describe("healthagent check", function()
  local dir
  setup(function()
    dir = scripts {
      ["a.lua"] = [[
        health.check { name = "ok", run = function() return true, "fine" end }
        health.check { name = "bad", run = function() return false, "db <down> & out", { code = 7 } end }
        health.check { name = "soft", critical = false, run = function() return false, "cache cold" end }
        health.check { name = "meh", run = function() return health.warn("91% full") end }
        health.check { name = "late", initial_delay = "1h", timeout = "300ms",
                       run = function() health.sleep(1) return true end }
      ]],
    }
  end)
  teardown(function() os.execute("rm -rf " .. quote(dir)) end)

  it("runs every check once, concurrently, and exits 1 when a critical one fails (text)", function()
    local code, out, _, dt = run("check --scripts " .. quote(dir))
    assert.equal(1, code)
    assert.is_true(dt < 1.0, "checks must run concurrently: " .. dt)
    assert.matches("\nDOWN  bad +[%d.]+ ms  db <down> & out\n", "\n" .. out)
    assert.matches("\nDOWN  late +[%d.]+ ms  timeout after 300ms\n", "\n" .. out)
    assert.matches("\nWARN  meh +[%d.]+ ms  91%% full\n", "\n" .. out)
    assert.matches("\nUP    ok +[%d.]+ ms  fine\n", "\n" .. out)
    assert.matches("\nWARN  soft +[%d.]+ ms  %(non%-critical%)  cache cold\n", "\n" .. out)
    assert.matches("\nDOWN: 5 check%(s%), 1 up, 2 warn, 2 down in [%d.]+ s\n$", "\n" .. out)
  end)

  it("--only selects checks; a non-critical failure alone exits 0", function()
    local code, out = run("check --scripts " .. quote(dir) .. " --only ok --only soft --only meh")
    assert.equal(0, code)
    assert.matches("^WARN: 3 check%(s%), 1 up, 2 warn, 0 down", out:match("[^\n]+\n$"))
    code = run("check --scripts " .. quote(dir) .. " --only nothing")
    assert.equal(2, code)
  end)

  it("--format json", function()
    local code, out = run("check --format json --scripts " .. quote(dir))
    assert.equal(1, code)
    local j = agent.decode(out)
    assert.equal("DOWN", j.status)
    assert.equal(5, #j.checks)
    local by = {}
    for _, c in ipairs(j.checks) do by[c.name] = c end
    assert.same({ code = 7 }, by.bad.details)
    assert.equal("db <down> & out", by.bad.output)
    assert.equal("WARN", by.soft.status)
    assert.equal("DOWN", by.soft.result)
    assert.is_false(by.soft.critical)
    assert.same({ "readiness" }, by.ok.probes)
    assert.matches("/a%.lua:1$", by.ok.where)
  end)

  it("--format tap", function()
    local code, out = run("check --format tap --scripts " .. quote(dir) .. " --only ok --only bad --only soft")
    assert.equal(1, code)
    assert.matches("^TAP version 13\n1%.%.3\n", out)
    assert.truthy(out:find("\nnot ok 1 - bad\n  ---\n  status: DOWN\n", 1, true), out)
    assert.truthy(out:find('  message: "db <down> & out"\n', 1, true), out)
    assert.truthy(out:find("\nok 2 - ok\n", 1, true), out)
    assert.truthy(out:find("\nok 3 - soft\n  ---\n  status: WARN\n  critical: false\n", 1, true), out)
  end)

  it("--format junit", function()
    local code, out = run("check --format junit --scripts " .. quote(dir))
    assert.equal(1, code)
    assert.matches('^<%?xml version="1.0" encoding="UTF%-8"%?>\n<testsuites name="healthagent" tests="5" failures="2"', out)
    assert.truthy(out:find('<failure type="DOWN" message="db &lt;down&gt; &amp; out">', 1, true), out)
    assert.truthy(out:find('<testcase classname="healthagent" name="ok" time="', 1, true), out)
    assert.truthy(out:find("<system-out>WARN: cache cold</system-out>", 1, true), out)
    assert.matches("</testsuites>\n$", out)
  end)

  it("exits 2 when the scripts do not load, with file:line", function()
    local bad = scripts { ["x.lua"] = 'health.check { name = "x", run = 1 }\n' }
    local code, out, err = run("check --scripts " .. quote(bad))
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("healthagent check: " .. bad .. "/x.lua:1: health.check: field 'run' must be a function\n", err)
    assert.equal(2, (run("check --scripts /nonexistent")))
    assert.equal(2, (run("check --format xml --scripts " .. quote(dir))))
    os.execute("rm -rf " .. quote(bad))
  end)
end)

describe("healthagent lint", function()
  it("exits 0 on good scripts without running a check", function()
    local d = scripts {
      ["a.lua"] = 'health.check { name = "a", run = function() error("must not run") end }\n',
      ["b.lua"] = 'health.check { name = "b", run = function() return true end }\n',
    }
    local code, out, err = run("lint " .. quote(d))
    assert.equal(0, code)
    assert.equal(d .. ": 2 file(s), 2 check(s): ok\n", out)
    assert.equal("", err)
    os.execute("rm -rf " .. quote(d))
  end)

  it("reports every broken file as file:line: message and exits 1", function()
    local d = scripts {
      ["a.lua"] = 'health.check { name = "a", run = function() return true end }\n',
      ["b.lua"] = "\nlocal x = = 1\n",
      ["c.lua"] = 'health.check { name = "c", timeout = "soon", run = function() end }\n',
    }
    local code, out, err = run("lint " .. quote(d))
    assert.equal(1, code)
    assert.equal("", out)
    assert.truthy(err:find(d .. "/b.lua:2: unexpected symbol near '='\n", 1, true), err)
    assert.truthy(err:find(d .. "/c.lua:1: health.check: field 'timeout': bad duration 'soon'", 1, true), err)
    assert.truthy(err:find(d .. ": 2 error(s) in 3 file(s)\n", 1, true), err)
    os.execute("rm -rf " .. quote(d))
  end)

  it("finds names defined twice across files", function()
    local d = scripts {
      ["a.lua"] = 'health.check { name = "same", run = function() return true end }\n',
      ["b.lua"] = 'health.check { name = "same", run = function() return true end }\n',
    }
    local code, _, err = run("lint " .. quote(d))
    assert.equal(1, code)
    assert.truthy(err:find(d .. "/b.lua:1: health.check: duplicate check name 'same' (first defined at " .. d
      .. "/a.lua:1)", 1, true), err)
    os.execute("rm -rf " .. quote(d))
  end)

  it("exits 2 when the directory cannot be read", function()
    local code, _, err = run("lint /nonexistent/dir")
    assert.equal(2, code)
    assert.equal("/nonexistent/dir: cannot read scripts directory: No such file or directory\n", err)
  end)
end)

describe("examples/kubernetes", function()
  -- The `key: |` blocks of a ConfigMap manifest, as {name = text}.
  local function configmap_files(path)
    local files, name, lines = {}, nil, nil
    for line in (agent.read(path) .. "\n"):gmatch("([^\n]*)\n") do
      local key = line:match("^  ([%w._-]+%.lua): |$")
      if key then
        name, lines = key, {}
        files[name] = lines
      elseif name and (line:match("^    ") or line == "") then
        lines[#lines + 1] = line:sub(5)
      else
        name = nil
      end
    end
    for k, v in pairs(files) do files[k] = table.concat(v, "\n") .. "\n" end
    return files
  end

  local root = os.getenv("HA_SOURCE_DIR") or "."
  local files = configmap_files(root .. "/examples/kubernetes/configmap.yaml")

  it("the ConfigMap's scripts lint clean and its configurations load", function()
    local d = agent.tmpdir()
    local n = 0
    for name, src in pairs(files) do
      if name ~= "native.lua" and name ~= "classic.lua" then
        write(d .. "/" .. name, src)
        n = n + 1
      end
    end
    assert.equal(2, n)
    local code, out, err = run("lint " .. quote(d))
    assert.equal(0, code, err)
    assert.equal(d .. ": 2 file(s), 3 check(s): ok\n", out)
    for _, cfg in ipairs { "native.lua", "classic.lua" } do
      local f = d .. "/" .. cfg .. ".cfg"
      write(f, files[cfg])
      -- loading the config is the first thing lint does; the dir is the scripts'
      code, _, err = run("lint --config " .. quote(f) .. " " .. quote(d))
      assert.equal(0, code, cfg .. ": " .. err)
    end
    os.execute("rm -rf " .. quote(d))
  end)

  it("the manifests use only flags and commands the binary has", function()
    for _, m in ipairs { "sidecar-native.yaml", "sidecar-classic.yaml" } do
      local text = agent.read(root .. "/examples/kubernetes/" .. m)
      assert.truthy(text:find('args: ["--config", "/etc/healthagent-config/', 1, true), m)
      for cmd in text:gmatch('command: %["healthagent", ([^%]]+)%]') do
        -- run the exec probe's arguments against a port nobody uses: usage
        -- errors would say "unknown option" or "bad URL", not "connect"
        local args = cmd:gsub('"', ""):gsub(",", ""):gsub("9090", "1")
        local code, _, err = run(args)
        assert.equal(1, code, m .. ": " .. args)
        assert.truthy(err:find("connection refused", 1, true), m .. ": " .. err)
      end
    end
    local docker = agent.read(root .. "/Dockerfile")
    assert.truthy(docker:find('CMD ["/usr/bin/healthagent", "probe", "--probe", "readiness", "--timeout", "2s"]', 1, true))
    local code = run("probe --probe readiness --timeout 2s", "HEALTHAGENT_LISTEN=0.0.0.0:1")
    assert.equal(1, code)
  end)
end)
