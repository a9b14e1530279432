/* engine_vm.c: Lua states for the engine (see engine_vm.h): the limited
 * allocator, the C-stack guard, the check script sandbox and its file
 * policy, text-only loading, and the coroutine library wrapped so that an
 * API yield inside a user coroutine passes through to the scheduler. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "api.h"
#include "engine_int.h"
#include "log.h"
#include "safelib.h"

static char warn_token; /* its address marks WARN results */

void *engine_vm_warn_token(void) { return &warn_token; }

ha_vm *engine_vm_of(lua_State *L) { return *(ha_vm **)lua_getextraspace(L); }

/* Every block carries its owner, so that a free credits whoever allocated
 * it, however much later and during whichever run. 16 bytes keep the
 * block's alignment that of malloc. */
typedef struct {
    uint32_t owner; /* index into vm->owners */
    uint32_t pad[3];
} vm_hdr;

uint32_t engine_vm_owner_new(ha_vm *vm, uint64_t limit)
{
    if (vm->nowners == vm->cap_owners) {
        uint32_t cap = vm->cap_owners ? vm->cap_owners * 2 : 16;
        ha_mem_owner *o = realloc(vm->owners, cap * sizeof *o);
        if (o == NULL)
            return 0;
        vm->owners = o;
        vm->cap_owners = cap;
        if (vm->nowners == 0)
            vm->owners[vm->nowners++] = (ha_mem_owner){0, 0}; /* the engine's */
    }
    vm->owners[vm->nowners] = (ha_mem_owner){0, limit};
    return vm->nowners++;
}

static void owner_add(ha_vm *vm, uint32_t owner, int64_t delta)
{
    if (owner < vm->nowners)
        vm->owners[owner].bytes += delta;
}

/* True when owner may not grow by extra bytes while the VM grows by grow:
 * past its own cap (what its earlier runs kept counts), or, once it holds
 * more than its guarantee (1/64 of the VM's limit), into the last quarter
 * of the VM's limit, kept for the checks that hold little, so that one
 * check that leaks, or several memory bombs at once, cannot starve them. */
static bool owner_over(ha_vm *vm, uint32_t owner, size_t extra, size_t grow)
{
    if (owner == 0 || owner >= vm->nowners)
        return false;
    const ha_mem_owner *o = &vm->owners[owner];
    uint64_t want = (uint64_t)(o->bytes > 0 ? o->bytes : 0) + extra;
    if (o->limit && want > o->limit)
        return true;
    return vm->limit && want > vm->limit / 64 && vm->used + grow > vm->limit - vm->limit / 4;
}

/* The allocator of every engine state. Enforces the VM's limit, the running
 * task's own allowance and its owner's (engine__task_owner), but only while
 * a task of this VM runs or a file loads: the engine's own bookkeeping
 * (creating threads, pushing results) is never refused, so it cannot fail
 * half-way outside protected mode. A block that grows while an owner runs
 * becomes that owner's (a file-level table a check keeps filling). */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ha_vm *vm = ud;
    vm_hdr *h = ptr ? (vm_hdr *)ptr - 1 : NULL;
    size_t old = ptr ? osize : 0;
    ha_task *t = vm->eng ? vm->eng->current : NULL;
    if (nsize == 0) {
        if (h) {
            owner_add(vm, h->owner, -(int64_t)old);
            free(h);
        }
        vm->used -= old;
        if (t)
            engine__task_account(t, vm, -(int64_t)old);
        return NULL;
    }
    uint32_t cur = engine__task_owner(vm);
    uint32_t to = h && (nsize <= old || cur == 0) ? h->owner : cur;
    if (nsize > old) {
        if (engine__task_over(t, vm, nsize - old))
            return NULL;
        if (cur != 0 && owner_over(vm, to, h && h->owner == to ? nsize - old : nsize, nsize - old)) {
            vm->mem_exceeded = true; /* the run (or load) fails: no pcall can catch it */
            return NULL;
        }
    }
    vm_hdr *n = realloc(h, sizeof *n + nsize);
    if (n == NULL)
        return NULL;
    if (h)
        owner_add(vm, n->owner, -(int64_t)old);
    n->owner = to;
    owner_add(vm, to, (int64_t)nsize);
    vm->used += nsize - old;
    if (t)
        engine__task_account(t, vm, (int64_t)nsize - (int64_t)old);
    return n + 1;
}

