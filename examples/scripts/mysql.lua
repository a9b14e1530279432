-- MySQL / MariaDB: the factory, and a custom check on connection headroom.
-- The server and the credentials come from the environment (the variables
-- of the mysql client), with the defaults below.
local host = os.getenv("MYSQL_HOST") or "127.0.0.1"
local port = os.getenv("MYSQL_TCP_PORT") or "3306"
local user, password = os.getenv("MYSQL_USER") or "app", os.getenv("MYSQL_PWD") or ""
local database = os.getenv("MYSQL_DATABASE") or "app"

-- Connects and runs SELECT 1.
health.checks.mysql {
  name = "mysql",
  url = ("mysql://%s:%s@%s:%s/%s"):format(user, password, host, port, database),
  timeout = 3,
}

-- WARN when more than 90% of max_connections are in use.
local mysql = require "health.mysql"
health.check {
  name = "mysql-connections",
  timeout = 3,
  interval = 30,
  run = function()
    local db <close>, err = mysql.connect(("mysql://%s:%s@%s:%s/"):format(user, password, host, port))
    if not db then return false, err end
    local rows, qerr = db:query([[SELECT @@max_connections AS max,
      (SELECT COUNT(*) FROM information_schema.PROCESSLIST) AS used]])
    if not rows then return false, qerr end
    local r = rows[1]
    if r.used / r.max > 0.9 then
      return health.warn(("%d of %d connections"):format(r.used, r.max))
    end
    return true, ("%d of %d connections"):format(r.used, r.max)
  end,
}
