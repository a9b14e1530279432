/* api_testing.c: `health.testing`, for specs run by `healthagent spec.lua`
 * (busted --lua=healthagent). It loads scripts into generations exactly as
 * the agent does, on the same loop, and runs their checks on demand:
 *
 *   local g, err = testing.load(dir | { ["a.lua"] = source, ... } [, {autorun=false}])
 *   local r = g:run("name")   -- yields until the run ends: {status=, result=, output=, details=, ...}
 *   g:state("name"), g:names(), g:memory(), g:tasks(), g:close()
 *   g:group("name")           -- {status=, output=, runs=, kind=, members={...}}: a group's Lua verdict
 *   testing.handles()         -- libuv handles open on the loop, besides the engine's own
 *   testing.dns_stats()       -- {started=, cancelled=, in_flight=}: lookups of the shared resolver
 *   testing.dns_hosts{[name] = "addr", ...}  -- names only the shared resolver knows ({} removes them)
 *   testing.hold_threadpool(seconds)  -- keeps libuv's threads busy, as a slow DNS server would
 *   local h = testing.spawn(fn, ...)  -- health.spawn: fn as a concurrent task; h:wait() -> true, results | false, err
 *
 * An API yield inside coroutine.wrap suspends the whole calling task (as in
 * OpenResty), so concurrency in specs comes from spawn, not from coroutines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_dns.h"
#include "engine_check.h"
#include "engine_group.h"
#include "engine_load.h"
#include "engine_vm.h"

#define GEN_MT "health.testing.gen"

typedef struct gen_box {
    ha_gen *gen;             /* NULL once closed */
    struct gen_box *next;    /* open generations, for teardown */
} gen_box;

static gen_box *open_gens;   /* runner thread only */

static void unlink_box(gen_box *b)
{
    for (gen_box **pp = &open_gens; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
}

static void box_close(gen_box *b)
{
    if (b->gen == NULL)
        return;
    unlink_box(b);
    ha_gen *g = b->gen;
    b->gen = NULL;
    engine_gen_close(g);
}

void api_testing_close_all(void)
{
    while (open_gens)
        box_close(open_gens);
}

/* Reads the file table at idx into set (names sorted). Raises on misuse. */
static void files_from_table(lua_State *L, int idx, ha_script_set *set)
{
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING, 1,
                      "expected a table of file name = source");
        lua_pop(L, 1);
        n++;
    }
    set->files = calloc(n ? n : 1, sizeof *set->files);
    if (set->files == NULL)
        luaL_error(L, "not enough memory");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t len;
        const char *src = lua_tolstring(L, -1, &len);
        ha_script *s = &set->files[set->n++];
        s->name = strdup(lua_tostring(L, -2));
        s->src = malloc(len + 1);
        if (s->name == NULL || s->src == NULL) {
            engine_load_free(set);
            luaL_error(L, "not enough memory");
        }
        memcpy(s->src, src, len + 1);
        s->len = len;
        lua_pop(L, 1);
    }
    for (size_t i = 1; i < set->n; i++) /* insertion sort: spec tables are small */
        for (size_t j = i; j > 0 && strcmp(set->files[j - 1].name, set->files[j].name) > 0; j--) {
            ha_script tmp = set->files[j];
            set->files[j] = set->files[j - 1];
            set->files[j - 1] = tmp;
        }
}

/* testing.load(dir | files [, opts]) -> gen | nil, "file:line: message" */
static int l_load(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    ha_script_set set = {0};
    char err[1024];
    const char *dir = "";
    bool autorun = false;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "autorun");
        autorun = lua_toboolean(L, -1);
        lua_getfield(L, 2, "dir");
        if (lua_isstring(L, -1))
            dir = lua_tostring(L, -1);
    }
    if (lua_type(L, 1) == LUA_TSTRING) {
        dir = lua_tostring(L, 1);
        if (engine_load_read(dir, &set, err, sizeof err) != 0) {
            luaL_pushfail(L);
            lua_pushstring(L, err);
            return 2;
        }
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        files_from_table(L, 1, &set);
    }
    gen_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->gen = NULL;
    luaL_setmetatable(L, GEN_MT);
    ha_gen *g = engine_load_gen(vm->eng, dir, &set, err, sizeof err);
    engine_load_free(&set);
    if (g == NULL) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    b->gen = g;
    b->next = open_gens;
    open_gens = b;
    engine_gen_activate(g, NULL, autorun);
    return 1;
}

static ha_gen *check_gen(lua_State *L)
{
    gen_box *b = luaL_checkudata(L, 1, GEN_MT);
    if (b->gen == NULL)
        luaL_error(L, "generation is closed");
    return b->gen;
}

static ha_check *check_arg(lua_State *L, ha_gen *g)
{
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    ha_check *c = engine_gen_find(g, name, len);
    if (c == NULL)
        luaL_error(L, "no check named '%s'", name);
    return c;
}

/* g:run(name) -> result table; single flight with any run in progress. */
static int l_run(lua_State *L)
{
    ha_gen *g = check_gen(L);
    return engine_check_await(L, check_arg(L, g));
}

static int l_state(lua_State *L)
{
    ha_gen *g = check_gen(L);
    engine_check_push_state(L, check_arg(L, g));
    return 1;
}

/* g:group(name) -> { status, output, runs, kind, members }: the group's
 * state; status and output are a Lua aggregate's last verdict (INIT and nil
 * before one, and for a built-in, which the front evaluates). */
