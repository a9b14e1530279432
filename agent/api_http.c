/* api_http.c: health.http, an HTTP(S) client that never blocks the engine
 * loop.
 *
 *   local http = require "health.http"
 *   local r, err = http.request{url = "https://svc/ready", timeout = 2}
 *   -- r = {status=, headers= (lower-case names), body=, time_ms=, http_version=,
 *   --      truncated=, redirects=}   or   nil, "timeout" | "connection refused" | ...
 *   http.get(url [, opts])
 *
 * libcurl's multi-socket API drives the transfers from libuv callbacks:
 * CURLMOPT_SOCKETFUNCTION maps each of curl's sockets to a uv_poll,
 * CURLMOPT_TIMERFUNCTION to one uv_timer, and both call
 * curl_multi_socket_action; curl_multi_info_read then completes the ops.
 *
 * One CURLM per loop (http_multi). It is found through a thread-local list
 * keyed by the uv_loop_t: a loop is only ever run by one thread, so the
 * list needs no lock, and the engine's structures stay untouched (the
 * loop's data field is not ours to take). The multi is created by the
 * first request and destroyed when its last transfer is gone: no handle
 * stays on the loop between requests, so the engine can prove its loop
 * empty at exit. Connections are never reused (CURLOPT_FORBID_REUSE): a
 * health check measures a fresh connection and leaves no socket behind.
 *
 * Name resolution is the agent's, never libcurl's: each request, and each
 * redirect it follows, first resolves the host it will connect to (the
 * URL's, or connect_to's target) with the shared resolver (api_dns.h) on the
 * loop, then pins the addresses with CURLOPT_RESOLVE; an IP literal needs no
 * lookup and a Unix socket no name at all. CURLOPT_RESOLVER_START_FUNCTION
 * refuses every lookup curl would start itself (its threaded resolver never
 * runs; should a pin ever miss, the request fails "cannot resolve host"
 * instead of resolving behind the loop's back). So that redirect targets are
 * resolved the same way, redirects are followed here, not by
 * CURLOPT_FOLLOWLOCATION: hop_redirect mirrors what libcurl 7.88's follow
 * does (method, body, credentials and headers per hop), and every hop
 * reuses the easy handle with its options.
 *
 * The ops follow engine_task.h: callbacks only record outcomes in C; push
 * builds the Lua values; close removes the easy handle from the multi
 * (curl then reports CURL_POLL_REMOVE for its sockets, which closes their
 * polls) and frees everything, but for an op whose lookup is still in
 * flight: that one is freed by the lookup's callback (api_dns.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/x509.h>

#include "api.h"
#include "api_dns.h"
#include "api_fail.h"
#include "api_opt.h"
#include "buf.h"
#include "common.h"
#include "engine.h"

#define HTTP_BODY_MAX (1024 * 1024)             /* default cap of the body kept */
#define HTTP_BODY_LIMIT (64 * 1024 * 1024)      /* largest max_body accepted */
#define HTTP_TIMEOUT_NS (30 * HA_NS_PER_S)      /* default per-request timeout */
#define HTTP_REDIRECTS 10                       /* default max_redirects with follow */
#define HTTP_HEADERS_MAX (256 * 1024)           /* response header bytes kept */
#define HTTP_PIN_ADDRS 16                       /* addresses pinned per hop at most */

typedef struct http_multi http_multi;

/* The CURLM of one loop and the libuv timer curl asks for. */
struct http_multi {
    uv_loop_t *loop;          /* key; not owned */
    CURLM *curlm;             /* owned; NULL once cleaned up */
    uv_timer_t timer;         /* curl's single timeout; freed with the struct */
    int transfers;            /* easy handles attached (ops not yet closed) */
    http_multi *next;         /* this thread's list */
};

/* One socket curl wants watched; assigned to it with curl_multi_assign. */
typedef struct {
    uv_poll_t poll;           /* freed in its close callback */
    curl_socket_t fd;         /* not owned: curl closes it */
    int events;               /* UV_READABLE | UV_WRITABLE curl asked for */
    http_multi *m;
} http_sock;

/* The request line a hop sends, as libcurl's state.httpreq tracks it. */
typedef enum {
    REQ_GET,                  /* GET, or a custom method without a body */
    REQ_POST,                 /* with the body (POST or a custom method) */
    REQ_HEAD,                 /* CURLOPT_NOBODY */
} http_req_kind;

/* One request: the pending op of its task. A hop is one transfer: the
 * request, or a redirect it follows. */
typedef struct {
    ha_op op;                 /* first: the task's pending slot points here */
    api_dns_req dns;          /* dns.req.data = this; busy while a hop's name resolves */
    http_multi *m;            /* the loop's multi; one transfer reference */
    CURL *easy;               /* owned; attached to m->curlm while attached */
    bool attached;            /* easy is in m->curlm */
    bool closed;              /* http_close ran while dns was busy: on_resolved frees */
    struct curl_slist *req_headers; /* owned; curl does not copy the list */
    struct curl_slist *cross_headers; /* owned: req_headers for another origin, or NULL */
    struct curl_slist *connect_to;  /* owned; "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT" */
    struct curl_slist *pin;   /* owned: the hop's CURLOPT_RESOLVE line, or NULL */
    bool unix_socket;         /* connects to a Unix socket: no name to resolve */
    char *secret;             /* owned: the URL's password, masked in messages */
    char *user;               /* owned: the URL's user name, or NULL */
    char *host;               /* owned: the hop URL's host, for messages */
    char *url;                /* owned: the hop's URL */
    /* the first hop's origin: credentials and sensitive headers stay with it */
    char *origin_host;        /* owned, lower-case comparison */
    int origin_port;
    bool origin_https;
    /* redirects */
    bool follow;
    bool redirecting;         /* the hop's response is a redirect to follow */
    long max_redirects;
    long redirects;           /* redirects followed */
    http_req_kind kind;
    ha_buf body;              /* response body, at most max_body bytes */
    ha_buf headers;           /* "name\0value\0" pairs, names lower-cased */
    size_t max_body;
    bool truncated;           /* body exceeded max_body: transfer stopped there */
    bool done;                /* finished; results below are valid */
    bool curl_resolves;       /* curl asked to resolve a name itself (refused) */
    char target[256];         /* the hop's connect host, without brackets */
    int target_port;          /* and its port */
    long status;              /* HTTP status code */
    long version;             /* CURL_HTTP_VERSION_* actually used */
    uint64_t t0;              /* uv_hrtime at the start */
    curl_off_t time_us;       /* total time: resolution, redirects, transfers */
    char err[256];            /* failure message, "" on success */
    char errbuf[CURL_ERROR_SIZE]; /* curl's detail for the last failure */
} http_op;

