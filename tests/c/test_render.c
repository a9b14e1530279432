/* test_render.c: probe answers built from hand-made snapshots
 * (front_render.c), plus snapshot_find and snapshot_free (snapshot.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front_render.h"

#include "testlib.h"

#define T_MS 1795341600000LL /* 2026-11-22T10:00:00.000Z */
#define T_STR "2026-11-22T10:00:00.000Z"
#define NOW_NS (1000 * HA_NS_PER_S)

/* ---- a small JSON validator: every JSON body must parse ---- */

static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c == '\0' || c < 0x20)
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || p[i] == '\0')
                        return NULL;
                p += 5;
                continue;
            }
            if (!strchr("\"\\/bfnrt", *p) || *p == '\0')
                return NULL;
        }
        p++;
    }
    return p + 1;
}

static const char *json_number(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}

static const char *json_container(const char *p, int depth, char close, bool object)
{
    p = json_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (object) {
            p = json_string(json_ws(p));
            if (p == NULL)
                return NULL;
            p = json_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        p = json_value(p, depth + 1);
        if (p == NULL)
            return NULL;
        p = json_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *json_value(const char *p, int depth)
{
    if (depth > 64)
        return NULL;
    p = json_ws(p);
    switch (*p) {
    case '{': return json_container(p, depth, '}', true);
    case '[': return json_container(p, depth, ']', false);
    case '"': return json_string(p);
    case 't': return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f': return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n': return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default: return json_number(p);
    }
}

static bool json_valid(const char *s)
{
    const char *end = json_value(s, 0);
    return end != NULL && *json_ws(end) == '\0';
}

/* ---- building snapshots and requests ---- */

/* A critical check with a 2s timeout and no result yet. */
static ha_snap_check ck(const char *name, unsigned probes, ha_status st)
{
    ha_snap_check c;
    memset(&c, 0, sizeof c);
    c.name = (char *)name;
    c.probes = probes;
    c.critical = true;
    c.status = st;
    c.timeout_ns = 2 * HA_NS_PER_S;
    return c;
}

/* Gives c a fresh result at T_MS. */
static ha_snap_check result(ha_snap_check c, const char *output, const char *details,
                            uint64_t duration_ms)
{
    c.output = (char *)output;
    c.details_json = (char *)details;
    c.duration_ms = duration_ms;
    c.time_ms = T_MS;
    c.expires_ns = NOW_NS + 5 * HA_NS_PER_S;
    c.runs = 1;
    return c;
}

static ha_snapshot snap(ha_snap_check *checks, size_t n)
{
    ha_snapshot s;
    memset(&s, 0, sizeof s);
    s.seq = 1;
    s.generation = 1;
    s.n = n;
    s.checks = checks;
    return s;
}

static ha_render_req req(int probe, ha_format fmt, bool full)
{
    ha_render_req r;
    memset(&r, 0, sizeof r);
    r.probe = probe;
    r.format = fmt;
    r.full = full;
    return r;
}

static ha_probe_conf pconf(int success, int failure)
{
    ha_probe_conf pc;
    memset(&pc, 0, sizeof pc);
    pc.paths[0] = (char *)"/readyz";
    pc.npaths = 1;
    pc.success_status = success;
    pc.failure_status = failure;
    return pc;
}

typedef struct {
    int rc;
    int code;
    ha_status status;
    const char *type;
    char body[8192];
} answer;

/* Renders, checks the invariants every answer must hold (JSON parses,
 * front_render_status agrees, content type matches) and returns a copy. */
static answer run_pc(const ha_snapshot *s, const ha_probe_conf *pc, const ha_render_req *r)
{
    answer a;
    ha_render_out out;
    memset(&a, 0, sizeof a);
    memset(&out, 0x5a, sizeof out);
    a.rc = front_render(s, pc, r, &out);
    a.code = out.http_status;
    a.status = out.status;
    a.type = out.content_type;
    snprintf(a.body, sizeof a.body, "%s", out.body.len ? out.body.data : "");
    if (a.rc == 0) {
        CHECK(front_render_status(s, r) == out.status);
        if (r->format == HA_FMT_JSON)
            CHECK_STR(out.content_type, "application/json");
        else if (r->format == HA_FMT_HEALTH_JSON)
            CHECK_STR(out.content_type, "application/health+json");
        else
            CHECK_STR(out.content_type, "text/plain; charset=utf-8");
        if (r->format != HA_FMT_VERBOSE && !json_valid(a.body)) {
            failed++;
            fprintf(stderr, "invalid JSON: %s\n", a.body);
        }
        if (r->format == HA_FMT_VERBOSE)
            CHECK(a.body[0] != '\0' && a.body[strlen(a.body) - 1] == '\n');
    } else {
        CHECK(out.body.len == 0);
    }
    buf_free(&out.body);
    return a;
}

static answer run(const ha_snapshot *s, const ha_render_req *r)
{
    ha_probe_conf pc = pconf(200, 503);
    return run_pc(s, &pc, r);
}

/* ---- the tests ---- */

/* cache: readiness only; orders-db: liveness and readiness; warmup: startup only. */
static void fixture(ha_snap_check cs[3])
{
    cs[0] = result(ck("cache", HA_PROBE_READINESS, HA_UP), "hit rate 98%", NULL, 1);
    cs[1] = result(ck("orders-db", HA_PROBE_LIVENESS | HA_PROBE_READINESS, HA_UP), "ok",
                   "{\"rows\":3}", 3);
    cs[2] = result(ck("warmup", HA_PROBE_STARTUP, HA_UP), "warm", NULL, 12);
}

static void test_json(void)
{
    ha_snap_check cs[3];
    fixture(cs);
    ha_snapshot s = snap(cs, 3);
    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    answer a = run(&s, &r);
    CHECK_INT(a.rc, 0);
    CHECK_INT(a.code, 200);
    CHECK(a.status == HA_UP);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"components\":{\"cache\":{\"status\":\"UP\"},"
                      "\"orders-db\":{\"status\":\"UP\"}}}");

    r.full = true;
    a = run(&s, &r);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"components\":{"
                      "\"cache\":{\"status\":\"UP\",\"output\":\"hit rate 98%\",\"duration_ms\":1,"
                      "\"time\":\"" T_STR "\"},"
                      "\"orders-db\":{\"status\":\"UP\",\"output\":\"ok\",\"details\":{\"rows\":3},"
                      "\"duration_ms\":3,\"time\":\"" T_STR "\"}}}");

    /* Liveness covers orders-db only; health covers all three. */
    r = req(HA_PI_LIVENESS, HA_FMT_JSON, false);
    a = run(&s, &r);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"components\":{\"orders-db\":{\"status\":\"UP\"}}}");
    r = req(HA_PI_HEALTH, HA_FMT_JSON, false);
    a = run(&s, &r);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"components\":{\"cache\":{\"status\":\"UP\"},"
                      "\"orders-db\":{\"status\":\"UP\"},\"warmup\":{\"status\":\"UP\"}}}");

    /* No result yet: no output, time, duration; an empty details string is left out. */
    cs[0] = ck("cache", HA_PROBE_READINESS, HA_INIT);
    cs[0].details_json = (char *)"";
    r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    a = run(&s, &r);
    CHECK_STR(a.body, "{\"status\":\"INIT\",\"components\":{\"cache\":{\"status\":\"INIT\"},"
                      "\"orders-db\":{\"status\":\"UP\",\"output\":\"ok\",\"details\":{\"rows\":3},"
                      "\"duration_ms\":3,\"time\":\"" T_STR "\"}}}");
    CHECK_INT(a.code, 503);
}

