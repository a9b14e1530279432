/* engine_group.c: health.group and health.aggregate (see engine_group.h).
 *
 * Where each aggregate is computed: the built-ins (worst, quorum, any) on the
 * front, per answer, from the members' displayed status (so max_age and the
 * other overlays apply to members by themselves, front_render.c); a Lua
 * aggregate here, as a task of the generation's VM under the group's
 * deadline and memory allowance, whenever a member's status or output
 * changes, never on the request path. The snapshot carries its verdict. */
#include "engine_group.h"
#include "engine_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "log.h"

#define AGG_MT "healthagent.aggregate" /* metatable of a built-in aggregate */

/* A built-in aggregate as scripts hold it (full userdata). */
typedef struct {
    ha_agg_kind kind;
    uint32_t min_up;          /* quorum */
    double ratio;             /* quorum, when min_up is 0 */
} agg_box;

static const char *const fields[] = {
    "name", "include", "match", "exclude", "aggregate", "path", "success_status", "failure_status",
    "status_codes", "timeout", NULL,
};

static const char *const status_keys[HA_NSTATUS] = {"UP", "WARN", "INIT", "DOWN"}; /* by ha_status */

/* --- definition -------------------------------------------------------- */

/* Raises "<file>:<line>: health.group: <message>" at the caller of
 * health.group. Never returns. */
static int group_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    luaL_where(L, 1);                              /* [where] */
    lua_pushliteral(L, "health.group: ");          /* [where, prefix] */
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);                  /* [where, prefix, msg] */
    va_end(ap);
    lua_concat(L, 3);                              /* [message] */
    return lua_error(L);
}

static void group_free(ha_group *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->ninclude; i++)
        free(g->include[i]);
    for (size_t i = 0; i < g->nexclude; i++)
        free(g->exclude[i]);
    free(g->include);
    free(g->exclude);
    free(g->name);
    free(g->where);
    free(g->agg_where);
    free(g->path);
    free(g->members);
    free(g->output);
    free(g);
}

/* Checks field key (a list of check names, may be absent) of the table at
 * idx; raises on a bad entry. */
