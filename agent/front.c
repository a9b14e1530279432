/* front.c: listeners, routing, the response cache, waiting probes, the
 * engine watchdog and the shutdown sequence (see front.h). */
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "front.h"
#include "front_admin.h"
#include "front_render.h"
#include "log.h"

#define TICK_MS 50                       /* watchdog and waiter deadlines */
#define WAIT_MARGIN_NS (100 * HA_NS_PER_MS) /* past a check's timeout before a probe gives up */
#define MAX_EXCLUDE 32

/* A prebuilt answer: body in h2o shared memory, linked into each request
 * pool that sends it, so replacing it never frees a buffer still in flight. */
typedef struct {
    char *body;          /* h2o_mem_alloc_shared'd, or NULL when not built */
    size_t len;
    int http_status;
    const char *content_type;
} cache_entry;

typedef struct waiter waiter;

/* An accepted connection: the libuv handle h2o reads and writes, linked
 * so that shutdown can end the idle ones. */
typedef struct front_conn {
    uv_tcp_t tcp;                     /* first: h2o's close callback gets it */
    struct front_conn *next, *prev;
    struct ha_front *front;
} front_conn;

struct ha_front {
    uv_loop_t *loop;                  /* not owned */
    const ha_config *cfg;             /* not owned */
    ha_bridge *bridge;                /* not owned */
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listeners[HA_MAX_LISTEN];
    int nlisteners;
    uv_async_t wakeup;                /* a snapshot arrived */
    uv_timer_t tick;                  /* watchdog, waiter deadlines, shutdown steps */
    uv_signal_t sigterm, sigint;
    uv_signal_t sighup;               /* reload the scripts */
    ha_snapshot *snap;                /* newest snapshot, owned; NULL before the first */
    cache_entry cache[HA_NPROBES][HA_NFORMATS][2]; /* [probe][format][full] */
    uint64_t fresh_until[HA_NPROBES]; /* monotonic: every check of the probe fresh until then */
    uint64_t hash_full[HA_NPROBES];   /* what the full views show, to keep the cache across snapshots */
    uint64_t hash_names[HA_NPROBES];  /* what the names-only views show */
    unsigned char *requested;         /* per snapshot check: a run was asked for */
    waiter *waiters;                  /* probes waiting for results */
    uint64_t stalled_ns;              /* > 0: engine stalled that long */
    int shutdown_phase;               /* 0 serving, 1 draining (readyz 503), 2 closing,
                                         3 ending connections, 4 done */
    front_conn *conns;                /* open client connections */
    uint64_t shutdown_at_ns;          /* when the current phase ends */
    uint64_t override_sent;           /* overrides queued for the engine so far */
    bool pending_ready;               /* the last one: shown until a snapshot carries it */
    char *pending_reason;             /* owned, may be NULL */
    int exit_code;
};

typedef struct {
    h2o_handler_t super;
    ha_front *front;
} front_handler;

typedef struct {
    const char *name;   /* in the request pool */
    size_t len;
    uint64_t runs;      /* runs when the probe started waiting */
} wait_item;

struct waiter {
    waiter *next, *prev;
    ha_front *front;
    h2o_req_t *req;     /* NULL once answered or disposed */
    ha_render_req rr;
    ha_str exclude[MAX_EXCLUDE];
    wait_item *items;
    size_t nitems;
    uint64_t deadline_ns;
    bool head;
};

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

/* Sends a body built now: copied into the request pool. */
static void respond_copy(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    char *p = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(p, body, len);
    respond(req, status, ctype, p, len);
}

static void respond_error(h2o_req_t *req, int status, const char *msg)
{
    ha_buf b = HA_BUF_INIT;
    buf_adds(&b, "{\"error\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_adds(&b, "}");
    respond_copy(req, status, "application/json", b.data, b.len);
    buf_free(&b);
}

/* --- snapshot bookkeeping ------------------------------------------------- */

static void cache_clear(cache_entry *e)
{
    if (e->body)
        h2o_mem_release_shared(e->body);
    e->body = NULL;
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 1099511628211ull; }

static uint64_t mix_str(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = mix(h, (unsigned char)*s);
    return mix(h, 0);
}

/* Recomputes freshness and view hashes per probe; drops cache entries whose
 * view changed. */
