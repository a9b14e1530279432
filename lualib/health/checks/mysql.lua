-- health.checks.mysql{name=, url=, query="SELECT 1", connect_timeout=, ...}:
-- connects, runs the query, is UP when it succeeds ("<n> row(s)", details
-- {rows = n}) and DOWN with the error otherwise. url is a mysql:// URL;
-- its password never appears in the result. Every health.check field is
-- accepted too.
--   health.checks.mysql { name = "db", url = "mysql://app:secret@10.0.0.8:3306/app" }
local common = require "health.checks.common"

return common.query_factory("mysql", "health.mysql", "a mysql:// URL")
