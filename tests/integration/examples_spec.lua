-- What the project ships works as shipped: every directory of scripts lints
-- clean and loads as a whole, and the agent serving examples/scripts against
-- the harness's servers decides every check, UP where a server is there,
-- with no Lua error in any output. (The ConfigMap's scripts: commands_spec.)
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/examples_spec.lua
local agent = require "helpers.agent"
local quote, sh = agent.quote, agent.sh
local run = agent.run_split

local ROOT = os.getenv("HA_SOURCE_DIR") or "."

-- The names of the *.lua files of a directory.
local function lua_files(dir)
  local names = {}
  for name in sh("ls " .. quote(dir)):gmatch("[^\n]+") do
    if name:match("%.lua$") then names[#names + 1] = name end
  end
  return names
end

describe("the shipped scripts", function()
  it("scripts/ and examples/scripts/ lint clean, each as a whole", function()
    for _, dir in ipairs { ROOT .. "/scripts", ROOT .. "/examples/scripts" } do
      local code, out, err = run("lint " .. quote(dir))
      assert.equal(0, code, err)
      assert.matches("^" .. dir:gsub("%p", "%%%0") .. ": " .. #lua_files(dir) .. " file%(s%), %d+ check%(s%): ok\n$", out)
      assert.equal("", err)
    end
  end)

  it("the bundled scripts are exemplary: no blocking io on the engine, and each runs UP here", function()
    for _, f in ipairs(lua_files(ROOT .. "/scripts")) do
      local src = agent.read(ROOT .. "/scripts/" .. f)
      for line in src:gmatch("[^\n]+") do
        local code = line:gsub("%-%-.*$", "")
        assert.falsy(code:find("io%.%a+%s*%(") or code:find("io%.%a+%s*\""), "scripts/" .. f .. ": " .. line)
      end
    end
    local code, out, err = run("check --format json --scripts " .. quote(ROOT .. "/scripts"))
    assert.equal(0, code, out .. err)
    local j = agent.decode(out)
    local hostname = (agent.read("/etc/hostname") or ""):match("^%s*(%S+)")
    for _, c in ipairs(j.checks) do
      if c.name == "hostname-file" then assert.equal("host " .. hostname, c.output) end
      if c.name ~= "disk" then assert.equal("UP", c.status, c.name .. ": " .. tostring(c.output)) end
    end
  end)

  it("examples/agent.lua is a configuration the agent loads", function()
    local code, _, err = run("lint --config " .. quote(ROOT .. "/examples/agent.lua") .. " " .. quote(ROOT .. "/scripts"))
    assert.equal(0, code, err)
  end)
end)

describe("the agent on examples/scripts", function()
  local env = dofile((os.getenv("HA_HARNESS_DIR") or "/tmp/ha-harness") .. "/env.lua")
  local a, heartbeat

  setup(function()
    heartbeat = os.tmpname()
    agent.write(heartbeat, "42 jobs\n")
    -- every address the examples read from the environment, on the harness
    -- (loopback only: nothing may leave the machine)
    local vars = {
      REDIS_HOST = "127.0.0.1", REDIS_PORT = env.HA_REDIS_PORT, REDIS_PASSWORD = env.HA_REDIS_PASSWORD,
      PGHOST = "127.0.0.1", PGPORT = env.HA_PG_PORT, PGUSER = env.HA_PG_USER, PGPASSWORD = env.HA_PG_PASSWORD,
      PGDATABASE = env.HA_PG_DATABASE,
      MYSQL_HOST = "127.0.0.1", MYSQL_TCP_PORT = env.HA_MARIADB_PORT, MYSQL_USER = env.HA_MARIADB_USER,
      MYSQL_PWD = env.HA_MARIADB_PASSWORD, MYSQL_DATABASE = env.HA_MARIADB_DATABASE,
      APP_URL = "http://127.0.0.1:" .. env.HA_HTTP_PORT,
      ADMIN_URL = ("https://127.0.0.1:%d/ok"):format(env.HA_HTTPS_PORT),
      SEARCH_URL = "http://127.0.0.1:" .. env.HA_HTTP_PORT,
      ORDERS_GRPC = "127.0.0.1:" .. env.HA_GRPC_PORT, INVENTORY_GRPC = "127.0.0.1:" .. env.HA_GRPC_PORT,
      PAYMENTS_GRPC = "127.0.0.1:" .. env.HA_GRPC_TLS_PORT,
      API_HOST = "127.0.0.1", API_PORT = env.HA_HTTPS_EXPIRED_PORT, INTERNAL_TLS_PORT = env.HA_HTTPS_PORT,
      MEMCACHED_HOST = "127.0.0.1", MEMCACHED_PORT = env.HA_REFUSED_PORT,
      SMTP_HOST = "127.0.0.1", SMTP_PORT = env.HA_REFUSED_PORT,
      WORKER_HEARTBEAT = heartbeat,
    }
    local assign = {}
    for k, v in pairs(vars) do assign[#assign + 1] = k .. "=" .. quote(v) end
    a = agent.start { scripts_dir = ROOT .. "/examples/scripts", env = table.concat(assign, " "),
                      config = 'return { shutdown_delay = "0s" }' }
  end)

  teardown(function()
    if a then a:stop() end
    os.remove(heartbeat)
  end)

  it("serves every check of every file, decides them, and those with a server are UP", function()
    local _, lint = run("lint " .. quote(ROOT .. "/examples/scripts"))
    local total = tonumber(lint:match("(%d+) check%(s%)"))
    assert.truthy(a:wait_log(("serving %d check(s)"):format(total), 5), a:log())
    -- a probe runs the stale checks and waits for them; a check stays INIT
    -- within its initial_delay (http.lua's "app": 10 s) and until
    -- failure_threshold failures in a row (tcp.lua's "api-tls": 3, 30 s apart)
    local undecided = { app = true, ["api-tls"] = true }
    local up = { "cache", "cache-memory", "postgres", "postgres-replication-lag", "postgres-port",
      "postgres-accepting", "mysql", "mysql-connections", "cert-internal", "worker-heartbeat", "worker-progress",
      "maintenance-window" }
    local comps
    agent.wait_until(function() -- on a loaded machine a first run may time out: the next one counts
      comps = a:get("/healthz").json.components
      for name, c in pairs(comps) do
        if c.status == "INIT" and not undecided[name] then return false end
      end
      for _, name in ipairs(up) do
        if comps[name] and comps[name].status ~= "UP" then return false end
      end
      return true
    end, 30)
    local n = 0
    for name, c in pairs(comps) do
      n = n + 1
      print(("\n    %-26s %-4s %s"):format(name, c.status, c.output or ""))
      if not undecided[name] then assert.are_not.equal("INIT", c.status, name) end
      -- a script's own bug would show as "file.lua:N: attempt to ..."
      assert.falsy((c.output or ""):find("%.lua:%d+:"), name .. ": " .. tostring(c.output))
    end
    assert.equal(total, n)
    -- INIT for its first 10 s; then DOWN, three 404s later (the harness has no /healthz)
    assert.truthy(comps.app.status == "INIT" or comps.app.status == "DOWN", comps.app.status)
    for _, name in ipairs(up) do
      assert.is_not_nil(comps[name], name)
      assert.equal("UP", comps[name].status, name .. ": " .. tostring(comps[name].output))
    end
    assert.equal("primary", comps["postgres-replication-lag"].output)
    assert.equal("42 jobs done", comps["worker-progress"].output)
    for _, name in ipairs { "memcached", "smtp" } do
      assert.equal("DOWN", comps[name].status, name)
      assert.equal("connection refused", comps[name].output, name)
    end
    -- an expired certificate on a non-critical check: WARN (its interval is
    -- 1h: a first run that timed out on a loaded machine is what it shows)
    assert.equal("WARN", comps["cert-example"].status)
    assert.truthy(comps["cert-example"].output:find("expired", 1, true)
      or comps["cert-example"].output == "timeout after 1s", comps["cert-example"].output)
    assert.equal("INIT", comps["api-tls"].status)
    assert.matches("tls: certificate verify failed", comps["api-tls"].output)
    assert.is_true(a:alive())
  end)
end)
