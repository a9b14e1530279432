/* fuzz.h: what the fuzz targets share: the libFuzzer entry point, a contract
 * check that aborts under libFuzzer and counts under the replay driver, a
 * reader that carves typed values out of the fuzz bytes, and validators for
 * UTF-8 and JSON written independently of the agent's encoder. */
#ifndef HA_FUZZ_H
#define HA_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The libFuzzer entry point every target defines. Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Set by the replay driver: a failed FUZZ_CHECK is counted, not fatal. */
extern bool fuzz_replay;
/* Failed checks since the last fuzz_take_failures call (replay only). */
int fuzz_take_failures(void);

/* Reports a broken contract: prints where and what, then aborts under
 * libFuzzer (so the input is saved as a crash) or counts under replay. */
void fuzz_fail(const char *file, int line, const char *what, const char *detail);

#define FUZZ_CHECK(cond, detail)                               \
    do {                                                       \
        if (!(cond))                                           \
            fuzz_fail(__FILE__, __LINE__, #cond, (detail));    \
    } while (0)

/* ---- carving values out of the input ---- */

typedef struct {
    const uint8_t *p; /* next unread byte; not owned */
    size_t n;         /* bytes left; reads past the end yield zeros */
} fuzz_in;

uint8_t fuzz_u8(fuzz_in *in);
uint16_t fuzz_u16(fuzz_in *in);
uint32_t fuzz_u32(fuzz_in *in);
uint64_t fuzz_u64(fuzz_in *in);
/* A length byte (mod max + 1), then that many bytes (fewer at the end).
 * Returns a pointer into the input and stores the length. */
const uint8_t *fuzz_bytes(fuzz_in *in, size_t max, size_t *len);
/* As fuzz_bytes, copied into a malloc'd NUL-terminated string cut at the
 * first NUL byte. Never NULL (aborts on OOM). */
char *fuzz_cstr(fuzz_in *in, size_t max);

/* ---- validators ---- */

/* True when s[0..n) is valid UTF-8: shortest forms, no surrogates, at most
 * U+10FFFF. */
bool fuzz_utf8_valid(const void *s, size_t n);

/* True when s[0..n) is exactly one JSON value (RFC 8259) with optional
 * whitespace around it, strings valid UTF-8 and \u surrogates paired,
 * nested at most 64 deep. On false, *why says what was wrong and *at where. */
bool fuzz_json_valid(const char *s, size_t n, const char **why, size_t *at);

/* Decodes the JSON string token that is all of s[0..n) into out (room for n
 * bytes), storing its byte length. Returns false when it is not exactly one
 * valid JSON string. */
bool fuzz_json_string_decode(const char *s, size_t n, char *out, size_t *outlen);

#endif
