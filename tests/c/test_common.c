/* test_common.c: names, durations, sizes and time formatting (common.c). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"

#include "testlib.h"

/* Parses s, which must be accepted, and returns the nanoseconds. */
static uint64_t dur_ok(const char *s)
{
    uint64_t ns = 12345;
    if (ha_duration_parse(s, &ns) != 0) {
        fprintf(stderr, "duration '%s' was rejected\n", s);
        failed++;
        return 12345;
    }
    return ns;
}

/* s must be rejected and leave the output alone. */
static void dur_bad(const char *s)
{
    uint64_t ns = 777;
    int rc = ha_duration_parse(s, &ns);
    if (rc == -1 && ns == 777) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "duration '%s' was accepted (rc %d, %llu ns)\n", s ? s : "(null)", rc,
                (unsigned long long)ns);
    }
}

static const char *dur_fmt(uint64_t ns)
{
    static char buf[64];
    ha_duration_format(ns, buf, sizeof buf);
    return buf;
}

static uint64_t size_ok(const char *s)
{
    uint64_t b = 12345;
    if (ha_size_parse(s, &b) != 0) {
        fprintf(stderr, "size '%s' was rejected\n", s);
        failed++;
    }
    return b;
}

static void size_bad(const char *s)
{
    uint64_t b = 777;
    int rc = ha_size_parse(s, &b);
    if (rc == -1 && b == 777) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "size '%s' was accepted (%llu)\n", s, (unsigned long long)b);
    }
}

static const char *time_fmt(int64_t ms)
{
    static char buf[32];
    ha_time_format(ms, buf, sizeof buf);
    return buf;
}

static void test_names(void)
{
    CHECK_STR(ha_status_name(HA_UP), "UP");
    CHECK_STR(ha_status_name(HA_WARN), "WARN");
    CHECK_STR(ha_status_name(HA_INIT), "INIT");
    CHECK_STR(ha_status_name(HA_DOWN), "DOWN");
    CHECK_STR(ha_status_ietf(HA_UP), "pass");
    CHECK_STR(ha_status_ietf(HA_WARN), "warn");
    CHECK_STR(ha_status_ietf(HA_INIT), "fail");
    CHECK_STR(ha_status_ietf(HA_DOWN), "fail");
    CHECK_STR(ha_probe_name(HA_PI_LIVENESS), "liveness");
    CHECK_STR(ha_probe_name(HA_PI_READINESS), "readiness");
    CHECK_STR(ha_probe_name(HA_PI_STARTUP), "startup");
    CHECK_STR(ha_probe_name(HA_PI_HEALTH), "health");
    CHECK(ha_probe_mask(HA_PI_LIVENESS) == HA_PROBE_LIVENESS);
    CHECK(ha_probe_mask(HA_PI_READINESS) == HA_PROBE_READINESS);
    CHECK(ha_probe_mask(HA_PI_STARTUP) == HA_PROBE_STARTUP);
    CHECK(ha_probe_mask(HA_PI_HEALTH) == HA_PROBE_ALL);
    CHECK(HA_DOWN > HA_INIT && HA_INIT > HA_WARN && HA_WARN > HA_UP);
    /* the one name rule: scripts, admin endpoints, healthagent report */
    char longest[HA_NAME_MAX + 2];
    memset(longest, 'n', sizeof longest);
    CHECK(ha_name_valid("orders-db_1.x", 13));
    CHECK(ha_name_valid(longest, HA_NAME_MAX));
    CHECK(!ha_name_valid(longest, HA_NAME_MAX + 1));
    CHECK(ha_name_valid("...", 3) && ha_name_valid(".a", 2));
    CHECK(!ha_name_valid("", 0) && !ha_name_valid(".", 1) && !ha_name_valid("..", 2));
    CHECK(!ha_name_valid("a b", 3) && !ha_name_valid("a/b", 3) && !ha_name_valid("a\0b", 3));
    CHECK(!ha_name_valid("caf\xc3\xa9", 5)); /* ASCII only, whatever the locale */
}

