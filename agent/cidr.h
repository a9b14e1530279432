/* cidr.h: lists of IPv4/IPv6 networks, for the trusted-clients policy. */
#ifndef HA_CIDR_H
#define HA_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define HA_MAX_CIDR 32

typedef struct {
    int family;          /* AF_INET or AF_INET6 */
    uint8_t addr[16];    /* network address, host bits cleared */
    int prefix;          /* prefix length in bits */
} ha_cidr;

typedef struct {
    ha_cidr nets[HA_MAX_CIDR];
    int n;
} ha_cidr_list;

/* Parses "10.0.0.0/8", "::1", "127.0.0.1/32". Returns 0 or -1. */
int cidr_parse(const char *s, ha_cidr *out);
/* True when sa (AF_INET, AF_INET6 or v4-mapped v6) is inside any network. */
bool cidr_match(const ha_cidr_list *l, const struct sockaddr *sa);

#endif
