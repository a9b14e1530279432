-- health.dns, inside the agent's runtime:
--   busted --lua=build/healthagent tests/unit/dns_spec.lua
local testing = require "health.testing"
local dns = require "health.dns"

after_each(function()
  collectgarbage()
  assert.equal(0, testing.handles())
end)

local function contains(list, x)
  for _, v in ipairs(list) do
    if v == x then
      return true
    end
  end
  return false
end

describe("dns.resolve", function()
  it("resolves localhost to a list containing 127.0.0.1", function()
    local addrs, err = dns.resolve("localhost")
    assert.is_nil(err)
    assert.is_true(contains(addrs, "127.0.0.1"), table.concat(addrs, " "))
    addrs = assert(dns.resolve("localhost", { family = "inet" }))
    for _, a in ipairs(addrs) do
      assert.matches("^%d+%.%d+%.%d+%.%d+$", a)
    end
  end)

  it("returns a numeric address as it is, once", function()
    assert.same({ "127.0.0.1" }, dns.resolve("127.0.0.1"))
    assert.same({ "::1" }, dns.resolve("::1", { family = "inet6" }))
  end)

  it("says it cannot resolve an unknown name, as every module does", function()
    local addrs, err = dns.resolve("no-such-host.invalid", { timeout = 5 })
    assert.is_nil(addrs)
    assert.equal("cannot resolve host 'no-such-host.invalid'", err)
    addrs, err = dns.resolve("127.0.0.1", { family = "inet6" })
    assert.is_nil(addrs)
    assert.equal("cannot resolve host '127.0.0.1'", err)
  end)

  it("raises on misuse", function()
    assert.has_error(function() dns.resolve() end)
    assert.has_error(function() dns.resolve({}) end)
    assert.has_error(function() dns.resolve("") end)
    assert.has_error(function() dns.resolve("localhost", { family = "ipx" }) end,
      'health.dns.resolve: option \'family\' must be "inet" or "inet6"')
    assert.has_error(function() dns.resolve("localhost", { colour = 1 }) end,
      "health.dns.resolve: unknown option 'colour'")
    assert.has_error(function() dns.resolve("localhost", { timeout = 0 }) end)
  end)

  it("works in checks, and not while a script loads", function()
    local g = assert(testing.load({ ["d.lua"] = [[
local dns = require "health.dns"
health.check { name = "dns", run = function()
  local a, err = dns.resolve("localhost")
  if not a then return false, err end
  return true, table.concat(a, ",")
end }
]] }))
    local r = g:run("dns")
    assert.equal("UP", r.status)
    assert.matches("127.0.0.1", r.output)
    g:close()
    local err
    g, err = testing.load({ ["early.lua"] = 'require("health.dns").resolve("localhost")' })
    assert.is_nil(g)
    assert.matches("^early.lua:1: health.dns.resolve: called outside a check run", err)
  end)

  it("resolves many names at once and leaves nothing behind when cut short", function()
    local src = {}
    for i = 1, 50 do
      src[#src + 1] = ([[health.check { name = "r%d", timeout = "%s", run = function()
  return require("health.dns").resolve("localhost") ~= nil
end }]]):format(i, i % 2 == 0 and "1ms" or "2s")
    end
    local g = assert(testing.load({ ["many.lua"] = table.concat(src, "\n") }))
    for i = 1, 50 do
      local r = g:run("r" .. i)
      if i % 2 == 1 then
        assert.equal("UP", r.status)
      end
    end
    g:close()
  end)
end)
