/* front_status.c: the HTML status page and the checks and groups part of
 * /-/status (see front_status.h). */
#include "front_status.h"

#include <stdio.h>
#include <string.h>

static const char *const status_probe[HA_NPROBES] = {"liveness", "readiness", "startup", "health"};
static const char *const status_result[HA_NRESULTS] = {"up", "warn", "down", "timeout", "error"};

/* The order checks are listed in: the ones needing attention first. */
static const ha_status status_order[4] = {HA_DOWN, HA_WARN, HA_INIT, HA_UP};

void front_status_escape(ha_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(b, n * 6); /* the longest replacement per byte: &quot; */
    char *o = b->data + b->len;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t ul = buf_utf8_len(p + i, n - i);
            if (ul) {
                memcpy(o, p + i, ul);
                o += ul;
                i += ul;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD, no longer than the 6 reserved */
                o += 3;
                i++;
            }
            continue;
        }
        i++;
        switch (c) {
        case '&': memcpy(o, "&amp;", 5); o += 5; break;
        case '<': memcpy(o, "&lt;", 4); o += 4; break;
        case '>': memcpy(o, "&gt;", 4); o += 4; break;
        case '"': memcpy(o, "&quot;", 6); o += 6; break;
        case '\'': memcpy(o, "&#39;", 5); o += 5; break;
        default: *o++ = c < 0x20 || c == 0x7f ? ' ' : (char)c; break;
        }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

static void status_esc(ha_buf *b, const char *s)
{
    if (s)
        front_status_escape(b, s, strlen(s));
}

/* "2026-12-01 17:00:05Z", or "never" for 0. */
static void status_time(ha_buf *b, int64_t ms)
{
    if (ms == 0) {
        buf_adds(b, "never");
        return;
    }
    char t[32];
    ha_time_format(ms, t, sizeof t);
    t[10] = ' ';
    t[19] = 'Z'; /* drop the milliseconds */
    t[20] = '\0';
    buf_adds(b, t);
}

/* A table cell's time: "17:00:05Z" on the page's day, else with the date;
 * the full time in the hover text. */
static void status_when(ha_buf *b, int64_t ms, int64_t now_ms)
{
    if (ms == 0) {
        buf_adds(b, "<span class=\"muted\">never</span>");
        return;
    }
    char t[32];
    ha_time_format(ms, t, sizeof t);
    buf_adds(b, "<time title=\"");
    buf_adds(b, t);
    buf_adds(b, "\">");
    if (ms / 86400000 == now_ms / 86400000) {
        buf_add(b, t + 11, 8);
    } else {
        buf_add(b, t, 10);
        buf_addc(b, ' ');
        buf_add(b, t + 11, 5);
    }
    buf_adds(b, "Z</time>");
}

/* Writes "17:00:05" of a wall time (UTC) at o; returns the end. */
static char *status_put_clock(char *o, int64_t ms)
{
    int64_t day = (ms / 1000) % 86400;
    o[0] = (char)('0' + day / 36000);
    o[1] = (char)('0' + day / 3600 % 10);
    o[2] = ':';
    o[3] = (char)('0' + day % 3600 / 600);
    o[4] = (char)('0' + day % 3600 / 60 % 10);
    o[5] = ':';
    o[6] = (char)('0' + day % 60 / 10);
    o[7] = (char)('0' + day % 10);
    return o + 8;
}


/* Writes "0.4 ms", "12 ms" or "1.25 s" at o (at most 26 bytes); returns the end. */
static char *status_put_duration(char *o, uint64_t us)
{
    if (us < 10000) {
        o = ha_put_u64(o, us / 1000);
        *o++ = '.';
        *o++ = (char)('0' + us / 100 % 10);
        memcpy(o, " ms", 3);
        return o + 3;
    }
    if (us < 1000000) {
        o = ha_put_u64(o, us / 1000);
        memcpy(o, " ms", 3);
        return o + 3;
    }
    o = ha_put_u64(o, us / 1000000);
    *o++ = '.';
    *o++ = (char)('0' + us / 100000 % 10);
    *o++ = (char)('0' + us / 10000 % 10);
    memcpy(o, " s", 2);
    return o + 2;
}

