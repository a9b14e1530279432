-- examples/kubernetes works as shipped: the manifests are valid objects of
-- the Kubernetes API (kubernetes-models' schemas), the image tag is the
-- agent's version everywhere, and each Deployment's agent container starts
-- from exactly its args, env, ConfigMaps and volumes, the optional token
-- Secret absent or present, and passes its own exec probes.
--   HA_BIN=build/healthagent busted --lua=build/healthagent tests/integration/kubernetes_spec.lua
local agent = require "helpers.agent"
local quote, sh, write = agent.quote, agent.sh, agent.write
local run = agent.run_split

local ROOT = os.getenv("HA_SOURCE_DIR") or "."
local K8S = ROOT .. "/examples/kubernetes"
local TOOL = ROOT .. "/tests/harness/k8s.mjs"
local MANIFESTS = { "configmap.yaml", "sidecar-native.yaml", "sidecar-classic.yaml" }

-- Every object of a manifest, decoded.
local function objects(manifest)
  local out, code = sh("node " .. quote(TOOL) .. " json " .. quote(K8S .. "/" .. manifest))
  assert(code == 0, out)
  return agent.decode(out)
end

describe("examples/kubernetes", function()
  local objs, configmaps, deployments = {}, {}, {}
  for _, m in ipairs(MANIFESTS) do
    for _, o in ipairs(objects(m)) do
      objs[#objs + 1] = o
      if o.kind == "ConfigMap" then configmaps[o.metadata.name] = o.data end
      if o.kind == "Deployment" then deployments[m] = o end
    end
  end

  it("every object is valid against the Kubernetes API schemas", function()
    local files = {}
    for i, m in ipairs(MANIFESTS) do files[i] = quote(K8S .. "/" .. m) end
    local out, code = sh("node " .. quote(TOOL) .. " validate " .. table.concat(files, " ") .. " 2>&1")
    assert.equal(0, code, out)
    local n = 0
    for line in out:gmatch("[^\n]+") do
      assert.matches(": ok$", line)
      n = n + 1
    end
    assert.equal(#objs, n)
    assert.equal(4, n)
    -- and the tool does catch a bad manifest
    local bad = os.tmpname()
    write(bad, (agent.read(K8S .. "/sidecar-native.yaml"):gsub("periodSeconds: 1\n", 'periodSeconds: "often"\n', 1)))
    out, code = sh("node " .. quote(TOOL) .. " validate " .. quote(bad) .. " 2>&1")
    os.remove(bad)
    assert.equal(1, code, out)
    assert.truthy(out:find("startupProbe/periodSeconds must be integer", 1, true), out)
  end)

  it("the image tag is the agent's version in the manifests, the Dockerfile and the READMEs", function()
    local version = select(2, run("version")):match("^healthagent (%S+)")
    local tag = "healthagent:" .. version
    for _, m in ipairs { "sidecar-native.yaml", "sidecar-classic.yaml" } do
      local d = assert(deployments[m], m)
      local spec = d.spec.template.spec
      local n = 0
      for _, list in ipairs { spec.initContainers or {}, spec.containers } do
        for _, c in ipairs(list) do
          if c.name == "healthagent" then
            assert.equal(tag, c.image)
            n = n + 1
          end
        end
      end
      assert.equal(1, n)
    end
    local docker = agent.read(ROOT .. "/Dockerfile")
    assert.truthy(docker:find("docker build -t " .. tag .. " .", 1, true))
    assert.truthy(docker:find('org.opencontainers.image.version="' .. version .. '"', 1, true))
    for tagged in (docker .. agent.read(K8S .. "/README.md") .. agent.read(ROOT .. "/README.md")):gmatch("healthagent:[%w.]+") do
      assert.equal(tag, tagged)
    end
  end)

  -- The agent container of a Deployment, started as kubelet would: its args
  -- and env, each volume mounted from its ConfigMap (or the token Secret,
  -- when token is given) into a temporary directory that stands for its
  -- mountPath. The listen address moves to a free loopback port.
  local function start_container(d, token)
    local spec = d.spec.template.spec
    local c
    for _, list in ipairs { spec.initContainers or {}, spec.containers } do
      for _, x in ipairs(list) do if x.name == "healthagent" then c = x end end
    end
    local root = agent.tmpdir()
    local volumes, mounts = {}, {}
    for _, v in ipairs(spec.volumes) do volumes[v.name] = v end
    for i, m in ipairs(c.volumeMounts) do
      local dir = root .. "/m" .. i
      sh("mkdir -p " .. quote(dir))
      local v = volumes[m.name]
      if v.configMap then
        for name, text in pairs(assert(configmaps[v.configMap.name], v.configMap.name)) do write(dir .. "/" .. name, text) end
      elseif v.secret then
        assert.is_true(v.secret.optional, "a Secret the examples never create must be optional")
        if token then write(dir .. "/token", token .. "\n") end
      end
      mounts[#mounts + 1] = { path = m.mountPath, dir = dir }
    end
    -- the mount paths, as written in the args and in the ConfigMap's config
    local function remap(s)
      for _, m in ipairs(mounts) do s = s:gsub(m.path:gsub("%p", "%%%0"), (m.dir:gsub("%%", "%%%%"))) end
      return s
    end
    for _, m in ipairs(mounts) do
      for name in sh("ls " .. quote(m.dir)):gmatch("[^\n]+") do
        local f = m.dir .. "/" .. name
        write(f, remap(agent.read(f)))
      end
    end
    local log = root .. "/agent.log"
    local port, pid, env
    for _ = 1, 5 do -- a random port may be taken
      port = 30000 + math.random(0, 9999)
      local vars, args = {}, {}
      for _, e in ipairs(c.env or {}) do
        local v = e.value
        if e.name == "HEALTHAGENT_LISTEN" then v = "127.0.0.1:" .. port end
        vars[#vars + 1] = e.name .. "=" .. quote(remap(v))
      end
      env = table.concat(vars, " ")
      for _, a in ipairs(c.args) do args[#args + 1] = quote(remap(a)) end
      pid = sh(("%s exec %s %s > %s 2>&1 & echo $!"):format(env, quote(agent.BIN), table.concat(args, " "),
        quote(log))):match("%d+")
      local up = agent.wait_until(function()
        local text = agent.read(log) or ""
        return (text:find("address already in use", 1, true) and "taken") or (text:find(" serving ", 1, true) and "up")
          or (not agent.read("/proc/" .. pid .. "/stat") and "exited")
      end, 10)
      if up ~= "taken" then break end
    end
    local p = { c = c, port = port, pid = pid, log = log, root = root, env = env }
    function p.exec_probe(probe)
      local argv = {}
      for i, x in ipairs(probe.exec.command) do
        if i > 1 then argv[#argv + 1] = quote((x:gsub(":9090", ":" .. port))) end
      end
      assert.equal("healthagent", probe.exec.command[1])
      return run(table.concat(argv, " "), p.env)
    end
    function p.stop()
      sh("kill -TERM " .. pid .. " 2>/dev/null; sleep 0.1; kill -TERM " .. pid .. " 2>/dev/null")
      agent.wait_until(function() return not agent.read("/proc/" .. pid .. "/stat") end, 5)
      local text = agent.read(log) or ""
      sh("rm -rf " .. quote(root))
      return text
    end
    return p
  end

  for _, which in ipairs { "sidecar-native.yaml", "sidecar-classic.yaml" } do
    it(which .. ": the agent starts as shipped and passes its own exec probes, with and without the token", function()
      local d = assert(deployments[which])
      local native = which == "sidecar-native.yaml"
      for _, token in ipairs { false, "0123456789abcdef0123456789abcdef" } do
        local p = start_container(d, token or nil)
        local code, _, err
        local ok = agent.wait_until(function()
          code, _, err = p.exec_probe(p.c.livenessProbe)
          return code == 0
        end, 10)
        if not ok then error("exec probe: " .. tostring(err) .. "\n" .. (agent.read(p.log) or "")) end
        if p.c.startupProbe then assert.equal(0, (p.exec_probe(p.c.startupProbe))) end
        -- the app's httpGet probes all reach the agent
        local livez = sh(("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/livez"):format(p.port))
        assert.equal("200", livez)
        if token and native then -- the token from the Secret opens the admin endpoints
          local st = sh(("curl -s -o /dev/null -w '%%{http_code}' -H 'Authorization: Bearer %s' http://127.0.0.1:%d/-/status")
            :format(token, p.port))
          assert.equal("200", st)
        end
        local log = p.stop()
        assert.falsy(log:find("cannot read token file", 1, true), log)
        if native then
          assert.equal(not token, log:find("token file .- does not exist %(token_file_optional%)") ~= nil, log)
        end
      end
    end)
  end
end)
