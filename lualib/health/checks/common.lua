-- Shared helpers of the check factories.
local M = {}

-- The fields health.check itself takes.
M.check_fields = {
  name = true, probes = true, timeout = true, ttl = true, interval = true,
  initial_delay = true, failure_threshold = true, success_threshold = true,
  critical = true, memory = true,
}

-- Splits opts into the health.check fields and the factory's own options.
-- Raises (at the caller's caller) on a missing name or an unknown option.
function M.split(kind, opts, own)
  if type(opts) ~= "table" then
    error("health.checks." .. kind .. ": expected a table of options", 3)
  end
  local def, mine = {}, {}
  for k, v in pairs(opts) do
    if M.check_fields[k] then
      def[k] = v
    elseif own[k] then
      mine[k] = v
    else
      error(("health.checks.%s: unknown option '%s'"):format(kind, tostring(k)), 3)
    end
  end
  if def.name == nil then
    error("health.checks." .. kind .. ": option 'name' is required", 3)
  end
  return def, mine
end

return M
