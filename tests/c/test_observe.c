/* test_observe.c: the Prometheus exposition (front_metrics.c) and the status
 * page and its JSON (front_status.c) from hand-made snapshots: escaping of
 * hostile names and outputs, the exact lines of one check, what the
 * names-only page leaves out, and the render cost of 1,000 and 10,000
 * checks (printed, not asserted: the benchmark in tests/bench owns targets). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "front_metrics.h"
#include "front_status.h"

#include "testlib.h"

#define T_MS 1795341600000LL /* 2026-11-22T10:00:00.000Z */

static ha_hist *hist(uint32_t n)
{
    ha_hist *h = calloc(1, sizeof *h + n * sizeof h->e[0]);
    atomic_init(&h->refs, 1);
    h->n = n;
    return h;
}

static void check_init(ha_snap_check *c, const char *name, ha_status st)
{
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    c->status = st;
    c->probes = HA_PROBE_READINESS;
    c->critical = true;
    c->ttl_ns = 5 * HA_NS_PER_S;
    c->failure_threshold = c->success_threshold = 1;
}

/* A heap copy of a stack snapshot, for snapshot_free to free it and all it owns. */
static ha_snapshot *heap_copy(const ha_snapshot *s)
{
    ha_snapshot *h = malloc(sizeof *h);
    *h = *s;
    return h;
}

static bool has(const ha_buf *b, const char *needle) { return strstr(b->data ? b->data : "", needle) != NULL; }

static void test_label_escaping(void)
{
    ha_buf b = HA_BUF_INIT;
    front_metrics_label(&b, "a\"b\\c\nd", 7);
    CHECK_STR(buf_cstr(&b), "a\\\"b\\\\c\\nd");
    buf_reset(&b);
    front_metrics_label(&b, "ok\xff\xc3(\xe2\x82\xac", 9); /* bad byte, truncated sequence, then a euro sign */
    CHECK_STR(buf_cstr(&b), "ok\xef\xbf\xbd\xef\xbf\xbd(\xe2\x82\xac");
    buf_reset(&b);
    front_status_escape(&b, "<a href='x'>&\"</a>\n\x01", 20);
    CHECK_STR(buf_cstr(&b), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;  ");
    buf_free(&b);
}

static void test_one_check_lines(void)
{
    ha_snapshot s = {0};
    s.n = 1;
    s.checks = calloc(1, sizeof *s.checks);
    check_init(&s.checks[0], "db", HA_DOWN);
    s.checks[0].time_ms = T_MS + 250;
    ha_hist *h = hist(0);
    h->runs_by[HA_RES_UP] = 3;
    h->runs_by[HA_RES_TIMEOUT] = 2;
    h->buckets[0] = 3; /* <= 1 ms */
    h->buckets[5] = 2; /* <= 250 ms */
    h->duration_sum_us = 400123;
    h->transitions = 2;
    s.checks[0].hist = h;
    s.reloads = 4;
    s.reload_failures = 1;
    s.load_error = strdup("x.lua:1: boom");
    s.load_error_ms = T_MS;
    ha_buf b = HA_BUF_INIT;
    front_metrics_snapshot(&s, NULL, "abc123", &b);
    CHECK(has(&b, "# HELP healthagent_check_status "));
    CHECK(has(&b, "# TYPE healthagent_check_status gauge\n"));
    CHECK(has(&b, "healthagent_check_status{check=\"db\",status=\"UP\"} 0\n"
                  "healthagent_check_status{check=\"db\",status=\"WARN\"} 0\n"
                  "healthagent_check_status{check=\"db\",status=\"DOWN\"} 1\n"
                  "healthagent_check_status{check=\"db\",status=\"INIT\"} 0\n"));
    CHECK(has(&b, "healthagent_check_runs_total{check=\"db\",result=\"timeout\"} 2\n"));
    CHECK(has(&b, "# TYPE healthagent_check_duration_seconds histogram\n"));
    CHECK(has(&b, "healthagent_check_duration_seconds_bucket{check=\"db\",le=\"0.001\"} 3\n"));
    CHECK(has(&b, "healthagent_check_duration_seconds_bucket{check=\"db\",le=\"0.1\"} 3\n"));
    CHECK(has(&b, "healthagent_check_duration_seconds_bucket{check=\"db\",le=\"0.25\"} 5\n"));
    CHECK(has(&b, "healthagent_check_duration_seconds_bucket{check=\"db\",le=\"+Inf\"} 5\n"));
    CHECK(has(&b, "healthagent_check_duration_seconds_sum{check=\"db\"} 0.400123\n"));
    CHECK(has(&b, "healthagent_check_duration_seconds_count{check=\"db\"} 5\n"));
    CHECK(has(&b, "healthagent_check_last_run_timestamp_seconds{check=\"db\"} 1795341600.250\n"));
    CHECK(has(&b, "healthagent_check_transitions_total{check=\"db\"} 2\n"));
    CHECK(has(&b, "healthagent_scripts_reloads_total{result=\"success\"} 4\n"));
    CHECK(has(&b, "healthagent_scripts_reloads_total{result=\"failure\"} 1\n"));
    CHECK(has(&b, "healthagent_scripts_last_reload_successful 0\n"));
    CHECK(has(&b, "healthagent_scripts_last_reload_timestamp_seconds 1795341600.000\n"));
    CHECK(has(&b, "healthagent_build_info{version=\"" HA_VERSION "\",commit=\"abc123\"} 1\n"));
    CHECK(!has(&b, "boom")); /* the load error is an output: never here */
    CHECK(has(&b, "# TYPE healthagent_check_stale gauge\nhealthagent_check_stale{check=\"db\"} 0\n"));
    ha_buf st = HA_BUF_INIT;
    unsigned char age[1] = {HA_AGE_STALE};
    front_metrics_snapshot(&s, age, "abc123", &st);
    CHECK(has(&st, "healthagent_check_stale{check=\"db\"} 1\n"));
    buf_free(&st);
    /* every line is a comment or one sample ending in a number */
    int bad = 0;
    for (char *line = b.data; *line;) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        if (nl == NULL)
            break;
        if (line[0] != '#' && (nl[-1] < '0' || nl[-1] > '9'))
            bad++;
        line = nl + 1;
    }
    CHECK(bad == 0);
    buf_free(&b);
    snapshot_free(heap_copy(&s));
}

