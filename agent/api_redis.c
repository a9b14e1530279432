/* api_redis.c: health.redis, a Redis client on the engine loop (hiredis'
 * asynchronous API with its libuv adapter).
 *
 *   local c, err = redis.connect("redis://:password@127.0.0.1:6379/0" [, {timeout = 2}])
 *   local c, err = redis.connect{host =, port =, password =, username =, db =, path =, timeout =}
 *   c:command("PING")           -- "PONG"; errors: nil, "ERR ..."; I/O failure: nil, "timeout" | "closed" ...
 *   c:close()
 *
 * Connecting resolves the host on the loop (api_dns.h; hiredis would block on
 * it), connects to the numeric address, then sends AUTH and SELECT. A client
 * is C memory (rconn, an api_conn) that a Lua userdata points to; the
 * pending operation of a call is an api_conn_op. hiredis frees its context itself after a failed
 * connect or a dropped connection (we learn it from the connect/disconnect
 * callbacks); otherwise we free it, never from inside a hiredis callback. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "api.h"
#include "api_conn.h"
#include "api_fail.h"
#include "api_opt.h"
#include "db_url.h"
#include "engine.h"

#define ERR_MAX API_CONN_ERR_MAX

/* One client connection (api_conn.h); freed once no box, no operation, no
 * hiredis context and no resolution refer to it. */
typedef struct rconn {
    api_conn base;            /* first */
    redisAsyncContext *ac;    /* owned; NULL before connecting and once freed */
    char *user, *password;    /* owned, may be NULL: AUTH at connect */
    char *path;               /* owned, may be NULL: unix socket instead of TCP */
    int port;
    int db;                   /* SELECTed at connect when > 0 */
    int setup_left;           /* AUTH/SELECT replies still awaited */
    bool connected;           /* hiredis reported the TCP connect done */
    bool freeing;             /* inside our redisAsyncFree: callbacks ignore */
} rconn;

/* A copied reply: hiredis frees its own reply when the callback returns. */
typedef struct rval {
    int type;                 /* REDIS_REPLY_* */
    long long integer;
    char *str;                /* owned; strings, status and errors */
    size_t len;
    size_t n;                 /* array elements */
    struct rval *elem;        /* owned array of n */
} rval;

/* An op's result (api_conn_op.result) is the copied rval of a command. */
enum { OP_COMMAND = API_CONN_CONNECT + 1 };

/* --- connection life cycle --------------------------------------------- */

static bool conn_held(const api_conn *b)
{
    return ((const rconn *)b)->ac != NULL;
}

static void conn_free(api_conn *b)
{
    rconn *c = (rconn *)b;
    free(c->user);
    free(c->password);
    free(c->path);
    free(c);
}

/* api_conn_fail with msg redacted ("error" when nothing is left). Safe
 * from any callback. */
static void conn_fail(rconn *c, const char *msg)
{
    char m[ERR_MAX];
    db_url_message(m, sizeof m, msg, c->password);
    api_conn_fail(&c->base, m[0] ? m : "error");
}

/* A hiredis error string in the library's vocabulary (api_fail_text),
 * else lower-cased. */
static void io_message(char *out, size_t len, const redisAsyncContext *ac)
{
    const char *s = ac && ac->errstr && ac->errstr[0] ? ac->errstr : API_FAIL_CLOSED;
    const char *ours = api_fail_text(s);
    snprintf(out, len, "%s", ours ? ours : s);
    out[0] = (char)tolower((unsigned char)out[0]);
}

/* Frees the hiredis context. Not from a hiredis callback. */
static void conn_shutdown(api_conn *b)
{
    rconn *c = (rconn *)b;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        c->freeing = true;
        redisAsyncFree(ac); /* runs pending callbacks with NULL replies */
        c->freeing = false;
    }
}

/* --- replies ------------------------------------------------------------ */

static void rval_clear(rval *v)
{
    free(v->str);
    for (size_t i = 0; i < v->n; i++)
        rval_clear(&v->elem[i]);
    free(v->elem);
}

/* Copies r into v. Returns 0 or -1 (memory). */
static int rval_copy(rval *v, const redisReply *r)
{
    memset(v, 0, sizeof *v);
    v->type = r->type;
    v->integer = r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
        v->str = malloc(r->len + 1);
        if (v->str == NULL)
            return -1;
        memcpy(v->str, r->str, r->len);
        v->str[r->len] = '\0';
        v->len = r->len;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        v->elem = calloc(r->elements, sizeof *v->elem);
        if (v->elem == NULL)
            return -1;
        for (size_t i = 0; i < r->elements; i++) {
            v->n = i + 1;
            if (rval_copy(&v->elem[i], r->element[i]) != 0)
                return -1;
        }
    }
    return 0;
}

