/* api_health.c: the `health` module every script sees: health.check,
 * health.group, health.aggregate, health.push, health.report,
 * health.warn, health.sleep, health.now, health.log, health.set_ready,
 * health.info. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "api.h"
#include "engine_check.h"
#include "engine_group.h"
#include "engine_vm.h"
#include "log.h"

/* health.check{...}: defines a check while its script loads. */
static int l_check(lua_State *L)
{
    engine_check_define(L, 1);
    return 0;
}

/* health.group{...}: defines a group while its script loads. */
static int l_group(lua_State *L)
{
    engine_group_define(L, 1);
    return 0;
}

/* health.push{...}: declares a check whose results the application
 * reports, while its script loads. */
static int l_push(lua_State *L)
{
    engine_check_define_push(L, 1);
    return 0;
}

/* health.report(name, status [, output]): reports a result of the pushed
 * check name ("UP", "WARN" or "DOWN"), as PUT /-/checks/<name> does.
 * From a check's run only. Misuse raises: an unknown name, a check that is
 * not pushed, a bad status, an output over 1024 bytes. */
static int l_report(lua_State *L)
{
    static const char *const statuses[] = {"UP", "WARN", "DOWN", NULL};
    static const ha_status values[] = {HA_UP, HA_WARN, HA_DOWN};
    size_t nl, ol = 0;
    const char *name = luaL_checklstring(L, 1, &nl);
    int st = luaL_checkoption(L, 2, NULL, statuses);
    const char *out = luaL_optlstring(L, 3, NULL, &ol);
    ha_vm *vm = engine_vm_of(L);
    if (vm->in_load)
        return luaL_error(L, "health.report: call it from a check's run, not while a script loads");
    ha_check *c = vm->gen ? engine_gen_find(vm->gen, name, nl) : NULL;
    if (c == NULL)
        return luaL_argerror(L, 1, lua_pushfstring(L, "no check named '%s'", name));
    if (!c->pushed)
        return luaL_argerror(L, 1, lua_pushfstring(L, "'%s' is not a pushed check (declare it with health.push)", name));
    luaL_argcheck(L, ol <= HA_OUTPUT_MAX, 3, "longer than 1024 bytes");
    engine_check_report(c, values[st], out, ol);
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

/* health.duration(v): seconds of a duration in the one grammar of the
 * agent (a number of seconds, "250ms", "2s", "1.5m", "1h", "1d"), or nil,
 * "bad duration 'v'". For factories and scripts that take durations. */
static int l_duration(lua_State *L)
{
    uint64_t ns;
    int t = lua_type(L, 1);
    const char *s = t == LUA_TNUMBER || t == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    if (s == NULL || ha_duration_parse(s, &ns) != 0) {
        lua_pushnil(L);
        if (s != NULL)
            lua_pushfstring(L, "bad duration '%s'", s);
        else
            lua_pushfstring(L, "bad duration (%s)", luaL_typename(L, 1));
        return 2;
    }
    lua_pushnumber(L, (lua_Number)ns / 1e9);
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
    engine_info_changed(L);
    return 0;
}

#define SPAWN_MT "health.spawn"

/* health.spawn(fn, ...): fn runs as its own task, concurrently with the
 * caller. Inside a check the child shares the check's deadline and memory
 * allowance and is cancelled when the check's run ends. The handle's
 * h:wait() yields until the child ends and returns true, results... or
 * false, error. */

/* A spawned task's handle; a Lua userdata. */
typedef struct {
    ha_task *task;      /* NULL once ended */
    bool done;
    int results;        /* registry ref of {ok, ...} once done */
    ha_op *waiter;      /* op of a task waiting in :wait(), or NULL */
    int self_ref;       /* keeps the userdata alive while the task runs */
} spawn_box;

typedef struct {
    ha_op op;
    spawn_box *box;
} spawn_wait;

static void spawn_done(ha_task *t, lua_State *co, ha_task_end how, int nres, void *ud)
{
    (void)t;
    spawn_box *b = ud;
    int n = how == HA_TASK_OK ? nres : 1;
    lua_createtable(co, n + 1, 1);             /* [..., packed] */
    lua_pushboolean(co, how == HA_TASK_OK);
    lua_rawseti(co, -2, 1);
    if (how == HA_TASK_OK) {
        for (int i = 0; i < nres; i++) {
            lua_pushvalue(co, -1 - nres + i);
            lua_rawseti(co, -2, i + 2);
        }
    } else {
        if (how == HA_TASK_ERROR)
            lua_pushvalue(co, -2);
        else
            lua_pushstring(co, how == HA_TASK_MEMORY ? "not enough memory" : "cancelled");
        lua_rawseti(co, -2, 2);
    }
    lua_pushinteger(co, n + 1);
    lua_setfield(co, -2, "n");
    b->results = luaL_ref(co, LUA_REGISTRYINDEX); /* [...] */
    b->done = true;
    b->task = NULL;
    if (b->waiter)
        engine_task_complete(b->waiter);
    luaL_unref(co, LUA_REGISTRYINDEX, b->self_ref);
    b->self_ref = LUA_NOREF;
}

/* health.spawn(fn, ...) -> handle. Raises outside a task. */
int api_health_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    ha_task *parent = engine_task_current(L, "health.spawn");
    int n = lua_gettop(L);
    spawn_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* [fn, args, box] */
    memset(b, 0, sizeof *b);
    b->results = LUA_NOREF;
    luaL_setmetatable(L, SPAWN_MT);
    lua_pushvalue(L, -1);
    b->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_insert(L, 1);                                 /* [box, fn, args] */
    b->task = engine_task_spawn(parent, L, n - 1, spawn_done, b);
    return 1;                                         /* [box] */
}

