/* fuzz_util.c: contract checks, the input reader and the UTF-8 and JSON
 * validators shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool fuzz_replay;
static int fuzz_failures;

int fuzz_take_failures(void)
{
    int n = fuzz_failures;
    fuzz_failures = 0;
    return n;
}

void fuzz_fail(const char *file, int line, const char *what, const char *detail)
{
    fprintf(stderr, "%s:%d: contract broken: %s%s%s\n", file, line, what,
            detail != NULL ? ": " : "", detail != NULL ? detail : "");
    if (!fuzz_replay)
        abort();
    fuzz_failures++;
}

/* ---- the input reader ---- */

uint8_t fuzz_u8(fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t fuzz_u16(fuzz_in *in)
{
    uint16_t v = fuzz_u8(in);
    return (uint16_t)(v << 8 | fuzz_u8(in));
}

uint32_t fuzz_u32(fuzz_in *in)
{
    uint32_t v = fuzz_u16(in);
    return v << 16 | fuzz_u16(in);
}

uint64_t fuzz_u64(fuzz_in *in)
{
    uint64_t v = fuzz_u32(in);
    return v << 32 | fuzz_u32(in);
}

const uint8_t *fuzz_bytes(fuzz_in *in, size_t max, size_t *len)
{
    size_t want = fuzz_u8(in) % (max + 1);
    const uint8_t *p = in->p;
    if (want > in->n)
        want = in->n;
    in->p += want;
    in->n -= want;
    *len = want;
    return p;
}

char *fuzz_cstr(fuzz_in *in, size_t max)
{
    size_t len;
    const uint8_t *p = fuzz_bytes(in, max, &len);
    char *s = malloc(len + 1);
    if (s == NULL)
        abort();
    if (len > 0)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* ---- UTF-8 ---- */

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0. The table of
 * Unicode 15 section 3.9 (D92): the second byte's range depends on the first. */
static size_t fuzz_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (b <= 0x7f)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b >= 0xe0 && b <= 0xef)
        len = 3;
    else if (b >= 0xf0 && b <= 0xf4)
        len = 4;
    else
        return 0;
    if (b == 0xe0)
        lo = 0xa0;
    else if (b == 0xed)
        hi = 0x9f;
    else if (b == 0xf0)
        lo = 0x90;
    else if (b == 0xf4)
        hi = 0x8f;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

bool fuzz_utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n;) {
        size_t len = fuzz_utf8_len(s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

/* ---- JSON ---- */

typedef struct {
    const unsigned char *s; /* the text; not owned */
    size_t n, i;            /* length, read position */
    const char *why;        /* first error, static */
    char *out;              /* string decoder output, or NULL */
    size_t outlen;
} fuzz_json;

static bool fuzz_json_err(fuzz_json *j, const char *why)
{
    if (j->why == NULL)
        j->why = why;
    return false;
}

static void fuzz_json_ws(fuzz_json *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                           j->s[j->i] == '\r'))
        j->i++;
}

static void fuzz_json_put(fuzz_json *j, const void *p, size_t len)
{
    if (j->out != NULL)
        memcpy(j->out + j->outlen, p, len);
    j->outlen += len;
}

/* Four hex digits at j->i into *v. */
static bool fuzz_json_hex4(fuzz_json *j, unsigned *v)
{
    *v = 0;
    if (j->n - j->i < 4)
        return fuzz_json_err(j, "short \\u escape");
    for (int k = 0; k < 4; k++) {
        unsigned char c = j->s[j->i++];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return fuzz_json_err(j, "bad hex digit in \\u escape");
        *v = *v << 4 | d;
    }
    return true;
}

/* Appends code point cp as UTF-8 to the decoder output. */
static void fuzz_json_put_cp(fuzz_json *j, unsigned cp)
{
    unsigned char u[4];
    size_t len;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        len = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        len = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        len = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        len = 4;
    }
    fuzz_json_put(j, u, len);
}

