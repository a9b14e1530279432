/* fuzz_render.c: front_render and front_render_status (agent/front_render.h)
 * over a snapshot and a request built from the fuzz bytes.
 *
 * Up to 8 checks with arbitrary names (unique, sorted as the engine sorts
 * them), outputs of arbitrary bytes, any status, probe mask and critical /
 * running flags, valid details JSON or none, times from 0 to extreme; a load
 * error, override and shutdown reason of arbitrary bytes; a request with any
 * probe, format and flags, an exclude list and an "only" that names a check
 * or arbitrary bytes (NUL included). Checks:
 *   - front_render returns -1 exactly when only names no check of the probe
 *     (a linear search, not the binary one), then 404, DOWN, empty body;
 *   - http_status is the probe's success code for UP/WARN, failure code for
 *     INIT/DOWN; front_render_status agrees with out.status;
 *   - the aggregate is at least every included check's status (a
 *     non-critical check counting at most WARN), exactly that when no stall
 *     or age overlay applies, and DOWN when a stall (liveness), shutdown
 *     or override (readiness) gives a reason;
 *   - the body is valid UTF-8 always, one valid JSON value for the JSON
 *     formats and starts with the aggregate's status; the verbose text is one
 *     line per included check ("[+]... ok", "[+]... pending: no result yet",
 *     "[-]... failed: ...") plus the reason and the verdict, no control
 *     characters but the newlines, the verdict matching the status, and no
 *     output shown to a request that is not full; a "stale" marker only on
 *     checks whose age overlay says stale. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front_render.h"
#include "fuzz.h"

#define MAX_CHECKS 8
#define MAX_EXCLUDE 4

/* Valid details as the engine would produce them (a JSON object or array). */
static const char *const fuzz_details[] = {
    "{}", "[]", "{\"a\":1,\"b\":[true,false,null]}", "[\"\\u00e9\",-1.5e3]",
    "{\"nested\":{\"x\":\"\\\"q\\\"\"}}", "[{\"k\":\"\xc3\xa9\"}]",
};

static int fuzz_name_cmp(const void *a, const void *b)
{
    return strcmp(((const ha_snap_check *)a)->name, ((const ha_snap_check *)b)->name);
}

static int64_t fuzz_time(fuzz_in *in, int kind)
{
    switch (kind) {
    case 0: return 0;
    case 1: return 1795341600000LL + (int64_t)fuzz_u32(in); /* around 2026 */
    case 2: return (int64_t)fuzz_u64(in);                   /* anything */
    default: return -(int64_t)fuzz_u32(in);                 /* before the epoch */
    }
}

/* Builds the snapshot; names are unique and sorted. */
static ha_snapshot *fuzz_snapshot(fuzz_in *in, uint8_t flags)
{
    ha_snapshot *s = calloc(1, sizeof *s);
    if (s == NULL)
        abort();
    s->seq = fuzz_u8(in);
    s->ready_override = flags & 1;
    if (flags & 2)
        s->load_error = fuzz_cstr(in, 48);
    if (flags & 4)
        s->override_reason = fuzz_cstr(in, 48);
    s->load_error_ms = fuzz_time(in, flags >> 3 & 3);
    size_t n = fuzz_u8(in) % (MAX_CHECKS + 1);
    s->checks = calloc(n ? n : 1, sizeof *s->checks);
    if (s->checks == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        ha_snap_check *c = &s->checks[i];
        uint8_t f = fuzz_u8(in), g = fuzz_u8(in);
        c->name = fuzz_cstr(in, 24);
        c->probes = f & 7u;
        c->critical = f >> 3 & 1;
        c->running = f >> 4 & 1;
        c->status = (ha_status)(f >> 5 & 3);
        if (g & 1)
            c->output = fuzz_cstr(in, 64);
        unsigned d = g >> 1 & 7;
        if (d < HA_ARRAY_SIZE(fuzz_details))
            c->details_json = strdup(fuzz_details[d]);
        else if (d == 7)
            c->details_json = strdup("");
        if (g & 0x80) { /* health+json componentType: any bytes, the renderer escapes them */
            char *t = fuzz_cstr(in, HA_COMPONENT_TYPE_MAX);
            snprintf(c->component_type, sizeof c->component_type, "%s", t);
            free(t);
        }
        c->time_ms = fuzz_time(in, g >> 4 & 3);
        c->duration_ms = fuzz_u32(in);
        c->expires_ns = (uint64_t)fuzz_u32(in) * HA_NS_PER_MS;
        c->timeout_ns = g & 0x40 ? fuzz_u64(in) : (uint64_t)fuzz_u16(in) * HA_NS_PER_MS;
        c->max_age_ns = c->timeout_ns;
        c->runs = fuzz_u8(in);
    }
    qsort(s->checks, n, sizeof *s->checks, fuzz_name_cmp);
    for (size_t i = 0; i < n; i++) { /* drop repeated names */
        if (s->n > 0 && strcmp(s->checks[s->n - 1].name, s->checks[i].name) == 0) {
            free(s->checks[i].name);
            free(s->checks[i].output);
            free(s->checks[i].details_json);
            continue;
        }
        s->checks[s->n++] = s->checks[i];
    }
    return s;
}