static _Thread_local http_multi *multis; /* this thread's loops; see the header */

/* --- the multi on the loop ---------------------------------------------- */

static void multi_collect(http_multi *m);

static void on_sock_closed(uv_handle_t *h) { free(h->data); }

static void on_poll(uv_poll_t *h, int status, int events)
{
    http_sock *s = h->data;
    http_multi *m = s->m;
    int flags = 0, running;
    if (status < 0) /* libuv stopped the poll: let curl do the I/O and see the error itself */
        events = s->events;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(m->curlm, s->fd, flags, &running);
    if (status < 0 && !uv_is_closing((uv_handle_t *)h)) /* curl still wants it watched */
        uv_poll_start(h, s->events, on_poll);
    multi_collect(m);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching fd. Returns -1 on
 * failure, which makes curl fail the transfer. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    http_multi *m = userp;
    http_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(m->curlm, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->fd = fd;
        s->m = m;
        curl_multi_assign(m->curlm, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    s->events = ev;
    return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *h)
{
    http_multi *m = h->data;
    int running;
    curl_multi_socket_action(m->curlm, CURL_SOCKET_TIMEOUT, 0, &running);
    multi_collect(m);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, 0 means "as soon as possible"
 * (the next loop iteration: curl must not be re-entered from here). */
static int on_curl_timer(CURLM *curlm, long timeout_ms, void *userp)
{
    (void)curlm;
    http_multi *m = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&m->timer);
    else
        uv_timer_start(&m->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* The loop's multi, created on first use; takes a transfer reference.
 * Returns NULL on memory exhaustion. */
static http_multi *multi_get(uv_loop_t *loop)
{
    for (http_multi *m = multis; m; m = m->next)
        if (m->loop == loop) {
            m->transfers++;
            return m;
        }
    http_multi *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->curlm = curl_multi_init();
    if (m->curlm == NULL) {
        free(m);
        return NULL;
    }
    m->loop = loop;
    curl_multi_setopt(m->curlm, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(m->curlm, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->curlm, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(m->curlm, CURLMOPT_TIMERDATA, m);
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    m->transfers = 1;
    m->next = multis;
    multis = m;
    return m;
}

static void on_multi_closed(uv_handle_t *h) { free(h->data); }

/* Drops a transfer reference; the last one cleans the multi up and closes
 * its timer. Never called from inside a curl callback. */
static void multi_put(http_multi *m)
{
    if (--m->transfers > 0)
        return;
    for (http_multi **pp = &multis; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    curl_multi_cleanup(m->curlm); /* may still report CURL_POLL_REMOVE */
    m->curlm = NULL;
    uv_close((uv_handle_t *)&m->timer, on_multi_closed);
}

/* --- messages ----------------------------------------------------------- */

/* Replaces every occurrence of secret in s (in place, NUL-terminated, of
 * capacity cap) by "***". */
static void mask_secret(char *s, size_t cap, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n == 0)
        return;
    char *p;
    while ((p = strstr(s, secret)) != NULL) {
        char tmp[512];
        snprintf(tmp, sizeof tmp, "***%s", p + n);
        snprintf(p, cap - (size_t)(p - s), "%s", tmp);
    }
}

/* curl's detail text without its trailing newline, or fallback. */
static const char *detail(http_op *op, CURLcode rc)
{
    size_t n = strlen(op->errbuf);
    while (n && (op->errbuf[n - 1] == '\n' || op->errbuf[n - 1] == '\r'))
        op->errbuf[--n] = '\0';
    return n ? op->errbuf : curl_easy_strerror(rc);
}

/* Sets op->err to the short message for a failed transfer. */
static void describe_failure(http_op *op, CURLcode rc)
{
    long oserr = 0, verify = 0;
    curl_easy_getinfo(op->easy, CURLINFO_OS_ERRNO, &oserr);
    char *e = op->err;
    size_t cap = sizeof op->err;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(e, cap, API_FAIL_TIMEOUT);
        break;
    case CURLE_COULDNT_CONNECT:
        if (oserr == ECONNREFUSED || oserr == ECONNRESET || oserr == ETIMEDOUT || oserr == EHOSTUNREACH ||
            oserr == ENETUNREACH)
            snprintf(e, cap, "%s", api_fail_errno((int)oserr));
        else if (oserr)
            snprintf(e, cap, "connect failed: %s", strerror((int)oserr));
        else
            snprintf(e, cap, "connect failed: %s", detail(op, rc));
        break;
    case CURLE_COULDNT_RESOLVE_HOST: /* curl wanted a name no pin answers (on_curl_resolve refused) */
        api_fail_resolve(e, cap, op->target, 0);
        if (op->curl_resolves) {
            size_t n = strlen(e);
            snprintf(e + n, cap - n, ": not resolved by the agent");
        }
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        curl_easy_getinfo(op->easy, CURLINFO_SSL_VERIFYRESULT, &verify);
        if (strstr(op->errbuf, "subject name") != NULL) /* curl's own host name check */
            api_fail_tls_verify(e, cap, X509_V_ERR_HOSTNAME_MISMATCH, op->host);
        else if (verify != X509_V_OK)
            api_fail_tls_verify(e, cap, verify, op->host);
        else
            snprintf(e, cap, "tls: %s", detail(op, rc));
        break;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(e, cap, "tls: cannot read the CA file");
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        snprintf(e, cap, "tls: %s", detail(op, rc));
        break;
    case CURLE_GOT_NOTHING:
        snprintf(e, cap, API_FAIL_CLOSED);
        break;
    case CURLE_PARTIAL_FILE:
        snprintf(e, cap, "closed before the end of the body");
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        if (oserr == ECONNRESET || oserr == EPIPE)
            snprintf(e, cap, "%s", api_fail_errno((int)oserr));
        else
            snprintf(e, cap, "%s failed: %s", rc == CURLE_RECV_ERROR ? "receive" : "send", detail(op, rc));
        break;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        snprintf(e, cap, "http2: %s", detail(op, rc));
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(e, cap, "unsupported protocol: %s", detail(op, rc));
        break;
    case CURLE_OUT_OF_MEMORY:
        snprintf(e, cap, "not enough memory");
        break;
    default:
        snprintf(e, cap, "%s", detail(op, rc));
        if (e[0])
            e[0] = (char)tolower((unsigned char)e[0]);
        break;
    }
    mask_secret(e, cap, op->secret);
}

/* --- names: what a hop connects to --------------------------------------- */

/* True for an IPv4 or IPv6 address literal (no brackets): curl converts
 * one in place, no resolver involved. */
static bool is_ip_literal(const char *s)
{
    unsigned char a[sizeof(struct in6_addr)];
    return ha_inet_pton(AF_INET, s, a) == 1 || ha_inet_pton(AF_INET6, s, a) == 1;
}

/* The parts of a URL a hop needs. */
typedef struct {
    char *host;               /* curl_free: as written, for messages */
    char *ahost;              /* curl_free: in punycode, as curl connects (IPv6 in brackets) */
    int port;                 /* the scheme's default when absent */
    bool https;
} url_parts;

static void url_parts_free(url_parts *p)
{
    curl_free(p->host);
    curl_free(p->ahost);
    p->host = p->ahost = NULL;
}

/* Reads u's host, port and scheme into p (freed by url_parts_free, also on
 * failure). Returns CURLUE_OK or the URL API's error. */
static CURLUcode url_parts_of(CURLU *u, url_parts *p)
{
    char *port = NULL, *scheme = NULL;
    memset(p, 0, sizeof *p);
    CURLUcode rc = curl_url_get(u, CURLUPART_HOST, &p->host, 0);
    if (rc == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &p->ahost, CURLU_PUNYCODE) != CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, &p->ahost, 0); /* a libcurl without IDN: as written */
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (rc == CURLUE_OK) {
        p->port = atoi(port);
        p->https = strcmp(scheme, "https") == 0;
    }
    curl_free(port);
    curl_free(scheme);
    return rc;
}

/* Copies host (n bytes; an IPv6 literal in brackets loses them and its zone
 * id, as curl keeps those apart) into out. */
static void bare_host(char *out, size_t cap, const char *host, size_t n)
{
    if (n >= 2 && host[0] == '[') {
        host++;
        n--;
        const char *end = memchr(host, ']', n);
        if (end)
            n = (size_t)(end - host);
        const char *zone = memchr(host, '%', n);
        if (zone)
            n = (size_t)(zone - host);
    }
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), host);
}

/* The host (into op->target) and port the hop to u connects to, as curl
 * 7.88 chooses them: connect_to's target when its HOST and PORT match the
 * URL's (empty ones match anything; an empty target host or port keeps the
 * URL's), else the URL's own. */
static int connect_target(http_op *op, const url_parts *u)
{
    int port = u->port;
    bare_host(op->target, sizeof op->target, u->ahost, strlen(u->ahost));
    if (op->connect_to == NULL)
        return port;
    const char *p = op->connect_to->data;
    size_t hl = strlen(u->ahost);
    if (*p == ':')
        p++;
    else if (strncasecmp(p, u->ahost, hl) == 0 && p[hl] == ':')
        p += hl + 1;
    else
        return port;
    if (*p == ':') {
        p++;
    } else {
        char *end;
        long v = strtol(p, &end, 10);
        if (*end != ':' || v != u->port)
            return port;
        p = end + 1;
    }
    const char *colon = *p == '[' ? strchr(p, ']') : p;
    colon = colon ? strchr(colon, ':') : NULL;
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    if (n > 0)
        bare_host(op->target, sizeof op->target, p, n);
    if (colon && colon[1])
        port = atoi(colon + 1);
    return port;
}

/* Sets the hop's CURLOPT_RESOLVE pin "target:port:addr,[addr6],..." from
 * the resolver's answer. Returns 0, UV_EAI_NONAME when res holds no usable
 * address, or UV_ENOMEM. */
static int pin_addresses(http_op *op, int port, const struct addrinfo *res)
{
    char line[sizeof op->target + 8 + HTTP_PIN_ADDRS * (INET6_ADDRSTRLEN + 3)];
    int len = snprintf(line, sizeof line, "%s:%d:", op->target, port), n = 0;
    for (const struct addrinfo *a = res; a && n < HTTP_PIN_ADDRS; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        if (api_dns_ip_text(a, ip, sizeof ip) != 0)
            continue;
        bool v6 = a->ai_family == AF_INET6;
        len += snprintf(line + len, sizeof line - (size_t)len, "%s%s%s%s", n ? "," : "", v6 ? "[" : "", ip,
                        v6 ? "]" : "");
        n++;
    }
    if (n == 0)
        return UV_EAI_NONAME;
    curl_slist_free_all(op->pin);
    op->pin = curl_slist_append(NULL, line);
    if (op->pin == NULL)
        return UV_ENOMEM;
    curl_easy_setopt(op->easy, CURLOPT_RESOLVE, op->pin);
    return 0;
}

/* --- transfer callbacks ------------------------------------------------- */

/* The value of the first header called name (lower-case) of the hop's
 * last response, or NULL. */
static const char *first_header(const http_op *op, const char *name)
{
    for (size_t i = 0; i < op->headers.len;) {
        const char *n = op->headers.data + i, *v = n + strlen(n) + 1;
        if (strcmp(n, name) == 0)
            return v;
        i = (size_t)(v - op->headers.data) + strlen(v) + 1;
    }
    return NULL;
}

/* CURLOPT_HEADERFUNCTION: one header line at a time; a status line starts a
 * new response (a redirect or a 100 Continue came before). After the body,
 * HTTP/2 trailers arrive here too and join the headers (gRPC's status). The
 * empty line ending a 3xx response with a Location makes it a redirect to
 * follow when follow is on (libcurl 7.88 follows any 3xx with a non-empty
 * Location). */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    http_op *op = ud;
    size_t len = size * n, end = len;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        buf_reset(&op->headers);
        op->redirecting = false;
        return len;
    }
    while (end > 0 && (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' ' || p[end - 1] == '\t'))
        end--;
    if (end == 0 && op->follow) {
        long code = 0;
        const char *loc = first_header(op, "location");
        curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &code);
        op->redirecting = code >= 300 && code < 400 && loc && *loc;
        return len;
    }
    const char *colon = memchr(p, ':', end);
    if (colon == NULL || colon == p || op->headers.len + end + 2 > HTTP_HEADERS_MAX)
        return len;
    size_t nlen = (size_t)(colon - p);
    for (size_t i = 0; i < nlen; i++)
        buf_addc(&op->headers, (char)tolower((unsigned char)p[i]));
    buf_addc(&op->headers, '\0');
    const char *v = colon + 1;
    while (v < p + end && (*v == ' ' || *v == '\t'))
        v++;
    buf_add(&op->headers, v, (size_t)(p + end - v));
    buf_addc(&op->headers, '\0');
    return len;
}