static void test_health_json(void)
{
    ha_snap_check cs[3];
    fixture(cs);
    ha_snapshot s = snap(cs, 3);
    ha_render_req r = req(HA_PI_LIVENESS, HA_FMT_HEALTH_JSON, false);
    answer a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK_STR(a.body, "{\"status\":\"pass\",\"checks\":{\"orders-db:responseTime\":[{\"componentId\":"
                      "\"orders-db\",\"componentType\":\"component\",\"status\":\"pass\"}]}}");
    r.full = true;
    a = run(&s, &r);
    CHECK_STR(a.body, "{\"status\":\"pass\",\"checks\":{\"orders-db:responseTime\":[{\"componentId\":"
                      "\"orders-db\",\"componentType\":\"component\",\"status\":\"pass\",\"observedValue\":3,\"observedUnit\":\"ms\","
                      "\"time\":\"" T_STR "\"}]}}");

    /* the check's component_type, output only when the status is not pass */
    strcpy(cs[1].component_type, "datastore"); /* cs[1] is orders-db */
    a = run(&s, &r);
    CHECK(strstr(a.body, "{\"orders-db:responseTime\":[{\"componentId\":\"orders-db\","
                         "\"componentType\":\"datastore\",\"status\":\"pass\"") != NULL);
    CHECK(strstr(a.body, "\"output\"") == NULL);
    cs[1].component_type[0] = '\0';

    cs[0].status = HA_DOWN;
    cs[0].output = (char *)"refused";
    cs[1].critical = false;
    cs[1].status = HA_DOWN;
    r = req(HA_PI_READINESS, HA_FMT_HEALTH_JSON, false);
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK_STR(a.body, "{\"status\":\"fail\",\"checks\":{"
                      "\"cache:responseTime\":[{\"componentId\":\"cache\",\"componentType\":\"component\",\"status\":\"fail\"}],"
                      "\"orders-db:responseTime\":[{\"componentId\":\"orders-db\",\"componentType\":\"component\",\"status\":\"warn\"}]}}");

    cs[0] = ck("cache", HA_PROBE_READINESS, HA_INIT);
    r.full = true;
    a = run(&s, &r);
    CHECK_STR(a.body, "{\"status\":\"fail\",\"checks\":{"
                      "\"cache:responseTime\":[{\"componentId\":\"cache\",\"componentType\":\"component\",\"status\":\"fail\"}],"
                      "\"orders-db:responseTime\":[{\"componentId\":\"orders-db\",\"componentType\":\"component\",\"status\":\"warn\","
                      "\"observedValue\":3,\"observedUnit\":\"ms\",\"time\":\"" T_STR "\","
                      "\"output\":\"ok\"}]}}");
}

static void test_verbose(void)
{
    ha_snap_check cs[3];
    fixture(cs);
    ha_snapshot s = snap(cs, 3);
    ha_render_req r = req(HA_PI_READINESS, HA_FMT_VERBOSE, false);
    answer a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK_STR(a.body, "[+]cache ok\n[+]orders-db ok\nreadyz check passed\n");

    cs[1].status = HA_DOWN;
    cs[1].output = (char *)"connection refused\nretrying\r\tlater";
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK_STR(a.body,
              "[+]cache ok\n[-]orders-db failed: reason withheld\nreadyz check failed\n");
    r.full = true;
    a = run(&s, &r);
    CHECK_STR(a.body, "[+]cache ok\n[-]orders-db failed: connection refused retrying  later\n"
                      "readyz check failed\n");

    /* No output: the status name stands in. */
    cs[1].output = NULL;
    a = run(&s, &r);
    CHECK_STR(a.body, "[+]cache ok\n[-]orders-db failed: DOWN\nreadyz check failed\n");
    cs[0] = ck("cache", HA_PROBE_READINESS, HA_INIT);
    a = run(&s, &r);
    CHECK_STR(a.body, "[-]cache failed: INIT\n[-]orders-db failed: DOWN\nreadyz check failed\n");

    /* The summary line names the probe. */
    fixture(cs);
    r = req(HA_PI_LIVENESS, HA_FMT_VERBOSE, false);
    CHECK_STR(run(&s, &r).body, "[+]orders-db ok\nlivez check passed\n");
    r = req(HA_PI_STARTUP, HA_FMT_VERBOSE, false);
    CHECK_STR(run(&s, &r).body, "[+]warmup ok\nstartupz check passed\n");
    r = req(HA_PI_HEALTH, HA_FMT_VERBOSE, false);
    CHECK_STR(run(&s, &r).body, "[+]cache ok\n[+]orders-db ok\n[+]warmup ok\nhealthz check passed\n");
}

