/* api_postgres.c: health.postgres, a PostgreSQL client on the engine loop
 * (libpq's asynchronous API driven by a uv_poll on PQsocket).
 *
 *   local db, err = postgres.connect("postgresql://user:pw@host:5432/db" | "host=... dbname=..." [, {timeout = 2}])
 *   local rows, err = db:query("SELECT 1 AS one")   -- { {one = 1} }; errors: nil, message
 *   db:close()
 *
 * Connecting parses the conninfo with PQconninfoParse, resolves the host
 * on the loop (api_dns.h) and hands libpq hostaddr= (libpq would resolve it
 * synchronously), then runs PQconnectStartParams/PQconnectPoll. libpq may
 * close its socket and open another while connecting (SSL or GSS fallback,
 * another address), and closes it when a connection drops: the poll is
 * stopped before every libpq call and re-created when PQsocket changes, so
 * libuv never watches a descriptor libpq has closed.
 *
 * A query still running when its op ends (timeout, deadline, close) is
 * cancelled on the server too: libpq 15's PQcancel blocks, so it runs on
 * libuv's threadpool, at most CANCELS_MAX at a time (a cancel to a server
 * that never answers holds its worker; the bound keeps the rest of the pool
 * for DNS and files). Without it the backend runs the query to its end.
 *
 * Values: NULL -> nil; bool -> boolean; int2/int4/int8/oid -> integer;
 * float4/float8 -> number; everything else (numeric included) -> string. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "api.h"
#include "api_conn.h"
#include "api_fail.h"
#include "api_opt.h"
#include "db_url.h"
#include "engine.h"

#define ERR_MAX API_CONN_ERR_MAX

/* Type OIDs (pg_type.dat) the results convert. */
enum {
    OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_OID = 26,
    OID_FLOAT4 = 700, OID_FLOAT8 = 701,
};

enum { ST_RESOLVING, ST_CONNECTING, ST_IDLE, ST_QUERY };

/* One connection (api_conn.h); freed once no box, no op, no resolution,
 * no poll and no PGconn refer to it. */
typedef struct pconn {
    api_conn base;            /* first */
    PGconn *pg;               /* owned; NULL before starting and after PQfinish */
    api_conn_poll poll;       /* watches PQsocket */
    char **keys, **vals;      /* owned, NULL-terminated: PQconnectStartParams input */
    int nkeys;
    int hostaddr_slot;        /* index in vals of hostaddr, filled after resolving */
    char *password;           /* owned, may be NULL: masked in every message */
    int state;                /* ST_* */
    bool flushing;            /* a query is still being sent: watch writable */
} pconn;

/* An op's result (api_conn_op.result) is the last PGresult of a query. */
enum { OP_QUERY = API_CONN_CONNECT + 1 };

/* --- messages ----------------------------------------------------------- */

/* Turns a libpq error text into our short message: its first line without
 * libpq's "connection to server at ... failed: " prefix and the severity,
 * "auth failed: " in front of authentication failures; the password is
 * masked. */
static void pg_message(char *out, size_t len, const char *raw, const char *password)
{
    char line[ERR_MAX * 2];
    db_url_message(line, sizeof line, raw && raw[0] ? raw : "closed", password);
    const char *s = line, *f;
    if (strncmp(s, "connection to server", 20) == 0 && (f = strstr(s, " failed: ")) != NULL)
        s = f + 9;
    static const char *const sev[] = {"FATAL:", "ERROR:", "PANIC:", NULL};
    for (int i = 0; sev[i]; i++)
        if (strncmp(s, sev[i], strlen(sev[i])) == 0) {
            s += strlen(sev[i]);
            while (*s == ' ')
                s++;
            break;
        }
    bool auth = strstr(s, "password authentication failed") || strstr(s, "no password supplied") ||
                strstr(s, "authentication failed");
    const char *ours = auth ? NULL : api_fail_text(s);
    if (ours != NULL) {
        snprintf(out, len, "%s", ours);
        return;
    }
    snprintf(out, len, "%s%.200s", auth ? "auth failed: " : "", s);
    /* "Connection refused" -> "connection refused"; keep "SSL ..." */
    char *m = out + (auth ? 13 : 0);
    if (isupper((unsigned char)m[0]) && islower((unsigned char)m[1]))
        m[0] = (char)tolower((unsigned char)m[0]);
    if (out[0] == '\0')
        snprintf(out, len, "error");
}

/* --- connection life cycle --------------------------------------------- */

