/* engine_check.c: check definitions, runs, results and thresholds (see
 * engine_check.h). The one place a check's status changes is record(). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bridge.h"
#include "engine_check.h"
#include "engine_group.h"
#include "engine_int.h"
#include "json.h"
#include "log.h"

_Static_assert(HA_REPORT_OUTPUT_MAX == HA_OUTPUT_MAX, "the front accepts what a check keeps");

/* An op of a task waiting for a check's next result (testing API, `check`
 * command). Holds a copy of the result made when the run ends. */
struct ha_await {
    ha_op op;
    ha_await *next;           /* the check's list of awaiters */
    ha_check *check;          /* NULL once the result is copied */
    bool cancelled;
    ha_status status, last;
    char *output, *details;
    uint64_t duration_ns, runs;
};

static const char *const fields[] = {
    "name", "probes", "timeout", "ttl", "interval", "initial_delay", "failure_threshold",
    "success_threshold", "critical", "run", "memory", "max_age", "component_type", "depends_on", NULL,
};

/* health.push's fields: no run, no schedule; ttl is the report deadline. */
static const char *const push_fields[] = {
    "name", "probes", "ttl", "critical", "component_type", NULL,
};

#define DEPS_MAX 64 /* names one depends_on may list */

/* The function whose table is being parsed ("health.check" or
 * "health.push"), for messages; per thread: the loader thread and the
 * engine thread may load at once. */
static _Thread_local const char *define_what = "health.check";

static void deps_update(ha_check *c);
static void deps_changed(ha_check *c);

/* --- definition -------------------------------------------------------- */

/* The stack level, from 1 up, of the first Lua function that is not the
 * library's own (a file under vm->lualib, such as a health.checks.*
 * factory): the user's line that a mistake in a check definition is
 * reported at. 1 when every frame is the library's: then the library is at
 * fault and its own line is the right one. */
static int user_level(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    size_t ll = vm->lualib ? strlen(vm->lualib) : 0;
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "S", &ar) || ar.what[0] == 'C')
            continue;
        if (ll && ar.source[0] == '@' && strncmp(ar.source + 1, vm->lualib, ll) == 0 && ar.source[1 + ll] == '/')
            continue;
        return level;
    }
    return 1;
}

/* Raises "<user file>:<line>: health.check: <message>" (see user_level).
 * Never returns. */
static int define_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    luaL_where(L, user_level(L));                  /* [where] */
    lua_pushfstring(L, "%s: ", define_what);       /* [where, prefix] */
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);                  /* [where, prefix, msg] */
    va_end(ap);
    lua_concat(L, 3);                              /* [message] */
    return lua_error(L);
}

/* Reads a duration field; absent keeps *ns. Raises on a bad value. */
static void field_duration(lua_State *L, int idx, const char *key, uint64_t *ns, bool positive)
{
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    const char *s = t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(L, -1) : NULL;
    if (s == NULL || ha_duration_parse(s, ns) != 0)
        define_error(L, "field '%s': bad duration '%s' (use seconds or \"250ms\", \"2s\", \"1m\")", key,
                   s ? s : luaL_typename(L, -1));
    if (positive && *ns == 0)
        define_error(L, "field '%s' must be greater than zero", key);
    lua_pop(L, 1);
}

static void field_int(lua_State *L, int idx, const char *key, int *out)
{
    int t = lua_getfield(L, idx, key);
    if (t != LUA_TNIL) {
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint || v < 1 || v > 1000)
            define_error(L, "field '%s' must be an integer from 1 to 1000", key);
        *out = (int)v;
    }
    lua_pop(L, 1);
}

static unsigned probe_bit(const char *s)
{
    if (strcmp(s, "liveness") == 0)
        return HA_PROBE_LIVENESS;
    if (strcmp(s, "readiness") == 0)
        return HA_PROBE_READINESS;
    if (strcmp(s, "startup") == 0)
        return HA_PROBE_STARTUP;
    return 0;
}

static unsigned field_probes(lua_State *L, int idx)
{
    int t = lua_getfield(L, idx, "probes");
    unsigned mask = 0;
    if (t == LUA_TNIL) {
        mask = HA_PROBE_READINESS;
    } else if (t == LUA_TSTRING) {
        mask = probe_bit(lua_tostring(L, -1));
        if (!mask)
            goto bad;
    } else if (t == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            unsigned b = probe_bit(s);
            lua_pop(L, 1);
            if (!b)
                goto bad;
            mask |= b;
        }
        /* probes = {}: in no probe (a group's member, still at /healthz) */
    } else {
        goto bad;
    }
    lua_pop(L, 1);
    return mask;
bad:
    define_error(L, "field 'probes': expected a list of \"liveness\", \"readiness\", \"startup\"");
    return 0;
}

/* Raises when "<probe path>/<name>" of a probe the check is in (or of
 * /healthz, which has every check) is a path the reserved-paths table
 * gives to something else: the check could not be reached there. */
