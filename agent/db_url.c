/* db_url.c: the database clients' URLs and secrets: parsing
 * "scheme://user:password@host:port/db", and keeping passwords out of every
 * message (see db_url.h). */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "db_url.h"

/* --- parsing ------------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A malloc'd, percent-decoded copy of s[0..n). NULL on a bad escape, an
 * embedded NUL or memory exhaustion. */
static char *decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi | lo) == 0) { /* malformed, or %00 */
            free(out);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

void db_url_free(db_url *u)
{
    free(u->scheme);
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->db);
    memset(u, 0, sizeof *u);
}

int db_url_parse(const char *url, db_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    const char *p = strstr(url, "://");
    const char *why = "expected scheme://[user[:password]@]host[:port][/db]";
    if (p == NULL || p == url)
        goto fail;
    u->scheme = strndup(url, (size_t)(p - url));
    if (u->scheme == NULL) {
        why = "not enough memory";
        goto fail;
    }
    for (char *c = u->scheme; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    p += 3;
    /* authority ends at the first '/', '?' or '#' */
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *c = p; c < end; c++)
        if (*c == '@')
            at = c; /* the last '@': passwords may contain '@' unescaped */
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (ulen > 0 && (u->user = decode(p, ulen)) == NULL) {
            why = "bad user name in URL";
            goto fail;
        }
        if (colon && (u->password = decode(colon + 1, (size_t)(at - colon - 1))) == NULL) {
            why = "bad password escape in URL";
            goto fail;
        }
        p = at + 1;
    }
    const char *hend;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL) {
            why = "unterminated [IPv6] host in URL";
            goto fail;
        }
        u->host = strndup(p + 1, (size_t)(rb - p - 1));
        hend = rb + 1;
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (hend == NULL)
            hend = end;
        u->host = decode(p, (size_t)(hend - p));
    }
    if (u->host == NULL) {
        why = "bad host in URL";
        goto fail;
    }
    if (u->host[0] == '\0') {
        why = "no host in URL";
        goto fail;
    }
    if (hend < end) {
        if (*hend != ':' || hend + 1 == end) {
            why = "bad port in URL";
            goto fail;
        }
        long port = 0;
        for (const char *c = hend + 1; c < end; c++) {
            if (!isdigit((unsigned char)*c) || (port = port * 10 + (*c - '0')) > 65535) {
                why = "bad port in URL";
                goto fail;
            }
        }
        if (port == 0) {
            why = "bad port in URL";
            goto fail;
        }
        u->port = (int)port;
    }
    if (*end == '/' && end[1] && end[1] != '?' && end[1] != '#') {
        size_t n = strcspn(end + 1, "?#");
        if ((u->db = decode(end + 1, n)) == NULL) {
            why = "bad database name in URL";
            goto fail;
        }
    }
    return 0;
fail:
    snprintf(err, errlen, "%s", why);
    db_url_free(u);
    return -1;
}

/* --- redaction ---------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (ns == NULL) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Length of a "scheme://" prefix starting at s (letters, digits, + - .),
 * or 0. */
static size_t scheme_len(const char *s)
{
    size_t n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '+' || s[n] == '-' || s[n] == '.')
        n++;
    return n > 0 && strncmp(s + n, "://", 3) == 0 ? n + 3 : 0;
}

/* Finds the userinfo password in the URL authority a[0..alen): *at is the
 * last '@' (NULL when none), the return value the first ':' before it
 * (NULL when there is no password part). */
static const char *userinfo_colon(const char *a, size_t alen, const char **at)
{
    *at = NULL;
    for (size_t k = 0; k < alen; k++)
        if (a[k] == '@')
            *at = a + k;
    return *at ? memchr(a, ':', (size_t)(*at - a)) : NULL;
}

/* One pass: URL userinfo passwords and conninfo password= values. */
static void redact_forms(sbuf *b, const char *t)
{
    size_t i = 0, n = strlen(t);
    while (i < n) {
        size_t sl = (i == 0 || !isalnum((unsigned char)t[i - 1])) ? scheme_len(t + i) : 0;
        if (sl) {
            /* authority: up to the first space, quote, '/', '?' or '#' */
            const char *a = t + i + sl;
            size_t alen = strcspn(a, " \t\r\n\"'/?#");
            const char *at;
            const char *colon = userinfo_colon(a, alen, &at);
            if (colon) {
                put(b, t + i, sl + (size_t)(colon - a) + 1);
                put(b, "***", 3);
                i = (size_t)(at - t);
            } else {
                put(b, t + i, sl);
                i += sl;
            }
            continue;
        }
        if (strncasecmp(t + i, "password", 8) == 0 && (i == 0 || !isalnum((unsigned char)t[i - 1]))) {
            size_t k = i + 8;
            while (t[k] == ' ')
                k++;
            if (t[k] == '=') {
                k++;
                while (t[k] == ' ')
                    k++;
                put(b, t + i, k - i);
                put(b, "***", 3);
                if (t[k] == '\'' || t[k] == '"') {
                    char q = t[k++];
                    while (t[k] && t[k] != q) {
                        if (t[k] == '\\' && t[k + 1])
                            k++;
                        k++;
                    }
                    if (t[k])
                        k++;
                } else {
                    while (t[k] && !isspace((unsigned char)t[k]) && t[k] != '&' && t[k] != ';')
                        k++;
                }
                i = k;
                continue;
            }
        }
        put(b, t + i, 1);
        i++;
    }
}

char *db_url_redact(const char *text, const char *secret)
{
    sbuf b = {0};
    put(&b, "", 0);
    redact_forms(&b, text ? text : "");
    if (!b.oom && secret && secret[0]) {
        sbuf c = {0};
        put(&c, "", 0);
        size_t sl = strlen(secret);
        const char *p = b.s, *hit;
        while ((hit = strstr(p, secret)) != NULL) {
            put(&c, p, (size_t)(hit - p));
            put(&c, "***", 3);
            p = hit + sl;
        }
        put(&c, p, strlen(p));
        free(b.s);
        b = c;
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

char *db_url_secret(const char *text)
{
    const char *p = strstr(text, "://");
    if (p) {
        p += 3;
        const char *at;
        const char *colon = userinfo_colon(p, strcspn(p, "/?#"), &at);
        if (colon && at > colon + 1)
            return strndup(colon + 1, (size_t)(at - colon - 1));
    }
    for (p = text; (p = strcasestr(p, "password")) != NULL; p += 8) {
        const char *v = p + 8;
        while (*v == ' ')
            v++;
        if (*v != '=')
            continue;
        v++;
        while (*v == ' ')
            v++;
        if (*v == '\'' || *v == '"') {
            const char *e = strchr(v + 1, *v);
            size_t n = e ? (size_t)(e - v - 1) : strlen(v + 1);
            return n ? strndup(v + 1, n) : NULL;
        }
        size_t n = strcspn(v, " \t\r\n&;");
        return n ? strndup(v, n) : NULL;
    }
    return NULL;
}

void db_url_message(char *out, size_t outlen, const char *msg, const char *secret)
{
    if (outlen == 0)
        return;
    char *r = db_url_redact(msg ? msg : "", secret);
    const char *s = r ? r : "error";
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strcspn(s, "\r\n");
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    free(r);
}
