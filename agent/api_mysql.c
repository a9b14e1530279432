/* api_mysql.c: health.mysql, a MySQL/MariaDB client on the engine loop
 * (MariaDB Connector/C's non-blocking API driven by a uv_poll and a timer).
 *
 *   local db, err = mysql.connect("mysql://user:pw@host:3306/db" [, {timeout = 2}])
 *   local rows, err = db:query("SELECT 1 AS one")   -- { {one = 1} }; errors: nil, message
 *   db:close()
 *
 * Every blocking call runs as _start/_cont pairs: the library returns the
 * events it waits for (MYSQL_WAIT_READ/WRITE/EXCEPT/TIMEOUT); we watch
 * mysql_get_socket with a uv_poll (stopped before every library call, which
 * may close the socket) and a timer for MYSQL_WAIT_TIMEOUT, and call _cont
 * with what happened. The host is resolved with uv_getaddrinfo first and
 * given as a numeric address (the library would resolve it synchronously).
 * Results are read whole with mysql_store_result_start/_cont; fetching rows
 * from a stored result does no I/O, so push uses mysql_fetch_row.
 *
 * Values: NULL -> nil; integer types -> integer (an unsigned BIGINT beyond
 * 2^63 stays a string); FLOAT/DOUBLE -> number; everything else (DECIMAL
 * included) -> string.
 *
 * Cancelling an operation in flight (timeout, deadline, close) shuts the
 * socket down (mariadb_cancel) and frees the handle with mysql_close, which
 * the library permits in the middle of a non-blocking operation. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>

#include "api.h"
#include "db_url.h"
#include "engine.h"

#define CONN_MT "health.mysql.conn"
#define ERR_MAX 256

typedef struct mop mop;

enum { ST_RESOLVING, ST_CONNECTING, ST_IDLE, ST_QUERY, ST_STORE };

/* One connection; freed by conn_maybe_free once no userdata, no op, no
 * resolution and no MYSQL handle refer to it. */
typedef struct mconn {
    MYSQL *my;                /* owned; NULL once closed */
    uv_poll_t *poll;          /* owned, separately allocated; NULL = none */
    int poll_fd;
    uv_timer_t *timer;        /* owned, separately allocated: MYSQL_WAIT_TIMEOUT; NULL = none */
    uv_loop_t *loop;
    db_url_resolve res;
    mop *op;                  /* the pending operation, or NULL */
    uint64_t timeout_ns;      /* per-operation timeout; 0 = the check's deadline */
    char *user, *password, *db; /* owned, may be NULL */
    int port;
    int state;                /* ST_* */
    bool busy;                /* a _start returned non-zero and its _cont has not finished */
    bool dead;
    bool has_ud;
} mconn;

enum { OP_CONNECT = 1, OP_QUERY = 2 };

struct mop {
    ha_op op;                 /* first: the task's pending slot */
    mconn *c;                 /* outlives the op */
    int kind;
    bool done;
    MYSQL_RES *result;        /* owned: the stored result of a query, may be NULL */
    char err[ERR_MAX];        /* failure; "" = success */
};

typedef struct {
    mconn *c;                 /* NULL once closed */
} mbox;

/* --- messages ----------------------------------------------------------- */

/* Our short message for the handle's current error: refused/reset
 * connects as in the other modules, "auth failed: ..." for a denied login,
 * "unknown database 'x'", and the library's text otherwise (client errors
 * lower-cased, server errors as the server wrote them). */
