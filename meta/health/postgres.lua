---@meta health.postgres
-- PostgreSQL through libpq's asynchronous API (docs/postgres.md).

---@class health.postgres
local postgres = {}

---@class health.postgres.opts
---@field timeout? health.duration the connect and each query

---@class health.postgres.conn
local conn = {}

---The rows of the last statement's result, as tables keyed by column name.
---@param sql string
---@return table[]|nil rows
---@return string? err
function conn:query(sql) end

---Closes at once; idempotent (also __close and __gc).
function conn:close() end

---@param conninfo string a postgresql:// URL or a libpq "key=value" conninfo
---@param opts? health.postgres.opts
---@return health.postgres.conn|nil conn
---@return string? err
function postgres.connect(conninfo, opts) end

---The conninfo or URL with its password as ***.
---@param conninfo string
---@return string
function postgres.redact(conninfo) end

return postgres
