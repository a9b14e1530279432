-- An example that reads a file: the machine's name must be readable and
-- non-empty. Replace the path with a file your application keeps fresh.
local path = "/etc/hostname"

health.check {
  name = "hostname-file",
  probes = { "readiness" },
  ttl = "30s",
  run = function()
    local f, err = io.open(path, "r")
    if not f then
      return false, "cannot read " .. path .. ": " .. tostring(err)
    end
    local name = f:read("l")
    f:close()
    if not name or name == "" then
      return false, path .. " is empty"
    end
    return true, "host " .. name, { path = path }
  end,
}
