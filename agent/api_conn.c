/* api_conn.c: the connection object the database clients share (see
 * api_conn.h): its life cycle, the op slot, the box and its metatable, and
 * the poll watcher on a library's socket. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>

#include "api_conn.h"
#include "common.h"

typedef struct {
    api_conn *c;              /* NULL once closed */
} box;

/* --- connection life cycle --------------------------------------------- */

void api_conn_init(api_conn *c, const api_conn_class *cls, uv_loop_t *loop, uint64_t timeout_ns)
{
    c->cls = cls;
    c->loop = loop;
    c->timeout_ns = timeout_ns;
    c->res.req.data = c;
}

void api_conn_maybe_free(api_conn *c)
{
    if (c->has_ud || c->op || c->res.busy || c->cls->held(c))
        return;
    c->cls->free(c);
}

void api_conn_fail(api_conn *c, const char *msg)
{
    c->dead = true;
    api_conn_op *op = c->op;
    if (op == NULL || op->done)
        return;
    snprintf(op->err, sizeof op->err, "%s", msg);
    op->done = true;
    engine_task_complete(&op->op);
}

void api_conn_succeed(api_conn *c)
{
    api_conn_op *op = c->op;
    if (op == NULL || op->done)
        return;
    op->done = true;
    engine_task_complete(&op->op);
}

void api_conn_shutdown(api_conn *c)
{
    api_conn_fail(c, "closed");
    api_dns_cancel(&c->res);
    c->cls->shutdown(c);
}

/* The libraries resolve synchronously: they get the first address, IPv4
 * preferred, in numeric form. */
static void on_resolved(api_dns_req *r, int status, struct addrinfo *res)
{
    api_conn *c = r->req.data;
    char ip[64];
    if (status == 0)
        status = api_dns_first_ip(res, ip, sizeof ip);
    uv_freeaddrinfo(res);
    if (c->dead) {
        api_conn_maybe_free(c);
        return;
    }
    if (status != 0) {
        char msg[API_CONN_ERR_MAX];
        api_dns_message(r, status, msg, sizeof msg);
        api_conn_fail(c, msg);
        return;
    }
    c->cls->connect(c, ip);
}

void api_conn_resolve(api_conn *c, const char *host)
{
    unsigned char bin[sizeof(struct in6_addr)];
    if (ha_inet_pton(AF_INET, host, bin) == 1 || ha_inet_pton(AF_INET6, host, bin) == 1) {
        c->cls->connect(c, host); /* numeric: no lookup, no thread-pool slot */
        return;
    }
    int rc = api_dns_start(c->loop, &c->res, host, AF_UNSPEC, 0, on_resolved);
    if (rc != 0) {
        char msg[API_CONN_ERR_MAX];
        api_dns_message(&c->res, rc, msg, sizeof msg);
        api_conn_fail(c, msg);
    }
}

/* --- operations --------------------------------------------------------- */

/* Pushes a new box for c: [-0, +1]. */
static void box_push(lua_State *L, api_conn *c)
{
    box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->c = c;
    c->has_ud = true;
    luaL_setmetatable(L, c->cls->mt);
}

static int op_push(ha_op *o, lua_State *L)
{
    api_conn_op *op = (api_conn_op *)o;
    if (op->err[0]) {
        lua_pushnil(L);
        lua_pushstring(L, op->err);
        return 2;
    }
    if (op->kind == API_CONN_CONNECT) {
        box_push(L, op->c);
        return 1;
    }
    return op->c->cls->push(op, L);
}

/* Detaches op from its connection. A connect that did not hand out a box,
 * or an op that did not finish (timeout, deadline), leaves the connection
 * closed. */
static void op_close(ha_op *o)
{
    api_conn_op *op = (api_conn_op *)o;
    api_conn *c = op->c;
    if (!op->done || (op->kind == API_CONN_CONNECT && !c->has_ud))
        c->dead = true;
    if (c->op == op)
        c->op = NULL;
    const api_conn_class *cls = c->cls; /* c may be freed below */
    if (c->dead)
        api_conn_shutdown(c);
    api_conn_maybe_free(c);
    if (op->result)
        cls->clear(op->result);
    free(op);
}

