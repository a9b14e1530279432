/* api_grpc.c: health.grpc. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_grpc_open(lua_State *L)
{
    return luaL_error(L, "health.grpc is not available yet");
}