static void check_paths_free(lua_State *L, const ha_config *cfg, const char *name, unsigned probes)
{
    char path[512];
    for (int pi = 0; cfg != NULL && pi < HA_NPROBES; pi++) {
        if (pi != HA_PI_HEALTH && !(probes & ha_probe_mask(pi)))
            continue;
        for (int k = 0; k < cfg->probes[pi].npaths; k++) {
            int n = snprintf(path, sizeof path, "%s/%s", cfg->probes[pi].paths[k], name);
            const char *owner = n > 0 && (size_t)n < sizeof path ? config_path_owner(cfg, path, (size_t)n) : NULL;
            if (owner != NULL)
                define_error(L, "check '%s' cannot be served at %s: that path belongs to %s", name, path, owner);
        }
    }
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The first slot of name in the name index of a generation being loaded
 * (2 x cap slots, a power of two). */
static size_t name_slot(const ha_gen *gen, const char *name)
{
    return (size_t)fnv(1469598103934665603ull, name, strlen(name)) & (2 * gen->cap - 1);
}

/* The check called name among those defined so far, or NULL: one probe of
 * the index instead of a scan (10,000 checks defined one by one cost 50
 * million comparisons with a scan). */
static ha_check *name_find(const ha_gen *gen, const char *name)
{
    if (gen->by_name == NULL)
        return NULL;
    for (size_t s = name_slot(gen, name);; s = (s + 1) & (2 * gen->cap - 1)) {
        uint32_t k = gen->by_name[s];
        if (k == 0)
            return NULL;
        if (strcmp(gen->checks[k - 1]->name, name) == 0)
            return gen->checks[k - 1];
    }
}

/* Enters checks[i] into the index; the index has room (n <= cap, 2 x cap
 * slots). */
static void name_insert(ha_gen *gen, size_t i)
{
    size_t s = name_slot(gen, gen->checks[i]->name);
    while (gen->by_name[s] != 0)
        s = (s + 1) & (2 * gen->cap - 1);
    gen->by_name[s] = (uint32_t)(i + 1);
}

const char *engine__name_defined(const ha_gen *gen, const char *name, bool *is_group)
{
    ha_check *c = name_find(gen, name);
    *is_group = false;
    if (c != NULL)
        return c->where;
    const char *where = engine__group_defined(gen, name);
    *is_group = where != NULL;
    return where;
}

/* Hashes the source lines [first, last] of the file being loaded. */
static uint64_t hash_lines(uint64_t h, const ha_gen *gen, int first, int last)
{
    const char *p = gen->cur_src, *end = gen->cur_src + gen->cur_len;
    int line = 1;
    while (p < end && line < first) {
        if (*p++ == '\n')
            line++;
    }
    const char *start = p;
    while (p < end && line <= last) {
        if (*p++ == '\n')
            line++;
    }
    return fnv(h, start, (size_t)(p - start));
}

static void check_free(ha_check *c)
{
    for (char **n = c->dep_names; n && *n; n++)
        free(*n);
    free(c->dep_names);
    free(c->deps);
    free(c->dep_idx);
    free(c->rdeps);
    free(c->blocked);
    free(c->name);
    free(c->where);
    free(c->output);
    free(c->details_json);
    snapshot_hist_release(c->hist);
    free(c->agg_groups);
    free(c);
}

/* Checks the depends_on field (a list of check names, or one name) and
 * returns how many names it has (0 when absent). Raises on a bad value. */
static int field_depends(lua_State *L, int idx, const char *self)
{
    int t = lua_getfield(L, idx, "depends_on");
    int n = 0;
    if (t == LUA_TSTRING) {
        n = 1;
    } else if (t == LUA_TTABLE) {
        lua_Integer len = luaL_len(L, -1);
        if (len > DEPS_MAX)
            define_error(L, "field 'depends_on' lists more than %d checks", DEPS_MAX);
        n = (int)len;
    } else if (t != LUA_TNIL) {
        define_error(L, "field 'depends_on' must be a list of check names");
    }
    for (int i = 1; i <= n; i++) {
        if (t == LUA_TTABLE)
            lua_rawgeti(L, -1, i);
        else
            lua_pushvalue(L, -1);
        size_t len;
        const char *d = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (d == NULL || !ha_name_valid(d, len))
            define_error(L, "field 'depends_on': entry %d is not a check name", i);
        if (strcmp(d, self) == 0)
            define_error(L, "dependency cycle: %s -> %s", self, self);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

/* Copies the n names of depends_on into a NULL-terminated array, or NULL
 * (n == 0 or out of memory: *oom says which). Never raises. */
static char **copy_depends(lua_State *L, int idx, int n, bool *oom)
{
    *oom = false;
    if (n == 0)
        return NULL;
    char **names = calloc((size_t)n + 1, sizeof *names);
    if (names == NULL) {
        *oom = true;
        return NULL;
    }
    int t = lua_getfield(L, idx, "depends_on");    /* [deps] */
    for (int i = 0; i < n; i++) {
        if (t == LUA_TTABLE)
            lua_rawgeti(L, -1, i + 1);             /* [deps, name] */
        else
            lua_pushvalue(L, -1);
        names[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);                             /* [deps] */
        if (names[i] == NULL)
            *oom = true;
    }
    lua_pop(L, 1);                                 /* [] */
    return names;
}

static void define(lua_State *L, int idx, bool pushed);

void engine_check_define(lua_State *L, int idx) { define(L, idx, false); }

void engine_check_define_push(lua_State *L, int idx) { define(L, idx, true); }

/* health.check or health.push (pushed): see engine_check.h. */
static void define(lua_State *L, int idx, bool pushed)
{
    define_what = pushed ? "health.push" : "health.check";
    ha_vm *vm = engine_vm_of(L);
    ha_gen *gen = vm->gen;
    idx = lua_absindex(L, idx);
    if (gen == NULL || !vm->in_load)
        define_error(L, "checks are defined when a script loads, not while one runs");
    luaL_checktype(L, idx, LUA_TTABLE);
    /* unknown fields are typos: refuse them */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* [key] */
        bool known = false;
        const char *const *names = pushed ? push_fields : fields;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; names[i]; i++)
                known |= strcmp(lua_tostring(L, -1), names[i]) == 0;
        if (!known)
            define_error(L, "unknown field '%s'", luaL_tolstring(L, -1, NULL));
    }
    size_t nlen;
    lua_getfield(L, idx, "name");
    const char *name = lua_tolstring(L, -1, &nlen);
    if (lua_type(L, -1) != LUA_TSTRING || !ha_name_valid(name, nlen))
        define_error(L, "field 'name' must be 1 to 128 characters of [A-Za-z0-9_.-], not . or ..");
    bool dup_group;
    const char *dup = engine__name_defined(gen, name, &dup_group);
    if (dup != NULL)
        define_error(L, "duplicate check name '%s' (first defined %sat %s)", name, dup_group ? "as a group " : "",
                     dup);
    const ha_config *cfg = vm->eng->cfg;
    if (config_name_reserved(name))
        define_error(L, "the name '%s' is reserved: liveness, readiness, startup and health name the probes", name);
    uint64_t timeout = cfg ? cfg->default_timeout_ns : HA_NS_PER_S;
    uint64_t ttl = 0, interval = 0, delay = 0, max_age = 0, mem = cfg ? cfg->check_memory_limit : 0;
    int fthr = 1, sthr = 1;
    field_duration(L, idx, "timeout", &timeout, true);
    field_duration(L, idx, "ttl", &ttl, pushed); /* a pushed check's 0 would expire every report at once */
    field_duration(L, idx, "interval", &interval, true);
    field_duration(L, idx, "initial_delay", &delay, false);
    field_duration(L, idx, "max_age", &max_age, true);
    field_int(L, idx, "failure_threshold", &fthr);
    field_int(L, idx, "success_threshold", &sthr);
    unsigned probes = field_probes(L, idx);
    check_paths_free(L, cfg, name, probes);
    int ndeps = field_depends(L, idx, name);
    if (pushed && ttl == 0)
        define_error(L, "field 'ttl' is required: the time within which the application reports");
    bool critical = true;
    if (lua_getfield(L, idx, "critical") != LUA_TNIL) {
        if (!lua_isboolean(L, -1))
            define_error(L, "field 'critical' must be a boolean");
        critical = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    char ctype[HA_COMPONENT_TYPE_MAX + 1] = "component";
    if (lua_getfield(L, idx, "component_type") != LUA_TNIL) {
        size_t tl;
        const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &tl) : NULL;
        if (t == NULL || tl > HA_COMPONENT_TYPE_MAX || !ha_name_valid(t, tl))
            define_error(L, "field 'component_type' must be 1 to %d characters of [A-Za-z0-9_.-] "
                            "(\"component\", \"datastore\", \"system\")", HA_COMPONENT_TYPE_MAX);
        memcpy(ctype, t, tl + 1);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "memory") != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (s == NULL || ha_size_parse(s, &mem) != 0 || mem == 0)
            define_error(L, "field 'memory': bad size (use bytes or \"8MiB\")");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "ttl") == LUA_TNIL && !pushed) {
        /* default ttl: the configured one, stretched so that background
         * results stay fresh until the next refresh lands: the refresh
         * starts up to interval + jitter after a result and may use its
         * whole timeout */
        ttl = cfg ? cfg->default_ttl_ns : 5 * HA_NS_PER_S;
        uint64_t cover = interval + interval / HA_JITTER_DIV + timeout + HA_TTL_SLACK_NS;
        if (interval && ttl < cover)
            ttl = cover;
    }
    lua_pop(L, 1);
    /* default max_age: the stale result covers one more run of the check */
    if (pushed) {
        max_age = ttl; /* a report is never stale: it holds until its deadline, then reads DOWN */
    } else if (max_age == 0) {
        max_age = ttl + timeout;
    } else if (max_age < ttl) {
        char a[32], t[32];
        ha_duration_format(max_age, a, sizeof a);
        ha_duration_format(ttl, t, sizeof t);
        luaL_error(L, "health.check: field 'max_age' (%s) must not be shorter than the ttl (%s)", a, t);
    }
    bool has_delay = lua_getfield(L, idx, "initial_delay") != LUA_TNIL;
    lua_pop(L, 1);
    lua_Debug ar;
    memset(&ar, 0, sizeof ar);
    if (pushed) {
        lua_pushnil(L); /* [nil]: no run; luaL_ref of nil gives LUA_REFNIL */
    } else {
        if (lua_getfield(L, idx, "run") != LUA_TFUNCTION)
            define_error(L, "field 'run' must be a function");
        lua_pushvalue(L, -1);
        lua_getinfo(L, ">S", &ar); /* pops the copy */
    }
    lua_Debug here;
    int line = lua_getstack(L, user_level(L), &here) && lua_getinfo(L, "Sl", &here) ? here.currentline : 0;

    /* everything that can raise comes first: after the allocation below
     * nothing may, or the check would leak */
    if (gen->n == gen->cap) {
        size_t cap = gen->cap ? gen->cap * 2 : 16;
        ha_check **p = realloc(gen->checks, cap * sizeof *p);
        if (p == NULL)
            luaL_error(L, "not enough memory");
        gen->checks = p;
        uint32_t *index = calloc(2 * cap, sizeof *index);
        if (index == NULL)
            luaL_error(L, "not enough memory");
        free(gen->by_name);
        gen->by_name = index;
        gen->cap = cap;
        for (size_t i = 0; i < gen->n; i++)
            name_insert(gen, i);
    }
    int run_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops run */
    ha_check *c = calloc(1, sizeof *c);
    if (c == NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, run_ref);
        luaL_error(L, "not enough memory");
        return; /* not reached: luaL_error raises */
    }
    c->run_ref = run_ref;
    c->pushed = pushed;
    c->name = strdup(name);
    c->name_hash = c->name ? snapshot_name_hash(c->name) : 0;
    size_t wl = strlen(here.short_src) + 16;
    c->where = malloc(wl);
    bool oom;
    c->dep_names = copy_depends(L, idx, ndeps, &oom);
    c->ndeps = (uint32_t)ndeps;
    if (c->name == NULL || c->where == NULL || oom) {
        luaL_unref(L, LUA_REGISTRYINDEX, run_ref);
        check_free(c);
        luaL_error(L, "not enough memory");
        return; /* not reached */
    }
    snprintf(c->where, wl, "%s:%d", line ? here.short_src : "?", line);
    c->probes = probes;
    c->timeout_ns = timeout;
    c->ttl_ns = ttl;
    c->max_age_ns = max_age;
    c->interval_ns = interval;
    c->initial_delay_ns = delay;
    c->exact_delay = has_delay;
    c->mem_limit = mem;
    c->mem_owner = engine_vm_owner_new(engine_vm_of(L), mem);
    c->failure_threshold = fthr;
    c->success_threshold = sthr;
    c->critical = critical;
    memcpy(c->component_type, ctype, sizeof ctype);
    c->status = HA_INIT;
    c->last = HA_INIT;
    c->gen = gen;
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, name, nlen);
    uint64_t nums[] = {probes, timeout, ttl, interval, delay, mem, (uint64_t)fthr, (uint64_t)sthr, critical,
                       max_age};
    h = fnv(h, nums, sizeof nums);
    h = fnv(h, &pushed, sizeof pushed);
    for (int i = 0; i < ndeps; i++)
        h = fnv(h, c->dep_names[i], strlen(c->dep_names[i]) + 1);
    if (gen->cur_src && ar.linedefined > 0)
        h = hash_lines(h, gen, ar.linedefined, ar.lastlinedefined);
    c->def_hash = h;
    gen->checks[gen->n++] = c;
    name_insert(gen, gen->n - 1);
}