static void test_noncritical_and_init(void)
{
    ha_snap_check cs[2];
    cs[0] = result(ck("a", HA_PROBE_READINESS, HA_UP), "ok", NULL, 1);
    cs[1] = result(ck("b", HA_PROBE_READINESS, HA_DOWN), "slow", NULL, 9);
    cs[1].critical = false;
    ha_snapshot s = snap(cs, 2);

    /* A failing non-critical check shows WARN and keeps the probe passing. */
    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    answer a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK(a.status == HA_WARN);
    CHECK_STR(a.body, "{\"status\":\"WARN\",\"components\":{"
                      "\"a\":{\"status\":\"UP\",\"output\":\"ok\",\"duration_ms\":1,\"time\":\"" T_STR
                      "\"},\"b\":{\"status\":\"WARN\",\"output\":\"slow\",\"duration_ms\":9,"
                      "\"time\":\"" T_STR "\"}}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[+]a ok\n[+]b ok\nreadyz check passed\n");
    r.format = HA_FMT_HEALTH_JSON;
    r.full = false;
    CHECK_STR(run(&s, &r).body,
              "{\"status\":\"warn\",\"checks\":{\"a:responseTime\":[{\"componentId\":\"a\",\"componentType\":\"component\",\"status\":\"pass\"}],"
              "\"b:responseTime\":[{\"componentId\":\"b\",\"componentType\":\"component\",\"status\":\"warn\"}]}}");

    /* A critical INIT check fails the probe. */
    cs[1] = ck("b", HA_PROBE_READINESS, HA_INIT);
    r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK(a.status == HA_INIT);
    CHECK_STR(a.body, "{\"status\":\"INIT\",\"components\":{\"a\":{\"status\":\"UP\"},"
                      "\"b\":{\"status\":\"INIT\"}}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[+]a ok\n[-]b failed: reason withheld\nreadyz check failed\n");

    /* A non-critical INIT check shows INIT but contributes WARN only. */
    cs[1].critical = false;
    r.format = HA_FMT_JSON;
    a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK(a.status == HA_WARN);
    CHECK_STR(a.body, "{\"status\":\"WARN\",\"components\":{\"a\":{\"status\":\"UP\"},"
                      "\"b\":{\"status\":\"INIT\"}}}");
    r.format = HA_FMT_VERBOSE; /* undecided, not ok: it says so */
    CHECK_STR(run(&s, &r).body, "[+]a ok\n[+]b pending: no result yet\nreadyz check passed\n");

    /* A liveness check still INIT does not fail /livez, and is not "ok" either. */
    cs[1] = ck("b", HA_PROBE_LIVENESS, HA_INIT);
    cs[0].probes |= HA_PROBE_LIVENESS;
    r = req(HA_PI_LIVENESS, HA_FMT_VERBOSE, true);
    a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK_STR(a.body, "[+]a ok\n[+]b pending: no result yet\nlivez check passed\n");
    cs[1] = ck("b", HA_PROBE_READINESS, HA_INIT);
    cs[1].critical = false;
    cs[0].probes &= ~(unsigned)HA_PROBE_LIVENESS;

    /* Ordering: DOWN beats INIT beats WARN. */
    ha_snap_check m[3];
    m[0] = ck("a", HA_PROBE_READINESS, HA_WARN);
    m[1] = ck("b", HA_PROBE_READINESS, HA_INIT);
    m[2] = ck("c", HA_PROBE_READINESS, HA_UP);
    ha_snapshot ms = snap(m, 3);
    r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    CHECK(run(&ms, &r).status == HA_INIT);
    m[2].status = HA_DOWN;
    CHECK(run(&ms, &r).status == HA_DOWN);
    m[1].status = HA_UP;
    m[2].status = HA_UP;
    a = run(&ms, &r);
    CHECK(a.status == HA_WARN);
    CHECK_INT(a.code, 200);
}

static void test_empty(void)
{
    ha_snap_check cs[1];
    cs[0] = result(ck("only-live", HA_PROBE_LIVENESS, HA_DOWN), "bad", NULL, 1);
    ha_snapshot s = snap(cs, 1);
    ha_render_req r = req(HA_PI_STARTUP, HA_FMT_JSON, true);
    answer a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK(a.status == HA_UP);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"components\":{}}");
    r.format = HA_FMT_HEALTH_JSON;
    CHECK_STR(run(&s, &r).body, "{\"status\":\"pass\",\"checks\":{}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "startupz check passed\n");

    ha_snapshot none = snap(NULL, 0);
    r = req(HA_PI_HEALTH, HA_FMT_JSON, false);
    CHECK_STR(run(&none, &r).body, "{\"status\":\"UP\",\"components\":{}}");
    CHECK(front_render_status(&none, &r) == HA_UP);
}

