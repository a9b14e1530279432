-- health.checks.nagios{name=, argv=, ...}: runs a Nagios/Icinga/monitoring-
-- plugins plugin and maps its exit code: 0 OK -> UP, 1 WARNING -> WARN,
-- 2 CRITICAL -> DOWN, 3 UNKNOWN (or any other end) -> DOWN "unknown: ...".
-- The first output line (without perfdata) is the message; the perfdata is
-- parsed into details. Every health.check field is accepted too; the
-- check's timeout ends the plugin (its whole process group is killed).
--   health.checks.nagios {
--     name = "root-disk",
--     argv = { "/usr/lib/nagios/plugins/check_disk", "-w", "10%", "-c", "5%", "-p", "/" },
--   }
-- Options: argv (list of strings; no shell), env, cwd, max_output: as for
-- health.exec.run.
-- details: {[label] = {value=, uom=, warn=, crit=, min=, max=}, ...}.
local common = require "health.checks.common"
local health = require "health"

return function(opts)
  local def, o = common.split("nagios", opts, { argv = true, env = true, cwd = true, max_output = true })
  if type(o.argv) ~= "table" or type(o.argv[1]) ~= "string" then
    error("health.checks.nagios: option 'argv' is required (a list of strings: the plugin and its arguments)", 2)
  end
  for i, a in ipairs(o.argv) do
    if type(a) ~= "string" then
      error(("health.checks.nagios: argv[%d] must be a string"):format(i), 2)
    end
  end
  local exec = require "health.exec"
  local argv = table.move(o.argv, 1, #o.argv, 1, {})
  local eopts = { env = o.env, cwd = o.cwd, max_output = o.max_output }
  def.run = function()
    local status, message, details = exec.nagios(argv, eopts)
    if status == "UP" then
      return true, message, details
    elseif status == "WARN" then
      return health.warn(message, details)
    end
    return false, message, details
  end
  health.check(def)
end
