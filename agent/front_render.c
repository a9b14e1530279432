/* front_render.c: the probe answer. Decides which checks a request covers,
 * what each one displays (stall, age and non-critical overlays), the
 * aggregate and its HTTP code, and writes the body in one of three formats
 * (see front_render.h). Pure: reads the snapshot and the request only. */
#include "front_render.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* What one check shows in an answer. */
typedef struct {
    const ha_snap_check *c;
    ha_status shown;        /* displayed status */
    ha_status contrib;      /* what it adds to the aggregate: at most WARN if not critical */
    const char *output;     /* displayed output, may be NULL; may point at synth */
    bool stale;             /* an old result is shown: marked "stale" */
    char synth[64];         /* "timeout after 2s" when an overlay replaced the result */
} render_view;

/* The request's answer before any body is written. */
typedef struct {
    int only;               /* index of r->only in the snapshot, or -1 */
    const ha_snap_group *group; /* the group answered (r->group), or NULL for a probe */
    const ha_snap_group *agg; /* whose aggregate applies: group, the probe's own group, or NULL */
    ha_status status;       /* aggregate */
    bool init_held;         /* liveness: an undecided check read as passing */
    const char *reason;     /* top-level reason (stall, shutdown, override), may be NULL */
    char reason_buf[64];    /* storage for "engine stalled for Ns" */
    const char *message;    /* the aggregate's message (shown to full views), may be NULL */
    char message_buf[256];  /* storage for a built-in aggregate's message */
} render_summary;

/* Walks the checks an answer covers, in name order. */
typedef struct {
    const ha_snapshot *s;
    const ha_snap_group *g; /* NULL: the probe's mask decides */
    size_t k;               /* next position: check index, or member index of g */
} render_iter;

static const char *const render_types[HA_NFORMATS] = {
    "application/json",
    "application/health+json",
    "text/plain; charset=utf-8",
};

static const char *const render_short[HA_NPROBES] = {"livez", "readyz", "startupz", "healthz"};

/* True when name[0..len) is c's name. */
static bool render_same(const ha_str *n, const char *name)
{
    return n->p != NULL && strlen(name) == n->len && memcmp(n->p, name, n->len) == 0;
}

/* True when the request excludes c. */
static bool render_excluded(const ha_snap_check *c, const ha_render_req *r)
{
    for (size_t i = 0; i < r->nexclude; i++)
        if (render_same(&r->exclude[i], c->name))
            return true;
    return false;
}

/* The members of a probe group are the probe's checks, as without it. */
static const ha_snap_group *render_member_group(const ha_snap_group *g)
{
    return g != NULL && g->probe < 0 ? g : NULL;
}

static void render_iter_init(render_iter *it, const ha_snapshot *s, const render_summary *sum)
{
    it->s = s;
    it->g = render_member_group(sum->group);
    it->k = 0;
}

/* Stores in *i the next check the request covers (in the group, or in the
 * probe, and not excluded); false at the end. */
static bool render_next(render_iter *it, const ha_render_req *r, size_t *i)
{
    const ha_snapshot *s = it->s;
    if (s == NULL)
        return false;
    if (it->g != NULL) {
        while (it->k < it->g->nmembers) {
            uint32_t m = it->g->members[it->k++];
            if (m < s->n && !render_excluded(&s->checks[m], r)) {
                *i = m;
                return true;
            }
        }
        return false;
    }
    while (it->k < s->n) {
        size_t k = it->k++;
        if (ha_probe_covers(s->checks[k].probes, r->probe) && !render_excluded(&s->checks[k], r)) {
            *i = k;
            return true;
        }
    }
    return false;
}

/* Fills v with what check i of s displays under r: a run in flight during
 * an engine stall reads DOWN "timeout after <timeout>"; a result past its
 * max_age reads DOWN "no result for <max_age>" (a check never decided keeps
 * its INIT); a result past its ttl is shown marked stale; a failing
 * non-critical check reads WARN. A check that never produced a result keeps
 * its INIT, which fails every probe but liveness. */
