/* api_opt.c: duration options (see api_opt.h). */
#include "api_opt.h"

#include <lauxlib.h>

#include "common.h"

uint64_t api_opt_duration(lua_State *L, int vi, const char *fn, const char *key, bool zero_ok)
{
    uint64_t ns = 0;
    int t = lua_type(L, vi);
    const char *s = t == LUA_TNUMBER || t == LUA_TSTRING ? lua_tostring(L, vi) : NULL;
    if (s == NULL)
        luaL_error(L, "%s: option '%s': bad duration (%s) " API_OPT_DURATION_HINT, fn, key, luaL_typename(L, vi));
    if (ha_duration_parse(s, &ns) != 0)
        luaL_error(L, "%s: option '%s': bad duration '%s' " API_OPT_DURATION_HINT, fn, key, s);
    if (ns == 0 && !zero_ok)
        luaL_error(L, "%s: option '%s' must be greater than 0", fn, key);
    return ns;
}

uint64_t api_opt_duration_field(lua_State *L, int idx, const char *fn, const char *key, uint64_t dflt,
                                bool zero_ok)
{
    uint64_t ns = dflt;
    if (lua_getfield(L, idx, key) != LUA_TNIL)         /* [value] */
        ns = api_opt_duration(L, -1, fn, key, zero_ok);
    lua_pop(L, 1);                                     /* [] */
    return ns;
}
