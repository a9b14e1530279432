/* snapshot.h: the immutable picture of every check that the engine publishes
 * and the front serves from. A snapshot is built by the engine thread, handed
 * over whole through the bridge, and from then on owned by the front thread,
 * which only reads it. Nothing in it points into a Lua state. */
#ifndef HA_SNAPSHOT_H
#define HA_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

/* How one run ended, as healthagent_check_runs_total{result} counts it. */
typedef enum {
    HA_RES_UP = 0,
    HA_RES_WARN = 1,
    HA_RES_DOWN = 2,          /* the check returned false */
    HA_RES_TIMEOUT = 3,       /* killed at its timeout */
    HA_RES_ERROR = 4,         /* raised, ran out of memory, or returned no status */
    HA_NRESULTS = 5,
} ha_result;

#define HA_HIST_OUTPUT 50     /* bytes of a history entry's output, NUL included */
#define HA_NBUCKETS 9         /* duration histogram bounds, 1 ms .. 10 s (snapshot.c) */

/* One past result: 64 bytes. */
typedef struct {
    int64_t time_ms;          /* wall clock of the result */
    uint32_t duration_us;     /* run time, saturated at UINT32_MAX (71 minutes) */
    uint8_t status;           /* ha_status after thresholds */
    uint8_t result;           /* ha_result */
    char output[HA_HIST_OUTPUT]; /* the start of the result's message, cut on a UTF-8 boundary */
} ha_hist_entry;

/* A check's run counters and last results. Immutable once published: the
 * engine builds a new block per result and shares it with every snapshot
 * that shows it (reference counted, any thread may release). Size: 144 bytes
 * plus 64 per entry, 3,984 bytes at the default 60. */
typedef struct {
    _Atomic uint32_t refs;    /* snapshot_hist_retain / snapshot_hist_release */
    uint32_t n;               /* entries in e */
    uint64_t runs_by[HA_NRESULTS]; /* completed runs per result */
    uint64_t buckets[HA_NBUCKETS]; /* runs whose duration is <= that bound and > the previous one */
    uint64_t duration_sum_us; /* sum of every counted run's duration */
    uint64_t transitions;     /* status changes (INIT -> UP included) */
    int64_t transition_ms;    /* wall clock of the last status change, 0 if none */
    ha_hist_entry e[];        /* oldest first */
} ha_hist;

/* Upper bounds of the duration buckets in microseconds: 1, 2.5, 10, 25, 100,
 * 250 ms, 1, 2.5, 10 s (few: each is one series per check). */
extern const uint32_t snapshot_bucket_us[HA_NBUCKETS];

/* Takes one more reference to h (NULL is fine); returns h. */
const ha_hist *snapshot_hist_retain(const ha_hist *h);
/* Drops a reference; the last one frees the block. NULL is fine. */
void snapshot_hist_release(const ha_hist *h);

typedef struct {
    char *name;               /* owned; unique in the snapshot */
    uint64_t name_hash;       /* snapshot_name_hash(name), set once per check by the engine;
                                 0: not set (the front computes it) */
    unsigned probes;          /* HA_PROBE_* mask */
    bool critical;            /* false: a failure shows as WARN, fails no probe */
    char component_type[HA_COMPONENT_TYPE_MAX + 1]; /* health+json componentType; "" = "component" */
    bool running;             /* a run is in flight at publication time */
    ha_status status;         /* effective status after thresholds (INIT before any) */
    char *output;             /* owned, may be NULL: message of the last result */
    char *details_json;       /* owned, may be NULL: a JSON object or array */
    uint64_t duration_ms;     /* duration of the last run */
    int64_t time_ms;          /* wall clock of the last result, 0 if none */
    uint64_t expires_ns;      /* monotonic (uv_hrtime) time the last result turns stale; 0 if none */
    uint64_t expired_ns;      /* monotonic time the last result passes max_age; 0 if none */
    uint64_t max_age_ns;      /* oldest result the front shows (stale); older reads DOWN */
    uint64_t not_before_ns;   /* monotonic: no run before this (initial_delay) */
    uint64_t timeout_ns;      /* hard deadline of one run */
    uint64_t runs;            /* completed runs so far: grows by one per result */
    uint64_t ttl_ns;          /* a result is served this long */
    uint64_t interval_ns;     /* background refresh, 0 = on demand */
    int failure_threshold, success_threshold;
    int consec_ok, consec_fail; /* the thresholds' counters */
    ha_status last;           /* raw status of the last run (before thresholds) */
    const ha_hist *hist;      /* one reference owned, NULL before the first result */
    /* dependencies and pushed checks (engine_check.c) */
    uint32_t *deps;           /* owned, may be NULL: indices into checks of its depends_on */
    uint32_t ndeps;
    bool blocked;             /* shown DOWN because a dependency is DOWN: output names the root
                                 cause; expires_ns is the root's (0: recovering, its run due) */
    bool pushed;              /* results come from reports, never a run: never stale */
} ha_snap_check;