static int vm_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    log_event(LOG_ERROR, NULL, "unprotected Lua error: %s", msg ? msg : "?");
    abort();
}

/* --- the C-stack guard ------------------------------------------------- */

/* Lua 5.4.4 bounds most C recursion with its C-call counter, but not all:
 * coroutine.close resets the counter to the closed coroutine's own (a bug
 * fixed in 5.4.5), so __close handlers that close coroutines nest without
 * limit, and every wrapper below adds frames of its own. So the engine
 * marks the frame where it enters Lua, and the wrappers that a script can
 * nest refuse to go deeper than HA_CSTACK_BUDGET below it. */

char *engine__cstack_enter(ha_vm *vm)
{
    char *prev = vm->cstack_top;
    if (prev == NULL)
        vm->cstack_top = __builtin_frame_address(0);
    return prev;
}

void engine__cstack_leave(ha_vm *vm, char *prev)
{
    vm->cstack_top = prev;
    if (prev == NULL)
        vm->cstack_overflow = vm->mem_exceeded = false;
}

void engine__cstack_check(lua_State *L, const char *what)
{
    ha_vm *vm = engine_vm_of(L);
    char *here = __builtin_frame_address(0);
    if (vm->cstack_top && here < vm->cstack_top && (size_t)(vm->cstack_top - here) > HA_CSTACK_BUDGET) {
        vm->cstack_overflow = true; /* pcall and coroutine.close pass it on */
        luaL_error(L, "%s: C stack overflow (calls nested too deeply)", what);
    }
}

/* True when an error must go on unwinding: the run is past its deadline,
 * the load past its budget, or the C-stack guard tripped. */
static bool must_unwind(ha_vm *vm)
{
    return engine__task_expired(vm) || vm->doomed || vm->cstack_overflow || vm->mem_exceeded;
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
    engine__cstack_check(L, wrap ? "coroutine.wrap" : "coroutine.resume");
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
        if (must_unwind(vm))
            return lua_error(L);
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

/* True when co is nothing a script can yield from: a task's own thread (a
 * check run, a Lua aggregate, health.spawn: only the scheduler resumes it)
 * or a thread that cannot yield at all (a script loading). */
static bool co_outside(lua_State *L, lua_State *co, int idx)
{
    return !lua_isyieldable(co) || engine__task_owns_thread(L, idx);
}

/* coroutine.yield(...): the original inside a script's own coroutine.
 * Outside one it raises "attempt to yield from outside a coroutine" at the
 * caller's file:line (so pcall sees it, and a run or an aggregate that does
 * not catch it ends with that line): a bare yield there would reach the
 * scheduler, which can only end the run without saying where. */
#ifdef __SANITIZE_THREAD__
/* lua_yield leaves this function by longjmp, which ThreadSanitizer does not
 * unwind from its shadow call stack: each yield would leave a frame there,
 * and every allocation after it records the ever deeper stack (12,000 yields
 * took 2.8 s instead of 0.4). Uninstrumented, it adds no frame. */
__attribute__((no_sanitize_thread))
#endif
static int co_yield(lua_State *L)
{
    lua_pushthread(L);                             /* [args..., self] */
    bool outside = co_outside(L, L, -1);
    lua_pop(L, 1);                                 /* [args...] */
    if (outside)
        return luaL_error(L, "attempt to yield from outside a coroutine");
    return lua_yield(L, lua_gettop(L));
}

/* coroutine.isyieldable([co]): false where co_yield would raise. */
static int co_isyieldable(lua_State *L)
{
    lua_State *co = L;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTHREAD);
        co = lua_tothread(L, 1);
    } else {
        lua_settop(L, 0);
        lua_pushthread(L);                         /* [self] */
    }
    lua_pushboolean(L, !co_outside(L, co, 1));
    return 1;
}

/* coroutine.close(co): the original, under the C-stack guard; an error of
 * a __close handler that must unwind (deadline, guard) is raised again
 * instead of being returned as false, message. */
static int co_close(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    if (engine__task_owns_thread(L, 1))
        return luaL_error(L, "cannot close the coroutine of a check run");
    engine__cstack_check(L, "coroutine.close");
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, LUA_MULTRET); /* [ok [, err]] */
    if (!lua_toboolean(L, 1) && must_unwind(engine_vm_of(L)))
        return lua_error(L);
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