static void my_message(char *out, size_t len, MYSQL *my, const char *password)
{
    unsigned no = mysql_errno(my);
    char m[ERR_MAX];
    db_url_message(m, sizeof m, mysql_error(my), password);
    if (no == CR_CONN_HOST_ERROR || no == CR_CONNECTION_ERROR) {
        static const struct { const char *code, *msg; } sys[] = {
            {"(111)", "connection refused"}, {"(104)", "connection reset"},
            {"(110)", "timeout"}, {"(113)", "host unreachable"}, {NULL, NULL},
        };
        for (int i = 0; sys[i].code; i++)
            if (strstr(m, sys[i].code)) {
                snprintf(out, len, "%s", sys[i].msg);
                return;
            }
    }
    if (no == ER_ACCESS_DENIED_ERROR || no == ER_ACCESS_DENIED_NO_PASSWORD_ERROR) {
        snprintf(out, len, "auth failed: %.200s", m);
        return;
    }
    const char *db;
    if (no == ER_DBACCESS_DENIED_ERROR && (db = strstr(m, " to database '")) != NULL) {
        /* the server does not tell a missing database from a forbidden one */
        snprintf(out, len, "unknown database %.100s (or access denied)", db + 13);
        return;
    }
    snprintf(out, len, "%s", m[0] ? m : "error");
    if ((no == ER_BAD_DB_ERROR || no >= 2000) && isupper((unsigned char)out[0]) && islower((unsigned char)out[1]))
        out[0] = (char)tolower((unsigned char)out[0]); /* "Unknown database 'x'" -> "unknown ..." */
}

/* --- connection life cycle --------------------------------------------- */

static void conn_maybe_free(mconn *c)
{
    if (c->has_ud || c->op || c->my || c->res.busy || c->poll || c->timer)
        return;
    free(c->user);
    free(c->password);
    free(c->db);
    free(c);
}

static void conn_fail(mconn *c, const char *msg)
{
    c->dead = true;
    mop *op = c->op;
    if (op == NULL || op->done)
        return;
    snprintf(op->err, sizeof op->err, "%s", msg);
    op->done = true;
    engine_task_complete(&op->op);
}

static void conn_fail_my(mconn *c)
{
    char m[ERR_MAX];
    my_message(m, sizeof m, c->my, c->password);
    conn_fail(c, m);
}

static void conn_succeed(mconn *c)
{
    mop *op = c->op;
    if (op == NULL || op->done)
        return;
    op->done = true;
    engine_task_complete(&op->op);
}

static void handle_freed(uv_handle_t *h) { free(h); }

static void poll_close(mconn *c)
{
    if (c->poll) {
        uv_close((uv_handle_t *)c->poll, handle_freed);
        c->poll = NULL;
    }
}

static void timer_close(mconn *c)
{
    if (c->timer) {
        uv_close((uv_handle_t *)c->timer, handle_freed);
        c->timer = NULL;
    }
}

/* Closes the MYSQL handle: a graceful COM_QUIT when idle, else (an
 * operation in flight) the socket is shut down first so nothing blocks. */
static void close_handle(mconn *c)
{
    if (c->my == NULL)
        return;
    if (!c->busy && c->state == ST_IDLE) {
        int st = mysql_close_start(c->my);
        if (st == 0) {
            c->my = NULL;
            return;
        }
        /* would block: abort the rest of the close below */
    }
    mariadb_cancel(c->my);
    mysql_close(c->my);
    c->my = NULL;
}

/* Stops everything: fails the op with "closed", cancels the resolution,
 * closes the watchers before the library closes its socket. */
static void conn_shutdown(mconn *c)
{
    conn_fail(c, "closed");
    db_url_resolve_cancel(&c->res);
    poll_close(c);
    timer_close(c);
    close_handle(c);
}

/* --- driving the non-blocking calls ------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *h);
static void advance(mconn *c, int wait_status);

/* Stops the watchers before a library call. */
static void unwatch(mconn *c)
{
    if (c->poll)
        uv_poll_stop(c->poll);
    if (c->timer)
        uv_timer_stop(c->timer);
}