static void status_duration_us(ha_buf *b, uint64_t us)
{
    buf_reserve(b, 32);
    b->len = (size_t)(status_put_duration(b->data + b->len, us) - b->data);
    b->data[b->len] = '\0';
}

static void status_dur(ha_buf *b, uint64_t ns)
{
    char d[32];
    ha_duration_format(ns, d, sizeof d);
    buf_adds(b, d);
}

/* --- HTML ------------------------------------------------------------------ */

static const char status_css[] =
    ":root{--bg:#f6f7f9;--fg:#1b1f24;--muted:#5b6470;--card:#fff;--line:#dde1e6;"
    "--up:#1a7f37;--warn:#9a6700;--down:#cf222e;--init:#6e7781}"
    "@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;--card:#161b22;"
    "--line:#30363d;--up:#3fb950;--warn:#d29922;--down:#f85149;--init:#8d96a0}}"
    "*{box-sizing:border-box}"
    "body{margin:0;padding:16px;background:var(--bg);color:var(--fg);"
    "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    "main{max-width:1200px;margin:0 auto}"
    "h1{font-size:22px;margin:0 0 4px;display:flex;gap:10px;align-items:center;flex-wrap:wrap}"
    "h2{font-size:16px;margin:22px 0 8px}"
    ".muted{color:var(--muted);font-size:13px}"
    ".badge{display:inline-block;padding:1px 9px;border-radius:12px;font-size:13px;font-weight:600;"
    "color:#fff;letter-spacing:.03em}"
    ".b-UP{background:var(--up)}.b-WARN{background:var(--warn)}.b-DOWN{background:var(--down)}"
    ".b-INIT{background:var(--init)}"
    ".t-UP{color:var(--up)}.t-WARN{color:var(--warn)}.t-DOWN{color:var(--down)}.t-INIT{color:var(--init)}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}"
    ".card b{display:block;font-size:13px;color:var(--muted);font-weight:500}"
    ".card .v{font-size:17px;font-weight:600}"
    ".err{border-color:var(--down)}"
    "table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;overflow:hidden}"
    "th,td{text-align:left;padding:7px 10px;border-top:1px solid var(--line);vertical-align:top}"
    "th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);border-top:0}"
    "td.name{font-weight:600;overflow-wrap:anywhere;min-width:110px;max-width:260px}"
    "td.nw{white-space:nowrap}"
    ".tag{display:inline-block;margin-top:2px;padding:0 6px;border:1px solid var(--line);border-radius:9px;"
    "font-size:11px;font-weight:500;color:var(--muted)}"
    "td.out{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;word-break:break-word;"
    "max-width:360px}"
    ".strip{display:flex;gap:1px;width:max-content}"
    ".strip i{display:block;width:4px;height:18px;border-radius:1px}"
    ".strip i.UP{background:var(--up)}.strip i.WARN{background:var(--warn)}"
    ".strip i.DOWN{background:var(--down)}.strip i.INIT{background:var(--init)}"
    "@media (max-width:760px){body{padding:10px}thead{display:none}table,tbody,tr,td{display:block;width:100%}"
    "tr{border-top:1px solid var(--line);padding:6px 0}td{border:0;padding:3px 10px}"
    "td[data-l]::before{content:attr(data-l) ': ';color:var(--muted);font-size:12px}"
    "td.out{max-width:none}}";

static void status_badge(ha_buf *b, ha_status st)
{
    buf_printf(b, "<span class=\"badge b-%s\">%s</span>", ha_status_name(st), ha_status_name(st));
}

/* The card of one probe: status in words, path and the code it answers. */
static void status_probe_card(ha_buf *b, const ha_snapshot *s, const ha_page_view *v, int pi)
{
    const ha_probe_conf *pc = &v->cfg->probes[pi];
    ha_status st = v->probe_status[pi];
    const char *why = NULL;
    if (pi == HA_PI_LIVENESS && v->stalled_ns)
        why = "engine stalled";
    else if (pi == HA_PI_READINESS && v->shutting_down)
        why = "shutting down";
    else if (pi == HA_PI_READINESS && s && s->ready_override)
        why = s->override_reason ? s->override_reason : "not ready";
    buf_printf(b, "<div class=\"card probe\" id=\"probe-%s\"><b>%s</b><span class=\"v t-%s\">%s</span>",
               status_probe[pi], status_probe[pi], ha_status_name(st), ha_status_name(st));
    buf_adds(b, "<div class=\"muted\">");
    status_esc(b, pc->paths[0]);
    buf_printf(b, " &rarr; %d</div>", st == HA_UP || st == HA_WARN ? pc->success_status : pc->failure_status);
    if (why) {
        buf_adds(b, "<div class=\"muted\">");
        status_esc(b, why);
        buf_adds(b, "</div>");
    }
    buf_adds(b, "</div>");
}

