/* engine_int.h: every engine__* name: what one engine file calls in another
 * and no module outside engine*.c may use (as libuv's uv-common.h). Grouped
 * by the file that defines them. Engine thread only. */
#ifndef HA_ENGINE_INT_H
#define HA_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine.h"
#include "engine_vm.h"

/* --- engine.c: the served generation and its publication ------------------- */

/* Publishes a snapshot now if anything changed: called before Lua runs, so
 * the front knows which checks are running should the engine stall. */
void engine__publish_pending(ha_engine *eng);
/* Makes g the served generation and gives it the next generation number:
 * the one place a generation's id is set (start-up and reload hand-over). */
void engine__serve(ha_engine *eng, ha_gen *g);

/* --- engine_task.c: the scheduler ----------------------------------------- */

/* Sets up the scheduler's handles on eng->loop (ready queue, drain after
 * every poll, heap trim after bursts), none of which keeps the loop alive
 * by itself. */
void engine__sched_init(ha_engine *eng);
/* Closes those handles (stop or runner teardown). */
void engine__sched_close(ha_engine *eng);

/* --- engine_task.c: what the VM's allocator, hook and wrappers ask -------- */

/* The memory owner of the task running on vm, the file being loaded, or 0. */
uint32_t engine__task_owner(ha_vm *vm);
/* Allocator accounting of the running task: adds delta bytes when the task
 * belongs to vm. */
void engine__task_account(ha_task *t, ha_vm *vm, int64_t delta);
/* True when growing by extra bytes would exceed vm's or the task's limit. */
bool engine__task_over(ha_task *t, ha_vm *vm, uint64_t extra);
/* True when the task running on vm is marked past its deadline (by its
 * hook, its timer or a resume that overran it): pcall re-raises then. */
bool engine__task_expired(ha_vm *vm);
/* True when the run (or load) on L's VM is past its deadline, checked on
 * the clock: for C loops that no hook can interrupt (safelib.c). */
bool engine__overdue(lua_State *L);
/* Cancels the pending op of the task running on vm (a pass-through yield
 * that could not reach the scheduler). */
void engine__task_abandon_op(ha_vm *vm);
/* True when the thread at idx is the main thread of a task: scripts may
 * not resume or close it. */
bool engine__task_owns_thread(lua_State *L, int idx);

/* --- engine_check.c and engine_group.c: the one namespace ----------------- */

/* Where name is defined in gen while it loads: the "file:line" of the check
 * or group of that name, or NULL. *is_group tells which. The one place
 * that decides whether a name is taken (checks and groups share names). */
const char *engine__name_defined(const ha_gen *gen, const char *name, bool *is_group);
/* The "file:line" of the group called name while gen loads, or NULL
 * (engine_group.c). */
const char *engine__group_defined(const ha_gen *gen, const char *name);

/* --- engine_vm.c: the C-stack guard ---------------------------------------- */

/* enter marks the frame where the engine enters Lua (nested entries keep the
 * outer mark) and returns the previous mark, to be handed back to leave.
 * check raises "<what>: C stack overflow" once more than HA_CSTACK_BUDGET
 * lies between the mark and the caller. */
char *engine__cstack_enter(ha_vm *vm);
void engine__cstack_leave(ha_vm *vm, char *prev);
void engine__cstack_check(lua_State *L, const char *what);

#endif
