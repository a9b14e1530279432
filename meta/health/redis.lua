---@meta health.redis
-- Redis through hiredis' non-blocking API (docs/redis.md). Passwords are
-- masked in every message.

---@class health.redis
local redis = {}

---@class health.redis.opts
---@field timeout? health.duration the connect and every command

---@class health.redis.params: health.redis.opts
---@field host? string
---@field port? integer
---@field path? string a unix socket
---@field user? string
---@field password? string
---@field db? integer

---@class health.redis.client
local client = {}

---One command; the reply as a Lua value, or nil, err.
---@param name string
---@param ... string|number
---@return any reply
---@return string? err
function client:command(name, ...) end

---Closes at once; idempotent (also __close and __gc).
function client:close() end

---@param url string|health.redis.params redis://[[user]:password@]host[:port][/db] or unix:///path
---@param opts? health.redis.opts
---@return health.redis.client|nil client
---@return string? err
function redis.connect(url, opts) end

return redis
