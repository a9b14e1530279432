/* api_conn.h: the connection object the database clients (api_redis.c,
 * api_postgres.c, api_mysql.c) share.
 *
 * A connection is C memory (a module struct whose first member is an
 * api_conn) that a Lua userdata (a box) points to; libuv handles and the
 * library's own handle live there, never in GC-managed memory. Each call
 * (connect, query, command) is one api_conn_op in the task's pending slot.
 * The connection is freed once no box, no op, no resolution and nothing of
 * the library (cls->held) refers to it. The box's close/__gc/__close only
 * shut it down; an op that did not finish (timeout, deadline) leaves the
 * connection closed, so later calls return nil, "closed".
 *
 * What differs between the modules is in an api_conn_class. */
#ifndef HA_API_CONN_H
#define HA_API_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "api_dns.h"
#include "engine.h"

#define API_CONN_ERR_MAX 256

/* Op kinds: connect is shared; a module numbers its own from
 * API_CONN_CONNECT + 1. */
enum { API_CONN_CONNECT = 1 };

typedef struct api_conn api_conn;
typedef struct api_conn_op api_conn_op;

/* A module's part of every connection (a static const). */
typedef struct api_conn_class {
    const char *mt;           /* metatable name, e.g. "health.postgres.conn" */
    const char *what;         /* __tostring's noun: "postgres connection" */
    const char *busy;         /* error raised when another op is pending */
    /* After resolving: starts the library's connect to the numeric
     * address ip (NULL when no resolution was needed). */
    void (*connect)(api_conn *c, const char *ip);
    /* Pushes the results of a successful op other than connect: [-0, +n],
     * returns n. */
    int (*push)(api_conn_op *op, lua_State *L);
    /* Frees op->result (not NULL when called). */
    void (*clear)(void *result);
    /* Stops the library's I/O and releases its handle; the op has already
     * failed with "closed" and the resolution been cancelled. */
    void (*shutdown)(api_conn *c);
    /* True while the library or a libuv handle still refers to c. */
    bool (*held)(const api_conn *c);
    /* Frees the module's connection struct (the one embedding c). */
    void (*free)(api_conn *c);
} api_conn_class;

struct api_conn {
    const api_conn_class *cls;
    uv_loop_t *loop;          /* the engine loop */
    api_dns_req res;          /* host resolution, the first step of connect */
    api_conn_op *op;          /* the pending operation, or NULL */
    uint64_t timeout_ns;      /* per-operation timeout; 0 = the check's deadline */
    bool dead;                /* failed or closed: no more operations */
    bool has_ud;              /* a box points here */
};

struct api_conn_op {
    ha_op op;                 /* first: the task's pending slot */
    api_conn *c;              /* outlives the op */
    int kind;                 /* API_CONN_CONNECT or the module's */
    bool done;                /* outcome recorded */
    void *result;             /* owned, may be NULL: freed with cls->clear */
    char err[API_CONN_ERR_MAX]; /* failure; "" = success */
};

/* Sets up the shared part of a zeroed connection. */
void api_conn_init(api_conn *c, const api_conn_class *cls, uv_loop_t *loop, uint64_t timeout_ns);

/* Frees c (cls->free) once nothing refers to it; otherwise does nothing. */
void api_conn_maybe_free(api_conn *c);

/* Marks c dead and, when an op is pending and has no outcome yet, fails it
 * with msg (copied as is: mask passwords first) and wakes its task. Safe
 * from any callback. */
void api_conn_fail(api_conn *c, const char *msg);

/* Records success of the pending op (if any, and not yet decided). */
void api_conn_succeed(api_conn *c);

/* Stops everything: fails the op with "closed", cancels the resolution,
 * then cls->shutdown. Not from inside a library callback. */
void api_conn_shutdown(api_conn *c);

/* Resolves host on c->loop, then calls cls->connect with the address, or
 * fails the op with the resolver's message. A numeric IPv4 or IPv6 address
 * skips the resolver: cls->connect runs before this returns. */
void api_conn_resolve(api_conn *c, const char *host);

/* A new pending op of kind on c (c->op is set). NULL on memory exhaustion. */
api_conn_op *api_conn_op_new(api_conn *c, int kind);

/* Ends a lua_CFunction that started op: yields until it completes, or, when
 * it already completed while starting, pushes its results at once. */
int api_conn_finish(lua_State *L, ha_task *t, api_conn_op *op);

/* The connection of the box at idx, NULL once closed. Raises when the value
 * is not a box of cls. */
api_conn *api_conn_check(lua_State *L, int idx, const api_conn_class *cls);

/* The rule before an op: returns 0 when c can start one (usable: the module
 * finds its handle idle), else pushes nil, "closed" and returns 2. Raises
 * cls->busy when another op is pending on a live connection. */
int api_conn_ready(lua_State *L, api_conn *c, bool usable);

/* Creates the metatable of cls: methods (plus close) as __index, close as
 * __gc and __close, __tostring, a locked __metatable. [-0, +0] */
void api_conn_register(lua_State *L, const api_conn_class *cls, const luaL_Reg *methods);

/* --- a poll watcher on the library's socket ----------------------------- */

/* The libraries may close their socket and open another (a failed call,
 * a fallback to another address): the watcher is stopped before each
 * library call and re-created when the descriptor changes, so libuv never
 * watches a descriptor the library has closed. */
typedef struct api_conn_poll {
    uv_poll_t *h;             /* owned, separately allocated (freed in its close cb); NULL = none */
    int fd;                   /* the descriptor h watches */
} api_conn_poll;

/* Watches fd (>= 0) for events with cb (h->data = data), re-creating the
 * handle when it watched another descriptor. Returns 0 or a negative libuv
 * error. */
int api_conn_poll_watch(api_conn_poll *w, uv_loop_t *loop, int fd, int events, uv_poll_cb cb, void *data);
/* Closes the handle when it watches a descriptor other than fd. */
void api_conn_poll_drop_stale(api_conn_poll *w, int fd);
/* Stops watching (before a library call that may close the socket). */
void api_conn_poll_stop(api_conn_poll *w);
/* Closes the handle; idempotent. */
void api_conn_poll_close(api_conn_poll *w);

/* A close callback that frees a malloc'd handle. */
void api_conn_handle_freed(uv_handle_t *h);

#endif
