/* snapshot.h: the immutable picture of every check that the engine publishes
 * and the front serves from. A snapshot is built by the engine thread, handed
 * over whole through the bridge, and from then on owned by the front thread,
 * which only reads it. Nothing in it points into a Lua state. */
#ifndef HA_SNAPSHOT_H
#define HA_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

typedef struct {
    char *name;               /* owned; unique in the snapshot */
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
    uint64_t running_since_ns;/* monotonic start of the run in flight, 0 if none */
} ha_snap_check;

typedef struct {
    uint64_t seq;             /* grows by one per publication */
    uint64_t generation;      /* scripts generation serving these checks */
    uint64_t scripts_hash;    /* content hash of that generation's scripts */
    int64_t reload_ms;        /* wall clock that generation started serving */
    uint64_t reloads;         /* successful reloads since start */
    char *info_json;          /* owned, may be NULL: JSON object of health.info values */
    char *load_error;         /* owned, may be NULL: last failed reload, "file:line: message" */
    int64_t load_error_ms;    /* wall clock of that failure */
    bool ready_override;      /* true: readiness forced DOWN by an operator or script */
    char *override_reason;    /* owned, may be NULL */
    uint64_t override_seq;    /* the last front override (HA_MSG_READY) the engine applied */
    size_t n;                 /* number of checks */
    ha_snap_check *checks;    /* owned array of n, sorted by name */
} ha_snapshot;

/* Frees a snapshot and everything it owns. NULL is fine. */
void snapshot_free(ha_snapshot *s);

/* Index of the check called name, or -1. Binary search: checks are sorted. */
int snapshot_find(const ha_snapshot *s, const char *name, size_t len);

#endif
