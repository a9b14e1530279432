/* api_health.c: the `health` module every script sees: health.check,
 * health.warn, health.sleep, health.now, health.log, health.set_ready,
 * health.info. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "api.h"
#include "engine_check.h"
#include "engine_reload.h"
#include "log.h"

/* health.check{...}: defines a check while its script loads. */
static int l_check(lua_State *L)
{
    engine_check_define(L, 1);
    return 0;
}

/* health.warn(message [, details]) -> WARN token, message, details: a run
 * returns these to report a passing-with-warnings result. */
static int l_warn(lua_State *L)
{
    lua_settop(L, 2);
    if (!lua_isnoneornil(L, 1))
        luaL_checkstring(L, 1);
    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushlightuserdata(L, engine_vm_warn_token());
    lua_insert(L, 1);
    return 3;
}

typedef struct {
    ha_op op;          /* first: the task's pending slot points here */
    uv_timer_t timer;
} sleep_op;

static void sleep_fired(uv_timer_t *h) { engine_task_complete(h->data); }

static int sleep_push(ha_op *op, lua_State *L)
{
    (void)op;
    (void)L;
    return 0;
}

static void sleep_freed(uv_handle_t *h) { free(h->data); }

static void sleep_close(ha_op *op)
{
    sleep_op *s = (sleep_op *)op;
    uv_close((uv_handle_t *)&s->timer, sleep_freed);
}

/* health.sleep(seconds): yields the calling check only. */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && isfinite(s), 1, "expected a non-negative number of seconds");
    ha_task *t = engine_task_current(L, "health.sleep");
    sleep_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return luaL_error(L, "not enough memory");
    op->op.push = sleep_push;
    op->op.close = sleep_close;
    uv_loop_t *loop = engine_task_loop(t);
    uv_timer_init(loop, &op->timer);
    op->timer.data = op;
    uv_update_time(loop); /* Lua may have run a while since the loop last looked at the clock */
    double ms = ceil(s * 1000.0);
    uv_timer_start(&op->timer, sleep_fired, ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms, 0);
    return engine_task_yield(L, t, &op->op, 0);
}

/* health.now(): wall-clock seconds since the epoch, millisecond precision. */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)ha_wall_ms() / 1000.0);
    return 1;
}

/* health.log(level, message): one log line tagged with the running check. */
static int l_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    const char *msg = luaL_tolstring(L, 2, NULL);
    ha_vm *vm = engine_vm_of(L);
    ha_task *t = vm->eng ? vm->eng->current : NULL;
    log_event(level, t ? engine_task_name(t) : NULL, "%s", msg);
    return 0;
}

/* health.set_ready(ready [, reason]): sets or clears the readiness override
 * (the same one as PUT /-/ready). From a check's run only: a script that is
 * still loading may yet be refused by the reload. */
static int l_set_ready(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    const char *reason = luaL_optstring(L, 2, NULL);
    ha_vm *vm = engine_vm_of(L);
    if (vm->in_load)
        return luaL_error(L, "health.set_ready: call it from a check's run, not while a script loads");
    if (vm->eng)
        engine_set_ready(vm->eng, lua_toboolean(L, 1), reason);
    return 0;
}

/* health.info{key = value, ...}: values shown by /info. Merged over earlier
 * calls of the same generation; values are any JSON-able Lua value. */
static int l_info(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, HA_INFO_KEY) != LUA_TTABLE) { /* [t, info?] */
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, HA_INFO_KEY);                /* [t, info] */
    }
    lua_pushnil(L);
    while (lua_next(L, 1)) {                                            /* [t, info, k, v] */
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "health.info: keys must be strings");
        lua_pushvalue(L, -2);                                           /* [t, info, k, v, k] */
        lua_insert(L, -2);                                              /* [t, info, k, k, v] */
        lua_rawset(L, 2);                                               /* [t, info, k] */
    }
    lua_settop(L, 0);
    engine_reload_info_changed(L);
    return 0;
}

static const luaL_Reg funcs[] = {
    {"check", l_check}, {"warn", l_warn}, {"sleep", l_sleep}, {"now", l_now}, {"log", l_log},
    {"set_ready", l_set_ready}, {"info", l_info}, {NULL, NULL},
};

/* health.__index: loads health.checks (the factories, in Lua) on first use. */
static int l_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "checks") != 0)
        return 0;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "health.checks");
    lua_call(L, 1, 1);        /* [health, key, checks] */
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "checks");
    return 1;
}

/* require "health": [-0, +1] the module table. */
int api_health_open(lua_State *L)
{
    luaL_newlib(L, funcs);
    lua_pushliteral(L, HA_VERSION);
    lua_setfield(L, -2, "version");
    lua_createtable(L, 0, 1); /* [health, mt] */
    lua_pushcfunction(L, l_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);  /* [health] */
    return 1;
}
