/* buf.c: growable buffers and JSON string escaping (see buf.h). */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for extra more bytes plus a terminator. Aborts on OOM. */
void buf_reserve(ha_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        abort();
    b->data = p;
    b->cap = cap;
}

void buf_add(ha_buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_adds(ha_buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_addc(ha_buf *b, char c) { buf_add(b, &c, 1); }

void buf_vprintf(ha_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(ha_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

size_t buf_utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) { len = 2; cp = s[0] & 0x1f; }
    else if ((s[0] & 0xf0) == 0xe0) { len = 3; cp = s[0] & 0x0f; }
    else if ((s[0] & 0xf8) == 0xf0) { len = 4; cp = s[0] & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void buf_json_str(ha_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    buf_reserve(b, n + 2);
    buf_addc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i;
            while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
                j++;
            buf_add(b, s + i, j - i);
            i = j;
            continue;
        }
        switch (c) {
        case '"': buf_add(b, "\\\"", 2); i++; continue;
        case '\\': buf_add(b, "\\\\", 2); i++; continue;
        case '\n': buf_add(b, "\\n", 2); i++; continue;
        case '\r': buf_add(b, "\\r", 2); i++; continue;
        case '\t': buf_add(b, "\\t", 2); i++; continue;
        default: break;
        }
        if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
            i++;
            continue;
        }
        size_t len = buf_utf8_len(s + i, n - i);
        if (len == 0) {
            buf_add(b, "\xef\xbf\xbd", 3); /* U+FFFD */
            i++;
        } else {
            buf_add(b, s + i, len);
            i += len;
        }
    }
    buf_addc(b, '"');
}

void buf_text_line(ha_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    buf_reserve(b, n);
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            buf_addc(b, ' ');
            i++;
            continue;
        }
        size_t len = buf_utf8_len(s + i, n - i);
        if (len == 0) {
            buf_add(b, "\xef\xbf\xbd", 3); /* U+FFFD */
            i++;
        } else {
            buf_add(b, s + i, len);
            i += len;
        }
    }
}

const char *buf_cstr(ha_buf *b)
{
    if (b->data == NULL)
        buf_reserve(b, 0);
    b->data[b->len] = '\0';
    return b->data;
}

char *buf_steal(ha_buf *b)
{
    buf_cstr(b);
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_reset(ha_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_free(ha_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
