/* snapshot.c: freeing and searching published snapshots (see snapshot.h). */
#include "snapshot.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const uint32_t snapshot_bucket_us[HA_NBUCKETS] = {
    1000, 2500, 10000, 25000, 100000, 250000, 1000000, 2500000, 10000000,
};

const ha_hist *snapshot_hist_retain(const ha_hist *h)
{
    if (h)
        atomic_fetch_add_explicit(&((ha_hist *)h)->refs, 1, memory_order_relaxed);
    return h;
}

void snapshot_hist_release(const ha_hist *h)
{
    if (h && atomic_fetch_sub_explicit(&((ha_hist *)h)->refs, 1, memory_order_acq_rel) == 1)
        free((void *)h);
}

uint64_t snapshot_name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h ? h : 1;
}

#define SNAP_CHUNK 16384 /* bytes of strings a chunk holds: 1,000 short checks take two */

struct ha_snap_chunk {
    struct ha_snap_chunk *next;
    size_t used, cap;
    char data[];
};

char *snapshot_strdup(ha_snapshot *s, const char *str)
{
    if (str == NULL)
        return NULL;
    size_t n = strlen(str) + 1;
    struct ha_snap_chunk *c = s->strings;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > SNAP_CHUNK ? n : SNAP_CHUNK;
        struct ha_snap_chunk *nc = malloc(sizeof *nc + cap);
        if (nc == NULL)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        if (c != NULL && n > SNAP_CHUNK) { /* a long one alone, behind the chunk being filled */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            s->strings = nc;
        }
        c = nc;
    }
    char *p = c->data + c->used;
    memcpy(p, str, n);
    c->used += n;
    return p;
}

void snapshot_free(ha_snapshot *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->strings == NULL) {
            free(s->checks[i].name);
            free(s->checks[i].output);
            free(s->checks[i].details_json);
        }
        free(s->checks[i].deps);
        snapshot_hist_release(s->checks[i].hist);
    }
    free(s->checks);
    for (size_t i = 0; i < s->ngroups; i++) {
        free(s->groups[i].name);
        free(s->groups[i].members);
        free(s->groups[i].lua_output);
        free(s->groups[i].path);
    }
    free(s->groups);
    free(s->load_error);
    free(s->info_json);
    free(s->override_reason);
    while (s->strings) {
        struct ha_snap_chunk *c = s->strings;
        s->strings = c->next;
        free(c);
    }
    free(s);
}

/* Orders name[0..len) against a NUL-terminated check name: bytes first,
 * then the shorter one first (the order the engine sorts by). */
static int snapshot_cmp(const char *name, size_t len, const char *other)
{
    size_t olen = strlen(other);
    int c = memcmp(name, other, len < olen ? len : olen);
    if (c != 0)
        return c;
    return len < olen ? -1 : len > olen ? 1 : 0;
}

/* Binary search for name[0..len) over n records of `size` bytes from base,
 * each holding its NUL-terminated name (a char *) at byte `at`, sorted by
 * snapshot_cmp's order. Returns the index or -1. */
static int snapshot_bsearch(const void *base, size_t n, size_t size, size_t at, const char *name, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *other = *(const char *const *)((const char *)base + mid * size + at);
        int c = snapshot_cmp(name, len, other);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

int snapshot_find(const ha_snapshot *s, const char *name, size_t len)
{
    if (s == NULL || name == NULL)
        return -1;
    return snapshot_bsearch(s->checks, s->n, sizeof *s->checks, offsetof(ha_snap_check, name), name, len);
}

int snapshot_find_group(const ha_snapshot *s, const char *name, size_t len)
{
    if (s == NULL || name == NULL)
        return -1;
    return snapshot_bsearch(s->groups, s->ngroups, sizeof *s->groups, offsetof(ha_snap_group, name), name, len);
}

bool snapshot_group_has(const ha_snap_group *g, uint32_t i)
{
    size_t lo = 0, hi = g->nmembers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->members[mid] == i)
            return true;
        if (g->members[mid] < i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}
