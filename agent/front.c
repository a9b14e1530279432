/* front.c: listeners, connections and their limits, the connection-per-probe
 * fast path, routing, the response cache, the age overlay, waiting probes
 * (front_int.h), the engine watchdog and the shutdown sequence (see front.h). */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dlfcn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "front.h"
#include "front_admin.h"
#include "front_fast.h"
#include "front_grpc.h"
#include "front_h2.h"
#include "front_int.h"
#include "front_metrics.h"
#include "front_render.h"
#include "front_status.h"
#include "log.h"

#define TICK_MS 50                       /* shutdown steps */
#define ACCEPT_PAUSE_NS HA_NS_PER_S      /* a listener with no descriptor to accept with rests this long */
#define ACCEPT_BATCH 64                  /* connections taken per readiness of a listener (or of the early
                                            set), then other work runs */
#define MAX_EXCLUDE 32
#define REPORT_WAIT_MIN_NS (100 * HA_NS_PER_MS) /* a report waits for the engine at least this (max_wait 0) */
#define ADMIN_PENDING_MAX 256 /* reports and overrides sent that the engine has not applied: no more queue
                                 (each holds up to 1 KiB on the bridge while the engine is stalled or busy) */

/* What one client connection may hold (see README "Limits"). */
#define MAX_INFLIGHT 32                  /* requests in flight per connection (h2load -m10 needs 10) */
#define MAX_REQ_HEADERS 64               /* headers of one request */
#define MAX_REQ_HEADER_BYTES (16 * 1024) /* their names and values, with the path and authority */
#define READ_BUDGET (1u << 20)           /* bytes read while no request reaches the handler */
#define MAX_HEADER_BLOCK (32 * 1024)     /* HPACK bytes of one HTTP/2 header block (HEADERS + CONTINUATION) */
#define SWEEP_NS HA_NS_PER_S            /* send timeouts and the read wrapper: every second */
#define CONN_HEADROOM_MIN 64             /* descriptors kept for the engine's own sockets and files */
#define CONN_DEFAULT_MAX 1024            /* max_connections = 0: at most this many */
#define CONN_FEW 4                       /* an address holding fewer may use the reserve */
#define REFUSE_LOG_MS 10000              /* at most one line per reason this often */

/* A prebuilt answer: body in h2o shared memory, linked into each request
 * pool that sends it, so replacing it never frees a buffer still in flight. */
typedef struct {
    char *body;          /* h2o_mem_alloc_shared'd, or NULL when not built */
    size_t len;
    int http_status;
    const char *content_type;
    ha_buf fast_head;    /* the fast path's "Connection: close" head, built on first use */
    size_t fast_date_at; /* offset of its Date value */
} cache_entry;

/* A view built once per views_epoch (metrics, status page, /-/status):
 * body in h2o shared memory like cache_entry. */
typedef struct {
    char *body;          /* h2o_mem_alloc_shared'd, or NULL when not built */
    size_t len;
    uint64_t epoch;      /* the views_epoch it shows */
} view_entry;

/* The cached answers of one group (snapshot->groups, same index), kept like
 * a probe's: cache, when every member is fresh until, what the views show. */
typedef struct {
    cache_entry cache[HA_NFORMATS][2]; /* [format][full] */
    uint64_t fresh_until;
    uint64_t hash_full, hash_names;
} group_view;

/* A list of waits (front_int.h). */
typedef struct {
    front_wait *head, *tail;
} wait_list;

/* An accepted connection: the libuv handle h2o reads and writes, linked
 * so that shutdown and the sweep find it, and what it holds. */
typedef struct front_conn {
    uv_tcp_t tcp;                     /* first: h2o's close callback gets it */
    struct front_conn *next, *prev;
    struct ha_front *front;
    h2o_socket_t *sock;               /* h2o's socket over tcp; NULL before and once h2o disposed it */
    h2o_socket_cb h2o_read;           /* h2o's read callback, which conn_on_read wraps */
    uint8_t addr[16];                 /* peer address, IPv4 v4-mapped; counted in front->addrs */
    bool counted;                     /* counted in front->addrs and front->nconns */
    bool aborted;                     /* conn_abort ran */
    bool upgraded;                    /* an h2c upgrade was seen */
    uint32_t unproductive;            /* bytes read since a request last reached the handler */
    uint8_t h2;                       /* H2_*: what conn_track makes of the bytes read */
    uint8_t h2_have;                  /* H2_PREFACE: preface bytes matched; H2_FRAMES: bytes of hdr */
    uint8_t h2_hdr[9];                /* the frame header being read */
    bool h2_in_block;                 /* a header block without END_HEADERS is open */
    uint32_t h2_skip;                 /* payload bytes of the current frame still to pass */
    uint32_t h2_block;                /* HPACK bytes of the current header block */
    uint32_t inflight;                /* requests handed to the handler whose pool is not disposed */
    uint64_t progress_ms;             /* loop time: a request came or went, or output moved */
    size_t written;                   /* sock->bytes_written at the last sweep */
    size_t queued;                    /* tcp.write_queue_size at the last sweep */
} front_conn;

/* One client address in the open-addressing table front->addrs. */
typedef struct {
    uint8_t key[16];                  /* as front_conn.addr */
    uint32_t n;                       /* connections open from it; 0: the slot is free */
} addr_slot;

/* A listening socket of the HTTP front: its own, polled, so that a probe
 * answered at accept costs accept4, recv, writev and close, and no handle. */
typedef struct {
    uv_poll_t poll;
    int fd;                           /* -1 once closed */
    bool paused;                      /* out of descriptors with no spare: not polled until resume_at_ns */
    bool deferred;                    /* TCP_DEFER_ACCEPT is set (listener_open) */
    struct ha_front *front;
} front_listener;

/* A connection whose request was not there yet at accept (one that sent
 * nothing through the listener's deferred accept, or that a SYN cookie or a
 * listener without the option let in): its descriptor waits in the front's
 * own epoll set, which one poll handle watches, for its first bytes, which
 * then take the fast path, or go to h2o with those bytes. Counted in the caps
 * from its accept; closed once it has sent nothing for request_timeout. */
typedef struct front_early {
    struct front_early *next, *prev;  /* front->early, oldest first; or the free list (next) */
    int fd;
    socklen_t sslen;
    uint64_t since_ms;                /* loop time of the accept, or before it (accepted) */
    uint8_t addr[16];                 /* as front_conn.addr */
    struct sockaddr_storage ss;       /* the peer, as accept4 gave it */
} front_early;

#define EARLY_FREE_MAX 64             /* free entries kept for reuse (no allocation per connection) */
#define DEFER_ACCEPT_MS 1000          /* TCP_DEFER_ACCEPT, whole seconds (listener_open) */

/* Why connections are ended or refused: counted between two log lines. */
enum { END_CAP_TOTAL, END_CAP_ADDR, END_SEND_TIMEOUT, END_NO_PROGRESS, END_HEADER_BLOCK, END_NO_FDS, END_REASONS };

/* front_conn.h2: HTTP/2 framing as conn_track follows it. */
enum {
    H2_PREFACE,                       /* matching the client preface (a new connection, or after h2c's 101) */
    H2_FRAMES,                        /* following frame boundaries */
    H2_UNTRACKED,                     /* HTTP/1, or bytes h2o read past the wrapper: the budget only */
};

struct ha_front {
    uv_loop_t *loop;                  /* not owned */
    const ha_config *cfg;             /* not owned */
    ha_bridge *bridge;                /* not owned */
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    front_listener listeners[HA_MAX_LISTEN];
    int nlisteners;
    int spare_fd;                     /* /dev/null, given up to accept-and-close when descriptors run out */
    int early_epfd;                   /* the epoll set of early connections; -1: none (they go to h2o) */
    uv_poll_t early_poll;             /* watches early_epfd */
    front_early *early, *early_tail;  /* waiting for their first bytes, oldest first */
    front_early *early_free;          /* entries kept for reuse */
    int nearly_free;
    uint64_t resume_at_ns;            /* monotonic: when paused listeners poll again; 0: none paused */
    uv_async_t wakeup;                /* a snapshot arrived */
    uv_timer_t tick;                  /* watchdog, shutdown steps */
    uv_timer_t deadline;              /* one shot: next wait deadline or age boundary */
    uint64_t deadline_at_ns;          /* what it is armed for, UINT64_MAX: not armed */
    uv_signal_t sigterm, sigint;
    uv_signal_t sighup;               /* reload the scripts */
    ha_snapshot *snap;                /* newest snapshot, owned; NULL before the first */
    cache_entry cache[HA_NPROBES][HA_NFORMATS][2]; /* [probe][format][full] */
    uint64_t fresh_until[HA_NPROBES]; /* monotonic: every check of the probe fresh until then */
    uint64_t hash_full[HA_NPROBES];   /* what the full views show, to keep the cache across snapshots */
    uint64_t hash_names[HA_NPROBES];  /* what the names-only views show */
    group_view *gviews;               /* owned: one per snapshot group, NULL when none */
    size_t ngviews;
    unsigned char *requested;         /* per snapshot check: a run was asked for */
    unsigned char *mark;              /* per snapshot check: scratch of dep_closure, all 0 between calls */
    uint32_t *dep_stack;              /* per snapshot check: scratch of dep_closure */
    unsigned char *age;               /* per snapshot check: ha_age of its result, an overlay */
    uint64_t age_next_ns;             /* monotonic: the next age boundary, UINT64_MAX: none */
    bool age_hold;                    /* results that just arrived read fresh until the
                                         deadline timer's next turn */
    wait_list waits;                  /* waiting answers, soonest deadline first */
    wait_list due;                    /* ended waits whose callbacks are being made */
    uint64_t stalled_ns;              /* > 0: engine stalled that long */
    int shutdown_phase;               /* 0 serving, 1 draining (readyz 503), 2 closing,
                                         3 ending connections, 4 done */
    front_conn *conns;                /* open client connections */
    int nconns;                       /* counted ones (admitted) */
    int max_conns;                    /* effective total cap */
    int reserve;                      /* beyond it, for addresses holding fewer than CONN_FEW */
    int max_per_addr;                 /* effective per-address cap */
    uint64_t fd_limit;                /* RLIMIT_NOFILE at start */
    bool max_lowered;                 /* max_connections was lowered to fit it */
    addr_slot *addrs;                 /* owned (mmap), mask + 1 slots, at most half used */
    size_t addr_mask;
    uint64_t addr_seed;               /* per process: addresses do not choose their slots */
    uint64_t sweep_at_ns;             /* monotonic: the next sweep of the connections */
    bool closed_since_trim;           /* a connection went away since the last malloc_trim */
    uint64_t ended[END_REASONS];      /* since the last log line of that reason */
    uint64_t ended_log_ms[END_REASONS]; /* loop time of that line */
    uint64_t shutdown_at_ns;          /* when the current phase ends */
    uint64_t override_sent;           /* overrides queued for the engine so far */
    uint64_t report_sent;             /* pushed-check reports queued for the engine so far */
    bool pending_ready;               /* the last one: in force until a snapshot carries it */
    char *pending_reason;             /* owned, may be NULL */
    uint64_t views_epoch;             /* grows whenever what the views show may change */
    view_entry metrics_view;          /* the snapshot part of /metrics */
    ha_metrics_memo *metrics_memo;    /* its last body, to render again only what changed */
    uint64_t probe_ok_of[HA_NPROBES]; /* hash_names probe_ok was read at */
    int probe_ok_stalled;             /* and whether the engine was stalled then; -1: never read */
    bool probe_ok[HA_NPROBES];        /* healthagent_probe_status as of then */
    view_entry page_view[2];          /* the status page, [full] */
    view_entry status_view;           /* the members front_status_json adds to /-/status */
    ha_probe_counts requests;         /* probe answers by code, for /metrics */
    ha_buf render;                    /* scratch of the views, kept: no page faults per build */
    const ha_grpc_module *grpc_mod;   /* the gRPC server's module, NULL unless configured */
    ha_grpc *grpc;                    /* its server, owned; NULL unless configured */
    int exit_code;
};

typedef struct {
    h2o_handler_t super;
    ha_front *front;
} front_handler;

/* --- responses ------------------------------------------------------------ */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static h2o_generator_t no_generator = {NULL, NULL};

/* Sends a complete response whose body stays valid until the request's pool
 * is cleared (a pool copy or a linked shared buffer). */
static void respond(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    if (ctype)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    bool head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (status == 204 || status == 304)
        len = 0;
    req->res.content_length = len;
    h2o_start_response(req, &no_generator);
    h2o_iovec_t buf = h2o_iovec_init(body, head ? 0 : len);
    h2o_send(req, &buf, head || len == 0 ? 0 : 1, H2O_SEND_STATE_FINAL);
}

void front__respond(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    char *p = h2o_mem_alloc_pool(&req->pool, len + 1);
    if (len)
        memcpy(p, body, len);
    respond(req, status, ctype, p, len);
}

static void respond_error(h2o_req_t *req, int status, const char *msg)
{
    ha_buf b = HA_BUF_INIT;
    buf_adds(&b, "{\"error\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_adds(&b, "}");
    front__respond(req, status, "application/json", b.data, b.len);
    buf_free(&b);
}

/* --- views: snapshot, overlays and the response cache --------------------- */