static void test_duration_parse(void)
{
    CHECK_U64(dur_ok("2"), 2 * HA_NS_PER_S);
    CHECK_U64(dur_ok("0.5"), 500 * HA_NS_PER_MS);
    CHECK_U64(dur_ok("0"), 0);
    CHECK_U64(dur_ok("250ms"), 250 * HA_NS_PER_MS);
    CHECK_U64(dur_ok("2s"), 2 * HA_NS_PER_S);
    CHECK_U64(dur_ok("1.5m"), 90 * HA_NS_PER_S);
    CHECK_U64(dur_ok("1h"), 3600 * HA_NS_PER_S);
    CHECK_U64(dur_ok("0.001"), HA_NS_PER_MS);
    CHECK_U64(dur_ok("1.5ms"), 1500000);
    CHECK_U64(dur_ok("0.000000001s"), 1);
    CHECK_U64(dur_ok("007s"), 7 * HA_NS_PER_S);
    CHECK_U64(dur_ok("8760h"), 8760ull * 3600 * HA_NS_PER_S); /* one year: the cap */
    CHECK_U64(dur_ok("31536000"), 31536000ull * HA_NS_PER_S);
    /* days: the one grammar has them everywhere (file_fresh's max_age too) */
    CHECK_U64(dur_ok("2d"), 2ull * 86400 * HA_NS_PER_S);
    CHECK_U64(dur_ok("1.5d"), 129600ull * HA_NS_PER_S);
    CHECK_U64(dur_ok("365d"), 365ull * 86400 * HA_NS_PER_S);
    dur_bad("366d");
    dur_bad("2D");

    dur_bad(NULL);
    dur_bad("");
    dur_bad("abc");
    dur_bad("-1");
    dur_bad("-1s");
    dur_bad("+1s");
    dur_bad(" 2s");
    dur_bad("2s ");
    dur_bad("2 s");
    dur_bad("2sec");
    dur_bad("2S");
    dur_bad("2w");
    dur_bad("1.");
    dur_bad(".5");
    dur_bad("1..5");
    dur_bad("1e3");
    dur_bad("0x10");
    dur_bad("inf");
    dur_bad("nan");
    dur_bad("ms");
    dur_bad("2ms5");
    dur_bad("8761h");
    dur_bad("31536001");
    dur_bad("99999999999999999999999999h");
}

static void test_duration_format(void)
{
    CHECK_STR(dur_fmt(0), "0s");
    CHECK_STR(dur_fmt(2 * HA_NS_PER_S), "2s");
    CHECK_STR(dur_fmt(250 * HA_NS_PER_MS), "250ms");
    CHECK_STR(dur_fmt(1500 * HA_NS_PER_MS), "1500ms");
    CHECK_STR(dur_fmt(90 * HA_NS_PER_S), "90s");
    CHECK_STR(dur_fmt(60 * HA_NS_PER_S), "1m");
    CHECK_STR(dur_fmt(3600 * HA_NS_PER_S), "1h");
    CHECK_STR(dur_fmt(1500), "0.0000015s");
    CHECK_STR(dur_fmt(HA_NS_PER_S + 1), "1.000000001s");

    /* Every formatted value parses back to itself. */
    static const uint64_t vals[] = {0, 1, 999, 1500, HA_NS_PER_MS, 1234 * HA_NS_PER_MS,
                                    61 * HA_NS_PER_S, 7200 * HA_NS_PER_S, HA_NS_PER_S + 1};
    for (size_t i = 0; i < HA_ARRAY_SIZE(vals); i++)
        CHECK_U64(dur_ok(dur_fmt(vals[i])), vals[i]);

    char small[3];
    ha_duration_format(250 * HA_NS_PER_MS, small, sizeof small);
    CHECK_STR(small, "25"); /* truncated, still terminated */
}

static void test_size_parse(void)
{
    CHECK_U64(size_ok("65536"), 65536);
    CHECK_U64(size_ok("10B"), 10);
    CHECK_U64(size_ok("64MiB"), 64ull << 20);
    CHECK_U64(size_ok("512KiB"), 512ull << 10);
    CHECK_U64(size_ok("1GiB"), 1ull << 30);
    CHECK_U64(size_ok("1K"), 1024);
    CHECK_U64(size_ok("2M"), 2ull << 20);
    CHECK_U64(size_ok("3G"), 3ull << 30);
    CHECK_U64(size_ok("1KB"), 1000);
    CHECK_U64(size_ok("5MB"), 5000000);
    CHECK_U64(size_ok("2GB"), 2000000000);
    CHECK_U64(size_ok("1.5KiB"), 1536);
    CHECK_U64(size_ok("0"), 0);

    size_bad("");
    size_bad("MiB");
    size_bad("-1");
    size_bad("-1MiB");
    size_bad("1 MiB");
    size_bad(" 1");
    size_bad("1TiB");
    size_bad("1mib");
    size_bad("1Mi");
    size_bad("1e6");
    size_bad("99999999999999999999");
    size_bad("9999999999GiB");
}

