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
 * with what happened. The host is resolved on the loop first (api_dns.h) and
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
 * the library permits in the middle of a non-blocking operation. A query
 * that was running is then killed on the server too (KILL QUERY from a
 * connection of its own, made with blocking calls on libuv's threadpool with
 * 2 s connect, read and write timeouts; at most KILLS_MAX at a time, so a
 * dead server cannot take more of the pool), or the server would run it to
 * the end. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>

#include "api.h"
#include "api_conn.h"
#include "api_fail.h"
#include "api_opt.h"
#include "db_url.h"
#include "engine.h"

#define ERR_MAX API_CONN_ERR_MAX

enum { ST_RESOLVING, ST_CONNECTING, ST_IDLE, ST_QUERY, ST_STORE };

/* One connection (api_conn.h); freed once no box, no op, no resolution,
 * no watcher and no MYSQL handle refer to it. */
typedef struct mconn {
    api_conn base;            /* first */
    MYSQL *my;                /* owned; NULL once closed */
    api_conn_poll poll;       /* watches mysql_get_socket */
    uv_timer_t *timer;        /* owned, separately allocated: MYSQL_WAIT_TIMEOUT; NULL = none */
    char *user, *password, *db; /* owned, may be NULL */
    char *ip;                 /* owned, may be NULL: the numeric address connected to (KILL QUERY goes there) */
    int port;
    int state;                /* ST_* */
    bool busy;                /* a _start returned non-zero and its _cont has not finished */
} mconn;

/* An op's result (api_conn_op.result) is the stored MYSQL_RES of a query. */
enum { OP_QUERY = API_CONN_CONNECT + 1 };

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
        /* "Can't connect to server on '10.0.0.8' (111)": the errno in parentheses */
        const char *p = strrchr(m, '(');
        int e = 0;
        if (p != NULL && sscanf(p, "(%d)", &e) == 1 && e > 0) {
            snprintf(out, len, "%s", api_fail_errno(e));
            return;
        }
    }
    const char *ours = api_fail_text(m);
    if (ours != NULL && (no == CR_SERVER_LOST || no == CR_SERVER_GONE_ERROR || no == CR_CONN_HOST_ERROR)) {
        snprintf(out, len, "%s", ours);
        return;
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

static bool conn_held(const api_conn *b)
{
    const mconn *c = (const mconn *)b;
    return c->my || c->poll.h || c->timer;
}

static void conn_free(api_conn *b)
{
    mconn *c = (mconn *)b;
    free(c->user);
    free(c->password);
    free(c->db);
    free(c->ip);
    free(c);
}

static void conn_fail(mconn *c, const char *msg) { api_conn_fail(&c->base, msg); }

static void conn_fail_my(mconn *c)
{
    char m[ERR_MAX];
    my_message(m, sizeof m, c->my, c->password);
    conn_fail(c, m);
}

static void timer_close(mconn *c)
{
    if (c->timer) {
        uv_close((uv_handle_t *)c->timer, api_conn_handle_freed);
        c->timer = NULL;
    }
}

/* Closes the MYSQL handle: a graceful COM_QUIT when idle, else (an
 * operation in flight) the socket is shut down first so nothing blocks. */
/* --- killing a query on the server ------------------------------------- */

#define KILLS_MAX 1         /* KILL QUERY jobs in flight, each on a threadpool worker */
#define KILL_TIMEOUT_S 2u   /* connect, read and write timeout of the killing connection */

typedef struct {
    uv_work_t req;
    char *ip, *user, *password;
    int port;
    unsigned long id;       /* the server's thread id of the query to kill */
} kill_job;

static int kills_in_flight; /* engine thread only */

static void kill_job_free(kill_job *j)
{
    free(j->ip);
    free(j->user);
    free(j->password);
    free(j);
}

/* Threadpool: connects and sends KILL QUERY id. Touches nothing shared. */
static void kill_work(uv_work_t *req)
{
    kill_job *j = req->data;
    MYSQL *m = mysql_init(NULL);
    if (m == NULL)
        return;
    unsigned int t = KILL_TIMEOUT_S, proto = MYSQL_PROTOCOL_TCP;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &t);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &t);
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    if (mysql_real_connect(m, j->ip, j->user, j->password, NULL, (unsigned)j->port, NULL, 0)) {
        char q[64];
        snprintf(q, sizeof q, "KILL QUERY %lu", j->id);
        mysql_query(m, q);
    }
    mysql_close(m);
}

static void kill_done(uv_work_t *req, int status)
{
    (void)status;
    kills_in_flight--;
    kill_job_free(req->data);
}

/* Before the handle of a connection whose query is running goes: asks the
 * server to stop the query. Best effort, never blocks the loop. */
static void kill_on_server(mconn *c)
{
    if (c->my == NULL || c->ip == NULL || (c->state != ST_QUERY && c->state != ST_STORE) ||
        kills_in_flight >= KILLS_MAX)
        return;
    kill_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->req.data = j;
    j->ip = strdup(c->ip);
    j->user = c->user ? strdup(c->user) : NULL;
    j->password = c->password ? strdup(c->password) : NULL;
    j->port = c->port;
    j->id = mysql_thread_id(c->my);
    if (j->ip == NULL || (c->user && j->user == NULL) || (c->password && j->password == NULL) ||
        uv_queue_work(c->base.loop, &j->req, kill_work, kill_done) != 0) {
        kill_job_free(j);
        return;
    }
    kills_in_flight++;
}