static void status_header(ha_buf *b, const ha_snapshot *s, const ha_page_view *v)
{
    ha_status all = v->probe_status[HA_PI_HEALTH];
    buf_printf(b,
               "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
               "<meta http-equiv=\"refresh\" content=\"%d\">"
               "<meta name=\"color-scheme\" content=\"light dark\">"
               "<title>%s - healthagent</title><style>%s</style></head><body><main>",
               HA_PAGE_REFRESH_S, ha_status_name(all), status_css);
    buf_adds(b, "<h1>healthagent <span id=\"overall\">");
    status_badge(b, all);
    buf_adds(b, "</span></h1><p class=\"muted\">version " HA_VERSION " &middot; commit ");
    status_esc(b, v->commit);
    buf_adds(b, " &middot; started ");
    status_time(b, v->start_ms);
    buf_adds(b, " &middot; page of ");
    status_time(b, v->now_ms);
    buf_printf(b, ", refreshes every %ds</p>", HA_PAGE_REFRESH_S);

    buf_adds(b, "<h2>Probes</h2><div class=\"grid\">");
    for (int pi = 0; pi < HA_NPROBES; pi++)
        status_probe_card(b, s, v, pi);
    buf_adds(b, "</div><h2>Agent</h2><div class=\"grid\">");
    buf_adds(b, "<div class=\"card\" id=\"engine\"><b>engine</b>");
    if (v->stalled_ns)
        buf_printf(b, "<span class=\"v t-DOWN\">STALLED for %llus</span>",
                   (unsigned long long)(v->stalled_ns / HA_NS_PER_S));
    else
        buf_printf(b, "<span class=\"v\">running</span><div class=\"muted\">lag %.1f ms</div>",
                   (double)v->engine_lag_ns / 1e6);
    buf_adds(b, "</div><div class=\"card\" id=\"scripts\"><b>scripts</b>");
    if (s)
        buf_printf(b, "<span class=\"v\">generation %llu</span><div class=\"muted\">%zu checks, %llu reloads",
                   (unsigned long long)s->generation, s->n, (unsigned long long)s->reloads);
    else
        buf_adds(b, "<span class=\"v\">starting</span><div class=\"muted\">");
    buf_adds(b, "</div><div class=\"muted\">since ");
    status_time(b, s ? s->reload_ms : 0);
    buf_adds(b, "</div></div>");
    if (s && s->load_error) {
        buf_adds(b, "<div class=\"card err\" id=\"load-error\"><b>last reload failed</b><span class=\"t-DOWN\">");
        status_time(b, s->load_error_ms);
        buf_adds(b, "</span><div class=\"muted\">");
        if (v->full)
            status_esc(b, s->load_error);
        else
            buf_adds(b, "details for trusted clients");
        buf_adds(b, "</div></div>");
    }
    buf_adds(b, "</div>");
}

/* The strip of past results, oldest first, each with its hover text. The
 * page's hot loop (60 entries per check): raw stores into reserved room. */