static void test_stall(void)
{
    ha_snap_check cs[2];
    cs[0] = result(ck("cache", HA_PROBE_READINESS, HA_UP), "fine", NULL, 1);
    cs[1] = result(ck("orders-db", HA_PROBE_LIVENESS | HA_PROBE_READINESS, HA_UP), "ok",
                   "{\"rows\":3}", 3);
    cs[1].running = true;
    ha_snapshot s = snap(cs, 2);

    ha_render_req r = req(HA_PI_LIVENESS, HA_FMT_JSON, false);
    r.stalled_ns = 6 * HA_NS_PER_S + 100 * HA_NS_PER_MS; /* rounds up: 7s */
    answer a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK(a.status == HA_DOWN);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"reason\":\"engine stalled for 7s\",\"components\":{"
                      "\"orders-db\":{\"status\":\"DOWN\"}}}");
    r.full = true;
    CHECK_STR(run(&s, &r).body,
              "{\"status\":\"DOWN\",\"reason\":\"engine stalled for 7s\",\"components\":{"
              "\"orders-db\":{\"status\":\"DOWN\",\"output\":\"timeout after 2s\",\"details\":"
              "{\"rows\":3},\"duration_ms\":3,\"time\":\"" T_STR "\"}}}");
    r.format = HA_FMT_HEALTH_JSON;
    r.full = false;
    CHECK_STR(run(&s, &r).body,
              "{\"status\":\"fail\",\"output\":\"engine stalled for 7s\",\"checks\":{"
              "\"orders-db:responseTime\":[{\"componentId\":\"orders-db\",\"componentType\":\"component\",\"status\":\"fail\"}]}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[-]orders-db failed: reason withheld\n"
                                "[-]engine stalled for 7s\nlivez check failed\n");
    r.full = true;
    CHECK_STR(run(&s, &r).body, "[-]orders-db failed: timeout after 2s\n"
                                "[-]engine stalled for 7s\nlivez check failed\n");

    /* Liveness fails on a stall even when nothing is running. */
    cs[1].running = false;
    r = req(HA_PI_LIVENESS, HA_FMT_JSON, false);
    r.stalled_ns = 30 * HA_NS_PER_S;
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"reason\":\"engine stalled for 30s\",\"components\":{"
                      "\"orders-db\":{\"status\":\"UP\"}}}");

    /* Readiness: the running check reads DOWN, no top-level reason. */
    cs[1].running = true;
    r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    r.stalled_ns = 7 * HA_NS_PER_S;
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"components\":{"
                      "\"cache\":{\"status\":\"UP\",\"output\":\"fine\",\"duration_ms\":1,"
                      "\"time\":\"" T_STR "\"},"
                      "\"orders-db\":{\"status\":\"DOWN\",\"output\":\"timeout after 2s\","
                      "\"details\":{\"rows\":3},\"duration_ms\":3,\"time\":\"" T_STR "\"}}}");

    /* A non-critical running check under a stall reads WARN. */
    cs[1].critical = false;
    a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK(a.status == HA_WARN);

    /* No stall: running checks show their last status. */
    cs[1].critical = true;
    r.stalled_ns = 0;
    CHECK(run(&s, &r).status == HA_UP);
}

/* The age overlay: a stale result is shown marked stale in every format; one
 * past its max_age reads DOWN "no result for <max_age>"; a check never
 * decided stays INIT; a running check keeps its last result. */
static void test_age(void)
{
    ha_snap_check cs[5];
    cs[0] = result(ck("a-running", HA_PROBE_READINESS, HA_UP), "ok", NULL, 1);
    cs[0].running = true;
    cs[1] = result(ck("b-stale", HA_PROBE_READINESS, HA_UP), "ok", NULL, 1);
    cs[2] = result(ck("c-expired", HA_PROBE_READINESS, HA_UP), "ok", NULL, 1);
    cs[2].max_age_ns = 6500 * HA_NS_PER_MS;
    cs[3] = ck("d-never", HA_PROBE_READINESS, HA_INIT);
    cs[4] = result(ck("e-undecided", HA_PROBE_READINESS, HA_INIT), "first failure", NULL, 1);
    ha_snapshot s = snap(cs, 5);
    unsigned char age[5] = {HA_AGE_FRESH, HA_AGE_STALE, HA_AGE_EXPIRED, HA_AGE_EXPIRED, HA_AGE_EXPIRED};

    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    r.age = age;
    answer a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK(a.status == HA_DOWN);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"components\":{"
                      "\"a-running\":{\"status\":\"UP\",\"output\":\"ok\",\"duration_ms\":1,"
                      "\"time\":\"" T_STR "\"},"
                      "\"b-stale\":{\"status\":\"UP\",\"stale\":true,\"output\":\"ok\",\"duration_ms\":1,"
                      "\"time\":\"" T_STR "\"},"
                      "\"c-expired\":{\"status\":\"DOWN\",\"output\":\"no result for 6500ms\","
                      "\"duration_ms\":1,\"time\":\"" T_STR "\"},"
                      "\"d-never\":{\"status\":\"INIT\"},"
                      "\"e-undecided\":{\"status\":\"INIT\",\"stale\":true,\"output\":\"first failure\","
                      "\"duration_ms\":1,\"time\":\"" T_STR "\"}}}");
    r.full = false;
    CHECK_STR(run(&s, &r).body, "{\"status\":\"DOWN\",\"components\":{"
                                "\"a-running\":{\"status\":\"UP\"},"
                                "\"b-stale\":{\"status\":\"UP\",\"stale\":true},"
                                "\"c-expired\":{\"status\":\"DOWN\"},"
                                "\"d-never\":{\"status\":\"INIT\"},"
                                "\"e-undecided\":{\"status\":\"INIT\",\"stale\":true}}}");
    r.full = true;
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[+]a-running ok\n[+]b-stale ok (stale)\n"
                                "[-]c-expired failed: no result for 6500ms\n[-]d-never failed: INIT\n"
                                "[-]e-undecided failed: first failure (stale)\nreadyz check failed\n");
    r.full = false;
    CHECK_STR(run(&s, &r).body, "[+]a-running ok\n[+]b-stale ok (stale)\n"
                                "[-]c-expired failed: reason withheld\n[-]d-never failed: reason withheld\n"
                                "[-]e-undecided failed: reason withheld (stale)\nreadyz check failed\n");
    r.full = true;
    r.format = HA_FMT_HEALTH_JSON;
    r.only = (ha_str){"b-stale", 7};
    CHECK_STR(run(&s, &r).body, "{\"status\":\"pass\",\"checks\":{\"b-stale:responseTime\":[{\"componentId\":\"b-stale\",\"componentType\":\"component\","
                                "\"status\":\"pass\",\"stale\":true,\"observedValue\":1,\"observedUnit\":\"ms\","
                                "\"time\":\"" T_STR "\"}]}}");
    r.only = (ha_str){"c-expired", 9};
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK(strstr(a.body, "\"status\":\"fail\",\"observedValue\"") != NULL);
    CHECK(strstr(a.body, "\"output\":\"no result for 6500ms\"") != NULL);

    /* Without the overlay the same snapshot shows the last results. */
    r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    a = run(&s, &r);
    CHECK(a.status == HA_INIT);
    CHECK(strstr(a.body, "\"stale\"") == NULL && strstr(a.body, "no result") == NULL);

    /* Stale results pass; an expired optional check reads WARN; liveness
     * does not fail on an undecided one, whatever its age. */
    r.age = age;
    ha_snapshot s2 = snap(cs + 1, 1);
    unsigned char stale[1] = {HA_AGE_STALE}, expired[1] = {HA_AGE_EXPIRED};
    r.age = stale;
    CHECK_INT(run(&s2, &r).code, 200);
    cs[2].critical = false;
    ha_snapshot s3 = snap(cs + 2, 1);
    r.age = expired;
    a = run(&s3, &r);
    CHECK_INT(a.code, 200);
    CHECK(a.status == HA_WARN);
    cs[4].probes = HA_PROBE_LIVENESS;
    ha_snapshot s4 = snap(cs + 4, 1);
    r = req(HA_PI_LIVENESS, HA_FMT_JSON, false);
    r.age = expired;
    CHECK_INT(run(&s4, &r).code, 200);

    /* A stall overrides the age of a running check. */
    cs[0].max_age_ns = HA_NS_PER_S;
    ha_snapshot s5 = snap(cs, 1);
    r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    r.age = expired;
    r.stalled_ns = 6 * HA_NS_PER_S;
    CHECK(strstr(run(&s5, &r).body, "\"output\":\"timeout after 2s\"") != NULL);
    r.stalled_ns = 0;
    CHECK(strstr(run(&s5, &r).body, "\"output\":\"no result for 1s\"") != NULL);
}