static void close_handle(mconn *c)
{
    if (c->my == NULL)
        return;
    kill_on_server(c);
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

/* Closes the watchers before the library closes its socket. */
static void conn_shutdown(api_conn *b)
{
    mconn *c = (mconn *)b;
    api_conn_poll_close(&c->poll);
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
    api_conn_poll_stop(&c->poll);
    if (c->timer)
        uv_timer_stop(c->timer);
}

/* Waits for what the library asked (st: MYSQL_WAIT_* bits). */
static void wait_for(mconn *c, int st)
{
    int fd = (int)mysql_get_socket(c->my);
    api_conn_poll_drop_stale(&c->poll, fd);
    int events = 0;
    if (st & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
        events |= UV_READABLE;
    if (st & MYSQL_WAIT_WRITE)
        events |= UV_WRITABLE;
    if (events && fd >= 0) {
        int rc = api_conn_poll_watch(&c->poll, c->base.loop, fd, events, on_poll, c);
        if (rc != 0) {
            conn_fail(c, api_fail_uv(rc));
            return;
        }
    }
    if (st & MYSQL_WAIT_TIMEOUT) {
        if (c->timer == NULL) {
            uv_timer_t *t = malloc(sizeof *t);
            if (t == NULL) {
                conn_fail(c, "not enough memory");
                return;
            }
            uv_timer_init(c->base.loop, t);
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
    api_conn_poll_drop_stale(&c->poll, (int)mysql_get_socket(c->my));
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
    api_conn_op *op = c->base.op;
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
        api_conn_succeed(&c->base);
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
                c->base.dead = true; /* client errors (2xxx): the connection is gone */
            else
                c->base.dead = false; /* a server error (e.g. a bad table): usable again */
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
        api_conn_succeed(&c->base);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    mconn *c = h->data;
    if (c->base.dead || c->my == NULL || !c->busy)
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
    if (c->base.dead || c->my == NULL || !c->busy)
        return;
    advance(c, MYSQL_WAIT_TIMEOUT);
}

/* After resolving: starts the connect to the numeric address ip. */
static void start_connect(api_conn *b, const char *ip)
{
    mconn *c = (mconn *)b;
    c->my = mysql_init(NULL);
    if (c->my == NULL) {
        conn_fail(c, "not enough memory");
        return;
    }
    mysql_options(c->my, MYSQL_OPT_NONBLOCK, 0);
    unsigned int proto = MYSQL_PROTOCOL_TCP;
    mysql_options(c->my, MYSQL_OPT_PROTOCOL, &proto);
    free(c->ip);
    c->ip = ip ? strdup(ip) : NULL;
    if (ip && c->ip == NULL) {
        conn_fail(c, "not enough memory");
        return;
    }
    c->state = ST_CONNECTING;
    MYSQL *ret = NULL;
    /* the library keeps the host pointer while the connect is suspended (its
     * retries and messages read it): hand it our copy, which lives as long */
    int st = mysql_real_connect_start(&ret, c->my, c->ip, c->user, c->password, c->db, (unsigned)c->port, NULL, 0);
    after_call(c, st);
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

static int query_push(api_conn_op *op, lua_State *L)
{
    push_rows(L, op->result);
    return 1;
}

static void result_clear(void *result) { mysql_free_result(result); }

static const api_conn_class my_class = {
    .mt = "health.mysql.conn",
    .what = "mysql connection",
    .busy = "health.mysql: connection is busy with another operation",
    .connect = start_connect,
    .push = query_push,
    .clear = result_clear,
    .shutdown = conn_shutdown,
    .held = conn_held,
    .free = conn_free,
};

static bool lib_ready;

/* mysql.connect(url [, {timeout=}]) -> conn | nil, err */
static int l_connect(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    uint64_t timeout_ns = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        timeout_ns = api_opt_duration_field(L, 2, "health.mysql.connect", "timeout", 0, false);
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
    if (c)
        api_conn_init(&c->base, &my_class, engine_task_loop(t), timeout_ns);
    api_conn_op *op = c ? api_conn_op_new(&c->base, API_CONN_CONNECT) : NULL;
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
    c->state = ST_RESOLVING;
    api_conn_resolve(&c->base, u.host);
    db_url_free(&u);
    return api_conn_finish(L, t, op);
}

/* conn:query(sql) -> rows | nil, err */
static int l_query(lua_State *L)
{
    api_conn *b = api_conn_check(L, 1, &my_class);
    mconn *c = (mconn *)b;
    size_t len;
    const char *sql = luaL_checklstring(L, 2, &len);
    ha_task *t = engine_task_current(L, "health.mysql query");
    int n = api_conn_ready(L, b, c && c->my && c->state == ST_IDLE);
    if (n)
        return n;
    api_conn_op *op = api_conn_op_new(b, OP_QUERY);
    if (op == NULL)
        return luaL_error(L, "not enough memory");
    c->state = ST_QUERY;
    int err = 0;
    int st = mysql_real_query_start(&err, c->my, sql, (unsigned long)len);
    after_call(c, st);
    return api_conn_finish(L, t, op);
}

static const luaL_Reg methods[] = {
    {"query", l_query}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"connect", l_connect}, {NULL, NULL},
};

/* require "health.mysql": [-0, +1] the module table. */
int api_mysql_open(lua_State *L)
{
    api_conn_register(L, &my_class, methods);
    luaL_newlib(L, funcs);
    return 1;
}