static int spawn_push(ha_op *op, lua_State *L)
{
    spawn_box *b = ((spawn_wait *)op)->box;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->results);
    int n = (int)luaL_len(L, -1);
    if (!lua_checkstack(L, n + 1)) { /* push must not raise: answer instead */
        lua_pop(L, 1);
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "too many results");
        return 2;
    }
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

static void spawn_close(ha_op *op)
{
    spawn_wait *w = (spawn_wait *)op;
    if (w->box->waiter == op)
        w->box->waiter = NULL;
    free(w);
}

/* h:wait() -> true, results... | false, error */
static int l_wait(lua_State *L)
{
    spawn_box *b = luaL_checkudata(L, 1, SPAWN_MT);
    if (b->done) {
        spawn_wait tmp = {.box = b};
        return spawn_push(&tmp.op, L);
    }
    ha_task *t = engine_task_current(L, "wait");
    if (b->waiter)
        return luaL_error(L, "wait: another task is already waiting");
    spawn_wait *w = calloc(1, sizeof *w);
    if (w == NULL)
        return luaL_error(L, "not enough memory");
    w->op.push = spawn_push;
    w->op.close = spawn_close;
    w->box = b;
    b->waiter = &w->op;
    return engine_task_yield(L, t, &w->op, 0);
}

static int l_spawn_gc(lua_State *L)
{
    spawn_box *b = luaL_checkudata(L, 1, SPAWN_MT);
    luaL_unref(L, LUA_REGISTRYINDEX, b->results);
    b->results = LUA_NOREF;
    return 0;
}

static const luaL_Reg funcs[] = {
    {"check", l_check}, {"group", l_group}, {"push", l_push}, {"report", l_report}, {"warn", l_warn},
    {"sleep", l_sleep}, {"now", l_now}, {"log", l_log},
    {"duration", l_duration},
    {"set_ready", l_set_ready}, {"info", l_info}, {"spawn", api_health_spawn}, {NULL, NULL},
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
    static const luaL_Reg spawn_methods[] = {{"wait", l_wait}, {"__gc", l_spawn_gc}, {NULL, NULL}};
    if (luaL_newmetatable(L, SPAWN_MT)) {
        luaL_setfuncs(L, spawn_methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushliteral(L, HA_VERSION);
    lua_setfield(L, -2, "version");
    engine_group_push_aggregates(L); /* [health, aggregate] */
    lua_setfield(L, -2, "aggregate");
    lua_createtable(L, 0, 1); /* [health, mt] */
    lua_pushcfunction(L, l_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);  /* [health] */
    return 1;
}