static void test_shutdown_and_override(void)
{
    ha_snap_check cs[2];
    cs[0] = result(ck("cache", HA_PROBE_READINESS, HA_UP), "fine", NULL, 1);
    cs[1] = result(ck("orders-db", HA_PROBE_LIVENESS | HA_PROBE_READINESS, HA_UP), "ok", NULL, 3);
    ha_snapshot s = snap(cs, 2);

    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    r.shutdown = "shutting down";
    answer a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK(a.status == HA_DOWN);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"reason\":\"shutting down\",\"components\":{"
                      "\"cache\":{\"status\":\"UP\"},\"orders-db\":{\"status\":\"UP\"}}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body,
              "[+]cache ok\n[+]orders-db ok\n[-]shutting down\nreadyz check failed\n");
    r.format = HA_FMT_HEALTH_JSON;
    CHECK_STR(run(&s, &r).body,
              "{\"status\":\"fail\",\"output\":\"shutting down\",\"checks\":{"
              "\"cache:responseTime\":[{\"componentId\":\"cache\",\"componentType\":\"component\",\"status\":\"pass\"}],"
              "\"orders-db:responseTime\":[{\"componentId\":\"orders-db\",\"componentType\":\"component\",\"status\":\"pass\"}]}}");

    /* Liveness is not affected by shutdown. */
    r = req(HA_PI_LIVENESS, HA_FMT_JSON, false);
    r.shutdown = "shutting down";
    a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"components\":{\"orders-db\":{\"status\":\"UP\"}}}");

    /* Operator override of readiness (the front's state, not the snapshot's). */
    r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    r.not_ready = true;
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"reason\":\"not ready\",\"components\":{"
                      "\"cache\":{\"status\":\"UP\"},\"orders-db\":{\"status\":\"UP\"}}}");
    r.not_ready_reason = "maintenance \"window\"";
    r.format = HA_FMT_HEALTH_JSON;
    CHECK_STR(run(&s, &r).body,
              "{\"status\":\"fail\",\"output\":\"maintenance \\\"window\\\"\",\"checks\":{"
              "\"cache:responseTime\":[{\"componentId\":\"cache\",\"componentType\":\"component\",\"status\":\"pass\"}],"
              "\"orders-db:responseTime\":[{\"componentId\":\"orders-db\",\"componentType\":\"component\",\"status\":\"pass\"}]}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body,
              "[+]cache ok\n[+]orders-db ok\n[-]maintenance \"window\"\nreadyz check failed\n");
    r.probe = HA_PI_LIVENESS;
    r.format = HA_FMT_JSON;
    CHECK_INT(run(&s, &r).code, 200);
    r.probe = HA_PI_HEALTH;
    CHECK_INT(run(&s, &r).code, 200);
    /* A snapshot's override flag is not the front's: only r decides. */
    s.ready_override = true;
    r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    CHECK_INT(run(&s, &r).code, 200);
}

static void test_codes(void)
{
    ha_snap_check cs[1];
    cs[0] = result(ck("a", HA_PROBE_READINESS, HA_UP), "ok", NULL, 1);
    ha_snapshot s = snap(cs, 1);
    ha_probe_conf pc = pconf(204, 500);
    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    CHECK_INT(run_pc(&s, &pc, &r).code, 204);
    cs[0].status = HA_WARN;
    CHECK_INT(run_pc(&s, &pc, &r).code, 204);
    cs[0].status = HA_INIT;
    CHECK_INT(run_pc(&s, &pc, &r).code, 500);
    cs[0].status = HA_DOWN;
    CHECK_INT(run_pc(&s, &pc, &r).code, 500);
    pc = pconf(299, 418);
    CHECK_INT(run_pc(&s, &pc, &r).code, 418);
    cs[0].status = HA_UP;
    CHECK_INT(run_pc(&s, &pc, &r).code, 299);
}