static void status_strip(ha_buf *b, const ha_hist *h, bool full, uint32_t keep)
{
    buf_adds(b, "<div class=\"strip\">");
    for (uint32_t k = h && h->n > keep ? h->n - keep : 0; h && k < h->n; k++) {
        const ha_hist_entry *e = &h->e[k];
        const char *st = ha_status_name((ha_status)e->status);
        const char *res = status_result[e->result < HA_NRESULTS ? e->result : HA_RES_ERROR];
        size_t sl = strlen(st), rl = strlen(res);
        buf_reserve(b, 64 + 2 * sl + rl);
        char *o = b->data + b->len;
        memcpy(o, "<i class=\"", 10);
        o += 10;
        memcpy(o, st, sl);
        o += sl;
        memcpy(o, "\" title=\"", 9);
        o += 9;
        o = status_put_clock(o, e->time_ms);
        *o++ = ' ';
        memcpy(o, st, sl);
        o += sl;
        *o++ = ' ';
        memcpy(o, res, rl);
        o += rl;
        *o++ = ' ';
        o = status_put_duration(o, e->duration_us);
        b->len = (size_t)(o - b->data);
        if (full && e->output[0]) {
            buf_add(b, ": ", 2);
            front_status_escape(b, e->output, strnlen(e->output, sizeof e->output));
        }
        buf_add(b, "\"></i>", 6);
    }
    buf_adds(b, "</div>");
}

static void status_row(ha_buf *b, const ha_snap_check *c, unsigned char age, const ha_page_view *v, uint32_t keep)
{
    const ha_hist *h = c->hist;
    buf_adds(b, "<tr class=\"check\" id=\"check-");
    status_esc(b, c->name);
    buf_adds(b, "\"><td class=\"name\" data-l=\"check\">");
    status_esc(b, c->name);
    buf_printf(b, "%s</td><td data-l=\"status\" class=\"t-%s\"><b>%s</b>%s%s</td>",
               c->critical ? "" : "<br><span class=\"tag\">non-critical</span>", ha_status_name(c->status),
               ha_status_name(c->status), c->running ? " <span class=\"muted\">running</span>" : "",
               age == HA_AGE_STALE     ? "<br><span class=\"tag\">stale</span>"
               : age == HA_AGE_EXPIRED ? "<br><span class=\"tag\">expired: no recent result</span>"
                                       : "");
    buf_adds(b, "<td class=\"nw\" data-l=\"since\">");
    status_when(b, h ? h->transition_ms : 0, v->now_ms);
    buf_adds(b, "</td><td class=\"nw\" data-l=\"last run\">");
    status_when(b, c->time_ms, v->now_ms);
    buf_adds(b, "</td><td class=\"nw\" data-l=\"duration\">");
    if (c->time_ms)
        status_duration_us(b, h && h->n ? h->e[h->n - 1].duration_us : c->duration_ms * 1000);
    else
        buf_adds(b, "-");
    buf_adds(b, "</td><td class=\"nw\" data-l=\"ttl / interval\">");
    status_dur(b, c->ttl_ns);
    buf_adds(b, " / ");
    if (c->interval_ns)
        status_dur(b, c->interval_ns);
    else
        buf_adds(b, "on demand");
    buf_printf(b, "</td><td class=\"nw\" data-l=\"thresholds\">fail %d/%d<br>ok %d/%d</td>", c->consec_fail,
               c->failure_threshold, c->consec_ok, c->success_threshold);
    buf_adds(b, "<td data-l=\"history\">");
    status_strip(b, h, v->full, keep);
    buf_adds(b, "</td>");
    if (v->full) {
        buf_adds(b, "<td class=\"out\" data-l=\"output\">");
        status_esc(b, c->output);
        buf_adds(b, "</td>");
    }
    buf_adds(b, "</tr>");
}

/* --- groups (both forms) ---------------------------------------------------- */

/* The status and message of group g as its answer (/groupz/<name>, or the
 * probe's for a probe's own group) reads now: [msg, cap) gets the message. */
static ha_status status_group_verdict(const ha_snapshot *s, const ha_snap_group *g, const ha_page_view *v,
                                      char *msg, size_t cap)
{
    ha_render_req rr = {0};
    rr.probe = g->probe >= 0 && g->probe < HA_NPROBES ? g->probe : HA_PI_HEALTH;
    if (g->probe < 0)
        rr.group = (ha_str){g->name, strlen(g->name)};
    rr.age = v->age;
    rr.stalled_ns = v->stalled_ns;
    ha_status st = front_render_verdict(s, &rr, msg, cap);
    return g->probe >= 0 && g->probe < HA_NPROBES ? v->probe_status[g->probe] : st; /* with its overlays */
}