/* Pushes v: [-0, +1]. Inside arrays nil becomes false (lists stay dense)
 * and an error becomes {err = message}. */
static void rval_push(lua_State *L, const rval *v)
{
    switch (v->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, v->str, v->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushinteger(L, (lua_Integer)v->integer);
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)v->n, 0);
        for (size_t i = 0; i < v->n; i++) {
            const rval *e = &v->elem[i];
            if (e->type == REDIS_REPLY_NIL) {
                lua_pushboolean(L, 0);
            } else if (e->type == REDIS_REPLY_ERROR) {
                lua_createtable(L, 0, 1);
                lua_pushlstring(L, e->str, e->len);
                lua_setfield(L, -2, "err");
            } else {
                rval_push(L, e);
            }
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

/* --- hiredis callbacks (record outcomes in C only) ----------------------- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (c == NULL || c->freeing)
        return;
    if (status != REDIS_OK) {
        char m[ERR_MAX];
        io_message(m, sizeof m, ac);
        c->ac = NULL; /* hiredis frees it when we return */
        conn_fail(c, m);
        return;
    }
    c->connected = true;
    if (c->setup_left == 0)
        api_conn_succeed(&c->base);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn *c = ac->data;
    if (c == NULL)
        return;
    c->ac = NULL; /* freed by hiredis after this callback */
    if (!c->freeing) {
        char m[ERR_MAX];
        io_message(m, sizeof m, ac);
        conn_fail(c, status == REDIS_OK ? "closed" : m);
    }
}

/* Common start of a reply callback: true when the reply belongs to a live
 * pending op of kind; a NULL reply (connection lost) fails it. */
static bool reply_wanted(redisAsyncContext *ac, rconn *c, const redisReply *r, int kind)
{
    api_conn_op *op = c->base.op;
    if (c->freeing || op == NULL || op->done || op->kind != kind)
        return false;
    if (r == NULL) {
        char m[ERR_MAX];
        io_message(m, sizeof m, ac);
        conn_fail(c, m);
        return false;
    }
    return true;
}

/* A reply to the AUTH or SELECT sent at connect: an error fails the
 * connect with "<failed>: <error>"; the last reply ends the connect. */
static void setup_reply(redisAsyncContext *ac, rconn *c, const redisReply *r, const char *failed)
{
    if (!reply_wanted(ac, c, r, API_CONN_CONNECT))
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char m[ERR_MAX];
        snprintf(m, sizeof m, "%s: %s", failed, r->str);
        conn_fail(c, m);
        return;
    }
    if (--c->setup_left == 0 && c->connected)
        api_conn_succeed(&c->base);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    setup_reply(ac, privdata, reply, "auth failed");
}

static void on_select(redisAsyncContext *ac, void *reply, void *privdata)
{
    rconn *c = privdata;
    char failed[48];
    snprintf(failed, sizeof failed, "select %d failed", c->db);
    setup_reply(ac, c, reply, failed);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    rconn *c = privdata;
    const redisReply *r = reply;
    if (!reply_wanted(ac, c, r, OP_COMMAND))
        return;
    api_conn_op *op = c->base.op;
    if (r->type == REDIS_REPLY_ERROR) {
        db_url_message(op->err, sizeof op->err, r->str, c->password);
        if (op->err[0] == '\0')
            snprintf(op->err, sizeof op->err, "ERR");
    } else {
        rval *v = calloc(1, sizeof *v);
        op->result = v;
        if (v == NULL || rval_copy(v, r) != 0)
            snprintf(op->err, sizeof op->err, "not enough memory");
    }
    op->done = true;
    engine_task_complete(&op->op);
}

/* hiredis 0.14's libuv adapter drops poll callbacks with a non-zero status,
 * and libuv reports a socket error (a refused connect: POLLERR) exactly
 * that way, after stopping the handle: the connect would never end. These
 * wrappers around the adapter's hooks re-arm the same uv_poll with a
 * callback that hands error events to hiredis as the events it waited for,
 * so hiredis reads the socket error itself. */