/* CURLOPT_WRITEFUNCTION: keeps max_body bytes, then stops the transfer
 * (CURL_WRITEFUNC_ERROR; the done handler knows it was on purpose). The
 * body of a redirect being followed is not read at all: the connection is
 * never reused, so stopping costs nothing. */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    http_op *op = ud;
    if (op->redirecting)
        return CURL_WRITEFUNC_ERROR;
    size_t len = size * n, room = op->max_body - op->body.len;
    if (len > room) {
        buf_add(&op->body, p, room);
        op->truncated = true;
        return CURL_WRITEFUNC_ERROR;
    }
    buf_add(&op->body, p, len);
    return len;
}

/* CURLOPT_RESOLVER_START_FUNCTION: curl found no pin for the name it is
 * about to connect to and would start its own resolver. It never may: an
 * IP literal is converted in place, anything else fails the transfer. */
static int on_curl_resolve(void *resolver_state, void *reserved, void *ud)
{
    (void)resolver_state;
    (void)reserved;
    http_op *op = ud;
    if (is_ip_literal(op->target))
        return 0;
    op->curl_resolves = true;
    return 1;
}

/* --- hops ---------------------------------------------------------------- */

static void hop_done(http_op *op, CURLcode rc);

/* Ends the request (op->err says how) and completes the op; before the
 * task yields (a hop failing at once), start_request sees op->done. */