static void free_strv(char **v, int n)
{
    if (v == NULL)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool conn_held(const api_conn *b)
{
    const pconn *c = (const pconn *)b;
    return c->pg || c->poll.h;
}

static void conn_free(api_conn *b)
{
    pconn *c = (pconn *)b;
    free_strv(c->keys, c->nkeys);
    free_strv(c->vals, c->nkeys);
    free(c->password);
    free(c);
}

static void conn_fail(pconn *c, const char *msg) { api_conn_fail(&c->base, msg); }

/* Fails the pending op with libpq's current error message. */
static void conn_fail_pg(pconn *c)
{
    char m[ERR_MAX];
    pg_message(m, sizeof m, c->pg ? PQerrorMessage(c->pg) : NULL, c->password);
    conn_fail(c, m);
}

/* --- cancelling a query on the server ----------------------------------- */

#define CANCELS_MAX 1 /* cancel requests in flight, each on a threadpool worker */

typedef struct {
    uv_work_t req;
    PGcancel *cancel;         /* owned */
} cancel_job;

static int cancels_in_flight; /* engine thread only */

/* Threadpool: sends the cancel request and waits for the server to close. */
static void cancel_work(uv_work_t *req)
{
    cancel_job *j = req->data;
    char err[256];
    PQcancel(j->cancel, err, sizeof err);
}

static void cancel_done(uv_work_t *req, int status)
{
    (void)status;
    cancel_job *j = req->data;
    cancels_in_flight--;
    PQfreeCancel(j->cancel);
    free(j);
}

/* Before a connection whose query is running is finished: asks the server
 * to cancel the query. Best effort, never blocks the loop. */
static void cancel_on_server(pconn *c)
{
    if (c->pg == NULL || c->state != ST_QUERY || PQtransactionStatus(c->pg) != PQTRANS_ACTIVE ||
        cancels_in_flight >= CANCELS_MAX)
        return;
    cancel_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->req.data = j;
    j->cancel = PQgetCancel(c->pg);
    if (j->cancel == NULL || uv_queue_work(c->base.loop, &j->req, cancel_work, cancel_done) != 0) {
        if (j->cancel)
            PQfreeCancel(j->cancel);
        free(j);
        return;
    }
    cancels_in_flight++;
}

/* Closes the poll before libpq closes its socket. */
static void conn_shutdown(api_conn *b)
{
    pconn *c = (pconn *)b;
    api_conn_poll_close(&c->poll);
    cancel_on_server(c);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches PQsocket for events (UV_READABLE | UV_WRITABLE), re-creating the
 * poll when libpq switched sockets. Returns 0 or fails the op. */
static int watch(pconn *c, int events)
{
    int fd = PQsocket(c->pg);
    api_conn_poll_drop_stale(&c->poll, fd);
    if (fd < 0) {
        conn_fail_pg(c);
        return -1;
    }
    int rc = api_conn_poll_watch(&c->poll, c->base.loop, fd, events, on_poll, c);
    if (rc != 0) {
        conn_fail(c, api_fail_uv(rc));
        return -1;
    }
    return 0;
}

/* Stops watching before a libpq call that may close the socket. */
static void unwatch(pconn *c) { api_conn_poll_stop(&c->poll); }

/* One PQconnectPoll step. */
static void connect_step(pconn *c)
{
    unwatch(c);
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        watch(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        watch(c, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->pg, 1) != 0) {
            conn_fail_pg(c);
            break;
        }
        c->state = ST_IDLE;
        api_conn_poll_drop_stale(&c->poll, PQsocket(c->pg));
        api_conn_succeed(&c->base);
        break;
    default:
        api_conn_poll_drop_stale(&c->poll, PQsocket(c->pg));
        conn_fail_pg(c);
        break;
    }
}

/* Reads and collects results of the query in flight; ends the op when
 * PQgetResult returns NULL. */
static void query_step(pconn *c, int events)
{
    api_conn_op *op = c->base.op;
    unwatch(c);
    if (c->flushing && (events & UV_WRITABLE)) {
        int r = PQflush(c->pg);
        if (r < 0) {
            conn_fail_pg(c);
            return;
        }
        c->flushing = r == 1;
    }
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->pg)) {
            api_conn_poll_drop_stale(&c->poll, PQsocket(c->pg));
            conn_fail_pg(c);
            return;
        }
        while (!PQisBusy(c->pg)) {
            PGresult *res = PQgetResult(c->pg);
            if (res == NULL) {
                c->state = ST_IDLE;
                api_conn_succeed(&c->base);
                return;
            }
            ExecStatusType st = PQresultStatus(res);
            bool failed = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
            if (op && failed && op->err[0] == '\0')
                pg_message(op->err, sizeof op->err, PQresultErrorMessage(res), c->password);
            if (op && !failed && op->err[0] == '\0' &&
                (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY)) {
                PQclear(op->result);
                op->result = res;
                continue;
            }
            if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
                PQclear(res);
                conn_fail(c, "COPY is not supported");
                return;
            }
            PQclear(res);
        }
    }
    watch(c, UV_READABLE | (c->flushing ? UV_WRITABLE : 0));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pconn *c = h->data;
    if (c->base.dead || c->pg == NULL)
        return;
    if (status < 0) /* a socket error: let libpq find it on its next call */
        events = UV_READABLE | UV_WRITABLE;
    if (c->state == ST_CONNECTING)
        connect_step(c);
    else if (c->state == ST_QUERY)
        query_step(c, events);
    else
        unwatch(c);
}

