/* engine_check.h: checks: their definitions (health.check), their state
 * machine (thresholds, INIT/UP/WARN/DOWN), their runs as tasks, and the
 * generation of checks one scripts directory defines. Engine thread only. */
#ifndef HA_ENGINE_CHECK_H
#define HA_ENGINE_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>
#include <uv.h>

#include "buf.h"
#include "common.h"
#include "engine.h"
#include "snapshot.h"

#define HA_OUTPUT_MAX 1024   /* bytes of a result message kept */
#define HA_DETAILS_MAX 8192  /* bytes of a result's details JSON kept */
#define HA_JITTER_DIV 10     /* interval refreshes land within +-interval/10 */
#define HA_SPREAD_MAX_NS (2 * HA_NS_PER_S) /* first runs spread over at most this */
#define HA_TTL_SLACK_NS (200 * HA_NS_PER_MS) /* stretched ttl: timer and loop latency */

typedef struct ha_await ha_await;

typedef struct ha_check {
    /* definition: fixed at load */
    char *name;               /* owned */
    uint64_t name_hash;       /* snapshot_name_hash(name) */
    unsigned probes;          /* HA_PROBE_* */
    uint64_t timeout_ns;      /* hard deadline of a run */
    uint64_t ttl_ns;          /* how long a result is served from cache */
    uint64_t max_age_ns;      /* how long a stale result may still be shown (>= ttl_ns) */
    uint64_t interval_ns;     /* background refresh; 0 = on demand only */
    uint64_t initial_delay_ns;
    bool exact_delay;         /* initial_delay given: the first run waits exactly that */
    uint64_t mem_limit;       /* bytes one run may hold, and the check may keep across runs */
    uint32_t mem_owner;       /* the VM's memory owner of this check (engine_vm_owner_new) */
    int failure_threshold;
    int success_threshold;
    bool critical;
    char component_type[HA_COMPONENT_TYPE_MAX + 1]; /* health+json componentType ("component") */
    int run_ref;              /* registry ref of run in gen->vm */
    char *where;              /* owned "file:line" of the definition */
    uint64_t def_hash;        /* identity of the definition across reloads */
    /* state */
    ha_status status;         /* effective status */
    bool decided;             /* thresholds have moved it out of INIT */
    bool healthy;             /* the UP side of the state machine */
    int consec_ok, consec_fail; /* consecutive passing (UP or WARN) / DOWN results */
    int consec_up;            /* consecutive UP results */
    ha_status last;           /* raw status of the last run */
    char *output;             /* owned, may be NULL */
    char *details_json;       /* owned, may be NULL */
    uint64_t duration_ns;
    int64_t time_ms;          /* wall clock of the last result, 0 = none */
    uint64_t done_ns;         /* monotonic time of the last result */
    uint64_t runs;            /* completed runs */
    uint64_t not_before_ns;   /* monotonic: initial_delay end */
    uint64_t started_ns;      /* monotonic start of the run in flight */
    ha_hist *hist;            /* one reference owned: counters and last results, NULL before any */
    ha_task *task;            /* run in flight, or NULL */
    ha_await *awaiters;       /* ops waiting for the run in flight */
    ha_gen *gen;              /* not owned */
    uv_timer_t timer;         /* initial delay and interval; a pushed check's report deadline */
    /* dependencies (depends_on): linked when the generation's load ends */
    char **dep_names;         /* owned: ndeps names as given, in order */
    struct ha_check **deps;   /* owned: the checks they name, ndeps (NULL until linked) */
    uint32_t *dep_idx;        /* owned: their indices in gen->checks, the snapshot's order */
    uint32_t ndeps;
    struct ha_check **rdeps;  /* owned: the checks that depend on this one */
    uint32_t nrdeps;
    uint32_t index;           /* position in gen->checks once sorted */
    struct ha_check *holder;  /* the first dependency that is neither UP nor WARN, or NULL */
    struct ha_check *root;    /* while blocked: the DOWN check at the end of the chain */
    char *blocked;            /* owned: "dependency c is DOWN (via b)" while a dependency is DOWN,
                                 and until the first own result after it recovers; else NULL */
    int64_t blocked_ms;       /* wall clock blocked last changed (strictly growing) */
    bool skipped;             /* a run was refused for a dependency: run once they pass */
    bool awaited;             /* a probe asked for a run (HA_MSG_RUN): its result is urgent */
    /* pushed checks (health.push) */
    bool pushed;              /* results come from reports (engine_check_report), never a run */
    bool report_armed;        /* its report deadline (timer) is running */
    /* groups (engine_group.c) */
    uint32_t *agg_groups;     /* owned: indices in gen->groups of the Lua-aggregate groups
                                 it is a member of, NULL when none */
    uint32_t nagg_groups;
} ha_check;

