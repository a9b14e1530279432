-- PostgreSQL: the factory, and a custom check on replication lag. The
-- server and the credentials come from libpq's environment variables, with
-- the defaults below.
local host, port = os.getenv("PGHOST") or "127.0.0.1", os.getenv("PGPORT") or "5432"
local user, password = os.getenv("PGUSER") or "app", os.getenv("PGPASSWORD") or ""
local database = os.getenv("PGDATABASE") or "app"

-- Connects and runs SELECT 1.
health.checks.postgres {
  name = "postgres",
  url = ("postgresql://%s:%s@%s:%s/%s"):format(user, password, host, port, database),
  timeout = 3,
}

-- On a standby: DOWN when replay lags more than 30 s behind.
local postgres = require "health.postgres"
health.check {
  name = "postgres-replication-lag",
  timeout = 3,
  interval = 15,
  run = function()
    local db <close>, err = postgres.connect(
      ("host=%s port=%s dbname=%s user=%s password=%s"):format(host, port, database, user, password), { timeout = 2 })
    if not db then return false, err end
    local rows, qerr = db:query([[SELECT pg_is_in_recovery() AS standby,
      COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)::float8 AS lag]])
    if not rows then return false, qerr end
    local r = rows[1]
    if not r.standby then return true, "primary" end
    return r.lag < 30, ("lag %.1fs"):format(r.lag), { lag = r.lag }
  end,
}