api_conn_op *api_conn_op_new(api_conn *c, int kind)
{
    api_conn_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->op.push = op_push;
    op->op.close = op_close;
    op->c = c;
    op->kind = kind;
    c->op = op;
    return op;
}

int api_conn_finish(lua_State *L, ha_task *t, api_conn_op *op)
{
    if (!op->done)
        return engine_task_yield(L, t, &op->op, op->c->timeout_ns);
    int n = op_push(&op->op, L);
    op_close(&op->op);
    return n;
}

/* --- the box ------------------------------------------------------------ */

api_conn *api_conn_check(lua_State *L, int idx, const api_conn_class *cls)
{
    box *b = luaL_checkudata(L, idx, cls->mt);
    return b->c;
}

int api_conn_ready(lua_State *L, api_conn *c, bool usable)
{
    if (c != NULL && !c->dead && c->op)
        return luaL_error(L, "%s", c->cls->busy);
    if (c == NULL || c->dead || !usable) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    return 0;
}

/* close(), __gc, __close: closes now; idempotent. The class is upvalue 1. */
static int l_close(lua_State *L)
{
    const api_conn_class *cls = lua_touserdata(L, lua_upvalueindex(1));
    box *b = luaL_checkudata(L, 1, cls->mt);
    api_conn *c = b->c;
    if (c) {
        b->c = NULL;
        c->has_ud = false;
        api_conn_shutdown(c);
        api_conn_maybe_free(c);
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    const api_conn_class *cls = lua_touserdata(L, lua_upvalueindex(1));
    box *b = luaL_checkudata(L, 1, cls->mt);
    lua_pushfstring(L, "%s (%s)", cls->what, b->c && !b->c->dead ? "open" : "closed");
    return 1;
}

/* Sets field name of the table on top to a closure of f over cls. */
static void set_closure(lua_State *L, const api_conn_class *cls, const char *name, lua_CFunction f)
{
    lua_pushlightuserdata(L, (void *)cls);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, name);
}

void api_conn_register(lua_State *L, const api_conn_class *cls, const luaL_Reg *methods)
{
    if (luaL_newmetatable(L, cls->mt)) {
        lua_newtable(L); /* the methods */
        luaL_setfuncs(L, methods, 0);
        set_closure(L, cls, "close", l_close);
        lua_setfield(L, -2, "__index");
        set_closure(L, cls, "__gc", l_close);
        set_closure(L, cls, "__close", l_close);
        set_closure(L, cls, "__tostring", l_tostring);
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1); /* pop the metatable */
}

/* --- the poll watcher --------------------------------------------------- */

void api_conn_handle_freed(uv_handle_t *h) { free(h); }

void api_conn_poll_close(api_conn_poll *w)
{
    if (w->h == NULL)
        return;
    uv_close((uv_handle_t *)w->h, api_conn_handle_freed);
    w->h = NULL;
}

void api_conn_poll_drop_stale(api_conn_poll *w, int fd)
{
    if (w->h && w->fd != fd)
        api_conn_poll_close(w);
}

void api_conn_poll_stop(api_conn_poll *w)
{
    if (w->h)
        uv_poll_stop(w->h);
}

int api_conn_poll_watch(api_conn_poll *w, uv_loop_t *loop, int fd, int events, uv_poll_cb cb, void *data)
{
    api_conn_poll_drop_stale(w, fd);
    if (w->h == NULL) {
        uv_poll_t *p = malloc(sizeof *p);
        int rc = p ? uv_poll_init(loop, p, fd) : UV_ENOMEM;
        if (rc != 0) {
            free(p);
            return rc;
        }
        p->data = data;
        w->h = p;
        w->fd = fd;
    }
    uv_poll_start(w->h, events, cb); /* cannot fail on an initialised handle and a valid fd */
    return 0;
}