static void cache_clear(cache_entry *e)
{
    if (e->body)
        h2o_mem_release_shared(e->body);
    e->body = NULL;
    buf_free(&e->fast_head);
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 1099511628211ull; }

static uint64_t mix_str(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = mix(h, (unsigned char)*s);
    return mix(h, 0);
}

/* The readiness override in force: the last one queued by the front until
 * a snapshot shows the engine applied it, then the snapshot's (which may be
 * a script's later one). *reason may be NULL. */
static void override_state(const ha_front *f, bool *not_ready, const char **reason)
{
    uint64_t applied = f->snap ? f->snap->override_seq : 0;
    if (f->override_sent > applied) {
        *not_ready = !f->pending_ready;
        *reason = f->pending_ready ? NULL : f->pending_reason;
    } else {
        *not_ready = f->snap && f->snap->ready_override;
        *reason = *not_ready ? f->snap->override_reason : NULL;
    }
}

/* Tells the gRPC server that what its Watch streams show may have changed
 * (it recomputes them on its next loop turn, not inside this call). */
static void grpc_changed(ha_front *f)
{
    if (f->grpc)
        f->grpc_mod->changed(f->grpc);
}

static size_t dep_closure(ha_front *f, unsigned char bit);

/* Folds what the views of one probe or group show into *hn (names-only
 * views) and *hf (full views), and lowers *fresh to the soonest expiry of
 * its checks and of what they depend on (a pushed check never expires
 * here): the members of g when g has its own, else the checks of probe pi.
 * agg: the group whose aggregate applies, may be NULL. */
static void view_hash(ha_front *f, const ha_snap_group *g, int pi, const ha_snap_group *agg,
                      uint64_t *fresh, uint64_t *hn, uint64_t *hf)
{
    const ha_snapshot *s = f->snap;
    size_t count = g ? g->nmembers : s->n;
    bool deps = false;
    for (size_t k = 0; k < count; k++) {
        size_t i = g ? g->members[k] : k;
        const ha_snap_check *c = &s->checks[i];
        if (!g && !ha_probe_covers(c->probes, pi))
            continue;
        if (c->ndeps) {
            f->mark[i] = 1;
            deps = true;
        }
        if (!c->pushed && c->expires_ns < *fresh)
            *fresh = c->expires_ns;
        uint64_t v = ((uint64_t)c->status * 2 + c->critical) * 4 + f->age[i];
        uint64_t nh = c->name_hash ? c->name_hash : snapshot_name_hash(c->name);
        *hn = mix(mix(*hn, nh), v);
        /* time_ms: a blocked check's root cause may change, nothing else */
        *hf = mix(mix(mix(mix(*hf, nh), v), c->runs), (uint64_t)c->time_ms);
    }
    if (deps) { /* only as fresh as the dependencies */
        dep_closure(f, 1);
        for (size_t i = 0; i < s->n; i++) {
            const ha_snap_check *c = &s->checks[i];
            if (f->mark[i] == 2 && !c->pushed && c->expires_ns < *fresh)
                *fresh = c->expires_ns;
            f->mark[i] = 0;
        }
    }
    if (agg != NULL) {
        *hn = mix(mix(*hn, agg->kind), agg->lua_status);
        *hf = mix_str(mix(mix(*hf, agg->kind), agg->lua_status), agg->lua_output);
    }
}

static void gviews_free(ha_front *f)
{
    for (size_t g = 0; g < f->ngviews; g++)
        for (int fm = 0; fm < HA_NFORMATS; fm++)
            for (int k = 0; k < 2; k++)
                cache_clear(&f->gviews[g].cache[fm][k]);
    free(f->gviews);
    f->gviews = NULL;
    f->ngviews = 0;
}

/* Makes f->gviews match the snapshot's groups: same count (a new array,
 * nothing cached, when the count changed). Returns 0 or -1 (no memory:
 * no group view, group answers are rendered per request). */
static int gviews_fit(ha_front *f)
{
    size_t n = f->snap ? f->snap->ngroups : 0;
    if (n == f->ngviews && (n == 0 || f->gviews != NULL))
        return 0;
    gviews_free(f);
    f->gviews = n ? calloc(n, sizeof *f->gviews) : NULL;
    f->ngviews = f->gviews ? n : 0;
    return n && f->gviews == NULL ? -1 : 0;
}

/* Recomputes per probe and group when every check is fresh until and the
 * hashes of what its views show (snapshot, age overlay, override, shutdown,
 * aggregate); drops the cache entries whose view changed. */
static void views_update(ha_front *f)
{
    grpc_changed(f);
    const ha_snapshot *s = f->snap;
    bool not_ready;
    const char *reason;
    override_state(f, &not_ready, &reason);
    f->views_epoch++; /* the metrics, the page and /-/status too */
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        uint64_t fresh = UINT64_MAX;
        uint64_t hn = mix(1469598103934665603ull, not_ready);
        hn = mix_str(hn, reason);
        hn = mix(hn, f->shutdown_phase != 0);
        /* a reload may change what decides an answer and shows in no check
         * (a group's quorum, its codes): every view is new after one */
        hn = mix(hn, s->generation);
        uint64_t hf = mix_str(hn, s->load_error);
        uint32_t pg = s->probe_group[pi];
        view_hash(f, NULL, pi, pg && pg <= s->ngroups ? &s->groups[pg - 1] : NULL, &fresh, &hn,
                  &hf);
        f->fresh_until[pi] = fresh;
        if (hn != f->hash_names[pi]) {
            f->hash_names[pi] = hn;
            for (int fm = 0; fm < HA_NFORMATS; fm++)
                cache_clear(&f->cache[pi][fm][0]);
        }
        if (hf != f->hash_full[pi]) {
            f->hash_full[pi] = hf;
            for (int fm = 0; fm < HA_NFORMATS; fm++)
                cache_clear(&f->cache[pi][fm][1]);
        }
    }
    gviews_fit(f);
    for (size_t gi = 0; gi < f->ngviews; gi++) {
        const ha_snap_group *g = &s->groups[gi];
        group_view *gv = &f->gviews[gi];
        uint64_t fresh = UINT64_MAX;
        uint64_t hn = mix(mix_str(1469598103934665603ull, g->name), s->generation);
        uint64_t hf = mix_str(hn, s->load_error);
        view_hash(f, g, HA_PI_HEALTH, g, &fresh, &hn, &hf);
        gv->fresh_until = fresh;
        if (hn != gv->hash_names) {
            gv->hash_names = hn;
            for (int fm = 0; fm < HA_NFORMATS; fm++)
                cache_clear(&gv->cache[fm][0]);
        }
        if (hf != gv->hash_full) {
            gv->hash_full = hf;
            for (int fm = 0; fm < HA_NFORMATS; fm++)
                cache_clear(&gv->cache[fm][1]);
        }
    }
}

/* The age of c's last result at now; lowers *next to the next boundary. */
static unsigned char age_at(const ha_snap_check *c, uint64_t now, uint64_t *next)
{
    if (c->runs == 0)
        return HA_AGE_FRESH;
    if (now < c->expires_ns) {
        if (c->expires_ns < *next)
            *next = c->expires_ns;
        return HA_AGE_FRESH;
    }
    if (now < c->expired_ns) {
        if (c->expired_ns < *next)
            *next = c->expired_ns;
        return HA_AGE_STALE;
    }
    return HA_AGE_EXPIRED;
}

/* Moves every check's age overlay to now and finds the next boundary;
 * rebuilds the views when one crossed (fresh -> stale -> expired). */
static void ages_update(ha_front *f, uint64_t now)
{
    const ha_snapshot *s = f->snap;
    uint64_t next = UINT64_MAX;
    bool changed = false;
    for (size_t i = 0; s && i < s->n; i++) {
        unsigned char a = age_at(&s->checks[i], now, &next);
        changed |= a != f->age[i];
        f->age[i] = a;
    }
    f->age_next_ns = next;
    if (changed)
        views_update(f);
}

/* Brings the age overlay up to now; returns now. */
static uint64_t front_clock(ha_front *f)
{
    uint64_t now = uv_hrtime();
    if (now >= f->age_next_ns && !f->age_hold)
        ages_update(f, now);
    return now;
}

static void deadline_arm(ha_front *f);

/* Takes f->snap as new (old: the one it replaces, may be NULL): fresh
 * per-check front state, ages, views. A result that arrived with it reads
 * fresh whatever its ttl (0 included) to the answers made in this loop turn,
 * those waiting for it among them; the deadline timer's next turn ages it. */
static int absorb_snapshot(ha_front *f, const ha_snapshot *old)
{
    size_t n = f->snap->n ? f->snap->n : 1;
    unsigned char *req = calloc(n, 1), *age = calloc(n, 1), *mark = calloc(n, 1);
    uint32_t *stack = calloc(n, sizeof *stack);
    if (req == NULL || age == NULL || mark == NULL || stack == NULL) {
        free(req);
        free(age);
        free(mark);
        free(stack);
        return -1;
    }
    free(f->requested);
    free(f->age);
    free(f->mark);
    free(f->dep_stack);
    f->requested = req;
    f->age = age;
    f->mark = mark;
    f->dep_stack = stack;
    uint64_t now = uv_hrtime();
    f->age_hold = false;
    ages_update(f, now);
    for (size_t i = 0; i < f->snap->n; i++) {
        const ha_snap_check *c = &f->snap->checks[i];
        if (age[i] != HA_AGE_STALE)
            continue;
        int k = old ? snapshot_find(old, c->name, strlen(c->name)) : -1;
        if (k < 0 || old->checks[k].runs != c->runs) {
            age[i] = HA_AGE_FRESH;
            f->age_hold = true;
            f->age_next_ns = now;
        }
    }
    views_update(f);
    deadline_arm(f);
    return 0;
}

static void waits_recheck(ha_front *f);

/* True when ADMIN_PENDING_MAX reports and overrides wait for the engine. */
static bool admin_queue_full(const ha_front *f)
{
    uint64_t reports = f->snap ? f->snap->report_seq : 0, overrides = f->snap ? f->snap->override_seq : 0;
    uint64_t n = (f->report_sent > reports ? f->report_sent - reports : 0) +
                 (f->override_sent > overrides ? f->override_sent - overrides : 0);
    return n >= ADMIN_PENDING_MAX;
}

/* ha_admin_ctx.set_ready: see front_admin.h. */
static int front_set_ready(void *fp, bool ready, const char *reason, size_t len)
{
    ha_front *f = fp;
    char *copy = NULL;
    if (admin_queue_full(f))
        return -2;
    if (reason && (copy = strndup(reason, len)) == NULL)
        return -1;
    if (bridge_send(f->bridge, HA_MSG_READY, (int)((f->override_sent + 1) << 1 | ready), reason, len) != 0) {
        free(copy);
        return -1;
    }
    f->override_sent++;
    f->pending_ready = ready;
    free(f->pending_reason);
    f->pending_reason = copy;
    if (f->snap)
        views_update(f); /* drops the cached answers that showed the old state */
    return 0;
}

static uint64_t watch_engine(ha_front *f, uint64_t now);

/* Takes the engine's newest snapshot, if one came, as f->snap. Only at the
 * top of a loop callback: the old one is freed. */
static void take_snapshot(ha_front *f)
{
    ha_snapshot *s = bridge_take(f->bridge);
    if (s == NULL)
        return;
    if (f->stalled_ns) /* a snapshot says the engine turned: see the recovery now */
        watch_engine(f, uv_hrtime());
    ha_snapshot *old = f->snap;
    f->snap = s;
    if (absorb_snapshot(f, old) != 0) {
        f->snap = old; /* out of memory: keep serving the previous one */
        snapshot_free(s);
        return;
    }
    snapshot_free(old);
    waits_recheck(f);
}

static void on_wakeup(uv_async_t *h) { take_snapshot(h->data); }

/* --- answering ------------------------------------------------------------- */

const ha_snapshot *front__answer_state(ha_front *f, ha_render_req *r)
{
    front_clock(f);
    r->age = f->snap ? f->age : NULL;
    r->stalled_ns = f->stalled_ns;
    override_state(f, &r->not_ready, &r->not_ready_reason);
    r->shutdown = f->shutdown_phase ? "shutting down" : f->snap == NULL ? "starting" : NULL;
    return f->snap;
}

/* Counts a probe answer for /metrics (group answers are not probe answers). */
static void count_answer(ha_front *f, const ha_render_req *rr, int code)
{
    if (rr->group.p == NULL)
        front_metrics_count(&f->requests, rr->probe, code);
}

/* The probe's codes, or NULL for a group (its own codes, then 200/503). */
static const ha_probe_conf *probe_conf(const ha_front *f, const ha_render_req *rr)
{
    return rr->group.p ? NULL : &f->cfg->probes[rr->probe];
}

static void render_and_send(ha_front *f, h2o_req_t *req, ha_render_req *rr)
{
    static ha_snapshot empty;
    ha_render_out out = {0};
    const ha_snapshot *s = front__answer_state(f, rr);
    if (front_render(s ? s : &empty, probe_conf(f, rr), rr, &out) != 0) {
        buf_free(&out.body);
        count_answer(f, rr, 404);
        respond_error(req, 404, rr->group.p && !rr->only.p ? "no such group" : "no such check in this probe");
        return;
    }
    count_answer(f, rr, out.http_status);
    front__respond(req, out.http_status, out.content_type, buf_cstr(&out.body), out.body.len);
    buf_free(&out.body);
}

