/* api_opt.h: the one reader of duration options for every api_* module and
 * the database clients: `timeout = 0.5`, `timeout = "250ms"`, "2s", "1m",
 * "1h", "1d" (ha_duration_parse, the grammar of health.check's fields and
 * of the configuration), with one message for a bad value. */
#ifndef HA_API_OPT_H
#define HA_API_OPT_H

#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

/* The hint every bad duration message ends with. */
#define API_OPT_DURATION_HINT "(use seconds or \"250ms\", \"2s\", \"1m\")"

/* Reads the value at index vi as option key of function fn: a number of
 * seconds or a duration string. Returns nanoseconds. Raises
 * "<fn>: option '<key>': bad duration '<v>' (use ...)", or "... must be
 * greater than 0" for 0 unless zero_ok. */
uint64_t api_opt_duration(lua_State *L, int vi, const char *fn, const char *key, bool zero_ok);

/* api_opt_duration of field key of the table at idx; dflt when absent. */
uint64_t api_opt_duration_field(lua_State *L, int idx, const char *fn, const char *key, uint64_t dflt,
                                bool zero_ok);

#endif
