-- Shared helpers of the check factories.
local M = {}

-- The fields health.check itself takes.
M.check_fields = {
  name = true, probes = true, timeout = true, ttl = true, interval = true,
  initial_delay = true, failure_threshold = true, success_threshold = true,
  critical = true, memory = true, max_age = true, component_type = true,
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
    local copts = o.connect_timeout ~= nil and { timeout = o.connect_timeout } or nil
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
