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
 * then in HA_MODULE_DIR (<prefix>/lib/healthagent): see ha_module_open. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "common.h"

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

/* Loads so (lazy_lock held). Returns its handle, or NULL with a one-line
 * message naming the file in err. */
static void *so_load(lazy_so *so, char *err, size_t errlen)
{
    if (so->handle == NULL)
        so->handle = ha_module_open(so->file, err, errlen);
    return so->handle;
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