static void absorb_snapshot(ha_front *f)
{
    const ha_snapshot *s = f->snap;
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        unsigned mask = ha_probe_mask(pi);
        uint64_t fresh = UINT64_MAX;
        uint64_t hn = mix(1469598103934665603ull, s->ready_override);
        hn = mix_str(hn, s->override_reason);
        uint64_t hf = mix_str(hn, s->load_error);
        hf = mix(hf, s->generation); /* a reloaded check restarts its runs count */
        for (size_t i = 0; i < s->n; i++) {
            const ha_snap_check *c = &s->checks[i];
            if (!(c->probes & mask))
                continue;
            if (c->expires_ns < fresh)
                fresh = c->expires_ns;
            hn = mix_str(hn, c->name);
            hn = mix(hn, (uint64_t)c->status * 2 + c->critical);
            hf = mix_str(hf, c->name);
            hf = mix(hf, (uint64_t)c->status * 2 + c->critical);
            hf = mix(hf, c->runs);
        }
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
    free(f->requested);
    f->requested = calloc(s->n ? s->n : 1, 1);
}

static void waiters_recheck(ha_front *f);

/* Shows the override queued last in f->snap when the engine has not applied
 * it yet: an operator's PUT /-/ready takes effect on the very next probe. */
static void patch_override(ha_front *f)
{
    ha_snapshot *s = f->snap;
    if (s == NULL || s->override_seq >= f->override_sent)
        return;
    s->ready_override = !f->pending_ready;
    free(s->override_reason);
    s->override_reason = f->pending_reason ? strdup(f->pending_reason) : NULL;
}

/* ha_admin_ctx.set_ready: see front_admin.h. */
static int front_set_ready(void *fp, bool ready, const char *reason, size_t len)
{
    ha_front *f = fp;
    char *copy = NULL;
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
    if (f->snap) {
        patch_override(f);
        absorb_snapshot(f); /* drops the cached answers that showed the old state */
    }
    return 0;
}

static void on_wakeup(uv_async_t *h)
{
    ha_front *f = h->data;
    ha_snapshot *s = bridge_take(f->bridge);
    if (s == NULL)
        return;
    snapshot_free(f->snap);
    f->snap = s;
    patch_override(f);
    absorb_snapshot(f);
    waiters_recheck(f);
}

/* --- rendering ------------------------------------------------------------ */

static void render_and_send(ha_front *f, h2o_req_t *req, ha_render_req *rr)
{
    static ha_snapshot empty;
    ha_render_out out = {0};
    const ha_snapshot *s = f->snap ? f->snap : &empty;
    rr->now_ns = uv_hrtime();
    rr->stalled_ns = f->stalled_ns;
    rr->shutdown = f->shutdown_phase ? "shutting down" : NULL;
    if (f->snap == NULL)
        rr->shutdown = rr->shutdown ? rr->shutdown : "starting";
    if (front_render(s, &f->cfg->probes[rr->probe], rr, &out) != 0) {
        buf_free(&out.body);
        respond_error(req, 404, "no such check in this probe");
        return;
    }
    respond_copy(req, out.http_status, out.content_type, buf_cstr(&out.body), out.body.len);
    buf_free(&out.body);
}

/* Answers from the cache entry, building it first if needed. */
static void send_cached(ha_front *f, h2o_req_t *req, ha_render_req *rr)
{
    cache_entry *e = &f->cache[rr->probe][rr->format][rr->full];
    if (e->body == NULL) {
        ha_render_out out = {0};
        rr->now_ns = uv_hrtime();
        front_render(f->snap, &f->cfg->probes[rr->probe], rr, &out);
        e->body = h2o_mem_alloc_shared(NULL, out.body.len + 1, NULL);
        memcpy(e->body, buf_cstr(&out.body), out.body.len + 1);
        e->len = out.body.len;
        e->http_status = out.http_status;
        e->content_type = out.content_type;
        buf_free(&out.body);
    }
    h2o_mem_link_shared(&req->pool, e->body);
    respond(req, e->http_status, e->content_type, e->body, e->len);
}

/* --- waiting for stale checks --------------------------------------------- */