typedef struct ha_group ha_group;

struct ha_gen {
    ha_engine *eng;           /* not owned */
    ha_vm *vm;                /* owned */
    uint64_t id;              /* generation number, set once it serves (engine__serve); 0 before */
    uint64_t hash;            /* content hash of the scripts, set by engine_load_gen */
    ha_check **checks;        /* owned, sorted by name once loaded */
    size_t n, cap;
    uint32_t *by_name;        /* owned, while loading: open-addressing index of checks by name,
                                 2 x cap slots, each an index + 1 (0: empty); freed by the sort */
    uint32_t *topo;           /* owned, once linked: check indices, dependencies first */
    bool active;              /* runs allowed */
    bool autorun;             /* first runs and interval refreshes are scheduled */
    /* while loading */
    const char *cur_src;      /* source text of the file being loaded */
    size_t cur_len;
    uint64_t load_deadline_ns; /* monotonic end of the main chunks' budget */
    uint64_t load_budget_ns;  /* that budget, for the message */
    /* groups (engine_group.c) */
    ha_group **groups;        /* owned, sorted by name once resolved */
    size_t ngroups, capgroups;
};

/* Parses the table at idx (health.check's argument) into a new check of the
 * generation being loaded. Raises with the script's file:line on any bad
 * field. */
void engine_check_define(lua_State *L, int idx);
/* health.push's argument at idx: a check whose results the application
 * reports (no run function; ttl is the report deadline). Raises like
 * engine_check_define. */
void engine_check_define_push(lua_State *L, int idx);

/* Resolves the depends_on names of a loaded, sorted generation into
 * checks, indices and reverse edges. Returns 0, or -1 with "file:line:
 * health.check: ..." in err for an unknown name (unless partial: one file
 * of several, as lint loads them) or a dependency cycle. */
int engine_gen_link(ha_gen *gen, bool partial, char *err, size_t errlen);

/* Applies a report to the pushed check c: status is HA_UP, HA_WARN or
 * HA_DOWN, output (n bytes, may be NULL) is copied and capped; restarts its
 * report deadline. c must be pushed. */
void engine_check_report(ha_check *c, ha_status status, const char *output, size_t n);

/* The status c shows: DOWN while blocked by a dependency, else its own. */
ha_status engine_check_shown(const ha_check *c);

/* Starts the generation: first runs (after initial_delay) and interval
 * timers. Checks whose definition matches one in prev keep its state. */
void engine_gen_activate(ha_gen *gen, ha_gen *prev, bool autorun);
/* Stops runs, kills tasks, closes the VM and frees the generation (each
 * check once its timer has closed). NULL is a no-op. */
void engine_gen_close(ha_gen *gen);
/* Check by name (name[0..len), not NUL-terminated), or NULL. The generation
 * must be loaded: engine_load_gen sorts the checks by name. */
ha_check *engine_gen_find(ha_gen *gen, const char *name, size_t len);

/* Runs c unless a run is in flight (single flight), it is within its
 * initial delay, its generation is not active or the engine is stopping.
 * force: run even when the last result is still fresh (within ttl). */
void engine_check_request(ha_check *c, bool force);

/* Waits, from the task running on L, for the next result of c; pushes a
 * result table when it arrives. Starts a run if none is in flight, even
 * within c's initial delay. Raises outside a run or when c's generation is
 * closed. Must be returned from a lua_CFunction. */
int engine_check_await(lua_State *L, ha_check *c);
/* Pushes c's current state as a Lua table: [-0, +1]. */
void engine_check_push_state(lua_State *L, const ha_check *c);

/* Fills one entry of snapshot s from c, its strings copied into s's
 * chunks (snapshot_strdup). */
void engine_check_snap(const ha_check *c, ha_snap_check *out, ha_snapshot *s);

#endif