static void on_poll(uv_poll_t *h, int status, int events)
{
    redisLibuvEvents *p = h->data;
    int ev = status ? p->events : events;
    if (p->context && (ev & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void rearm(void *privdata)
{
    redisLibuvEvents *p = privdata;
    if (p->events)
        uv_poll_start(&p->handle, p->events, on_poll);
}

static void ev_add_read(void *pd) { redisLibuvAddRead(pd); rearm(pd); }
static void ev_del_read(void *pd) { redisLibuvDelRead(pd); rearm(pd); }
static void ev_add_write(void *pd) { redisLibuvAddWrite(pd); rearm(pd); }
static void ev_del_write(void *pd) { redisLibuvDelWrite(pd); rearm(pd); }

/* Second step of connect: the host is resolved (or a unix path is set). */
static void start_connect(api_conn *b, const char *ip)
{
    rconn *c = (rconn *)b;
    redisAsyncContext *ac = c->path ? redisAsyncConnectUnix(c->path) : redisAsyncConnect(ip, c->port);
    if (ac == NULL) {
        conn_fail(c, "not enough memory");
        return;
    }
    if (ac->err) {
        char m[ERR_MAX];
        io_message(m, sizeof m, ac);
        redisAsyncFree(ac);
        conn_fail(c, m);
        return;
    }
    if (redisLibuvAttach(ac, b->loop) != REDIS_OK) {
        /* the adapter set its hooks before failing: keep it from running them */
        memset(&ac->ev, 0, sizeof ac->ev);
        redisAsyncFree(ac);
        conn_fail(c, "cannot watch the socket");
        return;
    }
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (c->password) {
        int rc = c->user ? redisAsyncCommand(ac, on_auth, c, "AUTH %s %s", c->user, c->password)
                         : redisAsyncCommand(ac, on_auth, c, "AUTH %s", c->password);
        if (rc == REDIS_OK)
            c->setup_left++;
    }
    if (c->db > 0 && redisAsyncCommand(ac, on_select, c, "SELECT %d", c->db) == REDIS_OK)
        c->setup_left++;
    /* hiredis 0.14 watches for writability only once a command is queued:
     * ask for it so the connect callback comes even without AUTH/SELECT */
    ac->ev.addWrite(ac->ev.data);
}

/* --- operations --------------------------------------------------------- */

static int command_push(api_conn_op *op, lua_State *L)
{
    rval_push(L, op->result);
    return 1;
}

static void reply_clear(void *result)
{
    rval_clear(result);
    free(result);
}

static const api_conn_class redis_class = {
    .mt = "health.redis.client",
    .what = "redis client",
    .busy = "health.redis: client is busy with another operation",
    .connect = start_connect,
    .push = command_push,
    .clear = reply_clear,
    .shutdown = conn_shutdown,
    .held = conn_held,
    .free = conn_free,
};

/* The arguments of connect, as read before anything is allocated: the
 * strings live on the Lua stack until connect returns. */
typedef struct {
    const char *host, *user, *password, *path; /* NULL when absent */
    int port, db;
    uint64_t timeout_ns;
} rargs;

/* Reads an optional string field, leaving it on the stack (anchored until
 * the C function returns). Raises on a bad type. */
static const char *opt_str(lua_State *L, int idx, const char *key)
{
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        return lua_tostring(L, -1);
    if (t != LUA_TNIL)
        luaL_error(L, "health.redis.connect: field '%s': expected a string", key);
    return NULL;
}

static int opt_int(lua_State *L, int idx, const char *key, int dflt, int lo, int hi)
{
    int v = dflt;
    if (lua_getfield(L, idx, key) != LUA_TNIL) {
        int ok;
        lua_Integer n = lua_tointegerx(L, -1, &ok);
        if (!ok || n < lo || n > hi)
            luaL_error(L, "health.redis.connect: field '%s': expected an integer in %d..%d", key, lo, hi);
        v = (int)n;
    }
    lua_pop(L, 1);
    return v;
}

/* Pushes s (or nil) and returns the anchored copy: [-0, +1]. */
static const char *anchor(lua_State *L, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        lua_pushnil(L);
        return NULL;
    }
    return lua_pushstring(L, s);
}

/* Reads connect's arguments into a; raises on misuse. Pushes strings. */
static void parse_args(lua_State *L, rargs *a)
{
    memset(a, 0, sizeof *a);
    a->port = 6379;
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *url = lua_tostring(L, 1);
        if (!lua_isnoneornil(L, 2)) {
            luaL_checktype(L, 2, LUA_TTABLE);
            a->timeout_ns = api_opt_duration_field(L, 2, "health.redis.connect", "timeout", 0, false);
        }
        if (strncmp(url, "unix://", 7) == 0) {
            a->path = url + 7;
            luaL_argcheck(L, a->path[0] == '/', 1, "unix:// URL: expected an absolute socket path");
            return;
        }
        db_url u;
        char err[128];
        if (db_url_parse(url, &u, err, sizeof err) != 0)
            luaL_argerror(L, 1, err);
        const char *why = NULL;
        char *end = NULL;
        long db = u.db ? strtol(u.db, &end, 10) : 0;
        if (strcmp(u.scheme, "rediss") == 0)
            why = "rediss:// (TLS) is not supported; use redis://";
        else if (strcmp(u.scheme, "redis") != 0)
            why = "expected a redis:// URL";
        else if (u.db && (*end || db < 0 || db > 1000000))
            why = "expected a database number after the '/'";
        if (why == NULL) {
            a->db = (int)db;
            a->port = u.port ? u.port : 6379;
            a->host = anchor(L, u.host);
            a->user = anchor(L, u.user);
            a->password = anchor(L, u.password);
        }
        db_url_free(&u);
        if (why)
            luaL_argerror(L, 1, why);
        return;
    }
    luaL_argexpected(L, lua_type(L, 1) == LUA_TTABLE, 1, "URL string or table");
    a->host = opt_str(L, 1, "host");
    a->password = opt_str(L, 1, "password");
    a->user = opt_str(L, 1, "username");
    a->path = opt_str(L, 1, "path");
    if (a->password && a->password[0] == '\0')
        a->password = NULL;
    a->port = opt_int(L, 1, "port", 6379, 1, 65535);
    a->db = opt_int(L, 1, "db", 0, 0, 1000000);
    a->timeout_ns = api_opt_duration_field(L, 1, "health.redis.connect", "timeout", 0, false);
    if (a->host == NULL)
        a->host = "127.0.0.1";
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && d == NULL)
        *oom = true;
    return d;
}