static void render_view_of(const ha_snapshot *s, size_t i, const ha_render_req *r, render_view *v)
{
    const ha_snap_check *c = &s->checks[i];
    ha_age age = r->age != NULL && c->time_ms != 0 ? (ha_age)r->age[i] : HA_AGE_FRESH;
    char d[32];

    v->c = c;
    v->shown = c->status;
    v->output = c->output;
    v->stale = age != HA_AGE_FRESH;
    if (r->stalled_ns > 0 && c->running) {
        ha_duration_format(c->timeout_ns, d, sizeof d);
        snprintf(v->synth, sizeof v->synth, "timeout after %s", d);
        v->shown = HA_DOWN;
        v->output = v->synth;
        v->stale = false;
    } else if (age == HA_AGE_EXPIRED && c->status != HA_INIT) {
        ha_duration_format(c->max_age_ns, d, sizeof d);
        snprintf(v->synth, sizeof v->synth, "no result for %s", d);
        v->shown = HA_DOWN;
        v->output = v->synth;
        v->stale = false;
    }
    if (!c->critical && v->shown == HA_DOWN)
        v->shown = HA_WARN;
    v->contrib = v->shown;
    if (!c->critical && v->contrib > HA_WARN)
        v->contrib = HA_WARN;
    /* liveness: a check not yet decided does not fail it: a restart while
     * the application starts is what startup probes exist to prevent */
    if (r->probe == HA_PI_LIVENESS && v->contrib == HA_INIT)
        v->contrib = HA_UP;
}

/* Appends name to the message list of sum: ", "-separated, "..." once full. */
static void render_list_name(char *buf, size_t cap, size_t *len, const char *name)
{
    if (*len + 5 >= cap)
        return;
    int n = snprintf(buf + *len, cap - *len, "%s%s", *len ? ", " : "", name);
    if (n < 0 || *len + (size_t)n + 5 >= cap) {
        snprintf(buf + *len, cap - *len, "%s...", *len ? ", " : "");
        *len = cap; /* full: no more names */
        return;
    }
    *len += (size_t)n;
}

/* The built-in aggregates and the Lua one's fallback over the covered
 * checks: fills sum->status and, for quorum, any and the fallback,
 * sum->message. No covered check (every member excluded, or a group of
 * none) reads UP under every aggregate, as a probe with no checks. A
 * quorum not met reads INIT while its undecided members could still make
 * it, else DOWN. */