static void op_finish(http_op *op)
{
    op->time_us = (curl_off_t)((uv_hrtime() - op->t0) / 1000);
    op->done = true;
    engine_task_complete(&op->op);
}

/* Hands the hop's transfer to the multi; curl's timer callback asks for a
 * first run on the next loop turn. */
static void hop_attach(http_op *op)
{
    if (curl_multi_add_handle(op->m->curlm, op->easy) != CURLM_OK) {
        snprintf(op->err, sizeof op->err, "not enough memory");
        op_finish(op);
        return;
    }
    op->attached = true;
}

/* api_dns_cb of a hop's lookup: pins the answer and attaches, or fails the
 * request with the resolver's message; frees an op closed meanwhile. */
static void on_resolved(api_dns_req *r, int status, struct addrinfo *res)
{
    http_op *op = r->req.data;
    if (op->closed) {
        uv_freeaddrinfo(res);
        free(op);
        return;
    }
    if (status == 0)
        status = pin_addresses(op, op->target_port, res);
    uv_freeaddrinfo(res);
    if (status != 0) {
        api_dns_message(r, status, op->err, sizeof op->err);
        op_finish(op);
        return;
    }
    hop_attach(op);
}

/* Starts the transfer of op->url: resolves the host it connects to with the
 * shared resolver, unless that is an IP literal or a Unix socket, then
 * attaches. Failing at once, it finishes the op. */
static void hop_start(http_op *op)
{
    CURLU *u = curl_url();
    url_parts up = {0};
    int rc = u ? 0 : UV_ENOMEM;
    if (rc == 0 && (curl_url_set(u, CURLUPART_URL, op->url, 0) != CURLUE_OK || url_parts_of(u, &up) != CURLUE_OK))
        rc = UV_EINVAL; /* checked before: only memory can fail here */
    if (rc == 0) {
        free(op->host);
        op->host = strdup(up.host);
        if (op->origin_host == NULL) { /* the first hop */
            op->origin_host = strdup(up.ahost);
            op->origin_port = up.port;
            op->origin_https = up.https;
        }
        if (op->host == NULL || op->origin_host == NULL)
            rc = UV_ENOMEM;
        op->target_port = connect_target(op, &up);
    }
    url_parts_free(&up);
    curl_url_cleanup(u);
    if (rc != 0) {
        snprintf(op->err, sizeof op->err, "not enough memory");
        op_finish(op);
        return;
    }
    curl_easy_setopt(op->easy, CURLOPT_URL, op->url);
    curl_easy_setopt(op->easy, CURLOPT_RESOLVE, NULL); /* the last hop's pin, if any, is not this one's */
    curl_slist_free_all(op->pin);
    op->pin = NULL;
    if (op->unix_socket || is_ip_literal(op->target)) {
        hop_attach(op);
        return;
    }
    rc = api_dns_start(op->m->loop, &op->dns, op->target, AF_UNSPEC, 0, on_resolved);
    if (rc != 0) {
        api_dns_message(&op->dns, rc, op->err, sizeof op->err);
        op_finish(op);
    }
}