/* --- results ----------------------------------------------------------- */

/* Copies a message of n bytes into a C string of at most HA_OUTPUT_MAX
 * bytes: a NUL byte becomes the two characters \0 (so what follows it is
 * kept), and the cut falls on a UTF-8 boundary, never inside such an escape.
 * Returns NULL when out of memory. */
static char *cap_output(const char *s, size_t n)
{
    char *p = malloc(HA_OUTPUT_MAX + 1);
    if (p == NULL)
        return NULL;
    size_t o = 0, i = 0;
    for (; i < n; i++) {
        size_t w = s[i] == '\0' ? 2 : 1;
        if (o + w > HA_OUTPUT_MAX)
            break;
        if (w == 2) {
            p[o++] = '\\';
            p[o++] = '0';
        } else {
            p[o++] = s[i];
        }
    }
    if (i < n) /* cut: step back off a partial UTF-8 sequence */
        while (o > 0 && i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80 && s[i - 1] != '\0') {
            o--;
            i--;
        }
    p[o] = '\0';
    return p;
}

/* Replaces c->hist by a copy counting the result just recorded (c's state
 * is already updated) and holding at most `keep` entries, the newest last.
 * The old block stays valid for the snapshots that share it. On allocation
 * failure the old block stays: counters lag, nothing breaks. */
static void hist_add(ha_check *c, ha_result res, bool changed, int keep)
{
    const ha_hist *o = c->hist;
    uint32_t n = o ? o->n : 0;
    uint32_t drop = n + 1 > (uint32_t)keep ? n + 1 - (uint32_t)keep : 0;
    uint32_t nn = n + 1 - drop;
    if (drop > n) /* keep == 0 */
        nn = 0, drop = n;
    ha_hist *h = malloc(sizeof *h + (size_t)nn * sizeof h->e[0]);
    if (h == NULL)
        return;
    memset(h, 0, sizeof *h); /* field by field: the front may touch o->refs meanwhile */
    atomic_init(&h->refs, 1);
    if (o) {
        memcpy(h->runs_by, o->runs_by, sizeof h->runs_by);
        memcpy(h->buckets, o->buckets, sizeof h->buckets);
        h->duration_sum_us = o->duration_sum_us;
        h->transitions = o->transitions;
        h->transition_ms = o->transition_ms;
        memcpy(h->e, o->e + drop, (size_t)(n - drop) * sizeof h->e[0]);
    }
    h->n = nn;
    uint64_t us = c->duration_ns / 1000;
    h->runs_by[res]++;
    h->duration_sum_us += us;
    for (int b = 0; b < HA_NBUCKETS; b++)
        if (us <= snapshot_bucket_us[b]) {
            h->buckets[b]++;
            break;
        }
    if (changed) {
        h->transitions++;
        h->transition_ms = c->time_ms;
    }
    if (nn) {
        ha_hist_entry *e = &h->e[nn - 1];
        memset(e, 0, sizeof *e);
        e->time_ms = c->time_ms;
        e->duration_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        e->status = (uint8_t)c->status;
        e->result = (uint8_t)res;
        if (c->output) {
            size_t len = strlen(c->output);
            if (len > HA_HIST_OUTPUT - 1) {
                len = HA_HIST_OUTPUT - 1;
                while (len > 0 && ((unsigned char)c->output[len] & 0xc0) == 0x80)
                    len--;
            }
            memcpy(e->output, c->output, len);
        }
    }
    snapshot_hist_release(o);
    c->hist = h;
}