/* The cache entry of rr's view (a whole probe, or a whole group of the
 * current snapshot), or NULL when it has none. */
static cache_entry *cache_slot(ha_front *f, const ha_render_req *rr)
{
    if (rr->group.p == NULL)
        return &f->cache[rr->probe][rr->format][rr->full];
    int gi = snapshot_find_group(f->snap, rr->group.p, rr->group.len);
    if (gi < 0 || (size_t)gi >= f->ngviews || f->snap->groups[gi].probe >= 0)
        return NULL;
    return &f->gviews[gi].cache[rr->format][rr->full];
}

/* The cache entry of rr\'s view, built first if needed; NULL when rr has
 * none. The caller made sure the overlays are current (front_clock). */
static cache_entry *cache_get(ha_front *f, ha_render_req *rr)
{
    cache_entry *e = cache_slot(f, rr);
    if (e != NULL && e->body == NULL) {
        ha_render_out out = {0};
        front_render(front__answer_state(f, rr), probe_conf(f, rr), rr, &out);
        e->body = h2o_mem_alloc_shared(NULL, out.body.len + 1, NULL);
        memcpy(e->body, buf_cstr(&out.body), out.body.len + 1);
        e->len = out.body.len;
        e->http_status = out.http_status;
        e->content_type = out.content_type;
        buf_free(&out.body);
    }
    return e;
}

/* Answers from the cache entry, building it first if needed (rendered for
 * the request when the view has no entry). The caller made sure the
 * overlays are current (front_clock). */
static void send_cached(ha_front *f, h2o_req_t *req, ha_render_req *rr)
{
    cache_entry *e = cache_get(f, rr);
    if (e == NULL) {
        render_and_send(f, req, rr);
        return;
    }
    h2o_mem_link_shared(&req->pool, e->body);
    count_answer(f, rr, e->http_status);
    respond(req, e->http_status, e->content_type, e->body, e->len);
}

/* Answers now from what is known: a whole probe or group from the cache
 * (prebuilt per view, format and audience), anything else rendered for the
 * request. While the engine is stalled, liveness carries the stall's
 * length, so nothing comes from the cache. */
static void answer(ha_front *f, h2o_req_t *req, ha_render_req *rr)
{
    front_clock(f);
    if (f->snap && !f->stalled_ns && !rr->only.p && rr->nexclude == 0)
        send_cached(f, req, rr);
    else
        render_and_send(f, req, rr);
}

/* --- waiting for stale checks (front_int.h) -------------------------------- */

struct front_wait_item {
    const char *name;   /* in the wait's own block */
    size_t len;
    uint64_t runs;      /* runs when the wait started */
};

static void list_unlink(wait_list *l, front_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->next = w->prev = NULL;
}

static void list_append(wait_list *l, front_wait *w)
{
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

/* Links w into the waits by deadline (it is nearly always the latest). */
static void waits_insert(ha_front *f, front_wait *w)
{
    front_wait *after = f->waits.tail;
    while (after && after->deadline_ns > w->deadline_ns)
        after = after->prev;
    if (after == NULL) {
        w->prev = NULL;
        w->next = f->waits.head;
        if (f->waits.head)
            f->waits.head->prev = w;
        else
            f->waits.tail = w;
        f->waits.head = w;
        return;
    }
    w->prev = after;
    w->next = after->next;
    if (after->next)
        after->next->prev = w;
    else
        f->waits.tail = w;
    after->next = w;
}

/* Forgets w: off its list, items freed. */
static void wait_forget(front_wait *w)
{
    ha_front *f = w->front;
    list_unlink(w->due ? &f->due : &f->waits, w);
    free(w->items);
    w->items = NULL;
    w->due = false;
    w->front = NULL;
}

/* Moves w to the callbacks to make (see waits_call_due). */
static void wait_end(front_wait *w)
{
    ha_front *f = w->front;
    list_unlink(&f->waits, w);
    w->due = true;
    list_append(&f->due, w);
}

/* Makes the callbacks of the ended waits, oldest first. A callback may
 * start or cancel waits, these included. */
static void waits_call_due(ha_front *f)
{
    while (f->due.head) {
        front_wait *w = f->due.head;
        front_wait_cb cb = w->cb;
        void *data = w->data;
        wait_forget(w);
        cb(data);
    }
}

/* True when every check w waits for has a new result, is fresh, is within
 * its initial delay, or was removed by a reload. */
static bool is_stale(const ha_snap_check *c, uint64_t now);

static bool wait_satisfied(ha_front *f, front_wait *w, uint64_t now)
{
    if (w->report_seq > f->snap->report_seq)
        return false;
    for (size_t i = 0; i < w->nitems; i++) {
        front_wait_item *it = &w->items[i];
        int k = snapshot_find(f->snap, it->name, it->len);
        if (k < 0)
            continue;
        const ha_snap_check *c = &f->snap->checks[k];
        if (c->runs < it->runs)
            it->runs = 0; /* a reload redefined it: its first result will do */
        if (c->runs > it->runs || !is_stale(c, now) || c->not_before_ns > now)
            continue;
        return false;
    }
    return true;
}

static void waits_recheck(ha_front *f)
{
    uint64_t now = uv_hrtime();
    for (front_wait *w = f->waits.head, *next; w; w = next) {
        next = w->next;
        if (wait_satisfied(f, w, now))
            wait_end(w);
    }
    waits_call_due(f);
    deadline_arm(f);
}

/* Ends every wait now (engine stalled, shutdown). */
static void waits_end_all(ha_front *f)
{
    while (f->waits.head)
        wait_end(f->waits.head);
    waits_call_due(f);
    deadline_arm(f);
}

/* The one deadline timer: ends the waits whose budget is over and moves the
 * age overlay at its boundaries. */
static void on_deadline(uv_timer_t *h)
{
    ha_front *f = h->data;
    f->deadline_at_ns = UINT64_MAX;
    f->age_hold = false;
    uint64_t now = front_clock(f);
    while (f->waits.head && f->waits.head->deadline_ns <= now)
        wait_end(f->waits.head);
    waits_call_due(f);
    deadline_arm(f);
}

/* Arms the deadline timer to the soonest of the next wait deadline and the
 * next age boundary, unless it is armed for exactly that already. */
static void deadline_arm(ha_front *f)
{
    uint64_t next = f->age_next_ns;
    if (f->waits.head && f->waits.head->deadline_ns < next)
        next = f->waits.head->deadline_ns;
    if (next == f->deadline_at_ns)
        return;
    f->deadline_at_ns = next;
    if (next == UINT64_MAX) {
        uv_timer_stop(&f->deadline);
        return;
    }
    uv_update_time(f->loop); /* the timer counts from the loop's clock */
    uint64_t now = uv_hrtime();
    uint64_t ms = next > now ? (next - now + HA_NS_PER_MS - 1) / HA_NS_PER_MS : 0;
    uv_timer_start(&f->deadline, on_deadline, ms, 0);
}

static bool same_name(const ha_str *n, const char *name)
{
    return strlen(name) == n->len && memcmp(name, n->p, n->len) == 0;
}

/* The group sel names in f's snapshot when it has members of its own, else
 * NULL (a probe, or a probe's own group: the probe's checks). *missing is
 * set when sel names a group the snapshot does not have. */
static const ha_snap_group *sel_group(const ha_front *f, const ha_front_sel *sel, bool *missing)
{
    *missing = false;
    if (sel->group.p == NULL)
        return NULL;
    int gi = snapshot_find_group(f->snap, sel->group.p, sel->group.len);
    *missing = gi < 0 || f->snap->groups[gi].probe >= 0;
    return *missing ? NULL : &f->snap->groups[gi];
}

/* True when sel covers c: the answer shows it (a member of g when g is
 * not NULL, else a check of the probe). */
static bool covers(const ha_snap_check *c, const ha_front_sel *sel, const ha_snap_group *g)
{
    if ((!g && !ha_probe_covers(c->probes, sel->probe)) || (sel->only.p && !same_name(&sel->only, c->name)))
        return false;
    for (size_t e = 0; e < sel->nexclude; e++)
        if (same_name(&sel->exclude[e], c->name))
            return false;
    return true;
}

/* True when c's result is past its ttl or c never ran. A pushed check is
 * never stale (its reports come when they come: the engine's report
 * deadline turns it DOWN); a blocked one is as fresh as its root cause. */
static bool is_stale(const ha_snap_check *c, uint64_t now)
{
    if (c->pushed)
        return false;
    return !((c->runs || c->blocked) && c->expires_ns > now);
}

/* True when c needs a run before an answer: stale, and not within its
 * initial delay. A fresh result is served even while a background refresh
 * runs. */
static bool wants_run(const ha_snap_check *c, uint64_t now)
{
    return c->not_before_ns <= now && is_stale(c, now);
}

/* Adds to the checks whose f->mark is `bit` every check they depend on,
 * transitively (marked 2 unless already marked). Returns how many were
 * added. The graph has no cycle (a load error), and each check is pushed
 * once: O(checks + dependencies). */
static size_t dep_closure(ha_front *f, unsigned char bit)
{
    const ha_snapshot *s = f->snap;
    size_t sp = 0, added = 0;
    for (size_t i = 0; i < s->n; i++)
        if (f->mark[i] == bit && s->checks[i].ndeps)
            f->dep_stack[sp++] = (uint32_t)i;
    while (sp) {
        const ha_snap_check *c = &s->checks[f->dep_stack[--sp]];
        for (uint32_t k = 0; k < c->ndeps; k++) {
            uint32_t d = c->deps[k];
            if (d >= s->n || f->mark[d])
                continue;
            f->mark[d] = 2;
            added++;
            f->dep_stack[sp++] = d; /* each check once: the stack never exceeds n */
        }
    }
    return added;
}

int front__wait(ha_front *f, front_wait *w, const ha_front_sel *sel, uint64_t budget_ns,
                front_wait_cb cb, void *data)
{
    memset(w, 0, sizeof *w);
    const ha_snapshot *s = f->snap;
    if (s == NULL || f->stalled_ns)
        return 0;
    bool missing;
    const ha_snap_group *g = sel_group(f, sel, &missing);
    if (missing)
        return 0;
    size_t count = g ? g->nmembers : s->n;
    uint64_t now = uv_hrtime();
    uint64_t budget = budget_ns < f->cfg->max_wait_ns ? budget_ns : f->cfg->max_wait_ns;
    size_t n = 0, bytes = 0;
    /* the covered set, then what it depends on: a dependent's answer is
     * only as fresh as its dependencies (mark: 1 covered, 2 dependency;
     * then 3 = to wait for) */
    for (size_t k = 0; k < count; k++) {
        size_t i = g ? g->members[k] : k;
        f->mark[i] = covers(&s->checks[i], sel, g);
    }
    dep_closure(f, 1);
    for (size_t i = 0; i < s->n; i++) {
        const ha_snap_check *c = &s->checks[i];
        if (!f->mark[i] || !wants_run(c, now)) {
            f->mark[i] = 0;
            continue;
        }
        f->mark[i] = 0;
        if (!c->running && !f->requested[i]) {
            f->requested[i] = 1;
            bridge_send(f->bridge, HA_MSG_RUN, 0, c->name, strlen(c->name));
        }
        /* liveness never waits for a first result (it reads as passing) */
        if (budget == 0 || (sel->probe == HA_PI_LIVENESS && c->runs == 0))
            continue;
        f->mark[i] = 3;
        n++;
        bytes += strlen(c->name) + 1;
    }
    if (n == 0)
        return 0;
    w->items = malloc(n * sizeof *w->items + bytes);
    if (w->items == NULL) {
        memset(f->mark, 0, s->n);
        return -1;
    }
    char *names = (char *)(w->items + n);
    for (size_t i = 0; i < s->n && w->nitems < n; i++) {
        const ha_snap_check *c = &s->checks[i];
        if (f->mark[i] != 3)
            continue;
        f->mark[i] = 0;
        front_wait_item *it = &w->items[w->nitems++];
        it->len = strlen(c->name);
        it->name = memcpy(names, c->name, it->len + 1); /* the snapshot may go first */
        it->runs = c->runs;
        names += it->len + 1;
    }
    w->front = f;
    w->cb = cb;
    w->data = data;
    w->deadline_ns = now + budget;
    waits_insert(f, w);
    deadline_arm(f);
    return 1;
}

int front__report(ha_front *f, front_wait *w, const char *name, size_t nlen, ha_status status, const char *out,
                  size_t olen, front_wait_cb cb, void *data, uint64_t *seq)
{
    memset(w, 0, sizeof *w);
    if (admin_queue_full(f))
        return -2;
    char *text = malloc(nlen + 1 + olen);
    if (text == NULL)
        return -1;
    memcpy(text, name, nlen);
    text[nlen] = '\0';
    if (olen)
        memcpy(text + nlen + 1, out, olen);
    int r = bridge_send_seq(f->bridge, HA_MSG_REPORT, (int)status, f->report_sent + 1, text, nlen + 1 + olen);
    free(text);
    if (r != 0)
        return -1;
    *seq = ++f->report_sent;
    if (f->shutdown_phase >= 2)
        return 2;
    if (f->stalled_ns)
        return 0;
    uint64_t budget = f->cfg->max_wait_ns > REPORT_WAIT_MIN_NS ? f->cfg->max_wait_ns : REPORT_WAIT_MIN_NS;
    w->report_seq = *seq;
    w->front = f;
    w->cb = cb;
    w->data = data;
    w->deadline_ns = uv_hrtime() + budget;
    waits_insert(f, w);
    deadline_arm(f);
    return 1;
}

bool front__report_applied(const ha_front *f, uint64_t seq) { return f->snap && f->snap->report_seq >= seq; }

void front__wait_cancel(front_wait *w)
{
    if (w->front)
        wait_forget(w);
}

/* A probe request waiting: lives in the request's pool. */
typedef struct {
    front_wait w;
    ha_front *front;
    h2o_req_t *req;
    ha_render_req rr;
    ha_str exclude[MAX_EXCLUDE];
} http_wait;

/* Pool dispose: the client went away or the response completed. */
static void http_wait_dispose(void *p)
{
    http_wait *hw = p;
    front__wait_cancel(&hw->w);
}

static void http_wait_done(void *p)
{
    http_wait *hw = p;
    answer(hw->front, hw->req, &hw->rr);
}

bool front__fresh(const ha_front *f, const ha_front_sel *sel)
{
    if (f->snap == NULL || f->stalled_ns || sel->only.p || sel->nexclude)
        return false;
    uint64_t until = f->fresh_until[sel->probe]; /* every check of the probe fresh until then */
    if (sel->group.p) {
        int gi = snapshot_find_group(f->snap, sel->group.p, sel->group.len);
        until = gi >= 0 && (size_t)gi < f->ngviews ? f->gviews[gi].fresh_until : 0;
    }
    return uv_hrtime() < until;
}

/* Serves a probe request: from the cache when every check is fresh, else
 * after the stale ones have run or max_wait passed, whichever comes first. */
static void serve_probe(ha_front *f, h2o_req_t *req, ha_render_req *rr)
{
    ha_front_sel sel = {rr->probe, rr->group, rr->only, rr->exclude, rr->nexclude};
    if (front__fresh(f, &sel)) {
        send_cached(f, req, rr);
        return;
    }
    http_wait *hw = h2o_mem_alloc_shared(&req->pool, sizeof *hw, http_wait_dispose);
    memset(hw, 0, sizeof *hw);
    hw->front = f;
    hw->req = req;
    hw->rr = *rr;
    for (size_t i = 0; i < rr->nexclude; i++)
        hw->exclude[i] = rr->exclude[i];
    hw->rr.exclude = hw->exclude;
    sel.exclude = hw->exclude;
    if (front__wait(f, &hw->w, &sel, UINT64_MAX, http_wait_done, hw) != 1)
        answer(f, req, &hw->rr);
}

/* --- connections: caps, budgets, progress --------------------------------- */

static size_t addr_hash(const ha_front *f, const uint8_t *k)
{
    uint64_t a, b;
    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    uint64_t h = (a ^ f->addr_seed) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 31) ^ b) * 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 29)) & f->addr_mask;
}

