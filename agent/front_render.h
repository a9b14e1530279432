/* front_render.h: turns a snapshot into a probe answer: HTTP code and body
 * in one of three formats. Pure functions of their inputs, front thread only. */
#ifndef HA_FRONT_RENDER_H
#define HA_FRONT_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "snapshot.h"

typedef enum {
    HA_FMT_JSON = 0,        /* Spring Boot shape: application/json */
    HA_FMT_HEALTH_JSON = 1, /* IETF draft: application/health+json */
    HA_FMT_VERBOSE = 2,     /* kube-apiserver ?verbose text: text/plain */
    HA_NFORMATS = 3,
} ha_format;

typedef struct {
    const char *p;
    size_t len;
} ha_str;

typedef struct {
    int probe;                 /* ha_probe_index */
    ha_format format;
    bool full;                 /* show outputs and details (trusted or token) */
    ha_str only;               /* p != NULL: answer this one check */
    const ha_str *exclude;     /* names left out */
    size_t nexclude;
    uint64_t now_ns;           /* monotonic now, for staleness */
    uint64_t stalled_ns;       /* > 0: engine stalled this long: liveness fails
                                  "engine stalled for Ns", running checks read DOWN timeout */
    bool give_up;              /* the waiter timed out: checks still running or stale read
                                  DOWN "timeout after <timeout>" */
    const char *shutdown;      /* non-NULL: readiness reads DOWN with this reason */
} ha_render_req;

typedef struct {
    int http_status;           /* from the probe's success/failure codes */
    ha_status status;          /* aggregate */
    const char *content_type;  /* static string */
    ha_buf body;               /* owned by the caller after the call */
} ha_render_out;

/* Renders the answer. Returns 0, or -1 when only names a check that is not
 * in the snapshot or not in that probe (the caller answers 404). */
int front_render(const ha_snapshot *s, const ha_probe_conf *pc, const ha_render_req *r,
                 ha_render_out *out);

/* The aggregate status of a probe as front_render computes it. */
ha_status front_render_status(const ha_snapshot *s, const ha_render_req *r);

#endif