/* Logs c's change from old to its status, once: "INIT -> DOWN: output" as
 * the message, and in JSON the fields check, from, to, output,
 * duration_ms and probes, for log pipelines to alert on. */
static void log_transition(const ha_check *c, ha_status old)
{
    char ms[32], probes[64];
    size_t n = 0;
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)(c->duration_ns / HA_NS_PER_MS));
    probes[n++] = '[';
    for (int pi = 0; pi < HA_PI_HEALTH; pi++)
        if (c->probes & ha_probe_mask(pi))
            n += (size_t)snprintf(probes + n, sizeof probes - n, "%s\"%s\"", n > 1 ? "," : "", ha_probe_name(pi));
    snprintf(probes + n, sizeof probes - n, "]");
    const log_field f[] = {
        {"from", ha_status_name(old), NULL},
        {"to", ha_status_name(c->status), NULL},
        {"output", c->output, NULL},
        {"duration_ms", NULL, ms},
        {"probes", NULL, probes},
    };
    log_event_fields(c->status == HA_DOWN ? LOG_WARN : LOG_INFO, c->name, f, (int)HA_ARRAY_SIZE(f), "%s -> %s%s%s",
                     ha_status_name(old), ha_status_name(c->status), c->output ? ": " : "",
                     c->output ? c->output : "");
}

/* The status after one more result, given the counters already moved
 * (README "Thresholds and steady states" has the table). A status changes
 * only when the thresholds say so: failure_threshold consecutive DOWN
 * results to turn DOWN, success_threshold consecutive passing (UP or WARN)
 * results to leave INIT or DOWN, success_threshold consecutive UP results to
 * go from WARN back to UP. A WARN result turns UP into WARN at once (it is
 * not a failure); a DOWN result below the failure threshold changes
 * nothing, so WARN and DOWN alternating stays WARN. */
static ha_status next_status(const ha_check *c, ha_status raw)
{
    ha_status cur = c->status;
    if (raw == HA_DOWN)
        return c->consec_fail >= c->failure_threshold ? HA_DOWN : cur;
    if (cur == HA_INIT || cur == HA_DOWN) {
        if (c->consec_ok < c->success_threshold)
            return cur;
        return c->consec_up >= c->success_threshold ? HA_UP : HA_WARN;
    }
    if (raw == HA_WARN)
        return HA_WARN;
    return cur == HA_WARN && c->consec_up < c->success_threshold ? HA_WARN : HA_UP;
}

/* Records one run's outcome and moves the state machine. Takes ownership of
 * output and details. The single place a check's status changes. */
static void record(ha_check *c, ha_status raw, ha_result res, char *output, char *details)
{
    ha_status old = c->status;
    /* until when what the front shows of c stays fresh: the last result's
     * expiry (if that one is itself held back, the snapshot due before it
     * expires shows c too) */
    uint64_t shown_until = c->runs ? c->done_ns + c->ttl_ns : 0;
    bool same_output = (output == NULL && c->output == NULL) ||
                       (output != NULL && c->output != NULL && strcmp(output, c->output) == 0);
    if (raw != HA_DOWN) {
        c->consec_ok++;
        c->consec_fail = 0;
    } else {
        c->consec_fail++;
        c->consec_ok = 0;
    }
    c->consec_up = raw == HA_UP ? c->consec_up + 1 : 0;
    c->status = next_status(c, raw);
    c->decided = c->status != HA_INIT;
    c->healthy = c->status == HA_UP || c->status == HA_WARN;
    c->last = raw;
    free(c->output);
    free(c->details_json);
    c->output = output;
    c->details_json = details;
    c->time_ms = ha_wall_ms();
    c->done_ns = uv_hrtime();
    c->duration_ns = c->started_ns ? c->done_ns - c->started_ns : 0;
    c->runs++;
    const ha_config *cfg = c->gen->eng->cfg;
    hist_add(c, res, c->status != old, cfg ? cfg->history : HA_HIST_DEFAULT);
    if (c->status != old)
        log_transition(c, old);
    else
        log_event(LOG_DEBUG, c->name, "%s (%s)%s%s", ha_status_name(c->status), ha_status_name(raw),
                  output ? ": " : "", output ? output : "");
    if (c->nagg_groups && (c->status != old || !same_output || c->runs == 1))
        engine_group_member_changed(c);
    /* a result like the last that nobody waits for may wait for the routine
     * rate, but not past the expiry of what the front shows; any other is
     * published at once */
    if (c->status != old || c->awaited || c->blocked || c->pushed || !engine_mark_routine(c->gen->eng, shown_until))
        engine_mark_dirty(c->gen->eng);
    c->awaited = false;
    /* the first own result after the dependencies passed again ends the block */
    if (c->blocked && (c->holder == NULL || engine_check_shown(c->holder) != HA_DOWN)) {
        log_event(LOG_INFO, c->name, "dependencies pass again: %s", ha_status_name(c->status));
        free(c->blocked);
        c->blocked = NULL;
        c->root = NULL;
        if (c->nagg_groups)
            engine_group_member_changed(c);
    }
    deps_changed(c);
}

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

/* The output of a run that raised message m[0..n): m itself, or, when m
 * is Lua's complaint about a nil value and the run's last I/O call had
 * just failed (`return fs.age(p) < 30` on a missing file), that failure
 * first: "no such file: /run/app.heartbeat (a.lua:1: attempt to compare
 * nil with number)". */
static char *error_output(const char *m, size_t n, const char *last_failure)
{
    static const char *const nil_misuse[] = {
        "attempt to compare nil with", "attempt to compare number with nil", "attempt to compare two nil",
        "attempt to perform arithmetic on a nil value", "attempt to index a nil value",
        "attempt to concatenate a nil value", "attempt to call a nil value",
    };
    bool about_nil = false;
    for (size_t i = 0; i < HA_ARRAY_SIZE(nil_misuse) && !about_nil; i++)
        about_nil = strstr(m, nil_misuse[i]) != NULL;
    if (!about_nil || last_failure == NULL || last_failure[0] == '\0')
        return cap_output(m, n);
    ha_buf b = HA_BUF_INIT;
    buf_printf(&b, "%s (%.*s)", last_failure, (int)n, m);
    char *out = cap_output(b.data, b.len);
    buf_free(&b);
    return out;
}

