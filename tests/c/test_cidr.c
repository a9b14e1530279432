/* test_cidr.c: parsing and matching of networks (cidr.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "cidr.h"

#include "testlib.h"

/* Parses s (which must succeed) and returns the network rendered back as
 * "addr/prefix". */
static const char *norm(const char *s)
{
    static char out[INET6_ADDRSTRLEN + 8];
    char a[INET6_ADDRSTRLEN];
    ha_cidr c;
    if (cidr_parse(s, &c) != 0)
        return "(rejected)";
    inet_ntop(c.family, c.addr, a, sizeof a);
    snprintf(out, sizeof out, "%s/%d", a, c.prefix);
    return out;
}

#define CHECK_NORM(in, want)                                                                  \
    do {                                                                                      \
        const char *g_ = norm(in);                                                            \
        if (strcmp(g_, want) == 0) {                                                          \
            passed++;                                                                         \
        } else {                                                                              \
            failed++;                                                                         \
            fprintf(stderr, "%s:%d: cidr '%s' -> %s, want %s\n", __FILE__, __LINE__, in, g_, \
                    want);                                                                    \
        }                                                                                     \
    } while (0)

static void bad(const char *s)
{
    ha_cidr c;
    memset(&c, 0xab, sizeof c);
    int rc = cidr_parse(s, &c);
    if (rc == -1 && c.prefix == (int)0xabababab) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "cidr '%s' was accepted\n", s);
    }
}

static ha_cidr_list list_of(const char *const *nets, int n)
{
    ha_cidr_list l;
    memset(&l, 0, sizeof l);
    for (int i = 0; i < n; i++)
        CHECK(cidr_parse(nets[i], &l.nets[l.n++]) == 0);
    return l;
}

static bool match4(const ha_cidr_list *l, const char *ip)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(1234);
    CHECK(inet_pton(AF_INET, ip, &sin.sin_addr) == 1);
    return cidr_match(l, (struct sockaddr *)&sin);
}

static bool match6(const ha_cidr_list *l, const char *ip)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(1234);
    CHECK(inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1);
    return cidr_match(l, (struct sockaddr *)&sin6);
}

static void test_parse(void)
{
    ha_cidr c;
    CHECK(cidr_parse("10.0.0.0/8", &c) == 0);
    CHECK(c.family == AF_INET && c.prefix == 8);
    CHECK(c.addr[0] == 10 && c.addr[1] == 0 && c.addr[2] == 0 && c.addr[3] == 0);
    CHECK(cidr_parse("::1", &c) == 0);
    CHECK(c.family == AF_INET6 && c.prefix == 128 && c.addr[15] == 1);

    CHECK_NORM("10.1.2.3/8", "10.0.0.0/8");
    CHECK_NORM("127.0.0.1", "127.0.0.1/32");
    CHECK_NORM("192.168.1.255/23", "192.168.0.0/23");
    CHECK_NORM("10.255.255.255/9", "10.128.0.0/9");
    CHECK_NORM("1.2.3.4/0", "0.0.0.0/0");
    CHECK_NORM("1.2.3.4/32", "1.2.3.4/32");
    CHECK_NORM("::1", "::1/128");
    CHECK_NORM("::/0", "::/0");
    CHECK_NORM("fe80::1234/10", "fe80::/10");
    CHECK_NORM("2001:db8:ffff::1/33", "2001:db8:8000::/33");
    CHECK_NORM("::ffff:10.1.2.3/104", "::ffff:10.0.0.0/104");

    bad("");
    bad("/8");
    bad("10.0.0.0/");
    bad("10.0.0.0/33");
    bad("::/129");
    bad("10.0.0.0/-1");
    bad("10.0.0.0/+8");
    bad("10.0.0.0/8x");
    bad("10.0.0.0/ 8");
    bad("10.0.0.0/0008");
    bad("10.0.0.0/8/8");
    bad("10.0.0");
    bad("1.2.3.4.5");
    bad("256.0.0.1");
    bad(" 10.0.0.0/8");
    bad("abc");
    bad("localhost");
    bad("fe80::1%eth0");
    bad("1:2:3:4:5:6:7:8:9");
    bad("0123456789012345678901234567890123456789012345678901234567890/8");
}

static void test_match(void)
{
    static const char *const defaults[] = {"127.0.0.0/8", "::1/128"};
    ha_cidr_list l = list_of(defaults, 2);

    CHECK(match4(&l, "127.0.0.1"));
    CHECK(match4(&l, "127.255.0.9"));
    CHECK(!match4(&l, "128.0.0.1"));
    CHECK(!match4(&l, "10.0.0.1"));
    CHECK(match6(&l, "::1"));
    CHECK(!match6(&l, "::2"));
    CHECK(!match6(&l, "fe80::1"));
    CHECK(match6(&l, "::ffff:127.0.0.1"));   /* v4-mapped */
    CHECK(!match6(&l, "::ffff:10.0.0.1"));
    CHECK(!match6(&l, "::127.0.0.1"));       /* v4-compatible is not v4-mapped */
    CHECK(!match6(&l, "64:ff9b::7f00:1"));   /* NAT64 neither */

    static const char *const mixed[] = {"10.128.0.0/9", "2001:db8::/32"};
    l = list_of(mixed, 2);
    CHECK(match4(&l, "10.200.1.1"));
    CHECK(!match4(&l, "10.127.255.255"));
    CHECK(match6(&l, "::ffff:10.128.0.0"));
    CHECK(match6(&l, "2001:db8:1::5"));
    CHECK(!match6(&l, "2001:db9::5"));

    static const char *const everything4[] = {"0.0.0.0/0"};
    l = list_of(everything4, 1);
    CHECK(match4(&l, "8.8.8.8"));
    CHECK(match6(&l, "::ffff:8.8.8.8"));
    CHECK(!match6(&l, "2001:db8::1"));

    static const char *const everything6[] = {"::/0"};
    l = list_of(everything6, 1);
    CHECK(match6(&l, "2001:db8::1"));
    CHECK(!match4(&l, "8.8.8.8")); /* an IPv4 socket address is not an IPv6 one */

    static const char *const mapped_net[] = {"::ffff:0:0/96"};
    l = list_of(mapped_net, 1);
    CHECK(match6(&l, "::ffff:1.2.3.4"));
    CHECK(!match6(&l, "::1"));

    ha_cidr_list empty;
    memset(&empty, 0, sizeof empty);
    CHECK(!match4(&empty, "127.0.0.1"));
    CHECK(!match6(&empty, "::1"));

    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    l = list_of(everything4, 1);
    CHECK(!cidr_match(&l, (struct sockaddr *)&sun));
    CHECK(!cidr_match(&l, NULL));
    CHECK(!cidr_match(NULL, NULL));
}

int main(void)
{
    test_parse();
    test_match();
    return testlib_report();
}
