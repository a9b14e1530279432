/* front_h2.h: what the front needs from libh2o's HTTP/2 internals and h2o
 * 2.2.5 has no API for. Front thread only. */
#ifndef HA_FRONT_H2_H
#define HA_FRONT_H2_H

#include <stdbool.h>

#include <h2o.h>

/* Ends the HTTP/2 stream of req, which the handler has just received and
 * not answered, with RST_STREAM carrying error (an H2O_HTTP2_ERROR_* code,
 * negative as h2o defines them). The frame is not flow-controlled, so it
 * goes out even when the peer's window is 0, and the request (its pool,
 * headers included) is freed before this returns: req must not be touched
 * afterwards. Returns false, changing nothing, for an HTTP/1 request or a
 * stream in any other state; then the caller answers normally. */
bool front_h2_reset(h2o_req_t *req, int error);

#endif
