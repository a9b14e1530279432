/* fuzz_fast.c: front_fast_parse, the connection-per-probe fast path's request
 * parser (agent/front_fast.h).
 *
 * The input is the bytes a client sent, parsed from an allocation of exactly
 * that size (a read past the end is an ASan report). Checks, with an oracle
 * written from the contract rather than from the parser: a qualifying
 * request fits HA_FAST_MAX_REQUEST, starts "GET " or "HEAD ", has its first
 * blank line exactly at the end, a path of [A-Za-z0-9/_.-] starting with '/'
 * and holding no "//", "/./" or "/../" segment, a version of HTTP/1.0 or
 * HTTP/1.1, no field line that h2o would need (Content-Length,
 * Transfer-Encoding, Upgrade, Expect), no bare LF, at most
 * HA_FAST_MAX_HEADERS field lines, and views (path, Accept, Authorization)
 * that lie inside the input and hold no CR or LF; no strict prefix of it
 * qualifies; parsing is deterministic. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "front_fast.h"
#include "fuzz.h"

/* v lies inside [buf, buf + len) with no CR or LF (NULL is fine). */
static bool fuzz_view_ok(const char *v, size_t vl, const char *buf, size_t len)
{
    if (v == NULL)
        return vl == 0;
    if (v < buf || v + vl > buf + len)
        return false;
    return memchr(v, '\r', vl) == NULL && memchr(v, '\n', vl) == NULL;
}

/* The path's characters are allowed ones, and its segments are neither
 * empty (but the last, "/readyz/") nor "." or "..". */
static bool fuzz_path_ok(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        return false;
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_.-";
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\0' || strchr(allowed, p[i]) == NULL)
            return false;
    /* with a '/' appended, every segment is followed by one: "//", "/./" or
     * "/../" appears exactly when a segment is bad, but for a last empty one */
    char seg[HA_FAST_MAX_REQUEST + 2];
    memcpy(seg, p, n);
    seg[n] = '/';
    seg[n + 1] = '\0';
    const char *dd = strstr(seg, "//");
    if (dd != NULL && dd != seg + n - 1)
        return false;
    return strstr(seg, "/./") == NULL && strstr(seg, "/../") == NULL;
}

/* Field lines of the head (after the request line) that name `name`. */
static int fuzz_count_field(const char *buf, size_t len, const char *name)
{
    int n = 0;
    size_t nl = strlen(name);
    for (size_t i = 0; i + 2 + nl < len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && strncasecmp(buf + i + 2, name, nl) == 0 && buf[i + 2 + nl] == ':')
            n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    ha_fast_req r, r2;
    bool ok = front_fast_parse(buf, size, &r);
    FUZZ_CHECK(front_fast_parse(buf, size, &r2) == ok, "not deterministic");
    if (ok) {
        FUZZ_CHECK(size <= HA_FAST_MAX_REQUEST, "too large");
        FUZZ_CHECK((size > 4 && memcmp(buf, "GET ", 4) == 0 && !r.head) ||
                       (size > 5 && memcmp(buf, "HEAD ", 5) == 0 && r.head),
                   "method");
        const char *blank = memmem(buf, size, "\r\n\r\n", 4);
        FUZZ_CHECK(blank != NULL && blank == buf + size - 4, "the first blank line is not the end");
        FUZZ_CHECK(fuzz_view_ok(r.path, r.path_len, buf, size) && fuzz_path_ok(r.path, r.path_len), "path");
        FUZZ_CHECK(r.path + r.path_len < buf + size && r.path[r.path_len] == ' ', "path not followed by a space");
        FUZZ_CHECK(memcmp(r.path + r.path_len, " HTTP/1.1\r\n", 11) == 0 ||
                       memcmp(r.path + r.path_len, " HTTP/1.0\r\n", 11) == 0,
                   "version");
        FUZZ_CHECK(fuzz_view_ok(r.accept, r.accept_len, buf, size), "accept view");
        FUZZ_CHECK(fuzz_view_ok(r.authorization, r.authorization_len, buf, size), "authorization view");
        static const char *const banned[] = {"content-length", "transfer-encoding", "upgrade", "expect"};
        for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
            FUZZ_CHECK(fuzz_count_field(buf, size, banned[i]) == 0, banned[i]);
        FUZZ_CHECK(fuzz_count_field(buf, size, "connection") <= 1, "two Connection fields");
        int lines = 0;
        for (size_t i = 0; i < size; i++) {
            FUZZ_CHECK(buf[i] != '\n' || (i > 0 && buf[i - 1] == '\r'), "bare LF");
            FUZZ_CHECK(buf[i] != '\0', "NUL");
            lines += buf[i] == '\n';
        }
        FUZZ_CHECK(lines - 2 <= HA_FAST_MAX_HEADERS, "too many field lines");
        for (size_t cut = size > 3 ? size - 3 : 0; cut < size; cut++)
            FUZZ_CHECK(!front_fast_parse(buf, cut, &r2), "a strict prefix qualifies");
    }
    free(buf);
    return 0;
}
