/* engine.h: the engine (engine.c): one libuv loop that owns every Lua state
 * (ha_vm, engine_vm.h) and runs every check as a coroutine task
 * (engine_task.h). In agent mode it runs on its own thread and talks to the
 * front only through the bridge; in script-runner mode (`healthagent
 * file.lua`) it runs on the main thread with no front. The names engine
 * files share among themselves are in engine_int.h. */
#ifndef HA_ENGINE_H
#define HA_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>
#include <uv.h>

#include "config.h"
#include "engine_task.h"

typedef struct ha_bridge ha_bridge;
typedef struct ha_gen ha_gen;

typedef struct ha_engine ha_engine;
struct ha_engine {
    uv_loop_t *loop;          /* not owned in runner mode; owned by the engine thread otherwise */
    const ha_config *cfg;     /* not owned; read-only after start */
    ha_bridge *bridge;        /* NULL in runner mode */
    ha_gen *gen;              /* scripts generation being served (agent mode) */
    uint64_t next_gen_id;     /* the number engine__serve gives the next generation served */
    /* scheduler */
    ha_task *current;         /* task inside lua_resume, or NULL */
    ha_task *ready_head;      /* tasks to resume, FIFO */
    ha_task *ready_tail;
    uv_idle_t idle;           /* active while ready tasks exist: keeps poll from blocking */
    uv_check_t check;         /* drains the ready queue after each poll; publishes */
    uv_prepare_t prepare;     /* before each poll: publishes; the heartbeat reads "waiting" */
    uv_timer_t publish_timer; /* agent mode: publishes what the rate limit held back */
    uv_timer_t trim_timer;    /* returns freed heap to the system after a burst of runs */
    uv_signal_t sigchld;      /* reaps orphans handed to the agent (subreaper, PID 1): api_exec.c */
    int live_tasks;           /* tasks alive on this engine, every VM */
    int ended_since_trim;     /* tasks ended since the last trim */
    uint64_t published_ns;    /* monotonic time of the last publication */
    uint64_t publish_due_ns;  /* when publish_timer, while active, fires */
    uint64_t held_until_ns;   /* the next snapshot goes out by then: a held routine result's check
                                 would read stale at the front soon after; UINT64_MAX: none held */
    uv_async_t wakeup;        /* agent mode: bridge messages from the front */
    uint64_t drain_pass;      /* scheduler passes so far */
    uint64_t held_ns;         /* ns resumes held the engine beyond a slice (engine_task.c): not
                                 charged to the deadlines of the tasks that waited */
    bool dirty;               /* a check changed since the last publication */
    bool urgent;              /* ... in a way a probe or a watcher must see at once (not routine) */
    bool started;             /* a run began since then: published without waking the front */
    bool stopping;            /* shutdown under way: no new runs */
    uint64_t seq;             /* publications so far */
    uv_thread_t thread;       /* agent mode */
    uv_mutex_t done_lock;     /* agent mode: guards done */
    uv_cond_t done_cond;      /* signalled when the engine thread's loop ended */
    bool done;
    int exit_code;            /* runner mode: the script's exit status */
    bool own_loop;            /* loop allocated by engine_init */
    bool not_ready;           /* readiness override in force */
    char *not_ready_reason;   /* owned, may be NULL */
    uint64_t override_seq;    /* last front override applied (echoed in snapshots) */
    uint64_t report_seq;      /* last front report processed (echoed in snapshots) */
    char *load_error;         /* owned, may be NULL: last failed reload */
    int64_t load_error_ms;    /* wall clock of that failure */
    void (*on_reload)(ha_engine *eng); /* reload handler (engine_reload.c), may be NULL */
    struct ha_reload *reload; /* engine_reload.c state, NULL unless set up */
    char *info_json;          /* owned, may be NULL: health.info values of the served generation */
    int64_t reload_ms;        /* wall clock the served generation started serving */
    uint64_t reloads;         /* successful reloads so far */
    uint64_t reload_failures; /* failed reloads so far (one per broken content) */
    /* engine_load.c calls it before each file it loads, when set: a loader's
     * own context reports progress this way */
    void (*on_load_file)(ha_engine *eng, const char *file);
};

/* --- engine.c --- */

/* Prepares an engine on loop (agent mode: loop NULL, the engine makes its
 * own for its thread). Returns 0 or a negative libuv error. */
int engine_init(ha_engine *eng, const ha_config *cfg, uv_loop_t *loop);
/* Stack of the engine thread, whatever RLIMIT_STACK says: the C-stack guard
 * needs HA_CSTACK_BUDGET (engine_vm.h) of it and more. */
#define HA_ENGINE_STACK (8u << 20)

/* Agent mode: starts the engine thread serving gen (ownership moves; gen gets
 * its generation number). Returns 0 or a negative libuv error. */
int engine_start_thread(ha_engine *eng, ha_gen *gen, ha_bridge *bridge);
/* Agent mode: asks the engine thread to stop and joins it; everything the
 * engine owns is closed and the loop closed (a handle still open is logged,
 * then "engine loop not empty at exit"). Returns 0, or
 * UV_ETIMEDOUT when the engine did not stop within timeout_ns (stuck inside a
 * C function): the caller must then exit without touching the engine. */
int engine_join(ha_engine *eng, uint64_t timeout_ns);
/* Runner mode: closes the engine's handles; returns 0 when the loop is empty
 * afterwards, else the number of handles still open (after logging them). */
int engine_close(ha_engine *eng);
/* Sets or clears the readiness override (operator or health.set_ready). */
void engine_set_ready(ha_engine *eng, bool ready, const char *reason);
/* Marks the status picture changed: published at the end of this loop turn,
 * or PUBLISH_GAP_NS after the last snapshot when that is later. */
void engine_mark_dirty(ha_engine *eng);
/* Marks a routine change: a result that leaves its check's status as it
 * was, that no probe waits for. Published like any change, but at most at
 * the routine rate (engine.c): many checks, fewer snapshots; and before
 * shown_until, when what the front shows of the check expires. Returns
 * false, marking nothing, when that is too soon to wait: the caller marks
 * the change dirty. */
bool engine_mark_routine(ha_engine *eng, uint64_t shown_until);
/* A run began: the next snapshot shows it running, but is handed over
 * without waking the front (engine.c), so a run costs the front one wake-up
 * (its result), not two; a stall, a status page and a watchdog look still
 * see it running. */
void engine_mark_started(ha_engine *eng);
/* Re-encodes the health.info values of the served generation (the table at
 * HA_INFO_KEY in its registry) into eng->info_json and marks the engine
 * dirty. L is any thread of the VM that may be used for stack work (the
 * running task's, or the idle main state). No-op when the VM does not
 * belong to the served generation. */
void engine_info_changed(lua_State *L);

/* Registry key of the table that holds a VM's health.info values (api_health.c). */
#define HA_INFO_KEY "health.info"
#endif