/* After resolving: starts libpq's connect with hostaddr set (ip may be NULL
 * for unix sockets and given hostaddrs). */
static void start_connect(api_conn *b, const char *ip)
{
    pconn *c = (pconn *)b;
    if (ip) {
        free(c->vals[c->hostaddr_slot]);
        c->vals[c->hostaddr_slot] = strdup(ip);
        if (c->vals[c->hostaddr_slot] == NULL) {
            conn_fail(c, "not enough memory");
            return;
        }
    }
    c->pg = PQconnectStartParams((const char *const *)c->keys, (const char *const *)c->vals, 0);
    if (c->pg == NULL) {
        conn_fail(c, "not enough memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail_pg(c);
        return;
    }
    c->state = ST_CONNECTING;
    watch(c, UV_WRITABLE); /* as if PQconnectPoll had returned WRITING */
}

/* --- operations --------------------------------------------------------- */

static void push_value(lua_State *L, const PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    switch (PQftype(res, col)) {
    case OID_BOOL:
        lua_pushboolean(L, v[0] == 't');
        return;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_FLOAT4:
    case OID_FLOAT8:
        if (lua_stringtonumber(L, v) != 0) /* "NaN", "Infinity" stay strings */
            return;
        break;
    default:
        break;
    }
    lua_pushlstring(L, v, (size_t)len);
}

/* Pushes the rows of res: [-0, +1]. */
static void push_rows(lua_State *L, const PGresult *res)
{
    int nrows = res ? PQntuples(res) : 0, ncols = res ? PQnfields(res) : 0;
    lua_createtable(L, nrows, 0);
    for (int r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols);
        for (int k = 0; k < ncols; k++) {
            if (PQgetisnull(res, r, k))
                continue;
            push_value(L, res, r, k);
            lua_setfield(L, -2, PQfname(res, k));
        }
        lua_rawseti(L, -2, (lua_Integer)r + 1);
    }
}

static int query_push(api_conn_op *op, lua_State *L)
{
    push_rows(L, op->result);
    return 1;
}

static void result_clear(void *result) { PQclear(result); }

static const api_conn_class pg_class = {
    .mt = "health.postgres.conn",
    .what = "postgres connection",
    .busy = "health.postgres: connection is busy with another operation",
    .connect = start_connect,
    .push = query_push,
    .clear = result_clear,
    .shutdown = conn_shutdown,
    .held = conn_held,
    .free = conn_free,
};

/* Copies the parsed options into c->keys/vals (plus hostaddr and
 * fallback_application_name). Returns the host to resolve, "" when no
 * resolution is needed, or NULL on memory exhaustion. why is set (and NULL
 * returned) on an unsupported conninfo. */