/* redis.connect(url [, {timeout=}]) | redis.connect{...} -> client | nil, err */
static int l_connect(lua_State *L)
{
    rargs a;
    parse_args(L, &a);
    ha_task *t = engine_task_current(L, "health.redis.connect");
    bool oom = false;
    rconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return luaL_error(L, "not enough memory");
    api_conn_init(&c->base, &redis_class, engine_task_loop(t), a.timeout_ns);
    c->user = dup_or_null(a.user, &oom);
    c->password = dup_or_null(a.password, &oom);
    c->path = dup_or_null(a.path, &oom);
    c->port = a.port;
    c->db = a.db;
    api_conn_op *op = oom ? NULL : api_conn_op_new(&c->base, API_CONN_CONNECT);
    if (op == NULL) {
        api_conn_maybe_free(&c->base);
        return luaL_error(L, "not enough memory");
    }
    if (c->path)
        start_connect(&c->base, NULL);
    else
        api_conn_resolve(&c->base, a.host);
    return api_conn_finish(L, t, op);
}

/* client:command(name, args...) -> reply | nil, err */
static int l_command(lua_State *L)
{
    api_conn *b = api_conn_check(L, 1, &redis_class);
    rconn *c = (rconn *)b;
    int argc = lua_gettop(L) - 1;
    luaL_argcheck(L, argc >= 1, 2, "expected a command name");
    if (argc > 1024 * 1024)
        return luaL_error(L, "health.redis: too many arguments");
    for (int i = 2; i <= argc + 1; i++) {
        int ty = lua_type(L, i);
        luaL_argexpected(L, ty == LUA_TSTRING || ty == LUA_TNUMBER, i, "string or number");
    }
    ha_task *t = engine_task_current(L, "health.redis command");
    int n = api_conn_ready(L, b, c && c->ac);
    if (n)
        return n;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    api_conn_op *op = argv && lens ? api_conn_op_new(b, OP_COMMAND) : NULL;
    if (op == NULL) {
        free(argv);
        free(lens);
        return luaL_error(L, "not enough memory");
    }
    for (int i = 0; i < argc; i++)
        argv[i] = lua_tolstring(L, i + 2, &lens[i]);
    if (redisAsyncCommandArgv(c->ac, on_reply, c, argc, argv, lens) != REDIS_OK)
        conn_fail(c, "closed");
    free(argv);
    free(lens);
    return api_conn_finish(L, t, op);
}

static const luaL_Reg methods[] = {
    {"command", l_command}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"connect", l_connect}, {NULL, NULL},
};

/* require "health.redis": [-0, +1] the module table. */
int api_redis_open(lua_State *L)
{
    api_conn_register(L, &redis_class, methods);
    luaL_newlib(L, funcs);
    return 1;
}
