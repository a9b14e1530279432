/* engine_vm.c: Lua states for the engine: the limited allocator, the check
 * script sandbox, text-only loading, and the coroutine library wrapped so
 * that an API yield inside a user coroutine passes through to the scheduler. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "api.h"
#include "engine.h"
#include "log.h"

static char warn_token; /* its address marks WARN results */

void *engine_vm_warn_token(void) { return &warn_token; }

ha_vm *engine_vm_of(lua_State *L) { return *(ha_vm **)lua_getextraspace(L); }

/* The allocator of every engine state. Enforces the VM's limit and the
 * running task's own allowance, but only while a task of this VM runs: the
 * engine's own bookkeeping (creating threads, pushing results) is never
 * refused, so it cannot fail half-way outside protected mode. */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ha_vm *vm = ud;
    size_t old = ptr ? osize : 0;
    ha_task *t = vm->eng ? vm->eng->current : NULL;
    if (nsize == 0) {
        free(ptr);
        vm->used -= old;
        if (t)
            engine__task_account(t, vm, -(int64_t)old);
        return NULL;
    }
    if (nsize > old && engine__task_over(t, vm, nsize - old))
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    vm->used += nsize - old;
    if (t)
        engine__task_account(t, vm, (int64_t)nsize - (int64_t)old);
    return p;
}

static int vm_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    log_event(LOG_ERROR, NULL, "unprotected Lua error: %s", msg ? msg : "?");
    abort();
}

/* --- coroutine wrappers ------------------------------------------------ */

static int co_resume_k(lua_State *L, int status, lua_KContext ctx);

/* Resumes co (at index 1 of L) with the n values on top of L, passing API and
 * hook yields up to the scheduler. Returns like coroutine.resume: true plus
 * results, or false plus the error. Stack: [co, args...] -> results. */
static int co_drive(lua_State *L, int nargs, int wrap)
{
    lua_State *co = lua_tothread(L, 1);
    ha_vm *vm = engine_vm_of(L);
    if (engine__task_owns_thread(L, 1))
        return luaL_error(L, "cannot resume the coroutine of a check run");
    for (;;) {
        int st = lua_status(co);
        if (co == L) {
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "cannot resume non-suspended coroutine");
            goto fail;
        }
        if (st == LUA_OK && lua_gettop(co) == 0) {
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "cannot resume dead coroutine");
            goto fail;
        }
        if (st != LUA_OK && st != LUA_YIELD) {
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "cannot resume dead coroutine");
            goto fail;
        }
        if (!lua_checkstack(co, nargs))
            return luaL_error(L, "too many arguments to resume");
        lua_xmove(L, co, nargs);
        int nres = 0;
        /* co runs under the resumer's hook: a coroutine made while its
         * script loaded must not carry the load limit into a run */
        lua_sethook(co, lua_gethook(L), lua_gethookmask(L), lua_gethookcount(L));
        int r = lua_resume(co, L, nargs, &nres);
        if (r == LUA_YIELD && vm->yield_kind != HA_YIELD_NONE) {
            /* An API or hook yield inside co: pass it up to the scheduler. */
            lua_pop(co, nres);
            if (!lua_isyieldable(L)) {
                int kind = vm->yield_kind;
                if (kind == HA_YIELD_EXIT) {
                    fflush(NULL);
                    exit(vm->eng->exit_code);
                }
                vm->yield_kind = HA_YIELD_NONE;
                if (kind == HA_YIELD_HOOK && !engine__task_expired(vm)) {
                    nargs = 0; /* preemption we cannot pass on: keep running */
                    continue;
                }
                engine__task_abandon_op(vm);
                return luaL_error(L, kind == HA_YIELD_HOOK ? "timeout"
                                  : "cannot wait for I/O here (inside a metamethod, iterator or C callback)");
            }
            lua_settop(L, 1); /* keep only co: the continuation finds the resume values above it */
            return lua_yieldk(L, 0, (lua_KContext)wrap, co_resume_k);
        }
        if (r == LUA_OK || r == LUA_YIELD) {
            if (!lua_checkstack(L, nres + 1)) {
                lua_pop(co, nres);
                return luaL_error(L, "too many results to resume");
            }
            lua_settop(L, 0);
            if (!wrap)
                lua_pushboolean(L, 1);
            lua_xmove(co, L, nres);
            return lua_gettop(L);
        }
        /* error inside co */
        lua_xmove(co, L, 1); /* the error object */
        if (wrap) {
            if (lua_status(co) != LUA_OK && lua_status(co) != LUA_YIELD)
                lua_resetthread(co); /* dead by error: run its to-be-closed variables */
            if (lua_type(L, -1) == LUA_TSTRING) { /* add the caller's position, as coroutine.wrap does */
                luaL_where(L, 1);
                lua_insert(L, -2);
                lua_concat(L, 2);
            }
            return lua_error(L);
        }
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
fail:
    if (wrap)
        return lua_error(L);
    return 2;
}