static const char *take_options(pconn *c, PQconninfoOption *opts, const char **why)
{
    int n = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    c->keys = calloc((size_t)n + 3, sizeof *c->keys);
    c->vals = calloc((size_t)n + 3, sizeof *c->vals);
    if (c->keys == NULL || c->vals == NULL)
        return NULL;
    const char *host = NULL, *hostaddr = NULL;
    int k = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val == NULL || strcmp(o->keyword, "hostaddr") == 0) {
            if (o->val && strcmp(o->keyword, "hostaddr") == 0)
                hostaddr = o->val;
            continue;
        }
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        if (strcmp(o->keyword, "password") == 0 && o->val[0] && (c->password = strdup(o->val)) == NULL)
            return NULL;
        c->keys[k] = strdup(o->keyword);
        c->vals[k] = strdup(o->val);
        c->nkeys = ++k;
        if (c->keys[k - 1] == NULL || c->vals[k - 1] == NULL)
            return NULL;
    }
    if ((host && strchr(host, ',')) || (hostaddr && strchr(hostaddr, ','))) {
        *why = "several hosts are not supported: give one";
        return NULL;
    }
    c->hostaddr_slot = k;
    c->keys[k] = strdup("hostaddr");
    c->vals[k] = strdup(hostaddr ? hostaddr : "");
    c->nkeys = ++k;
    c->keys[k] = strdup("fallback_application_name");
    c->vals[k] = strdup("healthagent");
    c->nkeys = ++k;
    for (int i = k - 2; i < k; i++)
        if (c->keys[i] == NULL || c->vals[i] == NULL)
            return NULL;
    if (!hostaddr && host && host[0] && host[0] != '/' && host[0] != '@')
        return host;
    return ""; /* a unix socket, libpq's default, or a given hostaddr */
}

/* postgres.connect(conninfo [, {timeout=}]) -> conn | nil, err */
static int l_connect(lua_State *L)
{
    const char *conninfo = luaL_checkstring(L, 1);
    uint64_t timeout_ns = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        timeout_ns = api_opt_duration_field(L, 2, "health.postgres.connect", "timeout", 0, false);
    }
    ha_task *t = engine_task_current(L, "health.postgres.connect");
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (opts == NULL) {
        char m[ERR_MAX];
        char *secret = db_url_secret(conninfo);
        db_url_message(m, sizeof m, perr ? perr : "not enough memory", secret);
        free(secret);
        PQfreemem(perr);
        return luaL_argerror(L, 1, m);
    }
    pconn *c = calloc(1, sizeof *c);
    const char *why = NULL, *host = c ? take_options(c, opts, &why) : NULL;
    char hostbuf[256];
    if (host)
        snprintf(hostbuf, sizeof hostbuf, "%s", host);
    PQconninfoFree(opts);
    if (c)
        api_conn_init(&c->base, &pg_class, engine_task_loop(t), timeout_ns);
    api_conn_op *op = host ? api_conn_op_new(&c->base, API_CONN_CONNECT) : NULL;
    if (op == NULL) {
        if (c)
            api_conn_maybe_free(&c->base);
        if (why)
            return luaL_argerror(L, 1, why);
        return luaL_error(L, "not enough memory");
    }
    c->state = ST_RESOLVING;
    if (hostbuf[0] == '\0')
        start_connect(&c->base, NULL);
    else
        api_conn_resolve(&c->base, hostbuf);
    return api_conn_finish(L, t, op);
}

/* conn:query(sql) -> rows | nil, err */
static int l_query(lua_State *L)
{
    api_conn *b = api_conn_check(L, 1, &pg_class);
    pconn *c = (pconn *)b;
    const char *sql = luaL_checkstring(L, 2);
    ha_task *t = engine_task_current(L, "health.postgres query");
    int n = api_conn_ready(L, b, c && c->pg && c->state == ST_IDLE);
    if (n)
        return n;
    api_conn_op *op = api_conn_op_new(&c->base, OP_QUERY);
    if (op == NULL)
        return luaL_error(L, "not enough memory");
    c->state = ST_QUERY;
    if (!PQsendQuery(c->pg, sql)) {
        conn_fail_pg(c);
    } else {
        int r = PQflush(c->pg);
        if (r < 0) {
            conn_fail_pg(c);
        } else {
            c->flushing = r == 1;
            watch(c, UV_READABLE | (c->flushing ? UV_WRITABLE : 0));
        }
    }
    return api_conn_finish(L, t, op);
}

/* postgres.redact(conninfo) -> the conninfo or URL with its password masked */
static int l_redact(lua_State *L)
{
    char *r = db_url_redact(luaL_checkstring(L, 1), NULL);
    if (r == NULL)
        return luaL_error(L, "not enough memory");
    lua_pushstring(L, r);
    free(r);
    return 1;
}

static const luaL_Reg methods[] = {
    {"query", l_query}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"connect", l_connect}, {"redact", l_redact}, {NULL, NULL},
};

/* require "health.postgres": [-0, +1] the module table. */
int api_postgres_open(lua_State *L)
{
    api_conn_register(L, &pg_class, methods);
    luaL_newlib(L, funcs);
    return 1;
}
