-- health.checks: one-line factories that build whole checks.
--   health.checks.http { name = "api", url = "http://127.0.0.1:8080/ready" }
-- Each factory lives in lualib/health/checks/<kind>.lua and returns a
-- function taking the options table; it accepts every health.check field
-- too and calls health.check itself. Loaded on first use.
local checks = {}

return setmetatable(checks, {
  __index = function(t, kind)
    if type(kind) ~= "string" or not kind:match("^[%w_]+$") then
      return nil
    end
    local ok, factory = pcall(require, "health.checks." .. kind)
    if not ok then
      error("health.checks." .. kind .. ": no such check factory", 2)
    end
    rawset(t, kind, factory)
    return factory
  end,
})
