-- gRPC health checks (grpc.health.v1.Health/Check).
local grpc = require "health.grpc"

-- One line: UP when the server reports SERVING for the service.
health.checks.grpc {
  name = "orders",
  target = os.getenv("ORDERS_GRPC") or "127.0.0.1:50051",
  service = "orders.v1.Orders",   -- "" (the default) asks about the server as a whole
  interval = 5, timeout = 2,
}

-- Over TLS with a private CA; the certificate is for "payments.internal"
-- while we connect by address.
health.checks.grpc {
  name = "payments",
  target = os.getenv("PAYMENTS_GRPC") or "10.0.3.7:443",
  tls = true,
  ca_file = "/etc/ssl/certs/internal-ca.pem",
  authority = "payments.internal",
}

-- Hand-written: several services of one server in one check, WARN when only
-- an optional one is down.
health.check {
  name = "inventory",
  timeout = 3,
  run = function()
    local target = os.getenv("INVENTORY_GRPC") or "127.0.0.1:50052"
    local core, err = grpc.check(target, "inventory.v1.Stock", { timeout = 1 })
    if core ~= "SERVING" then
      return false, "Stock: " .. (core or err)
    end
    local extra = grpc.check(target, "inventory.v1.Forecast", { timeout = 1 })
    if extra ~= "SERVING" then
      return health.warn("Forecast: " .. tostring(extra))
    end
    return true, "SERVING"
  end,
}