/* Names the engine would refuse still come out as valid label values. */
static void test_hostile_names(void)
{
    ha_snapshot s = {0};
    s.n = 2;
    s.checks = calloc(2, sizeof *s.checks);
    check_init(&s.checks[0], "a\"b", HA_UP);
    check_init(&s.checks[1], "c\\d\ne", HA_UP);
    ha_buf b = HA_BUF_INIT;
    front_metrics_snapshot(&s, NULL, "x\"y", &b);
    CHECK(has(&b, "healthagent_check_status{check=\"a\\\"b\",status=\"UP\"} 1\n"));
    CHECK(has(&b, "healthagent_check_transitions_total{check=\"c\\\\d\\ne\"} 0\n"));
    CHECK(has(&b, "commit=\"x\\\"y\"} 1\n"));
    buf_free(&b);
    snapshot_free(heap_copy(&s));
}

static void test_page_audiences(void)
{
    ha_config cfg;
    config_defaults(&cfg);
    ha_snapshot s = {0};
    s.n = 1;
    s.checks = calloc(1, sizeof *s.checks);
    check_init(&s.checks[0], "web", HA_WARN);
    s.checks[0].output = strdup("<img src=x onerror=alert(1)>");
    s.checks[0].time_ms = T_MS;
    ha_hist *h = hist(2);
    h->e[0].time_ms = T_MS - 1000;
    h->e[0].status = HA_UP;
    h->e[0].result = HA_RES_UP;
    strcpy(h->e[0].output, "fine");
    h->e[1].time_ms = T_MS;
    h->e[1].status = HA_WARN;
    h->e[1].result = HA_RES_WARN;
    h->e[1].duration_us = 12500;
    strcpy(h->e[1].output, "slow \"<b>\"");
    h->transition_ms = T_MS;
    s.checks[0].hist = h;
    s.load_error = strdup("web.lua:3: <oops>");
    ha_page_view v = {0};
    v.cfg = &cfg;
    v.commit = "c0ffee";
    v.now_ms = T_MS;
    v.start_ms = T_MS - 60000;
    for (int pi = 0; pi < HA_NPROBES; pi++)
        v.probe_status[pi] = HA_WARN;
    ha_buf full = HA_BUF_INIT, names = HA_BUF_INIT, json = HA_BUF_INIT;
    v.full = true;
    front_status_html(&s, &v, &full);
    v.full = false;
    front_status_html(&s, &v, &names);
    front_status_json(&s, &v, &json);
    CHECK(has(&full, "&lt;img src=x onerror=alert(1)&gt;"));
    CHECK(!has(&full, "<img"));
    CHECK(has(&full, "title=\"10:00:00 WARN warn 12 ms: slow &quot;&lt;b&gt;&quot;\""));
    CHECK(has(&full, "web.lua:3: &lt;oops&gt;"));
    CHECK(has(&full, "<b>WARN</b>"));
    CHECK(has(&names, "<b>WARN</b>"));
    CHECK(!has(&names, "onerror"));
    CHECK(!has(&names, "slow"));
    CHECK(!has(&names, "fine"));
    CHECK(!has(&names, "oops"));
    CHECK(has(&names, "title=\"10:00:00 WARN warn 12 ms\""));
    CHECK(has(&names, "id=\"no-outputs\""));
    CHECK(!has(&full, "<script"));
    CHECK(has(&json, "\"check_states\":[{\"name\":\"web\",\"status\":\"WARN\""));
    CHECK(has(&json, "\"since\":\"2026-11-22T10:00:00.000Z\""));
    CHECK(has(&json, "{\"time\":\"2026-11-22T10:00:00.000Z\",\"status\":\"WARN\",\"result\":\"warn\","
                     "\"duration_ms\":12.500,\"output\":\"slow \\\"<b>\\\"\"}"));
    buf_free(&full);
    buf_free(&names);
    buf_free(&json);
    snapshot_free(heap_copy(&s));
    config_free(&cfg);
}

