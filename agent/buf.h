/* buf.h: a growable byte buffer with JSON string escaping. Used by the
 * renderer, the logger and the Lua-to-JSON encoder. Allocation failure
 * aborts: these buffers are small and bounded by their callers. */
#ifndef HA_BUF_H
#define HA_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *data;  /* owned, NUL-terminated when len > 0 or after buf_cstr */
    size_t len;  /* bytes used, without the terminator */
    size_t cap;  /* bytes allocated */
} ha_buf;

#define HA_BUF_INIT {NULL, 0, 0}

void buf_reserve(ha_buf *b, size_t extra);
void buf_add(ha_buf *b, const void *p, size_t n);
void buf_adds(ha_buf *b, const char *s);
void buf_addc(ha_buf *b, char c);
void buf_printf(ha_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(ha_buf *b, const char *fmt, va_list ap);
/* Length of the valid UTF-8 sequence at s (n > 0 bytes available): 1 for
 * ASCII, 2 to 4, or 0 when the bytes there are not valid UTF-8 (overlong,
 * surrogate, past U+10FFFF or cut short). */
size_t buf_utf8_len(const unsigned char *s, size_t n);
/* Appends s[0..n) as a quoted JSON string, escaping control characters and
 * replacing invalid UTF-8 by U+FFFD. */
void buf_json_str(ha_buf *b, const char *s, size_t n);
/* Appends s[0..n) as one line of UTF-8 text: control characters (newlines
 * included) become spaces, invalid UTF-8 becomes U+FFFD. */
void buf_text_line(ha_buf *b, const char *s, size_t n);
/* Returns the NUL-terminated contents (never NULL). */
const char *buf_cstr(ha_buf *b);
/* Hands the contents to the caller (malloc'd, NUL-terminated) and empties b. */
char *buf_steal(ha_buf *b);
void buf_reset(ha_buf *b);
void buf_free(ha_buf *b);

#endif