static void field_names_check(lua_State *L, int idx, const char *key)
{
    if (lua_getfield(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1))
        group_error(L, "field '%s' must be a list of check names", key);
    lua_Integer n = luaL_len(L, -1);
    if (n < 0 || n > 100000)
        group_error(L, "field '%s' must be a list of check names", key);
    for (lua_Integer i = 1; i <= n; i++) {
        size_t len;
        lua_rawgeti(L, -1, i);
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (s == NULL || !ha_name_valid(s, len))
            group_error(L, "field '%s': entry %d is not a check name", key, (int)i);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Copies field key (checked by field_names_check) into *out and *count,
 * which always describe what is allocated so far. Raises only when out of
 * memory. */
static void field_names(lua_State *L, int idx, const char *key, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (lua_getfield(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_Integer n = luaL_len(L, -1);
    char **v = n ? calloc((size_t)n, sizeof *v) : NULL;
    if (n && v == NULL)
        group_error(L, "not enough memory");
    *out = v;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        v[i - 1] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (v[i - 1] == NULL)
            group_error(L, "not enough memory");
        *count = (size_t)i;
    }
    lua_pop(L, 1);
}

/* An HTTP code field at the top of the stack, 200..599 (a 1xx is interim);
 * raises naming field. */
static int http_code(lua_State *L, const char *field)
{
    int exact = 0;
    lua_Integer i = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &exact) : 0;
    if (!exact || i < 200 || i > 599)
        group_error(L, "field '%s' must be an HTTP status 200..599, got %s", field,
                    lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    return (int)i;
}

/* status_codes = { UP = 200, WARN = 200, DOWN = 503, INIT = 503 } of the
 * table at idx into codes (only what it names). */
static void field_codes(lua_State *L, int idx, int *codes)
{
    if (lua_getfield(L, idx, "status_codes") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1))
        group_error(L, "field 'status_codes' must be a table like { UP = 200, DOWN = 503 }");
    lua_pushnil(L);                                /* [codes, key] */
    while (lua_next(L, -2)) {                      /* [codes, key, value] */
        int k = -1;
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        for (int i = 0; key && i < HA_NSTATUS; i++)
            if (strcmp(key, status_keys[i]) == 0)
                k = i;
        if (k < 0)
            group_error(L, "field 'status_codes': unknown status '%s' (UP, WARN, DOWN, INIT)",
                        key ? key : luaL_typename(L, -2));
        char field[32];
        snprintf(field, sizeof field, "status_codes.%s", key);
        codes[k] = http_code(L, field);
        lua_pop(L, 1);                             /* [codes, key] */
    }
    lua_pop(L, 1);
}

/* True when child is parent plus one more segment ("/a/b" of "/a"). */
static bool path_child(const char *parent, const char *child)
{
    size_t n = strlen(parent);
    return strncmp(parent, child, n) == 0 && child[n] == '/' && child[n + 1] != '\0' &&
           strchr(child + n + 1, '/') == NULL;
}

/* The path field: a path the front can route to that nothing else owns
 * (config_path_invalid) and no other group has. NULL when absent. */
static const char *field_path(lua_State *L, int idx, const ha_gen *gen, const ha_config *cfg)
{
    if (lua_getfield(L, idx, "path") == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    char why[160];
    if (p == NULL)
        group_error(L, "field 'path' must be a string like \"/health/db\"");
    if (config_path_invalid(cfg, p, why, sizeof why))
        group_error(L, "field 'path': %s", why);
    for (size_t i = 0; i < gen->ngroups; i++) {
        const ha_group *o = gen->groups[i];
        if (o->path && strcmp(o->path, p) == 0)
            group_error(L, "field 'path': '%s' is the path of group '%s' (%s)", p, o->name, o->where);
        /* <path>/<check> is a member's answer: one segment below another
         * group's path would be served as that group's member, or never */
        if (o->path && path_child(o->path, p))
            group_error(L, "field 'path': '%s' is below '%s', the path of group '%s' (%s): it would answer "
                           "as that group's member '%s'", p, o->path, o->name, o->where, p + strlen(o->path) + 1);
        if (o->path && path_child(p, o->path))
            group_error(L, "field 'path': '%s' is above '%s', the path of group '%s' (%s), which would "
                           "answer as this group's member '%s'", p, o->path, o->name, o->where,
                        o->path + strlen(p) + 1);
    }
    lua_pop(L, 1);
    return p; /* still referenced by the table at idx */
}

static int l_quorum(lua_State *L);

/* The aggregate field into g (kind, params, function ref). */
static void field_aggregate(lua_State *L, int idx, ha_group *g)
{
    int t = lua_getfield(L, idx, "aggregate");
    if (t == LUA_TNIL) {
        g->kind = HA_AGG_WORST;
    } else if (t == LUA_TFUNCTION) {
        lua_Debug ar;
        lua_pushvalue(L, -1);
        lua_getinfo(L, ">S", &ar);                 /* pops the copy */
        char where[300];
        snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.linedefined);
        g->agg_where = strdup(where);
        if (g->agg_where == NULL)
            group_error(L, "not enough memory");
        g->kind = HA_AGG_LUA;
        g->agg_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops the function */
        return;
    } else {
        agg_box *b = luaL_testudata(L, -1, AGG_MT);
        if (b == NULL)
            group_error(L, "field 'aggregate' must be a function or a health.aggregate built-in");
        g->kind = b->kind;
        g->min_up = b->min_up;
        g->ratio = b->ratio;
    }
    lua_pop(L, 1);
}

void engine_group_define(lua_State *L, int idx)
{
    ha_vm *vm = engine_vm_of(L);
    ha_gen *gen = vm->gen;
    const ha_config *cfg = vm->eng->cfg;
    idx = lua_absindex(L, idx);
    if (gen == NULL || !vm->in_load)
        group_error(L, "groups are defined when a script loads, not while one runs");
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* [key] */
        bool known = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; fields[i]; i++)
                known |= strcmp(lua_tostring(L, -1), fields[i]) == 0;
        if (!known)
            group_error(L, "unknown field '%s'", luaL_tolstring(L, -1, NULL));
    }
    size_t nlen;
    lua_getfield(L, idx, "name");
    const char *name = lua_tolstring(L, -1, &nlen);
    if (lua_type(L, -1) != LUA_TSTRING || !ha_name_valid(name, nlen))
        group_error(L, "field 'name' must be 1 to 128 characters of [A-Za-z0-9_.-], not . or ..");
    lua_pop(L, 1); /* the table keeps the string alive */
    int probe = -1;
    for (int pi = 0; pi < HA_PI_HEALTH; pi++)
        if (strcmp(name, ha_probe_name(pi)) == 0)
            probe = pi;
    if (probe < 0 && config_name_reserved(name))
        group_error(L, "the name '%s' is reserved: /healthz covers every check", name);
    bool is_group;
    const char *dup = engine__name_defined(gen, name, &is_group);
    if (dup != NULL)
        group_error(L, "duplicate name '%s': a %s of that name is defined at %s", name, is_group ? "group" : "check",
                    dup);
    bool has_include = lua_getfield(L, idx, "include") != LUA_TNIL;
    bool has_match = lua_getfield(L, idx, "match") != LUA_TNIL;
    bool has_exclude = lua_getfield(L, idx, "exclude") != LUA_TNIL;
    lua_pop(L, 3);
    if (probe >= 0 && (has_include || has_match || has_exclude))
        group_error(L, "field '%s': the members of group '%s' are the checks of that probe (their 'probes')",
                    has_include ? "include" : has_match ? "match" : "exclude", name);
    if (probe < 0 && !has_include && !has_match)
        group_error(L, "group '%s' needs 'include' (a list of checks) or 'match' (a Lua pattern)", name);
    if (has_match) {
        lua_getfield(L, idx, "match");
        if (lua_type(L, -1) != LUA_TSTRING)
            group_error(L, "field 'match' must be a Lua pattern (a string)");
        /* a malformed pattern fails now, at the definition: string.find("", p) */
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* [pat, loaded] */
        lua_getfield(L, -1, "string");             /* [pat, loaded, string] */
        lua_getfield(L, -1, "find");               /* [pat, loaded, string, find] */
        lua_pushliteral(L, "");
        lua_pushvalue(L, -5);                      /* [pat, loaded, string, find, "", pat] */
        if (lua_pcall(L, 2, 0, 0) != LUA_OK)
            group_error(L, "field 'match': %s", lua_tostring(L, -1));
        lua_pop(L, 3);                             /* [] */
    }
    const char *path = probe >= 0 ? NULL : field_path(L, idx, gen, cfg);
    if (probe >= 0 && lua_getfield(L, idx, "path") != LUA_TNIL)
        group_error(L, "field 'path': probe %s has its paths in the config file (probes.%s.paths)", name, name);
    if (probe >= 0)
        lua_pop(L, 1);
    int success = 0, failure = 0, codes[HA_NSTATUS] = {0};
    if (lua_getfield(L, idx, "success_status") != LUA_TNIL)
        success = http_code(L, "success_status");
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "failure_status") != LUA_TNIL)
        failure = http_code(L, "failure_status");
    lua_pop(L, 1);
    field_codes(L, idx, codes);
    uint64_t timeout = cfg ? cfg->default_timeout_ns : HA_NS_PER_S;
    int t = lua_getfield(L, idx, "timeout");
    if (t != LUA_TNIL) {
        const char *s = t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(L, -1) : NULL;
        if (s == NULL || ha_duration_parse(s, &timeout) != 0 || timeout == 0)
            group_error(L, "field 'timeout': bad duration '%s' (use seconds or \"250ms\", \"2s\")",
                        s ? s : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    field_names_check(L, idx, "include");
    field_names_check(L, idx, "exclude");
    t = lua_getfield(L, idx, "aggregate");
    if (t != LUA_TNIL && t != LUA_TFUNCTION && luaL_testudata(L, -1, AGG_MT) == NULL)
        group_error(L, "field 'aggregate' must be a function or a health.aggregate built-in");
    /* a library function would run with the results view and fail each
     * run with no line of the script (the quorum factory among them) */
    if (lua_tocfunction(L, -1) == l_quorum)
        group_error(L, "field 'aggregate': call health.aggregate.quorum { min_up = n } or { ratio = r }");
    if (lua_iscfunction(L, -1))
        group_error(L, "field 'aggregate' must be a script's function(results) or a health.aggregate built-in, "
                       "not a library function");
    lua_pop(L, 1);
    lua_Debug here;
    int line = lua_getstack(L, 1, &here) && lua_getinfo(L, "Sl", &here) ? here.currentline : 0;

    /* past this point only a lack of memory raises */
    if (gen->ngroups == gen->capgroups) {
        size_t cap = gen->capgroups ? gen->capgroups * 2 : 8;
        ha_group **p = realloc(gen->groups, cap * sizeof *p);
        if (p == NULL)
            group_error(L, "not enough memory");
        gen->groups = p;
        gen->capgroups = cap;
    }
    ha_group *g = calloc(1, sizeof *g);
    if (g == NULL)
        group_error(L, "not enough memory");
    /* entered now, so that a later raise frees it with the generation */
    gen->groups[gen->ngroups++] = g;
    g->gen = gen;
    g->agg_ref = LUA_NOREF;
    g->results_ref = LUA_NOREF;
    g->match_ref = LUA_NOREF;
    g->probe = probe;
    g->status = HA_INIT;
    g->timeout_ns = timeout;
    g->mem_limit = cfg ? cfg->check_memory_limit : 0;
    g->mem_owner = engine_vm_owner_new(vm, g->mem_limit);
    g->success_status = success;
    g->failure_status = failure;
    memcpy(g->codes, codes, sizeof codes);
    g->name = strdup(name);
    size_t wl = strlen(here.short_src) + 16;
    g->where = malloc(wl);
    if (g->name == NULL || g->where == NULL || (path && (g->path = strdup(path)) == NULL))
        group_error(L, "not enough memory");
    snprintf(g->where, wl, "%s:%d", line ? here.short_src : "?", line);
    field_names(L, idx, "include", &g->include, &g->ninclude);
    field_names(L, idx, "exclude", &g->exclude, &g->nexclude);
    if (has_match) {
        lua_getfield(L, idx, "match");
        g->match_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    field_aggregate(L, idx, g);
}

const char *engine__group_defined(const ha_gen *gen, const char *name)
{
    for (size_t i = 0; i < gen->ngroups; i++)
        if (strcmp(gen->groups[i]->name, name) == 0)
            return gen->groups[i]->where;
    return NULL;
}

/* --- members ------------------------------------------------------------- */

static int group_order(const void *a, const void *b)
{
    return strcmp((*(ha_group *const *)a)->name, (*(ha_group *const *)b)->name);
}

/* Index of the check called name in gen (sorted), or -1. */
static long check_index(ha_gen *gen, const char *name)
{
    ha_check *c = engine_gen_find(gen, name, strlen(name));
    if (c == NULL)
        return -1;
    size_t lo = 0, hi = gen->n;
    while (lo < hi) { /* the same order engine_gen_find searched */
        size_t mid = (lo + hi) / 2;
        int r = strcmp(gen->checks[mid]->name, name);
        if (r == 0)
            return (long)mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Marks in `in` (one byte per check) the members of g: its include list,
 * the checks its pattern matches (string.find, so a pattern means what it
 * means in Lua), or its probe's checks; then clears its exclusions.
 * Returns 0 or -1 with err. */
static int group_mark(ha_gen *gen, ha_group *g, bool partial, unsigned char *in, char *err, size_t errlen)
{
    lua_State *L = gen->vm->L;
    if (g->probe >= 0)
        for (size_t i = 0; i < gen->n; i++)
            in[i] = (gen->checks[i]->probes & ha_probe_mask(g->probe)) != 0;
    for (size_t k = 0; k < g->ninclude; k++) {
        long i = check_index(gen, g->include[k]);
        if (i < 0 && partial && !engine__group_defined(gen, g->include[k]))
            continue;
        if (i < 0) {
            snprintf(err, errlen, "%s: health.group: group '%s' includes '%s', which is %s", g->where, g->name,
                     g->include[k],
                     engine__group_defined(gen, g->include[k]) ? "a group (groups do not nest)" : "no check");
            return -1;
        }
        in[i] = 1;
    }
    if (g->match_ref != LUA_NOREF) {
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* [loaded] */
        lua_getfield(L, -1, "string");                           /* [loaded, string] */
        for (size_t i = 0; i < gen->n; i++) {
            lua_getfield(L, -1, "find");                         /* [loaded, string, find] */
            lua_pushstring(L, gen->checks[i]->name);
            lua_rawgeti(L, LUA_REGISTRYINDEX, g->match_ref);     /* [.., find, name, pattern] */
            if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
                snprintf(err, errlen, "%s: health.group: field 'match': %s", g->where, lua_tostring(L, -1));
                lua_pop(L, 3);
                return -1;
            }
            if (!lua_isnil(L, -1))
                in[i] = 1;
            lua_pop(L, 1);                                       /* [loaded, string] */
        }
        lua_pop(L, 2);
    }
    for (size_t k = 0; k < g->nexclude; k++) {
        long i = check_index(gen, g->exclude[k]);
        if (i < 0 && partial)
            continue;
        if (i < 0) {
            snprintf(err, errlen, "%s: health.group: group '%s' excludes '%s', which is no check", g->where,
                     g->name, g->exclude[k]);
            return -1;
        }
        in[i] = 0;
    }
    return 0;
}

int engine_group_resolve(ha_gen *gen, bool partial, char *err, size_t errlen)
{
    if (gen->ngroups == 0)
        return 0;
    int rc = -1;
    unsigned char *in = malloc(gen->n ? gen->n : 1);
    uint32_t *nlua = calloc(gen->n ? gen->n : 1, sizeof *nlua);
    if (in == NULL || nlua == NULL) {
        snprintf(err, errlen, "not enough memory while resolving groups");
        goto done;
    }
    qsort(gen->groups, gen->ngroups, sizeof *gen->groups, group_order);
    for (size_t gi = 0; gi < gen->ngroups; gi++) {
        ha_group *g = gen->groups[gi];
        memset(in, 0, gen->n ? gen->n : 1);
        if (group_mark(gen, g, partial, in, err, errlen) != 0)
            goto done;
        uint32_t n = 0;
        for (size_t i = 0; i < gen->n; i++)
            n += in[i];
        g->members = malloc((n ? n : 1) * sizeof *g->members);
        if (g->members == NULL) {
            snprintf(err, errlen, "not enough memory while resolving groups");
            goto done;
        }
        for (size_t i = 0; i < gen->n; i++)
            if (in[i]) {
                g->members[g->nmembers++] = (uint32_t)i;
                nlua[i] += g->kind == HA_AGG_LUA;
            }
        if (!partial && g->kind == HA_AGG_QUORUM && g->min_up > g->nmembers) {
            /* it could never pass: say so now, not with a group DOWN forever */
            snprintf(err, errlen, "%s: health.group: group '%s' needs %u members up (quorum min_up) but has %u",
                     g->where, g->name, (unsigned)g->min_up, (unsigned)g->nmembers);
            goto done;
        }
    }
    /* each check learns the Lua-aggregate groups it is a member of */
    for (size_t i = 0; i < gen->n; i++) {
        if (nlua[i] == 0)
            continue;
        gen->checks[i]->agg_groups = malloc(nlua[i] * sizeof(uint32_t));
        if (gen->checks[i]->agg_groups == NULL) {
            snprintf(err, errlen, "not enough memory while resolving groups");
            goto done;
        }
    }
    for (size_t gi = 0; gi < gen->ngroups; gi++) {
        ha_group *g = gen->groups[gi];
        for (uint32_t k = 0; g->kind == HA_AGG_LUA && k < g->nmembers; k++) {
            ha_check *c = gen->checks[g->members[k]];
            c->agg_groups[c->nagg_groups++] = (uint32_t)gi;
        }
    }
    rc = 0;
done:
    free(in);
    free(nlua);
    return rc;
}

/* --- Lua aggregates ---------------------------------------------------- */

/* The results a Lua aggregate gets: userdata views of the generation's
 * checks, read when a field is read (the engine runs one task at a time, so
 * a run that does not yield sees one state). Nothing is copied per run: one
 * array view per group, and an entry view per member the function has
 * looked at, kept in the array view's user value for the next runs. Both
 * die with the VM, which the generation closes before its checks. */
#define RESULTS_MT "healthagent.results"
#define ENTRY_MT "healthagent.result"

typedef struct {
    const ha_group *g;
} results_box;

typedef struct {
    const ha_check *c;
} entry_box;

static const char *const entry_keys[] = {"name", "status", "output", "duration_ms", "since", "critical", NULL};

/* __newindex of both views. */
static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "aggregate results are read-only");
}

/* Pushes field k (an index into entry_keys) of c: [-0, +1]. */
static void entry_push(lua_State *L, const ha_check *c, int k)
{
    int64_t since;
    switch (k) {
    case 0: lua_pushstring(L, c->name); break;
    case 1: lua_pushstring(L, ha_status_name(engine_check_shown(c))); break; /* blocked: DOWN */
    case 2: {
        const char *out = c->blocked ? c->blocked : c->output; /* blocked: the root cause */
        out ? (void)lua_pushstring(L, out) : lua_pushnil(L);
        break;
    }
    case 3: lua_pushnumber(L, (double)c->duration_ns / 1e6); break;
    case 4:
        since = c->hist && c->hist->transition_ms ? c->hist->transition_ms : c->time_ms;
        since ? lua_pushnumber(L, (double)since / 1000.0) : lua_pushnil(L);
        break;
    default: lua_pushboolean(L, c->critical); break;
    }
}

static int entry_index(lua_State *L)
{
    entry_box *b = luaL_checkudata(L, 1, ENTRY_MT);
    const char *key = lua_tostring(L, 2);
    for (int k = 0; key && entry_keys[k]; k++)
        if (strcmp(key, entry_keys[k]) == 0) {
            entry_push(L, b->c, k);
            return 1;
        }
    lua_pushnil(L);
    return 1;
}

/* The iterator of pairs(entry): the next key of entry_keys with a value. */
static int entry_next(lua_State *L)
{
    entry_box *b = luaL_checkudata(L, 1, ENTRY_MT);
    int k = 0;
    if (!lua_isnil(L, 2)) {
        const char *key = lua_tostring(L, 2);
        while (entry_keys[k] && (key == NULL || strcmp(key, entry_keys[k]) != 0))
            k++;
        if (entry_keys[k])
            k++;
    }
    for (; entry_keys[k]; k++) {
        entry_push(L, b->c, k);
        if (!lua_isnil(L, -1)) {
            lua_pushstring(L, entry_keys[k]);
            lua_insert(L, -2);                     /* [key, value] */
            return 2;
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    return 1;
}

static int entry_pairs(lua_State *L)
{
    luaL_checkudata(L, 1, ENTRY_MT);
    lua_pushcfunction(L, entry_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int entry_tostring(lua_State *L)
{
    entry_box *b = luaL_checkudata(L, 1, ENTRY_MT);
    lua_pushfstring(L, "result %s: %s", b->c->name, ha_status_name(engine_check_shown(b->c)));
    return 1;
}

/* results[i]: a view of the i-th member (nil outside 1..#results). */
static int results_index(lua_State *L)
{
    results_box *b = luaL_checkudata(L, 1, RESULTS_MT);
    int exact = 0;
    lua_Integer i = lua_tointegerx(L, 2, &exact);
    if (!exact || i < 1 || (uint64_t)i > b->g->nmembers) {
        lua_pushnil(L);
        return 1;
    }
    lua_getiuservalue(L, 1, 1);                    /* [results, i, cache] */
    if (lua_rawgeti(L, -1, i) != LUA_TNIL)         /* [results, i, cache, entry] */
        return 1;
    lua_pop(L, 1);
    entry_box *e = lua_newuserdatauv(L, sizeof *e, 0);
    e->c = b->g->gen->checks[b->g->members[i - 1]];
    luaL_setmetatable(L, ENTRY_MT);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, i);                         /* [results, i, cache, entry] */
    return 1;
}

static int results_len(lua_State *L)
{
    results_box *b = luaL_checkudata(L, 1, RESULTS_MT);
    lua_pushinteger(L, (lua_Integer)b->g->nmembers);
    return 1;
}

/* The iterator of pairs(results): i + 1, results[i + 1]. */
static int results_next(lua_State *L)
{
    results_box *b = luaL_checkudata(L, 1, RESULTS_MT);
    lua_Integer i = lua_isnil(L, 2) ? 1 : luaL_checkinteger(L, 2) + 1;
    if (i < 1 || (uint64_t)i > b->g->nmembers) {
        lua_pushnil(L);
        return 1;
    }
    lua_settop(L, 1);
    lua_pushinteger(L, i);                         /* [results, i] */
    results_index(L);                              /* [results, i, (cache,) entry] */
    lua_pushinteger(L, i);
    lua_insert(L, -2);                             /* [.., i, entry] */
    return 2;
}

static int results_pairs(lua_State *L)
{
    luaL_checkudata(L, 1, RESULTS_MT);
    lua_pushcfunction(L, results_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Registers both views' metatables in L: [-0, +0]. */
static void results_register(lua_State *L)
{
    static const luaL_Reg entry_mt[] = {{"__index", entry_index}, {"__newindex", ro_newindex},
                                        {"__pairs", entry_pairs}, {"__tostring", entry_tostring}, {NULL, NULL}};
    static const luaL_Reg results_mt[] = {{"__index", results_index}, {"__newindex", ro_newindex},
                                          {"__len", results_len}, {"__pairs", results_pairs}, {NULL, NULL}};
    if (luaL_newmetatable(L, ENTRY_MT)) {
        luaL_setfuncs(L, entry_mt, 0);
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, RESULTS_MT)) {
        luaL_setfuncs(L, results_mt, 0);
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}

/* Pushes the results view of g, made at its first run: [-0, +1]. Raises
 * only when out of memory, as the checks' own run arguments do (start_run). */
static void push_results(lua_State *L, ha_group *g)
{
    if (g->results_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, g->results_ref);
        return;
    }
    results_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->g = g;
    luaL_setmetatable(L, RESULTS_MT);
    lua_createtable(L, (int)g->nmembers, 0);
    lua_setiuservalue(L, -2, 1);                   /* the entry views */
    lua_pushvalue(L, -1);
    g->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void group_run(ha_group *g);

/* Records a verdict: status and output (owned, may be NULL). */
static void group_record(ha_group *g, ha_status st, char *output)
{
    if (st != g->status)
        log_event(st == HA_UP ? LOG_INFO : LOG_WARN, g->name, "group %s -> %s%s%s", ha_status_name(g->status),
                  ha_status_name(st), output ? ": " : "", output ? output : "");
    g->status = st;
    free(g->output);
    g->output = output;
    g->time_ms = ha_wall_ms();
    g->runs++;
    engine_mark_dirty(g->gen->eng);
}

/* Copies at most HA_OUTPUT_MAX bytes of s, cut on a UTF-8 boundary. */
static char *cap_copy(const char *s, size_t n)
{
    if (n > HA_OUTPUT_MAX) {
        n = HA_OUTPUT_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return strndup(s, n);
}

/* Task finish callback of an aggregate run: its verdict, or DOWN naming
 * what went wrong and where. */
static void on_agg_done(ha_task *t, lua_State *co, ha_task_end how, int nres, void *ud)
{
    (void)t;
    ha_group *g = ud;
    g->task = NULL;
    if (how == HA_TASK_CANCELLED)
        return;
    ha_buf b = HA_BUF_INIT;
    ha_status st = HA_DOWN;
    char *output = NULL;
    if (how == HA_TASK_TIMEOUT) {
        char d[32];
        ha_duration_format(g->timeout_ns, d, sizeof d);
        buf_printf(&b, "aggregate timeout after %s (%s)", d, g->agg_where);
    } else if (how == HA_TASK_MEMORY) {
        buf_printf(&b, "aggregate ran out of memory (%s)", g->agg_where);
    } else if (how == HA_TASK_ERROR) {
        const char *m = lua_tostring(co, -1);
        buf_printf(&b, "aggregate error: %s", m ? m : "(error object is not a string)");
    } else {
        int base = lua_gettop(co) - nres + 1;
        int t1 = nres >= 1 ? lua_type(co, base) : LUA_TNONE;
        bool ok = true;
        if (t1 == LUA_TBOOLEAN) {
            st = lua_toboolean(co, base) ? HA_UP : HA_DOWN;
        } else if (t1 == LUA_TLIGHTUSERDATA && lua_touserdata(co, base) == engine_vm_warn_token()) {
            st = HA_WARN;
        } else if (t1 == LUA_TSTRING) {
            ok = false;
            for (int i = 0; i < HA_NSTATUS && !ok; i++)
                if (strcmp(lua_tostring(co, base), status_keys[i]) == 0) {
                    st = (ha_status)i;
                    ok = true;
                }
        } else {
            ok = false;
        }
        if (!ok) {
            st = HA_DOWN;
            buf_printf(&b, "aggregate returned no status (\"UP\", \"WARN\", \"DOWN\", a boolean) (%s)",
                       g->agg_where);
        } else if (nres >= 2 && (lua_type(co, base + 1) == LUA_TSTRING || lua_type(co, base + 1) == LUA_TNUMBER)) {
            size_t n;
            const char *m = lua_tolstring(co, base + 1, &n);
            output = cap_copy(m, n);
        }
    }
    if (b.len)
        output = cap_copy(b.data, b.len);
    buf_free(&b);
    group_record(g, st, output);
    if (g->again) {
        g->again = false;
        group_run(g);
    }
}

/* Runs g's Lua aggregate over its members' current results, unless a run
 * is in flight (then once more after it). */
static void group_run(ha_group *g)
{
    ha_gen *gen = g->gen;
    if (g->kind != HA_AGG_LUA || !gen->active || gen->eng->stopping)
        return;
    if (g->task) {
        g->again = true;
        return;
    }
    lua_State *L = gen->vm->L;
    if (!lua_checkstack(L, 4))
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, g->agg_ref); /* [agg] */
    push_results(L, g);                            /* [agg, results] */
    g->task = engine_task_start(gen->vm, L, 1, g->timeout_ns, g->mem_limit, on_agg_done, g);
    engine_task_set_name(g->task, g->name);
    engine_task_set_owner(g->task, g->mem_owner);
}

void engine_group_member_changed(ha_check *c)
{
    ha_gen *gen = c->gen;
    for (uint32_t k = 0; k < c->nagg_groups; k++)
        if (c->agg_groups[k] < gen->ngroups)
            group_run(gen->groups[c->agg_groups[k]]);
}

/* The group called name in a resolved generation, or NULL. */
static ha_group *group_find(ha_gen *gen, const char *name)
{
    size_t lo = 0, hi = gen ? gen->ngroups : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = strcmp(gen->groups[mid]->name, name);
        if (r == 0)
            return gen->groups[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void engine_group_activate(ha_gen *gen, ha_gen *prev)
{
    for (size_t i = 0; i < gen->ngroups; i++) {
        ha_group *g = gen->groups[i];
        if (g->kind != HA_AGG_LUA)
            continue;
        ha_group *o = group_find(prev, g->name);
        if (o != NULL && o->kind == HA_AGG_LUA && o->runs) {
            g->status = o->status;
            g->output = o->output;
            o->output = NULL;
            g->time_ms = o->time_ms;
        }
        group_run(g);
    }
}

void engine_group_free_all(ha_gen *gen)
{
    for (size_t i = 0; i < gen->ngroups; i++)
        group_free(gen->groups[i]);
    free(gen->groups);
    gen->groups = NULL;
    gen->ngroups = gen->capgroups = 0;
}

/* --- snapshot ------------------------------------------------------------ */

int engine_group_snap(const ha_gen *gen, ha_snapshot *s)
{
    if (gen->ngroups == 0)
        return 0;
    s->groups = calloc(gen->ngroups, sizeof *s->groups);
    if (s->groups == NULL)
        return -1;
    s->ngroups = gen->ngroups;
    for (size_t i = 0; i < gen->ngroups; i++) {
        const ha_group *g = gen->groups[i];
        ha_snap_group *o = &s->groups[i];
        o->name = strdup(g->name);
        o->members = malloc((g->nmembers ? g->nmembers : 1) * sizeof *o->members);
        o->path = g->path ? strdup(g->path) : NULL;
        o->lua_output = g->output ? strdup(g->output) : NULL;
        if (o->name == NULL || o->members == NULL || (g->path && o->path == NULL) ||
            (g->output && o->lua_output == NULL))
            return -1;
        memcpy(o->members, g->members, g->nmembers * sizeof *o->members);
        o->nmembers = g->nmembers;
        o->probe = g->probe;
        o->kind = g->kind;
        o->min_up = g->min_up;
        o->ratio = g->ratio;
        o->lua_status = g->status;
        o->lua_time_ms = g->time_ms;
        o->success_status = g->success_status;
        o->failure_status = g->failure_status;
        memcpy(o->codes, g->codes, sizeof o->codes);
        if (g->probe >= 0)
            s->probe_group[g->probe] = (uint32_t)i + 1;
    }
    return 0;
}

/* --- health.aggregate ---------------------------------------------------- */

static int agg_tostring(lua_State *L)
{
    agg_box *b = luaL_checkudata(L, 1, AGG_MT);
    if (b->kind == HA_AGG_QUORUM && b->min_up)
        lua_pushfstring(L, "health.aggregate.quorum{min_up=%d}", (int)b->min_up);
    else if (b->kind == HA_AGG_QUORUM)
        lua_pushfstring(L, "health.aggregate.quorum{ratio=%f}", b->ratio);
    else
        lua_pushstring(L, b->kind == HA_AGG_ANY ? "health.aggregate.any" : "health.aggregate.worst");
    return 1;
}

/* Pushes a new built-in aggregate: [-0, +1]. */
static agg_box *agg_new(lua_State *L, ha_agg_kind kind)
{
    agg_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->kind = kind;
    b->min_up = 0;
    b->ratio = 0;
    luaL_setmetatable(L, AGG_MT);
    return b;
}

/* health.aggregate.quorum{ min_up = n } or { ratio = r }: the group passes
 * while at least n members (or the share r of them, rounded up) pass. */
static int l_quorum(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(k, "min_up") != 0 && strcmp(k, "ratio") != 0)
            return luaL_argerror(L, 1, lua_pushfstring(L, "unknown field '%s' (min_up or ratio)",
                                                        luaL_tolstring(L, -1, NULL)));
    }
    int tm = lua_getfield(L, 1, "min_up"), tr = lua_getfield(L, 1, "ratio");
    if ((tm == LUA_TNIL) == (tr == LUA_TNIL))
        return luaL_argerror(L, 1, "give one of min_up (a count) or ratio (a share)");
    agg_box *b = agg_new(L, HA_AGG_QUORUM);
    if (tm != LUA_TNIL) {
        int exact = 0;
        lua_Integer n = lua_tointegerx(L, -3, &exact);
        if (!exact || n < 1 || n > 1000000)
            return luaL_argerror(L, 1, "field 'min_up' must be a whole number from 1");
        b->min_up = (uint32_t)n;
    } else {
        int isnum = 0;
        lua_Number r = lua_tonumberx(L, -2, &isnum);
        if (!isnum || !(r > 0 && r <= 1))
            return luaL_argerror(L, 1, "field 'ratio' must be a number in (0, 1]");
        b->ratio = r;
    }
    return 1;
}

void engine_group_push_aggregates(lua_State *L)
{
    results_register(L);
    if (luaL_newmetatable(L, AGG_MT)) {            /* [mt] */
        lua_pushcfunction(L, agg_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);                      /* [aggregate] */
    agg_new(L, HA_AGG_WORST);
    lua_setfield(L, -2, "worst");
    agg_new(L, HA_AGG_ANY);
    lua_setfield(L, -2, "any");
    lua_pushcfunction(L, l_quorum);
    lua_setfield(L, -2, "quorum");
}