/* --- groups (health.group, engine_group.c) ---------------------------------
 * A named set of checks with its own aggregation, path and HTTP codes. A
 * group named after a probe (liveness, readiness, startup) sets that probe's
 * aggregation and codes; its members are the probe's checks. */
typedef enum {
    HA_AGG_WORST = 0,         /* the worst member decides (the probes' rule) */
    HA_AGG_QUORUM = 1,        /* enough passing members: min_up of them, or ratio of all */
    HA_AGG_ANY = 2,           /* one passing member is enough */
    HA_AGG_LUA = 3,           /* the script's function, run by the engine (lua_* below) */
} ha_agg_kind;

typedef struct {
    char *name;               /* owned; unique among checks and groups, sorted by */
    uint32_t *members;        /* owned: indices into checks, ascending (so by name) */
    uint32_t nmembers;
    int probe;                /* ha_probe_index the group stands for, or -1 */
    ha_agg_kind kind;
    uint32_t min_up;          /* HA_AGG_QUORUM: passing members needed; 0 when ratio is */
    double ratio;             /* HA_AGG_QUORUM: share of members that must pass, (0, 1] */
    ha_status lua_status;     /* HA_AGG_LUA: the function's last verdict, INIT before one */
    char *lua_output;         /* owned, may be NULL: its message */
    int64_t lua_time_ms;      /* wall clock of that verdict, 0 if none */
    char *path;               /* owned, may be NULL: the extra path the group answers */
    int success_status;       /* HTTP code for UP and WARN; 0: the default (200) */
    int failure_status;       /* HTTP code for DOWN and INIT; 0: the default (503) */
    int codes[HA_NSTATUS];    /* per ha_status, 0: from success/failure */
} ha_snap_group;

typedef struct {
    uint64_t seq;             /* grows by one per publication */
    uint64_t generation;      /* scripts generation serving these checks */
    uint64_t scripts_hash;    /* content hash of that generation's scripts */
    int64_t reload_ms;        /* wall clock that generation started serving */
    uint64_t reloads;         /* successful reloads since start */
    uint64_t reload_failures; /* failed reloads since start */
    char *info_json;          /* owned, may be NULL: JSON object of health.info values */
    char *load_error;         /* owned, may be NULL: last failed reload, "file:line: message" */
    int64_t load_error_ms;    /* wall clock of that failure */
    bool ready_override;      /* true: readiness forced DOWN by an operator or script */
    char *override_reason;    /* owned, may be NULL */
    uint64_t override_seq;    /* the last front override (HA_MSG_READY) the engine applied */
    uint64_t report_seq;      /* the last front report (HA_MSG_REPORT) the engine processed */
    size_t n;                 /* number of checks */
    ha_snap_check *checks;    /* owned array of n, sorted by name */
    /* groups: see ha_snap_group */
    ha_snap_group *groups;    /* owned array of ngroups, sorted by name */
    size_t ngroups;
    uint32_t probe_group[HA_NPROBES]; /* 1 + index in groups of the probe's own group, 0: none */
    /* owned, may be NULL: when set, every check's name, output and
     * details_json are in these chunks (snapshot_strdup), not each its own
     * allocation: a snapshot of 1,000 checks is a few blocks, not 3,000 */
    struct ha_snap_chunk *strings;
} ha_snapshot;

/* Copies str into s's string chunks (NULL stays NULL). Returns the copy,
 * which lives as long as s, or NULL when out of memory. */
char *snapshot_strdup(ha_snapshot *s, const char *str);

/* A hash of a check name, never 0: what the front's views fold in for a
 * name without reading it again (FNV-1a, 64 bits). */
uint64_t snapshot_name_hash(const char *name);

/* Frees a snapshot and everything it owns. NULL is fine. */
void snapshot_free(ha_snapshot *s);

/* Index of the check called name, or -1. Binary search: checks are sorted. */
int snapshot_find(const ha_snapshot *s, const char *name, size_t len);

/* Index of the group called name (probe groups included), or -1. */
int snapshot_find_group(const ha_snapshot *s, const char *name, size_t len);

/* True when check index i is a member of g (binary search). */
bool snapshot_group_has(const ha_snap_group *g, uint32_t i);

#endif