static bool fuzz_json_string(fuzz_json *j)
{
    if (j->i >= j->n || j->s[j->i] != '"')
        return fuzz_json_err(j, "expected a string");
    j->i++;
    for (;;) {
        if (j->i >= j->n)
            return fuzz_json_err(j, "unterminated string");
        unsigned char c = j->s[j->i];
        if (c == '"') {
            j->i++;
            return true;
        }
        if (c < 0x20)
            return fuzz_json_err(j, "raw control character in a string");
        if (c >= 0x80) {
            size_t len = fuzz_utf8_len(j->s + j->i, j->n - j->i);
            if (len == 0)
                return fuzz_json_err(j, "invalid UTF-8 in a string");
            fuzz_json_put(j, j->s + j->i, len);
            j->i += len;
            continue;
        }
        j->i++;
        if (c != '\\') {
            fuzz_json_put(j, &c, 1);
            continue;
        }
        if (j->i >= j->n)
            return fuzz_json_err(j, "unterminated escape");
        unsigned char e = j->s[j->i++], lit;
        unsigned cp, lo;
        switch (e) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u':
            if (!fuzz_json_hex4(j, &cp))
                return false;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fuzz_json_err(j, "lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u')
                    return fuzz_json_err(j, "high surrogate without a low one");
                j->i += 2;
                if (!fuzz_json_hex4(j, &lo))
                    return false;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fuzz_json_err(j, "high surrogate without a low one");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            fuzz_json_put_cp(j, cp);
            continue;
        default: return fuzz_json_err(j, "unknown escape");
        }
        fuzz_json_put(j, &lit, 1);
    }
}

static bool fuzz_json_digits(fuzz_json *j)
{
    size_t start = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
        j->i++;
    return j->i > start ? true : fuzz_json_err(j, "expected a digit");
}

static bool fuzz_json_number(fuzz_json *j)
{
    if (j->i < j->n && j->s[j->i] == '-')
        j->i++;
    if (j->i < j->n && j->s[j->i] == '0')
        j->i++;
    else if (!fuzz_json_digits(j))
        return false;
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        if (!fuzz_json_digits(j))
            return false;
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
            j->i++;
        if (!fuzz_json_digits(j))
            return false;
    }
    return true;
}

static bool fuzz_json_value(fuzz_json *j, int depth);

/* An object (keys) or an array, opening bracket at j->i. */
static bool fuzz_json_container(fuzz_json *j, int depth, bool object)
{
    unsigned char close = object ? '}' : ']';
    if (depth > 64)
        return fuzz_json_err(j, "nested deeper than 64");
    j->i++;
    fuzz_json_ws(j);
    if (j->i < j->n && j->s[j->i] == close) {
        j->i++;
        return true;
    }
    for (;;) {
        fuzz_json_ws(j);
        if (object) {
            if (!fuzz_json_string(j))
                return false;
            fuzz_json_ws(j);
            if (j->i >= j->n || j->s[j->i] != ':')
                return fuzz_json_err(j, "expected ':'");
            j->i++;
        }
        if (!fuzz_json_value(j, depth + 1))
            return false;
        fuzz_json_ws(j);
        if (j->i < j->n && j->s[j->i] == close) {
            j->i++;
            return true;
        }
        if (j->i >= j->n || j->s[j->i] != ',')
            return fuzz_json_err(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
        j->i++;
    }
}

static bool fuzz_json_literal(fuzz_json *j, const char *word)
{
    size_t len = strlen(word);
    if (j->n - j->i < len || memcmp(j->s + j->i, word, len) != 0)
        return fuzz_json_err(j, "bad literal");
    j->i += len;
    return true;
}

static bool fuzz_json_value(fuzz_json *j, int depth)
{
    fuzz_json_ws(j);
    if (j->i >= j->n)
        return fuzz_json_err(j, "expected a value");
    switch (j->s[j->i]) {
    case '{': return fuzz_json_container(j, depth, true);
    case '[': return fuzz_json_container(j, depth, false);
    case '"': return fuzz_json_string(j);
    case 't': return fuzz_json_literal(j, "true");
    case 'f': return fuzz_json_literal(j, "false");
    case 'n': return fuzz_json_literal(j, "null");
    default: return fuzz_json_number(j);
    }
}

bool fuzz_json_valid(const char *s, size_t n, const char **why, size_t *at)
{
    fuzz_json j = {(const unsigned char *)s, n, 0, NULL, NULL, 0};
    bool ok = fuzz_json_value(&j, 0);
    if (ok) {
        fuzz_json_ws(&j);
        if (j.i != n)
            ok = fuzz_json_err(&j, "text after the value");
    }
    if (why != NULL)
        *why = j.why;
    if (at != NULL)
        *at = j.i;
    return ok;
}

bool fuzz_json_string_decode(const char *s, size_t n, char *out, size_t *outlen)
{
    fuzz_json j = {(const unsigned char *)s, n, 0, NULL, out, 0};
    bool ok = fuzz_json_string(&j) && j.i == n;
    *outlen = j.outlen;
    return ok;
}
