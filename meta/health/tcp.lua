---@meta health.tcp
-- TCP and TLS sockets (docs/tcp.md). I/O failure returns nil, message:
-- "connection refused", "timeout", "closed", "connection reset",
-- "no address for <host>", "tls: ...".

---@class health.tcp
local tcp = {}

---@class health.tcp.connect_opts
---@field timeout? health.duration the whole connect (resolve, connect, TLS); later calls' default too
---@field tls? boolean TLS 1.2+ over the connection
---@field sni? string default: host (never sent for an IP address)
---@field verify? boolean default true: chain and name
---@field ca_file? string PEM file of the CAs to trust instead of the system's

---@class health.tcp.call_opts
---@field timeout? health.duration

---@class health.tcp.certificate
---@field subject string RFC 2253, "CN=localhost"
---@field issuer string
---@field not_before string RFC 3339 UTC
---@field not_after string RFC 3339 UTC
---@field days_left integer negative once expired

---@class health.tcp.socket
local socket = {}

---Sends all of data. Returns its length, or nil, err.
---@param data string
---@param opts? health.tcp.call_opts
---@return integer|nil sent
---@return string? err
function socket:send(data, opts) end

---"*l" (default) a line without its LF (and CR), n exactly n bytes, "*a"
---everything until the peer closes. On failure: nil, err, partial.
---@param pattern? "*l"|"l"|"*a"|"a"|integer
---@param opts? health.tcp.call_opts
---@return string|nil data
---@return string? err
---@return string? partial
function socket:receive(pattern, opts) end

---The peer's certificate (TLS only), also with verify = false and after close.
---@return health.tcp.certificate|nil cert
---@return string? err
function socket:certificate() end

---The default timeout of later calls (nil: the rest of the check's deadline).
---@param seconds? health.duration
function socket:settimeout(seconds) end

---The address connected to, "127.0.0.1:6379".
---@return string
function socket:address() end

---Closes the connection; idempotent. Also `local s <close> = ...`.
function socket:close() end

---Connects to host:port. Returns the socket, or nil, err.
---@param host string a name or a numeric IPv4/IPv6 address
---@param port integer
---@param opts? health.tcp.connect_opts
---@return health.tcp.socket|nil socket
---@return string? err
function tcp.connect(host, port, opts) end

return tcp