#define FILE_ENVS_KEY "healthagent.file_envs" /* registry: weak set of the files' environments */
#define READONLY_KEY "healthagent.readonly" /* registry: weak set of read-only views */
#define PKG_KEY "healthagent.package"       /* registry: the package table scripts cannot see */

/* Pushes a fresh environment: a table whose reads fall back to the shared
 * globals (which hold no _G), whose _G is itself, locked. [-0, +1] */
static void push_fresh_env(lua_State *L)
{
    lua_newtable(L); /* [env] */
    lua_createtable(L, 0, 2);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable"); /* the shared globals stay out of reach */
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}

/* Pushes t[key] where t is a registry table of weak keys made on demand.
 * [-0, +1] */
static int weak_get(lua_State *L, const char *regkey, int key)
{
    key = lua_absindex(L, key);
    if (luaL_getsubtable(L, LUA_REGISTRYINDEX, regkey) == 0) {
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
    }
    lua_pushvalue(L, key);
    int t = lua_rawget(L, -2);
    lua_remove(L, -2);
    return t;
}

/* Sets regkey[key] = val in a registry table of weak keys. [-0, +0] */
static void weak_set(lua_State *L, const char *regkey, int key, int val)
{
    key = lua_absindex(L, key);
    val = lua_absindex(L, val);
    weak_get(L, regkey, key); /* makes the table */
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, regkey);
    lua_pushvalue(L, key);
    lua_pushvalue(L, val);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Pushes the environment of the nearest Lua function on the calling
 * thread's stack, when that is a script file's environment; else (called
 * from C only, from a library module, or at the bottom of a coroutine) a
 * fresh environment. Chunks loaded by a script default to it, so no path
 * (pcall, gsub callbacks, coroutines, library code) hands them the globals
 * every file shares or another file's environment. [-0, +1] */
static void push_caller_env(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "fS", &ar)) /* [fn] */
            break;
        if (strcmp(ar.what, "C") == 0) {
            lua_pop(L, 1);
            continue;
        }
        for (int i = 1;; i++) {
            const char *name = lua_getupvalue(L, -1, i); /* [fn, up] */
            if (name == NULL)
                break;
            if (strcmp(name, "_ENV") == 0) {
                lua_remove(L, -2); /* [env] */
                if (weak_get(L, FILE_ENVS_KEY, -1) != LUA_TNIL) {
                    lua_pop(L, 1);
                    return;
                }
                lua_pop(L, 2);
                push_fresh_env(L);
                return;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1); /* the nearest Lua function has no _ENV */
        break;
    }
    push_fresh_env(L);
}

/* load(chunk [, name [, mode [, env]]]) with mode forced to text and env
 * defaulting to the caller's environment. */
static int sb_load(lua_State *L)
{
    int n = lua_gettop(L);
    engine__cstack_check(L, "load");
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
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET); /* [chunk] or [nil, message] */
    if (lua_isnil(L, 1) && must_unwind(engine_vm_of(L)))
        return lua_error(L); /* a reader's error that must not be turned into nil, message */
    return lua_gettop(L);
}

static int refuse_path(lua_State *L, const char *path);

static int sb_loadfile(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int refused = refuse_path(L, path);
    if (refused)
        return refused;
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
        if (must_unwind(engine_vm_of(L)))
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
    engine__cstack_check(L, "pcall");
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
    if (must_unwind(vm))
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
    engine__cstack_check(L, "xpcall");
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sb_msgh, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* [f, msgh, true, f, args] */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, sb_pcall_k);
    return sb_pcall_k(L, status, 2);
}


#define VIEWS_KEY "healthagent.views"       /* registry: weak map library table -> its view */

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "cannot modify a library table (field '%s')", luaL_tolstring(L, 2, NULL));
}

static void push_view(lua_State *L, int idx);

/* __index of a view: the library table's value, tables as views too.
 * Upvalue 1: the library table. */
static int readonly_index(lua_State *L)
{
    lua_settop(L, 2);
    lua_gettable(L, lua_upvalueindex(1)); /* [view, v] */
    if (lua_type(L, -1) == LUA_TTABLE)
        push_view(L, -1);
    return 1;
}