/* True when the header line (curl's "Name: value" or "Name;") is called
 * name (case-insensitive). */
static bool header_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

/* Sets the request headers of a hop to another origin than the first
 * request's: libcurl 7.88 drops Authorization and Cookie there, and Host
 * too when the host differs. Returns false on memory exhaustion. */
static bool cross_origin_headers(http_op *op, bool other_host)
{
    struct curl_slist *l = NULL;
    for (struct curl_slist *h = op->req_headers; h; h = h->next) {
        if (header_is(h->data, "authorization") || header_is(h->data, "cookie") ||
            (other_host && header_is(h->data, "host")))
            continue;
        struct curl_slist *n = curl_slist_append(l, h->data);
        if (n == NULL) {
            curl_slist_free_all(l);
            return false;
        }
        l = n;
    }
    curl_easy_setopt(op->easy, CURLOPT_HTTPHEADER, l);
    curl_slist_free_all(op->cross_headers); /* no transfer runs: curl holds no pointer into it */
    op->cross_headers = l;
    return true;
}

/* The absolute URL of the redirect at location, relative to op->url, as
 * libcurl 7.88's follow builds it (URL-encoding spaces and the like), into
 * *next (curl_free); credentials stay with the first request's origin.
 * Sets the hop's request headers. Returns false with op->err set. */
static bool redirect_url(http_op *op, const char *location, char **next)
{
    CURLU *u = curl_url();
    url_parts up = {0};
    char *scheme = NULL;
    bool ok = false;
    CURLUcode rc = u ? curl_url_set(u, CURLUPART_URL, op->url, 0) : CURLUE_OUT_OF_MEMORY;
    if (rc == CURLUE_OK)
        rc = curl_url_set(u, CURLUPART_URL, location, CURLU_URLENCODE | CURLU_ALLOW_SPACE);
    if (rc != CURLUE_OK) {
        snprintf(op->err, sizeof op->err, "the redirect target URL could not be parsed: %s", curl_url_strerror(rc));
        goto done;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) { /* CURLOPT_REDIR_PROTOCOLS_STR's words */
        snprintf(op->err, sizeof op->err, "unsupported protocol: Protocol \"%s\" not supported or disabled in libcurl",
                 scheme ? scheme : "");
        goto done;
    }
    if (url_parts_of(u, &up) != CURLUE_OK)
        goto oom;
    bool other_host = strcasecmp(up.ahost, op->origin_host) != 0;
    bool same_origin = !other_host && up.port == op->origin_port && up.https == op->origin_https;
    if (same_origin ? op->user || op->secret : true) { /* the first URL's credentials, or none */
        if (curl_url_set(u, CURLUPART_USER, same_origin ? op->user : NULL, 0) != CURLUE_OK ||
            curl_url_set(u, CURLUPART_PASSWORD, same_origin ? op->secret : NULL, 0) != CURLUE_OK)
            goto oom;
    }
    if (same_origin)
        curl_easy_setopt(op->easy, CURLOPT_HTTPHEADER, op->req_headers);
    else if (!cross_origin_headers(op, other_host))
        goto oom;
    if (curl_url_get(u, CURLUPART_URL, next, 0) != CURLUE_OK)
        goto oom;
    ok = true;
    goto done;
oom:
    snprintf(op->err, sizeof op->err, "not enough memory");
done:
    url_parts_free(&up);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

/* Follows the redirect the hop just received, as CURLOPT_FOLLOWLOCATION
 * would: past max_redirects the request fails; 301 and 302 turn a POST
 * into a GET, 303 anything but HEAD (a custom method name stays, as in
 * libcurl); 307 and 308 repeat the request. */
static void hop_redirect(http_op *op)
{
    long code = 0;
    char *next = NULL;
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &code);
    if (op->redirects >= op->max_redirects) {
        snprintf(op->err, sizeof op->err, "too many redirects");
        op_finish(op);
        return;
    }
    if (!redirect_url(op, first_header(op, "location"), &next)) {
        op_finish(op);
        return;
    }
    if (op->kind == REQ_POST && (code == 301 || code == 302 || code == 303)) {
        curl_easy_setopt(op->easy, CURLOPT_HTTPGET, 1L);
        op->kind = REQ_GET;
    }
    op->redirects++;
    free(op->url);
    op->url = strdup(next);
    curl_free(next);
    if (op->url == NULL) {
        snprintf(op->err, sizeof op->err, "not enough memory");
        op_finish(op);
        return;
    }
    op->redirecting = false;
    buf_reset(&op->headers);
    buf_reset(&op->body);
    hop_start(op);
}

/* A hop's transfer ended with rc (the easy handle is detached): a redirect
 * to follow starts the next hop, anything else ends the request. */
static void hop_done(http_op *op, CURLcode rc)
{
    if (rc == CURLE_WRITE_ERROR && (op->truncated || op->redirecting))
        rc = CURLE_OK; /* on_body stopped it on purpose */
    if (rc == CURLE_OK && op->redirecting) {
        hop_redirect(op);
        return;
    }
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &op->status);
    curl_easy_getinfo(op->easy, CURLINFO_HTTP_VERSION, &op->version);
    if (rc != CURLE_OK)
        describe_failure(op, rc);
    op_finish(op);
}

/* Ends the hops whose transfers curl reports done. Called after every
 * curl_multi_socket_action, outside curl's callbacks (a hop may attach the
 * next one from here). */
static void multi_collect(http_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->curlm, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        http_op *op = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&op);
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(m->curlm, op->easy); /* msg is invalid from here */
        op->attached = false;
        hop_done(op, rc);
    }
}