/* Hands the current result to every awaiter and wakes their tasks. */
static void wake_awaiters(ha_check *c, bool cancelled)
{
    ha_await *a = c->awaiters;
    c->awaiters = NULL;
    while (a) {
        ha_await *next = a->next;
        a->check = NULL;
        a->cancelled = cancelled;
        a->status = c->status;
        a->last = c->last;
        a->output = dup_str(c->output);
        a->details = dup_str(c->details_json);
        a->duration_ns = c->duration_ns;
        a->runs = c->runs;
        engine_task_complete(&a->op);
        a = next;
    }
}

static void schedule(ha_check *c, uint64_t delay_ns);

/* Task finish callback of a check run: turns the return values, the error
 * or the timeout into a result. */
static void on_run_done(ha_task *t, lua_State *co, ha_task_end how, int nres, void *ud)
{
    ha_check *c = ud;
    c->task = NULL;
    if (how == HA_TASK_CANCELLED) {
        wake_awaiters(c, true);
        return;
    }
    ha_status raw = HA_DOWN;
    ha_result res = HA_RES_ERROR;
    char *output = NULL, *details = NULL;
    char tmp[96];
    if (how == HA_TASK_TIMEOUT) {
        res = HA_RES_TIMEOUT;
        char d[32];
        ha_duration_format(c->timeout_ns, d, sizeof d);
        snprintf(tmp, sizeof tmp, "timeout after %s", d);
        output = strdup(tmp);
    } else if (how == HA_TASK_MEMORY) {
        output = strdup("not enough memory");
    } else if (how == HA_TASK_ERROR) {
        size_t n;
        const char *m = lua_tolstring(co, -1, &n);
        output = m ? error_output(m, n, engine_task_last_failure(t)) : strdup("error");
    } else {
        int base = lua_gettop(co) - nres + 1;
        int t1 = nres >= 1 ? lua_type(co, base) : LUA_TNONE;
        if (t1 == LUA_TBOOLEAN) {
            raw = lua_toboolean(co, base) ? HA_UP : HA_DOWN;
            res = raw == HA_UP ? HA_RES_UP : HA_RES_DOWN;
        } else if (t1 == LUA_TLIGHTUSERDATA && lua_touserdata(co, base) == engine_vm_warn_token()) {
            raw = HA_WARN;
            res = HA_RES_WARN;
        } else {
            output = strdup("check returned no status");
            nres = 0;
        }
        if (nres >= 2 && (lua_type(co, base + 1) == LUA_TSTRING || lua_type(co, base + 1) == LUA_TNUMBER)) {
            size_t n;
            const char *m = lua_tolstring(co, base + 1, &n);
            output = cap_output(m, n);
        }
        if (nres >= 3 && lua_type(co, base + 2) == LUA_TTABLE) {
            ha_buf b = HA_BUF_INIT;
            json_encode_lua(co, base + 2, &b, HA_DETAILS_MAX);
            if (b.len > HA_DETAILS_MAX) {
                buf_reset(&b);
                buf_printf(&b, "{\"error\":\"details exceed %d bytes\"}", HA_DETAILS_MAX);
            }
            details = buf_steal(&b);
        }
    }
    record(c, raw, res, output, details);
    wake_awaiters(c, false);
    if (c->interval_ns && c->gen->active && c->gen->autorun) {
        /* next refresh: interval with +-10% jitter, so many checks spread out */
        uint64_t j = c->interval_ns / HA_JITTER_DIV;
        uint64_t d = c->interval_ns - j + (j ? (uint64_t)rand() % (2 * j + 1) : 0);
        schedule(c, d);
    }
}

/* --- dependencies -------------------------------------------------------- */

ha_status engine_check_shown(const ha_check *c) { return c->blocked ? HA_DOWN : c->status; }

/* The dependency that holds c back: the first one that shows DOWN, else
 * the first one still INIT (undecided), else NULL (all UP or WARN). */
static ha_check *holder_of(const ha_check *c)
{
    ha_check *init = NULL;
    for (uint32_t i = 0; i < c->ndeps && c->deps; i++) {
        ha_status s = engine_check_shown(c->deps[i]);
        if (s == HA_DOWN)
            return c->deps[i];
        if (s == HA_INIT && init == NULL)
            init = c->deps[i];
    }
    return init;
}

/* Writes "dependency ROOT is DOWN" and, when the chain from c's holder to
 * the root passes other checks, " (via b, c)" into b. */
static void blocked_message(const ha_check *c, const ha_check *root, ha_buf *b)
{
    buf_printf(b, "dependency %s is DOWN", root->name);
    const char *sep = " (via ";
    for (const ha_check *x = c->holder; x && x != root && b->len < HA_OUTPUT_MAX; x = x->holder) {
        buf_printf(b, "%s%s", sep, x->name);
        sep = ", ";
    }
    if (sep[0] == ',')
        buf_addc(b, ')');
}

/* Moves c's dependency state to what its dependencies show now: blocked
 * (shown DOWN naming the root cause) while one shows DOWN; when none holds
 * it back any more, a run at once (the block ends with its result). A
 * change is passed on to c's dependents. */
static void deps_update(ha_check *c)
{
    ha_check *h = holder_of(c);
    c->holder = h;
    if (h != NULL && engine_check_shown(h) == HA_DOWN) {
        ha_check *root = h->blocked && h->root ? h->root : h;
        ha_buf b = HA_BUF_INIT;
        blocked_message(c, root, &b);
        char *msg = cap_output(buf_cstr(&b), b.len);
        buf_free(&b);
        if (msg == NULL)
            return;
        if (c->blocked && strcmp(c->blocked, msg) == 0) {
            free(msg);
            c->root = root;
            return;
        }
        ha_status old = engine_check_shown(c);
        free(c->blocked);
        c->blocked = msg;
        c->root = root;
        int64_t now = ha_wall_ms();
        c->blocked_ms = now > c->blocked_ms ? now : c->blocked_ms + 1; /* the front's views key on it */
        log_event(old == HA_DOWN ? LOG_INFO : LOG_WARN, c->name, "%s -> DOWN: %s", ha_status_name(old), msg);
        engine_mark_dirty(c->gen->eng);
        if (c->nagg_groups)
            engine_group_member_changed(c);
        deps_changed(c);
        return;
    }
    if (h == NULL && (c->blocked || c->skipped)) {
        c->skipped = false;
        engine_mark_dirty(c->gen->eng); /* the snapshot marks it recovering */
        engine_check_request(c, true);
    }
}

/* c's shown status or root cause may have changed: re-evaluates its
 * dependents (transitively; the graph has no cycle). */
static void deps_changed(ha_check *c)
{
    for (uint32_t i = 0; i < c->nrdeps; i++)
        deps_update(c->rdeps[i]);
}

