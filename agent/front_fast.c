/* front_fast.c: the strict request parser and the response head of the
 * connection-per-probe fast path (see front_fast.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "front_fast.h"

/* RFC 9110 tchar: the characters of a field name or a connection option. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value bytes: visible ASCII, space, tab and obs-text. */
static bool is_vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static bool path_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '/' || c == '_' ||
           c == '.' || c == '-';
}

/* True when p[0..n) is a path that h2o's normalisation leaves as it is: no
 * empty inner segment and no "." or ".." segment. */
static bool path_is_normal(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!path_char((unsigned char)p[i]))
            return false;
    for (size_t i = 0; i < n;) {
        size_t s = i + 1, e = s; /* segment [s, e) after the '/' at i */
        while (e < n && p[e] != '/')
            e++;
        size_t sl = e - s;
        if ((sl == 0 && e < n) || (sl == 1 && p[s] == '.') || (sl == 2 && p[s] == '.' && p[s + 1] == '.'))
            return false;
        i = e;
    }
    return true;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Reads the options of a Connection field: sets *close / *keep_alive for
 * those, false for any other option (which h2o must see, e.g. upgrade). */
static bool connection_options(const char *v, size_t n, bool *close, bool *keep_alive)
{
    size_t i = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i == n)
            return true;
        size_t s = i;
        while (i < n && is_tchar((unsigned char)v[i]))
            i++;
        if (i == s)
            return false;
        if (name_is(v + s, i - s, "close"))
            *close = true;
        else if (name_is(v + s, i - s, "keep-alive"))
            *keep_alive = true;
        else
            return false;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (i < n && v[i] != ',')
            return false;
    }
}

bool front_fast_parse(const char *buf, size_t len, ha_fast_req *r)
{
    memset(r, 0, sizeof *r);
    if (len > HA_FAST_MAX_REQUEST || len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0)
        return false;
    const char *p = buf, *end = buf + len;
    if (len > 4 && memcmp(p, "GET ", 4) == 0) {
        p += 4;
    } else if (len > 5 && memcmp(p, "HEAD ", 5) == 0) {
        r->head = true;
        p += 5;
    } else {
        return false;
    }
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL || !path_is_normal(p, (size_t)(sp - p)))
        return false;
    r->path = p;
    r->path_len = (size_t)(sp - p);
    p = sp + 1;
    if (end - p < 10 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != '\r' || p[9] != '\n')
        return false;
    bool http10 = p[7] == '0';
    p += 10;
    bool close = false, keep_alive = false, seen_conn = false, seen_host = false;
    int nfields = 0;
    while (!(p[0] == '\r' && p[1] == '\n')) { /* the buffer ends in CRLF CRLF: p + 1 < end */
        if (++nfields > HA_FAST_MAX_HEADERS)
            return false;
        const char *name = p;
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - name);
        if (nlen == 0 || p == end || *p != ':')
            return false;
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *val = p;
        while (p < end && is_vchar((unsigned char)*p))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return false; /* a bare LF, a control byte or a NUL */
        size_t vlen = (size_t)(p - val);
        while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
            vlen--;
        p += 2;
        if (name_is(name, nlen, "connection")) {
            if (seen_conn || !connection_options(val, vlen, &close, &keep_alive))
                return false;
            seen_conn = true;
        } else if (name_is(name, nlen, "accept")) {
            if (r->accept != NULL)
                return false;
            r->accept = val;
            r->accept_len = vlen;
        } else if (name_is(name, nlen, "authorization")) {
            if (r->authorization != NULL)
                return false;
            r->authorization = val;
            r->authorization_len = vlen;
        } else if (name_is(name, nlen, "host")) {
            if (seen_host)
                return false;
            seen_host = true;
        } else if (name_is(name, nlen, "content-length") || name_is(name, nlen, "transfer-encoding") ||
                   name_is(name, nlen, "upgrade") || name_is(name, nlen, "expect") ||
                   name_is(name, nlen, "http2-settings") || name_is(name, nlen, "te")) {
            return false;
        }
    }
    if (p + 2 != end) /* a second request behind the first: pipelining is h2o's */
        return false;
    if (http10 ? keep_alive : !close)
        return false;
    return true;
}

void front_fast_head(ha_buf *b, int status, const char *reason, const char *content_type, size_t body_len,
                     size_t *date_at)
{
    buf_printf(b, "HTTP/1.1 %d %s\r\nDate: ", status, reason);
    *date_at = b->len;
    buf_printf(b, "%*s\r\nConnection: close\r\nContent-Length: %zu\r\nServer: healthagent\r\n", HA_FAST_DATE_LEN, "",
               body_len);
    buf_printf(b, "content-type: %s\r\ncache-control: no-store\r\n\r\n", content_type);
}