/* Waits for what the library asked (st: MYSQL_WAIT_* bits). */
static void wait_for(mconn *c, int st)
{
    int fd = (int)mysql_get_socket(c->my);
    if (c->poll && c->poll_fd != fd)
        poll_close(c);
    int events = 0;
    if (st & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
        events |= UV_READABLE;
    if (st & MYSQL_WAIT_WRITE)
        events |= UV_WRITABLE;
    if (events && fd >= 0) {
        if (c->poll == NULL) {
            uv_poll_t *p = malloc(sizeof *p);
            int rc = p ? uv_poll_init(c->loop, p, fd) : UV_ENOMEM;
            if (rc != 0) {
                free(p);
                conn_fail(c, db_url_uv_message(rc));
                return;
            }
            p->data = c;
            c->poll = p;
            c->poll_fd = fd;
        }
        uv_poll_start(c->poll, events, on_poll);
    }
    if (st & MYSQL_WAIT_TIMEOUT) {
        if (c->timer == NULL) {
            uv_timer_t *t = malloc(sizeof *t);
            if (t == NULL) {
                conn_fail(c, "not enough memory");
                return;
            }
            uv_timer_init(c->loop, t);
            t->data = c;
            c->timer = t;
        }
        uv_timer_start(c->timer, on_timer, mysql_get_timeout_value_ms(c->my), 0);
    }
}

/* After a call completed: the library may have closed its socket (a
 * failed call); close the poll now, before the number can be reused. */
static void let_go(mconn *c)
{
    if (c->poll && (int)mysql_get_socket(c->my) != c->poll_fd)
        poll_close(c);
}

/* A _start or _cont returned st; 0 means the call is complete. */
static void after_call(mconn *c, int st)
{
    c->busy = st != 0;
    if (st) {
        wait_for(c, st);
        return;
    }
    let_go(c);
    advance(c, 0);
}

/* Moves the current operation on: wait_status 0 = the last call completed
 * (its result is read here), else the events to hand to _cont. */
static void advance(mconn *c, int wait_status)
{
    mop *op = c->op;
    if (c->state == ST_CONNECTING) {
        MYSQL *ret = NULL;
        if (wait_status) {
            unwatch(c);
            after_call(c, mysql_real_connect_cont(&ret, c->my, wait_status));
            return;
        }
        if (mysql_errno(c->my)) {
            conn_fail_my(c);
            return;
        }
        c->state = ST_IDLE;
        conn_succeed(c);
    } else if (c->state == ST_QUERY) {
        int err = 0;
        if (wait_status) {
            unwatch(c);
            int st = mysql_real_query_cont(&err, c->my, wait_status);
            if (st) {
                after_call(c, st);
                return;
            }
            c->busy = false;
            let_go(c);
        }
        if (mysql_errno(c->my)) {
            c->state = ST_IDLE;
            conn_fail_my(c);
            if (mysql_get_socket(c->my) == (my_socket)-1 || mysql_errno(c->my) >= 2000)
                c->dead = true; /* client errors (2xxx): the connection is gone */
            else
                c->dead = false; /* a server error (e.g. a bad table): usable again */
            return;
        }
        MYSQL_RES *res = NULL;
        c->state = ST_STORE;
        int st = mysql_store_result_start(&res, c->my);
        if (st) {
            after_call(c, st);
            return;
        }
        if (op)
            op->result = res;
        else
            mysql_free_result(res);
        advance(c, 0);
    } else if (c->state == ST_STORE) {
        if (wait_status) {
            MYSQL_RES *res = NULL;
            unwatch(c);
            int st = mysql_store_result_cont(&res, c->my, wait_status);
            c->busy = st != 0;
            if (st) {
                wait_for(c, st);
                return;
            }
            let_go(c);
            if (op)
                op->result = res;
            else
                mysql_free_result(res);
        }
        c->state = ST_IDLE;
        if (op && op->result == NULL && mysql_field_count(c->my) != 0) {
            conn_fail_my(c);
            return;
        }
        conn_succeed(c);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    mconn *c = h->data;
    if (c->dead || c->my == NULL || !c->busy)
        return;
    int ws = 0;
    if (status < 0)
        ws = MYSQL_WAIT_READ | MYSQL_WAIT_WRITE;
    if (events & UV_READABLE)
        ws |= MYSQL_WAIT_READ;
    if (events & UV_WRITABLE)
        ws |= MYSQL_WAIT_WRITE;
    advance(c, ws);
}

static void on_timer(uv_timer_t *h)
{
    mconn *c = h->data;
    if (c->dead || c->my == NULL || !c->busy)
        return;
    advance(c, MYSQL_WAIT_TIMEOUT);
}

/* After resolving: starts the connect to the numeric address ip. */
static void start_connect(mconn *c, const char *ip)
{
    c->my = mysql_init(NULL);
    if (c->my == NULL) {
        conn_fail(c, "not enough memory");
        return;
    }
    mysql_options(c->my, MYSQL_OPT_NONBLOCK, 0);
    unsigned int proto = MYSQL_PROTOCOL_TCP;
    mysql_options(c->my, MYSQL_OPT_PROTOCOL, &proto);
    c->state = ST_CONNECTING;
    MYSQL *ret = NULL;
    int st = mysql_real_connect_start(&ret, c->my, ip, c->user, c->password, c->db, (unsigned)c->port, NULL, 0);
    after_call(c, st);
}

static void on_resolved(db_url_resolve *r, int status, const char *ip)
{
    mconn *c = r->req.data;
    if (c->dead) {
        conn_maybe_free(c);
        return;
    }
    if (status != 0) {
        conn_fail(c, db_url_uv_message(status));
        return;
    }
    start_connect(c, ip);
}

/* --- operations --------------------------------------------------------- */

static void push_value(lua_State *L, const MYSQL_FIELD *f, const char *v, unsigned long len)
{
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        if (lua_stringtonumber(L, v) != 0) {
            if (lua_isinteger(L, -1))
                return;
            lua_pop(L, 1); /* beyond 64 bits: keep the digits */
        }
        break;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        if (lua_stringtonumber(L, v) != 0)
            return;
        break;
    default:
        break;
    }
    lua_pushlstring(L, v, len);
}

/* Pushes the rows of res (NULL: none): [-0, +1]. */
static void push_rows(lua_State *L, MYSQL_RES *res)
{
    if (res == NULL) {
        lua_createtable(L, 0, 0);
        return;
    }
    unsigned n = mysql_num_fields(res);
    MYSQL_FIELD *fields = mysql_fetch_fields(res);
    lua_createtable(L, (int)mysql_num_rows(res), 0);
    MYSQL_ROW row;
    lua_Integer i = 0;
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned long *lens = mysql_fetch_lengths(res);
        lua_createtable(L, 0, (int)n);
        for (unsigned k = 0; k < n; k++) {
            if (row[k] == NULL)
                continue;
            push_value(L, &fields[k], row[k], lens[k]);
            lua_setfield(L, -2, fields[k].name);
        }
        lua_rawseti(L, -2, ++i);
    }
}