static void render_aggregate(const ha_snapshot *s, const ha_render_req *r, render_summary *sum)
{
    const ha_snap_group *g = sum->agg;
    ha_agg_kind kind = g ? g->kind : HA_AGG_WORST;
    render_iter it;
    render_view v;
    size_t i, n = 0, pass = 0, undecided = 0, flen = 0;
    ha_status worst = HA_UP, worst_pass = HA_UP, worst_fail = HA_INIT;
    int expired = -1;
    char failing[160] = "";

    render_iter_init(&it, s, sum);
    while (render_next(&it, r, &i)) {
        render_view_of(s, i, r, &v);
        if (v.shown == HA_INIT && v.contrib == HA_UP)
            sum->init_held = true;
        if (v.contrib > worst)
            worst = v.contrib;
        n++;
        if (v.contrib <= HA_WARN) {
            pass++;
            if (v.contrib > worst_pass)
                worst_pass = v.contrib;
        } else {
            if (v.contrib == HA_DOWN)
                worst_fail = HA_DOWN;
            else
                undecided++;
            render_list_name(failing, sizeof failing, &flen, v.c->name);
        }
        if (expired < 0 && r->age != NULL && v.c->time_ms != 0 && r->age[i] == HA_AGE_EXPIRED)
            expired = (int)i;
    }
    sum->status = worst;
    if (kind == HA_AGG_LUA) {
        if (expired < 0 && r->nexclude == 0) {
            sum->status = g->lua_status;
            sum->message = g->lua_output;
            return;
        }
        if (expired >= 0)
            snprintf(sum->message_buf, sizeof sum->message_buf,
                     "aggregate not applied: %s has no recent result; worst of the members instead",
                     s->checks[expired].name);
        else
            snprintf(sum->message_buf, sizeof sum->message_buf,
                     "aggregate not applied to a partial view (exclude); worst of the members instead");
        sum->message = sum->message_buf;
        return;
    }
    if (kind != HA_AGG_QUORUM && kind != HA_AGG_ANY)
        return;
    if (n == 0) {
        /* nothing to judge passes, whatever the rule, as a probe with
         * every check excluded (or none) does: UP from worst above */
        snprintf(sum->message_buf, sizeof sum->message_buf, "%s",
                 r->nexclude ? "every member excluded" : "no members");
        sum->message = sum->message_buf;
        return;
    }
    size_t need = kind == HA_AGG_ANY ? 1 : g->min_up;
    if (kind == HA_AGG_QUORUM && g->min_up == 0) {
        double x = g->ratio * (double)n;
        need = (size_t)x;
        if ((double)need < x)
            need++;
        if (need == 0)
            need = 1;
    }
    if (pass >= need) {
        sum->status = worst_pass;
        if (pass < n)
            snprintf(sum->message_buf, sizeof sum->message_buf, "%zu of %zu up (%zu needed); failing: %s",
                     pass, n, need, failing);
        else
            snprintf(sum->message_buf, sizeof sum->message_buf, "%zu of %zu up (%zu needed)", pass, n, need);
    } else {
        /* INIT while the undecided members could still make the quorum;
         * DOWN once a member is DOWN or too few are left to make it */
        sum->status = pass + undecided >= need ? worst_fail : HA_DOWN;
        snprintf(sum->message_buf, sizeof sum->message_buf, "%zu of %zu up, %zu needed%s%s", pass, n, need,
                 flen ? "; failing: " : "", failing);
    }
    sum->message = sum->message_buf;
}

/* Computes the aggregate and the top-level reason. Returns 0, or -1 when
 * r->group names no group, or r->only a check that is absent or outside the
 * probe or group. */
static int render_summarize(const ha_snapshot *s, const ha_render_req *r, render_summary *sum)
{
    render_view v;

    memset(sum, 0, offsetof(render_summary, reason_buf));
    sum->only = -1;
    sum->status = HA_UP;
    sum->message = NULL;
    if (r->group.p != NULL) {
        int gi = snapshot_find_group(s, r->group.p, r->group.len);
        if (gi < 0 || s->groups[gi].probe >= 0)
            return -1;
        sum->group = sum->agg = &s->groups[gi];
    } else if (s != NULL && r->probe >= 0 && r->probe < HA_NPROBES && s->probe_group[r->probe] != 0 &&
               s->probe_group[r->probe] <= s->ngroups) {
        sum->agg = &s->groups[s->probe_group[r->probe] - 1];
    }
    if (r->only.p != NULL) {
        int i = snapshot_find(s, r->only.p, r->only.len);
        if (i < 0)
            return -1;
        if (sum->group ? !snapshot_group_has(sum->group, (uint32_t)i)
                       : !ha_probe_covers(s->checks[i].probes, r->probe))
            return -1;
        render_view_of(s, (size_t)i, r, &v);
        sum->only = i;
        sum->status = v.contrib;
        sum->init_held = v.shown == HA_INIT && v.contrib == HA_UP;
        return 0;
    }
    render_aggregate(s, r, sum);
    if (sum->group != NULL)
        return 0; /* the probes' overlays are theirs */
    if (r->probe == HA_PI_LIVENESS && r->stalled_ns > 0) {
        snprintf(sum->reason_buf, sizeof sum->reason_buf, "engine stalled for %llus",
                 (unsigned long long)((r->stalled_ns + HA_NS_PER_S - 1) / HA_NS_PER_S));
        sum->reason = sum->reason_buf;
        sum->status = HA_DOWN;
    } else if (r->probe == HA_PI_READINESS && r->shutdown != NULL) {
        sum->reason = r->shutdown;
        sum->status = HA_DOWN;
    } else if (r->probe == HA_PI_READINESS && r->not_ready) {
        sum->reason = r->not_ready_reason ? r->not_ready_reason : "not ready";
        sum->status = HA_DOWN;
    }
    return 0;
}