/* The JSON details of a blocked check: the root cause, the chain, and its
 * own last output and details. Returns NULL when out of memory. */
static char *blocked_details(const ha_check *c)
{
    ha_buf b = HA_BUF_INIT;
    const ha_check *root = c->root ? c->root : c->holder;
    buf_adds(&b, "{\"dependency\":");
    buf_json_str(&b, root ? root->name : "", root ? strlen(root->name) : 0);
    buf_adds(&b, ",\"via\":[");
    const char *sep = "";
    for (const ha_check *x = c->holder; x && x != root && b.len < HA_DETAILS_MAX; x = x->holder) {
        buf_adds(&b, sep);
        buf_json_str(&b, x->name, strlen(x->name));
        sep = ",";
    }
    buf_addc(&b, ']');
    if (c->output) {
        buf_adds(&b, ",\"last_output\":");
        buf_json_str(&b, c->output, strlen(c->output));
    }
    if (c->details_json && c->details_json[0] && b.len + strlen(c->details_json) < HA_DETAILS_MAX) {
        buf_adds(&b, ",\"last_details\":");
        buf_adds(&b, c->details_json);
    }
    buf_addc(&b, '}');
    return buf_steal(&b);
}

/* --- pushed checks ------------------------------------------------------ */

/* A pushed check's report deadline passed: DOWN "no report for 30s". */
static void on_report_deadline(uv_timer_t *h)
{
    ha_check *c = h->data;
    char d[32], msg[64];
    ha_duration_format(c->ttl_ns, d, sizeof d);
    snprintf(msg, sizeof msg, "no report for %s", d);
    c->report_armed = false;
    c->started_ns = 0;
    record(c, HA_DOWN, HA_RES_TIMEOUT, strdup(msg), NULL);
    /* a timer's turn may be followed by a poll that sleeps: publish now */
    engine__publish_pending(c->gen->eng);
}

static void report_arm(ha_check *c, uint64_t delay_ns)
{
    c->report_armed = true;
    uv_timer_start(&c->timer, on_report_deadline, (delay_ns + HA_NS_PER_MS - 1) / HA_NS_PER_MS, 0);
}

void engine_check_report(ha_check *c, ha_status status, const char *output, size_t n)
{
    ha_result res = status == HA_UP ? HA_RES_UP : status == HA_WARN ? HA_RES_WARN : HA_RES_DOWN;
    c->started_ns = 0;
    record(c, status, res, output && n ? cap_output(output, n) : NULL, NULL);
    if (c->gen->active && c->timer.loop)
        report_arm(c, c->ttl_ns);
}

/* Pushes the ctx argument of run: [-0, +1]. */
static void push_ctx(lua_State *L, const ha_check *c)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "name");
    lua_pushnumber(L, (double)c->timeout_ns / 1e9);
    lua_setfield(L, -2, "timeout");
    lua_pushinteger(L, (lua_Integer)c->runs + 1);
    lua_setfield(L, -2, "attempt");
    if (c->output) {
        lua_pushstring(L, c->output);
        lua_setfield(L, -2, "last_output");
    }
    lua_pushstring(L, ha_status_name(c->status));
    lua_setfield(L, -2, "status");
}

static void start_run(ha_check *c)
{
    ha_gen *gen = c->gen;
    lua_State *L = gen->vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->run_ref); /* [run] */
    push_ctx(L, c);                                /* [run, ctx] */
    c->started_ns = uv_hrtime();
    c->task = engine_task_start(gen->vm, L, 1, c->timeout_ns, c->mem_limit, on_run_done, c);
    engine_task_set_name(c->task, c->name);
    engine_task_set_owner(c->task, c->mem_owner);
    engine_mark_started(gen->eng);
}

void engine_check_request(ha_check *c, bool force)
{
    if (c->pushed || c->task || !c->gen->active || c->gen->eng->stopping)
        return;
    uint64_t now = uv_hrtime();
    if (now < c->not_before_ns)
        return;
    if (c->ndeps && (c->holder = holder_of(c)) != NULL) {
        c->skipped = true; /* deps_update runs it once they pass */
        return;
    }
    if (!force && c->runs && now < c->done_ns + c->ttl_ns)
        return;
    start_run(c);
}

/* Initial delay over, first-run offset reached, or interval elapsed. The
 * timer is the authority: its cached millisecond clock may fire a hair
 * before not_before_ns. An interval check refreshes whatever its ttl says;
 * an on-demand one runs unless a probe already gave it a fresh result. */
static void on_timer(uv_timer_t *h)
{
    ha_check *c = h->data;
    c->not_before_ns = 0;
    engine_check_request(c, c->interval_ns != 0);
}

/* Offset of a first run within its generation: initial_delay when given
 * (exact); else, for an interval check, uniform over min(interval,
 * HA_SPREAD_MAX_NS), so a generation's background checks do not all start
 * in the same millisecond; an on-demand check runs at once (its later runs
 * come from probes, at times nobody schedules). */
static uint64_t first_run_offset(const ha_check *c)
{
    if (c->exact_delay || c->interval_ns == 0)
        return c->initial_delay_ns;
    uint64_t w = c->interval_ns < HA_SPREAD_MAX_NS ? c->interval_ns : HA_SPREAD_MAX_NS;
    uint64_t ms = w / HA_NS_PER_MS;
    return ms ? (uint64_t)rand() % ms * HA_NS_PER_MS : 0;
}

static void schedule(ha_check *c, uint64_t delay_ns)
{
    uv_timer_start(&c->timer, on_timer, (delay_ns + 999999) / 1000000, 0);
}

/* --- generations ------------------------------------------------------- */