/* "worst", "any", "quorum: 2 up", "quorum: 50% up" or "lua" into a[0..cap). */
static void status_group_rule(const ha_snap_group *g, char *a, size_t cap)
{
    if (g->kind == HA_AGG_QUORUM && g->min_up)
        snprintf(a, cap, "quorum: %u up", (unsigned)g->min_up);
    else if (g->kind == HA_AGG_QUORUM)
        snprintf(a, cap, "quorum: %g%% up", g->ratio * 100);
    else
        snprintf(a, cap, "%s", g->kind == HA_AGG_ANY ? "any" : g->kind == HA_AGG_LUA ? "lua" : "worst");
}

/* How many member names each group lists (the rest are counted): an even
 * share of HA_PAGE_MEMBER_BUDGET, at least HA_PAGE_MEMBERS_MIN. */
static uint32_t status_members_keep(const ha_snapshot *s)
{
    size_t keep = s->ngroups ? HA_PAGE_MEMBER_BUDGET / s->ngroups : HA_PAGE_MEMBER_BUDGET;
    return (uint32_t)(keep < HA_PAGE_MEMBERS_MIN ? HA_PAGE_MEMBERS_MIN : keep);
}

#define STATUS_MSG_CAP 1280 /* an aggregate's message: a Lua verdict's output is at most 1 KiB */

/* One row of the groups table: name, status, rule, where it answers, its
 * Lua verdict's time, members (each a link to its check's row, coloured by
 * its status; past keep, a count) and, for full views, the message. */
static void status_group_row(ha_buf *b, const ha_snapshot *s, const ha_snap_group *g, const ha_page_view *v,
                             uint32_t keep)
{
    char msg[STATUS_MSG_CAP], rule[48];
    ha_status st = status_group_verdict(s, g, v, msg, sizeof msg);
    status_group_rule(g, rule, sizeof rule);
    buf_adds(b, "<tr class=\"group\" id=\"group-");
    status_esc(b, g->name);
    buf_adds(b, "\"><td class=\"name\" data-l=\"group\">");
    status_esc(b, g->name);
    buf_printf(b, "</td><td data-l=\"status\" class=\"t-%s\"><b>%s</b></td><td class=\"nw\" data-l=\"aggregate\">%s"
                  "</td><td data-l=\"path\">",
               ha_status_name(st), ha_status_name(st), rule);
    if (g->probe >= 0 && g->probe < HA_NPROBES) {
        buf_adds(b, "probe ");
        buf_adds(b, status_probe[g->probe]);
    } else {
        buf_adds(b, "/groupz/");
        status_esc(b, g->name);
        if (g->path) {
            buf_adds(b, "<br>");
            status_esc(b, g->path);
        }
    }
    buf_adds(b, "</td><td class=\"nw\" data-l=\"last run\">");
    if (g->kind == HA_AGG_LUA)
        status_when(b, g->lua_time_ms, v->now_ms);
    else
        buf_adds(b, "<span class=\"muted\">per answer</span>");
    buf_printf(b, "</td><td data-l=\"members\"><span class=\"muted\">%u:</span>", (unsigned)g->nmembers);
    for (uint32_t k = 0; k < g->nmembers && k < keep; k++) {
        if (g->members[k] >= s->n)
            continue;
        const ha_snap_check *c = &s->checks[g->members[k]];
        buf_printf(b, " <a class=\"t-%s\" href=\"#check-", ha_status_name(c->status));
        status_esc(b, c->name);
        buf_adds(b, "\">");
        status_esc(b, c->name);
        buf_adds(b, "</a>");
    }
    if (g->nmembers > keep)
        buf_printf(b, " <span class=\"muted\">and %u more</span>", (unsigned)(g->nmembers - keep));
    buf_adds(b, "</td>");
    if (v->full) {
        buf_adds(b, "<td class=\"out\" data-l=\"output\">");
        status_esc(b, msg);
        buf_adds(b, "</td>");
    }
    buf_adds(b, "</tr>");
}