static void test_only(void)
{
    ha_snap_check cs[3];
    fixture(cs);
    ha_snapshot s = snap(cs, 3);
    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    r.only = (ha_str){"orders-db", 9};
    answer a = run(&s, &r);
    CHECK_INT(a.rc, 0);
    CHECK_INT(a.code, 200);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"output\":\"ok\",\"details\":{\"rows\":3},"
                      "\"duration_ms\":3,\"time\":\"" T_STR "\"}");
    r.full = false;
    CHECK_STR(run(&s, &r).body, "{\"status\":\"UP\"}");
    r.format = HA_FMT_HEALTH_JSON;
    CHECK_STR(run(&s, &r).body, "{\"status\":\"pass\",\"checks\":{\"orders-db:responseTime\":[{\"componentId\":"
                                "\"orders-db\",\"componentType\":\"component\",\"status\":\"pass\"}]}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[+]orders-db ok\nreadyz check passed\n");

    /* The name is a counted string, not NUL-terminated. */
    r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    r.only = (ha_str){"cache-and-more", 5};
    CHECK_INT(run(&s, &r).rc, 0);

    /* Absent, a prefix of a name, or outside the probe: -1. */
    r.only = (ha_str){"nope", 4};
    a = run(&s, &r);
    CHECK_INT(a.rc, -1);
    CHECK_STR(a.body, "");
    r.only = (ha_str){"orders", 6};
    CHECK_INT(run(&s, &r).rc, -1);
    r.only = (ha_str){"warmup", 6};
    CHECK_INT(run(&s, &r).rc, -1);
    r.probe = HA_PI_STARTUP;
    CHECK_INT(run(&s, &r).rc, 0);
    r.probe = HA_PI_HEALTH;
    CHECK_INT(run(&s, &r).rc, 0);

    /* A failing check alone: 503; non-critical: WARN and 200. */
    cs[1].status = HA_DOWN;
    cs[1].output = (char *)"refused";
    r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    r.only = (ha_str){"orders-db", 9};
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK(a.status == HA_DOWN);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"output\":\"refused\",\"details\":{\"rows\":3},"
                      "\"duration_ms\":3,\"time\":\"" T_STR "\"}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[-]orders-db failed: refused\nreadyz check failed\n");
    cs[1].critical = false;
    r.format = HA_FMT_JSON;
    r.full = false;
    a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK(a.status == HA_WARN);
    CHECK_STR(a.body, "{\"status\":\"WARN\"}");

    /* The answer for one check is that check's own status, whatever the
     * probe-wide reasons (shutdown) say. */
    fixture(cs);
    r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    r.only = (ha_str){"cache", 5};
    r.shutdown = "shutting down";
    CHECK_INT(run(&s, &r).code, 200);
    CHECK_STR(run(&s, &r).body, "{\"status\":\"UP\"}");
    /* ...but the per-check overlays apply. */
    r.shutdown = NULL;
    unsigned char age[3] = {HA_AGE_EXPIRED, HA_AGE_FRESH, HA_AGE_FRESH};
    r.age = age;
    cs[0].max_age_ns = 7 * HA_NS_PER_S;
    r.full = true;
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"output\":\"no result for 7s\",\"duration_ms\":1,"
                      "\"time\":\"" T_STR "\"}");

    /* front_render_status of a missing check. */
    r.only = (ha_str){"zzz", 3};
    CHECK(front_render_status(&s, &r) == HA_DOWN);
}

static void test_exclude(void)
{
    ha_snap_check cs[3];
    fixture(cs);
    cs[1].status = HA_DOWN;
    ha_snapshot s = snap(cs, 3);
    ha_str ex[2] = {{"orders-db-and-more", 9}, {"not-a-check", 11}};
    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    CHECK_INT(run(&s, &r).code, 503);
    r.exclude = ex;
    r.nexclude = 2;
    answer a = run(&s, &r);
    CHECK_INT(a.code, 200);
    CHECK_STR(a.body, "{\"status\":\"UP\",\"components\":{\"cache\":{\"status\":\"UP\"}}}");
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[+]cache ok\nreadyz check passed\n");
    r.format = HA_FMT_HEALTH_JSON;
    CHECK_STR(run(&s, &r).body,
              "{\"status\":\"pass\",\"checks\":{\"cache:responseTime\":[{\"componentId\":\"cache\",\"componentType\":\"component\",\"status\":"
              "\"pass\"}]}}");
    /* Excluding a prefix of a name excludes nothing. */
    ha_str pre = {"orders", 6};
    r.exclude = &pre;
    r.nexclude = 1;
    CHECK_INT(run(&s, &r).code, 503);
}

static void test_escaping(void)
{
    ha_snap_check cs[2];
    cs[0] = result(ck("odd \"name\"", HA_PROBE_READINESS, HA_DOWN),
                   "say \"hi\"\n\tback\\slash \x01 caf\xc3\xa9 \xff", "{\"a\":[1,2,{\"b\":null}]}",
                   5);
    cs[1] = result(ck("plain", HA_PROBE_READINESS, HA_UP), "line1\nline2", NULL, 1);
    ha_snapshot s = snap(cs, 2);
    s.load_error = (char *)"checks/x.lua:3: unexpected symbol near '\"'";
    s.load_error_ms = T_MS;

    ha_render_req r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    answer a = run(&s, &r);
    CHECK_STR(a.body,
              "{\"status\":\"DOWN\",\"components\":{"
              "\"odd \\\"name\\\"\":{\"status\":\"DOWN\",\"output\":\"say \\\"hi\\\"\\n\\tback\\\\slash "
              "\\u0001 caf\xc3\xa9 \xef\xbf\xbd\",\"details\":{\"a\":[1,2,{\"b\":null}]},"
              "\"duration_ms\":5,\"time\":\"" T_STR "\"},"
              "\"plain\":{\"status\":\"UP\",\"output\":\"line1\\nline2\",\"duration_ms\":1,"
              "\"time\":\"" T_STR "\"}},"
              "\"load_error\":{\"message\":\"checks/x.lua:3: unexpected symbol near '\\\"'\","
              "\"time\":\"" T_STR "\"}}");
    r.format = HA_FMT_HEALTH_JSON;
    a = run(&s, &r);
    CHECK(strstr(a.body, "\"output\":\"say \\\"hi\\\"\\n\\tback") != NULL);
    CHECK(strstr(a.body, "load_error") == NULL);
    r.format = HA_FMT_VERBOSE;
    CHECK_STR(run(&s, &r).body, "[-]odd \"name\" failed: say \"hi\"  back\\slash   caf\xc3\xa9 \xef\xbf\xbd\n"
                                "[+]plain ok\nreadyz check failed\n"); /* invalid UTF-8 -> U+FFFD */

    /* load_error only for full answers; without a time, no time. */
    r = req(HA_PI_READINESS, HA_FMT_JSON, false);
    a = run(&s, &r);
    CHECK(strstr(a.body, "load_error") == NULL);
    CHECK(strstr(a.body, "say") == NULL);
    s.load_error_ms = 0;
    r.full = true;
    a = run(&s, &r);
    CHECK(strstr(a.body, ",\"load_error\":{\"message\":\"checks/x.lua:3: unexpected symbol near "
                         "'\\\"'\"}}") != NULL);
}