static void test_time(void)
{
    CHECK_STR(time_fmt(0), "1970-01-01T00:00:00.000Z");
    CHECK_STR(time_fmt(1795341600000), "2026-11-22T10:00:00.000Z");
    CHECK_STR(time_fmt(1795341600000 + 59 * 1000 + 7), "2026-11-22T10:00:59.007Z");
    CHECK_STR(time_fmt(-1), "1969-12-31T23:59:59.999Z");
    CHECK(strlen(time_fmt(1795341600123)) == 24);

    int64_t now = ha_wall_ms();
    CHECK(now > 1577836800000); /* after 2020-01-01 */
    CHECK(ha_wall_ms() >= now);
}

/* ha_utc_split and ha_http_date against the C library's gmtime_r and
 * strftime, which they stand in for, over days either side of the epoch,
 * the leap days of 2000 (a leap year), 2100 (not one) and 2400, and the
 * last second of 9999. */
static void test_utc(void)
{
    static const int64_t at[] = {0, -1, 86399, 86400, -86400, -86401, 951782399, 951782400, 951868800,
                                 4107542399, 4107542400, 4107628800, 13574563200, 13574649600,
                                 1795341600, 253402300799, -62135596800};
    int bad = 0;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        for (int64_t d = -3; d <= 3; d++) {
            int64_t sec = at[i] + d * 3607; /* seconds into other hours too */
            time_t t = (time_t)sec;
            struct tm tm;
            ha_utc u;
            gmtime_r(&t, &tm);
            ha_utc_split(sec, &u);
            if (u.year != tm.tm_year + 1900LL || u.mon != tm.tm_mon + 1 || u.mday != tm.tm_mday ||
                u.hour != tm.tm_hour || u.min != tm.tm_min || u.sec != tm.tm_sec || u.wday != tm.tm_wday) {
                if (bad++ < 5)
                    fprintf(stderr, "ha_utc_split(%lld): %lld-%d-%d %d:%d:%d wday %d\n", (long long)sec,
                            (long long)u.year, u.mon, u.mday, u.hour, u.min, u.sec, u.wday);
                continue;
            }
            if (tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
                continue; /* strftime's %Y does not pad to the four digits HTTP wants */
            char want[64], got[HA_HTTP_DATE_LEN + 1];
            strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
            ha_http_date(sec, got);
            if (strcmp(want, got) != 0 && bad++ < 5)
                fprintf(stderr, "ha_http_date(%lld): %s, not %s\n", (long long)sec, got, want);
        }
    }
    CHECK(bad == 0);
    char d[HA_HTTP_DATE_LEN + 1];
    ha_http_date(784111777, d);
    CHECK_STR(d, "Sun, 06 Nov 1994 08:49:37 GMT"); /* RFC 9110's example */
    CHECK(strlen(d) == HA_HTTP_DATE_LEN);
    CHECK_STR(time_fmt(951782400000), "2000-02-29T00:00:00.000Z");
    CHECK_STR(time_fmt(4107542400000), "2100-03-01T00:00:00.000Z");
    ha_http_date(-62135596800, d);
    CHECK_STR(d, "Mon, 01 Jan 0001 00:00:00 GMT");
}

/* ha_inet_pton(af, s) gives what inet_pton gives: the result and len bytes. */
static void inet_same(int af, const char *s, size_t len)
{
    unsigned char a[16] = {0}, b[16] = {0};
    int want = inet_pton(af, s, a), got = ha_inet_pton(af, s, b);
    CHECK(want == got);
    CHECK(memcmp(a, b, len) == 0);
    if (want != got)
        fprintf(stderr, "  %s \"%s\": %d, inet_pton %d\n", af == AF_INET ? "AF_INET" : "AF_INET6", s, got, want);
}

/* ha_inet_pton accepts what inet_pton(3) accepts, and refuses what it
 * refuses, zones included. */
static void test_inet(void)
{
    static const char *const v4[] = {"127.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.2.3",
                                     "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.4 ", "", "a.b.c.d"};
    static const char *const v6[] = {"::1", "::", "fe80::1", "2001:db8::8a2e:370:7334", "::ffff:10.0.0.1",
                                     "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", ":::1", "fe80::1%eth0", "1::2::3",
                                     "12345::1", "::ffff:1.2.3", "127.0.0.1", "g::1", ""};
    for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++)
        inet_same(AF_INET, v4[i], 4);
    for (size_t i = 0; i < sizeof v6 / sizeof v6[0]; i++)
        inet_same(AF_INET6, v6[i], 16);
    unsigned char c[16];
    CHECK(ha_inet_pton(AF_UNIX, "127.0.0.1", c) == 0);
}

int main(void)
{
    test_names();
    test_duration_parse();
    test_duration_format();
    test_size_parse();
    test_time();
    test_utc();
    test_inet();
    return testlib_report();
}
