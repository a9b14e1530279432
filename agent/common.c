/* common.c: names, durations, sizes and wall-clock formatting shared by every
 * subsystem (see common.h). */
#include "common.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

/* Longest duration accepted anywhere in the configuration: one year. */
#define COMMON_MAX_DURATION_NS (365ull * 24 * 3600 * HA_NS_PER_S)

static const char *const common_status_names[] = {"UP", "WARN", "INIT", "DOWN"};
static const char *const common_status_ietf[] = {"pass", "warn", "fail", "fail"};
static const char *const common_probe_names[] = {"liveness", "readiness", "startup", "health"};
static const unsigned common_probe_masks[] = {HA_PROBE_LIVENESS, HA_PROBE_READINESS,
                                              HA_PROBE_STARTUP, HA_PROBE_ALL};

const char *ha_status_name(ha_status s)
{
    if ((unsigned)s >= HA_ARRAY_SIZE(common_status_names))
        return "DOWN";
    return common_status_names[s];
}

const char *ha_status_ietf(ha_status s)
{
    if ((unsigned)s >= HA_ARRAY_SIZE(common_status_ietf))
        return "fail";
    return common_status_ietf[s];
}

const char *ha_probe_name(int pi)
{
    if (pi < 0 || pi >= (int)HA_ARRAY_SIZE(common_probe_names))
        return "health";
    return common_probe_names[pi];
}

int ha_probe_covers(unsigned probes, int pi)
{
    return pi == HA_PI_HEALTH || (probes & ha_probe_mask(pi)) != 0;
}

unsigned ha_probe_mask(int pi)
{
    if (pi < 0 || pi >= (int)HA_ARRAY_SIZE(common_probe_masks))
        return HA_PROBE_ALL;
    return common_probe_masks[pi];
}

/* Parses an unsigned decimal "123" or "123.456" at *sp, advancing *sp past
 * it. At least one digit is required before any '.', and one after it.
 * Returns 0 with the value as ip (integer part, saturated at limit + 1) and
 * fp / 10^fdigits (at most 9 fraction digits kept, the rest truncated), or -1. */
static int common_decimal(const char **sp, uint64_t limit, uint64_t *ip, uint64_t *fp,
                          int *fdigits)
{
    const char *s = *sp;
    uint64_t i = 0, f = 0;
    int nf = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        i = i > (limit - d) / 10 ? limit + 1 : i * 10 + d; /* saturate: the caller rejects it */
    }
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return -1;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (nf < 9) {
                f = f * 10 + (uint64_t)(*s - '0');
                nf++;
            }
        }
    }
    *ip = i;
    *fp = f;
    *fdigits = nf;
    *sp = s;
    return 0;
}

/* value = (ip + fp / 10^fdigits) * unit, exact up to truncation of the last
 * fraction of a unit. Returns 0, or -1 when above max. */
static int common_scale(uint64_t ip, uint64_t fp, int fdigits, uint64_t unit, uint64_t max,
                        uint64_t *out)
{
    unsigned __int128 v = (unsigned __int128)ip * unit;
    unsigned __int128 pow = 1;
    for (int k = 0; k < fdigits; k++)
        pow *= 10;
    v += (unsigned __int128)fp * unit / pow;
    if (v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Accepts "<decimal>" (seconds) or "<decimal><unit>" with unit ms, s, m, h or d:
 * no sign, no spaces, no exponent, nothing after the unit, at most one year.
 * Anything else, including "inf" and "nan", is -1 and leaves *ns alone. */
int ha_duration_parse(const char *s, uint64_t *ns)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"", HA_NS_PER_S},  {"ms", HA_NS_PER_MS},        {"s", HA_NS_PER_S},
        {"m", 60 * HA_NS_PER_S}, {"h", 3600 * HA_NS_PER_S}, {"d", 24 * 3600 * HA_NS_PER_S},
    };
    uint64_t ip, fp, v;
    int nf;
    if (s == NULL || common_decimal(&s, COMMON_MAX_DURATION_NS, &ip, &fp, &nf) < 0)
        return -1;
    for (size_t u = 0; u < HA_ARRAY_SIZE(units); u++) {
        if (strcmp(s, units[u].name) != 0)
            continue;
        if (common_scale(ip, fp, nf, units[u].ns, COMMON_MAX_DURATION_NS, &v) < 0)
            return -1;
        *ns = v;
        return 0;
    }
    return -1;
}

/* Picks the largest of h, m, s, ms that divides ns exactly. A value that is
 * not a whole number of milliseconds is written as decimal seconds
 * ("0.0000015s"), which ha_duration_parse reads back exactly. */
void ha_duration_format(uint64_t ns, char *buf, size_t len)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"h", 3600 * HA_NS_PER_S}, {"m", 60 * HA_NS_PER_S}, {"s", HA_NS_PER_S}, {"ms", HA_NS_PER_MS},
    };
    if (len == 0)
        return;
    if (ns == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t u = 0; u < HA_ARRAY_SIZE(units); u++) {
        if (ns % units[u].ns == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ns / units[u].ns), units[u].name);
            return;
        }
    }
    char frac[16];
    snprintf(frac, sizeof frac, "%09llu", (unsigned long long)(ns % HA_NS_PER_S));
    size_t n = strlen(frac);
    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    snprintf(buf, len, "%llu.%ss", (unsigned long long)(ns / HA_NS_PER_S), frac);
}

/* Accepts "<decimal>" bytes or "<decimal><suffix>": KiB/MiB/GiB and K/M/G
 * are powers of 1024, KB/MB/GB powers of 1000, B is bytes. A fraction is
 * truncated to whole bytes ("1.5KiB" = 1536). Caps at 2^63 bytes. */
