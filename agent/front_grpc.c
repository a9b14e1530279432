/* front_grpc.c: the gRPC health server (see front_grpc.h), built into
 * ha_grpcserver.so. Cleartext HTTP/2 with prior knowledge on its own
 * listeners, one libnghttp2 server session per connection fed from and to a
 * libuv TCP handle on the front loop.
 *
 * Services: "" is the whole agent (as /healthz), "liveness", "readiness" and
 * "startup" are the probes, a group's name (health.group) is the group, any
 * other name is the check of that name. Every
 * status comes from the front (front__answer_state, front_render_status):
 * the same snapshot, overlays and rules as the HTTP answer. Check awaits
 * stale checks through front__wait for at most min(max_wait, the call's
 * grpc-timeout minus a margin). Watch
 * sends the current status at once and then one message per change; a slow
 * reader gets the latest only (a stream holds one pending status, not a
 * queue). List answers every service from the current snapshot.
 *
 * Limits (docs/grpc-server.md lists them): the HTTP front's connection caps
 * (shared: front__conn_admit), streams per connection, Watch streams in total, header
 * list size, message size, idle and send-progress timeouts, RST_STREAM rate
 * (rapid reset), write buffering per connection. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "buf.h"
#include "front_grpc.h"
#include "log.h"

#define GS_MAX_STREAMS 128                /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define GS_MAX_WATCH 16384                /* Watch streams open at once, all connections */
#define GS_MAX_HEADER_LIST (16u << 10)    /* bytes of request headers (name + value + 32 each) */
#define GS_MAX_MESSAGE 4096               /* bytes of one request message */
#define GS_MAX_SERVICE 1024               /* bytes of a service name */
#define GS_LIST_MAX 1000                  /* services List answers; beyond: RESOURCE_EXHAUSTED */
#define GS_SEND_TIMEOUT_NS (10 * HA_NS_PER_S) /* output pending without progress: close */
#define GS_OUT_KEEP (16u << 10)           /* conn_send's buffer is kept up to this size */
#define GS_WRITE_HIGH (64u << 10)         /* bytes queued on the socket before nghttp2 is asked for more */
#define GS_RST_BURST 1000                 /* RST_STREAM token bucket: burst ... */
#define GS_RST_RATE 33                    /* ... and tokens per second, then GOAWAY */
#define GS_GOAWAY_GRACE_NS (1 * HA_NS_PER_S) /* idle: shutdown notice, then GOAWAY after this */
#define GS_TICK_MS 250                    /* timeouts, Watch deadlines, Watch refresh */
#define GS_REFRESH_NS (1 * HA_NS_PER_S)   /* Watch streams ask for their stale checks this often */
#define GS_READ_BUF (64u << 10)
#define GS_MARGIN_NS (200 * HA_NS_PER_MS) /* a Check answers this much (at most 20%) before its deadline */

enum { GS_CHECK = 1, GS_WATCH, GS_LIST, GS_UNKNOWN };

/* grpc.health.v1.HealthCheckResponse.ServingStatus */
enum { GS_SERVING = 1, GS_NOT_SERVING = 2, GS_SERVICE_UNKNOWN = 3 };

/* gRPC status codes used here */
enum {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
};

typedef struct gs_conn gs_conn;

/* The block pool (gs_alloc): classes of GS_POOL_STEP bytes up to GS_POOL_MAX,
 * at most GS_POOL_KEEP free blocks kept in each (40 KiB in all, headers
 * included). Under ASan there is no pool: every block is malloc'd at its own
 * size, so that a use after free or an overflow into the rounding is caught
 * (a kept block, even poisoned, is handed to the next stream at once). */
#define GS_POOL_STEP 32
#define GS_POOL_CLASSES 8
#define GS_POOL_MAX (GS_POOL_STEP * GS_POOL_CLASSES)
#define GS_POOL_KEEP 32
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GS_POOL_OFF 1 /* clang */
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GS_POOL_OFF 1 /* gcc */
#endif
#ifndef GS_POOL_OFF
#define GS_POOL_OFF 0
#endif
/* A block's header, 16 bytes: its class (GS_POOL_CLASSES for a block from
 * malloc of any size), or the next free block while it is on a free list. */
typedef union gs_hdr {
    _Alignas(max_align_t) size_t cls;
    union gs_hdr *next;
} gs_hdr;
_Static_assert(sizeof(gs_hdr) == _Alignof(max_align_t), "the header keeps a block aligned, and no more");

/* One request stream. Owned by its connection (linked in c->streams) from
 * the first HEADERS to nghttp2's close callback or the connection's end. */
typedef struct gs_stream {
    struct gs_stream *next, *prev;    /* in the connection's list */
    struct gs_stream *wnext, *wprev;  /* in the server's Watch list (Watch only) */
    gs_conn *conn;
    int32_t id;
    int method;                       /* GS_*; 0 until :path is seen */
    bool post;                        /* :method POST */
    bool ctype_ok;                    /* content-type application/grpc[+...|;...] */
    bool ctype_seen;
    bool bad_timeout;                 /* grpc-timeout malformed */
    bool bad_encoding;                /* grpc-encoding other than identity */
    bool too_big;                     /* headers or message over their limit */
    bool responded;                   /* response HEADERS submitted */
    bool deferred;                    /* the data source said NGHTTP2_ERR_DEFERRED */
    bool watching;                    /* linked in the Watch list */
    uint32_t header_bytes;
    uint64_t deadline_ns;             /* from grpc-timeout; 0 none */
    ha_buf req;                       /* request body (gRPC frames), bounded */
    char *service;                    /* owned, NUL-terminated */
    size_t service_len;
    front_wait *wait;                 /* owned: Check waiting for stale checks, or NULL */
    /* response */
    uint8_t *body;                    /* the message to send (List: malloc'd; else small) */
    size_t body_len, body_off;
    uint8_t small[8];                 /* body of a Check or Watch message */
    int trailer_status;               /* grpc-status sent after the body */
    const char *trailer_msg;          /* static, may be NULL */
    int sent;                         /* Watch: the status last sent, 0 none */
    int want;                         /* Watch: the status to send next */
    int ending;                       /* Watch: > 0: end with this grpc-status + 1 */
} gs_stream;

