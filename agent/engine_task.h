/* engine_task.h: coroutine tasks on the engine loop, and the pending
 * operation slot that every non-blocking Lua API builds on.
 *
 * A task is one Lua thread run to completion on the engine loop: one run of
 * a check, or the main chunk in script-runner mode. It has at most one
 * pending operation (ha_op) at a time. An API function starts its libuv work,
 * then calls engine_task_yield(); when the work is done its callback calls
 * engine_task_complete(), and the scheduler later resumes the task, calling
 * op->push inside the resume to put the results on the Lua stack. Callbacks
 * never touch Lua.
 *
 * Deadline, per-operation timeout and cancellation are the core's: when the
 * task dies (deadline, reload, shutdown) or the operation times out, the core
 * detaches the op (op->task = NULL) and calls op->close; the module then stops
 * its I/O and frees the op when its handles have closed. A late callback of a
 * detached op must not call engine_task_complete (it is ignored if it does). */
#ifndef HA_ENGINE_TASK_H
#define HA_ENGINE_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>
#include <uv.h>

typedef struct ha_task ha_task;
typedef struct ha_op ha_op;
typedef struct ha_vm ha_vm;

struct ha_op {
    ha_task *task;   /* owning task while pending; NULL once detached */
    /* Pushes the results for the resumed Lua code; returns how many. Called
     * once, at resume time (on the suspended thread, just before lua_resume),
     * only if the op completed. May push nil, message. Must not raise: more
     * than a few values need lua_checkstack, and an answer when it fails. */
    int (*push)(ha_op *op, lua_State *L);
    /* Called exactly once: after push, or instead of it when the op was
     * cancelled or timed out (op->task is then already NULL). Releases
     * everything; may finish asynchronously (uv_close). */
    void (*close)(ha_op *op);
};

/* How a task ended, passed to its finish callback. */
typedef enum {
    HA_TASK_OK = 0,       /* returned: nres results on the thread's stack */
    HA_TASK_ERROR = 1,    /* raised: the message (a string) is on top */
    HA_TASK_TIMEOUT = 2,  /* deadline passed; nothing on the stack */
    HA_TASK_MEMORY = 3,   /* ran out of its memory allowance */
    HA_TASK_CANCELLED = 4,/* killed by reload or shutdown; nothing on the stack */
} ha_task_end;

/* Called once when a task ends. co is the task's thread: read the results
 * from it, do not keep it (it is released after the call). */
typedef void (*ha_task_finish_cb)(ha_task *t, lua_State *co, ha_task_end how, int nres, void *ud);

/* Starts a task running the function f pushed on L's stack before its nargs
 * arguments (L is the VM's main state or any thread of it): stack
 * [f, a1..an] -> []. timeout_ns is relative: the run's deadline is that long
 * from now (moved back by the time other runs held the engine); 0 = no
 * deadline. mem_limit 0 = none. The first resume happens on the next
 * scheduler pass, never inside this call. Never raises except on memory
 * exhaustion. */
ha_task *engine_task_start(ha_vm *vm, lua_State *L, int nargs, uint64_t timeout_ns,
                           uint64_t mem_limit, ha_task_finish_cb finish, void *ud);

/* Starts a child of parent running f with nargs arguments, stacked as for
 * engine_task_start (health.spawn). Its deadline is the parent's remaining
 * time at this call (a parent already due gives it 1 ns), its allocations
 * count against the root task's allowance and the parent's memory owner,
 * it carries the parent's name, and it is cancelled when the parent ends. */
ha_task *engine_task_spawn(ha_task *parent, lua_State *L, int nargs, ha_task_finish_cb finish, void *ud);

/* Kills a task that is not currently running (no-op once it ended): its op is
 * detached and closed, its children are killed (HA_TASK_CANCELLED), finish is
 * called with how, and then, for a task that had started, its to-be-closed
 * variables run within a short budget of their own. */
void engine_task_kill(ha_task *t, ha_task_end how);

/* The task running on the calling thread's VM; raises a Lua error naming fn
 * when there is none (called at load time) or when the caller cannot yield
 * (inside a metamethod, an iterator or a C callback). Never returns NULL. */
ha_task *engine_task_current(lua_State *L, const char *fn);

/* Parks the task on op until engine_task_complete(op), a timeout of
 * timeout_ns or the task's death. This is the one place an operation's
 * timeout meets the task's deadline: pass the timeout as requested; 0, or
 * one that would end at or after the deadline, leaves only the deadline
 * (the run then ends "timeout after <its timeout>"). Must be the last call
 * of a lua_CFunction: `return engine_task_yield(L, t, op, ns);`. On timeout
 * the Lua caller receives nil, "timeout". */
int engine_task_yield(lua_State *L, ha_task *t, ha_op *op, uint64_t timeout_ns);

/* Marks op complete; the task is resumed on the next scheduler pass.
 * Ignored when the op was detached. Safe from any engine-loop callback. */
void engine_task_complete(ha_op *op);

/* Nanoseconds left before the task's deadline (UINT64_MAX when it has none). */
uint64_t engine_task_remaining(const ha_task *t);
/* The loop the task runs on. */
uv_loop_t *engine_task_loop(const ha_task *t);
/* The check name the task is running, or NULL (runner main). */
const char *engine_task_name(const ha_task *t);
/* The message of t's last completed operation when it returned nil,
 * message (or timed out); "" when that operation succeeded or there was
 * none. A check that then raises on the nil says what failed first. */
const char *engine_task_last_failure(const ha_task *t);
/* Sets the memory owner (engine_vm_owner_new) charged for what the task
 * and its spawned children allocate, and credited when those blocks are
 * freed, whenever that is. */
void engine_task_set_owner(ha_task *t, uint32_t owner);
/* Sets the name used in logs (not copied: must outlive the task). */
void engine_task_set_name(ha_task *t, const char *name);

/* Handles the task itself holds open (its deadline and op timers). */
int engine_task_handles(const ha_task *t);

/* Number of live tasks on a VM (tests and teardown assertions). */
int engine_task_count(const ha_vm *vm);

#endif