/* An "only" or exclude entry: a check's name or arbitrary bytes. */
static ha_str fuzz_pick(fuzz_in *in, const ha_snapshot *s)
{
    uint8_t sel = fuzz_u8(in);
    ha_str v;
    if ((sel & 1) == 0 && s->n > 0) {
        v.p = s->checks[(sel >> 1) % s->n].name;
        v.len = strlen(v.p);
    } else {
        v.p = (const char *)fuzz_bytes(in, 24, &v.len);
    }
    return v;
}

static unsigned fuzz_mask(int probe) { return probe == HA_PI_HEALTH ? 7u : 1u << probe; }

static bool fuzz_same(const ha_str *a, const char *name)
{
    return a->p != NULL && a->len == strlen(name) && memcmp(a->p, name, a->len) == 0;
}

/* Oracle: the snapshot index of only by linear search, or -1. */
static int fuzz_find(const ha_snapshot *s, const ha_str *only)
{
    for (size_t i = 0; i < s->n; i++)
        if (fuzz_same(only, s->checks[i].name))
            return (int)i;
    return -1;
}

static bool fuzz_included(const ha_snap_check *c, const ha_render_req *r)
{
    if (r->probe != HA_PI_HEALTH && (c->probes & fuzz_mask(r->probe)) == 0)
        return false;
    for (size_t i = 0; i < r->nexclude; i++)
        if (fuzz_same(&r->exclude[i], c->name))
            return false;
    return true;
}

/* What c adds to the aggregate of probe before any overlay: liveness reads
 * an undecided (critical) check as passing. */
static ha_status fuzz_contrib(const ha_snap_check *c, int probe)
{
    ha_status st = !c->critical && c->status > HA_WARN ? HA_WARN : c->status;
    return probe == HA_PI_LIVENESS && st == HA_INIT ? HA_UP : st;
}

/* Checks the verbose text: lines, control characters, verdict, privacy. */
static void fuzz_verbose(const ha_buf *b, const ha_render_req *r, const ha_render_out *out,
                         size_t nchecks, bool reason)
{
    static const char *const shorts[] = {"livez", "readyz", "startupz", "healthz"};
    char verdict[64];
    size_t lines = 0, start = 0;

    FUZZ_CHECK(b->len > 0 && b->data[b->len - 1] == '\n', "verbose body does not end a line");
    for (size_t i = 0; i < b->len; i++) {
        unsigned char ch = (unsigned char)b->data[i];
        FUZZ_CHECK(ch == '\n' || (ch >= 0x20 && ch != 0x7f), "control character in verbose text");
        if (ch != '\n')
            continue;
        const char *line = b->data + start;
        size_t len = i - start;
        if (lines < nchecks) {
            bool ok = len >= 3 && memcmp(line, "[+]", 3) == 0;
            bool bad = len >= 3 && memcmp(line, "[-]", 3) == 0;
            FUZZ_CHECK(ok || bad, "check line without [+] or [-]");
            if (len >= 8 && memcmp(line + len - 8, " (stale)", 8) == 0)
                len -= 8;
            if (ok) /* " ok", or an undecided liveness check's " pending: no result yet" */
                FUZZ_CHECK((len >= 6 && memcmp(line + len - 3, " ok", 3) == 0) ||
                               (len >= 26 && memcmp(line + len - 23, " pending: no result yet", 23) == 0),
                           "[+] line neither ok nor pending");
            if (bad && !r->full)
                FUZZ_CHECK(len >= 24 && memcmp(line + len - 24, " failed: reason withheld", 24) == 0,
                           "a failed check shows its output to a request that is not full");
        }
        lines++;
        start = i + 1;
    }
    FUZZ_CHECK(lines == nchecks + (reason ? 1 : 0) + 1, "verbose text has the wrong line count");
    snprintf(verdict, sizeof verdict, "%s check %s\n", shorts[r->probe],
             out->status <= HA_WARN ? "passed" : "failed");
    size_t vlen = strlen(verdict);
    FUZZ_CHECK(b->len >= vlen && memcmp(b->data + b->len - vlen, verdict, vlen) == 0,
               "verbose verdict does not match the status");
}

