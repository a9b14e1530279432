/* api_redis.c: health.redis. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_redis_open(lua_State *L)
{
    return luaL_error(L, "health.redis is not available yet");
}
