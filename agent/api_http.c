/* api_http.c: health.http. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_http_open(lua_State *L)
{
    return luaL_error(L, "health.http is not available yet");
}
