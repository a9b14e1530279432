/* front_int.h: what the front's files (front*.c) share on the front thread,
 * implemented in front.c: the answer-time machinery. A probe asks the engine
 * for the stale checks it covers and waits for their results, but never
 * longer than max_wait; then it is answered from the snapshot and the front's
 * overlays (result age, readiness override, stall, shutdown), whatever the
 * engine is doing. Front thread only; never runs Lua. */
#ifndef HA_FRONT_INT_H
#define HA_FRONT_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include "front.h"
#include "front_render.h"

struct st_h2o_req_t;

/* Sends a complete response: status with its reason phrase, Content-Type
 * ctype (NULL: none), Cache-Control: no-store, and body[0..len) copied into
 * the request's pool (nothing is sent for HEAD, 204 and 304). */
void front__respond(struct st_h2o_req_t *req, int status, const char *ctype, const char *body, size_t len);

/* The checks one answer covers: one probe (ha_probe_index) or one group
 * (by name: the members of the snapshot's group of that name), optionally
 * one check of it, minus exclusions. The strings are the caller's. */
typedef struct {
    int probe;                 /* HA_PI_HEALTH for a group */
    ha_str group;              /* p != NULL: that group instead of the probe */
    ha_str only;               /* p != NULL: that one check */
    const ha_str *exclude;     /* names left out */
    size_t nexclude;
} ha_front_sel;

typedef struct front_wait_item front_wait_item;

/* Called once when a wait ends (see front__wait). The front has already
 * forgotten w: the callee may free or reuse it, and may start a new wait. */
typedef void (*front_wait_cb)(void *data);

/* One waiting answer. The caller owns the storage (embed it in the request
 * or call object) and must not touch the fields. */
typedef struct front_wait {
    struct front_wait *next, *prev; /* the front's list, soonest deadline first */
    ha_front *front;           /* NULL when not waiting */
    front_wait_cb cb;
    void *data;                /* cb's argument */
    front_wait_item *items;    /* owned (malloc): the checks waited for */
    size_t nitems;
    uint64_t deadline_ns;      /* monotonic: the budget ends */
    bool due;                  /* ending: on the front's list of callbacks to make */
    uint64_t report_seq;       /* front__report: the report waited for; 0 for other waits */
} front_wait;

/* Starts an answer for sel: asks the engine to run each check sel covers
 * whose result is stale or that never ran (single flight: at most one run
 * in flight per check, shared by every wait), then waits for their results.
 * Returns 0 when there is nothing to wait for: answer now (cb is never
 * called; a liveness check that never ran is requested but not waited for;
 * a check within its initial_delay is not waited for; nothing is waited for
 * while the engine is stalled, before the first snapshot, or when the
 * budget is 0). Returns 1 when w is waiting: cb(data) is then called exactly
 * once, later, from the front loop (never from inside this call), when each
 * awaited check has a new result (or is fresh, or was removed by a reload),
 * or when the budget ends: min(budget_ns, max_wait) from now, or when the
 * watchdog finds the engine stalled, or when shutdown ends the requests in
 * flight. Returns -1 when out of memory (nothing started: answer now).
 * w must not be waiting already; sel and its strings need only live for
 * the call. */
int front__wait(ha_front *f, front_wait *w, const ha_front_sel *sel, uint64_t budget_ns,
                front_wait_cb cb, void *data);

/* True when sel is a whole probe or group (no one check, no exclusions) of
 * the current snapshot and every check of it is fresh now, the engine not
 * stalled: front__wait would find nothing to wait for, and an answer made
 * now from front__answer_state is the one a wait would give. */
bool front__fresh(const ha_front *f, const ha_front_sel *sel);

/* Sends a report for the pushed check name[0..nlen) (status UP, WARN or
 * DOWN, output out[0..olen), at most HA_REPORT_OUTPUT_MAX bytes) to the
 * engine through the bridge, and waits until a snapshot that shows it
 * processed the report has been absorbed (so that the next probe shows the
 * report), but no longer than max_wait (at least REPORT_WAIT_MIN), nor past
 * an engine stall or shutdown. Sets *seq to the report's number. Returns 1
 * when w is waiting (cb(data) is called once, later, as for front__wait;
 * then front__report_applied says whether the engine processed it), 0 when
 * the report was sent but nothing is waited for (engine stalled), 2 when it
 * was sent but the agent is shutting down (past its drain), -1 when
 * out of memory, -2 when 256 reports and overrides already wait for the
 * engine (nothing sent either way). */
int front__report(ha_front *f, front_wait *w, const char *name, size_t nlen, ha_status status, const char *out,
                  size_t olen, front_wait_cb cb, void *data, uint64_t *seq);
/* True when the newest snapshot shows the engine processed report seq. */
bool front__report_applied(const ha_front *f, uint64_t seq);

/* Ends w without its callback if it is still waiting (the client left).
 * Safe on a wait that ended or never started, and after front_free. */
void front__wait_cancel(front_wait *w);

/* The snapshot to answer from now, or NULL before the first one; fills the
 * overlay fields of r (age, stalled_ns, not_ready, not_ready_reason,
 * shutdown) so that front_render(snapshot, pc, r, out) gives the answer of
 * this moment. Both stay valid until control returns to the loop. */
const ha_snapshot *front__answer_state(ha_front *f, ha_render_req *r);

/* The HTTP front's connection caps (max_connections, max_connections_per_address),
 * shared by the gRPC listener: counts one connection from ss. Returns 0 and the
 * address key in key (give it to front__conn_release when the connection
 * ends), or -1 when a cap is reached (nothing counted). */
int front__conn_admit(ha_front *f, const struct sockaddr_storage *ss, uint8_t key[16]);
void front__conn_release(ha_front *f, const uint8_t key[16]);

#endif
