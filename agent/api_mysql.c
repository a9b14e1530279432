/* api_mysql.c: health.mysql. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_mysql_open(lua_State *L)
{
    return luaL_error(L, "health.mysql is not available yet");
}
