-- health.checks.mysql{name=, url=, query="SELECT 1", connect_timeout=, ...}:
-- connects, runs the query, is UP when it succeeds ("<n> row(s)", details
-- {rows = n}) and DOWN with the error otherwise. url is a mysql:// URL;
-- its password never appears in the result. Every health.check field is
-- accepted too.
--   health.checks.mysql { name = "db", url = "mysql://app:secret@10.0.0.8:3306/app" }
local common = require "health.checks.common"
local health = require "health"

local own = { url = true, query = true, connect_timeout = true }

return function(opts)
  local def, o = common.split("mysql", opts, own)
  if type(o.url) ~= "string" then
    error("health.checks.mysql: option 'url' is required (a mysql:// URL)", 2)
  end
  if o.query ~= nil and type(o.query) ~= "string" then
    error("health.checks.mysql: option 'query' must be a string", 2)
  end
  local db = require "health.mysql"
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
