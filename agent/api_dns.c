/* api_dns.c: health.dns. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_dns_open(lua_State *L)
{
    return luaL_error(L, "health.dns is not available yet");
}