static void test_snapshot(void)
{
    ha_snap_check cs[5];
    cs[0] = ck("a", HA_PROBE_ALL, HA_UP);
    cs[1] = ck("ab", HA_PROBE_ALL, HA_UP);
    cs[2] = ck("b", HA_PROBE_ALL, HA_UP);
    cs[3] = ck("orders-db", HA_PROBE_ALL, HA_UP);
    cs[4] = ck("z\xc3\xa9", HA_PROBE_ALL, HA_UP);
    ha_snapshot s = snap(cs, 5);
    CHECK_INT(snapshot_find(&s, "a", 1), 0);
    CHECK_INT(snapshot_find(&s, "ab", 2), 1);
    CHECK_INT(snapshot_find(&s, "b", 1), 2);
    CHECK_INT(snapshot_find(&s, "orders-db", 9), 3);
    CHECK_INT(snapshot_find(&s, "z\xc3\xa9", 3), 4);
    CHECK_INT(snapshot_find(&s, "abc", 2), 1);
    CHECK_INT(snapshot_find(&s, "abc", 1), 0);
    CHECK_INT(snapshot_find(&s, "abc", 3), -1);
    CHECK_INT(snapshot_find(&s, "aa", 2), -1);
    CHECK_INT(snapshot_find(&s, "", 0), -1);
    CHECK_INT(snapshot_find(&s, "c", 1), -1);
    CHECK_INT(snapshot_find(&s, "zz", 2), -1);
    for (size_t n = 0; n <= 5; n++) {
        ha_snapshot part = snap(cs, n);
        for (size_t i = 0; i < 5; i++)
            CHECK_INT(snapshot_find(&part, cs[i].name, strlen(cs[i].name)), i < n ? (int)i : -1);
    }
    CHECK_INT(snapshot_find(NULL, "a", 1), -1);

    /* snapshot_free releases everything (run under ASan to see leaks). */
    ha_snapshot *h = calloc(1, sizeof *h);
    h->n = 2;
    h->checks = calloc(2, sizeof *h->checks);
    h->checks[0].name = strdup("a");
    h->checks[0].output = strdup("out");
    h->checks[0].details_json = strdup("{}");
    h->checks[1].name = strdup("b");
    h->load_error = strdup("x.lua:1: boom");
    h->override_reason = strdup("maintenance");
    snapshot_free(h);
    snapshot_free(NULL);
    passed++;
}

/* Groups: members instead of the probe's mask, the built-in aggregates and
 * their messages (full views only), a Lua verdict and its fallback when a
 * member expired or the view is partial, per-status codes, one member, and
 * a probe's own group (aggregate and codes over the probe's checks). */
