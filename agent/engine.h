/* engine.h: the engine: one libuv loop that owns every Lua state (ha_vm) and
 * runs every check as a coroutine task. In agent mode it runs on its own
 * thread and talks to the front only through the bridge; in script-runner
 * mode (`healthagent file.lua`) it runs on the main thread with no front. */
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
    uint64_t next_gen_id;     /* generation numbers handed out */
    /* scheduler */
    ha_task *current;         /* task inside lua_resume, or NULL */
    ha_task *ready_head;      /* tasks to resume, FIFO */
    ha_task *ready_tail;
    uv_idle_t idle;           /* active while ready tasks exist: keeps poll from blocking */
    uv_check_t check;         /* drains the ready queue after each poll; publishes */
    uv_timer_t publish_timer; /* agent mode: publishes what the rate limit held back */
    uv_timer_t trim_timer;    /* returns freed heap to the system after a burst of runs */
    uv_signal_t sigchld;      /* reaps orphans handed to the agent (subreaper, PID 1): api_exec.c */
    int live_tasks;           /* tasks alive on this engine, every VM */
    int ended_since_trim;     /* tasks ended since the last trim */
    uint64_t published_ns;    /* monotonic time of the last publication */
    uv_async_t wakeup;        /* agent mode: bridge messages from the front */
    uint64_t drain_pass;      /* scheduler passes so far */
    uint64_t held_ns;         /* ns resumes held the engine beyond a slice (engine_task.c): not
                                 charged to the deadlines of the tasks that waited */
    bool dirty;               /* a check changed since the last publication */
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

/* One holder of memory in a VM: a check (what its runs keep, across runs)
 * or a file (what its main chunk made). Index 0 is the engine's own
 * bookkeeping, never refused. */
typedef struct {
    int64_t bytes;            /* live bytes of the blocks it owns */
    uint64_t limit;           /* cap on bytes; 0 = none */
} ha_mem_owner;

/* The VM of one Lua state: a scripts generation (sandboxed) or the runner's
 * state (full standard library). The pointer is kept in the extra space of
 * every thread of the state (lua_getextraspace). */
struct ha_vm {
    lua_State *L;             /* owned */
    ha_engine *eng;           /* not owned */
    uint64_t used;            /* bytes allocated by this state */
    uint64_t limit;           /* cap on used while a task runs; 0 = none */
    bool sandboxed;           /* check scripts: restricted globals */
    bool in_load;             /* main chunks running: health.check allowed */
    int yield_kind;           /* HA_YIELD_*: why the running thread yielded */
    bool doomed;              /* loading past its limit: pcall re-raises */
    int ntasks;               /* live tasks */
    ha_task *tasks;           /* live tasks, doubly linked */
    ha_gen *gen;              /* the generation owning this VM, or NULL */
    const char *lualib;       /* not owned, may be NULL: the library's directory (its
                                 frames are skipped when an error names the user's line) */
    char *cstack_top;         /* C frame where the engine entered Lua on this VM; NULL outside */
    bool cstack_overflow;     /* the C-stack guard tripped: pcall and close re-raise until the run ends */
    bool mem_exceeded;        /* the running owner passed its allowance: pcall re-raises likewise */
    uint64_t load_deadline_ns;/* monotonic end of the load budget while in_load */
    ha_mem_owner *owners;     /* owned; [0] is the engine's; grows with engine_vm_owner_new */
    uint32_t nowners, cap_owners;
    uint32_t load_owner;      /* the owner of what the file being loaded allocates */
};

/* C stack that script-reachable C recursion (coroutine close/resume chains,
 * pcall, metamethods through them) may use below the engine's entry frame
 * before it raises "C stack overflow". Every thread that runs Lua has at
 * least four times this much stack (the engine thread is created with
 * HA_ENGINE_STACK). */
#define HA_CSTACK_BUDGET (1u << 20)
#define HA_ENGINE_STACK (8u << 20)

enum { HA_YIELD_NONE = 0, HA_YIELD_API = 1, HA_YIELD_HOOK = 2, HA_YIELD_EXIT = 3 };

