/* json.h: the Lua-to-JSON encoder: a check result's details (engine_check.c)
 * and the health.info values (engine.c) as the JSON the front serves. Runs
 * on the thread that owns the Lua state. */
#ifndef HA_JSON_H
#define HA_JSON_H

#include <stddef.h>

#include <lua.h>

#include "buf.h"

/* Appends the Lua value at idx as JSON to buf: raw access only (no
 * metamethods), tables nested 16 deep at most ("<too deep>" below that),
 * a non-empty sequence 1..n as an array, any other table as an object of
 * its string and number keys (other keys skipped); functions, userdata and
 * threads become their type name as a string, NaN and infinities null.
 * Stops adding once buf passes cap bytes, so the caller sees buf->len > cap
 * and replaces the result. Raises only when Lua runs out of memory. */
void json_encode_lua(lua_State *L, int idx, ha_buf *buf, size_t cap);

#endif