/* The iterator of __pairs: next over the library table, tables as views. */
static int readonly_next(lua_State *L)
{
    lua_settop(L, 2);
    if (!lua_next(L, lua_upvalueindex(1))) /* [view, k, v] or [view] */
        return 0;
    if (lua_type(L, -1) == LUA_TTABLE) {
        push_view(L, -1);
        lua_replace(L, -2);
    }
    return 2;
}

static int readonly_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, readonly_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int readonly_len(lua_State *L)
{
    lua_pushinteger(L, luaL_len(L, lua_upvalueindex(1)));
    return 1;
}

/* Pushes the read-only view of the table at idx, made once per table:
 * reads, pairs and # reach the table (nested tables as views); writes,
 * rawset and setmetatable fail. A view of a view is itself. [-0, +1] */
static void push_view(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (weak_get(L, READONLY_KEY, idx) != LUA_TNIL) { /* already a view */
        lua_pop(L, 1);
        lua_pushvalue(L, idx);
        return;
    }
    lua_pop(L, 1);
    if (weak_get(L, VIEWS_KEY, idx) != LUA_TNIL)
        return;
    lua_pop(L, 1);
    static const struct {
        const char *name;
        lua_CFunction f;
    } mms[] = {{"__index", readonly_index}, {"__pairs", readonly_pairs}, {"__len", readonly_len}};
    lua_newtable(L);                 /* [view] */
    lua_createtable(L, 0, 5);        /* [view, mt] */
    for (size_t i = 0; i < sizeof mms / sizeof mms[0]; i++) {
        lua_pushvalue(L, idx);
        lua_pushcclosure(L, mms[i].f, 1);
        lua_setfield(L, -2, mms[i].name);
    }
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);         /* [view] */
    lua_pushboolean(L, 1);
    weak_set(L, READONLY_KEY, -2, -1);
    lua_pop(L, 1);
    weak_set(L, VIEWS_KEY, idx, -1);
}

/* Replaces the table at the top of the stack by its view. [-1, +1] */
static void make_readonly(lua_State *L)
{
    push_view(L, -1);
    lua_remove(L, -2);
}

static int sb_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (weak_get(L, READONLY_KEY, 1) != LUA_TNIL)
        return luaL_error(L, "rawset: cannot modify a library table");
    lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* --- the file policy ----------------------------------------------------- */

/* True when st is the file at path (path NULL or missing: false). */
static bool same_file(const struct stat *st, const char *path)
{
    struct stat o;
    return path && stat(path, &o) == 0 && o.st_dev == st->st_dev && o.st_ino == st->st_ino;
}

/* True when real (a resolved path) is the memory or the environment of
 * this process or of one of its threads: /proc/<pid>[/task/<tid>]/mem or
 * environ, whatever name led there (self, thread-self, a tid). */
static bool own_secret_proc_entry(const char *real)
{
    if (strncmp(real, "/proc/", 6) != 0)
        return false;
    const char *base = strrchr(real, '/') + 1;
    if (strcmp(base, "mem") != 0 && strcmp(base, "environ") != 0)
        return false;
    const char *p = real + 6;
    if (strncmp(p, "self/", 5) == 0 || strncmp(p, "thread-self/", 12) == 0)
        return true;
    char *end;
    long n = strtol(p, &end, 10);
    if (end == p || *end != '/')
        return false;
    if (n == (long)getpid())
        return true;
    char task[64];
    snprintf(task, sizeof task, "/proc/self/task/%ld", n);
    return access(task, F_OK) == 0;
}

int engine_vm_file_check(ha_vm *vm, int fd, const char *path, char *why, size_t whylen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    real[n > 0 ? n : 0] = '\0';
    if (real[0] != '/') { /* a pipe, socket or event descriptor of the agent, opened through /proc/self/fd */
        snprintf(why, whylen, "%s: permission denied (the agent's own descriptors are not readable by scripts)",
                 path);
        return -1;
    }
    const ha_config *cfg = vm->eng ? vm->eng->cfg : NULL;
    if (own_secret_proc_entry(real) ||
        (cfg && (same_file(&st, cfg->config_file) || same_file(&st, cfg->token_file)))) {
        snprintf(why, whylen, "%s: permission denied (the agent's own memory, environment, configuration "
                              "and token are not readable by scripts)", path);
        return -1;
    }
    return 0;
}

/* Applies the file policy to path before a library function opens it:
 * pushes nil, reason and returns 2 when refused, else returns 0. A path
 * that does not open is left to the caller's own error. Opening with
 * O_NONBLOCK keeps a FIFO from blocking the engine. */
