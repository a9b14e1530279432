---@meta health.mysql
-- MySQL and MariaDB through MariaDB Connector/C's non-blocking API (docs/mysql.md).

---@class health.mysql
local mysql = {}

---@class health.mysql.opts
---@field timeout? health.duration each call, never beyond the check's deadline

---@class health.mysql.conn
local conn = {}

---The rows, as tables keyed by column name.
---@param sql string
---@return table[]|nil rows
---@return string? err
function conn:query(sql) end

---Closes (COM_QUIT when idle); idempotent (also __close and __gc).
function conn:close() end

---@param url string mysql://user:password@host[:port][/db]
---@param opts? health.mysql.opts
---@return health.mysql.conn|nil conn
---@return string? err
function mysql.connect(url, opts) end

return mysql
