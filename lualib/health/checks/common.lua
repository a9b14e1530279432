-- Shared helpers of the check factories.
local M = {}

-- The fields health.check itself takes.
M.check_fields = {
  name = true, probes = true, timeout = true, ttl = true, interval = true,
  initial_delay = true, failure_threshold = true, success_threshold = true,
  critical = true, memory = true, max_age = true, component_type = true, depends_on = true,
}

-- The health+json componentType of each factory's checks, unless the call
-- gives one: databases are datastores, local resources the system.
local component_types = {
  postgres = "datastore", mysql = "datastore", redis = "datastore",
  disk = "system", file_fresh = "system", nagios = "system",
}

-- Splits opts into the health.check fields and the factory's own options.
-- Raises (at the caller's caller) on a missing name or an unknown option.
function M.split(kind, opts, own)
  if type(opts) ~= "table" then
    error("health.checks." .. kind .. ": expected a table of options", 3)
  end
  local def, mine = {}, {}
  for k, v in pairs(opts) do
    if own[k] then -- a factory's own option wins (file_fresh's max_age is the file's age)
      mine[k] = v
    elseif M.check_fields[k] then
      def[k] = v
    else
      error(("health.checks.%s: unknown option '%s'"):format(kind, tostring(k)), 3)
    end
  end
  if def.name == nil then
    error("health.checks." .. kind .. ": option 'name' is required", 3)
  end
  if def.component_type == nil then
    def.component_type = component_types[kind]
  end
  return def, mine
end

-- Seconds of the duration option name of a kind factory (nil stays nil),
-- in the agent's one grammar (health.duration: 0.5, "250ms", "2s", "1m",
-- "1h", "1d"). Raises at the factory's caller on a bad value, so the
-- mistake is reported at the user's line, not at run time.
function M.duration(kind, name, v, positive)
  if v == nil then
    return nil
  end
  local health = require "health"
  local s, err = health.duration(v)
  if not s then
    error(('health.checks.%s: option \'%s\': %s (use seconds or "250ms", "2s", "1m")'):format(kind, name, err), 3)
  end
  if positive and s == 0 then
    error(("health.checks.%s: option '%s' must be greater than 0"):format(kind, name), 3)
  end
  return s
end

-- The factory of a SQL database check (health.checks.postgres, .mysql):
-- options url (described by url_what in the error for a missing one),
-- query (default "SELECT 1") and connect_timeout. A run connects with
-- require(module).connect, runs the query, is UP when it succeeds ("<n>
-- row(s)", details {rows = n}) and DOWN with the error otherwise. Returns
-- function(opts), which raises at its caller on bad options.
function M.query_factory(kind, module, url_what)
  local health = require "health"
  local own = { url = true, query = true, connect_timeout = true }
  return function(opts)
    local def, o = M.split(kind, opts, own)
    if type(o.url) ~= "string" then
      error(("health.checks.%s: option 'url' is required (%s)"):format(kind, url_what), 2)
    end
    if o.query ~= nil and type(o.query) ~= "string" then
      error(("health.checks.%s: option 'query' must be a string"):format(kind), 2)
    end
    local db = require(module)
    local url, sql = o.url, o.query or "SELECT 1"
    local ct = M.duration(kind, "connect_timeout", o.connect_timeout, true)
    local copts = ct and { timeout = ct } or nil
    def.run = function()
      local c <close>, err = db.connect(url, copts)
      if not c then
        return false, err
      end
      local rows
      rows, err = c:query(sql)
      if not rows then
        return false, err
      end
      return true, ("%d row%s"):format(#rows, #rows == 1 and "" or "s"), { rows = #rows }
    end
    health.check(def)
  end
end

return M
