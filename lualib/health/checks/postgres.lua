-- health.checks.postgres{name=, url=, query="SELECT 1", connect_timeout=, ...}:
-- connects, runs the query, is UP when it succeeds ("<n> row(s)", details
-- {rows = n}) and DOWN with the error otherwise. url is a postgresql:// URL or a libpq conninfo string;
-- its password never appears in the result. Every health.check field is
-- accepted too.
--   health.checks.postgres { name = "db", url = "postgresql://app:secret@10.0.0.7:5432/app" }
local common = require "health.checks.common"

return common.query_factory("postgres", "health.postgres", "a postgresql:// URL or a libpq conninfo string")