/* Appends a NUL-terminated string as a JSON string. */
static void render_json_cstr(ha_buf *b, const char *s) { buf_json_str(b, s, strlen(s)); }

/* Appends one Spring-Boot-style component object {"status":...}. */
static void render_json_component(ha_buf *b, const render_view *v, const ha_render_req *r)
{
    const ha_snap_check *c = v->c;
    buf_printf(b, "{\"status\":\"%s\"", ha_status_name(v->shown));
    if (v->stale)
        buf_adds(b, ",\"stale\":true");
    if (r->full) {
        if (v->output != NULL) {
            buf_adds(b, ",\"output\":");
            render_json_cstr(b, v->output);
        }
        if (c->details_json != NULL && c->details_json[0] != '\0') {
            buf_adds(b, ",\"details\":");
            buf_adds(b, c->details_json); /* already JSON: pasted verbatim */
        }
        if (c->time_ms != 0) {
            char t[32];
            ha_time_format(c->time_ms, t, sizeof t);
            buf_printf(b, ",\"duration_ms\":%llu,\"time\":\"%s\"", (unsigned long long)c->duration_ms,
                       t);
        }
    }
    buf_addc(b, '}');
}

/* {"status":..., ["reason":...,] "components":{...} [,"load_error":{...}]} */
static void render_json(ha_buf *b, const ha_snapshot *s, const ha_render_req *r,
                        const render_summary *sum)
{
    render_view v;
    bool first = true;

    if (sum->only >= 0) {
        render_view_of(s, (size_t)sum->only, r, &v);
        render_json_component(b, &v, r);
        return;
    }
    buf_printf(b, "{\"status\":\"%s\"", ha_status_name(sum->status));
    if (sum->reason != NULL) {
        buf_adds(b, ",\"reason\":");
        render_json_cstr(b, sum->reason);
    }
    if (r->full && sum->message != NULL) {
        buf_adds(b, ",\"output\":");
        render_json_cstr(b, sum->message);
    }
    buf_adds(b, ",\"components\":{");
    render_iter it;
    size_t i;
    render_iter_init(&it, s, sum);
    while (render_next(&it, r, &i)) {
        render_view_of(s, i, r, &v);
        if (!first)
            buf_addc(b, ',');
        first = false;
        render_json_cstr(b, v.c->name);
        buf_addc(b, ':');
        render_json_component(b, &v, r);
    }
    buf_addc(b, '}');
    if (r->full && s != NULL && s->load_error != NULL) {
        buf_adds(b, ",\"load_error\":{\"message\":");
        render_json_cstr(b, s->load_error);
        if (s->load_error_ms != 0) {
            char t[32];
            ha_time_format(s->load_error_ms, t, sizeof t);
            buf_printf(b, ",\"time\":\"%s\"", t);
        }
        buf_addc(b, '}');
    }
    buf_addc(b, '}');
}

/* Appends one entry of the draft's "checks" object (draft-inadarei-api-
 * health-check): the key "{componentName}:{measurementName}" is
 * "<check>:responseTime", the value a one-element array of {componentId,
 * componentType, status} and, for a full view of a check with a result,
 * observedValue (the last run's duration) in observedUnit "ms", time, and
 * output unless the status is pass (the draft omits it there). */
