/* front_grpc.h: the gRPC health server (grpc.health.v1.Health: Check, Watch,
 * List) on its own cleartext HTTP/2 listeners, on the front thread's loop.
 *
 * The serving code lives in a shared object (ha_grpcserver.so, libnghttp2)
 * that the front maps only when a gRPC listener is configured: an agent that
 * does not enable it never maps it. The module calls back into the binary
 * (exported symbols) through front_int.h, which gives it the front's
 * snapshot, overlays and waits, and front_render.h's status rules; it never
 * sees an engine header and never runs Lua. */
#ifndef HA_FRONT_GRPC_H
#define HA_FRONT_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "front_int.h"

typedef struct ha_grpc ha_grpc;

/* What the front offers the module is front_int.h: front__answer_state
 * (the snapshot and overlays to answer from now, for front_render_status)
 * and front__wait / front__wait_cancel (stale checks requested and awaited,
 * at most max_wait). */

/* --- what the module offers the front (the symbol front_grpc_module) ------ */

typedef struct {
    /* Binds every cfg->grpc_listen address on loop. NULL with a one-line
     * message in err ("grpc listen 127.0.0.1:9090: address already in use"). */
    ha_grpc *(*start)(ha_front *f, uv_loop_t *loop, const ha_config *cfg, char *err, size_t errlen);
    /* What the answers show may have changed (snapshot, ages, override,
     * stall, drain): Watch streams get their new status on the next loop
     * turn. Only schedules: safe anywhere on the front thread. */
    void (*changed)(ha_grpc *g);
    /* Shutdown phase 2: stop accepting; GOAWAY every connection and end its
     * Watch streams (liveness SERVING until here). */
    void (*close)(ha_grpc *g);
    /* Open connections (shutdown waits for none). */
    int (*nconns)(ha_grpc *g);
    /* Closes every handle; the loop must then run once to finish. */
    void (*free)(ha_grpc *g);
    /* `healthagent probe --grpc`: one Check against addr ("host:port");
     * prints the outcome and returns grpc_health_probe's exit code. */
    int (*probe)(const char *addr, const char *service, uint64_t timeout_ns);
} ha_grpc_module;

/* Inside the module: the probe client of cmd_probe_grpc.c (the table's probe). */
int cmd__probe_grpc(const char *addr, const char *service, uint64_t timeout_ns);

#define FRONT_GRPC_SO "ha_grpcserver.so"
#define FRONT_GRPC_SYM "front_grpc_module"

/* Maps the module (once) and returns its table, or NULL with a one-line
 * message naming the file in err. The front thread, or a command's. */
const ha_grpc_module *front_grpc_load(char *err, size_t errlen);

#endif
