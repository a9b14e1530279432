/* front_admin.c: /-/status, /-/ready, /-/drain, /-/reload, /-/checks/<name>
 * (reports of pushed checks) and /info (see front_admin.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "front_admin.h"
#include "front_int.h"
#include "log.h"

/* The 503 of a report or override refused because the engine is behind. */
#define QUEUE_FULL "256 reports and overrides are waiting for the engine (stalled or busy): " \
                   "this one was not queued; try again later"

#define REASON_MAX 256 /* bytes of an override reason */

static const char *admin_commit = "unknown";
static const char *admin_build_date = "unknown";
static int64_t admin_start_ms;   /* wall clock at start */
static uint64_t admin_start_ns;  /* monotonic at start */

void front_admin_init(const char *commit, const char *build_date)
{
    admin_commit = commit ? commit : "unknown";
    admin_build_date = build_date ? build_date : "unknown";
    admin_start_ms = ha_wall_ms();
    admin_start_ns = uv_hrtime();
}

ha_build_facts front_admin_build(void)
{
    ha_build_facts b = {admin_commit, admin_build_date, admin_start_ms};
    return b;
}

static bool path_is(h2o_iovec_t p, const char *s) { return h2o_memis(p.base, p.len, s, strlen(s)); }

bool front_admin_route(h2o_iovec_t path)
{
    return (path.len >= 3 && memcmp(path.base, "/-/", 3) == 0) || path_is(path, "/-") || path_is(path, "/info") ||
           path_is(path, "/actuator/info");
}

/* --- responses ---------------------------------------------------------- */

/* Sends a complete JSON response (body may be NULL: none). */
static void admin_respond(h2o_req_t *req, int status, const ha_buf *body)
{
    size_t len = body ? body->len : 0;
    front__respond(req, status, len ? "application/json" : NULL, len ? body->data : NULL, len);
}

static void admin_error(h2o_req_t *req, int status, const char *msg)
{
    ha_buf b = HA_BUF_INIT;
    buf_adds(&b, "{\"error\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_adds(&b, "}\n");
    admin_respond(req, status, &b);
    buf_free(&b);
}

static bool method_is(h2o_req_t *req, const char *m) { return h2o_memis(req->method.base, req->method.len, m, strlen(m)); }

/* Answers 405 naming the allowed methods unless req uses one of them. */
static bool allow(h2o_req_t *req, const char *m1, const char *m2, const char *header)
{
    if (method_is(req, m1) || (m2 && method_is(req, m2)))
        return true;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, header, strlen(header));
    admin_error(req, 405, "method not allowed");
    return false;
}

static void add_time(ha_buf *b, const char *key, int64_t ms)
{
    buf_printf(b, ",\"%s\":", key);
    if (ms == 0) {
        buf_adds(b, "null");
        return;
    }
    char t[32];
    ha_time_format(ms, t, sizeof t);
    buf_printf(b, "\"%s\"", t);
}

static double uptime_s(void) { return (double)(uv_hrtime() - admin_start_ns) / 1e9; }

/* --- /info ---------------------------------------------------------------- */

static void info(h2o_req_t *req, const ha_admin_ctx *ctx)
{
    const ha_snapshot *s = ctx->snap;
    ha_buf b = HA_BUF_INIT;
    buf_printf(&b, "{\"build\":{\"name\":\"healthagent\",\"version\":\"%s\",\"commit\":", HA_VERSION);
    buf_json_str(&b, admin_commit, strlen(admin_commit));
    buf_adds(&b, ",\"date\":");
    buf_json_str(&b, admin_build_date, strlen(admin_build_date));
    buf_adds(&b, "},\"process\":{\"pid\":");
    buf_printf(&b, "%ld", (long)getpid());
    add_time(&b, "start_time", admin_start_ms);
    buf_printf(&b, ",\"uptime_s\":%.3f}", uptime_s());
    buf_printf(&b, ",\"scripts\":{\"dir\":");
    const char *dir = ctx->cfg->scripts_dir ? ctx->cfg->scripts_dir : "";
    buf_json_str(&b, dir, strlen(dir));
    if (s) {
        buf_printf(&b, ",\"generation\":%llu,\"hash\":\"%016llx\",\"reloads\":%llu,\"checks\":%zu",
                   (unsigned long long)s->generation, (unsigned long long)s->scripts_hash,
                   (unsigned long long)s->reloads, s->n);
        add_time(&b, "since", s->reload_ms);
    }
    buf_adds(&b, "},\"info\":");
    buf_adds(&b, s && s->info_json ? s->info_json : "{}");
    buf_adds(&b, "}\n");
    admin_respond(req, 200, &b);
    buf_free(&b);
}

