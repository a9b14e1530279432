-- health.fs and the file factories, inside the agent's runtime:
--   busted --lua=build/healthagent tests/unit/fs_spec.lua
-- Files are made in a private temporary directory with io.open.
local fs = require "health.fs"
local testing = require "health.testing"
local lfs = require "lfs"
local H = require "helpers.spec"

local dir = os.tmpname() -- a fresh name; turned into a directory
os.remove(dir)
assert(lfs.mkdir(dir))

local function write(name, data)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

local fd_count, wait_handles = H.fds, H.wait_handles

after_each(function()
  collectgarbage()
  assert.equal(0, wait_handles())
end)

teardown(function()
  os.execute("rm -rf '" .. dir .. "'")
end)

describe("fs.stat", function()
  it("describes a regular file", function()
    local path = write("a.txt", "hello")
    assert(os.execute("chmod 0640 '" .. path .. "'"))
    local before = os.time()
    local st = assert(fs.stat(path))
    assert.equal(5, st.size)
    assert.equal("file", st.type)
    assert.equal("0640", st.mode)
    assert.equal("number", type(st.mtime))
    assert.is_true(math.abs(st.mtime - before) < 5)
    assert.equal("integer", math.type(st.uid))
    assert.equal("integer", math.type(st.gid))
  end)

  it("describes a directory", function()
    local st = assert(fs.stat(dir))
    assert.equal("directory", st.type)
  end)

  it("follows symbolic links unless follow = false", function()
    local target = write("target", "12345678")
    local link = dir .. "/link"
    assert(os.execute("ln -sf '" .. target .. "' '" .. link .. "'"))
    assert.equal("file", fs.stat(link).type)
    assert.equal(8, fs.stat(link).size)
    assert.equal("link", fs.stat(link, { follow = false }).type)
  end)

  it("answers nil and a message for a missing file", function()
    local st, err = fs.stat(dir .. "/missing")
    assert.is_nil(st)
    assert.equal("no such file: " .. dir .. "/missing", err)
    st, err = fs.stat(dir .. "/a.txt/below")
    assert.is_nil(st)
    assert.equal("no such file: " .. dir .. "/a.txt/below", err)
  end)

  it("raises on misuse, with the caller's line", function()
    assert.has_error(function() fs.stat() end)
    assert.has_error(function() fs.stat("") end)
    assert.has_error(function() fs.stat("a\0b") end)
    assert.has_error(function() fs.stat("/", { bogus = true }) end, "health.fs.stat: unknown option 'bogus'")
    assert.has_error(function() fs.stat("/", { timeout = "soon" }) end)
  end)
end)

describe("fs.exists", function()
  it("is true for files and directories, false when missing", function()
    local path = write("e.txt", "")
    assert.is_true(fs.exists(path))
    assert.is_true(fs.exists(dir))
    assert.is_false(fs.exists(dir .. "/nope"))
    assert.is_false(fs.exists(path .. "/under-a-file"))
  end)

  it("returns nil and a message for other errors", function()
    local ok, err = fs.exists(("x"):rep(5000))
    assert.is_nil(ok)
    assert.matches("^name too long: ", err)
  end)
end)

describe("fs.age", function()
  it("is the time since the last modification", function()
    local path = write("old.txt", "x")
    assert(os.execute("touch -d '@" .. (os.time() - 100) .. "' '" .. path .. "'"))
    local age = assert(fs.age(path))
    assert.is_true(age >= 99 and age < 110, "age " .. age)
    path = write("new.txt", "x")
    age = assert(fs.age(path))
    assert.is_true(age >= 0 and age < 5, "age " .. age)
  end)

  it("returns nil, 'no such file: ...' for a missing file", function()
    assert.same({ nil, "no such file: " .. dir .. "/gone" }, { fs.age(dir .. "/gone") })
  end)
end)