/* Groups on the page and in /-/status: status as /groupz answers it, the
 * rule, where it answers, the Lua verdict's time, members escaped and cut
 * to the page's share, the message to full views only. */
static void test_page_groups(void)
{
    ha_config cfg;
    config_defaults(&cfg);
    ha_snapshot s = {0};
    s.n = 3;
    s.checks = calloc(3, sizeof *s.checks);
    check_init(&s.checks[0], "a", HA_UP);
    check_init(&s.checks[1], "b", HA_DOWN);
    check_init(&s.checks[2], "c", HA_UP);
    for (int i = 0; i < 3; i++)
        s.checks[i].time_ms = T_MS;
    enum { NG = 1002 };
    s.ngroups = NG;
    s.groups = calloc(NG, sizeof *s.groups);
    uint32_t many[25];
    for (int k = 0; k < 25; k++)
        many[k] = (uint32_t)(k % 3);
    for (int i = 0; i < NG; i++) {
        ha_snap_group *g = &s.groups[i];
        char name[16];
        snprintf(name, sizeof name, i == 0 ? "lua" : i == 1 ? "q" : "z%04d", i);
        g->name = strdup(name);
        g->probe = -1;
        g->members = malloc(sizeof many);
        memcpy(g->members, many, sizeof many);
        g->nmembers = i == 1 ? 3 : i == 2 ? 25 : 2;
    }
    s.groups[0].kind = HA_AGG_LUA;
    s.groups[0].lua_status = HA_WARN;
    s.groups[0].lua_output = strdup("<script>x</script> \"half\"");
    s.groups[0].lua_time_ms = T_MS;
    s.groups[0].path = strdup("/health/<db>");
    s.groups[1].kind = HA_AGG_QUORUM;
    s.groups[1].min_up = 2;
    ha_page_view v = {0};
    v.cfg = &cfg;
    v.now_ms = T_MS;
    ha_buf full = HA_BUF_INIT, names = HA_BUF_INIT, json = HA_BUF_INIT;
    v.full = true;
    front_status_html(&s, &v, &full);
    v.full = false;
    front_status_html(&s, &v, &names);
    front_status_json(&s, &v, &json);
    CHECK(has(&full, "<span class=\"muted\" id=\"groups-summary\">1002</span>"));
    CHECK(has(&full, "<tr class=\"group\" id=\"group-lua\"><td class=\"name\" data-l=\"group\">lua</td>"
                     "<td data-l=\"status\" class=\"t-WARN\"><b>WARN</b></td>"
                     "<td class=\"nw\" data-l=\"aggregate\">lua</td><td data-l=\"path\">/groupz/lua<br>"
                     "/health/&lt;db&gt;</td><td class=\"nw\" data-l=\"last run\"><time title=\"2026-11-22T10:00:00.000Z\">"
                     "10:00:00Z</time></td><td data-l=\"members\"><span class=\"muted\">2:</span> "
                     "<a class=\"t-UP\" href=\"#check-a\">a</a> <a class=\"t-DOWN\" href=\"#check-b\">b</a></td>"
                     "<td class=\"out\" data-l=\"output\">&lt;script&gt;x&lt;/script&gt; &quot;half&quot;</td></tr>"));
    CHECK(has(&full, "id=\"group-q\"><td class=\"name\" data-l=\"group\">q</td><td data-l=\"status\" "
                     "class=\"t-UP\"><b>UP</b></td><td class=\"nw\" data-l=\"aggregate\">quorum: 2 up</td>"));
    CHECK(has(&full, "2 of 3 up (2 needed); failing: b</td></tr>"));
    CHECK(has(&full, "<span class=\"muted\">per answer</span>"));
    CHECK(!has(&full, "<script"));
    /* 1002 groups share the budget: 19 names each, raised to 20, then a count */
    CHECK(has(&full, "<span class=\"muted\">25:</span>"));
    CHECK(has(&full, "<span class=\"muted\">and 5 more</span>"));
    CHECK(!has(&names, "half"));
    CHECK(!has(&names, "needed"));
    CHECK(has(&names, "id=\"group-lua\""));
    CHECK(has(&json, "\"groups\":[{\"name\":\"lua\",\"status\":\"WARN\",\"aggregate\":\"lua\",\"probe\":null,"
                     "\"path\":\"/health/<db>\",\"output\":\"<script>x</script> \\\"half\\\"\","
                     "\"last_run\":\"2026-11-22T10:00:00.000Z\",\"member_count\":2,\"members\":[\"a\",\"b\"],"
                     "\"members_truncated\":false},{\"name\":\"q\",\"status\":\"UP\",\"aggregate\":\"quorum\","
                     "\"min_up\":2,\"probe\":null,\"path\":null,\"output\":\"2 of 3 up (2 needed); failing: b\","
                     "\"last_run\":null,\"member_count\":3,\"members\":[\"a\",\"b\",\"c\"],\"members_truncated\":false}"));
    CHECK(has(&json, "\"member_count\":25,\"members\":[\"a\",\"b\",\"c\",\"a\""));
    CHECK(has(&json, "\"members_truncated\":true}"));
    CHECK(json.data[json.len - 1] == ']');
    buf_free(&full);
    buf_free(&names);
    buf_free(&json);
    snapshot_free(heap_copy(&s));
    config_free(&cfg);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the host is shared */
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Blocks for front_metrics_render: a count before the bytes. */
static int blocks_live;
static char *blk_alloc(size_t len)
{
    size_t *h = malloc(sizeof *h + len);
    *h = 1;
    blocks_live++;
    return (char *)(h + 1);
}
static void blk_retain(char *p) { ((size_t *)p)[-1]++; }
static void blk_release(char *p)
{
    size_t *h = (size_t *)p - 1;
    if (--*h == 0) {
        free(h);
        blocks_live--;
    }
}
static bool blk_sole(const char *p) { return ((const size_t *)p)[-1] == 1; }
static const ha_metrics_mem blk_mem = {blk_alloc, blk_retain, blk_release, blk_sole};

/* front_metrics_render through its memo, compared with a full render. */
static bool memo_matches(ha_metrics_memo **memo, const ha_snapshot *s, const unsigned char *age)
{
    ha_buf want = HA_BUF_INIT;
    front_metrics_snapshot(s, age, "abc", &want);
    size_t len = 0;
    char *got = front_metrics_render(memo, &blk_mem, s, age, "abc", &len);
    bool ok = got != NULL && len == want.len && memcmp(got, want.data, len) == 0 && got[len] == '\0';
    if (!ok)
        fprintf(stderr, "memo render differs: %zu bytes, full render %zu\n", len, want.len);
    if (got)
        blk_release(got);
    buf_free(&want);
    return ok;
}

/* A new result for check i: what the engine publishes after a run. */
static void new_result(ha_snapshot *s, size_t i, ha_status st)
{
    ha_snap_check *c = &s->checks[i];
    ha_hist *h = hist(1);
    if (c->hist)
        *h = *c->hist;
    atomic_init(&h->refs, 1);
    h->runs_by[st == HA_UP ? HA_RES_UP : HA_RES_DOWN]++;
    h->buckets[2]++;
    h->duration_sum_us += 1234;
    h->transitions += c->status != st;
    snapshot_hist_release(c->hist);
    c->hist = h;
    c->runs++;
    c->status = st;
    c->time_ms += 1000;
}

/* The memo renders what a full render does: nothing changed, a few
 * checks, the first and the last, ages, a blocked check, another
 * generation, another count, hostile names, no snapshot; and it holds one
 * body, no more. */
static void test_metrics_memo(void)
{
    enum { N = 40 };
    ha_snapshot *s = calloc(1, sizeof *s);
    s->generation = 1;
    s->n = N;
    s->checks = calloc(N + 1, sizeof *s->checks);
    for (size_t i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, i == 7 ? "we\"ird\\%zu\n" : "check-%02zu", i);
        check_init(&s->checks[i], name, HA_INIT);
        s->checks[i].name_hash = snapshot_name_hash(s->checks[i].name);
    }
    unsigned char age[N + 1] = {0};
    ha_metrics_memo *memo = NULL;
    CHECK(memo_matches(&memo, s, age));
    CHECK(memo_matches(&memo, s, age)); /* nothing changed: all copied */
    for (size_t i = 0; i < N; i++)
        new_result(s, i, HA_UP);
    CHECK(memo_matches(&memo, s, age));
    new_result(s, 0, HA_DOWN);
    new_result(s, 3, HA_UP);
    new_result(s, 4, HA_UP);
    new_result(s, N - 1, HA_DOWN);
    CHECK(memo_matches(&memo, s, age));
    for (int r = 0; r < 12; r++) { /* counters gain a digit: lines grow */
        new_result(s, 2, HA_UP);
        CHECK(memo_matches(&memo, s, age));
    }
    new_result(s, 7, HA_DOWN); /* the escaped label */
    age[20] = HA_AGE_STALE;
    age[N - 1] = HA_AGE_EXPIRED;
    CHECK(memo_matches(&memo, s, age));
    s->checks[12].status = HA_DOWN; /* blocked: no run, status and time move */
    s->checks[12].time_ms += 5;
    CHECK(memo_matches(&memo, s, age));
    s->checks[13].status = HA_WARN; /* each part of what lines show, alone */
    CHECK(memo_matches(&memo, s, age));
    s->checks[14].time_ms += 1000;
    CHECK(memo_matches(&memo, s, age));
    age[20] = HA_AGE_FRESH;
    CHECK(memo_matches(&memo, s, age));
    CHECK(memo_matches(&memo, s, NULL));
    /* a reload: another generation, same count, other names */
    s->generation = 2;
    free(s->checks[5].name);
    s->checks[5].name = strdup("renamed");
    s->checks[5].name_hash = snapshot_name_hash("renamed");
    CHECK(memo_matches(&memo, s, age));
    /* a renamed check in the same generation (a hand-made snapshot): its
     * label is escaped anew, the old name freed */
    free(s->checks[6].name);
    s->checks[6].name = strdup("re\"named-6");
    s->checks[6].name_hash = snapshot_name_hash(s->checks[6].name);
    CHECK(memo_matches(&memo, s, age));
    CHECK(memo_matches(&memo, s, age));
    /* one check more */
    check_init(&s->checks[N], "zz-last", HA_UP);
    s->n = N + 1;
    CHECK(memo_matches(&memo, s, age));
    new_result(s, N, HA_UP);
    CHECK(memo_matches(&memo, s, age));
    s->n = 0;
    CHECK(memo_matches(&memo, s, age));
    s->n = N + 1;
    CHECK(memo_matches(&memo, s, age));
    CHECK(memo_matches(&memo, NULL, NULL));
    CHECK(blocks_live == 2); /* the memo's body and the one before, nothing else kept */
    /* a body someone still sends is never written over */
    size_t len, len2;
    char *held = front_metrics_render(&memo, &blk_mem, s, age, "abc", &len);
    char *copy = malloc(len);
    memcpy(copy, held, len);
    for (int r = 0; r < 3; r++) {
        new_result(s, (size_t)r, r % 2 ? HA_UP : HA_DOWN);
        char *b = front_metrics_render(&memo, &blk_mem, s, age, "abc", &len2);
        CHECK(b != held);
        blk_release(b);
    }
    CHECK(memcmp(held, copy, len) == 0);
    blk_release(held);
    free(copy);
    CHECK(memo_matches(&memo, s, age));
    front_metrics_memo_free(memo, &blk_mem);
    CHECK(blocks_live == 0);
    snapshot_free(s);
}

