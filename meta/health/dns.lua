---@meta health.dns
-- Name resolution on libuv's thread pool (docs/dns.md).

---@class health.dns
local dns = {}

---@class health.dns.opts
---@field family? "inet"|"inet6" default both
---@field timeout? health.duration

---The name's addresses, in the resolver's order, or nil, err ("no such host:
---<name>", "dns: temporary failure resolving <name>", "timeout").
---@param name string
---@param opts? health.dns.opts
---@return string[]|nil addresses
---@return string? err
function dns.resolve(name, opts) end

return dns