/* Continuation after the scheduler resumed us: stack is [co, values...]. */
static int co_resume_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return co_drive(L, lua_gettop(L) - 1, (int)ctx);
}

static int co_resume(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    return co_drive(L, lua_gettop(L) - 1, 0);
}

static int co_wrap_call(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1); /* [co, args...] */
    return co_drive(L, lua_gettop(L) - 1, 1);
}

static int co_close(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    if (engine__task_owns_thread(L, 1))
        return luaL_error(L, "cannot close the coroutine of a check run");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrap_call, 1);
    return 1;
}

/* --- sandbox replacements ---------------------------------------------- */

static int sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL)
        return luaL_error(L, "setmetatable: __gc metamethods are not available to scripts");
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original setmetatable */
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* Pushes the environment of the Lua function that called the running C
 * function: its _ENV upvalue, or a fresh table reading the globals when it
 * has none. Chunks loaded by a script default to it, so they cannot write
 * the globals every file shares. [-0, +1] */
static void push_caller_env(lua_State *L)
{
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "f", &ar)) { /* [fn] */
        for (int i = 1;; i++) {
            const char *name = lua_getupvalue(L, -1, i);
            if (name == NULL)
                break;
            if (strcmp(name, "_ENV") == 0) {
                lua_remove(L, -2); /* [env] */
                return;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_newtable(L); /* [env] */
    lua_createtable(L, 0, 2);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

/* load(chunk [, name [, mode [, env]]]) with mode forced to text and env
 * defaulting to the caller's environment. */
static int sb_load(lua_State *L)
{
    int n = lua_gettop(L);
    if (n >= 3 && !lua_isnil(L, 3)) {
        const char *mode = luaL_checkstring(L, 3);
        if (strchr(mode, 't') == NULL)
            return luaL_error(L, "load: binary chunks are not available to scripts");
    }
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
            luaL_pushfail(L);
            lua_pushliteral(L, "attempt to load a binary chunk (mode is 't')");
            return 2;
        }
    }
    if (n < 4) {
        lua_settop(L, 3);
        push_caller_env(L);
    }
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original load */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int sb_loadfile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (lua_isnone(L, 3)) {
        lua_settop(L, 2);
        push_caller_env(L);
    }
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushvalue(L, 3);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 1;
}

static int sb_collectgarbage(lua_State *L)
{
    static const char *const ok[] = {"collect", "count", "step", "isrunning", NULL};
    luaL_checkoption(L, 1, "collect", ok);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* Continuation of pcall and xpcall: an error of a run that is past its
 * deadline (or of a load past its limit) is raised again, so no pcall can
 * hold a run beyond its deadline, even where the hook cannot yield. */
static int sb_pcall_k(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        if (engine__task_expired(engine_vm_of(L)) || engine_vm_of(L)->doomed)
            return lua_error(L);
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int sb_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1); /* [true, f, args] */
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, sb_pcall_k);
    return sb_pcall_k(L, status, 0);
}

/* Message handler of sb_xpcall: runs the script's handler, except for the
 * error of a run past its deadline, which must unwind without running more
 * script code (else each re-raise calls the handler again). */
static int sb_msgh(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    if (engine__task_expired(vm) || vm->doomed)
        return 1; /* the error object, unchanged */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sb_msgh, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* [f, msgh, true, f, args] */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, sb_pcall_k);
    return sb_pcall_k(L, status, 2);
}