/* --- /-/status ------------------------------------------------------------ */

static void add_override(ha_buf *b, const ha_admin_ctx *ctx)
{
    if (!ctx->not_ready) {
        buf_adds(b, "null");
        return;
    }
    buf_adds(b, "{\"ready\":false,\"reason\":");
    const char *r = ctx->not_ready_reason ? ctx->not_ready_reason : "not ready";
    buf_json_str(b, r, strlen(r));
    buf_addc(b, '}');
}

static void status(h2o_req_t *req, const ha_admin_ctx *ctx)
{
    const ha_snapshot *s = ctx->snap;
    ha_buf b = HA_BUF_INIT;
    buf_printf(&b, "{\"version\":\"%s\",\"uptime_s\":%.3f,\"shutting_down\":%s", HA_VERSION, uptime_s(),
               ctx->shutting_down ? "true" : "false");
    buf_adds(&b, ",\"scripts_dir\":");
    const char *dir = ctx->cfg->scripts_dir ? ctx->cfg->scripts_dir : "";
    buf_json_str(&b, dir, strlen(dir));
    if (s) {
        buf_printf(&b, ",\"generation\":%llu,\"scripts_hash\":\"%016llx\",\"reloads\":%llu,\"checks\":%zu",
                   (unsigned long long)s->generation, (unsigned long long)s->scripts_hash,
                   (unsigned long long)s->reloads, s->n);
        add_time(&b, "last_reload", s->reload_ms);
    } else {
        buf_adds(&b, ",\"generation\":0,\"checks\":0");
    }
    buf_adds(&b, ",\"load_error\":");
    if (s && s->load_error) {
        buf_adds(&b, "{\"message\":");
        buf_json_str(&b, s->load_error, strlen(s->load_error));
        add_time(&b, "time", s->load_error_ms);
        buf_addc(&b, '}');
    } else {
        buf_adds(&b, "null");
    }
    buf_adds(&b, ",\"override\":");
    add_override(&b, ctx);
    if (ctx->status_extra)
        buf_add(&b, ctx->status_extra, ctx->status_extra_len);
    buf_adds(&b, "}\n");
    admin_respond(req, 200, &b);
    buf_free(&b);
}

/* --- /-/ready body: {"ready": bool [, "reason": string]} ------------------- */

typedef struct {
    const char *p, *end;
} json_in;

static void skip_ws(json_in *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\r' || *in->p == '\n'))
        in->p++;
}