static void render_health_check(ha_buf *b, const render_view *v, const ha_render_req *r)
{
    const ha_snap_check *c = v->c;
    ha_status st = v->shown;
    ha_buf key = HA_BUF_INIT;
    buf_adds(&key, c->name);
    buf_adds(&key, ":responseTime");
    buf_json_str(b, key.data, key.len);
    buf_free(&key);
    buf_adds(b, ":[{\"componentId\":");
    render_json_cstr(b, c->name);
    buf_adds(b, ",\"componentType\":");
    render_json_cstr(b, c->component_type[0] ? c->component_type : "component");
    buf_printf(b, ",\"status\":\"%s\"", ha_status_ietf(st));
    if (v->stale)
        buf_adds(b, ",\"stale\":true");
    if (r->full) {
        if (c->time_ms != 0) {
            char t[32];
            ha_time_format(c->time_ms, t, sizeof t);
            buf_printf(b, ",\"observedValue\":%llu,\"observedUnit\":\"ms\",\"time\":\"%s\"",
                       (unsigned long long)c->duration_ms, t);
        }
        if (v->output != NULL && st != HA_UP) {
            buf_adds(b, ",\"output\":");
            render_json_cstr(b, v->output);
        }
    }
    buf_adds(b, "}]");
}

/* {"status":"pass", ["output":reason,] "checks":{...}} */
static void render_health(ha_buf *b, const ha_snapshot *s, const ha_render_req *r,
                          const render_summary *sum)
{
    render_view v;
    bool first = true;
    render_iter it;
    size_t i;

    buf_printf(b, "{\"status\":\"%s\"", ha_status_ietf(sum->status));
    if (sum->reason != NULL) {
        buf_adds(b, ",\"output\":");
        render_json_cstr(b, sum->reason);
    } else if (r->full && sum->message != NULL && sum->only < 0) {
        buf_adds(b, ",\"output\":");
        render_json_cstr(b, sum->message);
    }
    buf_adds(b, ",\"checks\":{");
    render_iter_init(&it, s, sum);
    while (sum->only >= 0 ? (i = (size_t)sum->only, it.k++ == 0) : render_next(&it, r, &i)) {
        render_view_of(s, i, r, &v);
        if (!first)
            buf_addc(b, ',');
        first = false;
        render_health_check(b, &v, r);
    }
    buf_adds(b, "}}");
}

/* Appends s as one line of valid UTF-8 (see buf_text_line). */
static void render_line_text(ha_buf *b, const char *s)
{
    buf_text_line(b, s, strlen(s));
}

/* One kube-apiserver line: "[+]name ok" when the check does not fail the
 * probe ("[+]name pending: no result yet" for an undecided liveness check),
 * else "[-]name failed: <output or reason withheld>"; " (stale)"
 * follows when an old result is shown. */
static void render_verbose_line(ha_buf *b, const render_view *v, const ha_render_req *r)
{
    buf_adds(b, v->contrib <= HA_WARN ? "[+]" : "[-]");
    render_line_text(b, v->c->name);
    if (v->contrib <= HA_WARN && v->shown == HA_INIT) {
        buf_adds(b, " pending: no result yet"); /* liveness: not failing, not ok either */
    } else if (v->contrib <= HA_WARN) {
        buf_adds(b, " ok");
    } else {
        buf_adds(b, " failed: ");
        if (!r->full)
            buf_adds(b, "reason withheld");
        else
            render_line_text(b, v->output ? v->output : ha_status_name(v->shown));
    }
    if (v->stale)
        buf_adds(b, " (stale)");
    buf_addc(b, '\n');
}