#define READONLY_KEY "healthagent.readonly" /* registry: weak set of read-only views */
#define PKG_KEY "healthagent.package"       /* registry: the package table scripts cannot see */

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "cannot modify a library table (field '%s')", luaL_tolstring(L, 2, NULL));
}

static int readonly_pairs(lua_State *L)
{
    lua_getglobal(L, "next");
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index"); /* [view, next, mt, t] */
    lua_remove(L, -2);
    lua_pushnil(L);
    return 3;
}

/* Replaces the table at the top of the stack by a read-only view of it:
 * reads and pairs reach the table; writes, rawset and setmetatable fail.
 * [-1, +1] */
static void make_readonly(lua_State *L)
{
    lua_newtable(L);                 /* [t, view] */
    lua_createtable(L, 0, 4);        /* [t, view, mt] */
    lua_rotate(L, -3, -1);           /* [view, mt, t] */
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, readonly_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);         /* [view] */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, READONLY_KEY);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);                   /* [view] */
}

static int sb_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, LUA_REGISTRYINDEX, READONLY_KEY);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return luaL_error(L, "rawset: cannot modify a library table");
    lua_pop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* io.lines(filename, ...): a file name is required: the agent's stdin is not
 * the script's. */
static int sb_io_lines(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* print(...) in a check script: one info log line tagged with the check. */
static int sb_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    ha_vm *vm = engine_vm_of(L);
    ha_task *t = vm->eng ? vm->eng->current : NULL;
    log_event(LOG_INFO, t ? engine_task_name(t) : NULL, "%s", lua_tostring(L, -1));
    return 0;
}

/* package.searchers entry: Lua files along package.path, text mode only.
 * Stack: [name] -> [loader, path] | [message]. */
static int sb_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_pushnil(L); /* keeps the stack shape of the code below */
    lua_getfield(L, LUA_REGISTRYINDEX, PKG_KEY);
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    if (path == NULL)
        return luaL_error(L, "package.path must be a string");
    lua_getfield(L, -2, "searchpath");
    lua_pushstring(L, name);
    lua_pushstring(L, path);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) {
        lua_pushfstring(L, "\n\t%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "not found");
        return 1;
    }
    const char *file = lua_tostring(L, -2);
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file, lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

/* Replaces global[name] by a C closure whose upvalue is the original. */
static void wrap_global(lua_State *L, const char *name, lua_CFunction f)
{
    lua_getglobal(L, name);
    lua_pushcclosure(L, f, 1);
    lua_setglobal(L, name);
}

static void set_nil(lua_State *L, const char *table, const char *field)
{
    lua_getglobal(L, table); /* [t] */
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, -2, field);
    }
    lua_pop(L, 1); /* [] */
}