static void waiter_unlink(waiter *w)
{
    ha_front *f = w->front;
    if (w->prev)
        w->prev->next = w->next;
    else if (f->waiters == w)
        f->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

/* Pool dispose: the client went away or the response completed. */
static void waiter_dispose(void *p)
{
    waiter *w = p;
    if (w->req) {
        waiter_unlink(w);
        w->req = NULL;
    }
}

static bool waiter_satisfied(ha_front *f, waiter *w)
{
    uint64_t now = uv_hrtime();
    for (size_t i = 0; i < w->nitems; i++) {
        int k = snapshot_find(f->snap, w->items[i].name, w->items[i].len);
        if (k < 0)
            continue; /* removed by a reload */
        const ha_snap_check *c = &f->snap->checks[k];
        if (c->runs < w->items[i].runs)
            w->items[i].runs = 0; /* a reload redefined it: its first result will do */
        if (c->runs > w->items[i].runs || (c->runs && c->expires_ns > now) || c->not_before_ns > now)
            continue;
        return false;
    }
    return true;
}

static void waiter_answer(waiter *w, bool give_up)
{
    h2o_req_t *req = w->req;
    waiter_unlink(w);
    w->req = NULL;
    w->rr.give_up = give_up;
    render_and_send(w->front, req, &w->rr);
}

static void waiters_recheck(ha_front *f)
{
    waiter *w = f->waiters;
    while (w) {
        waiter *next = w->next;
        if (waiter_satisfied(f, w))
            waiter_answer(w, false);
        w = next;
    }
}

/* Checks of the request that need a run before answering; asks the engine
 * for them. Returns the number found; items (in the pool) lists them. */
static size_t collect_stale(ha_front *f, h2o_req_t *req, const ha_render_req *rr, wait_item **items,
                            uint64_t *max_timeout)
{
    const ha_snapshot *s = f->snap;
    uint64_t now = uv_hrtime();
    unsigned mask = ha_probe_mask(rr->probe);
    size_t n = 0;
    *items = NULL;
    *max_timeout = 0;
    for (size_t i = 0; i < s->n; i++) {
        const ha_snap_check *c = &s->checks[i];
        if (!(c->probes & mask))
            continue;
        if (rr->only.p && (strlen(c->name) != rr->only.len || memcmp(c->name, rr->only.p, rr->only.len) != 0))
            continue;
        bool excluded = false;
        for (size_t e = 0; e < rr->nexclude; e++)
            excluded |= strlen(c->name) == rr->exclude[e].len &&
                        memcmp(c->name, rr->exclude[e].p, rr->exclude[e].len) == 0;
        /* a fresh result is served even while a background refresh runs */
        if (excluded || c->not_before_ns > now || (c->runs && c->expires_ns > now))
            continue;
        if (rr->probe == HA_PI_LIVENESS && c->runs == 0) {
            /* liveness never waits for a first result (it reads as passing) */
            if (!c->running && !f->requested[i]) {
                f->requested[i] = 1;
                bridge_send(f->bridge, HA_MSG_RUN, 0, c->name, strlen(c->name));
            }
            continue;
        }
        if (*items == NULL)
            *items = h2o_mem_alloc_pool(&req->pool, sizeof(wait_item) * s->n);
        (*items)[n].name = c->name; /* copied below: the snapshot may go */
        (*items)[n].len = strlen(c->name);
        (*items)[n].runs = c->runs;
        char *copy = h2o_mem_alloc_pool(&req->pool, (*items)[n].len + 1);
        memcpy(copy, c->name, (*items)[n].len + 1);
        (*items)[n].name = copy;
        n++;
        if (c->timeout_ns > *max_timeout)
            *max_timeout = c->timeout_ns;
        if (!c->running && !f->requested[i]) {
            f->requested[i] = 1;
            bridge_send(f->bridge, HA_MSG_RUN, 0, c->name, strlen(c->name));
        }
    }
    return n;
}

/* Serves a probe request: from the cache when every check is fresh, else
 * after the stale ones have run (or their deadline passed). */
static void serve_probe(ha_front *f, h2o_req_t *req, ha_render_req *rr)
{
    uint64_t now = uv_hrtime();
    if (f->snap == NULL || f->stalled_ns || f->shutdown_phase) {
        render_and_send(f, req, rr);
        return;
    }
    if (!rr->only.p && rr->nexclude == 0 && now < f->fresh_until[rr->probe]) {
        send_cached(f, req, rr);
        return;
    }
    wait_item *items;
    uint64_t max_timeout;
    size_t n = collect_stale(f, req, rr, &items, &max_timeout);
    if (n == 0) {
        if (!rr->only.p && rr->nexclude == 0)
            send_cached(f, req, rr);
        else
            render_and_send(f, req, rr);
        return;
    }
    waiter *w = h2o_mem_alloc_shared(&req->pool, sizeof *w, waiter_dispose);
    memset(w, 0, sizeof *w);
    w->front = f;
    w->req = req;
    w->rr = *rr;
    for (size_t i = 0; i < rr->nexclude; i++)
        w->exclude[i] = rr->exclude[i];
    w->rr.exclude = w->exclude;
    w->items = items;
    w->nitems = n;
    w->deadline_ns = now + max_timeout + WAIT_MARGIN_NS;
    w->next = f->waiters;
    if (f->waiters)
        f->waiters->prev = w;
    f->waiters = w;
}

/* --- routing -------------------------------------------------------------- */

static bool trusted(ha_front *f, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    return len > 0 && cidr_match(&f->cfg->trusted, (struct sockaddr *)&ss);
}

/* True when the request carries "Authorization: Bearer <configured token>".
 * The comparison takes the same time wherever the first difference is. */
static bool has_token(ha_front *f, h2o_req_t *req)
{
    const char *tok = f->cfg->token;
    if (tok == NULL)
        return false;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t tl = strlen(tok);
    if (v.len != 7 + tl || strncasecmp(v.base, "Bearer ", 7) != 0)
        return false;
    unsigned char diff = 0;
    for (size_t k = 0; k < tl; k++)
        diff |= (unsigned char)(v.base[7 + k] ^ tok[k]);
    return diff == 0;
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

/* Finds the probe path matching path: exact, or "<probe path>/<check>". */
static int match_probe(ha_front *f, h2o_iovec_t path, ha_str *only)
{
    for (int pi = 0; pi < HA_NPROBES; pi++) {
        const ha_probe_conf *pc = &f->cfg->probes[pi];
        for (int k = 0; k < pc->npaths; k++) {
            size_t pl = strlen(pc->paths[k]);
            if (path.len < pl || memcmp(path.base, pc->paths[k], pl) != 0)
                continue;
            if (path.len == pl || (path.len == pl + 1 && path.base[pl] == '/'))
                return pi;
            if (path.base[pl] == '/' && memchr(path.base + pl + 1, '/', path.len - pl - 1) == NULL) {
                only->p = path.base + pl + 1;
                only->len = path.len - pl - 1;
                return pi;
            }
        }
    }
    return -1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    ha_front *f = ((front_handler *)self)->front;
    ha_render_req rr = {0};
    ha_str exclude[MAX_EXCLUDE];
    if (front_admin_route(req->path_normalized)) {
        ha_admin_ctx ax = {f->cfg, f->bridge, f->snap, trusted(f, req), has_token(f, req), f->shutdown_phase != 0,
                           front_set_ready, f};
        return front_admin_handle(req, &ax);
    }
    int pi = match_probe(f, req->path_normalized, &rr.only);
    if (pi < 0) {
        respond_error(req, 404, "not found");
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        respond_error(req, 405, "method not allowed");
        return 0;
    }
    if (req->entity.base != NULL && req->entity.len > 0) {
        respond_error(req, 413, "probe requests take no body");
        return 0;
    }
    rr.probe = pi;
    rr.format = HA_FMT_JSON;
    ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (ai >= 0 && h2o_strstr(req->headers.entries[ai].value.base, req->headers.entries[ai].value.len,
                              H2O_STRLIT("application/health+json")) != SIZE_MAX)
        rr.format = HA_FMT_HEALTH_JSON;
    if (parse_query(req, &rr, exclude) != 0) {
        respond_error(req, 400, "too many exclude parameters");
        return 0;
    }
    rr.full = trusted(f, req) || has_token(f, req);
    serve_probe(f, req, &rr);
    return 0;
}

/* --- watchdog, deadlines, shutdown ---------------------------------------- */

static void close_listeners(ha_front *f)
{
    for (int i = 0; i < f->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&f->listeners[i]))
            uv_close((uv_handle_t *)&f->listeners[i], NULL);
}

static void on_tick(uv_timer_t *h)
{
    ha_front *f = h->data;
    uint64_t now = uv_hrtime();
    uint64_t beat = atomic_load_explicit(&f->bridge->heartbeat_ns, memory_order_relaxed);
    uint64_t since = now > beat ? now - beat : 0;
    bool was = f->stalled_ns != 0;
    f->stalled_ns = since > f->cfg->watchdog_ns ? since : 0;
    if (f->stalled_ns && !was)
        log_event(LOG_ERROR, NULL, "engine stalled for %llus: /livez fails until it recovers",
                  (unsigned long long)(since / HA_NS_PER_S));
    else if (!f->stalled_ns && was)
        log_event(LOG_INFO, NULL, "engine recovered");
    for (waiter *w = f->waiters, *next; w; w = next) {
        next = w->next;
        if (now >= w->deadline_ns || f->stalled_ns)
            waiter_answer(w, true);
    }
    if (f->shutdown_phase == 1 && now >= f->shutdown_at_ns) {
        log_event(LOG_INFO, NULL, "shutdown: closing listeners, finishing requests in flight");
        close_listeners(f);
        h2o_context_request_shutdown(&f->ctx);
        f->shutdown_phase = 2;
        f->shutdown_at_ns = now + f->cfg->shutdown_timeout_ns;
    }
    if (f->shutdown_phase == 2 && (f->waiters == NULL || now >= f->shutdown_at_ns)) {
        for (waiter *w = f->waiters, *next; w; w = next) {
            next = w->next;
            waiter_answer(w, true);
        }
        /* idle keep-alive connections would wait for their next request:
         * end their reading side, so h2o sees EOF and closes each one
         * after its response is out */
        for (front_conn *c = f->conns; c; c = c->next) {
            uv_os_fd_t fd;
            if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
                shutdown(fd, SHUT_RD);
        }
        f->shutdown_phase = 3;
        if (f->shutdown_at_ns > now + HA_NS_PER_S)
            f->shutdown_at_ns = now + HA_NS_PER_S;
    }
    if (f->shutdown_phase == 3 && (f->conns == NULL || now >= f->shutdown_at_ns)) {
        f->shutdown_phase = 4;
        log_event(LOG_INFO, NULL, "shutdown: cancelling checks");
        uv_stop(f->loop);
    }
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
    if (c->prev)
        c->prev->next = c->next;
    else
        c->front->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    ha_front *f = listener->data;
    if (status != 0)
        return;
    front_conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL)
        return;
    uv_tcp_init(f->loop, &conn->tcp);
    conn->front = f;
    conn->next = f->conns;
    if (f->conns)
        f->conns->prev = conn;
    f->conns = conn;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, on_conn_closed);
    h2o_accept(&f->accept_ctx, sock);
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

    for (int i = 0; i < cfg->nlisten; i++) {
        struct sockaddr_storage ss;
        int r = parse_addr(cfg->listen[i], &ss);
        uv_tcp_t *l = &f->listeners[f->nlisteners];
        if (r == 0) {
            uv_tcp_init(loop, l);
            l->data = f;
            f->nlisteners++;
            r = uv_tcp_bind(l, (struct sockaddr *)&ss, 0);
            if (r == 0)
                r = uv_listen((uv_stream_t *)l, 1024, on_accept);
        }
        if (r != 0) {
            snprintf(err, errlen, "listen %s: %s", cfg->listen[i],
                     r == UV_EADDRINUSE ? "address already in use" : uv_strerror(r));
            front_free(f);
            return NULL;
        }
    }
    uv_async_init(loop, &f->wakeup, on_wakeup);
    f->wakeup.data = f;
    bridge->front_wakeup = &f->wakeup;
    uv_timer_init(loop, &f->tick);
    f->tick.data = f;
    uv_timer_start(&f->tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_init(loop, &f->sigterm);
    uv_signal_init(loop, &f->sigint);
    f->sigterm.data = f->sigint.data = f;
    uv_signal_start(&f->sigterm, on_signal, SIGTERM);
    uv_signal_start(&f->sigint, on_signal, SIGINT);
    uv_signal_init(loop, &f->sighup);
    f->sighup.data = f;
    uv_signal_start(&f->sighup, on_sighup, SIGHUP);
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
            absorb_snapshot(f);
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
    if (f->bridge->front_wakeup == &f->wakeup)
        f->bridge->front_wakeup = NULL;
    close_if_open((uv_handle_t *)&f->wakeup);
    close_if_open((uv_handle_t *)&f->tick);
    close_if_open((uv_handle_t *)&f->sigterm);
    close_if_open((uv_handle_t *)&f->sigint);
    close_if_open((uv_handle_t *)&f->sighup);
    for (waiter *w = f->waiters, *next; w; w = next) {
        next = w->next;
        w->req = NULL;
        w->next = w->prev = NULL;
    }
    f->waiters = NULL;
    for (int pi = 0; pi < HA_NPROBES; pi++)
        for (int fm = 0; fm < HA_NFORMATS; fm++)
            for (int k = 0; k < 2; k++)
                cache_clear(&f->cache[pi][fm][k]);
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
    free(f->pending_reason);
    free(f);
}
