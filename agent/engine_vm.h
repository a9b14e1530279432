/* engine_vm.h: the Lua states of the engine (engine_vm.c): one ha_vm per
 * state, its limited allocator and memory owners, the check-script sandbox
 * and its file policy, and the C-stack guard. Engine thread (and the
 * loader thread, for a generation it builds). */
#ifndef HA_ENGINE_VM_H
#define HA_ENGINE_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine.h"

/* One holder of memory in a VM: a check (what its runs keep, across runs)
 * or a file (what its main chunk made). Index 0 is the engine's own
 * bookkeeping, never refused. */
typedef struct {
    int64_t bytes;            /* live bytes of the blocks it owns */
    uint64_t limit;           /* cap on bytes; 0 = none */
} ha_mem_owner;

/* Why the running thread yielded (ha_vm.yield_kind). */
enum { HA_YIELD_NONE = 0, HA_YIELD_API = 1, HA_YIELD_HOOK = 2, HA_YIELD_EXIT = 3 };

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
 * HA_ENGINE_STACK, engine.h). */
#define HA_CSTACK_BUDGET (1u << 20)

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
/* The file policy of scripts (io.open, io.lines, loadfile, health.fs): 0
 * when the open descriptor fd may be read by a script, else -1 with the
 * reason in why ("<path>: ..."). */
int engine_vm_file_check(ha_vm *vm, int fd, const char *path, char *why, size_t whylen);
/* Private lightuserdata that marks a WARN result from health.warn. */
void *engine_vm_warn_token(void);

#endif