/* The slot of address k: its own, or the free one it would take (key set,
 * n still 0). The table is never more than half full, so the probe ends. */
static addr_slot *addr_slot_of(ha_front *f, const uint8_t *k)
{
    for (size_t i = addr_hash(f, k);; i = (i + 1) & f->addr_mask) {
        addr_slot *s = &f->addrs[i];
        if (s->n == 0) {
            memcpy(s->key, k, 16);
            return s;
        }
        if (memcmp(s->key, k, 16) == 0)
            return s;
    }
}

/* One connection of address k is gone; a slot that falls to 0 is removed by
 * shifting the following run back (linear probing without tombstones). */
static void addr_release(ha_front *f, const uint8_t *k)
{
    size_t i = (size_t)(addr_slot_of(f, k) - f->addrs);
    assert(f->addrs[i].n > 0);
    if (--f->addrs[i].n > 0)
        return;
    for (size_t j = (i + 1) & f->addr_mask; f->addrs[j].n != 0; j = (j + 1) & f->addr_mask) {
        size_t h = addr_hash(f, f->addrs[j].key);
        /* j's entry may move to the hole at i unless its home lies in (i, j] */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            f->addrs[i] = f->addrs[j];
            f->addrs[j].n = 0;
            i = j;
        }
    }
}

static void addr_key(const struct sockaddr_storage *ss, uint8_t *key)
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    }
}

static const char *addr_text(const uint8_t *key, char *buf, size_t len)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    bool v4 = memcmp(key, v4mapped, 12) == 0;
    return uv_inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? key + 12 : key, buf, len) == 0 ? buf : NULL;
}

/* Logs why connections are ended or refused: the first at once, then at
 * most one line per reason every REFUSE_LOG_MS with the count since. */
static void conn_report(ha_front *f, int reason, const uint8_t *addr)
{
    static const char *const what[END_REASONS] = {
        "refused: max_connections reached", "refused: max_connections_per_address reached",
        "closed: send_timeout (output made no progress)", "closed: frames without requests",
        "closed: HTTP/2 header block larger than 32 KiB", "refused: out of file descriptors"};
    uint64_t now = uv_now(f->loop);
    f->ended[reason]++;
    if (f->ended_log_ms[reason] && now - f->ended_log_ms[reason] < REFUSE_LOG_MS)
        return;
    char a[INET6_ADDRSTRLEN];
    log_event(LOG_WARN, NULL, "connection from %s %s (%llu in the last %ds)", addr_text(addr, a, sizeof a),
              what[reason], (unsigned long long)f->ended[reason], REFUSE_LOG_MS / 1000);
    f->ended[reason] = 0;
    f->ended_log_ms[reason] = now;
}

/* Ends the connection now, whatever h2o is waiting for: both directions are
 * shut, so h2o's pending read sees EOF and its pending write fails, and it
 * closes the connection; the linger of 0 makes that close a reset, which
 * frees the unsent output in the kernel at once. */
static void conn_abort(front_conn *c, int reason)
{
    uv_os_fd_t fd;
    if (c->aborted)
        return;
    c->aborted = true;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        shutdown(fd, SHUT_RDWR);
    }
    conn_report(c->front, reason, c->addr);
}

static void conn_on_read(h2o_socket_t *sock, const char *err);

static const char h2_preface[24] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Follows HTTP/2 frame boundaries through the bytes p[0..n) the connection
 * read, before h2o decodes them, and bounds each header block: h2o decodes
 * HPACK with no hook, and 16 KiB of one-byte references to a 4 KB entry
 * costs it ~1.75 MB, up to 417 KB of CONTINUATION per block. Returns false
 * when a block passes MAX_HEADER_BLOCK (the connection must end before h2o
 * sees these bytes). Anything that is not the preface at the start makes the
 * connection H2_UNTRACKED. */
static bool conn_track(front_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0 && c->h2 != H2_UNTRACKED) {
        size_t k;
        if (c->h2 == H2_PREFACE) {
            k = sizeof h2_preface - c->h2_have < n ? sizeof h2_preface - c->h2_have : n;
            if (memcmp(p, h2_preface + c->h2_have, k) != 0) {
                c->h2 = H2_UNTRACKED;
                return true;
            }
            c->h2_have += (uint8_t)k;
            if (c->h2_have == sizeof h2_preface) {
                c->h2 = H2_FRAMES;
                c->h2_have = 0;
            }
        } else if (c->h2_skip > 0) {
            k = c->h2_skip < n ? c->h2_skip : n;
            c->h2_skip -= (uint32_t)k;
        } else {
            k = sizeof c->h2_hdr - c->h2_have < n ? sizeof c->h2_hdr - c->h2_have : n;
            memcpy(c->h2_hdr + c->h2_have, p, k);
            c->h2_have += (uint8_t)k;
            if (c->h2_have == sizeof c->h2_hdr) {
                uint32_t len = (uint32_t)c->h2_hdr[0] << 16 | (uint32_t)c->h2_hdr[1] << 8 | c->h2_hdr[2];
                uint8_t type = c->h2_hdr[3], flags = c->h2_hdr[4];
                c->h2_have = 0;
                c->h2_skip = len;
                if (type == 1 || (type == 9 && c->h2_in_block)) { /* HEADERS, CONTINUATION */
                    c->h2_block = type == 1 ? len : c->h2_block + len;
                    c->h2_in_block = !(flags & 4); /* END_HEADERS */
                    if (c->h2_block > MAX_HEADER_BLOCK)
                        return false;
                }
            }
        }
        p += k;
        n -= k;
    }
    return true;
}

/* (Re)installs conn_on_read in front of h2o's read callback, which h2o sets
 * anew each time it starts reading (HTTP/1 after every response, HTTP/2
 * once at the preface). */
static void conn_wrap_read(front_conn *c)
{
    h2o_socket_t *s = c->sock;
    if (s && s->_cb.read && s->_cb.read != conn_on_read) {
        c->h2o_read = s->_cb.read;
        s->_cb.read = conn_on_read;
    }
}

/* Counts what the connection reads while no request reaches the handler
 * (SETTINGS, PING, WINDOW_UPDATE, PRIORITY, empty DATA or CONTINUATION
 * frames, refused requests): past READ_BUDGET it is ended. */
static void conn_on_read(h2o_socket_t *sock, const char *err)
{
    front_conn *c = sock->on_close.data;
    if (err == NULL && !c->aborted) {
        size_t n = sock->bytes_read; /* the newest bytes, at the end of the input */
        c->unproductive += n < READ_BUDGET ? (uint32_t)n : READ_BUDGET;
        if (c->unproductive > READ_BUDGET)
            conn_abort(c, END_NO_PROGRESS);
        else if (!conn_track(c, (const uint8_t *)sock->input->bytes + sock->input->size - n, n))
            conn_abort(c, END_HEADER_BLOCK);
    }
    if (err == NULL && c->aborted)
        err = h2o_socket_error_closed; /* h2o closes now, without decoding what came */
    c->h2o_read(sock, err);
    if (c->sock == sock) /* still open: h2o may have set a new callback */
        conn_wrap_read(c);
}

/* h2o disposed the socket (the uv handle closes next). */
static void conn_on_sock_disposed(void *p)
{
    front_conn *c = p;
    c->sock = NULL;
}

/* The connection a request came on (NULL if it is not one of ours). */
static front_conn *conn_of(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock && sock->on_close.cb == conn_on_sock_disposed ? sock->on_close.data : NULL;
}

/* Pool dispose of a request counted in c->inflight. */
static void conn_req_done(void *p)
{
    front_conn *c = *(front_conn **)p;
    c->inflight--;
    c->progress_ms = uv_now(c->front->loop);
}

/* Keeps the unused entry e for reuse, or frees it past EARLY_FREE_MAX. */
static void early_recycle(ha_front *f, front_early *e)
{
    if (f->nearly_free < EARLY_FREE_MAX) {
        e->next = f->early_free;
        f->early_free = e;
        f->nearly_free++;
    } else {
        free(e);
        f->closed_since_trim = true;
    }
}

/* Forgets e, which no longer holds a descriptor: takes it off front->early
 * and out of the caps, and recycles it. */
static void early_drop(ha_front *f, front_early *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        f->early = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        f->early_tail = e->prev;
    addr_release(f, e->addr);
    f->nconns--;
    early_recycle(f, e);
}

/* Ends an early connection that is still in the epoll set (it timed out, or
 * the agent is shutting down): out of the set first, as a child between fork
 * and exec may hold the descriptor past the close. */
static void early_close(ha_front *f, front_early *e)
{
    epoll_ctl(f->early_epfd, EPOLL_CTL_DEL, e->fd, NULL);
    close(e->fd);
    e->fd = -1;
    early_drop(f, e);
}

/* How often the sweep runs while there are connections: once a second, or
 * once a request_timeout while early connections wait and that is shorter
 * (they are closed at most a period after it). */
static uint64_t sweep_period_ns(const ha_front *f)
{
    uint64_t rt = f->cfg->request_timeout_ns;
    return f->early && rt < SWEEP_NS ? rt : SWEEP_NS;
}

/* Once a second: re-wraps reads, and ends connections that owe output (a
 * request in flight or bytes queued) and made no progress (no request
 * arrived or completed, nothing more written) for send_timeout; and early
 * connections that sent nothing for request_timeout. */
static void conns_sweep(ha_front *f)
{
    uint64_t now = uv_now(f->loop);
    uint64_t limit = f->cfg->send_timeout_ns / HA_NS_PER_MS;
    uint64_t quiet = f->cfg->request_timeout_ns / HA_NS_PER_MS;
    while (f->early && now - f->early->since_ms >= quiet)
        early_close(f, f->early);
    for (front_conn *c = f->conns; c; c = c->next) {
        if (c->sock == NULL || c->aborted)
            continue;
        conn_wrap_read(c);
        size_t w = c->sock->bytes_written, q = c->tcp.write_queue_size;
        if (w != c->written || q < c->queued || (c->inflight == 0 && q == 0))
            c->progress_ms = now;
        c->written = w;
        c->queued = q;
        if (now - c->progress_ms >= limit)
            conn_abort(c, END_SEND_TIMEOUT);
    }
    if (f->closed_since_trim) {
        /* hand back what an attack made the heap grow by (glibc keeps
         * freed memory in its arenas otherwise) */
        malloc_trim(0);
        f->closed_since_trim = false;
    }
}

