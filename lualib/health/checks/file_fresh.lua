-- health.checks.file_fresh{name=, path=, max_age=, ...}: UP while the file at
-- path was modified at most max_age ago: the heartbeat file, the last backup,
-- the cache another process keeps writing. Every health.check field is
-- accepted too.
--   health.checks.file_fresh { name = "heartbeat", path = "/run/app/heartbeat", max_age = 30 }
--   health.checks.file_fresh { name = "backup", path = "/backup/last.tar", max_age = "26h" }
-- Options: path (required), max_age (required; seconds or "30s", "5m", "1h",
-- "1d": the agent's one duration grammar, health.duration).
-- Results: DOWN "missing" when the file does not exist, DOWN "stale: 42s old
-- (max 30s)" when it is too old, otherwise UP "fresh: 3s old".
-- details: {path = path, age = seconds (milliseconds precision)}.
local common = require "health.checks.common"
local health = require "health"

return function(opts)
  local def, o = common.split("file_fresh", opts, { path = true, max_age = true })
  if type(o.path) ~= "string" or o.path == "" then
    error("health.checks.file_fresh: option 'path' is required (a file path)", 2)
  end
  if o.max_age == nil then
    error("health.checks.file_fresh: option 'max_age' is required (seconds or \"30s\", \"5m\", \"1h\", \"1d\")", 2)
  end
  local max_age = common.duration("file_fresh", "max_age", o.max_age)
  local fs = require "health.fs"
  local path = o.path
  def.run = function()
    local age, err = fs.age(path)
    if not age then
      if err:find("^no such file") then
        return false, "missing", { path = path }
      end
      return false, err, { path = path }
    end
    local details = { path = path, age = math.floor(age * 1000 + 0.5) / 1000 }
    if age > max_age then
      return false, ("stale: %ds old (max %gs)"):format(math.floor(age), max_age), details
    end
    return true, ("fresh: %ds old"):format(math.max(0, math.floor(age))), details
  end
  health.check(def)
end