static int l_group(lua_State *L)
{
    static const char *const kinds[] = {"worst", "quorum", "any", "lua"};
    ha_gen *g = check_gen(L);
    const char *name = luaL_checkstring(L, 2);
    const ha_group *gr = NULL;
    for (size_t i = 0; i < g->ngroups && gr == NULL; i++)
        if (strcmp(g->groups[i]->name, name) == 0)
            gr = g->groups[i];
    if (gr == NULL)
        return luaL_error(L, "no group named '%s'", name);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, ha_status_name(gr->status));
    lua_setfield(L, -2, "status");
    if (gr->output) {
        lua_pushstring(L, gr->output);
        lua_setfield(L, -2, "output");
    }
    lua_pushinteger(L, (lua_Integer)gr->runs);
    lua_setfield(L, -2, "runs");
    lua_pushstring(L, kinds[gr->kind]);
    lua_setfield(L, -2, "kind");
    lua_createtable(L, (int)gr->nmembers, 0);
    for (uint32_t k = 0; k < gr->nmembers; k++) {
        lua_pushstring(L, g->checks[gr->members[k]]->name);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "members");
    return 1;
}

static int l_names(lua_State *L)
{
    ha_gen *g = check_gen(L);
    lua_createtable(L, (int)g->n, 0);
    for (size_t i = 0; i < g->n; i++) {
        lua_pushstring(L, g->checks[i]->name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_memory(lua_State *L)
{
    ha_gen *g = check_gen(L);
    lua_pushinteger(L, (lua_Integer)g->vm->used);
    return 1;
}

static int l_tasks(lua_State *L)
{
    ha_gen *g = check_gen(L);
    lua_pushinteger(L, engine_task_count(g->vm));
    return 1;
}

static int l_close(lua_State *L)
{
    box_close(luaL_checkudata(L, 1, GEN_MT));
    return 0;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    ha_engine *eng = ((void **)arg)[0];
    int *n = ((void **)arg)[1];
    if (h == (uv_handle_t *)&eng->idle || h == (uv_handle_t *)&eng->check || h == (uv_handle_t *)&eng->prepare ||
        h == (uv_handle_t *)&eng->trim_timer || h == (uv_handle_t *)&eng->sigchld || uv_is_closing(h))
        return;
    (*n)++;
}

/* testing.handles() -> open libuv handles besides the engine's own. */
static int l_handles(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    int n = 0;
    void *arg[2] = {vm->eng, &n};
    uv_walk(vm->eng->loop, count_handle, arg);
    n -= engine_task_handles(vm->eng->current); /* the caller's own timers */
    lua_pushinteger(L, n);
    return 1;
}

/* testing.dns_stats() -> {started=, cancelled=, in_flight=} of this
 * thread's lookups through the shared resolver (api_dns.h). */
static int l_dns_stats(lua_State *L)
{
    api_dns_stats st;
    api_dns_stats_get(&st);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)st.started);
    lua_setfield(L, -2, "started");
    lua_pushinteger(L, (lua_Integer)st.cancelled);
    lua_setfield(L, -2, "cancelled");
    lua_pushinteger(L, st.in_flight);
    lua_setfield(L, -2, "in_flight");
    return 1;
}

/* testing.dns_hosts{[name] = "numeric address", ...}: replaces the names
 * only the shared resolver knows (api_dns_test_host). Raises on misuse. */
static int l_dns_hosts(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    api_dns_test_host(NULL, NULL);
    lua_pushnil(L);
    while (lua_next(L, 1)) { /* [t, name, addr] */
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "health.testing.dns_hosts: expected {[name] = \"address\"}");
        int rc = api_dns_test_host(lua_tostring(L, -2), lua_tostring(L, -1));
        if (rc != 0)
            return luaL_error(L, "health.testing.dns_hosts: %s -> %s: %s", lua_tostring(L, -2), lua_tostring(L, -1),
                              rc == UV_ENOSPC ? "too many names" : "not a name and a numeric address");
        lua_pop(L, 1); /* pop addr */
    }
    return 0;
}

static void hold_work(uv_work_t *w) { uv_sleep((unsigned)(uintptr_t)w->data); }

static void hold_done(uv_work_t *w, int status)
{
    (void)status;
    free(w);
}

/* testing.hold_threadpool(seconds): occupies every thread of libuv's pool
 * (UV_THREADPOOL_SIZE, default 4) for seconds, without blocking the loop;
 * work queued meanwhile (lookups, file-system calls) waits, as behind a slow
 * DNS server. Raises on misuse. */
static int l_hold_threadpool(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s > 0 && s <= 10, 1, "expected seconds in (0, 10]");
    const char *env = getenv("UV_THREADPOOL_SIZE");
    int n = env && atoi(env) > 0 ? atoi(env) : 4;
    for (int i = 0; i < n && i < 1024; i++) {
        uv_work_t *w = calloc(1, sizeof *w);
        if (w == NULL)
            return luaL_error(L, "not enough memory");
        w->data = (void *)(uintptr_t)(s * 1000);
        if (uv_queue_work(engine_vm_of(L)->eng->loop, w, hold_work, hold_done) != 0) {
            free(w);
            return luaL_error(L, "health.testing.hold_threadpool: cannot queue work");
        }
    }
    return 0;
}

int api_testing_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"run", l_run}, {"state", l_state}, {"group", l_group}, {"names", l_names}, {"memory", l_memory},
        {"tasks", l_tasks}, {"close", l_close}, {"__gc", l_close}, {"__close", l_close}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, GEN_MT)) {
        luaL_setfuncs(L, methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    static const luaL_Reg funcs[] = {
        {"load", l_load}, {"handles", l_handles}, {"spawn", api_health_spawn},
        {"dns_stats", l_dns_stats}, {"dns_hosts", l_dns_hosts}, {"hold_threadpool", l_hold_threadpool},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