/* --- engine.c --- */

/* Prepares an engine on loop (agent mode: loop NULL, the engine makes its
 * own for its thread). Returns 0 or a negative libuv error. */
int engine_init(ha_engine *eng, const ha_config *cfg, uv_loop_t *loop);
/* Agent mode: starts the engine thread serving gen (ownership moves). */
int engine_start_thread(ha_engine *eng, ha_gen *gen, ha_bridge *bridge);
/* Agent mode: asks the engine thread to stop and joins it; everything the
 * engine owns is closed and the loop is proven empty. Returns 0, or
 * UV_ETIMEDOUT when the engine did not stop within timeout_ns (stuck inside a
 * C function): the caller must then exit without touching the engine. */
int engine_join(ha_engine *eng, uint64_t timeout_ns);
/* Runner mode: closes the engine's handles; returns 0 when the loop is empty
 * afterwards, else the number of handles still open (after logging them). */
int engine_close(ha_engine *eng);
/* Sets or clears the readiness override (operator or health.set_ready). */
void engine_set_ready(ha_engine *eng, bool ready, const char *reason);
/* Marks the status picture changed; published after this loop iteration. */
void engine_mark_dirty(ha_engine *eng);
/* A task ended (scheduler internal): after a burst, once the engine is
 * nearly idle, freed heap goes back to the system. */
void engine__task_ended(ha_engine *eng);
/* Queues a task for resumption (scheduler internal, used by engine_task.c). */
void engine__ready(ha_engine *eng, ha_task *t);
/* Publishes a snapshot now if anything changed: called before Lua runs, so
 * the front knows which checks are running should the engine stall. */
void engine__publish_pending(ha_engine *eng);
/* Resumes ready tasks until the queue is empty (scheduler internal). */
void engine__drain(ha_engine *eng);

/* --- engine_vm.c --- */

/* Creates a Lua state with the limited allocator. sandboxed: the check
 * script environment; otherwise the full standard library (runner mode).
 * lualib and scripts_dir (may be NULL) make require's path. Returns NULL
 * with a message in err. */
ha_vm *engine_vm_new(ha_engine *eng, bool sandboxed, uint64_t limit, const char *lualib,
                     const char *scripts_dir, char *err, size_t errlen);
/* Kills every task of the VM, then closes the Lua state and frees the VM. */
void engine_vm_close(ha_vm *vm);
/* The VM of any thread of its state. */
ha_vm *engine_vm_of(lua_State *L);
/* Adds a memory owner with a cap of limit bytes (0 = none); returns its
 * index, or 0 (the engine's, uncapped) when out of memory. */
uint32_t engine_vm_owner_new(ha_vm *vm, uint64_t limit);
/* Creates a fresh environment table for one script file: [-0, +1]. */
void engine_vm_new_env(ha_vm *vm);
/* The C-stack guard. enter marks the frame where the engine enters Lua
 * (nested entries keep the outer mark) and returns the previous mark, to be
 * handed back to leave. check raises "<what>: C stack overflow" once more
 * than HA_CSTACK_BUDGET lies between the mark and the caller. */
char *engine__cstack_enter(ha_vm *vm);
void engine__cstack_leave(ha_vm *vm, char *prev);
void engine__cstack_check(lua_State *L, const char *what);
/* True when the run (or load) on L's VM is past its deadline, checked on
 * the clock: for C loops that no hook can interrupt (safelib.c). */
bool engine__overdue(lua_State *L);
/* The file policy of scripts (io.open, io.lines, loadfile, health.fs): 0
 * when the open descriptor fd may be read by a script, else -1 with the
 * reason in why ("<path>: ..."). */
int engine_vm_file_check(ha_vm *vm, int fd, const char *path, char *why, size_t whylen);
/* Private lightuserdata that marks a WARN result from health.warn. */
void *engine_vm_warn_token(void);

/* Resolved default directories (source tree, install prefix or next to the
 * binary). Returned strings are static. */
const char *engine_default_lualib(void);
const char *engine_default_scripts(void);

#endif