/* Restricts the global table of a check-script state. Stack unchanged. */
static void sandbox(lua_State *L)
{
    static const char *const os_keep[] = {"clock", "date", "difftime", "getenv", "time", NULL};
    wrap_global(L, "setmetatable", sb_setmetatable);
    wrap_global(L, "load", sb_load);
    wrap_global(L, "collectgarbage", sb_collectgarbage);
    lua_pushcfunction(L, sb_loadfile);
    lua_setglobal(L, "loadfile");
    lua_pushcfunction(L, sb_print);
    lua_setglobal(L, "print");
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    wrap_global(L, "rawset", sb_rawset);
    lua_pushcfunction(L, sb_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, sb_xpcall);
    lua_setglobal(L, "xpcall");
    set_nil(L, "string", "dump");
    /* io: no processes, and nothing that reads the agent's own stdin */
    set_nil(L, "io", "popen");
    set_nil(L, "io", "read");
    set_nil(L, "io", "input");
    set_nil(L, "io", "stdin");
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "lines");
    lua_pushcclosure(L, sb_io_lines, 1);
    lua_setfield(L, -2, "lines");
    lua_pop(L, 1);
    /* os: keep only what cannot hurt the process */
    lua_newtable(L); /* [newos] */
    lua_getglobal(L, "os"); /* [newos, os] */
    for (int i = 0; os_keep[i]; i++) {
        lua_getfield(L, -1, os_keep[i]);
        lua_setfield(L, -3, os_keep[i]);
    }
    lua_pop(L, 1); /* [newos] */
    lua_setglobal(L, "os"); /* [] */
    /* debug: traceback only */
    lua_newtable(L);
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_setfield(L, -3, "traceback");
    lua_pop(L, 1);
    lua_setglobal(L, "debug");
    /* package: no C loaders; require finds Lua files in text mode only */
    lua_getglobal(L, "package"); /* [package] */
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pushnil(L);
    lua_setfield(L, -2, "loadlib");
    lua_getfield(L, -1, "searchers"); /* [package, searchers] */
    lua_rawgeti(L, -1, 1);            /* the preload searcher */
    lua_newtable(L);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushcfunction(L, sb_searcher);
    lua_rawseti(L, -2, 2);             /* [package, searchers, new] */
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1);                     /* [package] */
    lua_setfield(L, LUA_REGISTRYINDEX, PKG_KEY); /* [] */
    lua_pushnil(L);
    lua_setglobal(L, "package");
    /* the libraries every file shares: read-only views, in the globals and
     * for require alike; require "_G" and "package" find nothing */
    static const char *const libs[] = {"string", "table", "math", "utf8", "os", "io", "coroutine", "debug", NULL};
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* [loaded] */
    for (int i = 0; libs[i]; i++) {
        lua_getglobal(L, libs[i]);
        make_readonly(L);
        lua_pushvalue(L, -1);
        lua_setglobal(L, libs[i]);
        lua_setfield(L, -2, libs[i]);
    }
    lua_pushnil(L);
    lua_setfield(L, -2, "package");
    lua_pushnil(L);
    lua_setfield(L, -2, "_G");
    lua_pop(L, 1);                     /* [] */
    /* the string metatable is shared too: nobody may replace its methods */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);           /* ["", mt] */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

/* Sets package.path to lualib and scripts_dir/lib. Stack unchanged. */
static void set_path(lua_State *L, const char *lualib, const char *scripts_dir, bool keep_default)
{
    luaL_Buffer b;
    lua_getglobal(L, "package"); /* [package] */
    luaL_buffinit(L, &b);
    if (lualib)
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", lualib, lualib), luaL_addvalue(&b);
    if (scripts_dir)
        lua_pushfstring(L, "%s/lib/?.lua;%s/lib/?/init.lua;", scripts_dir, scripts_dir), luaL_addvalue(&b);
    if (keep_default) {
        lua_getfield(L, -2, "path");
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b); /* [package, path] */
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* The C modules scripts can require. Add one line per api_*.c module;
 * api_lazy_open for those built as shared objects (api_lazy.c). */
const luaL_Reg api_modules[] = {
    {"health.tcp", api_tcp_open},
    {"health.dns", api_dns_open},
    {"health.http", api_lazy_open},
    {"health.fs", api_fs_open},
    {"health.exec", api_exec_open},
    {"health.redis", api_lazy_open},
    {"health.postgres", api_lazy_open},
    {"health.mysql", api_lazy_open},
    {"health.grpc", api_lazy_open},
    {NULL, NULL},
};

/* Pushes the read-only view of the health module, made once per state.
 * [-0, +1] */
static void push_readonly_health(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, "healthagent.health") != LUA_TNIL)
        return;
    lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "health");             /* [loaded, health] */
    lua_remove(L, -2);
    make_readonly(L);                          /* [view] */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "healthagent.health");
}

/* Registers the C API modules in package.preload; health.testing only for
 * the runner's own state. Stack unchanged. */
static void preload(lua_State *L, bool sandboxed)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const luaL_Reg *m = api_modules; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    if (!sandboxed) {
        lua_pushcfunction(L, api_testing_open);
        lua_setfield(L, -2, "health.testing");
    }
    lua_pop(L, 1);
}

