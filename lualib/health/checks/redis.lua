-- health.checks.redis{name=, url=, ...}: connects (AUTH, SELECT), sends PING,
-- expects PONG. details.role (master/slave) and details.connected_slaves
-- come from INFO replication. Every health.check field is accepted too.
--   health.checks.redis { name = "cache", url = "redis://:secret@10.0.0.5:6379/0" }
local common = require "health.checks.common"
local health = require "health"

local own = { url = true, connect_timeout = true }

return function(opts)
  local def, o = common.split("redis", opts, own)
  if type(o.url) ~= "string" and type(o.url) ~= "table" then
    error("health.checks.redis: option 'url' is required (a redis:// URL or a connect table)", 2)
  end
  local redis = require "health.redis"
  local url, copts = o.url, nil
  local ct = common.duration("redis", "connect_timeout", o.connect_timeout, true)
  if ct ~= nil then
    if type(url) == "table" then
      local t = {}
      for k, v in pairs(url) do t[k] = v end
      t.timeout = ct
      url = t
    else
      copts = { timeout = ct }
    end
  end
  def.run = function()
    local c <close>, err = redis.connect(url, copts)
    if not c then
      return false, err
    end
    local pong
    pong, err = c:command("PING")
    if pong ~= "PONG" then
      return false, err or ("unexpected reply to PING: " .. tostring(pong))
    end
    local details = {}
    local info = c:command("INFO", "replication")
    if type(info) == "string" then
      details.role = info:match("role:(%w+)")
      details.connected_slaves = tonumber(info:match("connected_slaves:(%d+)"))
    end
    return true, "PONG", details
  end
  health.check(def)
end
