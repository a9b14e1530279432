/* front_metrics.h: GET /metrics, the Prometheus text exposition format
 * 0.0.4. Two parts: what only changes with the snapshot (every check family,
 * the scripts families, build_info), which the front renders once per
 * snapshot and caches, and what the front knows at scrape time (probe
 * status and request counters, engine lag and stall, process_*), a few
 * dozen lines rendered per scrape. Front thread only; pure apart from
 * front_metrics_live reading /proc/self. Outputs never appear here. */
#ifndef HA_FRONT_METRICS_H
#define HA_FRONT_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "common.h"
#include "front_render.h"
#include "snapshot.h"

#define HA_METRICS_CODES 8 /* distinct HTTP codes counted per probe; more go to the last slot */

/* Requests answered per probe and HTTP code (front state, not snapshot). */
typedef struct {
    struct {
        int code;            /* 0: slot unused */
        uint64_t n;
    } by[HA_NPROBES][HA_METRICS_CODES];
} ha_probe_counts;

/* What the front knows at scrape time. */
typedef struct {
    const ha_probe_counts *requests;
    bool probe_ok[HA_NPROBES];          /* the probe would answer with its success code now */
    uint64_t engine_lag_ns;             /* since the engine loop last turned */
    bool stalled;                       /* the watchdog declared it stalled */
    uint64_t snapshots;                 /* publications of the engine so far (the last seq) */
    int64_t start_ms;                   /* process start, wall clock */
} ha_metrics_live;

/* Counts one answer of probe pi (ha_probe_index) with HTTP code. */
void front_metrics_count(ha_probe_counts *pc, int pi, int code);

/* Appends the snapshot's families to b: healthagent_check_*,
 * healthagent_group_* (when there are groups),
 * healthagent_scripts_*, healthagent_build_info{version, commit}. s may be
 * NULL (before the first snapshot): only the families without checks. age
 * (per check an ha_age, the front's overlay; NULL: all fresh) gives
 * healthagent_check_stale. */
void front_metrics_snapshot(const ha_snapshot *s, const unsigned char *age, const char *commit, ha_buf *b);

/* Reference-counted blocks for the bodies the renderer keeps between two
 * renders (the front gives h2o's shared memory): alloc returns a block
 * holding one reference; retain adds one, release drops one. */
typedef struct {
    char *(*alloc)(size_t len);
    void (*retain)(char *p);
    void (*release)(char *p);
    bool (*sole)(const char *p); /* the caller's is the only reference */
} ha_metrics_mem;

/* What front_metrics_render keeps from one render to the next: the body,
 * and where each check's lines are in it. */
typedef struct ha_metrics_memo ha_metrics_memo;

/* What front_metrics_snapshot appends, as a new block of mem (one
 * reference, the caller's), NUL-terminated, *len bytes before the NUL. Of
 * a snapshot of the same generation as the last render with *memo, only
 * the checks whose lines changed are rendered again; the other lines are
 * copied, a run of them at once, from the last body, which the memo holds
 * (one reference) until the next render; it writes into the body before
 * that when nothing else holds it any more, and, when nothing but the memo
 * holds the last body and every changed line keeps its length, it writes
 * the changes over that body and returns it again (with the caller's
 * reference). *memo may be NULL: created here.
 * Returns NULL when out of memory (the memo is then as before). */
char *front_metrics_render(ha_metrics_memo **memo, const ha_metrics_mem *mem, const ha_snapshot *s,
                           const unsigned char *age, const char *commit, size_t *len);
/* Frees a memo and its reference to the last body. NULL is fine. */
void front_metrics_memo_free(ha_metrics_memo *memo, const ha_metrics_mem *mem);

/* Appends the scrape-time families to b: healthagent_probe_*,
 * healthagent_engine_*, process_*. */
void front_metrics_live(const ha_metrics_live *m, ha_buf *b);

/* Appends s[0..n) as a Prometheus label value body: backslash, double quote
 * and newline escaped, invalid UTF-8 replaced by U+FFFD. */
void front_metrics_label(ha_buf *b, const char *s, size_t n);

#endif