/* The groups table, when the scripts define groups. */
static void status_groups(ha_buf *b, const ha_snapshot *s, const ha_page_view *v)
{
    if (s == NULL || s->ngroups == 0)
        return;
    buf_printf(b, "<h2>Groups <span class=\"muted\" id=\"groups-summary\">%zu</span></h2>", s->ngroups);
    buf_adds(b, "<table><thead><tr><th>group</th><th>status</th><th>aggregate</th><th>answers at</th>"
                "<th>last run</th><th>members</th>");
    buf_adds(b, v->full ? "<th>output</th></tr></thead><tbody>" : "</tr></thead><tbody>");
    uint32_t keep = status_members_keep(s);
    for (size_t i = 0; i < s->ngroups; i++)
        status_group_row(b, s, &s->groups[i], v, keep);
    buf_adds(b, "</tbody></table>");
}

void front_status_html(const ha_snapshot *s, const ha_page_view *v, ha_buf *b)
{
    status_header(b, s, v);
    status_groups(b, s, v);
    size_t count[4] = {0};
    for (size_t i = 0; s && i < s->n; i++)
        count[s->checks[i].status]++;
    buf_printf(b, "<h2>Checks <span class=\"muted\" id=\"summary\">%zu UP &middot; %zu WARN &middot; %zu DOWN "
                  "&middot; %zu INIT</span></h2>",
               count[HA_UP], count[HA_WARN], count[HA_DOWN], count[HA_INIT]);
    buf_adds(b, "<table><thead><tr><th>check</th><th>status</th><th>since</th><th>last run</th><th>duration</th>"
                "<th>ttl / interval</th><th>thresholds</th><th>history</th>");
    buf_adds(b, v->full ? "<th>output</th></tr></thead><tbody>" : "</tr></thead><tbody>");
    size_t n = s ? s->n : 0;
    uint32_t keep = n ? (uint32_t)(HA_PAGE_STRIP_BUDGET / n) : HA_HIST_MAX;
    keep = keep < 5 ? 5 : keep;
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < n; i++)
            if (s->checks[i].status == status_order[k])
                status_row(b, &s->checks[i], v->age ? v->age[i] : HA_AGE_FRESH, v, keep);
    buf_adds(b, "</tbody></table>");
    if (!v->full)
        buf_adds(b, "<p class=\"muted\" id=\"no-outputs\">Outputs are shown to trusted networks and token clients "
                    "only.</p>");
    buf_adds(b, "<p class=\"muted\">JSON for tools: <code>/-/status</code> &middot; metrics: "
                "<code>/metrics</code></p></main></body></html>\n");
}

/* --- JSON ------------------------------------------------------------------ */

static void status_json_time(ha_buf *b, int64_t ms)
{
    if (ms == 0) {
        buf_adds(b, "null");
        return;
    }
    char t[32];
    ha_time_format(ms, t, sizeof t);
    buf_printf(b, "\"%s\"", t);
}

static void status_json_str(ha_buf *b, const char *s)
{
    if (s)
        buf_json_str(b, s, strlen(s));
    else
        buf_adds(b, "null");
}

static void status_json_check(ha_buf *b, const ha_snap_check *c)
{
    const ha_hist *h = c->hist;
    buf_adds(b, "{\"name\":");
    status_json_str(b, c->name);
    buf_printf(b, ",\"status\":\"%s\",\"result\":\"%s\",\"critical\":%s,\"running\":%s,\"probes\":[",
               ha_status_name(c->status), ha_status_name(c->last), c->critical ? "true" : "false",
               c->running ? "true" : "false");
    const char *sep = "";
    for (int pi = 0; pi < 3; pi++)
        if (c->probes & ha_probe_mask(pi)) {
            buf_printf(b, "%s\"%s\"", sep, status_probe[pi]);
            sep = ",";
        }
    buf_adds(b, "],\"since\":");
    status_json_time(b, h ? h->transition_ms : 0);
    buf_adds(b, ",\"last_run\":");
    status_json_time(b, c->time_ms);
    buf_printf(b,
               ",\"duration_ms\":%llu,\"ttl_s\":%.3f,\"interval_s\":%.3f,\"timeout_s\":%.3f,"
               "\"failure_threshold\":%d,\"success_threshold\":%d,\"consecutive_failures\":%d,"
               "\"consecutive_successes\":%d,\"runs\":%llu,\"transitions\":%llu,\"output\":",
               (unsigned long long)c->duration_ms, (double)c->ttl_ns / 1e9, (double)c->interval_ns / 1e9,
               (double)c->timeout_ns / 1e9, c->failure_threshold, c->success_threshold, c->consec_fail,
               c->consec_ok, (unsigned long long)c->runs, (unsigned long long)(h ? h->transitions : 0));
    status_json_str(b, c->output);
    buf_adds(b, ",\"history\":[");
    for (uint32_t k = 0; h && k < h->n; k++) {
        const ha_hist_entry *e = &h->e[k];
        buf_adds(b, k ? ",{\"time\":" : "{\"time\":");
        status_json_time(b, e->time_ms);
        buf_printf(b, ",\"status\":\"%s\",\"result\":\"%s\",\"duration_ms\":%.3f,\"output\":",
                   ha_status_name((ha_status)e->status), status_result[e->result < HA_NRESULTS ? e->result : 4],
                   (double)e->duration_us / 1000);
        buf_json_str(b, e->output, strlen(e->output));
        buf_addc(b, '}');
    }
    buf_adds(b, "]}");
}