struct gs_conn {
    uv_tcp_t tcp;                     /* first: handle callbacks find the connection */
    gs_conn *next, *prev;             /* in the server's list */
    gs_conn *dnext;                   /* in the server's flush list, while dirty */
    ha_grpc *g;
    nghttp2_session *sess;
    gs_stream *streams;
    gs_stream *last;                  /* the stream last looked up (stream_of), or NULL */
    int nstreams;
    uint8_t addr[16];                 /* peer address key, counted by the front's caps */
    bool counted;                     /* front__conn_admit said yes; released at conn_close */
    bool closing;                     /* uv_close called */
    bool dirty;                       /* in the flush list */
    bool goaway;                      /* GOAWAY submitted */
    uint64_t goaway_at_ns;            /* idle: shutdown notice sent, GOAWAY due then; 0 none */
    uint64_t last_read_ns;            /* last bytes received */
    uint64_t write_since_ns;          /* oldest unfinished write started, 0 none */
    int writes;                       /* uv_write requests in flight */
};

/* A listener: the TCP handle, first. */
typedef struct {
    uv_tcp_t tcp;
    ha_grpc *g;
} gs_listener;

/* The refresh of one probe's stale checks for its Watch streams. */
typedef struct {
    front_wait w;
    bool active;                      /* w is waiting */
} gs_refresh;

struct ha_grpc {
    ha_front *front;                  /* not owned */
    uv_loop_t *loop;                  /* not owned */
    const ha_config *cfg;             /* not owned */
    gs_listener listeners[HA_MAX_LISTEN];
    int nlisteners;
    bool closed;                      /* gs_close: no new Watch, GOAWAY on accept */
    bool update;                      /* gs_changed: Watch statuses to recompute */
    uv_timer_t tick;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    gs_conn *conns;
    int nconns;
    gs_conn *dirty;                   /* connections to flush */
    uv_idle_t later;                  /* flushes after a call from the front (gs_flush_later) */
    int nhandles;                     /* handles not yet closed: g is freed at 0 once dying */
    bool dying;                       /* gs_free was called */
    gs_stream *watches;               /* every open Watch stream */
    int nwatch;
    uint64_t next_refresh_ns;
    gs_refresh refresh[HA_NPROBES];   /* probe-wide refreshes for Watch streams */
    ha_buf out;                       /* conn_send's buffer, empty between its calls */
    nghttp2_mem mem;                  /* the sessions' allocator: the pool below */
    union gs_hdr *pool[GS_POOL_CLASSES]; /* free blocks by size class (gs_alloc) */
    unsigned npool[GS_POOL_CLASSES];
    uint8_t rbuf[GS_READ_BUF];        /* shared read buffer: each read is consumed at once */
};

/* --- memory --------------------------------------------------------------- */

/* A Check call allocates about a dozen blocks of 10 to 230 bytes (nghttp2's
 * stream, its three outbound items and header copies; our stream and its
 * service name) and frees them in the same loop turn, once its answer is
 * sent. A read brings many calls (h2load -m10: ten per connection), more
 * than the 7 blocks of a size that glibc's thread cache keeps, and malloc
 * and free took 9 % of the server's CPU. So blocks up to GS_POOL_MAX bytes
 * come from free lists by class; larger ones from malloc. The front's
 * thread only; the sessions (which hold blocks) end before g (gs_release),
 * and gs_release frees what the lists hold. These four follow nghttp2_mem's
 * contract, which is malloc's. */
static void *gs_alloc(size_t size, void *ud)
{
    ha_grpc *g = ud;
    size_t cls = size == 0 ? 0 : (size - 1) / GS_POOL_STEP;
    if (GS_POOL_OFF || cls >= GS_POOL_CLASSES)
        cls = GS_POOL_CLASSES; /* from malloc, at its own size */
    gs_hdr *h;
    if (cls < GS_POOL_CLASSES && g->pool[cls]) {
        h = g->pool[cls];
        g->pool[cls] = h->next;
        g->npool[cls]--;
    } else {
        if (cls < GS_POOL_CLASSES)
            size = (cls + 1) * GS_POOL_STEP; /* the class's size: realloc may grow into it */
        if (size > SIZE_MAX - sizeof *h || (h = malloc(sizeof *h + size)) == NULL)
            return NULL;
    }
    h->cls = cls;
    return h + 1;
}

static void gs_dealloc(void *p, void *ud)
{
    ha_grpc *g = ud;
    if (p == NULL)
        return;
    gs_hdr *h = (gs_hdr *)p - 1;
    size_t cls = h->cls;
    if (cls < GS_POOL_CLASSES && g->npool[cls] < GS_POOL_KEEP) {
        h->next = g->pool[cls];
        g->pool[cls] = h;
        g->npool[cls]++;
        return;
    }
    free(h);
}

static void *gs_calloc(size_t n, size_t size, void *ud)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = gs_alloc(n * size, ud);
    if (p)
        memset(p, 0, n * size);
    return p;
}

static void *gs_realloc(void *p, size_t size, void *ud)
{
    if (p == NULL)
        return gs_alloc(size, ud);
    gs_hdr *h = (gs_hdr *)p - 1;
    if (h->cls == GS_POOL_CLASSES) {
        if (size > SIZE_MAX - sizeof *h)
            return NULL;
        gs_hdr *n = realloc(h, sizeof *h + size);
        return n ? n + 1 : NULL;
    }
    size_t have = (h->cls + 1) * GS_POOL_STEP;
    if (size <= have)
        return p;
    void *q = gs_alloc(size, ud);
    if (q) {
        memcpy(q, p, have);
        gs_dealloc(p, ud);
    }
    return q;
}

/* Frees the blocks the pool keeps. */
static void gs_pool_drain(ha_grpc *g)
{
    for (int i = 0; i < GS_POOL_CLASSES; i++) {
        while (g->pool[i]) {
            gs_hdr *h = g->pool[i];
            g->pool[i] = h->next;
            free(h);
        }
        g->npool[i] = 0;
    }
}

/* --- small helpers ------------------------------------------------------- */

static nghttp2_nv gs_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NO_COPY_NAME};
    return nv;
}

/* The grpc-status value of code in decimal: static text for a code of the
 * protocol (0 to 16; then *fixed, if given, is set true: nghttp2 need not
 * copy it), else written into buf (16 bytes). */
