/* common.h: the few types and helpers every subsystem of healthagent shares. */
#ifndef HA_COMMON_H
#define HA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define HA_VERSION "0.1.0"

/* Status of a check or of a probe, ordered so that a larger value is worse
 * for aggregation: DOWN > INIT > WARN > UP. */
typedef enum {
    HA_UP = 0,
    HA_WARN = 1,
    HA_INIT = 2,
    HA_DOWN = 3,
} ha_status;
#define HA_NSTATUS 4 /* ha_status values (per-status HTTP codes) */

/* Probe kinds. A check belongs to a bit mask of these. HA_PROBE_HEALTH is
 * the pseudo-probe of /healthz that covers every check. */
enum {
    HA_PROBE_LIVENESS = 1u << 0,
    HA_PROBE_READINESS = 1u << 1,
    HA_PROBE_STARTUP = 1u << 2,
};
#define HA_PROBE_ALL (HA_PROBE_LIVENESS | HA_PROBE_READINESS | HA_PROBE_STARTUP)
#define HA_NPROBES 4 /* liveness, readiness, startup, health (all) */

typedef enum {
    HA_PI_LIVENESS = 0,
    HA_PI_READINESS = 1,
    HA_PI_STARTUP = 2,
    HA_PI_HEALTH = 3,
} ha_probe_index;

/* Upper-case status name, e.g. "UP". */
const char *ha_status_name(ha_status s);
/* IETF health+json name: pass, warn or fail. */
const char *ha_status_ietf(ha_status s);
/* Probe name ("liveness"...) by index; "health" for HA_PI_HEALTH. */
const char *ha_probe_name(int pi);
/* Probe mask for an index; HA_PROBE_ALL for HA_PI_HEALTH. */
unsigned ha_probe_mask(int pi);
/* True when a check of the probes mask answers in probe pi: /healthz
 * (HA_PI_HEALTH) has every check, those in no probe (probes = {}) too. */
int ha_probe_covers(unsigned probes, int pi);

/* Parses a duration: "250ms", "2s", "1.5m", "1h", "1d" or a bare number of seconds:
 * the one grammar of the config, health.check fields and every option.
 * Returns 0 and stores nanoseconds, or -1 on a malformed or negative value. */
int ha_duration_parse(const char *s, uint64_t *ns);
/* Formats a duration in the shortest exact unit ("2s", "250ms") into buf. */
void ha_duration_format(uint64_t ns, char *buf, size_t len);
/* Writes the decimal digits of v at p (at most HA_U64_DIGITS bytes, no
 * NUL); returns the end. For renderers that write into room they sized. */
#define HA_U64_DIGITS 20
char *ha_put_u64(char *p, uint64_t v);
/* Parses a size: "64MiB", "512KiB", "1GiB", "65536". Returns 0 or -1. */
int ha_size_parse(const char *s, uint64_t *bytes);

/* Wall clock in milliseconds since the epoch. */
int64_t ha_wall_ms(void);
/* Formats wall milliseconds as RFC 3339 UTC with milliseconds
 * ("2026-11-22T10:00:00.000Z"); buf needs 25 bytes. */
void ha_time_format(int64_t wall_ms, char *buf, size_t len);

/* A UTC instant in calendar terms, computed here rather than by gmtime_r,
 * whose first call sets up the C library's time zones (reading
 * /etc/localtime) that nothing in the agent uses. */
typedef struct {
    int64_t year;
    int mon, mday;      /* 1-12, 1-31 */
    int hour, min, sec; /* 0-23, 0-59, 0-59 */
    int wday;           /* 0 is Sunday */
} ha_utc;
/* Splits sec, seconds since the epoch (negative before it), proleptic
 * Gregorian calendar, no leap seconds. */
void ha_utc_split(int64_t sec, ha_utc *u);
/* Writes the IMF-fixdate of sec ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110
 * 5.6.7) and a NUL: HA_HTTP_DATE_LEN + 1 bytes, for years 0 to 9999. */
#define HA_HTTP_DATE_LEN 29
void ha_http_date(int64_t sec, char *buf);

/* inet_pton(3) for AF_INET or AF_INET6, by libuv's parser, which keeps the
 * C library's resolver code out of a process that never resolves; a zone
 * ("%eth0") is refused as inet_pton refuses it. Returns 1 or 0. */
int ha_inet_pton(int af, const char *src, void *dst);

#define HA_HIST_DEFAULT 60 /* past results a check keeps by default (config key history) */
#define HA_HIST_MAX 1000   /* at most */

/* dlopen()s the shared object called file (e.g. "ha_http.so"): next to the
 * binary (the build tree), in <binary>/../lib/healthagent (an installed
 * tree), then in HA_MODULE_DIR. Returns the handle, or NULL with a one-line
 * message naming the file and dlerror() in err. */
void *ha_module_open(const char *file, char *err, size_t errlen);

#define HA_NS_PER_MS 1000000ull
#define HA_NS_PER_S 1000000000ull

#define HA_COMPONENT_TYPE_MAX 32 /* bytes of a check's component_type */

#define HA_NAME_MAX 128 /* bytes of a check, pushed check or group name */
/* True when s[0..n) is a name a check, pushed check or group may have: 1 to
 * HA_NAME_MAX characters of [A-Za-z0-9_.-], not "." or ".." (dot segments,
 * which paths like /healthz/<name> would resolve away). The one rule of the
 * scripts, the admin endpoints and healthagent report. */
int ha_name_valid(const char *s, size_t n);

#define HA_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
