/* front.h: the HTTP side: h2o 2.2.5 on its own libuv loop (the main
 * thread). Answers probes from the engine's snapshots, never runs Lua and
 * never waits on user code: a stale check is requested from the engine and
 * the probe answers when the result arrives or at its deadline. */
#ifndef HA_FRONT_H
#define HA_FRONT_H

#include <stddef.h>

#include <uv.h>

#include "bridge.h"
#include "config.h"

typedef struct ha_front ha_front;

/* Sets up h2o and binds every listen address on loop. Returns NULL with a
 * one-line message in err (e.g. "listen 0.0.0.0:8080: address already in use"). */
ha_front *front_new(uv_loop_t *loop, const ha_config *cfg, ha_bridge *bridge, char *err, size_t errlen);
/* Serves until a graceful shutdown (SIGTERM/SIGINT) completes. Returns the
 * process exit code. */
int front_run(ha_front *f);
/* Closes every handle of the front; the loop can then be closed. */
void front_free(ha_front *f);

#endif
