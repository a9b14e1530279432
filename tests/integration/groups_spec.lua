-- Groups (health.group) against the real binary: /groupz/<name> and the
-- group's own path in every format, ?exclude and one check inside a group,
-- the built-in aggregates (quorum over three real TCP upstreams), Lua
-- aggregates (verdict, error, timeout), probes as groups, per-status HTTP
-- codes, checks in no probe, and load errors at file:line.
local agent = require "helpers.agent"

local wait_for = agent.wait_for

-- agent.start, stopped however the test ends (a failed assertion included)
local function start(opts)
  local a = agent.start(opts)
  finally(function() if a:alive() then a:kill() end end)
  return a
end

local SCRIPTS = {
  ["a.lua"] = [[
health.check { name = "a", ttl = "1h", run = function() return true, "fine" end }
health.check { name = "b", ttl = "1h", run = function() return false, "broken" end }
health.check { name = "c", ttl = "1h", probes = {}, run = function() return true, "quiet" end }
health.group { name = "db", include = { "a", "b" }, path = "/health/db" }
health.group { name = "ac", match = "^[ac]$" }
health.group { name = "q2", match = "^[abc]$", aggregate = health.aggregate.quorum { min_up = 2 } }
health.group { name = "half", include = { "a", "b", "c" }, aggregate = health.aggregate.quorum { ratio = 0.9 } }
health.group { name = "some", include = { "a", "b" }, aggregate = health.aggregate.any,
               status_codes = { UP = 207 } }
health.group { name = "codes", include = { "b" }, failure_status = 500, status_codes = { DOWN = 429 } }
]],
}

local function decided(a)
  wait_for(function()
    local r = a:get("/healthz")
    return r.json and r.json.components.b and r.json.components.b.status == "DOWN"
  end, 10, "the checks' first results:\n" .. a:log())
end

