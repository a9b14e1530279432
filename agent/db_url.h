/* db_url.h: what the database clients (api_redis.c, api_postgres.c,
 * api_mysql.c) share: parsing "scheme://user:password@host:port/db" URLs,
 * keeping passwords out of every message, the timeout option, and name
 * resolution on the loop (the client libraries resolve synchronously, so
 * they are always handed a numeric address). */
#ifndef HA_DB_URL_H
#define HA_DB_URL_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>
#include <uv.h>

struct ha_task;

/* A parsed URL; every string is owned (free with db_url_free), NULL when
 * absent. user, password and db are percent-decoded. */
typedef struct db_url {
    char *scheme;    /* lower-case, e.g. "redis" */
    char *user;
    char *password;
    char *host;      /* without the brackets of an IPv6 literal */
    int port;        /* 0 = absent */
    char *db;        /* the path without its leading '/', or NULL */
} db_url;

/* Parses url into u. Returns 0, or -1 with a short reason in err (which
 * never contains the password). u is zeroed first and freed on failure. */
int db_url_parse(const char *url, db_url *u, char *err, size_t errlen);
void db_url_free(db_url *u);

/* A malloc'd copy of text with every secret removed: the password part of
 * "scheme://user:password@", the value of "password=..." (conninfo, quoted
 * or not) and, when secret is not NULL/empty, every literal occurrence of
 * secret; each becomes "***". NULL on memory exhaustion. */
char *db_url_redact(const char *text, const char *secret);

/* The raw (not decoded) password found in text: the userinfo password of
 * the first "scheme://user:password@", else the first "password=" value.
 * A malloc'd string, or NULL when there is none. For masking the echoes
 * of a string a parser rejected. */
char *db_url_secret(const char *text);

/* Writes a one-line, trimmed copy of msg (its first line; at most outlen-1
 * bytes) into out, with secret masked as by db_url_redact. */
void db_url_message(char *out, size_t outlen, const char *msg, const char *secret);

/* Reads the optional "timeout" field of the table at idx (seconds as a
 * number, or a duration string "250ms"; api_opt_duration). Returns
 * nanoseconds, 0 when absent. Raises, naming fn, on a bad value. */
uint64_t db_url_opt_timeout(lua_State *L, int idx, const char *fn);

/* The timeout to give engine_task_yield for a per-operation timeout of ns
 * (0 = none): the op's own timeout clamped to the deadline, or 0 so that
 * only the check's deadline (reported as "timeout after ...") ends it. */
uint64_t db_url_op_timeout(const struct ha_task *t, uint64_t ns);

/* Host name resolution on the loop. The request must stay allocated until
 * done has been called, which always happens exactly once, also after
 * db_url_resolve_cancel (with status UV_ECANCELED then, or the result). */
typedef struct db_url_resolve db_url_resolve;
typedef void (*db_url_resolve_cb)(db_url_resolve *r, int status, const char *ip);
struct db_url_resolve {
    uv_getaddrinfo_t req;     /* req.data is free for the owner */
    db_url_resolve_cb done;
    bool busy;                /* between start and done */
    char ip[64];              /* numeric address of the first result */
    char host[256];           /* the name being resolved, for the failure message */
};

/* Starts resolving host (a numeric address resolves at once, but done still
 * runs from the loop). Returns 0 or a negative libuv error (done is then not
 * called). */
int db_url_resolve_start(uv_loop_t *loop, db_url_resolve *r, const char *host, db_url_resolve_cb done);
/* Asks a busy resolution to stop; done still runs once. */
void db_url_resolve_cancel(db_url_resolve *r);

/* The short message for a libuv/errno-style error: "connection refused",
 * "timeout", "host not found", otherwise uv_strerror lower-cased. */
const char *db_url_uv_message(int uverr);
/* The message of a failed resolution r (status a UV_EAI_* code): see
 * api_fail_resolve. Static buffer of the engine thread. */
const char *db_url_resolve_message(const db_url_resolve *r, int status);

#endif