static const char *gs_code_text(int code, char *buf, bool *fixed)
{
    static const char *const text[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8",
                                       "9", "10", "11", "12", "13", "14", "15", "16"};
    bool is_static = code >= 0 && code < (int)HA_ARRAY_SIZE(text);
    if (fixed)
        *fixed = is_static;
    if (is_static)
        return text[code];
    snprintf(buf, 16, "%d", code);
    return buf;
}

/* Percent-encodes msg for grpc-message (bytes outside 0x20..0x7e and '%'). */
static void gs_percent(const char *msg, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && k + 4 < len; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            out[k++] = (char)*p;
        } else {
            out[k++] = '%';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        }
    }
    out[k] = '\0';
}

/* Parses a grpc-timeout value ("100m", "2S": 1..8 digits and a unit).
 * Returns 0 and nanoseconds, or -1. */
static int gs_parse_timeout(const uint8_t *v, size_t n, uint64_t *ns)
{
    if (n < 2 || n > 9)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    uint64_t unit;
    switch (v[n - 1]) {
    case 'H': unit = 3600 * HA_NS_PER_S; break;
    case 'M': unit = 60 * HA_NS_PER_S; break;
    case 'S': unit = HA_NS_PER_S; break;
    case 'm': unit = HA_NS_PER_MS; break;
    case 'u': unit = 1000; break;
    case 'n': unit = 1; break;
    default: return -1;
    }
    *ns = x > UINT64_MAX / unit ? UINT64_MAX : x * unit;
    return 0;
}

/* Reads a protobuf varint at *p (< end). Returns 0, or -1 when truncated or
 * longer than 10 bytes. */
static int gs_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 70 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* Decodes a HealthCheckRequest (field 1: service) or, with want_service
 * false, a HealthListRequest (no fields); unknown fields are skipped.
 * Returns 0 with svc and len (pointing into m), or -1 when malformed. */
static int gs_decode(const uint8_t *m, size_t n, bool want_service, const uint8_t **svc, size_t *len)
{
    const uint8_t *p = m, *end = m + n;
    *svc = (const uint8_t *)"";
    *len = 0;
    while (p < end) {
        uint64_t key, v;
        if (gs_varint(&p, end, &key) != 0 || key >> 3 == 0)
            return -1;
        switch (key & 7) {
        case 0:
            if (gs_varint(&p, end, &v) != 0)
                return -1;
            if (want_service && key >> 3 == 1)
                return -1; /* field 1 is a string */
            break;
        case 1:
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 2:
            if (gs_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
                return -1;
            if (want_service && key >> 3 == 1) {
                *svc = p;
                *len = (size_t)v; /* the last one wins, as protobuf merges */
            }
            p += v;
            break;
        case 5:
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        default:
            return -1; /* groups (3, 4) and reserved types */
        }
        if (want_service && key >> 3 == 1 && (key & 7) != 2)
            return -1;
    }
    return 0;
}

/* Maps a service name to a probe and, for a group of snap (NULL: none) or
 * a check, its name: group or only. */
static void gs_service(const ha_snapshot *snap, const char *svc, size_t len, int *probe, ha_str *group,
                       ha_str *only)
{
    static const struct { const char *name; int probe; } fixed[] = {
        {"liveness", HA_PI_LIVENESS}, {"readiness", HA_PI_READINESS}, {"startup", HA_PI_STARTUP}};
    *only = (ha_str){NULL, 0};
    *group = (ha_str){NULL, 0};
    *probe = HA_PI_HEALTH;
    if (len == 0)
        return;
    for (size_t i = 0; i < HA_ARRAY_SIZE(fixed); i++)
        if (strlen(fixed[i].name) == len && memcmp(fixed[i].name, svc, len) == 0) {
            *probe = fixed[i].probe;
            return;
        }
    int gi = snapshot_find_group(snap, svc, len);
    if (gi >= 0 && snap->groups[gi].probe < 0)
        *group = (ha_str){svc, len};
    else
        *only = (ha_str){svc, len};
}

/* The serving status of a service now, by the HTTP answer's rules and
 * overlays: GS_SERVING (UP, WARN), GS_NOT_SERVING, or GS_SERVICE_UNKNOWN
 * when it names no check. sel, when not NULL, gets what the service selects
 * (its strings are svc's and the snapshot's). */
static int gs_status_sel(ha_grpc *g, const char *svc, size_t len, ha_front_sel *sel)
{
    static const ha_snapshot empty;
    ha_render_req rr = {0};
    const ha_snapshot *s = front__answer_state(g->front, &rr);
    if (s == NULL)
        s = &empty;
    gs_service(s, svc, len, &rr.probe, &rr.group, &rr.only);
    if (sel) {
        sel->probe = rr.probe;
        sel->group = rr.group;
        sel->only = rr.only;
    }
    if (rr.only.p && snapshot_find(s, rr.only.p, rr.only.len) < 0)
        return GS_SERVICE_UNKNOWN;
    return front_render_status(s, &rr) <= HA_WARN ? GS_SERVING : GS_NOT_SERVING;
}

static int gs_status(ha_grpc *g, const char *svc, size_t len) { return gs_status_sel(g, svc, len, NULL); }

/* --- output ------------------------------------------------------------- */

static void conn_close(gs_conn *c);

/* Queues c for conn_flush at the end of the current callback batch. */
static void conn_mark(gs_conn *c)
{
    if (c->dirty || c->closing)
        return;
    c->dirty = true;
    c->dnext = c->g->dirty;
    c->g->dirty = c;
}

static void on_write(uv_write_t *w, int status)
{
    gs_conn *c = w->data;
    free(w);
    c->writes--;
    c->write_since_ns = c->writes ? uv_hrtime() : 0;
    if (status != 0) {
        conn_close(c);
        return;
    }
    conn_mark(c);
}

/* Moves what nghttp2 has to send onto the socket: uv_try_write first, the
 * rest copied into one uv_write. Stops at GS_WRITE_HIGH bytes queued (the
 * write callback resumes). Closes the connection when the session is done. */
static void conn_send(gs_conn *c)
{
    ha_buf out = c->g->out; /* the server's, reused: empty between calls */
    c->g->out = (ha_buf)HA_BUF_INIT; /* taken: a call made meanwhile uses its own */
    while (!c->closing && c->tcp.write_queue_size + out.len < GS_WRITE_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->sess, &data);
        if (n < 0) {
            conn_close(c);
            break;
        }
        if (n == 0)
            break;
        buf_add(&out, data, (size_t)n);
    }
    if (!c->closing && out.len > 0) {
        size_t off = 0;
        if (c->tcp.write_queue_size == 0) {
            uv_buf_t b = uv_buf_init(out.data, (unsigned)out.len);
            int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (r > 0)
                off = (size_t)r;
            else if (r != UV_EAGAIN)
                conn_close(c);
        }
        if (!c->closing && off < out.len) {
            size_t left = out.len - off;
            uv_write_t *w = malloc(sizeof *w + left);
            if (w == NULL) {
                conn_close(c);
            } else {
                memcpy(w + 1, out.data + off, left);
                uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)left);
                w->data = c;
                if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
                    free(w);
                    conn_close(c);
                } else {
                    if (c->writes++ == 0)
                        c->write_since_ns = uv_hrtime();
                }
            }
        }
    }
    out.len = 0;
    if (out.cap > GS_OUT_KEEP || c->g->out.data)
        buf_free(&out); /* a large List answer is not kept, nor a second buffer */
    else
        c->g->out = out;
    if (!c->closing && c->writes == 0 && !nghttp2_session_want_read(c->sess) &&
        !nghttp2_session_want_write(c->sess))
        conn_close(c);
}

