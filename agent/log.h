/* log.h: one line per event on stderr, as text or as one JSON object.
 * Safe to call from any thread: each line is built whole and written with a
 * single write(2). */
#ifndef HA_LOG_H
#define HA_LOG_H

#include <stddef.h>

#include "buf.h"

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the format (0 text, 1 JSON) and the minimum level. Call before threads start. */
void log_setup(int json, int level);
/* Parses "debug", "info", "warn", "error"; -1 if unknown. */
int log_level_parse(const char *s);
/* Logs one event; check may be NULL. The message is one line whatever it
 * holds (file names, check outputs, remote data): text logs escape control
 * bytes as log_escape does, JSON logs as JSON strings do. */
void log_event(int level, const char *check, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends s[0..n) to b with the C0 control bytes and DEL escaped the way
 * JSON strings escape them (\n, \r, \t, \u001b ...): an ESC sequence or a
 * newline from remote data cannot reach a terminal or forge a log line. */
void log_escape(ha_buf *b, const char *s, size_t n);

/* A field of a structured event. Exactly one of str and json is used: str
 * is written as a JSON string (NULL and json NULL: null), json verbatim (a
 * number or an array the caller built). key is a literal, not one of
 * time, level, check, msg. */
typedef struct {
    const char *key;
    const char *str;
    const char *json;
} log_field;

/* log_event with fields: in JSON each becomes a member of the line's object
 * (after msg), so a pipeline can match on them; text lines show msg only. */
void log_event_fields(int level, const char *check, const log_field *fields, int nfields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
