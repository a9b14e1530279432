/* fuzz_json_str.c: buf_json_str (agent/buf.h).
 *
 * The first input byte picks a prefix already in the buffer (0 to 255
 * bytes, so appends start at many fill levels); the rest is the string,
 * NUL and invalid UTF-8 included. Checks: the prefix is untouched; what was
 * appended is exactly one JSON string token, valid UTF-8, without raw
 * control characters; the buffer stays NUL-terminated;
 * decoding the token gives back the input when the input is valid UTF-8,
 * and otherwise valid UTF-8 in which only invalid bytes became U+FFFD: the
 * decoded text with every U+FFFD removed equals the input with its invalid
 * sequences and its own U+FFFD removed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"

static const char fffd[] = "\xef\xbf\xbd";

/* Copies s[0..n) to out without any U+FFFD and (when drop_invalid) without
 * bytes that do not start a valid UTF-8 sequence. Returns the length. */
static size_t fuzz_strip(const char *s, size_t n, bool drop_invalid, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 3 && memcmp(s + i, fffd, 3) == 0) {
            i += 3;
            continue;
        }
        /* the length of a valid sequence at i, by asking the validator */
        size_t len = 0;
        for (size_t k = 1; k <= 4 && k <= n - i && len == 0; k++)
            if (fuzz_utf8_valid(s + i, k))
                len = k;
        if (len == 0) {
            if (!drop_invalid)
                out[o++] = s[i];
            i++;
            continue;
        }
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ha_buf b = HA_BUF_INIT;
    char prefix[256], detail[160];
    size_t plen = 0, at = 0;
    const char *why = NULL;

    if (size > 0) {
        plen = data[0];
        data++;
        size--;
    }
    memset(prefix, 'p', plen);
    buf_add(&b, prefix, plen);
    buf_json_str(&b, (const char *)data, size);

    FUZZ_CHECK(b.len >= plen + 2 && b.data != NULL, "buffer too short");
    if (b.len < plen + 2 || b.data == NULL) {
        buf_free(&b);
        return 0;
    }
    FUZZ_CHECK(b.data[b.len] == '\0', "not NUL-terminated");
    FUZZ_CHECK(plen == 0 || memcmp(b.data, prefix, plen) == 0, "prefix changed");

    const char *tok = b.data + plen;
    size_t toklen = b.len - plen;
    bool valid = fuzz_json_valid(tok, toklen, &why, &at);
    snprintf(detail, sizeof detail, "%s at byte %zu of %zu", why ? why : "?", at, toklen);
    FUZZ_CHECK(valid && tok[0] == '"', detail);
    FUZZ_CHECK(fuzz_utf8_valid(tok, toklen), "output is not valid UTF-8");
    for (size_t i = 0; i < toklen; i++)
        FUZZ_CHECK((unsigned char)tok[i] >= 0x20, "raw control character in the output");

    char *dec = malloc(toklen + 1);
    char *want = malloc(size * 3 + 1);
    char *got = malloc(toklen + 1);
    size_t declen = 0;
    if (dec == NULL || want == NULL || got == NULL)
        abort();
    FUZZ_CHECK(fuzz_json_string_decode(tok, toklen, dec, &declen), "token does not decode");
    if (fuzz_utf8_valid(data, size)) {
        FUZZ_CHECK(declen == size && (size == 0 || memcmp(dec, data, size) == 0),
                   "valid UTF-8 did not survive unchanged");
    } else {
        size_t wlen = fuzz_strip((const char *)data, size, true, want);
        size_t glen = fuzz_strip(dec, declen, false, got);
        FUZZ_CHECK(wlen == glen && (wlen == 0 || memcmp(want, got, wlen) == 0),
                   "more than the invalid bytes changed");
        FUZZ_CHECK(declen <= size * 3, "more than one U+FFFD per invalid byte");
    }
    free(dec);
    free(want);
    free(got);
    buf_free(&b);
    return 0;
}
