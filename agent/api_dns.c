/* api_dns.c: health.dns, name resolution for check scripts.
 *
 *   local dns = require "health.dns"
 *   local addrs, err = dns.resolve(name, {family = "inet" | "inet6", timeout = })
 *
 * Resolves with uv_getaddrinfo on libuv's thread pool, so the engine loop
 * never blocks. A getaddrinfo call that is already running cannot be
 * stopped: when the op is cancelled (timeout, deadline) before the answer,
 * the request is left to finish and frees itself in its callback. */
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_fail.h"
#include "api_opt.h"
#include "common.h"
#include "engine_task.h"

#define DNS_MAX_ADDRS 64 /* addresses returned at most */

typedef struct {
    ha_op op;                 /* first: the task's pending slot points here */
    uv_getaddrinfo_t req;     /* data = this */
    bool running;             /* req in flight: its callback frees the op */
    bool detached;            /* op closed before the answer came */
    int status;               /* 0 or a libuv UV_EAI_* code */
    struct addrinfo *res;     /* owned until push or close */
    char *name;               /* owned: as given, for messages */
} dns_op;

static void dns_free(dns_op *op)
{
    uv_freeaddrinfo(op->res);
    free(op->name);
    free(op);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    dns_op *op = req->data;
    op->running = false;
    op->status = status;
    op->res = res;
    if (op->detached) {
        dns_free(op);
        return;
    }
    engine_task_complete(&op->op);
}

/* Pushes the unique addresses in resolver order, or nil, message. */
static int dns_push(ha_op *o, lua_State *L)
{
    dns_op *op = (dns_op *)o;
    if (op->status < 0) {
        char msg[300];
        api_fail_resolve(msg, sizeof msg, op->name, op->status);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    char seen[DNS_MAX_ADDRS][INET6_ADDRSTRLEN];
    int n = 0;
    lua_createtable(L, 2, 0); /* [list] */
    for (struct addrinfo *ai = op->res; ai && n < DNS_MAX_ADDRS; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        if (ai->ai_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
        else if (ai->ai_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
        else
            continue;
        bool dup = false;
        for (int i = 0; i < n && !dup; i++)
            dup = strcmp(seen[i], ip) == 0;
        if (dup)
            continue;
        memcpy(seen[n++], ip, sizeof ip);
        lua_pushstring(L, ip);
        lua_rawseti(L, -2, n);
    }
    if (n == 0) {
        char msg[300];
        api_fail_resolve(msg, sizeof msg, op->name, 0);
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    return 1;
}

static void dns_close(ha_op *o)
{
    dns_op *op = (dns_op *)o;
    if (!op->running) {
        dns_free(op);
        return;
    }
    op->detached = true;
    uv_cancel((uv_req_t *)&op->req); /* succeeds only if not started; the callback frees */
}

/* dns.resolve(name [, opts]) -> {address, ...} | nil, err */
static int l_resolve(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len > 0 && len < 256 && strlen(name) == len, 1, "expected a host name");
    int family = AF_UNSPEC;
    uint64_t timeout = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pop(L, 1);
            const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            if (strcmp(k, "family") != 0 && strcmp(k, "timeout") != 0)
                return luaL_error(L, "health.dns.resolve: unknown option '%s'", luaL_tolstring(L, -1, NULL));
        }
        if (lua_getfield(L, 2, "family") != LUA_TNIL) {
            const char *f = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            if (strcmp(f, "inet") == 0)
                family = AF_INET;
            else if (strcmp(f, "inet6") == 0)
                family = AF_INET6;
            else
                return luaL_error(L, "health.dns.resolve: option 'family' must be \"inet\" or \"inet6\"");
        }
        lua_pop(L, 1);
        timeout = api_opt_duration_field(L, 2, "health.dns.resolve", "timeout", timeout, false);
    }
    ha_task *t = engine_task_current(L, "health.dns.resolve");
    dns_op *op = calloc(1, sizeof *op);
    if (op == NULL || (op->name = strdup(name)) == NULL) {
        free(op);
        return luaL_error(L, "not enough memory");
    }
    op->op.push = dns_push;
    op->op.close = dns_close;
    op->req.data = op;
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM};
    int r = uv_getaddrinfo(engine_task_loop(t), &op->req, on_resolved, name, NULL, &hints);
    if (r != 0) {
        op->status = r;
        int n = dns_push(&op->op, L);
        dns_free(op);
        return n;
    }
    op->running = true;
    uv_update_time(engine_task_loop(t)); /* the timeout counts from now, not from the loop's last poll */
    return engine_task_yield(L, t, &op->op, engine_task_clamp(t, timeout));
}

int api_dns_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"resolve", l_resolve}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
