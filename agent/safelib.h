/* safelib.h: bounded replacements for the standard library functions that
 * can loop inside C for an unbounded time without allocating, where no count
 * hook can stop them (string.rep, table.move, table.insert, table.remove,
 * table.sort). Used by the check-script states and by the configuration
 * file's state. */
#ifndef HA_SAFELIB_H
#define HA_SAFELIB_H

#include <stdbool.h>

#include <lua.h>

/* True when the code running on L is past its time budget. Called from
 * inside the replacements every few thousand elements; must not raise. */
typedef bool (*safelib_overdue_fn)(lua_State *L);

/* Replaces the functions above in the global string and table libraries
 * of L (before they are made read-only). Stack unchanged. Raises only on
 * memory exhaustion. */
void safelib_install(lua_State *L, safelib_overdue_fn overdue);

#endif