static int mop_push(ha_op *o, lua_State *L)
{
    mop *op = (mop *)o;
    if (op->err[0]) {
        lua_pushnil(L);
        lua_pushstring(L, op->err);
        return 2;
    }
    if (op->kind == OP_CONNECT) {
        mbox *b = lua_newuserdatauv(L, sizeof *b, 0);
        b->c = op->c;
        op->c->has_ud = true;
        luaL_setmetatable(L, CONN_MT);
        return 1;
    }
    push_rows(L, op->result);
    return 1;
}

static void mop_close(ha_op *o)
{
    mop *op = (mop *)o;
    mconn *c = op->c;
    if (!op->done || (op->kind == OP_CONNECT && !c->has_ud))
        c->dead = true;
    if (c->op == op)
        c->op = NULL;
    if (c->dead)
        conn_shutdown(c);
    conn_maybe_free(c);
    if (op->result)
        mysql_free_result(op->result);
    free(op);
}

static mop *mop_new(mconn *c, int kind)
{
    mop *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->op.push = mop_push;
    op->op.close = mop_close;
    op->c = c;
    op->kind = kind;
    c->op = op;
    return op;
}

static bool lib_ready;

/* Ends a call: yields until op completes, or, when it already completed
 * while starting (a failure found at once, a reply already buffered),
 * returns its results right away. */