describe("fs.read", function()
  it("reads a whole small file", function()
    local path = write("r.txt", "line 1\nline 2\n")
    assert.equal("line 1\nline 2\n", fs.read(path))
  end)

  it("reads at most max_bytes", function()
    local path = write("big.bin", ("0123456789"):rep(20000)) -- 200,000 bytes
    assert.equal("0123456", fs.read(path, 7))
    assert.equal(200000, #fs.read(path))
    assert.equal(150001, #fs.read(path, 150001))
    assert.equal("", fs.read(path, 0))
  end)

  it("caps at 1 MiB by default", function()
    assert.equal(1048576, fs.read_max_default)
    local path = write("huge.bin", ("x"):rep(1048576 + 4096))
    assert.equal(1048576, #fs.read(path))
  end)

  it("reads files of the kernel that report size 0", function()
    local s = assert(fs.read("/proc/self/stat"))
    assert.matches("^%d+ %(", s)
  end)

  it("fails cleanly for a directory and a missing file", function()
    assert.same({ nil, "is a directory: " .. dir }, { fs.read(dir) })
    assert.same({ nil, "no such file: " .. dir .. "/none" }, { fs.read(dir .. "/none") })
  end)

  it("does not wait for a writer on a FIFO", function()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    assert.equal("", fs.read(fifo))
  end)

  it("raises on a bad max_bytes", function()
    assert.has_error(function() fs.read("/etc/hostname", -1) end)
    assert.has_error(function() fs.read("/etc/hostname", 1.5) end)
  end)

  it("leaves no descriptor open after 1,000 reads", function()
    local path = write("loop.txt", "abc")
    fs.read(path) -- warm up the threadpool
    local before = fd_count()
    for _ = 1, 1000 do
      assert.equal("abc", fs.read(path))
      assert.is_nil((fs.read(dir .. "/none")))
    end
    assert.equal(before, fd_count())
  end)
end)

describe("fs.disk", function()
  it("reports the root file system", function()
    local d = assert(fs.disk("/"))
    assert.is_true(d.total > 0)
    assert.is_true(d.free >= 0 and d.free <= d.total)
    assert.is_true(d.free_percent >= 0 and d.free_percent <= 100)
    -- agrees with df (same statfs; a few MB may change in between)
    local p = io.popen("df -B1 --output=avail / | tail -1")
    local avail = tonumber(p:read("l"))
    p:close()
    assert.is_true(math.abs(avail - d.free) < 64 * 1024 * 1024, ("df %d vs %d"):format(avail, d.free))
  end)

  it("fails for a missing path", function()
    assert.same({ nil, "no such file: /no/such/dir" }, { fs.disk("/no/such/dir") })
  end)
end)

describe("cancellation", function()
  it("frees ops abandoned by a check's deadline without touching the task", function()
    local path = write("c.txt", ("y"):rep(1048576))
    local g = assert(testing.load({ ["c.lua"] = ([[
      local fs = require "health.fs"
      health.check { name = "c", timeout = "20ms", run = function()
        while true do fs.read(%q) fs.stat(%q) end
      end }
    ]]):format(path, path) }))
    local before = fd_count()
    for _ = 1, 20 do
      local r = g:run("c")
      assert.equal("DOWN", r.status)
      assert.equal("timeout after 20ms", r.output)
    end
    g:close()
    health.sleep(0.05) -- reads still on the threadpool finish and close their file
    assert.equal(before, fd_count())
  end)

  it("accepts a per-call timeout", function()
    assert.equal("directory", fs.stat("/", { timeout = 1 }).type)
    assert.equal("directory", fs.stat("/", { timeout = "250ms" }).type)
  end)

  it("raises outside a check run when loaded as a script", function()
    local g, err = testing.load({ ["x.lua"] = 'require("health.fs").stat("/")' })
    assert.is_nil(g)
    assert.matches("health.fs.stat: called outside a check run", err)
  end)
end)

describe("health.checks.file_fresh", function()
  local function run(src, name)
    local g = assert(testing.load({ ["f.lua"] = src }))
    local r = g:run(name)
    g:close()
    return r
  end

  it("is UP while the file is fresh", function()
    local path = write("beat", "1")
    local r = run(('health.checks.file_fresh { name = "f", path = %q, max_age = 30 }'):format(path), "f")
    assert.equal("UP", r.status)
    assert.matches("^fresh: %ds old$", r.output)
    assert.matches('"path":', r.details)
    assert.matches('"age":', r.details)
  end)

  it("is DOWN 'stale: ...' when too old", function()
    local path = write("stale", "1")
    assert(os.execute("touch -d '@" .. (os.time() - 42) .. "' '" .. path .. "'"))
    local r = run(('health.checks.file_fresh { name = "f", path = %q, max_age = "30s" }'):format(path), "f")
    assert.equal("DOWN", r.status)
    assert.matches("^stale: 4%ds old %(max 30s%)$", r.output)
  end)

  it("is DOWN 'missing' when the file does not exist", function()
    local r = run(('health.checks.file_fresh { name = "f", path = %q, max_age = 5 }'):format(dir .. "/x"), "f")
    assert.equal("DOWN", r.status)
    assert.equal("missing", r.output)
  end)

  it("rejects bad options at the script's line", function()
    local g, err = testing.load({ ["f.lua"] = 'health.checks.file_fresh { name = "f", path = "/x" }' })
    assert.is_nil(g)
    assert.matches("f.lua:1: health.checks.file_fresh: option 'max_age' is required", err)
    g, err = testing.load({ ["f.lua"] = 'health.checks.file_fresh { name = "f", path = "/x", max_age = 1, x = 1 }' })
    assert.is_nil(g)
    assert.matches("f.lua:1: health.checks.file_fresh: unknown option 'x'", err)
  end)
end)

describe("health.checks.disk", function()
  local function run(src)
    local g = assert(testing.load({ ["d.lua"] = src }))
    local r = g:run("d")
    g:close()
    return r
  end

  it("is UP with enough free space, with details", function()
    local r = run('health.checks.disk { name = "d", path = "/", min_free_percent = 0.001 }')
    assert.equal("UP", r.status)
    assert.matches("^[%d.]+%% free %(", r.output)
    for _, k in ipairs { "free", "total", "free_percent" } do
      assert.matches('"' .. k .. '":', r.details)
    end
  end)

  it("gives the percentage and the sizes in one base (free of used + free)", function()
    local r = run('health.checks.disk { name = "d", path = "/", min_free_percent = 0 }')
    local pct, fv, fu, tv, tu = r.output:match("^([%d.]+)%% free %(([%d.]+) (%a+) of ([%d.]+) (%a+)%)$")
    assert.truthy(pct, r.output)
    local mult = { B = 1, KiB = 2 ^ 10, MiB = 2 ^ 20, GiB = 2 ^ 30, TiB = 2 ^ 40, PiB = 2 ^ 50 }
    local free, size = tonumber(fv) * mult[fu], tonumber(tv) * mult[tu]
    -- the sizes are rounded to 0.1 of their unit: allow that much
    assert.is_true(math.abs(free / size * 100 - tonumber(pct)) < 1.5, r.output)
    local d = assert(fs.disk("/"))
    assert.is_true(math.abs(size - (d.used + d.free)) <= 0.06 * mult[tu], r.output)
  end)

  it("is DOWN under min_free_percent and WARN under warn_free_percent", function()
    local d = assert(fs.disk("/"))
    local r = run('health.checks.disk { name = "d", path = "/", min_free_percent = 100 }')
    assert.equal("DOWN", r.status)
    assert.matches("under 100%%$", r.output)
    if d.free_percent > 1 then
      r = run('health.checks.disk { name = "d", path = "/", min_free_percent = 0.5, warn_free_percent = 100 }')
      assert.equal("WARN", r.status)
    end
  end)

  it("is DOWN with the error for a missing path", function()
    local r = run('health.checks.disk { name = "d", path = "/no/such" }')
    assert.equal("DOWN", r.status)
    assert.equal("no such file: /no/such", r.output)
  end)

  it("ships scripts/disk.lua, which loads and runs", function()
    local f = assert(io.open((os.getenv("HA_SOURCE_DIR") or ".") .. "/scripts/disk.lua"))
    local src = f:read("a")
    f:close()
    local g = assert(testing.load({ ["disk.lua"] = src }))
    local r = g:run("disk")
    assert.is_true(r.status == "UP" or r.status == "WARN" or r.status == "DOWN")
    assert.matches("free", r.output)
    g:close()
  end)
end)

describe("the README's one-liner on a missing file", function()
  local function run(body)
    local g = assert(testing.load({ ["hb.lua"] = 'local fs = require "health.fs"\n' ..
      'health.check { name = "hb", probes = { "liveness" }, run = function() ' .. body .. ' end }\n' }))
    local r = g:run("hb")
    g:close()
    return r
  end

  it("is DOWN saying the file is missing, then where the nil was used", function()
    local r = run('return fs.age("/no/such/app.heartbeat") < 30')
    assert.equal("DOWN", r.status)
    assert.matches("^no such file: /no/such/app%.heartbeat %(.*hb%.lua:2: attempt to compare nil with number%)$",
      r.output)
  end)

  it("names only the failure of the call just before", function()
    local r = run('local a = fs.age("/no/such/x"); assert(fs.exists("/")); return a < 30')
    assert.equal("DOWN", r.status)
    assert.matches("^.*hb%.lua:2: attempt to compare nil with number$", r.output)
    assert.not_matches("no such file", r.output)
  end)

  it("leaves other errors alone", function()
    local r = run('local a = fs.age("/no/such/x"); error("mine")')
    assert.matches("hb%.lua:2: mine$", r.output)
    assert.not_matches("no such file", r.output)
  end)
end)