ha_check *engine_gen_find(ha_gen *gen, const char *name, size_t len)
{
    size_t lo = 0, hi = gen->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *m = gen->checks[mid]->name;
        size_t ml = strlen(m);
        int r = memcmp(m, name, ml < len ? ml : len);
        if (r == 0)
            r = ml < len ? -1 : ml > len;
        if (r == 0)
            return gen->checks[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Fills err with the cycle that the depth-first walk found: the stack
 * from the check at stack[from] to the top, then that check again. */
static void cycle_error(const ha_gen *gen, const uint32_t *stack, size_t from, size_t top, char *err,
                        size_t errlen)
{
    const ha_check *first = gen->checks[stack[from]];
    int n = snprintf(err, errlen, "%s: health.check: dependency cycle: ", first->where);
    for (size_t i = from; i <= top && n > 0 && (size_t)n < errlen; i++)
        n += snprintf(err + n, errlen - (size_t)n, "%s -> ", gen->checks[stack[i]]->name);
    if (n > 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - (size_t)n, "%s", first->name);
}

int engine_gen_link(ha_gen *gen, bool partial, char *err, size_t errlen)
{
    size_t n = gen->n;
    for (size_t i = 0; i < n; i++)
        gen->checks[i]->index = (uint32_t)i;
    /* names -> checks, and how many depend on each */
    for (size_t i = 0; i < n; i++) {
        ha_check *c = gen->checks[i];
        if (c->ndeps == 0)
            continue;
        c->deps = calloc(c->ndeps, sizeof *c->deps);
        c->dep_idx = calloc(c->ndeps, sizeof *c->dep_idx);
        if (c->deps == NULL || c->dep_idx == NULL)
            goto oom;
        uint32_t k = 0;
        for (uint32_t j = 0; c->dep_names[j]; j++) {
            const char *dn = c->dep_names[j];
            ha_check *d = engine_gen_find(gen, dn, strlen(dn));
            if (d == NULL && engine__group_defined(gen, dn)) {
                snprintf(err, errlen, "%s: health.check: '%s' depends on '%s', which is a group: depends_on "
                                      "names checks (list the group's members instead)", c->where, c->name, dn);
                return -1;
            }
            if (d == NULL) {
                if (partial)
                    continue;
                snprintf(err, errlen, "%s: health.check: '%s' depends on '%s', which no health.check or "
                                      "health.push defines", c->where, c->name, dn);
                return -1;
            }
            bool dup = false;
            for (uint32_t m = 0; m < k; m++)
                dup |= c->deps[m] == d;
            if (dup)
                continue;
            c->deps[k] = d;
            c->dep_idx[k++] = d->index;
            d->nrdeps++;
        }
        c->ndeps = k;
    }
    for (size_t i = 0; i < n; i++) {
        ha_check *d = gen->checks[i];
        if (d->nrdeps && (d->rdeps = calloc(d->nrdeps, sizeof *d->rdeps)) == NULL)
            goto oom;
        d->nrdeps = 0;
    }
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < gen->checks[i]->ndeps; j++) {
            ha_check *d = gen->checks[i]->deps[j];
            d->rdeps[d->nrdeps++] = gen->checks[i];
        }
    /* cycles, by an iterative depth-first walk (a chain of 10,000 checks
     * must not need 10,000 C frames), which also gives the order in which
     * activation settles the graph: every dependency before its dependents */
    uint8_t *state = calloc(n ? n : 1, 1);     /* 0 new, 1 on the stack, 2 done */
    uint32_t *stack = calloc(n ? n : 1, sizeof *stack), *edge = calloc(n ? n : 1, sizeof *edge);
    free(gen->topo);
    gen->topo = calloc(n ? n : 1, sizeof *gen->topo);
    int r = 0;
    if (state == NULL || stack == NULL || edge == NULL || gen->topo == NULL) {
        snprintf(err, errlen, "not enough memory");
        r = -1;
        goto done;
    }
    size_t ntopo = 0;
    for (size_t s0 = 0; s0 < n && r == 0; s0++) {
        if (state[s0])
            continue;
        size_t sp = 0;
        stack[sp] = (uint32_t)s0;
        edge[sp++] = 0;
        state[s0] = 1;
        while (sp && r == 0) {
            ha_check *c = gen->checks[stack[sp - 1]];
            if (edge[sp - 1] < c->ndeps) {
                uint32_t d = c->dep_idx[edge[sp - 1]++];
                if (state[d] == 1) {
                    size_t from = 0;
                    while (stack[from] != d)
                        from++;
                    cycle_error(gen, stack, from, sp - 1, err, errlen);
                    r = -1;
                } else if (state[d] == 0) {
                    state[d] = 1;
                    stack[sp] = d;
                    edge[sp++] = 0;
                }
            } else {
                state[c->index] = 2;
                gen->topo[ntopo++] = c->index;
                sp--;
            }
        }
    }
done:
    free(state);
    free(stack);
    free(edge);
    return r;
oom:
    snprintf(err, errlen, "not enough memory");
    return -1;
}

/* Copies the state of a check with the same definition from prev. */
static void inherit(ha_check *c, ha_gen *prev)
{
    ha_check *o = prev ? engine_gen_find(prev, c->name, strlen(c->name)) : NULL;
    if (o == NULL || o->def_hash != c->def_hash)
        return;
    c->status = o->status;
    c->decided = o->decided;
    c->healthy = o->healthy;
    c->consec_ok = o->consec_ok;
    c->consec_fail = o->consec_fail;
    c->consec_up = o->consec_up;
    c->last = o->last;
    c->output = o->output;
    c->details_json = o->details_json;
    o->output = o->details_json = NULL;
    c->duration_ns = o->duration_ns;
    c->time_ms = o->time_ms;
    c->done_ns = o->done_ns;
    c->runs = o->runs;
    c->not_before_ns = o->not_before_ns;
    c->hist = o->hist;
    o->hist = NULL;
    c->blocked = o->blocked; /* kept on show until the graph is settled again */
    o->blocked = NULL;
    c->blocked_ms = o->blocked_ms;
    c->report_armed = o->report_armed;
}

void engine_gen_activate(ha_gen *gen, ha_gen *prev, bool autorun)
{
    ha_engine *eng = gen->eng;
    gen->active = true;
    gen->autorun = autorun;
    uint64_t now = uv_hrtime();
    uv_update_time(eng->loop); /* timers count from now, not from before a long start-up load */
    for (size_t i = 0; i < gen->n; i++) {
        ha_check *c = gen->checks[i];
        uv_timer_init(eng->loop, &c->timer);
        c->timer.data = c;
        uint64_t runs = c->runs;
        inherit(c, prev);
        if (c->pushed) {
            /* no run ever; a kept report keeps its deadline */
            if (c->report_armed) {
                uint64_t end = c->done_ns + c->ttl_ns;
                report_arm(c, end > now ? end - now : 0);
            }
            continue;
        }
        if (c->runs > runs) {
            /* kept its result: refresh on its usual schedule */
            if (c->interval_ns && autorun)
                schedule(c, c->interval_ns);
            continue;
        }
        /* only a given initial_delay holds probes back: a probe may run a
         * check before its spread-out first run */
        c->not_before_ns = now + c->initial_delay_ns;
        if (autorun)
            schedule(c, first_run_offset(c));
    }
    /* dependencies first: a dependent sees what they show */
    for (size_t i = 0; gen->topo && i < gen->n; i++) {
        ha_check *c = gen->checks[gen->topo[i]];
        if (c->ndeps)
            deps_update(c);
        else if (c->blocked) { /* kept from a definition that had dependencies */
            free(c->blocked);
            c->blocked = NULL;
        }
    }
    engine_group_activate(gen, prev);
    engine_mark_dirty(eng);
}

static void on_check_closed(uv_handle_t *h) { check_free(h->data); }

void engine_gen_close(ha_gen *gen)
{
    if (gen == NULL)
        return;
    gen->active = false;
    engine_vm_close(gen->vm); /* kills running tasks: on_run_done sees CANCELLED */
    for (size_t i = 0; i < gen->n; i++) {
        ha_check *c = gen->checks[i];
        if (c->timer.loop) /* initialised by activate */
            uv_close((uv_handle_t *)&c->timer, on_check_closed);
        else
            check_free(c);
    }
    engine_group_free_all(gen);
    free(gen->checks);
    free(gen->by_name);
    free(gen->topo);
    free(gen);
}

/* --- awaiting results -------------------------------------------------- */

static int await_push(ha_op *op, lua_State *L)
{
    ha_await *a = (ha_await *)op;
    if (a->cancelled) {
        lua_pushnil(L);
        lua_pushliteral(L, "cancelled");
        return 2;
    }
    lua_createtable(L, 0, 6);
    lua_pushstring(L, ha_status_name(a->status));
    lua_setfield(L, -2, "status");
    lua_pushstring(L, ha_status_name(a->last));
    lua_setfield(L, -2, "result");
    if (a->output) {
        lua_pushstring(L, a->output);
        lua_setfield(L, -2, "output");
    }
    if (a->details) {
        lua_pushstring(L, a->details);
        lua_setfield(L, -2, "details");
    }
    lua_pushnumber(L, (double)a->duration_ns / 1e6);
    lua_setfield(L, -2, "duration_ms");
    lua_pushinteger(L, (lua_Integer)a->runs);
    lua_setfield(L, -2, "runs");
    return 1;
}

static void await_close(ha_op *op)
{
    ha_await *a = (ha_await *)op;
    if (a->check) { /* cancelled before the result: unlink */
        ha_await **pp = &a->check->awaiters;
        while (*pp && *pp != a)
            pp = &(*pp)->next;
        if (*pp)
            *pp = a->next;
    }
    free(a->output);
    free(a->details);
    free(a);
}

int engine_check_await(lua_State *L, ha_check *c)
{
    ha_task *t = engine_task_current(L, "run");
    if (!c->gen->active)
        return luaL_error(L, "run: the scripts generation is closed");
    if (c->task == NULL && (c->pushed || (c->ndeps && holder_of(c)))) {
        /* nothing will run: a pushed check, or one its dependencies hold
         * back: the current state is the answer */
        ha_await now = {.status = engine_check_shown(c), .last = c->blocked ? HA_DOWN : c->last,
                        .output = c->blocked ? c->blocked : c->output,
                        .details = c->details_json, .duration_ns = c->duration_ns, .runs = c->runs};
        return await_push(&now.op, L);
    }
    ha_await *a = calloc(1, sizeof *a);
    if (a == NULL)
        return luaL_error(L, "not enough memory");
    a->op.push = await_push;
    a->op.close = await_close;
    a->check = c;
    a->next = c->awaiters;
    c->awaiters = a;
    if (c->task == NULL) {
        uint64_t saved = c->not_before_ns;
        c->not_before_ns = 0; /* an explicit run ignores initial_delay */
        engine_check_request(c, true);
        c->not_before_ns = saved;
    }
    return engine_task_yield(L, t, &a->op, 0);
}

void engine_check_push_state(lua_State *L, const ha_check *c)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, ha_status_name(c->status));
    lua_setfield(L, -2, "status");
    lua_pushstring(L, ha_status_name(c->last));
    lua_setfield(L, -2, "result");
    if (c->output) {
        lua_pushstring(L, c->output);
        lua_setfield(L, -2, "output");
    }
    if (c->details_json) {
        lua_pushstring(L, c->details_json);
        lua_setfield(L, -2, "details");
    }
    lua_pushinteger(L, (lua_Integer)c->runs);
    lua_setfield(L, -2, "runs");
    lua_pushboolean(L, c->task != NULL);
    lua_setfield(L, -2, "running");
    lua_pushboolean(L, c->critical);
    lua_setfield(L, -2, "critical");
    lua_pushnumber(L, (double)c->timeout_ns / 1e9);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, (double)c->ttl_ns / 1e9);
    lua_setfield(L, -2, "ttl");
    lua_pushnumber(L, (double)c->max_age_ns / 1e9);
    lua_setfield(L, -2, "max_age");
    lua_pushnumber(L, (double)c->interval_ns / 1e9);
    lua_setfield(L, -2, "interval");
    lua_createtable(L, 3, 0);
    int k = 1;
    for (int pi = 0; pi < 3; pi++)
        if (c->probes & ha_probe_mask(pi)) {
            lua_pushstring(L, ha_probe_name(pi));
            lua_rawseti(L, -2, k++);
        }
    lua_setfield(L, -2, "probes");
    lua_pushstring(L, c->where);
    lua_setfield(L, -2, "where");
    if (c->blocked) {
        lua_pushstring(L, c->blocked);
        lua_setfield(L, -2, "blocked");
    }
    lua_pushboolean(L, c->pushed);
    lua_setfield(L, -2, "pushed");
    lua_createtable(L, (int)c->ndeps, 0);
    for (uint32_t i = 0; i < c->ndeps && c->deps; i++) {
        lua_pushstring(L, c->deps[i]->name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "depends_on");
}