static int finish(lua_State *L, ha_task *t, mop *op, uint64_t timeout_ns)
{
    if (!op->done)
        return engine_task_yield(L, t, &op->op, db_url_op_timeout(t, timeout_ns));
    int n = mop_push(&op->op, L);
    mop_close(&op->op);
    return n;
}

/* mysql.connect(url [, {timeout=}]) -> conn | nil, err */
static int l_connect(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    uint64_t timeout_ns = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        timeout_ns = db_url_opt_timeout(L, 2, 2);
    }
    ha_task *t = engine_task_current(L, "health.mysql.connect");
    db_url u;
    char err[128];
    if (db_url_parse(url, &u, err, sizeof err) != 0)
        return luaL_argerror(L, 1, err);
    if (strcmp(u.scheme, "mysql") != 0 && strcmp(u.scheme, "mariadb") != 0) {
        db_url_free(&u);
        return luaL_argerror(L, 1, "expected a mysql:// URL");
    }
    if (!lib_ready) {
        mysql_library_init(0, NULL, NULL); /* once, on the engine thread */
        lib_ready = true;
    }
    mconn *c = calloc(1, sizeof *c);
    mop *op = c ? mop_new(c, OP_CONNECT) : NULL;
    if (op == NULL) {
        free(c);
        db_url_free(&u);
        return luaL_error(L, "not enough memory");
    }
    c->user = u.user;
    c->password = u.password;
    c->db = u.db;
    u.user = u.password = u.db = NULL;
    c->port = u.port ? u.port : 3306;
    c->loop = engine_task_loop(t);
    c->timeout_ns = timeout_ns;
    c->state = ST_RESOLVING;
    c->res.req.data = c;
    int rc = db_url_resolve_start(c->loop, &c->res, u.host, on_resolved);
    db_url_free(&u);
    if (rc != 0)
        conn_fail(c, db_url_uv_message(rc));
    return finish(L, t, op, timeout_ns);
}

/* conn:query(sql) -> rows | nil, err */
static int l_query(lua_State *L)
{
    mbox *b = luaL_checkudata(L, 1, CONN_MT);
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    ha_task *t = engine_task_current(L, "health.mysql query");
    mconn *c = b->c;
    if (c == NULL || c->dead || c->my == NULL || c->state != ST_IDLE) {
        if (c && c->op)
            return luaL_error(L, "health.mysql: connection is busy with another operation");
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    mop *op = mop_new(c, OP_QUERY);
    if (op == NULL)
        return luaL_error(L, "not enough memory");
    c->state = ST_QUERY;
    int err = 0;
    int st = mysql_real_query_start(&err, c->my, sql, (unsigned long)len);
    after_call(c, st);
    return finish(L, t, op, c->timeout_ns);
}

/* conn:close(): closes now; idempotent. Also __gc and __close. */
static int l_close(lua_State *L)
{
    mbox *b = luaL_checkudata(L, 1, CONN_MT);
    mconn *c = b->c;
    if (c) {
        b->c = NULL;
        c->has_ud = false;
        conn_shutdown(c);
        conn_maybe_free(c);
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    mbox *b = luaL_checkudata(L, 1, CONN_MT);
    lua_pushfstring(L, "mysql connection (%s)", b->c && !b->c->dead ? "open" : "closed");
    return 1;
}

static const luaL_Reg methods[] = {
    {"query", l_query}, {"close", l_close}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"connect", l_connect}, {NULL, NULL},
};

/* require "health.mysql": [-0, +1] the module table. */
int api_mysql_open(lua_State *L)
{
    if (luaL_newmetatable(L, CONN_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