/* One entry of "groups": what the page's row shows, as JSON. */
static void status_json_group(ha_buf *b, const ha_snapshot *s, const ha_snap_group *g, const ha_page_view *v,
                              uint32_t keep)
{
    char msg[STATUS_MSG_CAP];
    ha_status st = status_group_verdict(s, g, v, msg, sizeof msg);
    static const char *const kinds[] = {"worst", "quorum", "any", "lua"};
    buf_adds(b, "{\"name\":");
    status_json_str(b, g->name);
    buf_printf(b, ",\"status\":\"%s\",\"aggregate\":\"%s\"", ha_status_name(st),
               kinds[(unsigned)g->kind < 4 ? g->kind : 0]);
    if (g->kind == HA_AGG_QUORUM && g->min_up)
        buf_printf(b, ",\"min_up\":%u", (unsigned)g->min_up);
    else if (g->kind == HA_AGG_QUORUM)
        buf_printf(b, ",\"ratio\":%g", g->ratio);
    buf_adds(b, ",\"probe\":");
    if (g->probe >= 0 && g->probe < HA_NPROBES)
        buf_printf(b, "\"%s\"", status_probe[g->probe]);
    else
        buf_adds(b, "null");
    buf_adds(b, ",\"path\":");
    status_json_str(b, g->path);
    buf_adds(b, ",\"output\":");
    status_json_str(b, msg[0] ? msg : NULL);
    buf_adds(b, ",\"last_run\":");
    status_json_time(b, g->kind == HA_AGG_LUA ? g->lua_time_ms : 0);
    buf_printf(b, ",\"member_count\":%u,\"members\":[", (unsigned)g->nmembers);
    const char *sep = "";
    for (uint32_t k = 0; k < g->nmembers && k < keep; k++) {
        if (g->members[k] >= s->n)
            continue;
        buf_adds(b, sep);
        status_json_str(b, s->checks[g->members[k]].name);
        sep = ",";
    }
    buf_printf(b, "],\"members_truncated\":%s}", g->nmembers > keep ? "true" : "false");
}

void front_status_json(const ha_snapshot *s, const ha_page_view *v, ha_buf *b)
{
    buf_adds(b, ",\"probes\":{");
    for (int pi = 0; pi < HA_NPROBES; pi++)
        buf_printf(b, "%s\"%s\":\"%s\"", pi ? "," : "", status_probe[pi], ha_status_name(v->probe_status[pi]));
    buf_printf(b, "},\"engine\":{\"stalled\":%s,\"stalled_s\":%llu},\"history_size\":%d,\"check_states\":[",
               v->stalled_ns ? "true" : "false", (unsigned long long)(v->stalled_ns / HA_NS_PER_S),
               v->cfg->history);
    for (size_t i = 0; s && i < s->n; i++) {
        if (i)
            buf_addc(b, ',');
        status_json_check(b, &s->checks[i]);
    }
    buf_adds(b, "],\"groups\":[");
    uint32_t keep = s ? status_members_keep(s) : 0;
    for (size_t i = 0; s && i < s->ngroups; i++) {
        if (i)
            buf_addc(b, ',');
        status_json_group(b, s, &s->groups[i], v, keep);
    }
    buf_addc(b, ']');
}
