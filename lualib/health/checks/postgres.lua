-- health.checks.postgres{name=, url=, query="SELECT 1", connect_timeout=, ...}:
-- connects, runs the query, is UP when it succeeds ("<n> row(s)", details
-- {rows = n}) and DOWN with the error otherwise. url is a postgresql:// URL or a libpq conninfo string;
-- its password never appears in the result. Every health.check field is
-- accepted too.
--   health.checks.postgres { name = "db", url = "postgresql://app:secret@10.0.0.7:5432/app" }
local common = require "health.checks.common"
local health = require "health"

local own = { url = true, query = true, connect_timeout = true }

return function(opts)
  local def, o = common.split("postgres", opts, own)
  if type(o.url) ~= "string" then
    error("health.checks.postgres: option 'url' is required (a postgresql:// URL or a libpq conninfo string)", 2)
  end
  if o.query ~= nil and type(o.query) ~= "string" then
    error("health.checks.postgres: option 'query' must be a string", 2)
  end
  local db = require "health.postgres"
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
