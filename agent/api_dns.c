/* api_dns.c: name resolution: the resolver every module that connects uses
 * (api_dns.h), and health.dns on top of it for check scripts.
 *
 *   local dns = require "health.dns"
 *   local addrs, err = dns.resolve(name, {family = "inet" | "inet6", timeout = })
 *
 * Resolves with uv_getaddrinfo on libuv's thread pool, so the engine loop
 * never blocks. A getaddrinfo call that is already running cannot be
 * stopped: when the op is cancelled (timeout, deadline) before the answer,
 * the request is left to finish and frees itself in its callback. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api_dns.h"
#include "api_fail.h"
#include "api_opt.h"
#include "common.h"
#include "engine_task.h"

#define DNS_MAX_ADDRS 64 /* addresses returned at most */

/* --- the resolver ---------------------------------------------------------- */

/* What health.testing sees of this thread's lookups (api_dns.h). */
static _Thread_local api_dns_stats stats;
static _Thread_local struct {
    char name[256];
    char addr[INET6_ADDRSTRLEN];
} test_hosts[API_DNS_TEST_HOSTS];
static _Thread_local int n_test_hosts;

static void on_getaddrinfo(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    api_dns_req *r = (api_dns_req *)req; /* req is r's first member */
    r->busy = false;
    stats.in_flight--;
    if (status == UV_EAI_CANCELED)
        stats.cancelled++;
    if (status != 0) {
        uv_freeaddrinfo(res);
        res = NULL;
    }
    r->done(r, status, res);
}

int api_dns_start(uv_loop_t *loop, api_dns_req *r, const char *host, int family, int port, api_dns_cb done)
{
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM,
                             .ai_flags = port > 0 ? AI_NUMERICSERV : 0};
    char service[12];
    if (port > 0)
        snprintf(service, sizeof service, "%d", port);
    r->done = done;
    snprintf(r->host, sizeof r->host, "%s", host);
    const char *node = host;
    for (int i = 0; i < n_test_hosts; i++)
        if (strcasecmp(test_hosts[i].name, host) == 0)
            node = test_hosts[i].addr;
    int rc = uv_getaddrinfo(loop, &r->req, on_getaddrinfo, node, port > 0 ? service : NULL, &hints);
    r->busy = rc == 0;
    if (rc == 0) {
        stats.started++;
        stats.in_flight++;
    }
    return rc;
}

void api_dns_cancel(api_dns_req *r)
{
    if (r->busy)
        uv_cancel((uv_req_t *)&r->req); /* succeeds only if not started; done runs either way */
}

void api_dns_message(const api_dns_req *r, int status, char *buf, size_t len)
{
    api_fail_resolve(buf, len, r->host, status);
}

void api_dns_stats_get(api_dns_stats *s) { *s = stats; }

int api_dns_test_host(const char *name, const char *addr)
{
    if (name == NULL) {
        n_test_hosts = 0;
        return 0;
    }
    unsigned char bin[sizeof(struct in6_addr)];
    if (strlen(name) == 0 || strlen(name) >= sizeof test_hosts[0].name ||
        (ha_inet_pton(AF_INET, addr, bin) != 1 && ha_inet_pton(AF_INET6, addr, bin) != 1))
        return UV_EINVAL;
    if (n_test_hosts == API_DNS_TEST_HOSTS)
        return UV_ENOSPC;
    snprintf(test_hosts[n_test_hosts].name, sizeof test_hosts[0].name, "%s", name);
    snprintf(test_hosts[n_test_hosts].addr, sizeof test_hosts[0].addr, "%s", addr);
    n_test_hosts++;
    return 0;
}

int api_dns_ip_text(const struct addrinfo *a, char *ip, size_t len)
{
    ip[0] = '\0';
    if (a->ai_family == AF_INET)
        return uv_ip4_name((const struct sockaddr_in *)a->ai_addr, ip, len);
    if (a->ai_family == AF_INET6)
        return uv_ip6_name((const struct sockaddr_in6 *)a->ai_addr, ip, len);
    return UV_EAI_FAMILY;
}

int api_dns_first_ip(const struct addrinfo *res, char *ip, size_t len)
{
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
        if (pick == NULL && a->ai_family == AF_INET6)
            pick = a;
    }
    ip[0] = '\0';
    return pick == NULL ? UV_EAI_NONAME : api_dns_ip_text(pick, ip, len);
}

/* --- health.dns ------------------------------------------------------------ */

typedef struct {
    ha_op op;                 /* first: the task's pending slot points here */
    api_dns_req r;            /* r.req.data = this; the name as given is r.host */
    bool detached;            /* op closed before the answer came */
    int status;               /* 0 or a libuv UV_EAI_* code */
    struct addrinfo *res;     /* owned until push or close */
} dns_op;

static void dns_free(dns_op *op)
{
    uv_freeaddrinfo(op->res);
    free(op);
}

static void on_resolved(api_dns_req *r, int status, struct addrinfo *res)
{
    dns_op *op = r->req.data;
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
        api_dns_message(&op->r, op->status, msg, sizeof msg);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    char seen[DNS_MAX_ADDRS][INET6_ADDRSTRLEN];
    int n = 0;
    lua_createtable(L, 2, 0); /* [list] */
    for (struct addrinfo *ai = op->res; ai && n < DNS_MAX_ADDRS; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        if (api_dns_ip_text(ai, ip, sizeof ip) != 0)
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
        api_dns_message(&op->r, 0, msg, sizeof msg);
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
    if (!op->r.busy) {
        dns_free(op);
        return;
    }
    op->detached = true;
    api_dns_cancel(&op->r); /* on_resolved frees */
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
    if (op == NULL)
        return luaL_error(L, "not enough memory");
    op->op.push = dns_push;
    op->op.close = dns_close;
    op->r.req.data = op;
    int r = api_dns_start(engine_task_loop(t), &op->r, name, family, 0, on_resolved);
    if (r != 0) {
        op->status = r;
        int n = dns_push(&op->op, L);
        dns_free(op);
        return n;
    }
    uv_update_time(engine_task_loop(t)); /* the timeout counts from now, not from the loop's last poll */
    return engine_task_yield(L, t, &op->op, timeout);
}

int api_dns_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"resolve", l_resolve}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