/* Sets the effective caps from the configuration and the descriptor limit,
 * and allocates the address table. Returns 0 or -1 (no memory). */
static int conns_init(ha_front *f)
{
    struct rlimit rl;
    uint64_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 1u << 20;
    uint64_t headroom = fds / 4 > CONN_HEADROOM_MIN ? fds / 4 : CONN_HEADROOM_MIN;
    uint64_t room = fds > headroom + 2 ? fds - headroom : 2;
    uint64_t want = f->cfg->max_connections ? (uint64_t)f->cfg->max_connections : CONN_DEFAULT_MAX;
    uint64_t total = want < room ? want : room;
    /* an eighth is kept for addresses that hold (almost) nothing, such as
     * kubelet's: several addresses at their cap still leave it room */
    f->reserve = (int)(total / 8 > 0 ? total / 8 : 1);
    f->max_conns = (int)total - f->reserve > 0 ? (int)total - f->reserve : 1;
    f->max_per_addr = f->cfg->max_connections_per_address;
    /* one address never takes more than half: others still get in */
    if (f->max_per_addr > f->max_conns / 2)
        f->max_per_addr = f->max_conns / 2 > 0 ? f->max_conns / 2 : 1;
    size_t slots = 4;
    while (slots < 2 * (size_t)(f->max_conns + f->reserve))
        slots <<= 1;
    /* mapped, not calloc'd: a page is resident only once an address hashes
     * into it, so the table costs an idle agent nothing */
    void *m = mmap(NULL, slots * sizeof *f->addrs, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    f->addrs = m;
    f->addr_mask = slots - 1;
    f->addr_seed = uv_hrtime() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    f->fd_limit = fds;
    f->max_lowered = f->cfg->max_connections && (uint64_t)f->cfg->max_connections > room;
    return 0;
}

/* The start-up line on the connection limits (once listening). */
static void conns_log(const ha_front *f)
{
    char d[32];
    ha_duration_format(f->cfg->send_timeout_ns, d, sizeof d);
    log_event(LOG_INFO, NULL,
              "connections: at most %d at once (descriptor limit %llu), %d per client address, %d more for "
              "addresses holding fewer than %d; send_timeout %s",
              f->max_conns, (unsigned long long)f->fd_limit, f->max_per_addr, f->reserve, CONN_FEW, d);
    if (f->max_lowered)
        log_event(LOG_WARN, NULL, "max_connections lowered to %d: the descriptor limit is %llu (ulimit -n)",
                  f->max_conns, (unsigned long long)f->fd_limit);
}

/* Whether a connection from addr would pass both caps: -1 when it would,
 * else the END_* reason. Counts nothing. */
static int conn_refused(ha_front *f, const uint8_t *addr)
{
    addr_slot *s = addr_slot_of(f, addr);
    if ((int)s->n >= f->max_per_addr)
        return END_CAP_ADDR;
    if (f->nconns >= f->max_conns + (s->n < CONN_FEW ? f->reserve : 0))
        return END_CAP_TOTAL;
    return -1;
}

/* Counts c against its address and the total; conn_refused said it may. */
static void conn_count(ha_front *f, front_conn *c)
{
    addr_slot_of(f, c->addr)->n++;
    f->nconns++;
    c->counted = true;
}

/* Answers a request the connection may not have: RST_STREAM on HTTP/2,
 * which frees it at once even when the peer's window is 0; status and a
 * JSON message on HTTP/1. */
static void refuse(h2o_req_t *req, int h2_error, int status, const char *msg)
{
    if (!front_h2_reset(req, h2_error))
        respond_error(req, status, msg);
}

/* True when the request's headers fit the bounds. */
static bool headers_fit(const h2o_req_t *req)
{
    if (req->headers.size > MAX_REQ_HEADERS)
        return false;
    size_t bytes = req->input.path.len + req->input.authority.len;
    for (size_t i = 0; i < req->headers.size && bytes <= MAX_REQ_HEADER_BYTES; i++)
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return bytes <= MAX_REQ_HEADER_BYTES;
}

/* Admits a request on its connection: refuses it (true) when the
 * connection has too many in flight or its headers are too large; else
 * counts it in flight until its pool is disposed. */
static bool request_refused(h2o_req_t *req)
{
    front_conn *c = conn_of(req);
    if (!headers_fit(req)) {
        refuse(req, H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM, 431, "request headers too large");
        return true;
    }
    if (c == NULL)
        return false;
    if (c->inflight >= MAX_INFLIGHT) {
        refuse(req, H2O_HTTP2_ERROR_REFUSED_STREAM, 503, "too many requests in flight on this connection");
        return true;
    }
    if (req->version >= 0x200 && c->h2 == H2_UNTRACKED && !c->upgraded) {
        /* an h2c upgrade just completed (h2o set its HTTP/2 read callback
         * and runs stream 1): the client preface is the next thing read */
        c->upgraded = true;
        c->h2 = H2_PREFACE;
        c->h2_have = 0;
        conn_wrap_read(c);
    }
    front_conn **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, conn_req_done);
    *slot = c;
    c->inflight++;
    c->unproductive = 0;
    c->progress_ms = uv_now(c->front->loop);
    return false;
}

/* --- metrics and the status page ------------------------------------------ */

/* The blocks the /metrics renderer keeps (front_metrics_render): h2o's
 * shared memory, so that a body being sent outlives the next render. */
static char *metrics_alloc(size_t len) { return h2o_mem_alloc_shared(NULL, len, NULL); }
static void metrics_retain(char *p) { h2o_mem_addref_shared(p); }
static void metrics_release(char *p) { h2o_mem_release_shared(p); }
static bool metrics_sole(const char *p)
{
    return H2O_STRUCT_FROM_MEMBER(struct st_h2o_mem_pool_shared_entry_t, bytes, p)->refcnt == 1;
}
static const ha_metrics_mem metrics_mem = {metrics_alloc, metrics_retain, metrics_release, metrics_sole};

static void view_clear(view_entry *v)
{
    if (v->body)
        h2o_mem_release_shared(v->body);
    v->body = NULL;
}

/* Makes v show the current epoch: keeps it, or replaces it by b's contents. */
static void view_store(ha_front *f, view_entry *v, ha_buf *b)
{
    view_clear(v);
    v->body = h2o_mem_alloc_shared(NULL, b->len + 1, NULL);
    memcpy(v->body, buf_cstr(b), b->len + 1);
    v->len = b->len;
    v->epoch = f->views_epoch;
}

static bool view_fresh(const ha_front *f, const view_entry *v) { return v->body && v->epoch == f->views_epoch; }

/* Makes v show the current epoch with body, a block of h2o's shared memory
 * whose reference v takes. */
static void view_adopt(ha_front *f, view_entry *v, char *body, size_t len)
{
    view_clear(v);
    v->body = body;
    v->len = len;
    v->epoch = f->views_epoch;
}

/* The status of every probe as a request without options would read now. */
static void probe_statuses(ha_front *f, ha_status *st, bool *ok)
{
    static ha_snapshot empty;
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        ha_render_req rr = {0};
        rr.probe = pi;
        const ha_snapshot *s = front__answer_state(f, &rr);
        st[pi] = front_render_status(s ? s : &empty, &rr);
        if (ok)
            ok[pi] = st[pi] == HA_UP || st[pi] == HA_WARN;
    }
}

/* How long the engine's current work has held it at now: 0 while it waits
 * for work (an engine in poll is not stuck, however long it sleeps). */
static uint64_t engine_busy_ns(const ha_front *f, uint64_t now, uint64_t *beat)
{
    *beat = atomic_load_explicit(&f->bridge->heartbeat_ns, memory_order_relaxed);
    return *beat != 0 && now > *beat ? now - *beat : 0;
}

/* The engine's lag for the page and /metrics: how long its current work
 * has held it, 0 while it waits for work. */
static uint64_t engine_lag(ha_front *f)
{
    uint64_t beat;
    return engine_busy_ns(f, uv_hrtime(), &beat);
}

static void page_view_of(ha_front *f, bool full, ha_page_view *v)
{
    ha_build_facts bf = front_admin_build();
    memset(v, 0, sizeof *v);
    v->cfg = f->cfg;
    probe_statuses(f, v->probe_status, NULL);
    v->full = full;
    v->engine_lag_ns = engine_lag(f);
    v->stalled_ns = f->stalled_ns;
    v->shutting_down = f->shutdown_phase != 0;
    v->commit = bf.commit;
    v->build_date = bf.build_date;
    v->start_ms = bf.start_ms;
    v->now_ms = ha_wall_ms();
    v->age = f->snap ? f->age : NULL;
}

/* Answers 403 or 404 unless the access setting lets this client in. */
static bool access_ok(h2o_req_t *req, ha_access a, bool trusted_or_token)
{
    if (a == HA_ACCESS_OFF) {
        respond_error(req, 404, "not found");
        return false;
    }
    if (a == HA_ACCESS_TRUSTED && !trusted_or_token) {
        respond_error(req, 403, "forbidden");
        return false;
    }
    return true;
}

/* GET /metrics: the snapshot part from its cache, then the scrape-time
 * part rendered now, sent as two buffers. */
static void serve_metrics(ha_front *f, h2o_req_t *req)
{
    view_entry *v = &f->metrics_view;
    front_clock(f); /* ages at now, for both parts: a change moves the epoch */
    if (!view_fresh(f, v)) {
        size_t len;
        const char *commit = front_admin_build().commit;
        view_clear(v); /* its body may be written over when no answer still sends it */
        char *body = front_metrics_render(&f->metrics_memo, &metrics_mem, f->snap, f->snap ? f->age : NULL, commit, &len);
        if (body) {
            view_adopt(f, v, body, len);
        } else {
            buf_reset(&f->render);
            front_metrics_snapshot(f->snap, f->snap ? f->age : NULL, commit, &f->render);
            view_store(f, v, &f->render);
        }
    }
    ha_metrics_live m = {0};
    m.requests = &f->requests;
    /* a probe's status reads every check: read again only when what its
     * names-only answer shows changed (its hash, as the answer cache) */
    if (f->probe_ok_stalled != (f->stalled_ns != 0) || memcmp(f->probe_ok_of, f->hash_names, sizeof f->hash_names)) {
        /* the hashes first: an age crossing while the statuses are read
         * moves them, and the next scrape reads the statuses again */
        memcpy(f->probe_ok_of, f->hash_names, sizeof f->hash_names);
        f->probe_ok_stalled = f->stalled_ns != 0;
        ha_status st[HA_NPROBES];
        probe_statuses(f, st, f->probe_ok);
    }
    memcpy(m.probe_ok, f->probe_ok, sizeof m.probe_ok);
    m.engine_lag_ns = engine_lag(f);
    m.stalled = f->stalled_ns != 0;
    m.snapshots = f->snap ? f->snap->seq : 0;
    m.start_ms = front_admin_build().start_ms;
    ha_buf live = HA_BUF_INIT;
    front_metrics_live(&m, &live);
    char *tail = h2o_mem_alloc_pool(&req->pool, live.len);
    memcpy(tail, live.data, live.len);
    h2o_mem_link_shared(&req->pool, v->body);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    bool head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    req->res.content_length = v->len + live.len;
    h2o_start_response(req, &no_generator);
    h2o_iovec_t bufs[2] = {h2o_iovec_init(v->body, v->len), h2o_iovec_init(tail, live.len)};
    h2o_send(req, bufs, head ? 0 : 2, H2O_SEND_STATE_FINAL);
    buf_free(&live);
}

/* GET / and /status: the page of this audience, built once per epoch. */
static void serve_page(ha_front *f, h2o_req_t *req, bool full)
{
    view_entry *v = &f->page_view[full];
    if (!view_fresh(f, v)) {
        ha_page_view pv;
        page_view_of(f, full, &pv);
        buf_reset(&f->render);
        front_status_html(f->snap, &pv, &f->render);
        view_store(f, v, &f->render);
    }
    h2o_mem_link_shared(&req->pool, v->body);
    respond(req, 200, "text/html; charset=utf-8", v->body, v->len);
}

static bool trusted(ha_front *f, h2o_req_t *req);
static bool has_token(ha_front *f, h2o_req_t *req);

/* GET /metrics, / and /status: method, access setting, then the view. */
static void serve_view(ha_front *f, h2o_req_t *req, bool metrics)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        respond_error(req, 405, "method not allowed");
        return;
    }
    bool full = trusted(f, req) || has_token(f, req);
    if (!access_ok(req, metrics ? f->cfg->metrics : f->cfg->status_page, full))
        return;
    front_clock(f); /* the age overlay is current: views_update ran if it moved */
    if (metrics)
        serve_metrics(f, req);
    else
        serve_page(f, req, full);
}

/* The members /-/status adds for the checks, built once per epoch. */
static const view_entry *status_extra(ha_front *f)
{
    view_entry *v = &f->status_view;
    front_clock(f);
    if (!view_fresh(f, v)) {
        ha_page_view pv;
        page_view_of(f, true, &pv);
        buf_reset(&f->render);
        front_status_json(f->snap, &pv, &f->render);
        view_store(f, v, &f->render);
    }
    return v;
}

/* --- what the gRPC server shares (front_int.h, front_grpc.h) --------------- */

