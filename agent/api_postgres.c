/* api_postgres.c: health.postgres. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_postgres_open(lua_State *L)
{
    return luaL_error(L, "health.postgres is not available yet");
}
