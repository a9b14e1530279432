/* api.h: the Lua modules written in C. Each api_*.c file opens one module;
 * engine_vm.c registers them in package.preload. */
#ifndef HA_API_H
#define HA_API_H

#include <lua.h>
#include <lauxlib.h>

/* health: check, warn, sleep, now, log (api_health.c). */
int api_health_open(lua_State *L);
/* health.spawn(fn, ...): runs fn as a concurrent child task (api_health.c). */
int api_health_spawn(lua_State *L);
/* health.testing: load generations and run their checks from specs; runner
 * mode only (api_testing.c). */
int api_testing_open(lua_State *L);
/* Closes every generation health.testing opened (runner teardown). */
void api_testing_close_all(void);

/* The check library (README "The check library"): one module per file,
 * each open function pushes its module table. */
int api_tcp_open(lua_State *L);      /* health.tcp (api_tcp.c) */
int api_dns_open(lua_State *L);      /* health.dns (api_dns.c) */
int api_http_open(lua_State *L);     /* health.http (api_http.c) */
int api_fs_open(lua_State *L);       /* health.fs (api_fs.c) */
int api_exec_open(lua_State *L);     /* health.exec (api_exec.c) */
/* Reaps exited children the agent inherited (orphans of exec commands as
 * subreaper, any orphan as PID 1), never one libuv waits for. Engine
 * thread, on SIGCHLD. */
void api_exec_reap_orphans(void);
int api_redis_open(lua_State *L);    /* health.redis (api_redis.c) */
int api_postgres_open(lua_State *L); /* health.postgres (api_postgres.c) */
int api_mysql_open(lua_State *L);    /* health.mysql (api_mysql.c) */
int api_grpc_open(lua_State *L);     /* health.grpc (api_grpc.c) */

/* package.preload loader of health.http, health.grpc, health.redis,
 * health.postgres and health.mysql: built as shared objects (ha_http.so ...)
 * so that their client libraries are mapped only once a script requires
 * one; loads the object on first use and calls its api_<mod>_open
 * (api_lazy.c). */
int api_lazy_open(lua_State *L);

/* Modules every state gets in package.preload. */
extern const luaL_Reg api_modules[];

#endif