static bool eat(json_in *in, char c)
{
    skip_ws(in);
    if (in->p < in->end && *in->p == c) {
        in->p++;
        return true;
    }
    return false;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static void put_utf8(ha_buf *b, unsigned cp)
{
    if (cp < 0x80) {
        buf_addc(b, (char)cp);
    } else if (cp < 0x800) {
        buf_addc(b, (char)(0xc0 | cp >> 6));
        buf_addc(b, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        buf_addc(b, (char)(0xe0 | cp >> 12));
        buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_addc(b, (char)(0x80 | (cp & 0x3f)));
    } else {
        buf_addc(b, (char)(0xf0 | cp >> 18));
        buf_addc(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
        buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_addc(b, (char)(0x80 | (cp & 0x3f)));
    }
}

/* Reads a JSON string into out (unescaped). Returns 0 or -1. */
static int read_string(json_in *in, ha_buf *out)
{
    if (!eat(in, '"'))
        return -1;
    while (in->p < in->end) {
        unsigned char c = (unsigned char)*in->p++;
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            buf_addc(out, (char)c);
            continue;
        }
        if (in->p >= in->end)
            return -1;
        char e = *in->p++;
        switch (e) {
        case '"': case '\\': case '/': buf_addc(out, e); break;
        case 'b': buf_addc(out, '\b'); break;
        case 'f': buf_addc(out, '\f'); break;
        case 'n': buf_addc(out, '\n'); break;
        case 'r': buf_addc(out, '\r'); break;
        case 't': buf_addc(out, '\t'); break;
        case 'u': {
            if (in->end - in->p < 4)
                return -1;
            int cp = hex4(in->p);
            in->p += 4;
            if (cp < 0)
                return -1;
            if (cp >= 0xd800 && cp < 0xdc00 && in->end - in->p >= 6 && in->p[0] == '\\' && in->p[1] == 'u') {
                int lo = hex4(in->p + 2);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    in->p += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 0xfffd; /* lone surrogate */
            put_utf8(out, (unsigned)cp);
            break;
        }
        default:
            return -1;
        }
    }
    return -1;
}

static bool eat_word(json_in *in, const char *w)
{
    skip_ws(in);
    size_t n = strlen(w);
    if ((size_t)(in->end - in->p) >= n && memcmp(in->p, w, n) == 0) {
        in->p += n;
        return true;
    }
    return false;
}

/* Reads one value of an admin body's object: in points at it; key is the
 * index of its name in the walk's key list. Returns NULL or a message. */
typedef const char *(*json_field_fn)(json_in *in, int key, void *ud);

/* An admin body's object: its accepted member names (NULL-terminated, at
 * most 8), the message naming each one given twice, and the 400 messages
 * for a body that is no object (shape) and for any other name (unknown). */
typedef struct {
    const char *const *keys;
    const char *const *twice;
    const char *shape, *unknown;
} json_object_spec;

/* Walks the flat JSON object of an admin body: each member's name must be
 * one of o->keys, at most once; fn reads its value. Returns NULL, or a
 * message for a 400. */
static const char *json_object_walk(h2o_iovec_t body, const json_object_spec *o, json_field_fn fn, void *ud)
{
    json_in in = {body.base, body.base ? body.base + body.len : NULL}; /* no body: NULL + 0 is UB */
    unsigned seen = 0;
    if (body.base == NULL || !eat(&in, '{'))
        return o->shape;
    if (!eat(&in, '}')) {
        for (;;) {
            ha_buf name = HA_BUF_INIT;
            int r = read_string(&in, &name), key = -1;
            for (int k = 0; r == 0 && o->keys[k]; k++)
                if (strlen(o->keys[k]) == name.len && memcmp(name.data, o->keys[k], name.len) == 0)
                    key = k;
            buf_free(&name);
            if (r != 0 || !eat(&in, ':'))
                return "malformed JSON";
            if (key < 0)
                return o->unknown;
            if (seen & (1u << key))
                return o->twice[key];
            seen |= 1u << key;
            const char *bad = fn(&in, key, ud);
            if (bad)
                return bad;
            if (eat(&in, '}'))
                break;
            if (!eat(&in, ','))
                return "malformed JSON";
        }
    }
    skip_ws(&in);
    return in.p != in.end ? "trailing data after the JSON object" : NULL;
}

typedef struct {
    int ready;           /* -1 until given */
    ha_buf *reason;
    bool has_reason;
} ready_body;

static const char *ready_field(json_in *in, int key, void *ud)
{
    ready_body *b = ud;
    if (key == 0) {
        if (eat_word(in, "true"))
            b->ready = 1;
        else if (eat_word(in, "false"))
            b->ready = 0;
        else
            return "\"ready\" must be true or false";
        return NULL;
    }
    skip_ws(in);
    buf_reset(b->reason);
    b->has_reason = false;
    if (eat_word(in, "null"))
        return NULL;
    if (read_string(in, b->reason) != 0)
        return "\"reason\" must be a string";
    b->has_reason = true;
    if (b->reason->len > REASON_MAX)
        return "\"reason\" is longer than 256 bytes";
    if (memchr(buf_cstr(b->reason), '\0', b->reason->len))
        return "\"reason\" contains a NUL character";
    return NULL;
}

/* Parses the override body. Returns NULL, or a message for a 400. */
static const char *parse_ready(h2o_iovec_t body, int *ready, ha_buf *reason, bool *has_reason)
{
    static const char *const keys[] = {"ready", "reason", NULL};
    static const char *const twice[] = {"\"ready\" is given twice", "\"reason\" is given twice"};
    static const json_object_spec o = {keys, twice,
                                       "expected a JSON object like {\"ready\":false,\"reason\":\"maintenance\"}",
                                       "unknown field: only \"ready\" and \"reason\" are accepted"};
    ready_body b = {-1, reason, false};
    const char *bad = json_object_walk(body, &o, ready_field, &b);
    *ready = b.ready;
    *has_reason = b.has_reason;
    if (bad == NULL && b.ready < 0)
        bad = "missing field \"ready\"";
    return bad;
}

/* Queues the override for the engine and answers with what was asked for. */
static void set_override(h2o_req_t *req, const ha_admin_ctx *ctx, bool ready, const char *reason)
{
    size_t rl = ready || reason == NULL ? 0 : strlen(reason);
    int rc = ctx->set_ready(ctx->front, ready, rl ? reason : NULL, rl);
    if (rc != 0) {
        admin_error(req, 503, rc == -2 ? QUEUE_FULL : "not enough memory");
        return;
    }
    log_event(LOG_INFO, NULL, "admin: %.*s %.*s: %s%s%s", (int)req->method.len, req->method.base,
              (int)req->path_normalized.len, req->path_normalized.base, ready ? "ready" : "not ready",
              rl ? ": " : "", rl ? reason : "");
    ha_buf b = HA_BUF_INIT;
    buf_printf(&b, "{\"ready\":%s", ready ? "true" : "false");
    if (!ready) {
        const char *r = rl ? reason : "not ready";
        buf_adds(&b, ",\"reason\":");
        buf_json_str(&b, r, strlen(r));
    }
    buf_adds(&b, "}\n");
    admin_respond(req, 200, &b);
    buf_free(&b);
}

static void ready(h2o_req_t *req, const ha_admin_ctx *ctx)
{
    if (!method_is(req, "HEAD") && !allow(req, "PUT", "GET", "GET, HEAD, PUT"))
        return;
    if (!method_is(req, "PUT")) {
        ha_buf b = HA_BUF_INIT;
        buf_printf(&b, "{\"ready\":%s,\"override\":", ctx->not_ready ? "false" : "true");
        add_override(&b, ctx);
        buf_adds(&b, "}\n");
        admin_respond(req, 200, &b);
        buf_free(&b);
        return;
    }
    int r;
    bool has_reason;
    ha_buf reason = HA_BUF_INIT;
    const char *bad = parse_ready(req->entity, &r, &reason, &has_reason);
    if (bad)
        admin_error(req, 400, bad);
    else
        set_override(req, ctx, r == 1, has_reason ? buf_cstr(&reason) : NULL);
    buf_free(&reason);
}

/* --- PUT /-/checks/<name>: {"status": "UP"|"WARN"|"DOWN" [, "output": string]} --- */

typedef struct {
    ha_status *status;
    bool has_status;
    ha_buf *output;
    bool *too_long;
} report_body;

static const char *report_field(json_in *in, int key, void *ud)
{
    report_body *b = ud;
    if (key == 0) {
        static const ha_status st[] = {HA_UP, HA_WARN, HA_DOWN};
        static const char *const names[] = {"UP", "WARN", "DOWN"};
        ha_buf v = HA_BUF_INIT;
        int r = read_string(in, &v);
        for (int k = 0; r == 0 && k < 3; k++)
            if (strcmp(buf_cstr(&v), names[k]) == 0) {
                *b->status = st[k];
                b->has_status = true;
            }
        buf_free(&v);
        return b->has_status ? NULL : "\"status\" must be \"UP\", \"WARN\" or \"DOWN\"";
    }
    buf_reset(b->output);
    skip_ws(in);
    if (!eat_word(in, "null") && read_string(in, b->output) != 0)
        return "\"output\" must be a string";
    if (b->output->len > HA_REPORT_OUTPUT_MAX) {
        *b->too_long = true;
        return "\"output\" is longer than 1024 bytes";
    }
    if (b->output->len && memchr(buf_cstr(b->output), '\0', b->output->len))
        return "\"output\" contains a NUL character";
    return NULL;
}

/* Parses a report body. Returns NULL, or a message for a 400 (*too_long:
 * the output is over HA_REPORT_OUTPUT_MAX bytes, a 413). */
static const char *parse_report(h2o_iovec_t body, ha_status *status, ha_buf *output, bool *too_long)
{
    static const char *const keys[] = {"status", "output", NULL};
    static const char *const twice[] = {"\"status\" is given twice", "\"output\" is given twice"};
    static const json_object_spec o = {keys, twice,
                                       "expected a JSON object like {\"status\":\"UP\",\"output\":\"queue drained\"}",
                                       "unknown field: only \"status\" and \"output\" are accepted"};
    report_body b = {status, false, output, too_long};
    *too_long = false;
    const char *bad = json_object_walk(body, &o, report_field, &b);
    if (bad == NULL && !b.has_status)
        bad = "missing field \"status\"";
    return bad;
}

/* A report waiting for the engine: lives in the request's pool. */
typedef struct {
    front_wait w;
    ha_front *front;
    h2o_req_t *req;
    uint64_t seq;                 /* the report's number (front__report) */
    ha_status status;             /* what was reported */
    size_t nlen;
    char name[HA_NAME_MAX + 1];
} report_wait;

/* Pool dispose: the client left or the response completed. */
static void report_dispose(void *p)
{
    report_wait *rw = p;
    front__wait_cancel(&rw->w);
}

/* Answers a report once the front has absorbed the snapshot that shows the
 * engine processed it (200), or when the wait ended without it (503). */
static void report_done(void *p)
{
    report_wait *rw = p;
    h2o_req_t *req = rw->req;
    if (!front__report_applied(rw->front, rw->seq)) {
        admin_error(req, 503, "the engine has not applied the report within max_wait (stalled or busy): "
                              "it may still apply it; report again");
        return;
    }
    ha_render_req rr = {0};
    const ha_snapshot *s = front__answer_state(rw->front, &rr);
    int k = s ? snapshot_find(s, rw->name, rw->nlen) : -1;
    if (k < 0 || !s->checks[k].pushed) {
        admin_error(req, 404, "the pushed check was removed by a reload before the report applied");
        return;
    }
    const ha_snap_check *c = &s->checks[k];
    ha_buf b = HA_BUF_INIT;
    buf_adds(&b, "{\"name\":");
    buf_json_str(&b, c->name, strlen(c->name));
    buf_printf(&b, ",\"reported\":\"%s\",\"status\":\"%s\",\"reports\":%llu}\n", ha_status_name(rw->status),
               ha_status_name(c->status), (unsigned long long)c->runs);
    admin_respond(req, 200, &b);
    buf_free(&b);
}

/* PUT /-/checks/<name>: validates against the newest snapshot (the name
 * must be a pushed check), then hands the report to the engine and answers
 * once it shows (report_done). Nothing is sent on any 4xx. */
static void report(h2o_req_t *req, const ha_admin_ctx *ctx, h2o_iovec_t name)
{
    if (!allow(req, "PUT", NULL, "PUT"))
        return;
    const ha_snapshot *s = ctx->snap;
    int k = s && name.len <= HA_NAME_MAX ? snapshot_find(s, name.base, name.len) : -1;
    if (k < 0) {
        ha_buf m = HA_BUF_INIT;
        buf_adds(&m, "no check named '");
        buf_text_line(&m, name.base, name.len < 128 ? name.len : 128);
        buf_adds(&m, "'");
        admin_error(req, 404, buf_cstr(&m));
        buf_free(&m);
        return;
    }
    if (!s->checks[k].pushed) {
        ha_buf m = HA_BUF_INIT;
        buf_printf(&m, "'%s' is not a pushed check: it runs its own script (declare it with health.push)",
                   s->checks[k].name);
        admin_error(req, 409, buf_cstr(&m));
        buf_free(&m);
        return;
    }
    ha_status st = HA_DOWN;
    bool too_long;
    ha_buf out = HA_BUF_INIT;
    const char *bad = parse_report(req->entity, &st, &out, &too_long);
    if (bad) {
        admin_error(req, too_long ? 413 : 400, bad);
        buf_free(&out);
        return;
    }
    report_wait *rw = h2o_mem_alloc_shared(&req->pool, sizeof *rw, report_dispose);
    memset(rw, 0, sizeof *rw);
    rw->front = ctx->front;
    rw->req = req;
    rw->status = st;
    rw->nlen = name.len;
    memcpy(rw->name, name.base, name.len);
    log_event(LOG_DEBUG, rw->name, "admin: report %s%s%.*s", ha_status_name(st), out.len ? ": " : "", (int)out.len,
              buf_cstr(&out));
    int r = front__report(ctx->front, &rw->w, name.base, name.len, st, buf_cstr(&out), out.len, report_done, rw,
                          &rw->seq);
    buf_free(&out);
    if (r < 0)
        admin_error(req, 503, r == -2 ? QUEUE_FULL : "not enough memory");
    else if (r == 0)
        admin_error(req, 503, "the engine is stalled: the report is queued and applies when it turns again");
    else if (r == 2)
        admin_error(req, 503, "the agent is shutting down: the report is queued and may not apply before it exits");
}

/* --- dispatch ------------------------------------------------------------- */

int front_admin_handle(h2o_req_t *req, const ha_admin_ctx *ctx)
{
    h2o_iovec_t path = req->path_normalized;
    if (path_is(path, "/info") || path_is(path, "/actuator/info")) {
        if (allow(req, "GET", "HEAD", "GET, HEAD"))
            info(req, ctx);
        return 0;
    }
    /* /-/ paths: the bearer token, from every address (loopback included:
     * a mesh sidecar delivers every peer from there); none configured: off */
    if (ctx->cfg->token == NULL) {
        admin_respond(req, 403, NULL);
        return 0;
    }
    if (!ctx->token_ok) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
        admin_respond(req, 401, NULL);
        return 0;
    }
    if (path_is(path, "/-/status")) {
        if (allow(req, "GET", "HEAD", "GET, HEAD"))
            status(req, ctx);
    } else if (path_is(path, "/-/ready")) {
        ready(req, ctx);
    } else if (path_is(path, "/-/drain")) {
        if (allow(req, "POST", NULL, "POST"))
            set_override(req, ctx, false, "draining");
    } else if (path.len > 10 && memcmp(path.base, "/-/checks/", 10) == 0) {
        report(req, ctx, h2o_iovec_init(path.base + 10, path.len - 10));
    } else if (path_is(path, "/-/reload")) {
        if (allow(req, "POST", NULL, "POST")) {
            if (bridge_send(ctx->bridge, HA_MSG_RELOAD, 0, NULL, 0) != 0) {
                admin_error(req, 503, "not enough memory");
                return 0;
            }
            log_event(LOG_INFO, NULL, "admin: reload requested via POST /-/reload");
            ha_buf b = HA_BUF_INIT;
            buf_printf(&b, "{\"reload\":\"requested\",\"generation\":%llu}\n",
                       (unsigned long long)(ctx->snap ? ctx->snap->generation : 0));
            admin_respond(req, 202, &b);
            buf_free(&b);
        }
    } else {
        admin_error(req, 404, "not found");
    }
    return 0;
}
