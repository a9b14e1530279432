/* engine_group.h: groups (health.group): named sets of checks with their own
 * aggregation, path and HTTP codes, and the built-in aggregates
 * (health.aggregate). A group is defined while a script loads, its members
 * are resolved once every script has loaded, and a Lua aggregate runs as an
 * engine task whenever a member's result changes. Engine thread (and the
 * loader thread while a generation loads) only. */
#ifndef HA_ENGINE_GROUP_H
#define HA_ENGINE_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "engine_check.h"
#include "snapshot.h"

struct ha_group {
    /* definition: fixed at load */
    char *name;               /* owned */
    char *where;              /* owned "file:line" of the definition */
    int probe;                /* ha_probe_index when named after a probe, else -1 */
    char **include;           /* owned list of check names, may be NULL */
    size_t ninclude;
    int match_ref;            /* registry ref of the match pattern (a string), or LUA_NOREF */
    char **exclude;           /* owned list of check names, may be NULL */
    size_t nexclude;
    ha_agg_kind kind;
    uint32_t min_up;          /* HA_AGG_QUORUM */
    double ratio;             /* HA_AGG_QUORUM, when min_up is 0 */
    int agg_ref;              /* HA_AGG_LUA: registry ref of the function */
    int results_ref;          /* HA_AGG_LUA: registry ref of its results view, made at the first run
                                 and handed to every run (its entry views are kept in it) */
    char *agg_where;          /* owned "file:line" of that function */
    uint64_t timeout_ns;      /* deadline of one aggregate run */
    uint64_t mem_limit;       /* bytes one run may hold */
    uint32_t mem_owner;       /* its VM memory owner */
    char *path;               /* owned, may be NULL */
    int success_status, failure_status; /* 0: default */
    int codes[HA_NSTATUS];    /* 0: from success/failure */
    uint32_t *members;        /* owned: indices into gen->checks, ascending; set by resolve */
    uint32_t nmembers;
    /* state: HA_AGG_LUA */
    ha_status status;         /* the last verdict, INIT before one */
    char *output;             /* owned, may be NULL */
    int64_t time_ms;          /* wall clock of the verdict, 0 if none */
    uint64_t runs;            /* completed aggregate runs */
    ha_task *task;            /* run in flight, or NULL */
    bool again;               /* a member changed while it ran: run once more */
    ha_gen *gen;              /* not owned */
};

/* Parses the table at idx (health.group's argument) into a new group of the
 * generation being loaded. Raises with the script's file:line on a bad
 * field, a taken name or a bad path. */
void engine_group_define(lua_State *L, int idx);

/* Resolves every group's members once all scripts of gen have loaded and
 * its checks are sorted: include, match, exclude, or the probe's checks.
 * Returns 0, or -1 with "file:line: health.group: ..." in err (an unknown
 * name or a quorum's min_up above its member count, unless partial: one
 * file of several, as lint loads them, where the name may be another
 * file's). Sorts the groups by name. */
int engine_group_resolve(ha_gen *gen, bool partial, char *err, size_t errlen);

/* Starts gen's groups: a Lua aggregate keeps the last verdict of the group
 * of the same name in prev (until its own first run ends) and runs once. */
void engine_group_activate(ha_gen *gen, ha_gen *prev);

/* A member of c's Lua-aggregate groups has a new status or output: each of
 * them runs its aggregate (one run at a time; a change during a run
 * runs it once more). */
void engine_group_member_changed(ha_check *c);

/* Frees gen's groups (their tasks are gone: call after the VM closed). */
void engine_group_free_all(ha_gen *gen);

/* Fills s->groups, s->ngroups and s->probe_group from gen (strings copied).
 * Returns 0 or -1 when out of memory. */
int engine_group_snap(const ha_gen *gen, ha_snapshot *s);

/* Pushes the health.aggregate table: [-0, +1]. */
void engine_group_push_aggregates(lua_State *L);

#endif