/* kube-apiserver ?verbose text: check lines, the reason, the verdict. */
static void render_verbose(ha_buf *b, const ha_snapshot *s, const ha_render_req *r,
                           const render_summary *sum)
{
    render_view v;
    int pi = r->probe >= 0 && r->probe < HA_NPROBES ? r->probe : HA_PI_HEALTH;
    render_iter it;
    size_t i;

    render_iter_init(&it, s, sum);
    while (sum->only >= 0 ? (i = (size_t)sum->only, it.k++ == 0) : render_next(&it, r, &i)) {
        render_view_of(s, i, r, &v);
        render_verbose_line(b, &v, r);
    }
    if (sum->reason != NULL) {
        buf_adds(b, "[-]");
        render_line_text(b, sum->reason);
        buf_addc(b, '\n');
    }
    if (r->full && sum->message != NULL && sum->only < 0) {
        buf_adds(b, "aggregate: ");
        render_line_text(b, sum->message);
        buf_addc(b, '\n');
    }
    if (sum->group != NULL) {
        buf_adds(b, "group ");
        render_line_text(b, sum->group->name);
        buf_printf(b, " check %s\n", sum->status <= HA_WARN ? "passed" : "failed");
    } else {
        buf_printf(b, "%s check %s\n", render_short[pi], sum->status <= HA_WARN ? "passed" : "failed");
    }
}

/* Renders the answer into out; out->body is (re)initialised here and owned
 * by the caller afterwards, also when empty. Returns -1 (out->body empty)
 * when r->only is absent from the snapshot or from the probe. */
int front_render(const ha_snapshot *s, const ha_probe_conf *pc, const ha_render_req *r,
                 ha_render_out *out)
{
    render_summary sum;
    ha_format fmt = (unsigned)r->format < HA_NFORMATS ? r->format : HA_FMT_JSON;

    out->body = (ha_buf)HA_BUF_INIT;
    out->content_type = render_types[fmt];
    if (render_summarize(s, r, &sum) < 0) {
        out->status = HA_DOWN;
        out->http_status = 404;
        return -1;
    }
    out->status = sum.status;
    ha_status code_st = sum.status;
    /* liveness reads an undecided check as passing; status_codes.INIT,
     * when given, answers it with its own code */
    if (r->probe == HA_PI_LIVENESS && sum.init_held && sum.status <= HA_WARN &&
        ((pc != NULL && pc->codes[HA_INIT] != 0) || (sum.agg != NULL && sum.agg->codes[HA_INIT] != 0)))
        code_st = HA_INIT;
    out->http_status = front_render_code(pc, sum.agg, code_st);
    switch (fmt) {
    case HA_FMT_HEALTH_JSON: render_health(&out->body, s, r, &sum); break;
    case HA_FMT_VERBOSE: render_verbose(&out->body, s, r, &sum); break;
    default: render_json(&out->body, s, r, &sum); break;
    }
    return 0;
}

int front_render_code(const ha_probe_conf *pc, const ha_snap_group *g, ha_status st)
{
    unsigned k = (unsigned)st < HA_NSTATUS ? (unsigned)st : HA_DOWN;
    bool pass = st <= HA_WARN;
    if (g != NULL && g->codes[k] != 0)
        return g->codes[k];
    if (pc != NULL && pc->codes[k] != 0)
        return pc->codes[k];
    if (g != NULL && (pass ? g->success_status : g->failure_status) != 0)
        return pass ? g->success_status : g->failure_status;
    if (pc != NULL)
        return pass ? pc->success_status : pc->failure_status;
    return pass ? 200 : 503;
}

/* The aggregate front_render would answer; HA_DOWN when r->only is invalid. */
ha_status front_render_status(const ha_snapshot *s, const ha_render_req *r)
{
    return front_render_verdict(s, r, NULL, 0);
}

ha_status front_render_verdict(const ha_snapshot *s, const ha_render_req *r, char *msg, size_t cap)
{
    render_summary sum;
    if (cap)
        msg[0] = '\0';
    if (render_summarize(s, r, &sum) < 0)
        return HA_DOWN;
    if (cap && sum.message != NULL)
        snprintf(msg, cap, "%s", sum.message);
    return sum.status;
}
