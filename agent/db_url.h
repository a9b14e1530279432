/* db_url.h: the URLs and secrets of the database clients (api_redis.c,
 * api_postgres.c, api_mysql.c): parsing "scheme://user:password@host:port/db"
 * URLs, and keeping passwords out of every message. Their timeout option is
 * api_opt.h's, their failures api_fail.h's, their name resolution
 * api_dns.h's, and what else they share api_conn.h's. */
#ifndef HA_DB_URL_H
#define HA_DB_URL_H

#include <stddef.h>

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

#endif
