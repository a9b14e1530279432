---@meta health.fs
-- Files and disks on libuv's thread pool: the engine never blocks (docs/fs.md).
-- Errors: "no such file: <path>", "permission denied: <path>", "timeout" ...

---@class health.fs
---@field read_max_default integer default max_bytes of fs.read (1 MiB)
local fs = {}

---@class health.fs.opts
---@field timeout? health.duration
---@field follow? boolean stat: follow a symbolic link (default true)

---@class health.fs.stat
---@field size integer bytes
---@field mtime number epoch seconds
---@field mode integer
---@field type "file"|"directory"|"link"|"other"
---@field uid integer
---@field gid integer

---@class health.fs.disk
---@field free integer bytes available to unprivileged users
---@field total integer bytes
---@field used integer bytes
---@field free_percent number

---@param path string
---@param opts? health.fs.opts
---@return health.fs.stat|nil stat
---@return string? err
function fs.stat(path, opts) end

---@param path string
---@param opts? health.fs.opts
---@return boolean|nil exists
---@return string? err
function fs.exists(path, opts) end

---Seconds since the last modification.
---@param path string
---@param opts? health.fs.opts
---@return number|nil age
---@return string? err
function fs.age(path, opts) end

---@param path string
---@param max_bytes? integer default fs.read_max_default
---@param opts? health.fs.opts
---@return string|nil content
---@return string? err
function fs.read(path, max_bytes, opts) end

---statfs(2) of the file system holding path.
---@param path string
---@param opts? health.fs.opts
---@return health.fs.disk|nil disk
---@return string? err
function fs.disk(path, opts) end

return fs