static void test_groups(void)
{
    ha_snap_check cs[4];
    cs[0] = result(ck("a", HA_PROBE_READINESS, HA_UP), "fine", NULL, 1);
    cs[1] = result(ck("b", HA_PROBE_READINESS, HA_DOWN), "broken", NULL, 1);
    cs[2] = result(ck("c", 0, HA_UP), "quiet", NULL, 1);
    cs[3] = result(ck("d", HA_PROBE_LIVENESS, HA_DOWN), "gone", NULL, 1);
    ha_snapshot s = snap(cs, 4);
    uint32_t all[3] = {0, 1, 2}, ab[2] = {0, 1};
    ha_snap_group gs[5];
    memset(gs, 0, sizeof gs);
    gs[0] = (ha_snap_group){.name = (char *)"any", .members = ab, .nmembers = 2, .probe = -1, .kind = HA_AGG_ANY};
    gs[1] = (ha_snap_group){.name = (char *)"lua", .members = all, .nmembers = 3, .probe = -1, .kind = HA_AGG_LUA,
                            .lua_status = HA_WARN, .lua_output = (char *)"two of three"};
    gs[2] = (ha_snap_group){.name = (char *)"q", .members = all, .nmembers = 3, .probe = -1, .kind = HA_AGG_QUORUM,
                            .min_up = 2, .codes = {[HA_UP] = 207}};
    gs[3] = (ha_snap_group){.name = (char *)"readiness", .members = ab, .nmembers = 2, .probe = HA_PI_READINESS,
                            .kind = HA_AGG_QUORUM, .ratio = 0.5, .failure_status = 500};
    s.groups = gs;
    s.ngroups = 4;

    ha_render_req r = req(HA_PI_HEALTH, HA_FMT_JSON, true);
    r.group = (ha_str){"q", 1};
    answer a = run(&s, &r);
    CHECK_INT(a.code, 207);
    CHECK(a.status == HA_UP);
    CHECK(strstr(a.body, "\"output\":\"2 of 3 up (2 needed); failing: b\",\"components\":{\"a\":") != NULL);
    CHECK(strstr(a.body, "\"c\":{\"status\":\"UP\"") != NULL); /* in no probe, in the group */
    CHECK(strstr(a.body, "\"d\"") == NULL);
    r.full = false;
    a = run(&s, &r);
    CHECK(strstr(a.body, "output") == NULL); /* names and statuses only */
    r.full = true;
    r.format = HA_FMT_VERBOSE;
    a = run(&s, &r);
    CHECK_STR(a.body, "[+]a ok\n[-]b failed: broken\n[+]c ok\naggregate: 2 of 3 up (2 needed); failing: b\n"
                      "group q check passed\n");
    r.format = HA_FMT_JSON;
    cs[2].status = HA_DOWN;
    a = run(&s, &r);
    CHECK_INT(a.code, 503);
    CHECK(strstr(a.body, "\"output\":\"1 of 3 up, 2 needed; failing: b, c\"") != NULL);
    cs[2].status = HA_UP;

    r.group = (ha_str){"any", 3};
    CHECK(run(&s, &r).status == HA_UP);
    r.group = (ha_str){"lua", 3};
    a = run(&s, &r);
    CHECK(a.status == HA_WARN);
    CHECK_INT(a.code, 200);
    CHECK(strstr(a.body, "\"output\":\"two of three\"") != NULL);
    unsigned char age[4] = {HA_AGE_FRESH, HA_AGE_FRESH, HA_AGE_EXPIRED, HA_AGE_FRESH};
    r.age = age;
    a = run(&s, &r);
    CHECK(a.status == HA_DOWN);
    CHECK(strstr(a.body, "aggregate not applied: c has no recent result; worst of the members instead") != NULL);
    r.age = NULL;
    ha_str ex[1] = {{"b", 1}};
    r.exclude = ex;
    r.nexclude = 1;
    a = run(&s, &r);
    CHECK(a.status == HA_UP); /* worst of a and c */
    CHECK(strstr(a.body, "partial view") != NULL);

    /* every member excluded: UP under every aggregate, as a probe with
     * every check excluded; a group of no members likewise */
    ha_str every[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    r.exclude = every;
    r.nexclude = 3;
    static const char *const all_out[] = {"any", "lua", "q"};
    for (int k = 0; k < 3; k++) {
        r.group = (ha_str){all_out[k], strlen(all_out[k])};
        a = run(&s, &r);
        CHECK(a.status == HA_UP);
        CHECK_INT(a.code, k == 2 ? 207 : 200);
        CHECK(strstr(a.body, "\"components\":{}") != NULL);
        CHECK(k == 1 || strstr(a.body, "\"output\":\"every member excluded\"") != NULL);
    }
    r.group = (ha_str){"zz", 2};
    gs[4] = (ha_snap_group){.name = (char *)"zz", .members = all, .nmembers = 3, .probe = -1};
    s.ngroups = 5;
    a = run(&s, &r);
    CHECK(a.status == HA_UP);
    CHECK_INT(a.code, 200);
    r.nexclude = 0;
    gs[4].nmembers = 0;
    gs[4].kind = HA_AGG_QUORUM;
    gs[4].ratio = 0.5;
    a = run(&s, &r);
    CHECK(a.status == HA_UP);
    CHECK(strstr(a.body, "\"output\":\"no members\"") != NULL);
    /* too few left to make the quorum: DOWN, not INIT; INIT while the
     * undecided could still make it */
    r.group = (ha_str){"q", 1};
    r.exclude = every + 1;
    r.nexclude = 2; /* a alone, UP: 1 of 1, 2 needed */
    a = run(&s, &r);
    CHECK(a.status == HA_DOWN);
    CHECK(strstr(a.body, "\"output\":\"1 of 1 up, 2 needed\"") != NULL);
    r.exclude = every + 2;
    r.nexclude = 1;
    cs[1].status = HA_INIT; /* a UP, b undecided: 1 of 2, 2 needed */
    CHECK(run(&s, &r).status == HA_INIT);
    cs[0].status = HA_DOWN; /* a DOWN: DOWN whatever b says */
    CHECK(run(&s, &r).status == HA_DOWN);
    cs[0].status = HA_UP;
    cs[1].status = HA_DOWN;
    s.ngroups = 4;
    r.group = (ha_str){"lua", 3};
    r.exclude = NULL;
    r.nexclude = 0;

    r.only = (ha_str){"b", 1};
    a = run(&s, &r);
    CHECK_INT(a.rc, 0);
    CHECK_STR(a.body, "{\"status\":\"DOWN\",\"output\":\"broken\",\"duration_ms\":1,\"time\":\"" T_STR "\"}");
    r.only = (ha_str){"d", 1};
    CHECK_INT(run(&s, &r).rc, -1); /* not a member */
    r.only = (ha_str){NULL, 0};
    r.group = (ha_str){"nope", 4};
    CHECK_INT(run(&s, &r).rc, -1);
    r.group = (ha_str){"readiness", 9}; /* a probe's group is served as the probe */
    CHECK_INT(run(&s, &r).rc, -1);

    /* the probe's own group: readiness (a, b) passes a 0.5 quorum */
    s.probe_group[HA_PI_READINESS] = 4;
    r = req(HA_PI_READINESS, HA_FMT_JSON, true);
    a = run(&s, &r);
    CHECK(a.status == HA_UP);
    CHECK(strstr(a.body, "\"output\":\"1 of 2 up (1 needed); failing: b\"") != NULL);
    cs[0].status = HA_DOWN;
    CHECK_INT(run(&s, &r).code, 500);
    cs[0].status = HA_UP;

    /* per-status codes of the config; liveness INIT answers its own code only when given */
    ha_probe_conf pc = pconf(200, 503);
    cs[3].status = HA_INIT;
    r = req(HA_PI_LIVENESS, HA_FMT_JSON, false);
    CHECK_INT(run_pc(&s, &pc, &r).code, 200);
    pc.codes[HA_INIT] = 299;
    a = run_pc(&s, &pc, &r);
    CHECK_INT(a.code, 299);
    CHECK(a.status == HA_UP);
    pc.codes[HA_DOWN] = 429;
    cs[3].status = HA_DOWN;
    CHECK_INT(run_pc(&s, &pc, &r).code, 429);
    CHECK_INT(front_render_code(NULL, NULL, HA_WARN), 200);
    CHECK_INT(front_render_code(NULL, NULL, HA_INIT), 503);
    CHECK_INT(front_render_code(&pc, &gs[2], HA_UP), 207);
    CHECK_INT(front_render_code(&pc, &gs[3], HA_DOWN), 429);
    CHECK_INT(front_render_code(NULL, &gs[3], HA_DOWN), 500);
    passed++;
}

int main(void)
{
    test_json();
    test_health_json();
    test_verbose();
    test_noncritical_and_init();
    test_empty();
    test_stall();
    test_age();
    test_shutdown_and_override();
    test_codes();
    test_only();
    test_exclude();
    test_escaping();
    test_snapshot();
    test_groups();
    return testlib_report();
}