/* When input is left: one group over s from it (members, aggregate and
 * its parameters, a Lua verdict and message, codes), answered as
 * /groupz/<name> in r's format, audience, overlays and exclusions, with and
 * without one member: the answer's invariants (no oracle for the aggregate
 * itself: test_render pins those). s owns the group afterwards. */
static void fuzz_group(fuzz_in *in, ha_snapshot *s, ha_render_req *r, const ha_probe_conf *pc)
{
    static const char *const types[] = {"application/json", "application/health+json",
                                        "text/plain; charset=utf-8"};
    if (in->n == 0)
        return;
    uint8_t k = fuzz_u8(in), m = fuzz_u8(in);
    ha_snap_group *g = calloc(1, sizeof *g);
    if (g == NULL)
        abort();
    s->groups = g;
    s->ngroups = 1;
    g->name = fuzz_cstr(in, 16);
    g->probe = -1;
    g->kind = (ha_agg_kind)(k & 3);
    g->min_up = k >> 2 & 1 ? 0 : fuzz_u8(in) % 8;
    g->ratio = g->min_up ? 0 : (fuzz_u8(in) + 1) / 256.0;
    g->lua_status = (ha_status)(k >> 3 & 3);
    if (k & 0x20)
        g->lua_output = fuzz_cstr(in, 200);
    g->success_status = k & 0x40 ? 100 + fuzz_u16(in) % 500 : 0;
    g->codes[m & 3] = m & 4 ? 100 + fuzz_u16(in) % 500 : 0;
    g->members = calloc(s->n ? s->n : 1, sizeof *g->members);
    if (g->members == NULL)
        abort();
    uint32_t bits = fuzz_u32(in);
    for (size_t i = 0; i < s->n; i++)
        if (bits >> (i % 32) & 1)
            g->members[g->nmembers++] = (uint32_t)i;
    ha_render_req q = *r;
    q.probe = HA_PI_HEALTH;
    q.group = (ha_str){g->name, strlen(g->name)};
    q.only = m & 8 && s->n ? (ha_str){s->checks[m % s->n].name, strlen(s->checks[m % s->n].name)} : (ha_str){NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        ha_render_out out;
        int rc = front_render(s, pass ? pc : NULL, &q, &out);
        bool member = false;
        for (uint32_t j = 0; q.only.p && j < g->nmembers; j++)
            member |= fuzz_same(&q.only, s->checks[g->members[j]].name);
        FUZZ_CHECK(rc == (q.only.p && !member ? -1 : 0), "group answer: 404 iff only is no member");
        FUZZ_CHECK(front_render_status(s, &q) == out.status, "group status differs from front_render_status");
        FUZZ_CHECK(strcmp(out.content_type, types[q.format]) == 0, "group content type");
        if (rc == 0) {
            FUZZ_CHECK(out.http_status == front_render_code(pass ? pc : NULL, g, out.status), "group HTTP code");
            FUZZ_CHECK(fuzz_utf8_valid(out.body.data ? out.body.data : "", out.body.len), "group body UTF-8");
            if (q.format == HA_FMT_VERBOSE)
                FUZZ_CHECK(out.body.len > 0 && out.body.data[out.body.len - 1] == '\n', "group verbose line");
            else {
                const char *why = NULL;
                size_t at = 0;
                FUZZ_CHECK(fuzz_json_valid(out.body.data, out.body.len, &why, &at), "group body is not JSON");
            }
        }
        buf_free(&out.body);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"application/json", "application/health+json",
                                        "text/plain; charset=utf-8"};
    fuzz_in in = {data, size};
    ha_render_req r;
    ha_render_out out;
    ha_probe_conf pc;
    ha_str exclude[MAX_EXCLUDE];
    char *shutdown = NULL, detail[200];
    unsigned char age[MAX_CHECKS];

    memset(&r, 0, sizeof r);
    memset(&pc, 0, sizeof pc);
    uint8_t a = fuzz_u8(&in), b = fuzz_u8(&in);
    r.format = (ha_format)((a & 3) % 3);
    r.probe = a >> 2 & 3;
    r.full = a >> 4 & 1;
    bool aged = a >> 5 & 1;
    pc.success_status = 100 + fuzz_u16(&in) % 500;
    pc.failure_status = 100 + fuzz_u16(&in) % 500;
    (void)fuzz_u32(&in); /* was the request's clock: keeps the corpus' layout */
    if (a >> 6 & 1)
        r.stalled_ns = a >> 7 ? fuzz_u64(&in) : (uint64_t)fuzz_u16(&in) * HA_NS_PER_MS;
    if (b & 0x20) {
        shutdown = fuzz_cstr(&in, 48);
        r.shutdown = shutdown;
    }
    ha_snapshot *s = fuzz_snapshot(&in, b);
    r.not_ready = s->ready_override;
    r.not_ready_reason = s->override_reason;
    for (size_t i = 0; aged && i < s->n; i++)
        age[i] = (unsigned char)(s->checks[i].runs % 3);
    r.age = aged ? age : NULL;
    if (b & 0x40)
        r.only = fuzz_pick(&in, s);
    r.nexclude = fuzz_u8(&in) % (MAX_EXCLUDE + 1);
    for (size_t i = 0; i < r.nexclude; i++)
        exclude[i] = fuzz_pick(&in, s);
    r.exclude = exclude;

    /* the oracles */
    int only = r.only.p != NULL ? fuzz_find(s, &r.only) : -1;
    bool want_404 = r.only.p != NULL &&
                    (only < 0 || (r.probe != HA_PI_HEALTH && (s->checks[only].probes & fuzz_mask(r.probe)) == 0));
    bool reason = r.only.p == NULL &&
                  ((r.probe == HA_PI_LIVENESS && r.stalled_ns > 0) ||
                   (r.probe == HA_PI_READINESS && (r.shutdown != NULL || r.not_ready)));
    bool overlays = r.stalled_ns > 0 || aged;
    ha_status floor = HA_UP;
    size_t nchecks = 0;
    for (size_t i = 0; i < s->n; i++) {
        const ha_snap_check *c = &s->checks[i];
        if (r.only.p != NULL ? (int)i != only : !fuzz_included(c, &r))
            continue;
        nchecks++;
        if (fuzz_contrib(c, r.probe) > floor)
            floor = fuzz_contrib(c, r.probe);
    }

    int rc = front_render(s, &pc, &r, &out);
    ha_status again = front_render_status(s, &r);
    snprintf(detail, sizeof detail, "rc=%d status=%d http=%d again=%d floor=%d format=%d probe=%d",
             rc, (int)out.status, out.http_status, (int)again, (int)floor, (int)r.format, r.probe);
    FUZZ_CHECK(rc == (want_404 ? -1 : 0), detail);
    FUZZ_CHECK(again == out.status, detail);
    FUZZ_CHECK(out.content_type != NULL && strcmp(out.content_type, types[r.format]) == 0, detail);
    if (rc < 0) {
        FUZZ_CHECK(out.http_status == 404 && out.status == HA_DOWN && out.body.len == 0, detail);
        goto done;
    }
    FUZZ_CHECK(out.http_status ==
                   (out.status <= HA_WARN ? pc.success_status : pc.failure_status),
               detail);
    FUZZ_CHECK(out.status >= floor, detail);
    if (reason)
        FUZZ_CHECK(out.status == HA_DOWN, detail);
    else if (!overlays)
        FUZZ_CHECK(out.status == floor, detail);

    const char *body = out.body.data != NULL ? out.body.data : "";
    size_t len = out.body.len;
    if (getenv("HA_FUZZ_DEBUG") != NULL) { /* show the answer when replaying */
        fprintf(stderr, "%s\n", detail);
        fwrite(body, 1, len, stderr);
        fputc('\n', stderr);
    }
    FUZZ_CHECK(fuzz_utf8_valid(body, len), "body is not valid UTF-8");
    if (r.format == HA_FMT_VERBOSE) {
        fuzz_verbose(&out.body, &r, &out, nchecks, reason);
    } else {
        const char *why = NULL;
        size_t at = 0;
        char head[64];
        bool valid = fuzz_json_valid(body, len, &why, &at);
        snprintf(detail, sizeof detail, "invalid JSON: %s at byte %zu of %zu", why ? why : "?",
                 at, len);
        FUZZ_CHECK(valid, detail);
        FUZZ_CHECK(aged || memmem(body, len, "\"stale\":true", 13) == NULL,
                   "a stale marker without the age overlay");
        if (r.format == HA_FMT_HEALTH_JSON)
            snprintf(head, sizeof head, "{\"status\":\"%s\"", ha_status_ietf(out.status));
        else if (r.only.p == NULL)
            snprintf(head, sizeof head, "{\"status\":\"%s\"", ha_status_name(out.status));
        else
            snprintf(head, sizeof head, "{\"status\":\"");
        FUZZ_CHECK(len >= strlen(head) && memcmp(body, head, strlen(head)) == 0,
                   "body does not start with the aggregate status");
    }
done:
    buf_free(&out.body);
    fuzz_group(&in, s, &r, &pc);
    snapshot_free(s);
    free(shutdown);
    return 0;
}
