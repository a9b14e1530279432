/* api.h: the Lua modules written in C. Each api_*.c file opens one module;
 * engine_vm.c registers them in package.preload. */
#ifndef HA_API_H
#define HA_API_H

#include <lua.h>
#include <lauxlib.h>

/* health: check, warn, sleep, now, log (api_health.c). */
int api_health_open(lua_State *L);
/* health.testing: load generations and run their checks from specs; runner
 * mode only (api_testing.c). */
int api_testing_open(lua_State *L);
/* Closes every generation health.testing opened (runner teardown). */
void api_testing_close_all(void);

/* Modules every state gets in package.preload. */
extern const luaL_Reg api_modules[];

#endif
