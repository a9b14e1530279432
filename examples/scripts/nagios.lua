-- Nagios / Icinga / monitoring-plugins plugins as checks. Debian ships the
-- basic set in monitoring-plugins-basic (/usr/lib/nagios/plugins).
local exec = require "health.exec"
local plugins = "/usr/lib/nagios/plugins"
local smtp_host, smtp_port = os.getenv("SMTP_HOST") or "127.0.0.1", os.getenv("SMTP_PORT") or "25"
local pg_host, pg_port = os.getenv("PGHOST") or "127.0.0.1", os.getenv("PGPORT") or "5432"

-- The factory: exit 0 -> UP, 1 -> WARN, 2 -> DOWN, 3 -> DOWN "unknown: ...";
-- the first output line is the message, perfdata becomes details. The
-- check's timeout kills the plugin and everything it started.
health.checks.nagios {
  name = "root-disk",
  argv = { plugins .. "/check_disk", "-w", "10%", "-c", "5%", "-p", "/" },
  interval = "1m",
  timeout = "10s",
}

-- (smtp_banner.lua checks the same server by hand: the names differ)
health.checks.nagios {
  name = "smtp-plugin",
  argv = { plugins .. "/check_smtp", "-H", smtp_host, "-p", smtp_port, "-t", "5" },
  interval = "30s",
  timeout = "6s",
}

-- By hand, when the perfdata needs a threshold of its own: load average
-- from check_load, DOWN when the 5-minute load exceeds 8.
health.check {
  name = "load",
  interval = "30s",
  run = function()
    local status, message, perf = exec.nagios { plugins .. "/check_load", "-w", "20,20,20", "-c", "40,40,40" }
    if status == nil then
      return false, message -- "unknown: ...", "timeout", "no such file: ..."
    end
    local load5 = perf.load5 and perf.load5.value
    if load5 and load5 > 8 then
      return false, ("load %.2f over 8"):format(load5), perf
    end
    return true, message, perf
  end,
}

-- Any command, not only plugins: exec.run gives the exit code and output.
health.check {
  name = "postgres-accepting",
  interval = "10s",
  run = function()
    local r, err = exec.run({ "pg_isready", "-h", pg_host, "-p", pg_port }, { timeout = 3 })
    if not r then
      return false, err
    end
    return r.code == 0, (r.stdout:gsub("%s+$", ""))
  end,
}
