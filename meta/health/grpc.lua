---@meta health.grpc
-- grpc.health.v1.Health/Check over health.http's machinery (docs/grpc.md).

---@class health.grpc
local grpc = {}

---@class health.grpc.opts
---@field timeout? health.duration also sent as grpc-timeout
---@field tls? boolean TLS with ALPN h2; otherwise h2c with prior knowledge
---@field ca_file? string
---@field verify? boolean
---@field authority? string :authority, SNI and the certificate's name

---"SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN", or nil, err.
---@param target string "host:port" or "[v6]:port"
---@param service? string default "": the server as a whole
---@param opts? health.grpc.opts
---@return "SERVING"|"NOT_SERVING"|"UNKNOWN"|"SERVICE_UNKNOWN"|nil status
---@return string? err
function grpc.check(target, service, opts) end

return grpc