/* Flushes every connection marked since the last flush. */
static void gs_flush(ha_grpc *g)
{
    while (g->dirty) {
        gs_conn *c = g->dirty;
        g->dirty = c->dnext;
        c->dirty = false;
        c->dnext = NULL;
        if (!c->closing)
            conn_send(c);
    }
}

static void watch_update(ha_grpc *g);

static void on_later(uv_idle_t *h)
{
    ha_grpc *g = h->data;
    uv_idle_stop(h);
    if (g->update) {
        g->update = false;
        watch_update(g);
    }
    gs_flush(g);
}

/* Flushes on the next loop turn: for calls from the front (its loops may
 * be iterating over the waits that closing a connection cancels) and from
 * inside nghttp2 callbacks (which must not send). */
static void gs_flush_later(ha_grpc *g)
{
    if ((g->dirty || g->update) && !g->dying)
        uv_idle_start(&g->later, on_later);
}

/* Data source of every response body: the stream's body, then (Watch) a
 * deferral until the next change, then the trailers. */
static ssize_t gs_read_body(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                            nghttp2_data_source *src, void *ud)
{
    gs_stream *s = src->ptr;
    if (s->method == GS_WATCH && s->body_off == s->body_len && s->want != s->sent && !s->ending) {
        /* the latest status only: whatever changed in between is gone */
        static const uint8_t hdr[] = {0, 0, 0, 0, 2, 0x08};
        memcpy(s->small, hdr, sizeof hdr);
        s->small[6] = (uint8_t)s->want;
        s->body = s->small;
        s->body_len = 7;
        s->body_off = 0;
        s->sent = s->want;
    }
    if (s->body_off < s->body_len) {
        size_t n = s->body_len - s->body_off;
        if (n > len)
            n = len;
        memcpy(buf, s->body + s->body_off, n);
        s->body_off += n;
        return (ssize_t)n;
    }
    if (s->method == GS_WATCH && !s->ending) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    int code = s->method == GS_WATCH ? s->ending - 1 : s->trailer_status;
    char st[16], msg[256];
    nghttp2_nv nv[2];
    size_t nn = 0;
    bool fixed;
    nv[nn++] = gs_nv("grpc-status", gs_code_text(code, st, &fixed));
    if (s->trailer_msg) {
        gs_percent(s->trailer_msg, msg, sizeof msg);
        nv[nn++] = gs_nv("grpc-message", msg);
    }
    for (size_t i = 0; i < nn; i++)
        nv[i].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME; /* the values are copied... */
    if (fixed)
        nv[0].flags |= NGHTTP2_NV_FLAG_NO_COPY_VALUE; /* ...but a static status */
    if (nghttp2_submit_trailer(sess, id, nv, nn) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* Answers with HEADERS only (Trailers-Only): grpc-status code and message.
 * http: the :status (200 for a gRPC error, 415/405 for non-gRPC requests). */
static void gs_error(gs_stream *s, int http, int code, const char *msg)
{
    char hs[8], cs[16], m[512];
    nghttp2_nv nv[5];
    size_t n = 0;
    if (s->responded)
        return;
    s->responded = true;
    snprintf(hs, sizeof hs, "%d", http);
    nv[n++] = gs_nv(":status", hs);
    nv[n++] = gs_nv("content-type", http == 200 ? "application/grpc" : "text/plain");
    if (http == 405)
        nv[n++] = gs_nv("allow", "POST");
    nv[n++] = gs_nv("grpc-status", gs_code_text(code, cs, NULL));
    if (msg) {
        gs_percent(msg, m, sizeof m);
        nv[n++] = gs_nv("grpc-message", m);
    }
    nghttp2_submit_response(s->conn->sess, s->id, nv, n, NULL);
    conn_mark(s->conn);
}

/* Starts a response with a body (Check, List, Watch): HEADERS now, then the
 * data source's DATA and trailers. */
static void gs_respond(gs_stream *s)
{
    nghttp2_nv nv[2] = {gs_nv(":status", "200"), gs_nv("content-type", "application/grpc")};
    nv[0].flags = nv[1].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE; /* static */
    nghttp2_data_provider dp;
    if (s->responded)
        return;
    s->responded = true;
    dp.source.ptr = s;
    dp.read_callback = gs_read_body;
    if (nghttp2_submit_response(s->conn->sess, s->id, nv, 2, &dp) != 0)
        nghttp2_submit_rst_stream(s->conn->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    conn_mark(s->conn);
}

/* Sends one HealthCheckResponse and status OK. */
static void gs_respond_status(gs_stream *s, int status)
{
    static const uint8_t hdr[] = {0, 0, 0, 0, 2, 0x08};
    memcpy(s->small, hdr, sizeof hdr);
    s->small[6] = (uint8_t)status;
    s->body = s->small;
    s->body_len = 7;
    s->trailer_status = GRPC_OK;
    gs_respond(s);
}

/* --- Watch ---------------------------------------------------------------- */

static void watch_unlink(gs_stream *s)
{
    ha_grpc *g = s->conn->g;
    if (!s->watching)
        return;
    if (s->wprev)
        s->wprev->wnext = s->wnext;
    else
        g->watches = s->wnext;
    if (s->wnext)
        s->wnext->wprev = s->wprev;
    s->wnext = s->wprev = NULL;
    s->watching = false;
    g->nwatch--;
}

/* Makes s send what it should: its new status, or its end. */
static void watch_kick(gs_stream *s)
{
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(s->conn->sess, s->id);
    }
    conn_mark(s->conn);
}

/* Ends a Watch stream with grpc-status code (after any status still due). */
static void watch_end(gs_stream *s, int code, const char *msg)
{
    if (s->ending)
        return;
    s->ending = code + 1;
    s->trailer_msg = msg;
    watch_unlink(s);
    watch_kick(s);
}

/* Recomputes every Watch stream's status; those that changed get it. */
static void watch_update(ha_grpc *g)
{
    int probe_status[HA_NPROBES] = {0};
    ha_render_req rr = {0};
    const ha_snapshot *snap = front__answer_state(g->front, &rr);
    for (gs_stream *s = g->watches; s; s = s->wnext) {
        int st, probe;
        ha_str group, only;
        gs_service(snap, s->service, s->service_len, &probe, &group, &only);
        if (only.p != NULL || group.p != NULL) {
            st = gs_status(g, s->service, s->service_len);
        } else {
            if (probe_status[probe] == 0) /* one computation per probe */
                probe_status[probe] = gs_status(g, s->service, s->service_len);
            st = probe_status[probe];
        }
        if (st != s->want) {
            s->want = st;
            if (st != s->sent)
                watch_kick(s);
        }
    }
}

static void refresh_done(void *ud)
{
    gs_refresh *r = ud;
    r->active = false; /* the results arrive as snapshots: watch_update follows */
}

/* Watch streams keep their services fresh as probes would: the stale
 * checks of every probe some Watch stream follows are requested. */
static void watch_refresh(ha_grpc *g)
{
    bool used[HA_NPROBES] = {false};
    ha_render_req rr = {0};
    const ha_snapshot *snap = front__answer_state(g->front, &rr);
    for (gs_stream *s = g->watches; s; s = s->wnext) {
        int probe;
        ha_str group, only;
        gs_service(snap, s->service, s->service_len, &probe, &group, &only);
        used[only.p || group.p ? HA_PI_HEALTH : probe] = true; /* /healthz covers every member */
    }
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        gs_refresh *r = &g->refresh[pi];
        ha_front_sel sel = {pi, {NULL, 0}, {NULL, 0}, NULL, 0};
        if (used[pi] && !r->active)
            r->active = front__wait(g->front, &r->w, &sel, GS_REFRESH_NS, refresh_done, r) == 1;
    }
}

/* --- requests ------------------------------------------------------------- */

/* NOT_FOUND naming the service (grpc-message is percent-encoded). */
static void check_not_found(gs_stream *s)
{
    char msg[160];
    snprintf(msg, sizeof msg, "unknown service: %.100s", s->service);
    gs_error(s, 200, GRPC_NOT_FOUND, msg);
}

/* Answers a Check with the service's status now. */
static void check_respond(gs_stream *s)
{
    int st = gs_status(s->conn->g, s->service, s->service_len);
    if (st == GS_SERVICE_UNKNOWN)
        check_not_found(s);
    else
        gs_respond_status(s, st);
}

/* front_wait_cb of a Check: the stale checks are in, or the budget ran out. */
static void check_answer(void *ud)
{
    gs_stream *s = ud;
    free(s->wait);
    s->wait = NULL;
    check_respond(s);
    gs_flush_later(s->conn->g);
}

/* Check: answers now, or once the stale checks of the service are in (at
 * most the call's deadline minus a margin). */
static void serve_check(gs_stream *s)
{
    ha_grpc *g = s->conn->g;
    ha_front_sel sel = {0, {NULL, 0}, {NULL, 0}, NULL, 0};
    int st = gs_status_sel(g, s->service, s->service_len, &sel);
    if (st == GS_SERVICE_UNKNOWN) {
        check_not_found(s);
        return;
    }
    if (front__fresh(g->front, &sel)) {
        gs_respond_status(s, st); /* nothing to wait for: st is the answer */
        return;
    }
    uint64_t budget = UINT64_MAX;
    if (s->deadline_ns) {
        uint64_t now = uv_hrtime();
        uint64_t left = s->deadline_ns > now ? s->deadline_ns - now : 0;
        budget = left - (left / 5 < GS_MARGIN_NS ? left / 5 : GS_MARGIN_NS);
    }
    s->wait = malloc(sizeof *s->wait);
    if (s->wait && front__wait(g->front, s->wait, &sel, budget, check_answer, s) == 1)
        return; /* check_answer follows */
    free(s->wait);
    s->wait = NULL;
    check_respond(s);
}

static void serve_watch(gs_stream *s)
{
    ha_grpc *g = s->conn->g;
    if (g->closed) {
        gs_error(s, 200, GRPC_UNAVAILABLE, "shutting down");
        return;
    }
    if (g->nwatch >= GS_MAX_WATCH) {
        gs_error(s, 200, GRPC_RESOURCE_EXHAUSTED, "too many Watch streams");
        return;
    }
    s->want = gs_status(g, s->service, s->service_len);
    s->watching = true;
    s->wnext = g->watches;
    if (g->watches)
        g->watches->wprev = s;
    g->watches = s;
    g->nwatch++;
    gs_respond(s);
}

/* Appends one map entry {key: service, value: HealthCheckResponse} of
 * HealthListResponse.statuses (field 1) to b. */
static void list_entry(ha_buf *b, const char *name, int status)
{
    size_t nl = strlen(name);
    uint8_t tmp[16];
    size_t k = 0;
    /* entry = 0x0a len(name) name 0x12 0x02 0x08 status */
    size_t entry = 1 + (nl < 128 ? 1 : 2) + nl + 4;
    tmp[k++] = 0x0a;
    if (entry < 128) {
        tmp[k++] = (uint8_t)entry;
    } else {
        tmp[k++] = (uint8_t)(entry | 0x80);
        tmp[k++] = (uint8_t)(entry >> 7);
    }
    tmp[k++] = 0x0a;
    if (nl < 128) {
        tmp[k++] = (uint8_t)nl;
    } else {
        tmp[k++] = (uint8_t)(nl | 0x80);
        tmp[k++] = (uint8_t)(nl >> 7);
    }
    buf_add(b, tmp, k);
    buf_add(b, name, nl);
    uint8_t v[4] = {0x12, 0x02, 0x08, (uint8_t)status};
    buf_add(b, v, 4);
}

static void serve_list(gs_stream *s)
{
    ha_grpc *g = s->conn->g;
    ha_render_req rr = {0};
    const ha_snapshot *snap = front__answer_state(g->front, &rr);
    static const char *const fixed[] = {"", "liveness", "readiness", "startup"};
    size_t n = HA_ARRAY_SIZE(fixed) + (snap ? snap->n + snap->ngroups : 0);
    if (n > GS_LIST_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "%zu services, more than List answers (%d)", n, GS_LIST_MAX);
        gs_error(s, 200, GRPC_RESOURCE_EXHAUSTED, msg);
        return;
    }
    ha_buf b = HA_BUF_INIT;
    buf_add(&b, "\0\0\0\0\0", 5);
    for (size_t i = 0; i < HA_ARRAY_SIZE(fixed); i++)
        list_entry(&b, fixed[i], gs_status(g, fixed[i], strlen(fixed[i])));
    for (size_t i = 0; snap && i < snap->n; i++) {
        const char *name = snap->checks[i].name;
        bool shadowed = false; /* a check called like a probe is reached as the probe */
        for (size_t k = 0; k < HA_ARRAY_SIZE(fixed); k++)
            shadowed |= strcmp(name, fixed[k]) == 0;
        if (!shadowed && strlen(name) <= GS_MAX_SERVICE)
            list_entry(&b, name, gs_status(g, name, strlen(name)));
    }
    for (size_t i = 0; snap && i < snap->ngroups; i++) /* a probe's own group is the probe */
        if (snap->groups[i].probe < 0)
            list_entry(&b, snap->groups[i].name, gs_status(g, snap->groups[i].name, strlen(snap->groups[i].name)));
    uint32_t ml = (uint32_t)(b.len - 5);
    uint8_t *p = (uint8_t *)b.data;
    p[1] = (uint8_t)(ml >> 24);
    p[2] = (uint8_t)(ml >> 16);
    p[3] = (uint8_t)(ml >> 8);
    p[4] = (uint8_t)ml;
    s->body_len = b.len;
    s->body = (uint8_t *)buf_steal(&b);
    s->trailer_status = GRPC_OK;
    gs_respond(s);
}

