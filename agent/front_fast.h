/* front_fast.h: the connection-per-probe fast path. Kubelet's HTTP prober
 * opens a new connection per probe, sends one small GET with
 * "Connection: close" and reads the answer. When that request is already in
 * the first read of a new connection and its answer is a prebuilt (cached)
 * one, the front writes the whole response with one writev and closes,
 * without handing the connection to h2o. Everything else (keep-alive,
 * HTTP/2, queries, bodies, anything unusual) goes to h2o with the bytes
 * already read. This file holds the pure parts: a strict parser that says
 * whether a request qualifies, and the builder of the prebuilt response
 * head. Front thread only; no I/O, no allocation but the caller's buffer. */
#ifndef HA_FRONT_FAST_H
#define HA_FRONT_FAST_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Requests larger than this never take the fast path. */
#define HA_FAST_MAX_REQUEST 2048
/* Nor do requests with more header fields than this. */
#define HA_FAST_MAX_HEADERS 16

/* What the fast path needs of a qualifying request; pointers into the
 * parsed bytes. */
typedef struct {
    bool head;                 /* HEAD (else GET) */
    const char *path;          /* starts with '/', no query, already normal */
    size_t path_len;
    const char *accept;        /* value of Accept, NULL when absent */
    size_t accept_len;
    const char *authorization; /* value of Authorization, NULL when absent */
    size_t authorization_len;
} ha_fast_req;

/* Parses buf[0..len) as exactly one complete HTTP/1.0 or HTTP/1.1 request
 * that asks for the connection to close after the answer (HTTP/1.1 with
 * "Connection: close", or HTTP/1.0 without keep-alive): GET or HEAD, a path
 * of [A-Za-z0-9/_.-] that normalisation would not change, no query, no
 * body, no Upgrade, Expect or Transfer-Encoding, at most
 * HA_FAST_MAX_HEADERS well-formed fields, nothing after the blank line.
 * Returns true and fills r when the request qualifies; false for anything
 * else (incomplete, malformed or merely unusual), which h2o then handles
 * from the same bytes. */
bool front_fast_parse(const char *buf, size_t len, ha_fast_req *r);

/* Appends to b the head of a "Connection: close" response with status,
 * content_type and a body of body_len bytes, with a Date field whose
 * 29-byte value ("Sun, 06 Nov 1994 08:49:37 GMT") starts at the offset
 * stored in *date_at, filled with spaces for the caller to overwrite. */
void front_fast_head(ha_buf *b, int status, const char *reason, const char *content_type, size_t body_len,
                     size_t *date_at);

/* Length of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). */
#define HA_FAST_DATE_LEN 29

#endif
