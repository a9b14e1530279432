-- health.checks.grpc: the standard gRPC health check (grpc.health.v1).
--
--   health.checks.grpc { name = "orders", target = "127.0.0.1:50051", service = "orders" }
--   health.checks.grpc { name = "edge", target = "10.0.0.5:443", tls = true,
--                        ca_file = "/etc/ssl/ca.pem", authority = "edge.internal" }
--
-- SERVING is UP; NOT_SERVING, UNKNOWN and SERVICE_UNKNOWN are DOWN with that
-- word as the output; a failed call is DOWN with its message ("timeout",
-- "connection refused", "grpc: UNIMPLEMENTED: ..."). Takes every
-- health.check field too; the call's own timeout is the check's.
local common = require "health.checks.common"
local health = require "health"
local grpc = require "health.grpc"

local own = { target = true, service = true, tls = true, ca_file = true, authority = true, verify = true }

return function(opts)
  local def, mine = common.split("grpc", opts, own)
  if type(mine.target) ~= "string" or not mine.target:match(":%d+$") then
    error("health.checks.grpc: option 'target' must be \"host:port\"", 2)
  end
  if mine.service ~= nil and type(mine.service) ~= "string" then
    error("health.checks.grpc: option 'service' must be a string", 2)
  end
  local target, service = mine.target, mine.service or ""
  local call = { tls = mine.tls, ca_file = mine.ca_file, authority = mine.authority, verify = mine.verify }

  def.run = function()
    local status, err = grpc.check(target, service, call)
    if not status then
      return false, err
    end
    return status == "SERVING", status, { status = status }
  end
  return health.check(def)
end
