/* api_tcp.c: health.tcp. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_tcp_open(lua_State *L)
{
    return luaL_error(L, "health.tcp is not available yet");
}
