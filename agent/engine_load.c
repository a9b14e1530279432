/* engine_load.c: reading and compiling a scripts directory (see engine_load.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>

#include "engine_int.h"
#include "engine_load.h"
#include "engine_group.h"
#include "log.h"

#define LOAD_LIMIT_NS (5 * HA_NS_PER_S) /* main chunks of a generation that run longer are an error */
#define MAX_SCRIPT (4u << 20)          /* bytes: larger files are refused */
#define LIB_DEPTH 8                    /* lib/ levels hashed: require "a.b.c" ... */
#define LIB_FILES 1024                 /* lib/ files hashed at most */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const ha_script *)a)->name, ((const ha_script *)b)->name);
}

/* Reads a whole file. Returns 0, or -1 with errno set. */
static int slurp(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char *p = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *q = realloc(p, cap + 1);
            if (q == NULL)
                goto fail;
            p = q;
        }
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n > MAX_SCRIPT) {
            errno = EFBIG;
            goto fail;
        }
    }
    if (ferror(f))
        goto fail;
    fclose(f);
    p[n] = '\0';
    *out = p;
    *len = n;
    return 0;
fail:
    {
        int e = errno ? errno : EIO;
        free(p);
        fclose(f);
        errno = e;
        return -1;
    }
}

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Folds the *.lua files under path (the scripts' lib/ modules: relative
 * names and contents, in name order) into *h. Unreadable entries and names
 * beginning with '.' are skipped; *budget bounds the files hashed. */
static void hash_lib(const char *path, const char *rel, int depth, int *budget, uint64_t *h)
{
    DIR *d = depth < LIB_DEPTH ? opendir(path) : NULL;
    if (d == NULL)
        return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(names, cap * sizeof *p);
            if (p == NULL)
                break;
            names = p;
        }
        if ((names[n] = strdup(e->d_name)) != NULL)
            n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_str);
    for (size_t i = 0; i < n; i++) {
        char full[4096], sub[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        snprintf(sub, sizeof sub, "%s%s/", rel, names[i]);
        struct stat st;
        size_t nl = strlen(names[i]);
        if (*budget > 0 && stat(full, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                hash_lib(full, sub, depth + 1, budget, h);
            } else if (S_ISREG(st.st_mode) && nl > 4 && strcmp(names[i] + nl - 4, ".lua") == 0) {
                char *src;
                size_t len;
                (*budget)--;
                *h = fnv_bytes(*h, sub, strlen(sub) + 1);
                if (slurp(full, &src, &len) == 0) {
                    *h = fnv_bytes(*h, src, len);
                    free(src);
                }
            }
        }
        free(names[i]);
    }
    free(names);
}

int engine_load_read(const char *dir, ha_script_set *set, char *err, size_t errlen)
{
    memset(set, 0, sizeof *set);
    size_t cap = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "%s: cannot read scripts directory: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (e->d_name[0] == '.' || nl < 5 || strcmp(e->d_name + nl - 4, ".lua") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) {
            if (errno == ENOENT) /* a dangling link mid-update: the next event reloads */
                continue;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if (set->n == cap) {
            cap = cap ? cap * 2 : 16;
            ha_script *p = realloc(set->files, cap * sizeof *p);
            if (p == NULL) {
                snprintf(err, errlen, "%s: not enough memory", dir);
                goto fail;
            }
            set->files = p;
        }
        ha_script *s = &set->files[set->n];
        s->name = strdup(e->d_name);
        if (s->name == NULL || slurp(path, &s->src, &s->len) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(s->name);
            goto fail;
        }
        set->n++;
    }
    closedir(d);
    d = NULL;
    if (set->n)
        qsort(set->files, set->n, sizeof *set->files, by_name);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < set->n; i++) {
        const ha_script *s = &set->files[i];
        for (const char *p = s->name; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ 0) * 1099511628211ull;
        for (size_t k = 0; k < s->len; k++)
            h = (h ^ (unsigned char)s->src[k]) * 1099511628211ull;
    }
    char lib[4096];
    snprintf(lib, sizeof lib, "%s/lib", dir);
    int budget = LIB_FILES;
    hash_lib(lib, "lib/", 0, &budget, &h); /* require'd modules are part of the content */
    set->hash = h;
    return 0;
fail:
    if (d)
        closedir(d);
    engine_load_free(set);
    return -1;
}

void engine_load_free(ha_script_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->files[i].name);
        free(set->files[i].src);
    }
    free(set->files);
    memset(set, 0, sizeof *set);
}

