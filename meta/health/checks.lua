---@meta health.checks
-- One-line factories (lualib/health/checks/<kind>.lua): each takes its own
-- options plus every health.check field (name, probes, timeout, interval ...)
-- and defines the check.

---@class health.checks
local checks = {}

---@class health.checks.http_def: health.check_def
---@field url string http:// or https://
---@field expect_status? integer|integer[] default 200
---@field expect_body? string a Lua pattern the body must match
---@field method? string
---@field headers? table<string, string|number>
---@field body? string
---@field verify? boolean
---@field follow? boolean
---@field max_redirects? integer
---@field ca_file? string
---@field unix_socket? string
---@field http2? boolean|"prior_knowledge"
---@field max_body? integer
---@field connect_to? string
---@field run? nil

---UP when the answer has an expected status (and body).
---@param def health.checks.http_def
function checks.http(def) end

---@class health.checks.tcp_def: health.check_def
---@field host string
---@field port integer
---@field tls? boolean
---@field sni? string
---@field verify? boolean
---@field ca_file? string
---@field connect_timeout? health.duration
---@field run? nil

---UP when the connection (and the TLS handshake) succeeds.
---@param def health.checks.tcp_def
function checks.tcp(def) end

---@class health.checks.tls_expiry_def: health.checks.tcp_def
---@field port? integer default 443
---@field min_days? integer default 14: DOWN below, WARN below twice that

---DOWN when the server's certificate expired or expires within min_days.
---@param def health.checks.tls_expiry_def
function checks.tls_expiry(def) end

---@class health.checks.url_def: health.check_def
---@field url string
---@field query? string default "SELECT 1" (postgres, mysql)
---@field connect_timeout? health.duration
---@field run? nil

---PING must answer PONG.
---@param def health.checks.url_def redis://[[user]:password@]host[:port][/db]
function checks.redis(def) end

---Connects and runs SELECT 1.
---@param def health.checks.url_def postgresql:// URL or libpq conninfo
function checks.postgres(def) end

---Connects and runs SELECT 1.
---@param def health.checks.url_def mysql://user:password@host[:port][/db]
function checks.mysql(def) end

---@class health.checks.grpc_def: health.check_def
---@field target string "host:port"
---@field service? string default "": the server as a whole
---@field tls? boolean
---@field ca_file? string
---@field verify? boolean
---@field authority? string
---@field run? nil

---UP when grpc.health.v1 Check answers SERVING.
---@param def health.checks.grpc_def
function checks.grpc(def) end

---@class health.checks.file_fresh_def: health.check_def
---@field path string
---@field max_age health.duration
---@field run? nil

---DOWN when the file is missing or older than max_age.
---@param def health.checks.file_fresh_def
function checks.file_fresh(def) end

---@class health.checks.disk_def: health.check_def
---@field path string
---@field min_free_percent? number DOWN below
---@field warn_free_percent? number WARN below
---@field run? nil

---Free space of the file system holding path.
---@param def health.checks.disk_def
function checks.disk(def) end

---@class health.checks.nagios_def: health.check_def
---@field argv string[] the plugin and its arguments (no shell)
---@field env? table<string, string|number>
---@field cwd? string
---@field max_output? integer
---@field run? nil

---A Nagios plugin: exit 0 UP, 1 WARN, 2 DOWN, 3 DOWN "unknown: ...".
---@param def health.checks.nagios_def
function checks.nagios(def) end

return checks