int front__conn_admit(ha_front *f, const struct sockaddr_storage *ss, uint8_t key[16])
{
    addr_key(ss, key);
    if (conn_refused(f, key) >= 0)
        return -1;
    addr_slot_of(f, key)->n++;
    f->nconns++;
    return 0;
}

void front__conn_release(ha_front *f, const uint8_t key[16])
{
    addr_release(f, key);
    f->nconns--;
}

const ha_grpc_module *front_grpc_load(char *err, size_t errlen)
{
    /* the front thread, or a command's only thread: never two at once */
    static const ha_grpc_module *mod;
    static char why[512];
    if (mod == NULL && why[0] == '\0') {
        void *h = ha_module_open(FRONT_GRPC_SO, why, sizeof why);
        if (h && (mod = dlsym(h, FRONT_GRPC_SYM)) == NULL)
            snprintf(why, sizeof why, "%s: %s", FRONT_GRPC_SO, dlerror());
    }
    if (mod == NULL)
        snprintf(err, errlen, "%s", why);
    return mod;
}

/* --- routing -------------------------------------------------------------- */

static bool trusted(ha_front *f, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    return len > 0 && cidr_match(&f->cfg->trusted, (struct sockaddr *)&ss);
}

/* True when an Authorization value v[0..len) is "Bearer <configured token>".
 * The comparison takes the same time wherever the first difference is. */
static bool token_matches(ha_front *f, const char *v, size_t len)
{
    const char *tok = f->cfg->token;
    if (tok == NULL || v == NULL)
        return false;
    size_t tl = strlen(tok);
    if (len != 7 + tl || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    unsigned char diff = 0;
    for (size_t k = 0; k < tl; k++)
        diff |= (unsigned char)(v[7 + k] ^ tok[k]);
    return diff == 0;
}

/* True when the request carries "Authorization: Bearer <configured token>". */
static bool has_token(ha_front *f, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    return i >= 0 && token_matches(f, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

/* Parses verbose and exclude=... from the query. Returns -1 on a bad query. */
static int parse_query(h2o_req_t *req, ha_render_req *rr, ha_str *exclude)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp ? amp : end;
        size_t len = (size_t)(e - q);
        if ((len == 7 && memcmp(q, "verbose", 7) == 0) || (len > 8 && memcmp(q, "verbose=", 8) == 0)) {
            rr->format = HA_FMT_VERBOSE;
        } else if (len > 8 && memcmp(q, "exclude=", 8) == 0) {
            if (rr->nexclude == MAX_EXCLUDE)
                return -1;
            exclude[rr->nexclude].p = q + 8;
            exclude[rr->nexclude].len = len - 8;
            rr->nexclude++;
        }
        q = e + 1;
    }
    rr->exclude = exclude;
    return 0;
}

/* Finds the probe path matching path: an exact path of any probe first
 * (so /actuator/health/liveness is the liveness probe, not the check
 * "liveness" of /actuator/health), else "<probe path>/<check>". */
static int match_probe(ha_front *f, h2o_iovec_t path, ha_str *only)
{
    if (path.len > 1 && path.base[path.len - 1] == '/')
        path.len--; /* "/readyz/" is "/readyz" */
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        const ha_probe_conf *pc = &f->cfg->probes[pi];
        for (int k = 0; k < pc->npaths; k++)
            if (h2o_memis(path.base, path.len, pc->paths[k], strlen(pc->paths[k])))
                return pi;
    }
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        const ha_probe_conf *pc = &f->cfg->probes[pi];
        for (int k = 0; k < pc->npaths; k++) {
            size_t pl = strlen(pc->paths[k]);
            if (path.len > pl + 1 && memcmp(path.base, pc->paths[k], pl) == 0 && path.base[pl] == '/' &&
                memchr(path.base + pl + 1, '/', path.len - pl - 1) == NULL) {
                only->p = path.base + pl + 1;
                only->len = path.len - pl - 1;
                return pi;
            }
        }
    }
    return -1;
}

/* Finds the group path matching path (after no probe path did): "/groupz/
 * <group>", the group's own path, or either followed by "/<check>". Fills
 * group (and only) and returns 0, or -1 when path is no group's. A name
 * under /groupz/ is taken as given: an unknown one answers 404 later. */
static int match_group(const ha_front *f, h2o_iovec_t path, ha_str *group, ha_str *only)
{
    if (path.len > 1 && path.base[path.len - 1] == '/')
        path.len--;
    if (path.len > 8 && memcmp(path.base, "/groupz/", 8) == 0) {
        const char *name = path.base + 8, *end = path.base + path.len;
        const char *slash = memchr(name, '/', (size_t)(end - name));
        if (slash == name || (slash && (slash + 1 == end || memchr(slash + 1, '/', (size_t)(end - slash - 1)))))
            return -1;
        group->p = name;
        group->len = slash ? (size_t)(slash - name) : (size_t)(end - name);
        if (slash) {
            only->p = slash + 1;
            only->len = (size_t)(end - slash - 1);
        }
        return 0;
    }
    const ha_snapshot *s = f->snap;
    for (size_t g = 0; s && g < s->ngroups; g++) {
        const char *gp = s->groups[g].path;
        size_t pl = gp ? strlen(gp) : 0;
        if (pl == 0 || path.len < pl || memcmp(path.base, gp, pl) != 0)
            continue;
        if (path.len == pl) {
            group->p = s->groups[g].name;
            group->len = strlen(group->p);
            return 0;
        }
        if (path.base[pl] == '/' && path.len > pl + 1 && !memchr(path.base + pl + 1, '/', path.len - pl - 1)) {
            group->p = s->groups[g].name;
            group->len = strlen(group->p);
            only->p = path.base + pl + 1;
            only->len = path.len - pl - 1;
            return 0;
        }
    }
    return -1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    ha_front *f = ((front_handler *)self)->front;
    ha_render_req rr = {0};
    ha_str exclude[MAX_EXCLUDE];
    if (request_refused(req))
        return 0;
    h2o_iovec_t path = req->path_normalized;
    if (front_admin_route(path)) {
        ha_admin_ctx ax = {f->cfg, f->bridge, f->snap, has_token(f, req), f->shutdown_phase != 0, front_set_ready, f,
                           false, NULL, NULL, 0};
        override_state(f, &ax.not_ready, &ax.not_ready_reason);
        if (h2o_memis(path.base, path.len, H2O_STRLIT("/-/status"))) {
            const view_entry *v = status_extra(f);
            ax.status_extra = v->body;
            ax.status_extra_len = v->len;
        }
        return front_admin_handle(req, &ax);
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics")) || h2o_memis(path.base, path.len, H2O_STRLIT("/")) ||
        h2o_memis(path.base, path.len, H2O_STRLIT("/status"))) {
        serve_view(f, req, path.len == 8);
        return 0;
    }
    int pi = match_probe(f, req->path_normalized, &rr.only);
    if (pi < 0 && match_group(f, req->path_normalized, &rr.group, &rr.only) == 0)
        pi = HA_PI_HEALTH;
    if (pi < 0) {
        respond_error(req, 404, "not found");
        return 0;
    }
    rr.probe = pi;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        count_answer(f, &rr, 405);
        respond_error(req, 405, "method not allowed");
        return 0;
    }
    if (req->entity.base != NULL && req->entity.len > 0) {
        count_answer(f, &rr, 413);
        respond_error(req, 413, "probe requests take no body");
        return 0;
    }
    rr.format = HA_FMT_JSON;
    ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (ai >= 0 && h2o_strstr(req->headers.entries[ai].value.base, req->headers.entries[ai].value.len,
                              H2O_STRLIT("application/health+json")) != SIZE_MAX)
        rr.format = HA_FMT_HEALTH_JSON;
    if (parse_query(req, &rr, exclude) != 0) {
        count_answer(f, &rr, 400);
        respond_error(req, 400, "too many exclude parameters");
        return 0;
    }
    rr.full = trusted(f, req) || has_token(f, req);
    serve_probe(f, req, &rr);
    return 0;
}

/* --- watchdog, deadlines, shutdown ---------------------------------------- */

static void on_accept(uv_poll_t *h, int status, int events);
static int early_drain(ha_front *f);

/* Polls the listeners listener_pause stopped again. */
static void listeners_resume(ha_front *f)
{
    f->resume_at_ns = 0;
    for (int i = 0; i < f->nlisteners; i++) {
        front_listener *l = &f->listeners[i];
        if (l->paused && l->fd >= 0)
            uv_poll_start(&l->poll, UV_READABLE, on_accept);
        l->paused = false;
    }
}

static void close_listeners(ha_front *f)
{
    for (int i = 0; i < f->nlisteners; i++) {
        front_listener *l = &f->listeners[i];
        if (l->fd >= 0) {
            uv_close((uv_handle_t *)&l->poll, NULL); /* stops polling fd at once */
            close(l->fd);
            l->fd = -1;
        }
    }
}

/* How often the watchdog looks at the heartbeat: once a watchdog. That is
 * enough for the exact trip: work that began after a look is seen at the next
 * one, at most a watchdog later and so before it can reach the watchdog, and
 * that look schedules the next for the moment it would (watch_engine). An
 * idle agent's front wakes once a watchdog; its engine is not woken for it. */
static uint64_t watch_period_ns(const ha_front *f) { return f->cfg->watchdog_ns; }

/* Reads the engine's heartbeat at now: logs stall and recovery and ends the
 * waits a stalled engine cannot answer. Returns when to look next: a period
 * on, or the moment the engine's current work becomes a stall, whichever is
 * sooner, so a stall is seen when it reaches the watchdog, not later. */
static uint64_t watch_engine(ha_front *f, uint64_t now)
{
    uint64_t beat;
    uint64_t since = engine_busy_ns(f, now, &beat);
    uint64_t period = watch_period_ns(f);
    bool was = f->stalled_ns != 0;
    f->stalled_ns = since > f->cfg->watchdog_ns ? since : 0;
    if ((f->stalled_ns != 0) != was)
        f->views_epoch++; /* the page and the metrics show the stall */
    if (f->stalled_ns && !was)
        log_event(LOG_ERROR, NULL, "engine stalled for %llus: /livez fails until it recovers",
                  (unsigned long long)(since / HA_NS_PER_S));
    else if (!f->stalled_ns && was)
        log_event(LOG_INFO, NULL, "engine recovered");
    if ((f->stalled_ns != 0) != was)
        grpc_changed(f); /* liveness follows the stall */
    if (f->stalled_ns)
        waits_end_all(f); /* nothing more comes from the engine for now */
    uint64_t next = now + period;
    uint64_t trips = beat + f->cfg->watchdog_ns + HA_NS_PER_MS;
    if (beat != 0 && !f->stalled_ns && trips > now && trips < next)
        next = trips;
    return next;
}

static void on_tick(uv_timer_t *h);

/* Arms the tick to fire at `at` (monotonic ns), or within TICK_MS while a
 * shutdown is under way. */
static void tick_arm(ha_front *f, uint64_t at, uint64_t now)
{
    uint64_t ms = at > now ? (at - now + HA_NS_PER_MS - 1) / HA_NS_PER_MS : 1;
    if (f->shutdown_phase && ms > TICK_MS)
        ms = TICK_MS;
    uv_timer_start(&f->tick, on_tick, ms, 0);
}

/* The watchdog's look and the shutdown steps; re-arms itself. */
static void on_tick(uv_timer_t *h)
{
    ha_front *f = h->data;
    take_snapshot(f); /* one handed over quietly: which runs are in flight */
    uint64_t now = uv_hrtime();
    uint64_t next = watch_engine(f, now);
    if (now >= f->sweep_at_ns) {
        conns_sweep(f);
        f->sweep_at_ns = now + sweep_period_ns(f);
    }
    /* the sweep runs while there are connections to watch or memory to hand
     * back, so an idle agent does not wake for it */
    if ((f->conns != NULL || f->early != NULL || f->closed_since_trim) && f->sweep_at_ns < next)
        next = f->sweep_at_ns;
    if (f->resume_at_ns && now >= f->resume_at_ns)
        listeners_resume(f);
    if (f->resume_at_ns && f->resume_at_ns < next)
        next = f->resume_at_ns;
    if (f->shutdown_phase == 1 && now >= f->shutdown_at_ns) {
        log_event(LOG_INFO, NULL, "shutdown: closing listeners, finishing requests in flight");
        close_listeners(f);
        h2o_context_request_shutdown(&f->ctx);
        if (f->grpc)
            f->grpc_mod->close(f->grpc); /* GOAWAY: liveness served until now */
        f->shutdown_phase = 2;
        f->shutdown_at_ns = now + f->cfg->shutdown_timeout_ns;
    }
    if (f->shutdown_phase == 2 && (f->waits.head == NULL || now >= f->shutdown_at_ns)) {
        waits_end_all(f);
        /* early connections whose request came since the loop last polled
         * go to h2o with it (and are shut below), not closed unread */
        for (int i = 0; i < 64; i++)
            if (early_drain(f) < ACCEPT_BATCH)
                break;
        /* idle keep-alive connections would wait for their next request:
         * end their reading side, so h2o sees EOF and closes each one
         * after its response is out */
        for (front_conn *c = f->conns; c; c = c->next) {
            uv_os_fd_t fd;
            if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
                shutdown(fd, SHUT_RD);
        }
        while (f->early) /* no request came on them: nothing to finish */
            early_close(f, f->early);
        f->shutdown_phase = 3;
        if (f->shutdown_at_ns > now + HA_NS_PER_S)
            f->shutdown_at_ns = now + HA_NS_PER_S;
    }
    bool grpc_open = f->grpc && f->grpc_mod->nconns(f->grpc) > 0;
    if (f->shutdown_phase == 3 && ((f->conns == NULL && !grpc_open) || now >= f->shutdown_at_ns)) {
        f->shutdown_phase = 4;
        log_event(LOG_INFO, NULL, "shutdown: cancelling checks");
        uv_stop(f->loop);
        return;
    }
    tick_arm(f, next, now);
}