describe("a group's answers", function()
  local a
  setup(function()
    a = agent.start { scripts = SCRIPTS, config = "return { shutdown_delay = 0 }" }
    decided(a)
  end)
  teardown(function() a:stop() end)

  it("is served at /groupz/<name> and its own path, worst of its members by default", function()
    for _, p in ipairs { "/groupz/db", "/health/db", "/groupz/db/", "/health/db/" } do
      local r = a:get(p)
      assert.equal(503, r.status, p)
      assert.equal("DOWN", r.json.status)
      assert.same({ "a", "b" }, (function()
        local t = {}
        for k in pairs(r.json.components) do t[#t + 1] = k end
        table.sort(t)
        return t
      end)())
    end
    local ac = a:get("/groupz/ac")
    assert.equal(200, ac.status)
    assert.equal("UP", ac.json.components.c.status)
    assert.is_nil(ac.json.components.b)
    assert.equal(404, a:get("/groupz/nothing").status)
    assert.equal(404, a:get("/groupz/").status)
  end)

  it("answers health+json, ?verbose, ?exclude and one member", function()
    local h = a:get("/groupz/db", { headers = { Accept = "application/health+json" } })
    assert.equal(503, h.status)
    assert.equal("application/health+json", h.headers["content-type"])
    assert.equal("fail", h.json.status)
    assert.equal("fail", h.json.checks["b:responseTime"][1].status)
    local v = a:get("/groupz/db?verbose")
    assert.equal(503, v.status)
    assert.equal("[+]a ok\n[-]b failed: broken\ngroup db check failed\n", v.body)
    local x = a:get("/groupz/db?exclude=b")
    assert.equal(200, x.status)
    assert.is_nil(x.json.components.b)
    local one = a:get("/groupz/db/b")
    assert.equal(503, one.status)
    assert.equal("broken", one.json.output)
    assert.equal(200, a:get("/health/db/a").status)
    assert.equal(404, a:get("/groupz/db/c").status) -- c is no member of db
  end)

  it("built-in aggregates: quorum by count and by ratio, any", function()
    local q = a:get("/groupz/q2")
    assert.equal(200, q.status)
    assert.equal("UP", q.json.status)
    assert.equal("2 of 3 up (2 needed); failing: b", q.json.output)
    local half = a:get("/groupz/half")
    assert.equal(503, half.status)
    assert.equal("2 of 3 up, 3 needed; failing: b", half.json.output)
    local some = a:get("/groupz/some?verbose")
    assert.equal(207, some.status)
    assert.truthy(some.body:find("aggregate: 1 of 2 up (1 needed); failing: b\ngroup some check passed\n", 1, true),
      some.body)
  end)

  it("an ?exclude of every member reads UP under every aggregate, as a probe with every check excluded", function()
    local every = "?exclude=a&exclude=b&exclude=c"
    local probe = a:get("/healthz" .. every)
    assert.equal(200, probe.status)
    assert.equal("UP", probe.json.status)
    for g, code in pairs { db = 200, q2 = 200, half = 200, some = 207 } do
      local r = a:get("/groupz/" .. g .. every)
      assert.equal(code, r.status, g)
      assert.equal("UP", r.json.status, g)
      assert.same({}, r.json.components, g)
      if g ~= "db" then assert.equal("every member excluded", r.json.output, g) end
      assert.equal("group " .. g .. " check passed\n", a:get("/groupz/" .. g .. every .. "&verbose").body:match("group .*$"))
    end
    -- too few left to make the quorum: DOWN, not INIT
    local q = a:get("/groupz/q2?exclude=b&exclude=c")
    assert.equal(503, q.status)
    assert.equal("DOWN", q.json.status)
    assert.equal("1 of 1 up, 2 needed", q.json.output)
  end)

  it("per-status codes replace only what they name", function()
    assert.equal(429, a:get("/groupz/codes").status)
  end)

  it("a check in no probe still shows at /healthz and its own path, not in the probes", function()
    assert.equal("UP", a:get("/healthz").json.components.c.status)
    assert.equal(200, a:get("/healthz/c").status)
    assert.is_nil(a:get("/readyz").json.components.c)
    assert.equal(404, a:get("/readyz/c").status)
  end)

  it("withholds outputs and the aggregate's message from untrusted clients", function()
    local r = a:get("/groupz/q2", { interface = "127.0.0.2" })
    assert.equal(200, r.status)
    assert.is_nil(r.json.output)
    assert.is_nil(r.json.components.b.output)
  end)
end)

describe("Lua aggregates", function()
  it("run on the engine when a member changes; errors, yields and timeouts read DOWN with file:line", function()
    local dir = agent.tmpdir()
    local a = start { scripts = {
      ["g.lua"] = [[
local flip = false
health.check { name = "m1", interval = "100ms", run = function() flip = not flip; return flip, "flip" end }
health.check { name = "m2", ttl = "1h", run = function() return true end }
health.group { name = "count", include = { "m1", "m2" }, aggregate = function(results)
  local up, names = 0, {}
  for i = 1, #results do
    local r = results[i]
    assert(r.name and r.status and r.duration_ms and r.critical ~= nil)
    if r.status == "UP" then up = up + 1 end
    names[#names + 1] = r.name
  end
  local ok, err = pcall(function() results[1].status = "UP" end)
  assert(not ok and err:find("read%-only"), "results are writable")
  return up >= 1, up .. " up of " .. table.concat(names, ",")
end }
health.group { name = "raises", include = { "m2" }, aggregate = function(results)
  error("no quorum here")
end }
health.group { name = "spins", include = { "m2" }, timeout = "200ms", aggregate = function(results)
  while true do end
end }
health.group { name = "yields", include = { "m2" }, aggregate = function(results)
  return coroutine.yield(true)
end }
]] }, config = "return { shutdown_delay = 0 }" }
    local r = wait_for(function()
      local r = a:get("/groupz/count")
      return r.json and r.json.output and r.json.output:find(" up of m1,m2") and r
    end, 10, "the aggregate's verdict:\n" .. a:log())
    assert.equal(200, r.status)
    local e = wait_for(function()
      local r = a:get("/groupz/raises")
      return r.json and r.json.output and r
    end, 10, "the raising aggregate")
    assert.equal(503, e.status)
    assert.equal("DOWN", e.json.status)
    assert.matches("^aggregate error: .*/g%.lua:17: no quorum here$", e.json.output)
    local t = wait_for(function()
      local r = a:get("/groupz/spins")
      return r.json and r.json.output and r
    end, 10, "the spinning aggregate")
    assert.equal(503, t.status)
    assert.matches("^aggregate timeout after 200ms %(.*/g%.lua:19%)$", t.json.output)
    local y = wait_for(function()
      local r = a:get("/groupz/yields")
      return r.json and r.json.output and r
    end, 10, "the yielding aggregate")
    assert.equal(503, y.status)
    assert.equal("DOWN", y.json.status)
    assert.matches("^aggregate error: .*/g%.lua:23: attempt to yield from outside a coroutine$", y.json.output)
    -- the agent still answers everything else
    assert.equal(200, a:get("/livez").status)
    a:stop()
    os.execute("rm -rf " .. agent.quote(dir))
  end)
end)

describe("probes are groups", function()
  it("a script sets readiness' aggregate and codes; the config sets per-status codes", function()
    local a = start { scripts = {
      ["p.lua"] = [[
health.check { name = "r1", ttl = "1h", run = function() return true end }
health.check { name = "r2", ttl = "1h", run = function() return false, "r2 down" end }
health.check { name = "l1", probes = { "liveness" }, initial_delay = "1h", run = function() return true end }
health.check { name = "w", probes = { "startup" }, ttl = "1h", run = function() return health.warn("meh") end }
health.group { name = "readiness", aggregate = health.aggregate.quorum { min_up = 1 } }
]] }, config = [[return { shutdown_delay = 0, probes = {
      liveness = { status_codes = { INIT = 503 } },
      startup = { status_codes = { WARN = 299 } },
      readiness = { status_codes = { UP = 203 } },
    } }]] }
    local r = wait_for(function()
      local r = a:get("/readyz")
      return r.json and r.json.components.r2 and r.json.components.r2.status == "DOWN" and r
    end, 10, "readiness")
    assert.equal(203, r.status)
    assert.equal("1 of 2 up (1 needed); failing: r2", r.json.output)
    -- l1 waits for its initial delay: undecided; liveness answers that with the INIT code it was given
    local l = a:get("/livez")
    assert.equal("UP", l.json.status)
    assert.equal(503, l.status)
    local s = wait_for(function()
      local s = a:get("/startupz")
      return s.json and s.json.components.w.status == "WARN" and s
    end, 10, "startup")
    assert.equal(299, s.status)
    a:stop()
  end)

  it("liveness answers success for INIT unless told otherwise", function()
    local a = start { scripts = {
      ["p.lua"] = [[health.check { name = "l1", probes = { "liveness" }, initial_delay = "1h", run = function() return true end }]],
    }, config = "return { shutdown_delay = 0 }" }
    assert.equal(200, a:get("/livez").status)
    a:stop()
  end)

  it("rejects a bad status code naming the field", function()
    local d = agent.tmpdir()
    agent.write(d .. "/agent.lua", "return { probes = { readiness = { status_codes = { UP = 700 } } } }")
    local code, out = agent.run("lint --config " .. agent.quote(d .. "/agent.lua") .. " " .. agent.quote(d))
    assert.equal(2, code)
    assert.truthy(out:find("field 'probes.readiness.status_codes.UP': must be an HTTP status 200..599, got 700", 1, true), out)
    -- a 1xx is an interim answer, never a final one: kubelet and curl would wait for the real answer
    agent.write(d .. "/agent.lua", "return { probes = { readiness = { status_codes = { DOWN = 100 } } } }")
    code, out = agent.run("lint --config " .. agent.quote(d .. "/agent.lua") .. " " .. agent.quote(d))
    assert.equal(2, code)
    assert.truthy(out:find("field 'probes.readiness.status_codes.DOWN': must be an HTTP status 200..599, got 100", 1, true), out)
    agent.write(d .. "/agent.lua", "return { probes = { readiness = { status_codes = { UPP = 200 } } } }")
    code, out = agent.run("lint --config " .. agent.quote(d .. "/agent.lua") .. " " .. agent.quote(d))
    assert.equal(2, code)
    assert.truthy(out:find("unknown key 'probes.readiness.status_codes.UPP'", 1, true), out)
  end)
end)

describe("group load errors", function()
  local function lint(src)
    local d = agent.tmpdir()
    agent.write(d .. "/x.lua", src)
    local code, out = agent.run("lint " .. agent.quote(d))
    return code, out, d
  end
  local CHECK = 'health.check { name = "a", run = function() return true end }\n'

  it("names the file and line of a clash, an unknown member or a bad field", function()
    local cases = {
      { CHECK .. 'health.group { name = "a", include = { "a" } }', "x.lua:2: health.group: duplicate name 'a': a check of that name is defined at" },
      { 'health.group { name = "a", include = { "a" } }\n' .. CHECK, "x.lua:2: health.check: duplicate check name 'a' (first defined as a group at" },
      { CHECK .. 'health.group { name = "g", include = { "a", "nope" } }', "x.lua:2: health.group: group 'g' includes 'nope', which is no check" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, exclude = { "zz" } }', "x.lua:2: health.group: group 'g' excludes 'zz', which is no check" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, bogus = 1 }', "x.lua:2: health.group: unknown field 'bogus'" },
      { CHECK .. 'health.group { name = "g", match = "[a" }', "x.lua:2: health.group: field 'match': " },
      { CHECK .. 'health.group { name = "g", include = { "a" }, status_codes = { UP = 99 } }', "x.lua:2: health.group: field 'status_codes.UP' must be an HTTP status 200..599, got 99" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, status_codes = { UP = 101 } }', "x.lua:2: health.group: field 'status_codes.UP' must be an HTTP status 200..599, got 101" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, failure_status = 199 }', "x.lua:2: health.group: field 'failure_status' must be an HTTP status 200..599, got 199" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, aggregate = 3 }', "x.lua:2: health.group: field 'aggregate' must be a function or a health.aggregate built-in" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, aggregate = health.aggregate.quorum }', "x.lua:2: health.group: field 'aggregate': call health.aggregate.quorum { min_up = n } or { ratio = r }" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, aggregate = health.warn }', "x.lua:2: health.group: field 'aggregate' must be a script's function(results) or a health.aggregate built-in, not a library function" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, path = "/readyz" }', "x.lua:2: health.group: field 'path': path '/readyz' is reserved for probe readiness" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, path = "/readyz/x" }', "x.lua:2: health.group: field 'path': path '/readyz/x' is below /readyz" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, path = "/groupz/x" }', "x.lua:2: health.group: field 'path': path '/groupz/x' is reserved for the groups" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, path = "/p" }\nhealth.group { name = "h", include = { "a" }, path = "/p" }', "x.lua:3: health.group: field 'path': '/p' is the path of group 'g'" },
      { CHECK .. 'health.group { name = "h", include = { "a" }, path = "/p/a" }\nhealth.group { name = "g", include = { "a" }, path = "/p" }', "x.lua:3: health.group: field 'path': '/p' is above '/p/a', the path of group 'h' (" },
      { CHECK .. 'health.group { name = "g", include = { "a" }, path = "/p" }\nhealth.group { name = "h", include = { "a" }, path = "/p/x" }', "x.lua:3: health.group: field 'path': '/p/x' is below '/p', the path of group 'g' (" },
      { CHECK .. 'health.group { name = "readiness", include = { "a" } }', "x.lua:2: health.group: field 'include': the members of group 'readiness' are the checks of that probe" },
      { CHECK .. 'health.group { name = "health", include = { "a" } }', "x.lua:2: health.group: the name 'health' is reserved" },
      { CHECK .. 'health.group { name = "..", include = { "a" } }', "x.lua:2: health.group: field 'name' must be 1 to 128 characters of [A-Za-z0-9_.-], not . or .." },
      { CHECK .. 'health.group { name = "g", include = { "a" }, aggregate = health.aggregate.quorum { min_up = 0 } }', "x.lua:2: bad argument #1 to 'quorum' (field 'min_up' must be a whole number from 1)" },
      { CHECK .. 'health.group { name = "g", match = "^a", aggregate = health.aggregate.quorum { min_up = 2 } }', "x.lua:2: health.group: group 'g' needs 2 members up (quorum min_up) but has 1" },
    }
    for _, c in ipairs(cases) do
      local code, out = lint(c[1])
      assert.equal(1, code, out)
      assert.truthy(out:find(c[2], 1, true), "want " .. c[2] .. "\ngot " .. out)
    end
  end)

  it("lint: a group may include another file's checks; an unknown name is still found", function()
    local d = agent.tmpdir()
    agent.write(d .. "/a.lua", 'health.group { name = "g", include = { "b1", "b2" }, exclude = { "b2" } }\n')
    agent.write(d .. "/b.lua", 'health.check { name = "b1", run = function() return true end }\n' ..
      'health.check { name = "b2", run = function() return true end }\n')
    local code, out = agent.run("lint " .. agent.quote(d))
    assert.equal(0, code, out)
    assert.truthy(out:find(": 2 file(s), 2 check(s), 1 group(s): ok", 1, true), out)
    agent.write(d .. "/a.lua", 'health.group { name = "g", include = { "b1", "b3" } }\n')
    code, out = agent.run("lint " .. agent.quote(d))
    assert.equal(1, code, out)
    assert.truthy(out:find("a.lua:1: health.group: group 'g' includes 'b3', which is no check", 1, true), out)
  end)

  it("a failed reload keeps the old generation and its groups", function()
    local a = start { scripts = {
      ["x.lua"] = CHECK .. 'health.group { name = "g", include = { "a" } }\n',
    }, config = "return { shutdown_delay = 0, rescan_interval = '200ms' }" }
    wait_for(function() return a:get("/groupz/g").status == 200 end, 10, "the group")
    agent.write(a.scripts .. "/x.lua", CHECK .. 'health.group { name = "g", include = { "a", "b" } }\n')
    assert.truthy(a:wait_log("reload failed: ", 10), a:log())
    assert.truthy(a:log():find("x.lua:2: health.group: group 'g' includes 'b', which is no check", 1, true), a:log())
    assert.equal(200, a:get("/groupz/g").status)
    -- a good reload changes the membership
    agent.write(a.scripts .. "/x.lua", CHECK .. 'health.check { name = "b", run = function() return false end }\n' ..
      'health.group { name = "g", include = { "a", "b" } }\n')
    wait_for(function() return a:get("/groupz/g").status == 503 end, 10, "the new membership:\n" .. a:log())
    a:stop()
  end)
