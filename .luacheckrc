-- .luacheckrc: luacheck over what the project ships (ctest lint/luacheck):
--   luacheck lualib scripts examples meta
-- Scripts run in Lua 5.4 with `health` as a read-only global; the config
-- file (examples/agent.lua) returns a table. meta/ holds LuaLS annotation
-- files: they define the API they describe, with empty bodies.
std = "lua54"
max_line_length = 120
read_globals = { "health" }

-- the key table of every configuration key is wider than a line
files["examples/agent.lua"] = { max_line_length = false }

files["meta/"] = {
  globals = { "health" },
  unused_args = false,
  ignore = { "212", "241" }, -- empty stubs: unused arguments, variables mutated but never read
}