/* --- the op ------------------------------------------------------------- */

static const char *version_name(long v)
{
    switch (v) {
    case CURL_HTTP_VERSION_1_0: return "1.0";
    case CURL_HTTP_VERSION_1_1: return "1.1";
    case CURL_HTTP_VERSION_2_0: return "2";
    case CURL_HTTP_VERSION_3: return "3";
    default: return "?";
    }
}

/* Pushes {status=, headers=, body=, ...} or nil, message: [-0, +1|2]. */
static int http_push(ha_op *base, lua_State *L)
{
    http_op *op = (http_op *)base;
    if (op->err[0]) {
        lua_pushnil(L);
        lua_pushstring(L, op->err);
        return 2;
    }
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, op->status);
    lua_setfield(L, -2, "status");
    lua_newtable(L); /* [r, headers] */
    for (size_t i = 0; i < op->headers.len;) {
        const char *name = op->headers.data + i;
        size_t nlen = strlen(name);
        const char *val = name + nlen + 1;
        size_t vlen = strlen(val);
        i += nlen + vlen + 2;
        if (lua_getfield(L, -1, name) == LUA_TSTRING) { /* repeated: join with ", " */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, val, vlen);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, val, vlen);
        }
        lua_setfield(L, -2, name);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, op->body.data ? op->body.data : "", op->body.len);
    lua_setfield(L, -2, "body");
    lua_pushinteger(L, (lua_Integer)(op->time_us / 1000));
    lua_setfield(L, -2, "time_ms");
    lua_pushstring(L, version_name(op->version));
    lua_setfield(L, -2, "http_version");
    lua_pushboolean(L, op->truncated);
    lua_setfield(L, -2, "truncated");
    lua_pushinteger(L, op->redirects);
    lua_setfield(L, -2, "redirects");
    return 1;
}

/* Stops the transfer if it still runs and frees everything. Handles: the
 * easy handle's sockets are closed by curl_multi_remove_handle through
 * CURL_POLL_REMOVE; the multi's timer goes with the last transfer. A lookup
 * in flight cannot be stopped (api_dns.h): it is asked to, and on_resolved
 * frees the op when it ends, touching nothing else. */
static void http_close(ha_op *base)
{
    http_op *op = (http_op *)base;
    if (op->easy) {
        if (op->attached)
            curl_multi_remove_handle(op->m->curlm, op->easy);
        curl_easy_cleanup(op->easy);
        op->easy = NULL;
    }
    if (op->m)
        multi_put(op->m);
    op->m = NULL;
    curl_slist_free_all(op->req_headers);
    curl_slist_free_all(op->cross_headers);
    curl_slist_free_all(op->connect_to);
    curl_slist_free_all(op->pin);
    free(op->secret);
    free(op->user);
    free(op->host);
    free(op->url);
    free(op->origin_host);
    buf_free(&op->body);
    buf_free(&op->headers);
    if (op->dns.busy) {
        op->closed = true;
        api_dns_cancel(&op->dns);
        return;
    }
    free(op);
}

/* --- options ------------------------------------------------------------ */

/* The parsed options of one request; strings point into the Lua table
 * (valid while it is on the stack). */
typedef struct {
    const char *url;
    const char *method;       /* NULL = GET, or POST when there is a body */
    const char *body;         /* NULL = none */
    size_t body_len;
    int headers_idx;          /* stack index of the headers table, 0 = none */
    uint64_t timeout_ns;
    bool verify;
    bool follow;
    long max_redirects;
    const char *unix_socket;
    const char *ca_file;
    const char *connect_to;   /* "host:port" to connect to instead of the URL's, or curl's
                                 "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT" */
    int connect_to_fields;    /* 2 or 4: which of the two connect_to is */
    long http_version;        /* CURL_HTTP_VERSION_* */
    size_t max_body;
} http_opts;

static const char *const option_names[] = {
    "url", "method", "headers", "body", "timeout", "verify", "follow", "max_redirects",
    "unix_socket", "ca_file", "http2", "max_body", "connect_to", NULL,
};