static int refuse_path(lua_State *L, const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    char why[PATH_MAX + 160];
    struct stat st;
    int r = engine_vm_file_check(engine_vm_of(L), fd, path, why, sizeof why);
    if (r == 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        snprintf(why, sizeof why, "%s: not a regular file (io.open and loadfile read regular files only)", path);
        r = -1;
    }
    close(fd);
    if (r == 0)
        return 0;
    luaL_pushfail(L);
    lua_pushstring(L, why);
    return 2;
}

/* io.open(filename [, mode]): reading only ("r" or "rb"), regular files
 * only, and never the agent's own /proc entries, its configuration file or
 * its token file. Upvalue 1: the original io.open. */
static int sb_io_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    if (strcmp(mode, "r") != 0 && strcmp(mode, "rb") != 0)
        return luaL_argerror(L, 2, "scripts open files for reading only (\"r\" or \"rb\")");
    int n = refuse_path(L, path);
    if (n)
        return n;
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 3); /* [file] or [nil, msg, code] */
    luaL_Stream *f = luaL_testudata(L, 1, LUA_FILEHANDLE);
    if (f == NULL || f->f == NULL)
        return 3;
    char why[PATH_MAX + 160];
    if (engine_vm_file_check(engine_vm_of(L), fileno(f->f), path, why, sizeof why) != 0) {
        lua_getfield(L, 1, "close"); /* swapped between the check and the open */
        lua_pushvalue(L, 1);
        lua_call(L, 1, 0);
        luaL_pushfail(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_settop(L, 1);
    return 1;
}

/* io.lines(filename, ...): a file name is required (the agent's stdin is
 * not the script's), opened under the policy of io.open. Returns the
 * iterator, nil, nil and the file, so a generic for closes it. Upvalue 1:
 * the policed io.open. */
static int sb_io_lines(lua_State *L)
{
    luaL_checkstring(L, 1);
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2); /* [name, fmts..., file|nil, msg] */
    if (lua_isnil(L, n + 1))
        return luaL_error(L, "%s", lua_tostring(L, n + 2));
    lua_pop(L, 1);                 /* [name, fmts..., file] */
    lua_getfield(L, n + 1, "lines"); /* [name, fmts..., file, lines] */
    lua_pushvalue(L, n + 1);
    for (int i = 2; i <= n; i++)
        lua_pushvalue(L, i);
    lua_call(L, n, 1);             /* [name, fmts..., file, iter] */
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, n + 1);       /* [..., file, iter, nil, nil, file] */
    return 4;
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
    if (refuse_path(L, file))
        return luaL_error(L, "error loading module '%s': %s", name, lua_tostring(L, -1));
    if (luaL_loadfilex(L, file, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file, lua_tostring(L, -1));
    push_fresh_env(L); /* a module's globals are its own, as a file's are */
    lua_setupvalue(L, -2, 1);
    lua_pushstring(L, file);
    return 2;
}

/* require(name): the original; a module that is a table comes back as its
 * read-only view, so no file can change what another file's require
 * returns. */
static int sb_require(lua_State *L)
{
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, 2); /* [module, data] */
    if (lua_type(L, 1) == LUA_TTABLE) {
        push_view(L, 1);
        lua_replace(L, 1);
    }
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
    safelib_install(L, engine__overdue);
    wrap_global(L, "require", sb_require);
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
    set_nil(L, "io", "output"); /* io.output(name) would open a file for writing */
    lua_getglobal(L, "io");
    lua_getfield(L, -1, "open");
    lua_pushcclosure(L, sb_io_open, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "open");
    lua_pushcclosure(L, sb_io_lines, 1); /* upvalue: the policed io.open */
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
    lua_pushnil(L);
    lua_setglobal(L, "_G"); /* the shared globals name no way back to themselves */
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
    lua_pushcfunction(L, co_yield);
    lua_setfield(L, -2, "yield");
    lua_pushcfunction(L, co_isyieldable);
    lua_setfield(L, -2, "isyieldable");
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
        free(vm->owners);
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
    free(vm->owners);
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
    lua_pushboolean(L, 1);
    weak_set(L, FILE_ENVS_KEY, -2, -1);        /* load() in this file defaults to it */
    lua_pop(L, 1);
}
