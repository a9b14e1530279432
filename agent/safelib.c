/* safelib.c: bounded string.rep, table.move, table.insert, table.remove and
 * table.sort (see safelib.h).
 *
 * The stock functions loop in C. Where each step allocates, the memory limit
 * of the state bounds the loop; where it does not (string.rep of empty
 * strings, moving or shifting nils, metamethods written in C such as
 * __index = rawlen), they run for centuries and no hook can stop them. Here:
 * string.rep of two empty strings returns "" at once; table.move, insert and
 * remove do the same work as the originals (same argument checks, same
 * order, metamethods honoured) but look at the clock every SAFELIB_CHUNK
 * elements and raise "<fn>: timeout" once the state's budget is spent;
 * table.sort refuses more than SAFELIB_SORT_MAX elements on a table whose
 * length comes from __len (a plain table that large cannot fit the heap
 * limit). Backtracking patterns (string.find/match/gmatch/gsub) are not
 * bounded here: Lua 5.4.4's matcher has no interruption point, so they
 * remain the watchdog's job. */
#include "safelib.h"

#include <string.h>

#include <lauxlib.h>

#define SAFELIB_CHUNK 4096               /* elements between clock readings */
#define SAFELIB_SORT_MAX ((lua_Integer)1 << 22) /* elements of a __len table sort accepts */

#define TAB_R 1 /* read */
#define TAB_W 2 /* write */
#define TAB_L 4 /* length */

/* Calls the overdue function kept in upvalue 2; raises "<fn>: timeout" when
 * the budget is spent. */
static void check_time(lua_State *L, const char *fn)
{
    safelib_overdue_fn overdue;
    memcpy(&overdue, lua_touserdata(L, lua_upvalueindex(2)), sizeof overdue);
    if (overdue(L))
        luaL_error(L, "%s: timeout (too many elements for the time left)", fn);
}

static int has_field(lua_State *L, const char *key, int n)
{
    lua_pushstring(L, key);
    return lua_rawget(L, -n) != LUA_TNIL;
}

/* Raises unless arg is a table or has the metamethods what needs, as
 * ltablib.c's checktab does. */
static void check_tab(lua_State *L, int arg, int what)
{
    if (lua_type(L, arg) == LUA_TTABLE)
        return;
    int n = 1;
    if (lua_getmetatable(L, arg) && (!(what & TAB_R) || has_field(L, "__index", ++n)) &&
        (!(what & TAB_W) || has_field(L, "__newindex", ++n)) && (!(what & TAB_L) || has_field(L, "__len", ++n)))
        lua_pop(L, n);
    else
        luaL_checktype(L, arg, LUA_TTABLE);
}

static lua_Integer get_n(lua_State *L, int arg, int what)
{
    check_tab(L, arg, what | TAB_L);
    return luaL_len(L, arg);
}

/* string.rep(s, n [, sep]): "" at once when both strings are empty. */
static int safe_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (l == 0 && lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* table.move(a1, f, e, t [, a2]) -> a2 */
static int safe_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    check_tab(L, 1, TAB_R);
    check_tab(L, tt, TAB_W);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++) {
                if (i % SAFELIB_CHUNK == SAFELIB_CHUNK - 1)
                    check_time(L, "table.move");
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                if (i % SAFELIB_CHUNK == 0)
                    check_time(L, "table.move");
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

/* table.insert(t, [pos,] v) */
static int safe_insert(lua_State *L)
{
    lua_Integer e = get_n(L, 1, TAB_R | TAB_W);
    e = (lua_Integer)((lua_Unsigned)e + 1u); /* first empty element */
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e; i > pos; i--) {
            if ((e - i) % SAFELIB_CHUNK == SAFELIB_CHUNK - 1)
                check_time(L, "table.insert");
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

/* table.remove(t [, pos]) -> the removed value */
static int safe_remove(lua_State *L)
{
    lua_Integer size = get_n(L, 1, TAB_R | TAB_W);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos);
    for (lua_Integer k = 0; pos < size; pos++, k++) {
        if (k % SAFELIB_CHUNK == SAFELIB_CHUNK - 1)
            check_time(L, "table.remove");
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* table.sort(t [, comp]): the original, after bounding a length that comes
 * from __len. */
static int safe_sort(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE && luaL_getmetafield(L, 1, "__len") != LUA_TNIL) {
        lua_pop(L, 1);
        lua_Integer n = luaL_len(L, 1);
        if (n > SAFELIB_SORT_MAX)
            return luaL_error(L, "table.sort: %I elements (from __len) are more than %I", (LUAI_UACINT)n,
                              (LUAI_UACINT)SAFELIB_SORT_MAX);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

/* Replaces lib[name] by f with upvalues (the original, the overdue box at
 * the top of the stack). Stack unchanged. */
static void replace(lua_State *L, const char *lib, const char *name, lua_CFunction f)
{
    lua_getglobal(L, lib);       /* [box, lib] */
    lua_getfield(L, -1, name);   /* [box, lib, orig] */
    lua_pushvalue(L, -3);        /* [box, lib, orig, box] */
    lua_pushcclosure(L, f, 2);   /* [box, lib, f] */
    lua_setfield(L, -2, name);   /* [box, lib] */
    lua_pop(L, 1);               /* [box] */
}

void safelib_install(lua_State *L, safelib_overdue_fn overdue)
{
    void *box = lua_newuserdatauv(L, sizeof overdue, 0); /* [box] */
    memcpy(box, &overdue, sizeof overdue);
    replace(L, "string", "rep", safe_rep);
    replace(L, "table", "move", safe_move);
    replace(L, "table", "insert", safe_insert);
    replace(L, "table", "remove", safe_remove);
    replace(L, "table", "sort", safe_sort);
    lua_pop(L, 1); /* [] */
}
