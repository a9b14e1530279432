/* cidr.c: parsing and matching of IPv4/IPv6 networks (see cidr.h). */
#include "cidr.h"
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* The ::ffff:0:0/96 prefix of v4-mapped IPv6 addresses. */
static const uint8_t cidr_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Clears every bit of addr after the first prefix bits. */
static void cidr_mask(uint8_t *addr, int prefix, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        int keep = prefix - i * 8;
        if (keep >= 8)
            continue;
        addr[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

/* Parses "addr" or "addr/prefix". The prefix is 1 to 3 decimal digits, at
 * most 32 (IPv4) or 128 (IPv6); without one the network is a single host.
 * Host bits are cleared. Returns 0 and fills *out, or -1 (out untouched). */
int cidr_parse(const char *s, ha_cidr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    ha_cidr c;
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    int prefix = -1;

    if (hlen == 0 || hlen >= sizeof host)
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (slash) {
        const char *p = slash + 1;
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 3 || p[n] != '\0')
            return -1;
        prefix = 0;
        for (size_t i = 0; i < n; i++)
            prefix = prefix * 10 + (p[i] - '0');
    }
    memset(&c, 0, sizeof c);
    if (ha_inet_pton(AF_INET, host, c.addr) == 1) {
        c.family = AF_INET;
        c.prefix = prefix < 0 ? 32 : prefix;
        if (c.prefix > 32)
            return -1;
        cidr_mask(c.addr, c.prefix, 4);
    } else if (ha_inet_pton(AF_INET6, host, c.addr) == 1) {
        c.family = AF_INET6;
        c.prefix = prefix < 0 ? 128 : prefix;
        if (c.prefix > 128)
            return -1;
        cidr_mask(c.addr, c.prefix, 16);
    } else {
        return -1;
    }
    *out = c;
    return 0;
}

/* True when the first prefix bits of addr equal those of net. */
static bool cidr_in(const uint8_t *net, int prefix, const uint8_t *addr)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(net, addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    return (net[full] & m) == (addr[full] & m);
}

/* An IPv4 client matches IPv4 networks; an IPv6 client matches IPv6
 * networks and, when v4-mapped, the IPv4 networks of its embedded address.
 * NULL or another family matches nothing. */
bool cidr_match(const ha_cidr_list *l, const struct sockaddr *sa)
{
    uint8_t v4[4], v6[16];
    bool has4 = false, has6 = false;

    if (l == NULL || sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        memcpy(v4, &sin->sin_addr, 4);
        has4 = true;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(v6, &sin6->sin6_addr, 16);
        has6 = true;
        if (memcmp(v6, cidr_v4mapped, sizeof cidr_v4mapped) == 0) {
            memcpy(v4, v6 + 12, 4);
            has4 = true;
        }
    } else {
        return false;
    }
    for (int i = 0; i < l->n; i++) {
        const ha_cidr *c = &l->nets[i];
        if (c->family == AF_INET && has4 && cidr_in(c->addr, c->prefix, v4))
            return true;
        if (c->family == AF_INET6 && has6 && cidr_in(c->addr, c->prefix, v6))
            return true;
    }
    return false;
}
