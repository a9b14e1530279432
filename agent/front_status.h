/* front_status.h: the status page for people (GET / and /status: one HTML
 * document with inline CSS, no script, no external asset, refreshing itself
 * every few seconds) and the same facts as JSON for tools (the checks and
 * groups part of GET /-/status). Pure functions of the snapshot and the view below,
 * front thread only. The front renders each once per snapshot change and
 * audience and caches the result; everything that comes from scripts is
 * HTML- or JSON-escaped here. */
#ifndef HA_FRONT_STATUS_H
#define HA_FRONT_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "front_render.h"
#include "snapshot.h"

#define HA_PAGE_REFRESH_S 5          /* the page reloads itself this often */
#define HA_PAGE_STRIP_BUDGET 60000   /* history entries the page shows over all checks: each
                                        check's strip has its last min(history, budget / checks)
                                        (at least 5), so a page of 10,000 checks stays bounded */
#define HA_PAGE_MEMBER_BUDGET 20000  /* member names the page (and /-/status) lists over all groups:
                                        each group its first max(budget / groups, HA_PAGE_MEMBERS_MIN),
                                        then a count */
#define HA_PAGE_MEMBERS_MIN 20

/* What the page shows beside the snapshot. */
typedef struct {
    const ha_config *cfg;                /* probe paths and codes; not owned */
    ha_status probe_status[HA_NPROBES];  /* as the probes answer now */
    bool full;                           /* trusted or token client: outputs and load errors shown */
    uint64_t engine_lag_ns;              /* at build time */
    uint64_t stalled_ns;                 /* > 0: the engine is stalled that long */
    bool shutting_down;
    const char *commit, *build_date;     /* static strings */
    int64_t start_ms;                    /* process start, wall clock */
    int64_t now_ms;                      /* build time, wall clock */
    const unsigned char *age;            /* per check an ha_age (front overlay), NULL: all fresh */
} ha_page_view;

/* Appends the HTML page to b. s may be NULL (no snapshot yet). */
void front_status_html(const ha_snapshot *s, const ha_page_view *v, ha_buf *b);

/* Appends the JSON members `,"probes":{...},"engine":{...},"history_size":N,"check_states":[...],
 * "groups":[...]` (leading comma included) that GET /-/status adds to its
 * object. Outputs are included: /-/status is for trusted and token clients
 * only. */
void front_status_json(const ha_snapshot *s, const ha_page_view *v, ha_buf *b);

/* Appends s[0..n) HTML-escaped (& < > " '), control characters as spaces,
 * invalid UTF-8 as U+FFFD. */
void front_status_escape(ha_buf *b, const char *s, size_t n);

#endif