uint64_t engine_load_budget(const ha_config *cfg)
{
    uint64_t budget = LOAD_LIMIT_NS;
    if (cfg && cfg->watchdog_ns / 2 < budget)
        budget = cfg->watchdog_ns / 2;
    return budget;
}

static void load_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    ha_vm *vm = engine_vm_of(L);
    ha_gen *gen = vm->gen;
    if (uv_hrtime() > gen->load_deadline_ns) {
        vm->doomed = true; /* pcall re-raises from now on */
        lua_sethook(L, load_hook, LUA_MASKCOUNT, 1);
    }
    if (vm->doomed) {
        char d[32];
        ha_duration_format(gen->load_budget_ns, d, sizeof d);
        luaL_where(L, 0); /* in a hook, level 0 is the script function running */
        lua_pushfstring(L, "scripts took longer than %s to load", d);
        lua_concat(L, 2);
        lua_error(L);
    }
}

static int check_order(const void *a, const void *b)
{
    return strcmp((*(ha_check *const *)a)->name, (*(ha_check *const *)b)->name);
}

ha_gen *engine_load_gen(ha_engine *eng, const char *dir, const ha_script_set *set, char *err, size_t errlen)
{
    const ha_config *cfg = eng->cfg;
    const char *lualib = cfg && cfg->lualib_dir ? cfg->lualib_dir : config_default_lualib();
    ha_gen *gen = calloc(1, sizeof *gen);
    if (gen == NULL) {
        snprintf(err, errlen, "not enough memory");
        return NULL;
    }
    gen->eng = eng;
    gen->hash = set->hash;
    gen->vm = engine_vm_new(eng, true, cfg ? cfg->memory_limit : 0, lualib, dir[0] ? dir : NULL, err, errlen);
    if (gen->vm == NULL) {
        free(gen);
        return NULL;
    }
    ha_vm *vm = gen->vm;
    lua_State *L = vm->L;
    vm->gen = gen;
    /* one budget for all main chunks, below the watchdog: the start-up load
     * runs before the engine thread, and a reload's loader must give up
     * long before anyone would call it stuck */
    gen->load_budget_ns = engine_load_budget(cfg);
    gen->load_deadline_ns = uv_hrtime() + gen->load_budget_ns;
    vm->load_deadline_ns = gen->load_deadline_ns;
    for (size_t i = 0; i < set->n; i++) {
        const ha_script *s = &set->files[i];
        if (eng->on_load_file)
            eng->on_load_file(eng, s->name);
        lua_pushfstring(L, dir[0] ? "@%s/%s" : "@%s%s", dir, s->name); /* [chunkname] */
        if (luaL_loadbufferx(L, s->src, s->len, lua_tostring(L, -1), "t") != LUA_OK) {
            snprintf(err, errlen, "%s", lua_tostring(L, -1));
            goto fail;
        }
        lua_remove(L, -2);            /* [chunk] */
        engine_vm_new_env(vm);        /* [chunk, env] */
        lua_setupvalue(L, -2, 1);     /* [chunk]: _ENV is the file's own table */
        gen->cur_src = s->src;
        gen->cur_len = s->len;
        vm->load_owner = engine_vm_owner_new(vm, 0); /* what this file's main chunk keeps */
        vm->in_load = true;
        lua_sethook(L, load_hook, LUA_MASKCOUNT, 1000);
        char *mark = engine__cstack_enter(vm);
        int r = lua_pcall(L, 0, 0, 0);
        engine__cstack_leave(vm, mark);
        lua_sethook(L, NULL, 0, 0);
        vm->in_load = false;
        vm->doomed = false;
        gen->cur_src = NULL;
        if (r != LUA_OK) {
            const char *m = lua_tostring(L, -1);
            if (r == LUA_ERRMEM)
                snprintf(err, errlen, "%s/%s: not enough memory while loading", dir, s->name);
            else
                snprintf(err, errlen, "%s", m ? m : "error object is not a string");
            goto fail;
        }
    }
    if (gen->n)
        qsort(gen->checks, gen->n, sizeof *gen->checks, check_order);
    free(gen->by_name); /* its indices are the order of definition */
    gen->by_name = NULL;
    if (engine_gen_link(gen, set->partial, err, errlen) != 0)
        goto fail;
    if (engine_group_resolve(gen, set->partial, err, errlen) != 0)
        goto fail;
    lua_gc(L, LUA_GCCOLLECT);
    return gen;
fail:
    lua_settop(L, 0);
    engine_gen_close(gen);
    return NULL;
}
