/* bridge.h: the only channel between the engine thread and the front
 * thread. Engine -> front: the newest snapshot (an atomic pointer handed
 * over whole) and a heartbeat (when the engine's current work began, or 0
 * while it waits for work). Front -> engine: a mutex-protected queue of
 * small messages. Each side wakes the other with its uv_async_t. */
#ifndef HA_BRIDGE_H
#define HA_BRIDGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "snapshot.h"

typedef enum {
    HA_MSG_RUN = 1,      /* run the named check if stale (single flight) */
    HA_MSG_STOP = 2,     /* cancel everything and end the engine loop */
    HA_MSG_RELOAD = 3,   /* reload the scripts directory */
    HA_MSG_READY = 4,    /* readiness override: arg = seq << 1 | ready; text = reason */
    HA_MSG_REPORT = 5,   /* a pushed check's report: arg = ha_status (UP, WARN or DOWN),
                            seq = the front's report number, text = name NUL output; the
                            engine applies it and publishes report_seq = seq */
} ha_msg_type;

/* Bytes of a report's output the front accepts (the engine keeps as much:
 * HA_OUTPUT_MAX of engine_check.h). */
#define HA_REPORT_OUTPUT_MAX 1024

typedef struct ha_msg {
    struct ha_msg *next;
    ha_msg_type type;
    int arg;
    uint64_t seq;        /* HA_MSG_REPORT: the front's report number; else 0 */
    size_t len;
    char text[];         /* NUL-terminated, len bytes */
} ha_msg;

typedef struct ha_bridge ha_bridge;
struct ha_bridge {
    _Atomic(ha_snapshot *) latest;  /* newest snapshot the front has not taken */
    _Atomic uint64_t heartbeat_ns;  /* engine loop: 0 while it waits in poll; otherwise when
                                       it last left poll (uv_hrtime), i.e. how long its current
                                       work has held it */
    uv_async_t *front_wakeup;       /* owned by the front loop */
    uv_async_t *engine_wakeup;      /* owned by the engine loop */
    uv_mutex_t lock;                /* guards head/tail */
    ha_msg *head, *tail;            /* front -> engine queue */
};

void bridge_init(ha_bridge *b);
/* Frees queued messages and the untaken snapshot. Both loops must be gone. */
void bridge_dispose(ha_bridge *b);
/* Engine: hands s over (ownership moves) and, when wake, wakes the front;
 * otherwise the front takes it at its next wake-up. A snapshot the front has
 * not taken yet is replaced and freed. */
void bridge_publish(ha_bridge *b, ha_snapshot *s, bool wake);
/* Front: takes the newest snapshot, or NULL if none arrived. Caller owns it. */
ha_snapshot *bridge_take(ha_bridge *b);
/* Front: queues a message for the engine and wakes it. Returns 0 or -1 (OOM). */
int bridge_send(ha_bridge *b, ha_msg_type type, int arg, const char *text, size_t len);
/* Front: bridge_send with a sequence number (HA_MSG_REPORT). */
int bridge_send_seq(ha_bridge *b, ha_msg_type type, int arg, uint64_t seq, const char *text, size_t len);
/* Engine: takes every queued message, oldest first; free each with free(). */
ha_msg *bridge_receive(ha_bridge *b);

#endif