static void on_signal(uv_signal_t *h, int signum)
{
    ha_front *f = h->data;
    if (f->shutdown_phase) {
        /* at once: not even the engine thread is waited for (it may be
         * stuck in a script, the case the watchdog exists for) */
        log_event(LOG_WARN, NULL, "second signal %d: exiting now", signum);
        fflush(NULL);
        _exit(1);
    }
    f->shutdown_phase = 1;
    f->shutdown_at_ns = uv_hrtime() + f->cfg->shutdown_delay_ns;
    tick_arm(f, f->shutdown_at_ns, uv_hrtime()); /* the shutdown steps run every TICK_MS */
    if (f->snap)
        views_update(f); /* readiness now reads "shutting down" */
    char d[32];
    ha_duration_format(f->cfg->shutdown_delay_ns, d, sizeof d);
    log_event(LOG_INFO, NULL, "signal %d: /readyz now fails; still answering probes for %s", signum, d);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    ha_front *f = h->data;
    (void)signum;
    log_event(LOG_INFO, NULL, "SIGHUP: reloading the scripts");
    bridge_send(f->bridge, HA_MSG_RELOAD, 0, NULL, 0);
}

/* --- set-up ---------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    front_conn *c = (front_conn *)h;
    ha_front *f = c->front;
    assert(c->inflight == 0);
    if (c->counted) {
        addr_release(f, c->addr);
        f->nconns--;
    }
    f->closed_since_trim = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->front->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

/* The format an Accept value asks for (JSON unless it names health+json). */
static ha_format accept_format(const char *v, size_t len)
{
    return v != NULL && h2o_strstr(v, len, H2O_STRLIT("application/health+json")) != SIZE_MAX ? HA_FMT_HEALTH_JSON
                                                                                             : HA_FMT_JSON;
}

/* The IMF-fixdate of the current second, for the fast path's Date field;
 * recomputed once a second. */
_Static_assert(HA_FAST_DATE_LEN == HA_HTTP_DATE_LEN, "the fast path reserves room for ha_http_date");
static const char *fast_date(void)
{
    static time_t last = -1;
    static char text[HA_HTTP_DATE_LEN + 1];
    time_t now = time(NULL);
    if (now != last) {
        ha_http_date(now, text);
        last = now;
    }
    return text;
}

/* The connection-per-probe fast path (front_fast.h), on a connection just
 * accepted, before any handle exists for it: reads what the client has sent
 * so far into buf. Returns 1 when the request was answered from the cache
 * (the caller closes fd); 0 to go on with h2o, which must first be given the
 * *nread bytes read; -1 when the peer closed or failed (the caller closes).
 * peer: the address accept4 gave. */
static int fast_serve(ha_front *f, int fd, const struct sockaddr *peer, char *buf, size_t cap, size_t *nread)
{
    *nread = 0;
    ssize_t n = recv(fd, buf, cap, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (n == 0)
        return -1;
    *nread = (size_t)n;
    ha_fast_req q;
    ha_render_req rr = {0};
    if (f->snap == NULL || f->stalled_ns || f->shutdown_phase || !front_fast_parse(buf, (size_t)n, &q))
        return 0;
    rr.probe = match_probe(f, h2o_iovec_init(q.path, q.path_len), &rr.only);
    if (rr.probe < 0 || rr.only.p != NULL || uv_hrtime() >= f->fresh_until[rr.probe])
        return 0;
    rr.format = accept_format(q.accept, q.accept_len);
    rr.full = cidr_match(&f->cfg->trusted, peer) || token_matches(f, q.authorization, q.authorization_len);
    cache_entry *e = cache_get(f, &rr);
    front_metrics_count(&f->requests, rr.probe, e->http_status);
    if (e->fast_head.len == 0)
        front_fast_head(&e->fast_head, e->http_status, reason_phrase(e->http_status), e->content_type, e->len,
                        &e->fast_date_at);
    memcpy(e->fast_head.data + e->fast_date_at, fast_date(), HA_FAST_DATE_LEN);
    struct iovec iov[2] = {{e->fast_head.data, e->fast_head.len}, {e->body, q.head ? 0 : e->len}};
    /* a new connection's empty send buffer takes a probe answer whole; a
     * short or failed write leaves the client with a truncated answer, as
     * any connection failure would */
    if (writev(fd, iov, 2) < 0)
        log_event(LOG_DEBUG, NULL, "fast path: write failed: %s", strerror(errno));
    return 1;
}

/* Closes fd as a reset: the linger of 0 frees what the kernel holds for it
 * at once, and the client learns at once that it was refused. */
static void close_reset(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* The tick of an idle front sleeps a watchdog: wakes it for the sweep, now
 * that there is a connection to watch. */
static void sweep_soon(ha_front *f)
{
    uint64_t period = sweep_period_ns(f);
    if (uv_timer_get_due_in(&f->tick) > period / HA_NS_PER_MS) {
        uint64_t now = uv_hrtime();
        if (f->sweep_at_ns <= now || f->sweep_at_ns > now + period)
            f->sweep_at_ns = now + period;
        tick_arm(f, f->sweep_at_ns, now);
    }
}

/* Hands an accepted connection that the fast path did not answer to h2o:
 * its handle, its place in the caps, and the nread bytes already read. */
static void conn_start(ha_front *f, int fd, const uint8_t *addr, const struct sockaddr_storage *ss,
                       socklen_t sslen, const char *first, size_t nread)
{
    front_conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL) {
        close_reset(fd);
        return;
    }
    uv_tcp_init(f->loop, &conn->tcp);
    conn->front = f;
    conn->next = f->conns;
    if (f->conns)
        f->conns->prev = conn;
    f->conns = conn;
    memcpy(conn->addr, addr, 16);
    if (uv_tcp_open(&conn->tcp, fd) != 0) {
        close_reset(fd);
        uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
        return;
    }
    conn_count(f, conn);
    /* TCP_NODELAY is inherited from the listener (listener_open) */
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, on_conn_closed);
    if (nread > 0) {
        /* what the fast path read is the start of h2o's input */
        h2o_iovec_t room = h2o_buffer_reserve(&sock->input, nread);
        memcpy(room.base, first, nread);
        sock->input->size += nread;
        conn_track(conn, (const uint8_t *)first, nread); /* within one frame: cannot pass the bound */
    }
    h2o_socket_setpeername(sock, (struct sockaddr *)ss, sslen); /* h2o asks per request */
    sock->on_close.cb = conn_on_sock_disposed;
    sock->on_close.data = conn;
    conn->sock = sock;
    conn->progress_ms = uv_now(f->loop);
    h2o_accept(&f->accept_ctx, sock);
    conn_wrap_read(conn);
    sweep_soon(f);
}

/* Adds (op EPOLL_CTL_ADD) or re-arms (EPOLL_CTL_MOD) fd in the early set for
 * entry e, one shot: once it has fired the entry is ours alone, and a closed
 * descriptor that a forked child still holds reports nothing more. Returns
 * epoll_ctl's result. */
static int early_arm(ha_front *f, front_early *e, int fd, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.ptr = e};
    return epoll_ctl(f->early_epfd, op, fd, &ev);
}

/* Parks the connection accept4 gave, whose request has not come yet, until
 * its first bytes do (on_early). Counts it in the caps (conn_refused said it
 * may). since_ms: the loop time it counts its request_timeout from. Returns
 * false when it cannot be parked (no epoll set, no memory): then it is h2o's
 * to wait for. */
static bool early_park(ha_front *f, int fd, const uint8_t *addr, const struct sockaddr_storage *ss,
                       socklen_t sslen, uint64_t since_ms)
{
    if (f->early_epfd < 0)
        return false;
    front_early *e = f->early_free;
    if (e) {
        f->early_free = e->next;
        f->nearly_free--;
    } else if ((e = malloc(sizeof *e)) == NULL) {
        return false;
    }
    if (early_arm(f, e, fd, EPOLL_CTL_ADD) != 0) {
        early_recycle(f, e);
        return false;
    }
    e->fd = fd;
    e->sslen = sslen;
    e->since_ms = since_ms;
    memcpy(e->addr, addr, sizeof e->addr);
    memcpy(&e->ss, ss, sslen);
    e->next = NULL;
    e->prev = f->early_tail;
    if (f->early_tail)
        f->early_tail->next = e;
    else
        f->early = e;
    f->early_tail = e;
    addr_slot_of(f, addr)->n++;
    f->nconns++;
    sweep_soon(f);
    return true;
}

/* An early connection's descriptor fired: its request (or its end) came.
 * Answered by the fast path and closed, handed to h2o with what was read, or,
 * when nothing was there after all, armed again. */
static void early_ready(ha_front *f, front_early *e)
{
    char first[HA_FAST_MAX_REQUEST + 1];
    size_t nread;
    int fr = fast_serve(f, e->fd, (const struct sockaddr *)&e->ss, first, sizeof first, &nread);
    if (fr == 0 && nread == 0 && early_arm(f, e, e->fd, EPOLL_CTL_MOD) == 0)
        return;
    if (fr != 0)
        close(e->fd);
    else /* conn_start counts it before early_drop lets this count go */
        conn_start(f, e->fd, e->addr, &e->ss, e->sslen, first, nread);
    early_drop(f, e);
}

/* Takes what fired in the epoll set of early connections, at most a batch.
 * Returns how many. */
static int early_drain(ha_front *f)
{
    struct epoll_event ev[ACCEPT_BATCH];
    int n = f->early_epfd >= 0 ? epoll_wait(f->early_epfd, ev, ACCEPT_BATCH, 0) : 0;
    for (int i = 0; i < n; i++)
        early_ready(f, ev[i].data.ptr);
    return n > 0 ? n : 0;
}

/* The epoll set of early connections is readable. */
static void on_early(uv_poll_t *h, int status, int events)
{
    (void)events;
    if (status == 0)
        early_drain(h->data);
}

/* Opens the epoll set of early connections, watched by the loop. Without it
 * (no descriptor) they go to h2o. */
static void early_open(ha_front *f)
{
    f->early_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (f->early_epfd < 0)
        return;
    if (uv_poll_init(f->loop, &f->early_poll, f->early_epfd) != 0) {
        close(f->early_epfd);
        f->early_epfd = -1;
        return;
    }
    f->early_poll.data = f;
    uv_poll_start(&f->early_poll, UV_READABLE, on_early);
}

/* Closes every early connection and their epoll set (front_free). */
static void early_close_all(ha_front *f)
{
    while (f->early)
        early_close(f, f->early);
    while (f->early_free) {
        front_early *e = f->early_free;
        f->early_free = e->next;
        free(e);
    }
    f->nearly_free = 0;
    if (f->early_epfd >= 0) {
        uv_close((uv_handle_t *)&f->early_poll, NULL);
        close(f->early_epfd);
        f->early_epfd = -1;
    }
}

/* When a connection that came with nothing to read was established, as a
 * loop time: on a deferring listener, one whose SYN-ACK the kernel sent again
 * (the deferral ends with that resend, TCP_TIMEOUT_INIT after the first, and
 * the connection inherits its count as total_retrans) is DEFER_ACCEPT_MS
 * older than its accept; any other, such as one a SYN cookie let in, is
 * taken as new. So a silent connection's request_timeout runs from its
 * handshake, as on a listener without the option. Two approximations: a
 * connection whose handshake was slow (a SYN-ACK lost) may come with a resend
 * and no wait, and is then taken as up to DEFER_ACCEPT_MS older than it is
 * (listener_open defers only when request_timeout is at least twice that, so
 * it keeps at least half); and the early list stays in accept order, so an
 * entry behind one established later is swept up to DEFER_ACCEPT_MS late. */
static uint64_t early_since(ha_front *f, int fd, bool deferred)
{
    uint64_t now = uv_now(f->loop);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (deferred && now > DEFER_ACCEPT_MS && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        ti.tcpi_total_retrans > 0)
        return now - DEFER_ACCEPT_MS;
    return now;
}

/* One connection accept4 just gave: refused over a cap (reset at once: left
 * in the backlog it would hold the queue that kubelet's connection waits
 * in), answered and closed by the fast path, or handed to h2o. deferred:
 * it comes from a listener with TCP_DEFER_ACCEPT. */
static void accepted(ha_front *f, int fd, const struct sockaddr_storage *ss, socklen_t sslen, bool deferred)
{
    uint8_t addr[16];
    addr_key(ss, addr);
    int refused = conn_refused(f, addr);
    if (refused >= 0) {
        close_reset(fd);
        conn_report(f, refused, addr);
        return;
    }
    char first[HA_FAST_MAX_REQUEST + 1]; /* one more: a larger request is h2o's */
    size_t nread;
    int fr = fast_serve(f, fd, (const struct sockaddr *)ss, first, sizeof first, &nread);
    if (fr != 0) {
        close(fd);
        return;
    }
    if (nread == 0 && early_park(f, fd, addr, ss, sslen, early_since(f, fd, deferred)))
        return;
    conn_start(f, fd, addr, ss, sslen, first, nread);
}

