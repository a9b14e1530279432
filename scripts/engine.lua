-- The agent's own engine health: how late a 10 ms sleep wakes up tells
-- whether the engine loop is keeping up. Liveness: if this fails, the agent
-- itself is in trouble and a restart is the right answer.
health.check {
  name = "engine",
  probes = { "liveness", "readiness" },
  timeout = "1s",
  interval = "10s",
  run = function()
    local t0 = health.now()
    health.sleep(0.01)
    local lag_ms = (health.now() - t0) * 1000 - 10
    if lag_ms < 0 then lag_ms = 0 end
    local details = { lag_ms = math.floor(lag_ms * 10 + 0.5) / 10 }
    if lag_ms > 250 then
      return false, string.format("engine loop lags %.0f ms", lag_ms), details
    elseif lag_ms > 50 then
      return health.warn(string.format("engine loop lags %.0f ms", lag_ms), details)
    end
    return true, "engine loop responsive", details
  end,
}