/* Raises a misuse error naming the option. */
/* True when s[0..n) is empty or a port 1..65535. */
static bool port_or_empty(const char *s, size_t n)
{
    long v = 0;
    if (n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    return n == 0 || (v >= 1 && v <= 65535);
}

/* Fields of a connect_to value: 2 for "host:port", 4 for curl's
 * "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT" (HOST, PORT and, as curl
 * allows, the connect-to host may be empty; an IPv6 address in brackets),
 * 0 when it is neither. */
static int connect_to_fields(const char *s)
{
    const char *f[5];
    size_t len[4];
    int n = 0;
    f[n] = s;
    for (const char *p = s; n < 4; p++) {
        if (*p == '[') {
            const char *close = strchr(p, ']');
            if (close == NULL)
                return 0;
            p = close;
            continue;
        }
        if (*p == ':' || *p == '\0') {
            len[n] = (size_t)(p - f[n]);
            n++;
            if (*p == '\0')
                break;
            f[n] = p + 1;
        }
    }
    if (n == 2)
        return len[0] > 0 && len[1] > 0 && port_or_empty(f[1], len[1]) ? 2 : 0;
    if (n == 4 && f[3][len[3]] == '\0')
        return port_or_empty(f[1], len[1]) && port_or_empty(f[3], len[3]) ? 4 : 0;
    return 0;
}

static int opt_error(lua_State *L, const char *fn, const char *name, const char *what)
{
    return luaL_error(L, "%s: option '%s' %s", fn, name, what);
}

static const char *opt_string(lua_State *L, int idx, const char *fn, const char *name, size_t *len)
{
    int t = lua_getfield(L, idx, name);
    lua_pop(L, 1); /* the table keeps the string alive */
    if (t == LUA_TNIL)
        return NULL;
    if (t != LUA_TSTRING)
        opt_error(L, fn, name, "must be a string");
    lua_getfield(L, idx, name);
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

static bool opt_bool(lua_State *L, int idx, const char *fn, const char *name, bool dflt)
{
    int t = lua_getfield(L, idx, name);
    bool v = dflt;
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        opt_error(L, fn, name, "must be a boolean");
    lua_pop(L, 1);
    return v;
}

static lua_Integer opt_int(lua_State *L, int idx, const char *fn, const char *name, lua_Integer dflt,
                           lua_Integer lo, lua_Integer hi)
{
    int t = lua_getfield(L, idx, name);
    lua_Integer v = dflt;
    if (t != LUA_TNIL) {
        int isint = 0;
        v = lua_tointegerx(L, -1, &isint);
        if (t != LUA_TNUMBER || !isint || v < lo || v > hi) {
            char what[96];
            snprintf(what, sizeof what, "must be an integer from %lld to %lld", (long long)lo, (long long)hi);
            opt_error(L, fn, name, what);
        }
    }
    lua_pop(L, 1);
    return v;
}

/* True for an HTTP token (a method name). */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return false;
    return true;
}

/* Checks the headers table at the top of the stack: names are HTTP tokens,
 * values strings or numbers without CR/LF (no header injection). Raises. */
static void check_headers(lua_State *L, const char *fn)
{
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {
        int vt = lua_type(L, -1);
        if (lua_type(L, -2) != LUA_TSTRING || !is_token(lua_tostring(L, -2)))
            luaL_error(L, "%s: option 'headers': names must be HTTP header names", fn);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
            luaL_error(L, "%s: option 'headers': value of '%s' must be a string", fn, lua_tostring(L, -2));
        if (vt == LUA_TSTRING && strpbrk(lua_tostring(L, -1), "\r\n") != NULL)
            luaL_error(L, "%s: option 'headers': value of '%s' contains a line break", fn, lua_tostring(L, -2));
        lua_pop(L, 1);
    }
}

/* Reads the options table at idx into o. Raises on misuse (file:line of
 * the caller). */
static void read_opts(lua_State *L, int idx, const char *fn, http_opts *o)
{
    memset(o, 0, sizeof *o);
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* unknown options are typos: say so */
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings", fn);
        const char *k = lua_tostring(L, -1);
        int i = 0;
        while (option_names[i] && strcmp(option_names[i], k) != 0)
            i++;
        if (option_names[i] == NULL)
            luaL_error(L, "%s: unknown option '%s'", fn, k);
    }
    o->url = opt_string(L, idx, fn, "url", NULL);
    if (o->url == NULL)
        opt_error(L, fn, "url", "is required");
    o->method = opt_string(L, idx, fn, "method", NULL);
    if (o->method && !is_token(o->method))
        opt_error(L, fn, "method", "must be an HTTP method name");
    o->body = opt_string(L, idx, fn, "body", &o->body_len);
    int t = lua_getfield(L, idx, "headers");
    lua_pop(L, 1);
    if (t == LUA_TTABLE) {
        o->headers_idx = idx;
        lua_getfield(L, idx, "headers");
        check_headers(L, fn);
        lua_pop(L, 1);
    } else if (t != LUA_TNIL) {
        opt_error(L, fn, "headers", "must be a table");
    }
    o->timeout_ns = api_opt_duration_field(L, idx, fn, "timeout", 0, false);
    if (o->timeout_ns == 0)
        o->timeout_ns = HTTP_TIMEOUT_NS;
    o->verify = opt_bool(L, idx, fn, "verify", true);
    o->follow = opt_bool(L, idx, fn, "follow", false);
    o->max_redirects = (long)opt_int(L, idx, fn, "max_redirects", HTTP_REDIRECTS, 0, 100);
    o->unix_socket = opt_string(L, idx, fn, "unix_socket", NULL);
    o->ca_file = opt_string(L, idx, fn, "ca_file", NULL);
    o->connect_to = opt_string(L, idx, fn, "connect_to", NULL);
    if (o->connect_to && (o->connect_to_fields = connect_to_fields(o->connect_to)) == 0)
        opt_error(L, fn, "connect_to", "must be \"host:port\" or curl's \"HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT\"");
    o->max_body = (size_t)opt_int(L, idx, fn, "max_body", HTTP_BODY_MAX, 0, HTTP_BODY_LIMIT);
    t = lua_getfield(L, idx, "http2");
    if (t == LUA_TNIL)
        o->http_version = CURL_HTTP_VERSION_2TLS;         /* h2 by ALPN over TLS, 1.1 otherwise */
    else if (t == LUA_TBOOLEAN)
        o->http_version = lua_toboolean(L, -1) ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1;
    else if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "prior_knowledge") == 0)
        o->http_version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    else
        opt_error(L, fn, "http2", "must be a boolean or \"prior_knowledge\"");
    lua_pop(L, 1);
}

/* Appends "name: value" (curl's "name;" for an empty value) to *list.
 * Returns false on memory exhaustion. */
static bool add_header(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (line == NULL)
        return false;
    snprintf(line, n, *value ? "%s: %s" : "%s;", name, value);
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (l == NULL)
        return false;
    *list = l;
    return true;
}

/* Builds the request header list from the (checked) headers table. Never
 * raises. Returns false on memory exhaustion (*list is then freed). */
static bool build_headers(lua_State *L, const http_opts *o, struct curl_slist **list)
{
    bool ok = true, expect = false;
    *list = NULL;
    if (o->headers_idx) {
        lua_getfield(L, o->headers_idx, "headers"); /* [..., h] */
        int h = lua_gettop(L);
        lua_pushnil(L);
        while (ok && lua_next(L, h)) {
            const char *name = lua_tostring(L, -2);
            expect = expect || strcasecmp(name, "expect") == 0;
            ok = add_header(list, name, lua_tostring(L, -1)); /* a number converts in place: fine, key untouched */
            lua_pop(L, 1);
        }
        lua_settop(L, h - 1); /* [...] */
    }
    if (ok && o->body && !expect) { /* "Expect:" removes curl's 100-continue round trip */
        struct curl_slist *l = curl_slist_append(*list, "Expect:");
        ok = l != NULL;
        if (l)
            *list = l;
    }
    if (!ok) {
        curl_slist_free_all(*list);
        *list = NULL;
    }
    return ok;
}

