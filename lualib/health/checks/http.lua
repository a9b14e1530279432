-- health.checks.http: an HTTP endpoint check, with the semantics of a Dapr
-- app health check (initial delay, interval, timeout, failure threshold,
-- success status code).
--
--   health.checks.http {
--     name = "api", url = "http://127.0.0.1:8080/healthz",
--     expect_status = 200,            -- a number or a list: {200, 204}
--     expect_body = "^ok",            -- optional Lua pattern the body must match
--     interval = 5, timeout = 2, failure_threshold = 3, initial_delay = 10,
--   }
--
-- Also takes method, headers, body, verify, follow, max_redirects, ca_file,
-- unix_socket, http2, max_body and connect_to (see health.http), and every
-- health.check field. UP: "status 200 in 3 ms"; DOWN: the request's error
-- ("timeout", "connection refused", "tls: ...") or "status 503, expected 200".
-- The URL never appears in the output or details (it may hold a password).
local common = require "health.checks.common"
local health = require "health"
local http = require "health.http"

local request_fields = {
  method = true, headers = true, body = true, verify = true, follow = true, max_redirects = true,
  ca_file = true, unix_socket = true, http2 = true, max_body = true, connect_to = true,
}
local own = { url = true, expect_status = true, expect_body = true }
for k in pairs(request_fields) do own[k] = true end

-- The accepted statuses as a set, and their text for messages.
local function status_set(v)
  if v == nil then v = 200 end
  local list = type(v) == "table" and v or { v }
  local set, text = {}, {}
  for _, s in ipairs(list) do
    if math.type(s) ~= "integer" or s < 100 or s > 599 then
      error("health.checks.http: 'expect_status' must be an HTTP status or a list of them", 3)
    end
    set[s] = true
    text[#text + 1] = tostring(s)
  end
  if #text == 0 then
    error("health.checks.http: 'expect_status' must not be empty", 3)
  end
  return set, table.concat(text, " or ")
end

return function(opts)
  local def, mine = common.split("http", opts, own)
  if type(mine.url) ~= "string" or not mine.url:match("^[Hh][Tt][Tt][Pp][Ss]?://") then
    error("health.checks.http: option 'url' must be an http:// or https:// URL", 2)
  end
  local ok_status, expected = status_set(mine.expect_status)
  local pattern = mine.expect_body
  if pattern ~= nil then
    if type(pattern) ~= "string" or not pcall(string.find, "", pattern) then
      error("health.checks.http: 'expect_body' must be a valid Lua pattern", 2)
    end
  end
  local req = { url = mine.url }
  for k in pairs(request_fields) do req[k] = mine[k] end

  def.run = function()
    local r, err = http.request(req)
    if not r then
      return false, err
    end
    local details = { status = r.status, time_ms = r.time_ms, http_version = r.http_version }
    if not ok_status[r.status] then
      return false, ("status %d, expected %s"):format(r.status, expected), details
    end
    if pattern and not r.body:find(pattern) then
      return false, "body does not match the expected pattern", details
    end
    return true, ("status %d in %d ms"):format(r.status, r.time_ms), details
  end
  return health.check(def)
end