/* Protected part of engine_vm_new: runs with the limit not yet enforced. */
static int vm_setup(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    const char *lualib = lua_touserdata(L, 1);
    const char *scripts = lua_touserdata(L, 2);
    lua_settop(L, 0);
    luaL_openlibs(L);
    lua_getglobal(L, "coroutine"); /* [co] */
    lua_pushcfunction(L, co_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, co_wrap);
    lua_setfield(L, -2, "wrap");
    lua_getfield(L, -1, "close");
    lua_pushcclosure(L, co_close, 1);
    lua_setfield(L, -2, "close");
    lua_pop(L, 1); /* [] */
    preload(L, vm->sandboxed);
    set_path(L, lualib, scripts, !vm->sandboxed);
    if (vm->sandboxed)
        sandbox(L);
    /* health is always there: a global in runner mode; in the sandbox a
     * read-only global that library modules see, and one per file */
    luaL_requiref(L, "health", api_health_open, !vm->sandboxed);
    lua_pop(L, 1);
    if (vm->sandboxed) {
        push_readonly_health(L);
        lua_setglobal(L, "health");
    }
    return 0;
}

ha_vm *engine_vm_new(ha_engine *eng, bool sandboxed, uint64_t limit, const char *lualib,
                     const char *scripts_dir, char *err, size_t errlen)
{
    ha_vm *vm = calloc(1, sizeof *vm);
    if (vm == NULL)
        goto oom;
    vm->eng = eng;
    vm->sandboxed = sandboxed;
    vm->L = lua_newstate(vm_alloc, vm);
    if (vm->L == NULL)
        goto oom;
    *(ha_vm **)lua_getextraspace(vm->L) = vm;
    lua_atpanic(vm->L, vm_panic);
    lua_gc(vm->L, LUA_GCGEN, 0, 0);
    lua_pushcfunction(vm->L, vm_setup);
    lua_pushlightuserdata(vm->L, (void *)lualib);
    lua_pushlightuserdata(vm->L, (void *)scripts_dir);
    if (lua_pcall(vm->L, 2, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot create Lua state: %s", lua_tostring(vm->L, -1));
        lua_close(vm->L);
        free(vm);
        return NULL;
    }
    vm->limit = limit;
    vm->lualib = lualib;
    return vm;
oom:
    snprintf(err, errlen, "cannot create Lua state: not enough memory");
    free(vm);
    return NULL;
}

void engine_vm_close(ha_vm *vm)
{
    if (vm == NULL)
        return;
    while (vm->tasks)
        engine_task_kill(vm->tasks, HA_TASK_CANCELLED);
    lua_close(vm->L);
    free(vm);
}


/* Stack: [] -> [env]. A table whose reads fall back to the state's globals
 * and whose writes stay in it: one per script file. */
void engine_vm_new_env(ha_vm *vm)
{
    lua_State *L = vm->L;
    lua_newtable(L); /* [env] */
    lua_createtable(L, 0, 2); /* [env, mt] */
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable"); /* the shared globals stay out of reach */
    lua_setmetatable(L, -2); /* [env] */
    push_readonly_health(L);                   /* [env, proxy] */
    lua_setfield(L, -2, "health");             /* [env] */
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G"); /* the file's own _G is its environment */
}

/* --- default directories ----------------------------------------------- */

static int dir_has(const char *dir, const char *rel)
{
    char p[2 * PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return access(p, R_OK) == 0;
}

/* Finds name ("lualib" or "scripts"): next to the binary's parent, in the
 * install prefix, or in the source tree. Result is cached per name. */
static const char *find_dir(const char *name, const char *probe, char *cache, size_t cachelen)
{
    if (cache[0])
        return cache;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char cand[2 * PATH_MAX];
            snprintf(cand, sizeof cand, "%s/../%s", exe, name);
            if (dir_has(cand, probe) && realpath(cand, cache))
                return cache;
            snprintf(cand, sizeof cand, "%s/../share/healthagent/%s", exe, name);
            if (dir_has(cand, probe) && realpath(cand, cache))
                return cache;
        }
    }
    snprintf(cache, cachelen, "%s/%s", HA_DATA_DIR, name);
    if (dir_has(cache, probe))
        return cache;
    snprintf(cache, cachelen, "%s/%s", HA_SOURCE_DIR, name);
    return cache;
}

const char *engine_default_lualib(void)
{
    static char cache[PATH_MAX];
    return find_dir("lualib", "health", cache, sizeof cache);
}

const char *engine_default_scripts(void)
{
    static char cache[PATH_MAX];
    return find_dir("scripts", ".", cache, sizeof cache);
}
