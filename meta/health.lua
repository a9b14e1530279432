---@meta health
-- LuaLS annotations of the agent's scripting API: the `health` global (also
-- `require "health"`) and the health.* modules, one file each under health/.
-- Installed in <prefix>/share/healthagent/meta; point your editor there (see
-- examples/.luarc.json). Annotations only: the agent never loads these files.

---@alias health.duration number|string seconds (0.5) or a string with a unit: "250ms", "2s", "1.5m", "1h", "1d"
---@alias health.probe "liveness"|"readiness"|"startup"

---What a check's `run` receives.
---@class health.ctx
---@field name string the check's name
---@field timeout number the run's deadline, in seconds
---@field attempt integer runs so far, this one included
---@field status "INIT"|"UP"|"WARN"|"DOWN" the check's current status
---@field last_output string? the previous run's output

---The fields of `health.check{}` (and of every `health.checks.*` factory).
---@class health.check_def
---@field name string unique across files; [A-Za-z0-9_.-]+, at most 128 characters
---@field probes? health.probe|health.probe[] default { "readiness" }; {}: in no probe (still in /healthz)
---@field timeout? health.duration hard deadline of one run; default 1s (config: default_timeout)
---@field ttl? health.duration how long a result is served from cache; default 5s (config: default_ttl)
---@field interval? health.duration background refresh, with +-10% jitter
---@field initial_delay? health.duration no run before this long after the scripts load
---@field failure_threshold? integer consecutive failures before DOWN; default 1
---@field success_threshold? integer consecutive successes before UP again; default 1
---@field critical? boolean false: a failure shows as WARN and fails no probe; default true
---@field memory? string|integer Lua memory one run may hold, e.g. "16MiB" (config: check_memory_limit)
---@field component_type? string health+json componentType ("component", "datastore", "system"); default "component"
---@field depends_on? string[] checks that must be UP or WARN for this one to run; else it shows DOWN naming the cause
---@field run fun(ctx: health.ctx): (boolean|health.warn_result), string?, table? the check itself

---A check whose results the application reports (PUT /-/checks/<name>,
---`healthagent report`, `health.report`): INIT until the first report,
---DOWN "no report for <ttl>" when none comes within ttl.
---@class health.push_def
---@field name string unique across checks and pushed checks; [A-Za-z0-9_.-]+, at most 128 characters
---@field ttl health.duration a report holds this long; required
---@field probes? health.probe|health.probe[] default { "readiness" }
---@field critical? boolean false: a failure shows as WARN and fails no probe; default true
---@field component_type? string health+json componentType; default "component"

---What `health.warn` returns, to be returned from `run`.
---@class health.warn_result

---A concurrent child task started by `health.spawn`.
---@class health.task
local task = {}

---Waits for the task: `true, results...` or `false, err`.
---@return boolean ok
---@return any ...
function task:wait() end

---One member's result as a Lua aggregate sees it (read-only).
---@class health.member_result
---@field name string
---@field status "UP"|"WARN"|"DOWN"|"INIT"
---@field output? string
---@field duration_ms number the last run's duration
---@field since? number wall clock (seconds) the current status began
---@field critical boolean

---A built-in aggregate: health.aggregate.worst, .any, or .quorum{...}.
---@class health.builtin_aggregate

---@alias health.status_codes { UP?: integer, WARN?: integer, DOWN?: integer, INIT?: integer }

---@alias health.aggregate_fn fun(results: health.member_result[]): (boolean|string|health.warn_result), string?

---The fields of `health.group{}`.
---@class health.group_def
---@field name string one namespace with checks; a probe's name sets that probe's aggregate and codes
---@field include? string[] member check names
---@field match? string a Lua pattern over check names
---@field exclude? string[] check names left out
---@field aggregate? health.builtin_aggregate|health.aggregate_fn default health.aggregate.worst
---@field path? string an extra path the group answers at (it is always at /groupz/<name>)
---@field success_status? integer HTTP code for UP and WARN (200)
---@field failure_status? integer HTTP code for DOWN and INIT (503)
---@field status_codes? health.status_codes per-status HTTP codes, replacing only what they name
---@field timeout? health.duration deadline of one Lua aggregate run (the checks' default timeout)

---The built-in aggregates.
---@class health.aggregate
---@field worst health.builtin_aggregate the worst member decides (the default; the probes' rule)
---@field any health.builtin_aggregate one passing member is enough
local aggregate = {}

---Passes while at least `min_up` members (or the share `ratio` of them, rounded up) pass.
---@param opts { min_up?: integer, ratio?: number }
---@return health.builtin_aggregate
function aggregate.quorum(opts) end

---@class health
---@field version string the agent's version
---@field checks health.checks one-line factories: health.checks.http{...}, tcp{...} ...
---@field aggregate health.aggregate built-in aggregates for health.group
health = {}

---Defines a group of checks; only while the script loads.
---@param def health.group_def
function health.group(def) end

---Defines a check; only while the script loads.
---@param def health.check_def
function health.check(def) end

---Declares a pushed check; only while the script loads.
---@param def health.push_def
function health.push(def) end

---Reports a result of the pushed check `name`, as PUT /-/checks/<name> does.
---From `run` only; raises on an unknown name, a check that is not pushed, a
---bad status or an output over 1024 bytes.
---@param name string
---@param status "UP"|"WARN"|"DOWN"
---@param output? string
function health.report(name, status, output) end

---The WARN result: `return health.warn("91% full", { used = 91 })`.
---@param msg string
---@param details? table
---@return health.warn_result
function health.warn(msg, details) end

---Sleeps, yielding only the calling check.
---@param seconds number
function health.sleep(seconds) end

---Wall-clock seconds since the epoch, with milliseconds.
---@return number
function health.now() end

---Seconds of a duration in the agent's one grammar (`"1.5m"` -> 90), or `nil, "bad duration '...'"`.
---@param v health.duration
---@return number? seconds
---@return string? err
function health.duration(v) end

---One log line tagged with the check (`print` logs at info too).
---@param level "debug"|"info"|"warn"|"error"
---@param msg string
function health.log(level, msg) end

---Runs fn(...) as a concurrent child task of the check: same deadline and
---memory allowance, cancelled when the run ends.
---@param fn function
---@param ... any
---@return health.task
function health.spawn(fn, ...) end

---The readiness override: `health.set_ready(false, "maintenance")` fails
---/readyz with that reason, `health.set_ready(true)` clears it. From `run` only.
---@param ready boolean
---@param reason? string
function health.set_ready(ready, reason) end

---Values shown on /info (merged over earlier calls). Never put secrets here.
---@param values table<string, any>
function health.info(values) end

return health
