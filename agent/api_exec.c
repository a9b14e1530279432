/* api_exec.c: health.exec. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_exec_open(lua_State *L)
{
    return luaL_error(L, "health.exec is not available yet");
}
