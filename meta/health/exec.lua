---@meta health.exec
-- Processes and Nagios plugins, no shell; on timeout the whole process group
-- is killed and reaped (docs/exec.md). Programs run as the agent's user.

---@class health.exec
---@field max_output_default integer bytes kept of stdout and of stderr (64 KiB)
local exec = {}

---@class health.exec.opts
---@field timeout? health.duration
---@field env? table<string, string|number> replaces the environment (PATH kept unless set)
---@field cwd? string
---@field max_output? integer
---@field stdin? string written to the command's stdin, then closed

---@class health.exec.result
---@field code integer|nil exit code (nil when killed by a signal)
---@field signal integer|nil
---@field stdout string
---@field stderr string

---@param argv string[] the program and its arguments
---@param opts? health.exec.opts
---@return health.exec.result|nil result
---@return string? err "timeout", "no such file: <argv[1]>", "permission denied" ...
function exec.run(argv, opts) end

---A Nagios plugin: "UP" (exit 0), "WARN" (1), "DOWN" (2), its first output
---line and the perfdata; nil, "unknown: ..." for 3 or anything else.
---@param argv string[]
---@param opts? health.exec.opts
---@return "UP"|"WARN"|"DOWN"|nil status
---@return string message
---@return table<string, {value: number, uom: string, warn: number?, crit: number?, min: number?, max: number?}>? perf
function exec.nagios(argv, opts) end

return exec
