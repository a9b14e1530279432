/* fuzz_common.c: ha_duration_parse, ha_duration_format and ha_size_parse
 * (agent/common.h).
 *
 * The input, cut at its first NUL, is parsed as a duration and as a size.
 * Checks: a failed parse leaves the output alone; an accepted duration is at
 * most one year and formats to a string that parses back to it; a plain
 * "<digits><unit>" string is accepted exactly when digits * unit is in range,
 * with that value (an oracle in 128-bit arithmetic, independent of the
 * parser); a size is at most 2^63. The first 8 bytes, read as a number of
 * nanoseconds, must survive format then parse when at most one year and be
 * refused above it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fuzz.h"

#define YEAR_NS (365ull * 24 * 3600 * HA_NS_PER_S)
#define UNTOUCHED 0x5a5a5a5a5a5a5a5aull

/* Checks parse(format(ns)): equal when ns is at most a year, refused above. */
static void fuzz_round_trip(uint64_t ns)
{
    char text[64], detail[160];
    uint64_t back = UNTOUCHED;
    ha_duration_format(ns, text, sizeof text);
    int rc = ha_duration_parse(text, &back);
    snprintf(detail, sizeof detail, "ns=%llu formatted '%s' parsed rc=%d back=%llu",
             (unsigned long long)ns, text, rc, (unsigned long long)back);
    if (ns <= YEAR_NS)
        FUZZ_CHECK(rc == 0 && back == ns, detail);
    else
        FUZZ_CHECK(rc < 0 && back == UNTOUCHED, detail);
    /* the shortest exact unit never needs more than 23 characters */
    FUZZ_CHECK(strlen(text) < 24, detail);
}

/* "<1 to 19 digits><suffix>" with suffix one of units[]: stores the integer
 * value and the unit multiplier and returns true. */
static bool fuzz_plain(const char *s, const char *const *names, const uint64_t *mults,
                       size_t nunits, unsigned __int128 *value)
{
    size_t nd = strspn(s, "0123456789");
    if (nd == 0 || nd > 19)
        return false;
    for (size_t u = 0; u < nunits; u++) {
        if (strcmp(s + nd, names[u]) != 0)
            continue;
        unsigned __int128 v = 0;
        for (size_t i = 0; i < nd; i++)
            v = v * 10 + (unsigned)(s[i] - '0');
        *value = v * mults[u];
        return true;
    }
    return false;
}

static void fuzz_duration(const char *s)
{
    static const char *const names[] = {"", "ms", "s", "m", "h"};
    static const uint64_t mults[] = {HA_NS_PER_S, HA_NS_PER_MS, HA_NS_PER_S, 60 * HA_NS_PER_S,
                                     3600 * HA_NS_PER_S};
    char detail[200];
    uint64_t ns = UNTOUCHED;
    unsigned __int128 want;
    int rc = ha_duration_parse(s, &ns);

    snprintf(detail, sizeof detail, "duration '%.80s' rc=%d ns=%llu", s, rc,
             (unsigned long long)ns);
    if (rc < 0) {
        FUZZ_CHECK(ns == UNTOUCHED, detail);
    } else {
        FUZZ_CHECK(rc == 0 && ns <= YEAR_NS, detail);
        fuzz_round_trip(ns);
    }
    if (fuzz_plain(s, names, mults, HA_ARRAY_SIZE(names), &want)) {
        if (want <= YEAR_NS)
            FUZZ_CHECK(rc == 0 && ns == (uint64_t)want, detail);
        else
            FUZZ_CHECK(rc < 0, detail);
    }
}

static void fuzz_size(const char *s)
{
    static const char *const names[] = {"",  "B",   "K", "KiB", "KB", "M",
                                        "MiB", "MB", "G", "GiB", "GB"};
    static const uint64_t mults[] = {1,        1,       1ull << 10, 1ull << 10, 1000, 1ull << 20,
                                     1ull << 20, 1000000, 1ull << 30, 1ull << 30, 1000000000};
    char detail[200];
    uint64_t bytes = UNTOUCHED;
    unsigned __int128 want;
    int rc = ha_size_parse(s, &bytes);

    snprintf(detail, sizeof detail, "size '%.80s' rc=%d bytes=%llu", s, rc,
             (unsigned long long)bytes);
    if (rc < 0)
        FUZZ_CHECK(bytes == UNTOUCHED, detail);
    else
        FUZZ_CHECK(rc == 0 && bytes <= 1ull << 63, detail);
    if (fuzz_plain(s, names, mults, HA_ARRAY_SIZE(names), &want)) {
        if (want <= 1ull << 63)
            FUZZ_CHECK(rc == 0 && bytes == (uint64_t)want, detail);
        else
            FUZZ_CHECK(rc < 0, detail);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    fuzz_duration(s);
    fuzz_size(s);
    free(s);

    if (size >= 8) {
        uint64_t ns = 0;
        for (int i = 0; i < 8; i++)
            ns = ns << 8 | data[i];
        fuzz_round_trip(ns);
        fuzz_round_trip(ns % (YEAR_NS + 1));
        fuzz_round_trip(ns % 1000000 * HA_NS_PER_MS); /* whole milliseconds */
    }
    return 0;
}
