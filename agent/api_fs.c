/* api_fs.c: health.fs. PLACEHOLDER: being written (issue 3); raises until then. */
#include "api.h"

int api_fs_open(lua_State *L)
{
    return luaL_error(L, "health.fs is not available yet");
}
