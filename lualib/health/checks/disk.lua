-- health.checks.disk{name=, path=, min_free_percent=, ...}: free space on the
-- file system holding path. DOWN under min_free_percent, WARN under
-- warn_free_percent (when given), otherwise UP. Every health.check field is
-- accepted too.
--   health.checks.disk { name = "data-disk", path = "/var/lib/app", min_free_percent = 5 }
--   health.checks.disk { name = "disk", path = ".", min_free_percent = 5, warn_free_percent = 10 }
-- Options: path ("/" when absent), min_free_percent (10 when absent),
-- warn_free_percent (none when absent; must be above min_free_percent).
-- "Free" is what an unprivileged process may still write (df's Avail), and
-- free_percent leaves out the blocks reserved for root (100 - df's Use%);
-- the output gives free of used + free, the same base ("80.7% free (77.2
-- GiB of 95.6 GiB)").
-- details: {path =, free = bytes, total = bytes, free_percent = n}.
local common = require "health.checks.common"
local health = require "health"

local function human(bytes)
  local units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" }
  local i = 1
  while bytes >= 1024 and i < #units do
    bytes = bytes / 1024
    i = i + 1
  end
  return (i == 1 and "%d %s" or "%.1f %s"):format(bytes, units[i])
end

local function percent(v, name)
  if v ~= nil and (not math.type(v) or v < 0 or v > 100) then
    error(("health.checks.disk: option '%s' must be a number from 0 to 100"):format(name), 3)
  end
  return v
end

return function(opts)
  local def, o = common.split("disk", opts, { path = true, min_free_percent = true, warn_free_percent = true })
  local path = o.path or "/"
  if type(path) ~= "string" or path == "" then
    error("health.checks.disk: option 'path' must be a non-empty path", 2)
  end
  local min = percent(o.min_free_percent, "min_free_percent") or 10
  local warn = percent(o.warn_free_percent, "warn_free_percent")
  if warn and warn <= min then
    error("health.checks.disk: option 'warn_free_percent' must be above min_free_percent", 2)
  end
  local fs = require "health.fs"
  def.run = function()
    local d, err = fs.disk(path)
    if not d then
      return false, err, { path = path }
    end
    local details = { path = path, free = d.free, total = d.total, free_percent = d.free_percent }
    -- one base: the percentage is of used + free (what df's Use% counts,
    -- without root's reserve), and so is the size shown next to it
    local text = ("%.1f%% free (%s of %s)"):format(d.free_percent, human(d.free), human(d.used + d.free))
    if d.free_percent < min then
      return false, ("%s, under %g%%"):format(text, min), details
    elseif warn and d.free_percent < warn then
      return health.warn(("%s, under %g%%"):format(text, warn), details)
    end
    return true, text, details
  end
  health.check(def)
end