end)

-- A TCP listener in its own process (/usr/bin/python3): accepts and closes.
-- Returns its port and a function that stops it (the port then refuses).
local function tcp_upstream(dir, name)
  local portfile = dir .. "/" .. name .. ".port"
  local src = "import socket,os,sys\n" ..
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',0)); s.listen(64)\n" ..
    "open(sys.argv[1]+'.tmp','w').write(str(s.getsockname()[1])); os.rename(sys.argv[1]+'.tmp', sys.argv[1])\n" ..
    "while True:\n  c,_=s.accept(); c.close()\n"
  agent.write(dir .. "/" .. name .. ".py", src)
  local pid = io.popen(("/usr/bin/python3 %s %s >/dev/null 2>&1 & echo $!"):format(
    agent.quote(dir .. "/" .. name .. ".py"), agent.quote(portfile))):read("l")
  local port = wait_for(function()
    local p = agent.read(portfile)
    return p and tonumber(p)
  end, 10, "upstream " .. name)
  return port, function() os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.05") end
end

describe("quorum over three real TCP upstreams", function()
  it("stays UP naming the one stopped, turns DOWN when two are", function()
    local dir = agent.tmpdir()
    local ports, stops = {}, {}
    for i, n in ipairs { "up-a", "up-b", "up-c" } do ports[i], stops[i] = tcp_upstream(dir, n) end
    local src = {}
    for i, n in ipairs { "up-a", "up-b", "up-c" } do
      src[#src + 1] = ('health.checks.tcp { name = %q, host = "127.0.0.1", port = %d, ttl = "200ms", timeout = "1s" }')
        :format(n, ports[i])
    end
    src[#src + 1] = 'health.group { name = "upstreams", match = "^up%-", aggregate = health.aggregate.quorum { min_up = 2 } }'
    local a = start { scripts = { ["u.lua"] = table.concat(src, "\n") }, config = "return { shutdown_delay = 0 }" }
    local ok, err = pcall(function()
      local r = wait_for(function()
        local r = a:get("/groupz/upstreams")
        return r.status == 200 and r.json.output == "3 of 3 up (2 needed)" and r
      end, 10, "three upstreams up:\n" .. a:log())
      stops[2]()
      r = wait_for(function()
        local r = a:get("/groupz/upstreams")
        return r.json.components["up-b"].status == "DOWN" and r
      end, 10, "up-b down")
      assert.equal(200, r.status)
      assert.equal("UP", r.json.status)
      assert.equal("2 of 3 up (2 needed); failing: up-b", r.json.output)
      stops[3]()
      r = wait_for(function()
        local r = a:get("/groupz/upstreams")
        return r.json.components["up-c"].status == "DOWN" and r
      end, 10, "up-c down")
      assert.equal(503, r.status)
      assert.equal("DOWN", r.json.status)
      assert.equal("1 of 3 up, 2 needed; failing: up-b, up-c", r.json.output)
    end)
    for _, stop in ipairs(stops) do stop() end
    a:stop()
    os.execute("rm -rf " .. agent.quote(dir))
    assert(ok, err)
  end)
end)

describe("groups in /metrics", function()
  it("one healthagent_group_status and _members series per group, promtool-clean", function()
    local a = start { scripts = SCRIPTS, config = "return { shutdown_delay = 0 }" }
    decided(a)
    local body = a:get("/metrics").body
    assert.truthy(body:find('healthagent_group_status{group="db"} 0\n', 1, true), body)
    assert.truthy(body:find('healthagent_group_status{group="q2"} 1\n', 1, true), body)
    assert.truthy(body:find('healthagent_group_members{group="q2"} 3\n', 1, true), body)
    assert.falsy(body:find('group="readiness"', 1, true))
    local f = os.tmpname()
    agent.write(f, body)
    local p = io.popen("promtool check metrics < " .. agent.quote(f) .. " 2>&1; echo rc=$?")
    local out = p:read("a")
    p:close()
    os.remove(f)
    assert.truthy(out:find("rc=0", 1, true), out)
    a:stop()
  end)
end)

describe("a Lua aggregate whose member has expired", function()
  it("falls back to worst-of over what is known and says so; the requests refresh stale members once", function()
    local a = start { scripts = {
      ["e.lua"] = [[
local runs = 0
health.check { name = "slow", ttl = "100ms", max_age = "300ms", timeout = "60s", run = function()
  runs = runs + 1
  health.log("info", "slow started run " .. runs)
  if runs > 1 then health.sleep(30) end -- in flight for the whole test, however loaded the machine
  return true, "run " .. runs
end }
health.check { name = "quick", ttl = "1h", run = function() return true end }
health.group { name = "lua", include = { "slow", "quick" }, aggregate = function(r) return "UP", "all judged" end }
]] }, config = "return { shutdown_delay = 0, max_wait = '200ms' }" }
    wait_for(function() return a:get("/groupz/lua").json.output == "all judged" end, 10, "the verdict")
    health.sleep(0.4) -- slow is past its max_age; its refresh now takes 30 s
    local codes = a:parallel("/groupz/lua", 10)
    for _, c in ipairs(codes) do assert.equal(503, c) end
    local r = a:get("/groupz/lua")
    assert.equal(503, r.status)
    assert.equal("DOWN", r.json.components.slow.status)
    assert.equal("aggregate not applied: slow has no recent result; worst of the members instead", r.json.output)
    assert.is_true(r.time < 2, "answered within max_wait")
    -- single flight: eleven requests that found slow stale started one run of it
    local _, started = a:log():gsub("slow started run %d+", "")
    assert.equal(2, started, a:log())
    a:stop()
  end)
end)