/* The whole request is in: checks the frame and the message, then serves. */
static void serve(gs_stream *s)
{
    const uint8_t *m = (const uint8_t *)s->req.data;
    size_t n = s->req.len;
    if (s->responded)
        return;
    if (n < 5) {
        gs_error(s, 200, GRPC_INTERNAL, n ? "truncated message frame" : "no request message");
        return;
    }
    uint32_t ml = (uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4];
    if (m[0] > 1 || (m[0] == 1 && !s->bad_encoding)) {
        gs_error(s, 200, GRPC_INTERNAL, m[0] == 1 ? "compressed message without grpc-encoding" : "bad frame flags");
        return;
    }
    if (m[0] == 1) {
        gs_error(s, 200, GRPC_UNIMPLEMENTED, "compression is not supported");
        return;
    }
    if (5 + (size_t)ml != n) {
        gs_error(s, 200, GRPC_INTERNAL, 5 + (size_t)ml > n ? "truncated message" : "more than one request message");
        return;
    }
    const uint8_t *svc;
    size_t sl;
    if (gs_decode(m + 5, ml, s->method != GS_LIST, &svc, &sl) != 0) {
        gs_error(s, 200, GRPC_INVALID_ARGUMENT, "malformed request message");
        return;
    }
    if (sl > GS_MAX_SERVICE || memchr(svc, '\0', sl) != NULL) {
        gs_error(s, 200, GRPC_INVALID_ARGUMENT, "bad service name");
        return;
    }
    s->service = gs_alloc(sl + 1, s->conn->g);
    if (s->service == NULL) {
        gs_error(s, 200, GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memcpy(s->service, svc, sl);
    s->service[sl] = '\0';
    s->service_len = sl;
    buf_free(&s->req);
    if (s->method == GS_CHECK)
        serve_check(s);
    else if (s->method == GS_WATCH)
        serve_watch(s);
    else
        serve_list(s);
}

/* The request headers are in: answers at once what needs no body. */
static void headers_done(gs_stream *s)
{
    if (s->too_big)
        gs_error(s, 431, GRPC_RESOURCE_EXHAUSTED, "request headers too large");
    else if (!s->post)
        gs_error(s, 405, GRPC_UNIMPLEMENTED, "gRPC wants POST");
    else if (!s->ctype_ok)
        gs_error(s, 415, GRPC_INTERNAL, s->ctype_seen ? "content-type is not application/grpc" : "no content-type");
    else if (s->method == GS_UNKNOWN || s->method == 0)
        gs_error(s, 200, GRPC_UNIMPLEMENTED, "unknown method: grpc.health.v1.Health has Check, Watch and List");
    else if (s->bad_timeout)
        gs_error(s, 200, GRPC_INTERNAL, "malformed grpc-timeout");
}

/* --- nghttp2 callbacks ---------------------------------------------------- */

/* The stream id's gs_stream, or NULL. A request's frames come one stream at a
 * time (a header block is never interleaved), so the last stream looked up is
 * kept on the connection: nghttp2_session_get_stream_user_data searches a hash
 * map, once per header otherwise. */
static gs_stream *stream_of(gs_conn *c, int32_t id)
{
    if (c->last && c->last->id == id)
        return c->last;
    gs_stream *s = nghttp2_session_get_stream_user_data(c->sess, id);
    if (s)
        c->last = s;
    return s;
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    gs_conn *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    gs_stream *s = gs_calloc(1, sizeof *s, c->g);
    if (s == NULL)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->conn = c;
    s->id = frame->hd.stream_id;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    nghttp2_session_set_stream_user_data(sess, s->id, s);
    return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    gs_stream *s = stream_of(ud, frame->hd.stream_id);
    if (s == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* request trailers: ignored */
    s->header_bytes += (uint32_t)(nl + vl + 32);
    if (s->header_bytes > GS_MAX_HEADER_LIST) {
        s->too_big = true;
        return 0;
    }
#define IS(lit) (nl == sizeof(lit) - 1 && memcmp(name, lit, nl) == 0)
    if (IS(":method")) {
        s->post = vl == 4 && memcmp(value, "POST", 4) == 0;
    } else if (IS(":path")) {
        static const char pfx[] = "/grpc.health.v1.Health/";
        size_t pl = sizeof pfx - 1;
        s->method = GS_UNKNOWN;
        if (vl > pl && memcmp(value, pfx, pl) == 0) {
            const uint8_t *m = value + pl;
            size_t ml = vl - pl;
            if (ml == 5 && memcmp(m, "Check", 5) == 0)
                s->method = GS_CHECK;
            else if (ml == 5 && memcmp(m, "Watch", 5) == 0)
                s->method = GS_WATCH;
            else if (ml == 4 && memcmp(m, "List", 4) == 0)
                s->method = GS_LIST;
        }
    } else if (IS("content-type")) {
        s->ctype_seen = true;
        s->ctype_ok = vl >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                      (vl == 16 || value[16] == '+' || value[16] == ';');
    } else if (IS("grpc-timeout")) {
        uint64_t ns;
        if (gs_parse_timeout(value, vl, &ns) != 0) {
            s->bad_timeout = true;
        } else {
            uint64_t now = uv_hrtime();
            s->deadline_ns = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
        }
    } else if (IS("grpc-encoding")) {
        s->bad_encoding = !(vl == 8 && memcmp(value, "identity", 8) == 0);
    }
#undef IS
    return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *ud)
{
    gs_stream *s = stream_of(ud, id);
    if (s == NULL || s->responded)
        return 0;
    if (s->req.len + len > 5 + GS_MAX_MESSAGE) {
        buf_free(&s->req);
        gs_error(s, 200, GRPC_RESOURCE_EXHAUSTED, "request message too large");
        return 0;
    }
    buf_add(&s->req, data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    gs_stream *s = stream_of(ud, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        headers_done(s);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        serve(s);
    return 0;
}

/* Frees s (not the nghttp2 stream). */
static void stream_free(gs_stream *s)
{
    gs_conn *c = s->conn;
    watch_unlink(s);
    if (s->wait) {
        front__wait_cancel(s->wait);
        free(s->wait);
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (c->last == s)
        c->last = NULL;
    c->nstreams--;
    if (s->body != s->small)
        free(s->body);
    buf_free(&s->req);
    gs_dealloc(s->service, c->g);
    gs_dealloc(s, c->g);
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *ud)
{
    gs_stream *s = stream_of(ud, id);
    if (s) {
        nghttp2_session_set_stream_user_data(sess, id, NULL);
        stream_free(s);
    }
    return 0;
}

/* --- connections ---------------------------------------------------------- */

static void gs_release(ha_grpc *g);

/* Close callback of the tick, the idle and the listeners. */
static void on_handle_closed(uv_handle_t *h) { gs_release(h->data); }

static void on_conn_closed(uv_handle_t *h)
{
    gs_conn *c = (gs_conn *)h;
    ha_grpc *g = c->g;
    if (c->sess)
        nghttp2_session_del(c->sess); /* calls no stream callback */
    while (c->streams)
        stream_free(c->streams);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    g->nconns--;
    free(c);
    gs_release(g);
}

/* Ends c: stops reading and closes the socket (the rest in on_conn_closed).
 * Safe inside nghttp2 callbacks: nothing is freed before the close callback. */
static void conn_close(gs_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->counted) {
        c->counted = false;
        front__conn_release(c->g->front, c->addr);
    }
    /* its streams stop counting now: no new status for them */
    for (gs_stream *s = c->streams; s; s = s->next) {
        watch_unlink(s);
        if (s->wait) {
            front__wait_cancel(s->wait);
            free(s->wait);
            s->wait = NULL;
        }
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    gs_conn *c = (gs_conn *)h;
    *b = uv_buf_init((char *)c->g->rbuf, sizeof c->g->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    gs_conn *c = (gs_conn *)st;
    if (n == 0 || c->closing)
        return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->last_read_ns = uv_hrtime();
    ssize_t r = nghttp2_session_mem_recv(c->sess, (const uint8_t *)b->base, (size_t)n);
    if (r < 0) {
        /* not HTTP/2 (garbage, an HTTP/1 client) or a fatal protocol error:
         * nghttp2 may have queued a GOAWAY; send it, then close */
        conn_send(c);
        conn_close(c);
        return;
    }
    conn_send(c);
    gs_flush(c->g);
}

/* Submits GOAWAY (the streams in flight finish) and ends c's Watch streams. */
static void conn_goaway(gs_conn *c, const char *why)
{
    if (c->closing || c->goaway)
        return;
    c->goaway = true;
    for (gs_stream *s = c->streams; s; s = s->next)
        if (s->method == GS_WATCH && s->responded)
            watch_end(s, GRPC_UNAVAILABLE, why);
    nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->sess),
                          NGHTTP2_NO_ERROR, NULL, 0);
    conn_mark(c);
}

static void on_accept(uv_stream_t *l, int status)
{
    ha_grpc *g = ((gs_listener *)l)->g;
    if (status != 0)
        return;
    gs_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(g->loop, &c->tcp);
    g->nhandles++;
    c->g = g;
    c->next = g->conns;
    if (g->conns)
        g->conns->prev = c;
    g->conns = c;
    g->nconns++;
    c->last_read_ns = uv_hrtime();
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    /* the HTTP front's caps, shared: one budget per client address */
    struct sockaddr_storage peer;
    int len = sizeof peer;
    memset(&peer, 0, sizeof peer);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len);
    c->counted = front__conn_admit(g->front, &peer, c->addr) == 0;
    if (!c->counted || nghttp2_session_server_new3(&c->sess, g->cbs, c, g->opt, &g->mem) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GS_MAX_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GS_MAX_HEADER_LIST},
        /* no priority tree per stream (health clients send no priorities).
         * nghttp2 before 1.61 (Debian 12 has 1.52) has two bugs in the RFC
         * 9218 scheduling this turns on (upstream PR 2120: an idle stream
         * left on the idle list once opened, a queued stream freed while in
         * the send queue). Neither is reachable here: PRIORITY_UPDATE is not
         * enabled, so it is ignored, and on_stream_close submits no frame.
         * Keep both so while the library is older. */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, HA_ARRAY_SIZE(iv));
    if (g->closed)
        conn_goaway(c, "shutting down");
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    conn_mark(c);
    gs_flush(g);
}

/* --- the server ------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    ha_grpc *g = t->data;
    uint64_t now = uv_hrtime();
    for (gs_conn *c = g->conns; c; c = c->next) {
        if (c->closing)
            continue;
        if (c->write_since_ns && now - c->write_since_ns > GS_SEND_TIMEOUT_NS) {
            conn_close(c); /* a client that does not read */
            continue;
        }
        if (c->goaway_at_ns && now >= c->goaway_at_ns) {
            /* streams begun before the client saw the notice run on; the
             * idle timeout comes round again once they are done */
            c->goaway_at_ns = 0;
            if (c->nstreams == 0)
                conn_goaway(c, "idle");
            else
                c->last_read_ns = now;
            continue;
        }
        if (c->nstreams == 0 && !c->goaway_at_ns && !c->goaway && now - c->last_read_ns > g->cfg->idle_timeout_ns) {
            /* two-step, as graceful servers do: a stream the client sends
             * while the notice is on its way is still served */
            nghttp2_submit_shutdown_notice(c->sess);
            c->goaway_at_ns = now + GS_GOAWAY_GRACE_NS;
            conn_mark(c);
            continue;
        }
        for (gs_stream *s = c->streams; s; s = s->next)
            if (s->watching && s->deadline_ns && now >= s->deadline_ns)
                watch_end(s, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
    }
    if (g->watches && now >= g->next_refresh_ns) {
        g->next_refresh_ns = now + GS_REFRESH_NS;
        watch_refresh(g);
    }
    gs_flush(g);
}

/* Parses "host:port" / "[v6]:port" (already validated by config.c). */
static int gs_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : 0;
    if (colon == NULL || hl >= sizeof host)
        return UV_EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    int port = atoi(colon + 1);
    if (host[0] == '[' && hl > 2) {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss);
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

static void gs_free(ha_grpc *g);

static ha_grpc *gs_start(ha_front *f, uv_loop_t *loop, const ha_config *cfg, char *err, size_t errlen)
{
    ha_grpc *g = calloc(1, sizeof *g);
    if (g == NULL) {
        snprintf(err, errlen, "grpc: not enough memory");
        return NULL;
    }
    g->front = f;
    g->loop = loop;
    g->cfg = cfg;
    g->mem = (nghttp2_mem){g, gs_alloc, gs_dealloc, gs_calloc, gs_realloc};
    nghttp2_session_callbacks_new(&g->cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(g->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(g->cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(g->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(g->cbs, on_stream_close);
    nghttp2_option_new(&g->opt);
    nghttp2_option_set_stream_reset_rate_limit(g->opt, GS_RST_BURST, GS_RST_RATE);
    nghttp2_option_set_max_send_header_block_length(g->opt, 16u << 10);
    nghttp2_option_set_max_deflate_dynamic_table_size(g->opt, 4096);
    uv_timer_init(loop, &g->tick);
    g->tick.data = g;
    uv_idle_init(loop, &g->later);
    g->later.data = g;
    g->nhandles += 2;
    uv_timer_start(&g->tick, on_tick, GS_TICK_MS, GS_TICK_MS);
    for (int i = 0; i < cfg->ngrpc_listen; i++) {
        struct sockaddr_storage ss;
        gs_listener *l = &g->listeners[i];
        int r = gs_addr(cfg->grpc_listen[i], &ss);
        if (r == 0) {
            uv_tcp_init(loop, &l->tcp);
            l->tcp.data = g;
            g->nhandles++;
            l->g = g;
            g->nlisteners++;
            r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
            if (r == 0)
                r = uv_listen((uv_stream_t *)&l->tcp, 1024, on_accept);
        }
        if (r != 0) {
            snprintf(err, errlen, "grpc listen %s: %s", cfg->grpc_listen[i],
                     r == UV_EADDRINUSE ? "address already in use" : uv_strerror(r));
            gs_free(g);
            return NULL;
        }
        log_event(LOG_INFO, NULL, "gRPC health service on %s", cfg->grpc_listen[i]);
    }
    return g;
}

static void gs_changed(ha_grpc *g)
{
    g->update = g->watches != NULL;
    gs_flush_later(g);
}

static void gs_close(ha_grpc *g)
{
    for (int i = 0; i < g->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&g->listeners[i].tcp))
            uv_close((uv_handle_t *)&g->listeners[i].tcp, on_handle_closed);
    g->closed = true;
    for (gs_conn *c = g->conns; c; c = c->next)
        conn_goaway(c, "shutting down");
    gs_flush_later(g);
}

static int gs_nconns(ha_grpc *g) { return g->nconns; }

/* Drops one handle; the last one after gs_free frees g. */
static void gs_release(ha_grpc *g)
{
    if (--g->nhandles > 0 || !g->dying)
        return;
    nghttp2_session_callbacks_del(g->cbs);
    nghttp2_option_del(g->opt);
    gs_pool_drain(g);
    buf_free(&g->out);
    free(g);
}

/* Closes every handle; g goes with the last close callback (the loop must
 * run once more: main does). */
static void gs_free(ha_grpc *g)
{
    if (g == NULL)
        return;
    for (int i = 0; i < g->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&g->listeners[i].tcp))
            uv_close((uv_handle_t *)&g->listeners[i].tcp, on_handle_closed);
    for (gs_conn *c = g->conns; c; c = c->next)
        conn_close(c);
    for (int i = 0; i < HA_NPROBES; i++)
        front__wait_cancel(&g->refresh[i].w);
    g->dying = true;
    g->nhandles++; /* held while closing, so g outlives this function */
    if (g->tick.loop && !uv_is_closing((uv_handle_t *)&g->tick))
        uv_close((uv_handle_t *)&g->tick, on_handle_closed);
    if (g->later.loop && !uv_is_closing((uv_handle_t *)&g->later))
        uv_close((uv_handle_t *)&g->later, on_handle_closed);
    gs_release(g);
}

__attribute__((visibility("default"))) const ha_grpc_module front_grpc_module = {
    gs_start, gs_changed, gs_close, gs_nconns, gs_free, cmd__probe_grpc,
};