/* Out of descriptors: takes the pending connections off the queue with the
 * spare descriptor and resets them, so the clients learn now rather than at
 * their timeout and the listener stops reading as ready; the caps keep this
 * rare (conns_init leaves a quarter of the descriptors). Returns false when
 * there is no spare to do it with (the limit fell below it, or another
 * thread took its number while it was given up). */
static bool accept_shed(ha_front *f, int lfd)
{
    if (f->spare_fd < 0 && (f->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    close(f->spare_fd);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
        if (fd < 0)
            break;
        close_reset(fd);
        uint8_t addr[16];
        addr_key(&ss, addr);
        conn_report(f, END_NO_FDS, addr);
    }
    f->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return true;
}

/* No descriptor to accept or shed with: stops polling l for
 * ACCEPT_PAUSE_NS (the tick resumes it), where a listener that stays
 * readable would spin the loop. Its clients wait in the backlog. */
static void listener_pause(ha_front *f, front_listener *l)
{
    uint64_t now = uv_hrtime();
    uv_poll_stop(&l->poll);
    l->paused = true;
    if (f->resume_at_ns == 0) {
        f->resume_at_ns = now + ACCEPT_PAUSE_NS;
        log_event(LOG_WARN, NULL, "out of file descriptors and none spare: not accepting for %ds",
                  (int)(ACCEPT_PAUSE_NS / HA_NS_PER_S));
    }
    if (uv_timer_get_due_in(&f->tick) > ACCEPT_PAUSE_NS / HA_NS_PER_MS)
        tick_arm(f, f->resume_at_ns, now);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    front_listener *l = h->data;
    ha_front *f = l->front;
    (void)events;
    if (status != 0)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accepted(f, fd, &ss, sslen, l->deferred);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if ((errno == EMFILE || errno == ENFILE) && !accept_shed(f, l->fd))
            listener_pause(f, l);
        break; /* EAGAIN: the queue is empty */
    }
}

/* Whether listeners may defer accept: request_timeout is at least twice
 * DEFER_ACCEPT_MS (early_since), and SYN cookies are on. Deferred connections
 * wait in the kernel's queue of half-open ones (the backlog), where the caps
 * do not reach them yet; one address that fills it with silent connections
 * only pushes the others to SYN cookies, which are accepted at once, while
 * without cookies their SYNs would be dropped. Unknown (no /proc): no. */
static bool defer_accept_ok(const ha_config *cfg)
{
    if (cfg->request_timeout_ns < 2 * DEFER_ACCEPT_MS * HA_NS_PER_MS)
        return false;
    int fd = open("/proc/sys/net/ipv4/tcp_syncookies", O_RDONLY | O_CLOEXEC);
    char c = '0';
    if (fd >= 0) {
        if (read(fd, &c, 1) != 1)
            c = '0';
        close(fd);
    }
    return c == '1' || c == '2';
}

/* Opens a listening socket on ss, polled for accept: SO_REUSEADDR, both
 * families on an IPv6 address, TCP_NODELAY, which its connections inherit on
 * Linux (no setsockopt per connection), and TCP_DEFER_ACCEPT when
 * defer_accept_ok says so. That option has the kernel hand over a connection
 * once its first bytes are there (a silent one after DEFER_ACCEPT_MS, see
 * early_since): the front is woken once per connection,
 * not for the handshake and again for the request, and the fast path finds
 * the request at accept. Under wrk -c50 with Connection: close that took the
 * agent's context switches from 0.45 to 0.05 a probe and its probes a second
 * by about a quarter, most of it the client's CPU no longer spent waking the
 * front; the kubelet-like client lost nothing (tests/bench/conn_close.sh,
 * every server in turn). A kernel without the option serves as before.
 * Returns 0 or a libuv error (nothing left open). */
static int listener_open(ha_front *f, front_listener *l, const struct sockaddr_storage *ss)
{
    int on = 1, off = 0, r = 0;
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    l->front = f;
    l->deferred = false;
    l->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return uv_translate_sys_error(errno);
    if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        (ss->ss_family == AF_INET6 && setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) ||
        setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0 ||
        bind(l->fd, (const struct sockaddr *)ss, len) != 0 || listen(l->fd, 1024) != 0)
        r = uv_translate_sys_error(errno);
    int defer_s = DEFER_ACCEPT_MS / 1000;
    if (r == 0 && defer_accept_ok(f->cfg))
        l->deferred = setsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof defer_s) == 0;
    if (r == 0)
        r = uv_poll_init_socket(f->loop, &l->poll, l->fd);
    if (r != 0) {
        close(l->fd);
        l->fd = -1;
        return r;
    }
    l->poll.data = l;
    r = uv_poll_start(&l->poll, UV_READABLE, on_accept);
    if (r != 0) {
        uv_close((uv_handle_t *)&l->poll, NULL);
        close(l->fd);
        l->fd = -1;
    }
    return r;
}

/* Start-up lines on who may do what: admin off without a token, and any
 * trusted network wider than the loopback host addresses (in a mesh,
 * 127.0.0.0/8 holds every peer: Istio delivers them from 127.0.0.6). */
static void log_access(const ha_config *cfg)
{
    if (cfg->token == NULL)
        log_event(LOG_INFO, NULL, "admin endpoints (/-/) are off: no token configured (token, token_file, "
                                  "HEALTHAGENT_TOKEN)");
    for (int i = 0; i < cfg->trusted.n; i++) {
        const ha_cidr *n = &cfg->trusted.nets[i];
        static const uint8_t lo6[16] = {[15] = 1};
        static const uint8_t lo4[4] = {127, 0, 0, 1};
        if ((n->family == AF_INET && n->prefix == 32 && memcmp(n->addr, lo4, 4) == 0) ||
            (n->family == AF_INET6 && n->prefix == 128 && memcmp(n->addr, lo6, 16) == 0))
            continue;
        char a[INET6_ADDRSTRLEN];
        if (uv_inet_ntop(n->family, n->addr, a, sizeof a) != 0)
            snprintf(a, sizeof a, "?");
        log_event(LOG_WARN, NULL, "trusted_networks: %s/%d is wider than 127.0.0.1/32 and ::1: every client "
                  "there sees check outputs and details", a, n->prefix);
    }
}

/* Parses "host:port" or "[v6]:port" into ss. Returns 0 or a libuv error. */
static int parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return UV_EINVAL;
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return UV_EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (*endp || port < 0 || port > 65535)
        return UV_EINVAL;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss);
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
}

ha_front *front_new(uv_loop_t *loop, const ha_config *cfg, ha_bridge *bridge, char *err, size_t errlen)
{
    ha_front *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "not enough memory");
        return NULL;
    }
    f->loop = loop;
    f->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    f->early_epfd = -1;
    f->probe_ok_stalled = -1;
    f->cfg = cfg;
    f->bridge = bridge;
    h2o_config_init(&f->globalconf);
    f->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("healthagent"));
    f->globalconf.max_request_entity_size = 16 * 1024;
    f->globalconf.http1.req_timeout = cfg->request_timeout_ns / HA_NS_PER_MS;
    f->globalconf.http1.upgrade_to_http2 = 1;
    f->globalconf.http2.idle_timeout = cfg->idle_timeout_ns / HA_NS_PER_MS;
    f->globalconf.http2.graceful_shutdown_timeout = cfg->shutdown_timeout_ns / HA_NS_PER_MS;
    h2o_hostconf_t *host = h2o_config_register_host(&f->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    front_handler *fh = (front_handler *)h2o_create_handler(path, sizeof *fh);
    fh->super.on_req = on_req;
    fh->front = f;
    h2o_context_init(&f->ctx, loop, &f->globalconf);
    f->accept_ctx.ctx = &f->ctx;
    f->accept_ctx.hosts = f->globalconf.hosts;
    if (conns_init(f) != 0) {
        snprintf(err, errlen, "not enough memory");
        front_free(f);
        return NULL;
    }

    for (int i = 0; i < cfg->nlisten; i++) {
        struct sockaddr_storage ss;
        int r = parse_addr(cfg->listen[i], &ss);
        if (r == 0 && (r = listener_open(f, &f->listeners[f->nlisteners], &ss)) == 0)
            f->nlisteners++;
        if (r != 0) {
            snprintf(err, errlen, "listen %s: %s", cfg->listen[i],
                     r == UV_EADDRINUSE ? "address already in use" : uv_strerror(r));
            front_free(f);
            return NULL;
        }
    }
    if (cfg->ngrpc_listen > 0) {
        char why[600];
        if ((f->grpc_mod = front_grpc_load(why, sizeof why)) == NULL ||
            (f->grpc = f->grpc_mod->start(f, loop, cfg, why, sizeof why)) == NULL) {
            snprintf(err, errlen, "%s", why);
            front_free(f);
            return NULL;
        }
    }
    early_open(f);
    uv_async_init(loop, &f->wakeup, on_wakeup);
    f->wakeup.data = f;
    bridge->front_wakeup = &f->wakeup;
    uv_timer_init(loop, &f->tick);
    f->tick.data = f;
    tick_arm(f, uv_hrtime() + watch_period_ns(f), uv_hrtime());
    uv_timer_init(loop, &f->deadline);
    f->deadline.data = f;
    f->deadline_at_ns = UINT64_MAX;
    f->age_next_ns = UINT64_MAX;
    uv_signal_init(loop, &f->sigterm);
    uv_signal_init(loop, &f->sigint);
    f->sigterm.data = f->sigint.data = f;
    uv_signal_start(&f->sigterm, on_signal, SIGTERM);
    uv_signal_start(&f->sigint, on_signal, SIGINT);
    uv_signal_init(loop, &f->sighup);
    f->sighup.data = f;
    uv_signal_start(&f->sighup, on_sighup, SIGHUP);
    conns_log(f);
    log_access(cfg);
    return f;
}

int front_run(ha_front *f)
{
    /* serve nothing before the engine's first snapshot (it comes within a
     * millisecond): without it /startupz would find no check and pass */
    for (int i = 0; i < 2000 && f->snap == NULL; i++) {
        ha_snapshot *s = bridge_take(f->bridge);
        if (s) {
            f->snap = s;
            if (absorb_snapshot(f, NULL) != 0) {
                f->snap = NULL;
                snapshot_free(s);
            }
        } else {
            uv_sleep(1);
        }
    }
    uv_run(f->loop, UV_RUN_DEFAULT);
    return f->exit_code;
}

static void close_if_open(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

void front_free(ha_front *f)
{
    if (f == NULL)
        return;
    close_listeners(f);
    early_close_all(f);
    if (f->spare_fd >= 0)
        close(f->spare_fd);
    if (f->grpc)
        f->grpc_mod->free(f->grpc); /* cancels its waits first */
    f->grpc = NULL;
    if (f->bridge->front_wakeup == &f->wakeup)
        f->bridge->front_wakeup = NULL;
    close_if_open((uv_handle_t *)&f->wakeup);
    close_if_open((uv_handle_t *)&f->tick);
    close_if_open((uv_handle_t *)&f->deadline);
    close_if_open((uv_handle_t *)&f->sigterm);
    close_if_open((uv_handle_t *)&f->sigint);
    close_if_open((uv_handle_t *)&f->sighup);
    /* requests still waiting are left to the process exit: forget them,
     * so that their pools' dispose finds nothing to cancel */
    while (f->waits.head)
        wait_forget(f->waits.head);
    while (f->due.head)
        wait_forget(f->due.head);
    for (int pi = 0; pi < HA_NPROBES; pi++)
        for (int fm = 0; fm < HA_NFORMATS; fm++)
            for (int k = 0; k < 2; k++)
                cache_clear(&f->cache[pi][fm][k]);
    gviews_free(f);
    view_clear(&f->metrics_view);
    front_metrics_memo_free(f->metrics_memo, &metrics_mem);
    f->metrics_memo = NULL;
    view_clear(&f->page_view[0]);
    view_clear(&f->page_view[1]);
    view_clear(&f->status_view);
    buf_free(&f->render);
    /* h2o 2.2.5 leaves the graceful-shutdown timer of HTTP/2 linked after
     * h2o_context_request_shutdown; disposing asserts it is not */
    if (h2o_timeout_is_linked(&f->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&f->ctx.http2._graceful_shutdown_timeout);
    if (f->conns) {
        /* connections h2o still owns hold timers in the context: leave both
         * to the process exit rather than dispose under them */
        int n = 0;
        for (front_conn *c = f->conns; c; c = c->next)
            n++;
        log_event(LOG_WARN, NULL, "%d client connection(s) still open at exit", n);
    } else if (f->ctx.loop) {
        h2o_context_dispose(&f->ctx);
    }
    h2o_config_dispose(&f->globalconf);
    snapshot_free(f->snap);
    free(f->requested);
    free(f->age);
    free(f->mark);
    free(f->dep_stack);
    free(f->pending_reason);
    if (f->addrs)
        munmap(f->addrs, (f->addr_mask + 1) * sizeof *f->addrs);
    free(f);
}
