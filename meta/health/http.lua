---@meta health.http
-- HTTP/1.1, HTTP/2 and HTTPS through libcurl on the engine loop (docs/http.md).
-- Any HTTP status is a response; nil, err only when the request failed.

---@class health.http
---@field max_body integer default body cap, bytes (1 MiB)
---@field has_http2 boolean libcurl was built with HTTP/2
---@field curl_version string
local http = {}

---@class health.http.opts
---@field url? string http:// or https:// (required for request)
---@field method? string default "GET" ("POST" with a body)
---@field headers? table<string, string|number>
---@field body? string
---@field timeout? health.duration default 30 s, never beyond the check's deadline
---@field verify? boolean default true
---@field ca_file? string
---@field follow? boolean follow redirects
---@field max_redirects? integer default 10
---@field http2? boolean|"prior_knowledge"
---@field unix_socket? string
---@field connect_to? string "host:port" to connect to instead of the URL's
---@field max_body? integer bytes of body kept, 0 .. 64 MiB

---@class health.http.response
---@field status integer
---@field headers table<string, string> lower-case names
---@field body string at most max_body bytes
---@field truncated boolean the body was longer than max_body
---@field time_ms number
---@field http_version "1.0"|"1.1"|"2"
---@field redirects integer

---@param opts health.http.opts
---@return health.http.response|nil response
---@return string? err
function http.request(opts) end

---@param url string
---@param opts? health.http.opts
---@return health.http.response|nil response
---@return string? err
function http.get(url, opts) end

return http
