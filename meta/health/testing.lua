---@meta health.testing
-- For specs run inside the agent (busted --lua=healthagent): loads scripts
-- into generations exactly as the agent does and runs their checks on demand.

---@class health.testing
local testing = {}

---@class health.testing.result
---@field status "INIT"|"UP"|"WARN"|"DOWN" after thresholds
---@field result "UP"|"WARN"|"DOWN" the run's raw result
---@field output string?
---@field details table?
---@field duration_ms number
---@field runs integer

---@class health.testing.state
---@field name string
---@field status "INIT"|"UP"|"WARN"|"DOWN"
---@field result "UP"|"WARN"|"DOWN"|nil the last run's raw result
---@field output string?
---@field where string "file:line" of the definition
---@field running boolean
---@field probes string[]
---@field critical boolean
---@field timeout number seconds
---@field interval number seconds (0: none)
---@field ttl number seconds
---@field max_age number seconds
---@field runs integer

---@class health.testing.group
---@field status "INIT"|"UP"|"WARN"|"DOWN" a Lua aggregate's last verdict (INIT before one, and for a built-in)
---@field output string?
---@field runs integer completed Lua aggregate runs
---@field kind "worst"|"quorum"|"any"|"lua"
---@field members string[] member check names, in order

---@class health.testing.gen
local gen = {}

---Runs the check once; yields until the run ends.
---@param name string
---@return health.testing.result
function gen:run(name) end

---The check's current state, without running it.
---@param name string
---@return health.testing.state
function gen:state(name) end

---A group's state (health.group).
---@param name string
---@return health.testing.group
function gen:group(name) end

---@return string[]
function gen:names() end

---Bytes of Lua heap the generation holds.
---@return integer
function gen:memory() end

---Tasks running.
---@return integer
function gen:tasks() end

function gen:close() end

---@param scripts string|table<string, string> a directory, or { ["a.lua"] = source }
---@param opts? { autorun: boolean }
---@return health.testing.gen|nil gen
---@return string? err
function testing.load(scripts, opts) end

---health.spawn for specs.
---@param fn function
---@param ... any
---@return health.task
function testing.spawn(fn, ...) end

---libuv handles open on the loop, besides the engine's own.
---@return integer
function testing.handles() end

---@class health.testing.dns_stats
---@field started integer lookups started through the agent's resolver (this thread)
---@field cancelled integer of those, cut short before they ran
---@field in_flight integer started, not yet ended

---Lookups of the agent's one resolver (health.dns, health.tcp, health.http, the database clients).
---@return health.testing.dns_stats
function testing.dns_stats() end

---Replaces the names only the agent's resolver knows: `{ ["svc.test"] = "127.0.0.1" }`
---(numeric addresses; at most 8; `{}` removes them). A request to such a name works only
---if the module resolved through the agent's resolver.
---@param hosts table<string, string>
function testing.dns_hosts(hosts) end

---Keeps every thread of libuv's pool busy for `seconds` (0 .. 10) without blocking the loop:
---lookups and file-system calls queued meanwhile wait, as behind a slow DNS server.
---@param seconds number
function testing.hold_threadpool(seconds) end

return testing