void engine_check_snap(const ha_check *c, ha_snap_check *o, ha_snapshot *s)
{
    o->name = snapshot_strdup(s, c->name);
    o->name_hash = c->name_hash;
    o->probes = c->probes;
    o->critical = c->critical;
    memcpy(o->component_type, c->component_type, sizeof o->component_type);
    o->running = c->task != NULL;
    o->status = c->status;
    o->output = snapshot_strdup(s, c->blocked ? c->blocked : c->output);
    if (c->blocked) {
        char *d = blocked_details(c);
        o->details_json = snapshot_strdup(s, d);
        free(d);
    } else {
        o->details_json = snapshot_strdup(s, c->details_json);
    }
    o->duration_ms = c->duration_ns / HA_NS_PER_MS;
    o->time_ms = c->time_ms;
    o->expires_ns = c->runs ? c->done_ns + c->ttl_ns : 0;
    o->expired_ns = c->runs ? c->done_ns + c->max_age_ns : 0;
    o->max_age_ns = c->max_age_ns;
    o->not_before_ns = c->not_before_ns;
    o->timeout_ns = c->timeout_ns;
    o->runs = c->runs;
    o->ttl_ns = c->ttl_ns;
    o->interval_ns = c->interval_ns;
    o->failure_threshold = c->failure_threshold;
    o->success_threshold = c->success_threshold;
    o->consec_ok = c->consec_ok;
    o->consec_fail = c->consec_fail;
    o->last = c->last;
    o->hist = snapshot_hist_retain(c->hist);
    o->pushed = c->pushed;
    if (c->pushed && c->runs)
        o->expires_ns = o->expired_ns = UINT64_MAX; /* the engine's report deadline decides */
    if (c->ndeps && (o->deps = malloc(c->ndeps * sizeof *o->deps)) != NULL) {
        memcpy(o->deps, c->dep_idx, c->ndeps * sizeof *o->deps);
        o->ndeps = c->ndeps;
    }
    if (c->blocked) {
        /* shown DOWN naming the root cause; as fresh as the root's result
         * while it holds, stale (wait for the own run) once it passes */
        const ha_check *root = c->root;
        o->blocked = true; /* output and details_json are set above */
        o->status = HA_DOWN;
        o->time_ms = c->blocked_ms;
        o->expires_ns = 0;
        if (c->holder && root && root->runs)
            o->expires_ns = root->pushed ? UINT64_MAX : root->done_ns + root->ttl_ns;
        o->expired_ns = UINT64_MAX;
    }
}
