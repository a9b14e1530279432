-- An example that reads a file: the machine's name must be readable and
-- non-empty. Replace the path with a file your application keeps fresh.
-- health.fs reads on libuv's thread pool, so the engine never waits for the
-- disk (io.open would block every check while it reads).
local fs = require "health.fs"
local path = "/etc/hostname"

health.check {
  name = "hostname-file",
  probes = { "readiness" },
  ttl = "30s",
  run = function()
    local text, err = fs.read(path, 256)
    if not text then
      return false, err -- "no such file: /etc/hostname", "permission denied: ...", "timeout"
    end
    local name = text:match("^%s*(%S+)")
    if not name then
      return false, path .. " is empty"
    end
    return true, "host " .. name, { path = path }
  end,
}