/* Render cost of big snapshots: printed for the record. */
static void test_render_cost(size_t n)
{
    ha_config cfg;
    config_defaults(&cfg);
    ha_snapshot *s = calloc(1, sizeof *s);
    s->n = n;
    s->checks = calloc(n, sizeof *s->checks);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "check-%05zu", i);
        check_init(&s->checks[i], name, HA_UP);
        s->checks[i].time_ms = T_MS;
        ha_hist *h = hist(HA_HIST_DEFAULT);
        h->runs_by[HA_RES_UP] = 1000 + i;
        h->buckets[1] = 1000 + i;
        h->duration_sum_us = 123456;
        for (int k = 0; k < HA_HIST_DEFAULT; k++) {
            h->e[k].time_ms = T_MS - 1000 * (HA_HIST_DEFAULT - k);
            h->e[k].status = HA_UP;
            strcpy(h->e[k].output, "ok");
        }
        s->checks[i].hist = h;
    }
    ha_buf b = HA_BUF_INIT;
    front_metrics_snapshot(s, NULL, "abc", &b); /* warm: the buffer reaches its size */
    int rounds = n >= 10000 ? 5 : 50;
    double t0 = now_ms();
    for (int r = 0; r < rounds; r++) {
        buf_reset(&b);
        front_metrics_snapshot(s, NULL, "abc", &b);
    }
    double tm = (now_ms() - t0) / rounds;
    size_t mbytes = b.len;
    ha_page_view v = {0};
    v.cfg = &cfg;
    v.commit = "abc";
    v.now_ms = T_MS;
    v.full = true;
    buf_reset(&b);
    front_status_html(s, &v, &b);
    t0 = now_ms();
    for (int r = 0; r < rounds; r++) {
        buf_reset(&b);
        front_status_html(s, &v, &b);
    }
    double tp = (now_ms() - t0) / rounds;
    printf("render %zu checks (CPU time): /metrics %.3f ms (%zu bytes), page %.3f ms (%zu bytes)\n", n, tm, mbytes, tp, b.len);
    CHECK(mbytes > n * 1000);
    buf_free(&b);
    snapshot_free(s);
    config_free(&cfg);
}

int main(void)
{
    test_label_escaping();
    test_one_check_lines();
    test_hostile_names();
    test_page_audiences();
    test_page_groups();
    test_metrics_memo();
    test_render_cost(1000);
    test_render_cost(10000);
    return testlib_report();
}