int ha_size_parse(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1},           {"B", 1},
        {"K", 1ull << 10}, {"KiB", 1ull << 10}, {"KB", 1000},
        {"M", 1ull << 20}, {"MiB", 1ull << 20}, {"MB", 1000000},
        {"G", 1ull << 30}, {"GiB", 1ull << 30}, {"GB", 1000000000},
    };
    const uint64_t max = 1ull << 63;
    uint64_t ip, fp, v;
    int nf;
    if (s == NULL || common_decimal(&s, max, &ip, &fp, &nf) < 0)
        return -1;
    for (size_t u = 0; u < HA_ARRAY_SIZE(units); u++) {
        if (strcmp(s, units[u].name) != 0)
            continue;
        if (common_scale(ip, fp, nf, units[u].mult, max, &v) < 0)
            return -1;
        *bytes = v;
        return 0;
    }
    return -1;
}

int64_t ha_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes "YYYY-MM-DDThh:mm:ss.mmmZ". Times before the epoch round down. */
void ha_time_format(int64_t wall_ms, char *buf, size_t len)
{
    if (len == 0)
        return;
    int64_t sec = wall_ms / 1000, ms = wall_ms % 1000;
    if (ms < 0) {
        ms += 1000;
        sec -= 1;
    }
    ha_utc u;
    ha_utc_split(sec, &u);
    snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)u.year, u.mon, u.mday, u.hour, u.min,
             u.sec, (int)ms);
}

/* Floor division and its remainder, for times before the epoch. */
static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void ha_utc_split(int64_t sec, ha_utc *u)
{
    int64_t days = floor_div(sec, 86400), rem = sec - days * 86400;
    u->hour = (int)(rem / 3600);
    u->min = (int)(rem / 60 % 60);
    u->sec = (int)(rem % 60);
    u->wday = (int)(days + 4 - floor_div(days + 4, 7) * 7); /* 1970-01-01 was a Thursday */
    /* the calendar in 400-year eras of 146097 days, each year starting on
     * 1 March so that the leap day comes last */
    int64_t z = days + 719468; /* days since 0000-03-01 */
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;                                       /* 0-146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0-399 */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* 0-365, from 1 March */
    int64_t mp = (5 * doy + 2) / 153;                                    /* 0 is March */
    u->mday = (int)(doy - (153 * mp + 2) / 5 + 1);
    u->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
    u->year = yoe + era * 400 + (u->mon <= 2);
}

void ha_http_date(int64_t sec, char *buf)
{
    static const char wdays[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    ha_utc u;
    ha_utc_split(sec, &u);
    int y = u.year < 0 ? 0 : u.year > 9999 ? 9999 : (int)u.year;
    char *p = buf;
    memcpy(p, wdays + 3 * u.wday, 3);
    p[3] = ',';
    p[4] = ' ';
    p[5] = (char)('0' + u.mday / 10);
    p[6] = (char)('0' + u.mday % 10);
    p[7] = ' ';
    memcpy(p + 8, months + 3 * (u.mon - 1), 3);
    p[11] = ' ';
    p[12] = (char)('0' + y / 1000);
    p[13] = (char)('0' + y / 100 % 10);
    p[14] = (char)('0' + y / 10 % 10);
    p[15] = (char)('0' + y % 10);
    p[16] = ' ';
    p[17] = (char)('0' + u.hour / 10);
    p[18] = (char)('0' + u.hour % 10);
    p[19] = ':';
    p[20] = (char)('0' + u.min / 10);
    p[21] = (char)('0' + u.min % 10);
    p[22] = ':';
    p[23] = (char)('0' + u.sec / 10);
    p[24] = (char)('0' + u.sec % 10);
    memcpy(p + 25, " GMT", 5); /* and the NUL */
}

int ha_inet_pton(int af, const char *src, void *dst)
{
    if ((af != AF_INET && af != AF_INET6) || strchr(src, '%') != NULL)
        return 0;
    return uv_inet_pton(af, src, dst) == 0;
}

/* --- shared objects loaded on demand ---------------------------------------- */

#ifndef HA_MODULE_DIR
#define HA_MODULE_DIR "/usr/local/lib/healthagent"
#endif

/* Writes the directory holding the binary into dir; 0 if unknown. */
static int common_exe_dir(char *dir, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    if (n <= 0)
        return 0;
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    return 1;
}

void *ha_module_open(const char *file, char *err, size_t errlen)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    struct { const char *dir, *sub; } cand[] = {
        {exe, ""},                    /* the build tree */
        {exe, "/../lib/healthagent"}, /* an installed tree */
        {HA_MODULE_DIR, ""},
    };
    size_t first = common_exe_dir(exe, sizeof exe) ? 0 : 2;
    for (size_t i = first; i < HA_ARRAY_SIZE(cand); i++) {
        int n = snprintf(path, sizeof path, "%s%s/%s", cand[i].dir, cand[i].sub, file);
        if (n < 0 || (size_t)n >= sizeof path || access(path, F_OK) != 0)
            continue;
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL && snprintf(err, errlen, "cannot load %s: %s", path, dlerror()) < 0)
            err[0] = '\0';
        return h;
    }
    if (snprintf(err, errlen, "cannot load %s: not found next to the binary (%s), in %s%s nor in %s", file,
                 first ? "?" : exe, first ? "?" : exe, cand[1].sub, HA_MODULE_DIR) < 0)
        err[0] = '\0';
    return NULL;
}

char *ha_put_u64(char *p, uint64_t v)
{
    char t[HA_U64_DIGITS];
    int i = sizeof t;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(p, t + i, sizeof t - (size_t)i);
    return p + (sizeof t - (size_t)i);
}

int ha_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > HA_NAME_MAX || (n <= 2 && strspn(s, ".") == n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return 0;
    }
    return 1;
}
