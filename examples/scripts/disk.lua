-- Disk space: the data volume must keep some room, or the database stops
-- accepting writes.
local fs = require "health.fs"

-- The factory: DOWN under 5 % free, WARN under 15 %.
health.checks.disk {
  name = "data-volume",
  path = "/var/lib/postgresql",
  min_free_percent = 5,
  warn_free_percent = 15,
  interval = "30s",
}

-- By hand: an absolute floor in bytes matters more than a percentage on a
-- very large volume.
health.check {
  name = "spool-space",
  interval = "30s",
  run = function()
    local d, err = fs.disk("/var/spool")
    if not d then
      return false, err
    end
    local gib = d.free / 2 ^ 30
    local details = { free = d.free, total = d.total, free_percent = d.free_percent }
    if gib < 2 then
      return false, ("only %.1f GiB free"):format(gib), details
    end
    return true, ("%.1f GiB free (%.1f%%)"):format(gib, d.free_percent), details
  end,
}
