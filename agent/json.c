/* json.c: the Lua-to-JSON encoder (see json.h): a check result's details
 * table and the health.info values become the JSON the front serves. */
#include "json.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <lauxlib.h>

static void json_value(lua_State *L, int idx, ha_buf *b, size_t cap, int depth);

/* True when the table at idx is a non-empty sequence 1..n with no other keys. */
static bool json_is_array(lua_State *L, int idx, size_t cap, lua_Integer *len)
{
    lua_Integer n = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if ((size_t)n > cap) { /* larger than anything encodable within cap: an array will do */
            lua_pop(L, 2);
            *len = n;
            return true;
        }
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return false;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max)
            max = k;
        n++;
    }
    *len = max;
    return n > 0 && n == max;
}

/* Appends the Lua value at idx as JSON. Stops adding once the buffer passes
 * cap, so a huge or cyclic table costs bounded work (the caller replaces an
 * oversized result). Raw access only. */
static void json_value(lua_State *L, int idx, ha_buf *b, size_t cap, int depth)
{
    if (b->len > cap)
        return;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        buf_adds(b, "null");
        break;
    case LUA_TBOOLEAN:
        buf_adds(b, lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            buf_printf(b, "%lld", (long long)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (isfinite(d))
                buf_printf(b, "%.14g", d);
            else
                buf_adds(b, "null");
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        buf_json_str(b, s, n);
        break;
    }
    case LUA_TTABLE: {
        if (depth >= 16 || !lua_checkstack(L, 4)) {
            buf_adds(b, "\"<too deep>\"");
            break;
        }
        lua_Integer n;
        if (json_is_array(L, idx, cap, &n)) {
            buf_addc(b, '[');
            for (lua_Integer i = 1; i <= n && b->len <= cap; i++) {
                if (i > 1)
                    buf_addc(b, ',');
                lua_rawgeti(L, idx, i);
                json_value(L, -1, b, cap, depth + 1);
                lua_pop(L, 1);
            }
            buf_addc(b, ']');
            break;
        }
        buf_addc(b, '{');
        bool first = true;
        lua_pushnil(L);
        while (lua_next(L, idx)) { /* [key, value] */
            if (b->len > cap) {
                lua_pop(L, 2);
                break;
            }
            int kt = lua_type(L, -2);
            if (kt == LUA_TSTRING || kt == LUA_TNUMBER) {
                if (!first)
                    buf_addc(b, ',');
                first = false;
                lua_pushvalue(L, -2); /* a copy: tolstring must not touch the key lua_next uses */
                size_t kl;
                const char *k = lua_tolstring(L, -1, &kl);
                buf_json_str(b, k, kl);
                lua_pop(L, 1);
                buf_addc(b, ':');
                json_value(L, -1, b, cap, depth + 1);
            }
            lua_pop(L, 1); /* [key] */
        }
        buf_addc(b, '}');
        break;
    }
    default: {
        const char *tn = luaL_typename(L, idx);
        buf_json_str(b, tn, strlen(tn));
        break;
    }
    }
}

void json_encode_lua(lua_State *L, int idx, ha_buf *b, size_t cap) { json_value(L, idx, b, cap, 0); }