/* Parses the URL: checks the scheme and keeps its user name and password
 * (the password for masking messages; both for redirects to the same
 * origin), as written (URL-encoded). Raises on a malformed URL; the message
 * never contains it. */
static void check_url(lua_State *L, const char *fn, const char *url, char **user, char **secret)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    if (u == NULL)
        luaL_error(L, "not enough memory");
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    bool ok = rc == CURLUE_OK && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    if (!ok) {
        curl_url_cleanup(u);
        luaL_error(L, "%s: option 'url' must be an http:// or https:// URL", fn);
    }
    char *us = NULL, *pw = NULL;
    curl_url_get(u, CURLUPART_USER, &us, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &pw, 0);
    *user = us ? strdup(us) : NULL;
    *secret = pw ? strdup(pw) : NULL;
    curl_free(us);
    curl_free(pw);
    curl_url_cleanup(u);
}

/* Starts the request described by the options table at idx and yields the
 * task: the core of http.request and http.get. */
static int start_request(lua_State *L, int idx, const char *fn)
{
    http_opts o;
    read_opts(L, idx, fn, &o);                /* raises on misuse */
    ha_task *t = engine_task_current(L, fn);  /* raises outside a check */
    char *user = NULL, *secret = NULL;
    check_url(L, fn, o.url, &user, &secret);  /* raises before it allocates */
    /* nothing below raises until the op holds everything */
    struct curl_slist *hdrs = NULL;
    bool ok = build_headers(L, &o, &hdrs);
    http_op *op = calloc(1, sizeof *op);
    if (op == NULL || !ok)
        goto fail;
    op->op.push = http_push;
    op->op.close = http_close;
    op->dns.req.data = op;
    op->t0 = uv_hrtime();
    op->req_headers = hdrs;
    hdrs = NULL;
    op->user = user;
    op->secret = secret;
    user = secret = NULL;
    op->max_body = o.max_body;
    op->follow = o.follow;
    op->max_redirects = o.max_redirects;
    op->unix_socket = o.unix_socket != NULL;
    if ((op->url = strdup(o.url)) == NULL)
        goto fail;
    if (o.connect_to) {
        char line[600];
        /* "host:port": any host and port -> there; curl's four fields as given */
        snprintf(line, sizeof line, "%s%s", o.connect_to_fields == 2 ? "::" : "", o.connect_to);
        op->connect_to = curl_slist_append(NULL, line);
        if (op->connect_to == NULL)
            goto fail;
    }
    op->easy = curl_easy_init();
    if (op->easy == NULL)
        goto fail;
    CURL *e = op->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, op);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");          /* ignore *_proxy environment variables */
    curl_easy_setopt(e, CURLOPT_RESOLVER_START_FUNCTION, on_curl_resolve);
    curl_easy_setopt(e, CURLOPT_RESOLVER_START_DATA, op);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "healthagent/" HA_VERSION);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, op);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, o.http_version);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o.verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o.verify ? 2L : 0L);
    if (o.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o.ca_file);
    if (o.unix_socket)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, o.unix_socket);
    if (op->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, op->connect_to);
    if (op->req_headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->req_headers);
    if (o.body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o.body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o.body);
    }
    const char *method = o.method ? o.method : (o.body ? "POST" : "GET");
    op->kind = o.body ? REQ_POST : REQ_GET;
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        op->kind = REQ_HEAD;
    } else if (strcmp(method, o.body ? "POST" : "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    op->m = multi_get(engine_task_loop(t));
    if (op->m == NULL)
        goto fail;
    hop_start(op); /* the first hop: a lookup, or attached at once */
    if (op->done) { /* failed before any I/O */
        int n = http_push(&op->op, L);
        http_close(&op->op);
        return n;
    }
    /* a timeout that would end with the task's deadline is left to the
     * deadline (engine_task_yield): the check then reports "timeout after
     * <its timeout>". It covers the lookups, every hop and every transfer. */
    return engine_task_yield(L, t, &op->op, o.timeout_ns);
fail:
    curl_slist_free_all(hdrs);
    free(user);
    free(secret);
    if (op)
        http_close(&op->op);
    return luaL_error(L, "%s: not enough memory", fn);
}

/* http.request{url=, ...} -> response | nil, message */
static int l_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return start_request(L, 1, "health.http.request");
}

/* http.get(url [, opts]) -> response | nil, message */
static int l_get(lua_State *L)
{
    luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_newtable(L); /* [url, opts, o] */
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, 3);
        }
    }
    lua_pushvalue(L, 1);
    lua_setfield(L, 3, "url");
    lua_getfield(L, 3, "method");
    if (!lua_isnil(L, -1) && (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "GET") != 0))
        luaL_error(L, "health.http.get: option 'method' must be GET (use http.request)");
    lua_pop(L, 1);
    return start_request(L, 3, "health.http.get");
}

static int curl_ready; /* curl_global_init result + 1, set once */
static uv_once_t curl_once = UV_ONCE_INIT;

static void curl_init_once(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
}

/* require "health.http": [-0, +1] the module. Raises when libcurl fails to
 * initialise. */
int api_http_open(lua_State *L)
{
    uv_once(&curl_once, curl_init_once);
    if (curl_ready < 0)
        return luaL_error(L, "health.http: libcurl failed to initialise");
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    static const luaL_Reg funcs[] = {{"request", l_request}, {"get", l_get}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    lua_pushinteger(L, HTTP_BODY_MAX);
    lua_setfield(L, -2, "max_body");
    lua_pushstring(L, v->version);
    lua_setfield(L, -2, "curl_version");
    lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
    lua_setfield(L, -2, "has_http2");
    return 1;
}
