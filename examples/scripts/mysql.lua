-- MySQL / MariaDB: the factory, and a custom check on connection headroom.

-- Connects and runs SELECT 1.
health.checks.mysql {
  name = "db",
  url = "mysql://app:" .. (os.getenv("MYSQL_PASSWORD") or "") .. "@127.0.0.1:3306/app",
  timeout = 3,
}

-- WARN when more than 90% of max_connections are in use.
local mysql = require "health.mysql"
health.check {
  name = "db-connections",
  timeout = 3,
  interval = 30,
  run = function()
    local db <close>, err = mysql.connect("mysql://monitor:" .. (os.getenv("MYSQL_PASSWORD") or "") .. "@127.0.0.1/")
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
