/* engine_reload.h: hot reload of the scripts directory, driven from the
 * engine thread, built on a loader thread. Triggers: events on the
 * directory (one uv_fs_event on the directory itself, never on single
 * files), debounced into one reload; a periodic rescan by content hash
 * (cfg->rescan_ns); and explicit requests (SIGHUP, POST /-/reload) that
 * arrive as HA_MSG_RELOAD.
 *
 * A reload reads the directory (engine_load_read: names beginning with '.'
 * skipped, symlinks followed, a dangling link skipped), and when the content
 * hash (scripts and lib/ modules) differs from the served generation's, a
 * loader thread builds a whole new generation in its own Lua state. On
 * success the new one is activated (unchanged checks keep their state) and
 * the old one closed (its runs cancelled); on failure the old one keeps
 * serving and eng->load_error says why. Kubernetes ConfigMap volumes work as
 * they are: the rename of ..data over the old link is one directory event. */
#ifndef HA_ENGINE_RELOAD_H
#define HA_ENGINE_RELOAD_H

#include <stdbool.h>

#include "engine.h"

#define HA_RELOAD_DEBOUNCE_MS 250   /* quiet time after the last event before reloading */
#define HA_RELOAD_MAX_WAIT_MS 2000  /* a steady stream of events still reloads this often */
#define HA_RELOAD_MIN_GAP_MS 250    /* between the starts of two reloads */
#define HA_RELOAD_STUCK_GRACE_NS (1000 * HA_NS_PER_MS) /* past the load budget: the loader is stuck in C */

/* Starts watching eng->cfg->scripts_dir and the rescan timer, and sets
 * eng->on_reload. Call on the engine thread once eng->gen is active. A
 * directory that cannot be watched (no inotify, HEALTHAGENT_WATCH=off) is
 * logged once; the rescan then finds changes. Returns 0 or UV_ENOMEM. */
int engine_reload_setup(ha_engine *eng);

/* Closes the watch and the timers; the state is freed when they have closed.
 * Safe when setup never ran. Engine thread. */
void engine_reload_stop(ha_engine *eng);

/* Asks for a reload (engine thread). Reads the directory; when the content
 * hash equals the served generation's nothing changes (a load error is
 * cleared if the content went back); otherwise a loader thread builds the
 * new generation in its own Lua state while the engine keeps serving, and
 * it is handed over when ready. At most one loader runs and at most one
 * request waits behind it; starts are HA_RELOAD_MIN_GAP_MS apart (requests
 * in between are coalesced into one). A loader that passes its load budget
 * plus HA_RELOAD_STUCK_GRACE_NS is stuck in C: it is abandoned, the error is
 * recorded, and reloads are refused until it returns. explicit: SIGHUP or
 * POST /-/reload (only changes what is logged). Returns 1 when a reload
 * started or is pending, 0 when nothing changed, -1 on failure or refusal
 * (eng->load_error says why). */
int engine_reload_request(ha_engine *eng, bool explicit);

#endif
