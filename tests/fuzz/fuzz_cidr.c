/* fuzz_cidr.c: cidr_parse and cidr_match (agent/cidr.h).
 *
 * The input is split into lines. A line starting with '?' is a client
 * address: text for inet_pton ("?10.0.0.1", "?::ffff:1.2.3.4"), or when it
 * is not an address, raw bytes: the first picks the family (AF_INET,
 * AF_INET6 or AF_UNIX), the rest fill the address. Every other line is a
 * network for cidr_parse; the accepted ones (at most HA_MAX_CIDR) form the
 * list. Checks: a refused network leaves the output alone; an accepted one
 * has a sane family and prefix, no host bits, and re-parses from its
 * canonical text to the same value; cidr_match agrees for every client with
 * a bit-by-bit oracle that also covers v4-mapped IPv6 clients, and a NULL
 * list or address matches nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "cidr.h"
#include "fuzz.h"

#define MAX_CLIENTS 16

/* Bit i (0 = most significant of byte 0) of a. */
static int fuzz_bit(const uint8_t *a, int i) { return a[i / 8] >> (7 - i % 8) & 1; }

/* Oracle: true when the first prefix bits of net and addr agree. */
static bool fuzz_net_has(const ha_cidr *c, const uint8_t *addr)
{
    for (int i = 0; i < c->prefix; i++)
        if (fuzz_bit(c->addr, i) != fuzz_bit(addr, i))
            return false;
    return true;
}

/* Oracle for cidr_match over a sockaddr_storage. */
static bool fuzz_match(const ha_cidr_list *l, const struct sockaddr_storage *ss)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *v4 = NULL, *v6 = NULL;
    if (ss->ss_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else if (ss->ss_family == AF_INET6) {
        v6 = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (memcmp(v6, mapped, sizeof mapped) == 0)
            v4 = v6 + 12;
    }
    for (int i = 0; i < l->n; i++) {
        const ha_cidr *c = &l->nets[i];
        if ((c->family == AF_INET && v4 != NULL && fuzz_net_has(c, v4)) ||
            (c->family == AF_INET6 && v6 != NULL && fuzz_net_has(c, v6)))
            return true;
    }
    return false;
}

/* Parses one network line and checks what cidr_parse gives back. */
static void fuzz_network(const char *s, ha_cidr_list *l)
{
    ha_cidr c, again;
    char detail[160], text[INET6_ADDRSTRLEN + 8], host[INET6_ADDRSTRLEN];

    memset(&c, 0xa5, sizeof c);
    memcpy(&again, &c, sizeof c);
    snprintf(detail, sizeof detail, "network '%.100s'", s);
    if (cidr_parse(s, &c) < 0) {
        FUZZ_CHECK(memcmp(&c, &again, sizeof c) == 0, detail);
        return;
    }
    FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6, detail);
    int bits = c.family == AF_INET ? 32 : 128;
    FUZZ_CHECK(c.prefix >= 0 && c.prefix <= bits, detail);
    if (c.prefix < 0 || c.prefix > bits)
        return;
    for (int i = c.prefix; i < 128; i++)
        FUZZ_CHECK(fuzz_bit(c.addr, i) == 0, detail);
    /* the canonical text names the same network */
    FUZZ_CHECK(inet_ntop(c.family, c.addr, host, sizeof host) != NULL, detail);
    snprintf(text, sizeof text, "%s/%d", host, c.prefix);
    FUZZ_CHECK(cidr_parse(text, &again) == 0 && memcmp(&again, &c, sizeof c) == 0, detail);
    if (l->n < HA_MAX_CIDR)
        l->nets[l->n++] = c;
}

/* Builds a client address from a '?' line (without the '?'). */
static void fuzz_client(const char *line, size_t len, struct sockaddr_storage *ss)
{
    char text[64];
    memset(ss, 0, sizeof *ss);
    if (len < sizeof text) {
        memcpy(text, line, len);
        text[len] = '\0';
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            return;
        }
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            return;
        }
    }
    static const int families[] = {AF_INET, AF_INET6, AF_UNIX};
    int family = len > 0 ? families[(unsigned char)line[0] % 3] : AF_INET;
    uint8_t *addr = family == AF_INET    ? (uint8_t *)&((struct sockaddr_in *)ss)->sin_addr
                    : family == AF_INET6 ? (uint8_t *)&((struct sockaddr_in6 *)ss)->sin6_addr
                                         : (uint8_t *)((struct sockaddr_un *)ss)->sun_path;
    size_t room = family == AF_INET ? 4 : 16;
    if (len > 0)
        memcpy(addr, line + 1, len - 1 < room ? len - 1 : room);
    ss->ss_family = (sa_family_t)family;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ha_cidr_list l;
    struct sockaddr_storage clients[MAX_CLIENTS];
    int nclients = 0;
    char *copy = malloc(size + 1);

    if (copy == NULL)
        abort();
    memset(&l, 0, sizeof l);
    if (size > 0)
        memcpy(copy, data, size);
    copy[size] = '\0';
    for (size_t start = 0; start <= size;) {
        char *nl = memchr(copy + start, '\n', size - start);
        size_t len = nl ? (size_t)(nl - (copy + start)) : size - start;
        copy[start + len] = '\0';
        if (copy[start] == '?') {
            if (nclients < MAX_CLIENTS)
                fuzz_client(copy + start + 1, len - 1, &clients[nclients++]);
        } else {
            fuzz_network(copy + start, &l);
        }
        start += len + 1;
    }
    for (int i = 0; i < nclients; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&clients[i];
        char detail[64];
        snprintf(detail, sizeof detail, "client %d of %d, %d networks", i, nclients, l.n);
        FUZZ_CHECK(cidr_match(&l, sa) == fuzz_match(&l, &clients[i]), detail);
        FUZZ_CHECK(!cidr_match(NULL, sa), detail);
    }
    FUZZ_CHECK(!cidr_match(&l, NULL), NULL);
    free(copy);
    return 0;
}
