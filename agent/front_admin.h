/* front_admin.h: the operator's side of the HTTP front: /-/status,
 * /-/ready (readiness override), /-/drain, /-/reload, /-/checks/<name>
 * (PUT: a pushed check's report), and /info (also /actuator/info). Front thread only; answers from the newest snapshot and
 * sends requests to the engine through the bridge.
 *
 * Access to /-/ paths: every request must carry "Authorization: Bearer
 * <token>", whatever its address (401 with an empty body otherwise); with no
 * token configured every /-/ path answers 403 with an empty body (admin is
 * off). The trusted networks only decide who sees check outputs and details
 * on the probes. /info is public, like the probes. */
#ifndef HA_FRONT_ADMIN_H
#define HA_FRONT_ADMIN_H

#include <stdbool.h>

#include <h2o.h>

#include "bridge.h"
#include "config.h"
#include "snapshot.h"

typedef struct {
    const ha_config *cfg;     /* not owned */
    ha_bridge *bridge;        /* not owned: where overrides and reloads go */
    const ha_snapshot *snap;  /* newest snapshot, NULL before the first */
    bool token_ok;            /* the request carries the configured bearer token */
    bool shutting_down;       /* SIGTERM received */
    /* applies a readiness override: the front shows it at once and queues it
     * for the engine. Returns 0, -1 (out of memory) or -2 (256 reports and
     * overrides already wait for the engine); nothing changes on either. */
    int (*set_ready)(void *front, bool ready, const char *reason, size_t len);
    void *front;              /* the ha_front: set_ready's argument, and front__report's */
    bool not_ready;           /* the readiness override in force (one not yet applied
                                 by the engine included) */
    const char *not_ready_reason; /* its reason, may be NULL */
    /* /-/status: JSON members appended to its object (front_status_json),
     * NULL for other paths; built and cached by the front */
    const char *status_extra;
    size_t status_extra_len;
} ha_admin_ctx;

/* Records the build facts shown by /info and the process start time. Call
 * once from main before serving; the strings must stay valid. */
void front_admin_init(const char *commit, const char *build_date);

/* The build facts and start time front_admin_init recorded. */
typedef struct {
    const char *commit, *build_date; /* static strings */
    int64_t start_ms;                /* wall clock at start */
} ha_build_facts;
ha_build_facts front_admin_build(void);

/* True for the paths answered here: /-/ and below, /info, /actuator/info. */
bool front_admin_route(h2o_iovec_t path);

/* Answers the request: at once (2xx, 400, 401, 403, 404, 405, 409, 413,
 * 503), or, for a valid report, once the front has absorbed the snapshot
 * that shows it or max_wait passed (front__report). Returns 0, the h2o
 * handler convention for "handled". */
int front_admin_handle(h2o_req_t *req, const ha_admin_ctx *ctx);

#endif
