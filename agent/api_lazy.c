/* api_lazy.c: the modules that need heavy client libraries (libcurl,
 * hiredis, libpq, libmariadb) live in shared objects loaded on first use.
 *
 * The binary itself links only Lua, libuv, libh2o and OpenSSL; an agent
 * whose scripts never require health.http or a database client never maps
 * libcurl and the dozens of libraries it pulls in (gnutls, krb5, ldap ...).
 * package.preload maps each such module to api_lazy_open, which dlopen()s
 * its shared object once per process and calls the module's own
 * api_<mod>_open. The shared objects call back into the binary (Lua,
 * libuv, the engine), which exports its symbols (-rdynamic).
 *
 * Where the shared objects are: next to the binary (the build tree), in
 * <binary>/../lib/healthagent (an installed tree, wherever it was moved),
 * then in HA_MODULE_DIR (<prefix>/lib/healthagent). */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"

#ifndef HA_MODULE_DIR
#define HA_MODULE_DIR "/usr/local/lib/healthagent"
#endif

/* One shared object; loaded at most once, never unloaded. */
typedef struct {
    const char *file;  /* "ha_http.so" */
    void *handle;      /* dlopen() handle; NULL until loaded (under lazy_lock) */
} lazy_so;

enum { SO_HTTP, SO_REDIS, SO_POSTGRES, SO_MYSQL };

static lazy_so lazy_sos[] = {
    [SO_HTTP] = {"ha_http.so", NULL},
    [SO_REDIS] = {"ha_redis.so", NULL},
    [SO_POSTGRES] = {"ha_postgres.so", NULL},
    [SO_MYSQL] = {"ha_mysql.so", NULL},
};

/* One lazily loaded Lua module. */
typedef struct {
    const char *name;  /* "health.http" */
    int so;            /* index in lazy_sos */
    const char *open;  /* its luaopen function: "api_http_open" */
} lazy_mod;

static const lazy_mod lazy_mods[] = {
    {"health.http", SO_HTTP, "api_http_open"},
    {"health.grpc", SO_HTTP, "api_grpc_open"},
    {"health.redis", SO_REDIS, "api_redis_open"},
    {"health.postgres", SO_POSTGRES, "api_postgres_open"},
    {"health.mysql", SO_MYSQL, "api_mysql_open"},
};

/* The engine thread and the runner's main thread may both require. */
static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;

/* Writes the directory holding the binary into dir; false if unknown. */
static bool exe_dir(char *dir, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    if (n <= 0)
        return false;
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    return true;
}

/* Loads so (lazy_lock held). Returns its handle, or NULL with a one-line
 * message naming the file and dlerror() in err. */
static void *so_load(lazy_so *so, char *err, size_t errlen)
{
    if (so->handle)
        return so->handle;
    char exe[PATH_MAX], path[PATH_MAX + 64];
    struct { const char *dir, *sub; } cand[] = {
        {exe, ""},                    /* the build tree */
        {exe, "/../lib/healthagent"}, /* an installed tree */
        {HA_MODULE_DIR, ""},
    };
    size_t first = exe_dir(exe, sizeof exe) ? 0 : 2;
    for (size_t i = first; i < sizeof cand / sizeof cand[0]; i++) {
        int n = snprintf(path, sizeof path, "%s%s/%s", cand[i].dir, cand[i].sub, so->file);
        if (n < 0 || (size_t)n >= sizeof path || access(path, F_OK) != 0)
            continue;
        so->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (so->handle == NULL && snprintf(err, errlen, "cannot load %s: %s", path, dlerror()) < 0)
            err[0] = '\0';
        return so->handle;
    }
    if (snprintf(err, errlen, "cannot load %s: not found next to the binary (%s), in %s%s nor in %s",
                 so->file, first ? "?" : exe, first ? "?" : exe, cand[1].sub, HA_MODULE_DIR) < 0)
        err[0] = '\0';
    return NULL;
}

/* package.preload loader of every lazy module: require passes the module
 * name as argument 1. Loads the shared object (once), then returns what the
 * module's open function returns. Raises, with one line naming the file,
 * when the shared object or its entry point is missing or broken. */
int api_lazy_open(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const lazy_mod *m = NULL;
    for (size_t i = 0; i < sizeof lazy_mods / sizeof lazy_mods[0]; i++)
        if (strcmp(lazy_mods[i].name, name) == 0)
            m = &lazy_mods[i];
    if (m == NULL)
        return luaL_error(L, "%s: not a lazily loaded module", name);
    char err[PATH_MAX + 512];
    lua_CFunction open = NULL;
    pthread_mutex_lock(&lazy_lock); /* no raising while held */
    void *h = so_load(&lazy_sos[m->so], err, sizeof err);
    if (h) {
        open = (lua_CFunction)dlsym(h, m->open);
        if (open == NULL)
            snprintf(err, sizeof err, "%s: %s", lazy_sos[m->so].file, dlerror());
    }
    pthread_mutex_unlock(&lazy_lock);
    if (open == NULL)
        return luaL_error(L, "%s: %s", name, err);
    return open(L); /* as if preloaded itself: same arguments */
}
