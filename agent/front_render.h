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

/* How old a check's last result is, as the front tracks it beside the
 * snapshot (front.c): an overlay, never written into the snapshot. */
typedef enum {
    HA_AGE_FRESH = 0,          /* younger than its ttl, or no result yet */
    HA_AGE_STALE = 1,          /* past its ttl, within its max_age: shown, marked stale */
    HA_AGE_EXPIRED = 2,        /* past its max_age: reads DOWN "no result for <max_age>",
                                  except a check never decided, which stays INIT */
} ha_age;

typedef struct {
    int probe;                 /* ha_probe_index; HA_PI_HEALTH for a group */
    ha_str group;              /* p != NULL: the group of that name (snapshot_find_group)
                                  instead of the probe: its members, aggregate and codes */
    ha_format format;
    bool full;                 /* show outputs and details (trusted or token) */
    ha_str only;               /* p != NULL: answer this one check */
    const ha_str *exclude;     /* names left out */
    size_t nexclude;
    const unsigned char *age;  /* per check of the snapshot, an ha_age; NULL: all fresh */
    uint64_t stalled_ns;       /* > 0: engine stalled this long: liveness fails
                                  "engine stalled for Ns", running checks read DOWN timeout */
    bool not_ready;            /* readiness override in force: readiness reads DOWN */
    const char *not_ready_reason; /* its reason, may be NULL ("not ready") */
    const char *shutdown;      /* non-NULL: readiness reads DOWN with this reason */
} ha_render_req;

typedef struct {
    int http_status;           /* from the probe's success/failure codes */
    ha_status status;          /* aggregate */
    const char *content_type;  /* static string */
    ha_buf body;               /* owned by the caller after the call */
} ha_render_out;

/* Renders the answer. pc gives the probe's codes (NULL: 200 and 503; a
 * group's own codes come first). Returns 0, or -1 when only names a check
 * that is not in the snapshot or not in that probe or group, or group names
 * no group (the caller answers 404). */
int front_render(const ha_snapshot *s, const ha_probe_conf *pc, const ha_render_req *r,
                 ha_render_out *out);

/* The aggregate status of a probe or group as front_render computes it. */
ha_status front_render_status(const ha_snapshot *s, const ha_render_req *r);

/* The same, and the aggregate's message (quorum's count, a Lua verdict's
 * output, a fallback's reason) copied into msg[0..cap), cut to fit; "" when
 * there is none. cap 0: no message (msg may be NULL). */
ha_status front_render_verdict(const ha_snapshot *s, const ha_render_req *r, char *msg, size_t cap);

/* The HTTP code of status st under pc (NULL: defaults) and the group g
 * (NULL: none): g's code for st, pc's, then g's or pc's success or failure
 * code (200 for UP and WARN, 503 for INIT and DOWN). */
int front_render_code(const ha_probe_conf *pc, const ha_snap_group *g, ha_status st);

#endif
