/* api_dns.h: name resolution on the engine loop, the one resolver of every
 * module that connects: health.dns (api_dns.c), health.tcp (api_tcp.c),
 * health.http and health.grpc (api_http.c: each request and each redirect
 * it follows is resolved here, then pinned for libcurl, which never
 * resolves itself) and the database clients (api_conn.c).
 *
 * A request runs uv_getaddrinfo on libuv's thread pool. One that is already
 * running cannot be stopped: cancelling only asks, and done runs exactly
 * once after every successful start. Failures read as api_fail_resolve
 * writes them ("cannot resolve host 'x'[: reason]"). A numeric host goes
 * through the pool like a name: health.tcp and health.http skip the
 * resolver for one, the database clients do not. Engine thread. */
#ifndef HA_API_DNS_H
#define HA_API_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct addrinfo;

typedef struct api_dns_req api_dns_req;
/* Called once a started request ends: status 0 with the results in res
 * (the callee owns them: uv_freeaddrinfo), or a negative libuv code
 * (UV_EAI_*; UV_EAI_CANCELED after api_dns_cancel) with res NULL. */
typedef void (*api_dns_cb)(api_dns_req *r, int status, struct addrinfo *res);

struct api_dns_req {
    uv_getaddrinfo_t req;     /* req.data is free for the owner */
    api_dns_cb done;
    bool busy;                /* between a successful start and done */
    char host[256];           /* the name being resolved, for the failure message */
};

/* Starts resolving host for a TCP connection: family AF_UNSPEC, AF_INET or
 * AF_INET6; port > 0 puts that port into the addresses (a numeric service),
 * 0 leaves it 0. Returns 0 (done runs later, from the loop, even for a
 * numeric host) or a negative libuv error (done is not called). */
int api_dns_start(uv_loop_t *loop, api_dns_req *r, const char *host, int family, int port, api_dns_cb done);

/* Asks a busy request to stop; done still runs once (UV_EAI_CANCELED when the
 * request had not started, else with its result). No-op when not busy. */
void api_dns_cancel(api_dns_req *r);

/* The failure message of r for status (a libuv code; 0: the name has no
 * usable address) into buf: api_fail_resolve of r->host. */
void api_dns_message(const api_dns_req *r, int status, char *buf, size_t len);

/* The numeric form of the address a (IPv4 or IPv6) into ip. Returns 0,
 * UV_EAI_FAMILY for another family (ip is ""), or the error of formatting
 * it. */
int api_dns_ip_text(const struct addrinfo *a, char *ip, size_t len);

/* The numeric form of the first IPv4 address of res, else of its first
 * IPv6 one, into ip. Returns 0, UV_EAI_NONAME when res has neither, or the
 * error of formatting it. */
int api_dns_first_ip(const struct addrinfo *res, char *ip, size_t len);

/* What health.testing (runner mode) sees of the calling thread's lookups:
 * they are the evidence that a module resolved through here. */
typedef struct {
    uint64_t started;         /* successful api_dns_start calls */
    uint64_t cancelled;       /* of those, ended UV_EAI_CANCELED */
    int in_flight;            /* started, done not yet run */
} api_dns_stats;

void api_dns_stats_get(api_dns_stats *s);

#define API_DNS_TEST_HOSTS 8  /* test host entries at most */

/* For health.testing only: from now on this thread's lookups of name
 * (case-insensitive) resolve addr (a numeric address) instead, through the
 * pool as always; failure messages still name name. A name only this
 * resolver knows proves that a module resolved through it. name NULL
 * removes every entry. Returns 0, UV_EINVAL (bad name or address) or
 * UV_ENOSPC (API_DNS_TEST_HOSTS entries already). */
int api_dns_test_host(const char *name, const char *addr);

#endif
