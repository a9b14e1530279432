/* api_tcp.c: health.tcp, raw TCP and TLS client sockets for check scripts.
 *
 *   local tcp = require "health.tcp"
 *   local s, err = tcp.connect(host, port, {timeout=, tls=false, sni=, verify=true, ca_file=})
 *   s:send(data)                    -> bytes | nil, err
 *   s:receive("*l" | n | "*a")      -> data | nil, err, partial
 *   s:certificate()                 -> {subject=, issuer=, not_after=, days_left=} (TLS)
 *   s:settimeout(seconds), s:close()
 *
 * Names resolve with the resolver of api_dns.h (numeric addresses skip it), then each
 * address is tried with uv_tcp_connect until one connects. TLS is OpenSSL
 * driven through two memory BIOs over the uv_tcp stream: bytes read from the
 * socket go into the read BIO, whatever OpenSSL writes to the write BIO is
 * sent with uv_write.
 *
 * Ownership. The C state of a socket (tcp_conn) is malloc'd, never in Lua
 * memory: it holds the uv_tcp_t, the resolver request and the SSL object.
 * Its owner is first the connect op, then the Lua userdata (tcp_box) once the
 * connect succeeded. It is freed when it has no owner any more, its handle
 * has closed and no resolver request is in flight (conn_maybe_free). An op
 * that is cancelled (timeout, deadline, reload) closes the connection: the
 * stream is in an unknown state afterwards, and a timed-out check must leave
 * no socket behind. __gc and __close close it too; scripts should call
 * :close() (or use `local s <close> = ...`). */
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "api.h"
#include "api_dns.h"
#include "api_fail.h"
#include "api_opt.h"
#include "common.h"
#include "engine_task.h"

#define SOCK_MT "health.tcp.socket"
#define TCP_MAX_ADDRS 16                  /* addresses tried per connect */
#define TCP_RECV_MAX (16u * 1024 * 1024)  /* bytes a socket buffers at most */
#define TCP_READ_CHUNK (64 * 1024)        /* one read from the socket */

typedef enum { OP_CONNECT = 1, OP_SEND, OP_RECV } tcp_op_kind;
typedef enum { RECV_LINE = 1, RECV_COUNT, RECV_ALL } tcp_recv_kind;

typedef struct tcp_op tcp_op;

typedef struct tcp_conn {
    uv_tcp_t tcp;               /* data = this; valid while handle_open */
    api_dns_req dns;            /* dns.req.data = this; in flight while dns.busy */
    uv_connect_t creq;          /* data = this */
    uv_loop_t *loop;            /* not owned */
    tcp_op *op;                 /* the pending op, or NULL */
    bool owned;                 /* an op or a userdata still refers to it */
    bool handle_open;           /* uv_tcp_init done, close_cb not yet run */
    bool retry;                 /* handle closing to try the next address */
    bool connected;             /* TCP connected */
    bool reading;               /* uv_read_start in force */
    bool closed;                /* closed or failed: no more I/O */
    bool eof;                   /* peer finished sending */
    char err[160];              /* first failure ("" = none) */
    int last_uv;                /* last connect error (libuv code) */
    uint64_t timeout_ns;        /* default per-op timeout; 0 = rest of the deadline */
    /* addresses */
    struct sockaddr_storage addrs[TCP_MAX_ADDRS];
    int naddrs, next_addr;      /* resolved addresses, next one to try */
    char peer[INET6_ADDRSTRLEN + 8]; /* "ip:port" connected to (or last tried) */
    char *host;                 /* owned: as given, for messages */
    int port;
    /* received bytes not yet handed to Lua (plaintext) */
    char *in;                   /* owned */
    size_t in_len, in_cap;
    unsigned writes_pending;    /* uv_write requests in flight */
    /* TLS */
    SSL *ssl;                   /* owned; NULL for plain TCP */
    BIO *rbio, *wbio;           /* owned by ssl: network -> ssl, ssl -> network */
    bool hs_done;               /* handshake finished */
    X509 *cert;                 /* owned: the peer's certificate, or NULL */
} tcp_conn;

struct tcp_op {
    ha_op op;                   /* first: the task's pending slot points here */
    tcp_conn *c;                /* not owned (CONNECT: owned until handed to Lua) */
    tcp_op_kind kind;
    tcp_recv_kind rkind;        /* OP_RECV */
    size_t want;                /* RECV_COUNT: bytes */
    bool pushed;                /* push ran: the op ended normally */
    bool handed;                /* OP_CONNECT: the userdata owns c now */
};

typedef struct {
    tcp_conn *c;                /* NULL once released by __gc */
} tcp_box;

typedef struct {
    uv_write_t req;             /* data = the conn */
    size_t len;
    char data[];                /* the bytes being written */
} tcp_write;

static void conn_progress(tcp_conn *c);
static void conn_connect_next(tcp_conn *c);
static void tls_pump(tcp_conn *c);

/* --- errors -------------------------------------------------------------- */

/* Records the first failure of c. */
static void conn_fail(tcp_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(tcp_conn *c, const char *fmt, ...)
{
    if (c->err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

/* The most specific OpenSSL reason in the error queue (clears it). */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    snprintf(buf, len, "%s", r ? r : "protocol error");
    return buf;
}

/* Records a failed certificate verification (api_fail_tls_verify), naming
 * the host name or address the certificate was checked against. */
static void fail_verify(tcp_conn *c, long v)
{
    char msg[300];
    X509_VERIFY_PARAM *param = c->ssl ? SSL_get0_param(c->ssl) : NULL;
    char *ip = param ? X509_VERIFY_PARAM_get1_ip_asc(param) : NULL;
    const char *name = param ? X509_VERIFY_PARAM_get0_host(param, 0) : NULL;
    api_fail_tls_verify(msg, sizeof msg, v, ip ? ip : name ? name : c->host);
    OPENSSL_free(ip);
    conn_fail(c, "%s", msg);
}

/* --- life cycle ---------------------------------------------------------- */

/* Frees c once nothing refers to it any more. */
static void conn_maybe_free(tcp_conn *c)
{
    if (c->owned || c->op || c->handle_open || c->dns.busy)
        return;
    if (c->ssl)
        SSL_free(c->ssl); /* frees the BIOs too */
    X509_free(c->cert);
    free(c->in);
    free(c->host);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    tcp_conn *c = h->data;
    c->handle_open = false;
    c->reading = false;
    if (c->retry && !c->closed) {
        c->retry = false;
        conn_connect_next(c);
        return;
    }
    c->retry = false;
    conn_maybe_free(c);
}

/* Stops all I/O of c: the handle closes, a pending op of another task sees
 * "closed". Idempotent; c stays allocated while owned. */
static void conn_shutdown(tcp_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    conn_fail(c, "closed");
    api_dns_cancel(&c->dns); /* may fail once running: the callback sees closed */
    if (c->handle_open && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed); /* closes the fd now */
    conn_progress(c);
}

/* Drops the owner's reference: shuts c down and frees it when it can. */
static void conn_release(tcp_conn *c)
{
    c->owned = false;
    conn_shutdown(c);
    conn_maybe_free(c);
}

/* --- reading ------------------------------------------------------------- */

/* Appends n received plaintext bytes; fails c past TCP_RECV_MAX. */
static void in_append(tcp_conn *c, const char *p, size_t n)
{
    if (c->in_len + n > TCP_RECV_MAX) {
        conn_fail(c, "too much data (over %u bytes buffered)", TCP_RECV_MAX);
        return;
    }
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + n)
            cap *= 2;
        char *q = realloc(c->in, cap);
        if (q == NULL) {
            conn_fail(c, "not enough memory");
            return;
        }
        c->in = q;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += n;
}

/* True when a receive of kind/want can answer now. */
static bool recv_ready(const tcp_conn *c, tcp_recv_kind kind, size_t want)
{
    if (kind == RECV_LINE && c->in_len && memchr(c->in, '\n', c->in_len))
        return true;
    if (kind == RECV_COUNT && c->in_len >= want)
        return true;
    return c->eof || c->err[0];
}

/* True when the pending op of c can be resumed. */
static bool op_ready(const tcp_conn *c, const tcp_op *op)
{
    switch (op->kind) {
    case OP_CONNECT:
        return c->err[0] || (c->connected && (c->ssl == NULL || c->hs_done));
    case OP_SEND:
        return c->err[0] || c->writes_pending == 0;
    case OP_RECV:
        return recv_ready(c, op->rkind, op->want);
    }
    return true;
}

/* One read buffer for every socket: libuv calls on_read right after the
 * read that on_alloc's buffer served, and on_read consumes it entirely
 * (engine thread only). Saves a buffer per connection. */
static char read_buf[TCP_READ_CHUNK];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tcp_conn *c = s->data;
    if (nread > 0) {
        if (c->ssl) {
            BIO_write(c->rbio, buf->base, (int)nread);
            tls_pump(c);
        } else {
            in_append(c, buf->base, (size_t)nread);
        }
    } else if (nread == UV_EOF) {
        c->eof = true;
        if (c->ssl && !c->hs_done)
            conn_fail(c, "tls: handshake failed: closed");
    } else if (nread < 0) {
        conn_fail(c, "%s", api_fail_uv((int)nread));
    }
    conn_progress(c);
}

/* Reads while a handshake runs or a receive waits for data. */
static void conn_update_reading(tcp_conn *c)
{
    bool want = c->handle_open && c->connected && !c->closed && !c->eof && !c->err[0] &&
                ((c->ssl && !c->hs_done) ||
                 (c->op && c->op->kind == OP_RECV && !recv_ready(c, c->op->rkind, c->op->want)));
    if (want && !c->reading) {
        int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (r == 0)
            c->reading = true;
        else
            conn_fail(c, "%s", api_fail_uv(r));
    } else if (!want && c->reading && c->handle_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* After any event: wakes the task of a pending op that can answer now. */
static void conn_progress(tcp_conn *c)
{
    conn_update_reading(c);
    if (c->err[0])
        conn_update_reading(c); /* a failure above stops reading too */
    if (c->op && op_ready(c, c->op))
        engine_task_complete(&c->op->op);
}

/* --- writing ------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    tcp_write *w = (tcp_write *)req;
    tcp_conn *c = req->data;
    c->writes_pending--;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(c, "%s", api_fail_uv(status));
    conn_progress(c);
}

/* Queues n bytes (copied) on the stream. Returns false and fails c on error. */
static bool conn_write(tcp_conn *c, const char *p, size_t n)
{
    if (!c->handle_open || c->closed) {
        conn_fail(c, "closed");
        return false;
    }
    tcp_write *w = malloc(sizeof *w + n);
    if (w == NULL) {
        conn_fail(c, "not enough memory");
        return false;
    }
    memcpy(w->data, p, n);
    w->len = n;
    w->req.data = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r != 0) {
        free(w);
        conn_fail(c, "%s", api_fail_uv(r));
        return false;
    }
    c->writes_pending++;
    return true;
}

/* --- TLS ----------------------------------------------------------------- */

static SSL_CTX *default_ctx; /* system trust store; engine thread only, lives for the process */

typedef struct ca_ctx {
    char *path;
    time_t mtime;               /* the file as loaded: reloaded when it changes */
    off_t size;
    SSL_CTX *ctx;
    struct ca_ctx *next;
} ca_ctx;
static ca_ctx *ca_ctxs;         /* one context per ca_file, kept for the process */

static SSL_CTX *ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx) {
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    }
    return ctx;
}

/* The client context for ca_file (NULL: the system trust store). Returns
 * NULL with a message in err on failure. Not owned by the caller. */
static SSL_CTX *ctx_get(const char *ca_file, char *err, size_t errlen)
{
    char why[128];
    if (ca_file == NULL) {
        if (default_ctx == NULL) {
            default_ctx = ctx_new();
            if (default_ctx == NULL || SSL_CTX_set_default_verify_paths(default_ctx) != 1) {
                snprintf(err, errlen, "tls: cannot load the system trust store: %s", ssl_reason(why, sizeof why));
                SSL_CTX_free(default_ctx);
                default_ctx = NULL;
            }
        }
        return default_ctx;
    }
    struct stat st;
    if (stat(ca_file, &st) != 0) {
        snprintf(err, errlen, "tls: cannot read ca_file %s", ca_file);
        return NULL;
    }
    ca_ctx *e;
    for (e = ca_ctxs; e; e = e->next)
        if (strcmp(e->path, ca_file) == 0)
            break;
    if (e && e->mtime == st.st_mtime && e->size == st.st_size)
        return e->ctx;
    SSL_CTX *ctx = ctx_new();
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        snprintf(err, errlen, "tls: cannot load ca_file %s: %s", ca_file, ssl_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (e == NULL) {
        e = calloc(1, sizeof *e);
        if (e == NULL || (e->path = strdup(ca_file)) == NULL) {
            free(e);
            SSL_CTX_free(ctx);
            snprintf(err, errlen, "not enough memory");
            return NULL;
        }
        e->next = ca_ctxs;
        ca_ctxs = e;
    }
    SSL_CTX_free(e->ctx); /* live connections keep their own reference */
    e->ctx = ctx;
    e->mtime = st.st_mtime;
    e->size = st.st_size;
    return ctx;
}

static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return ha_inet_pton(AF_INET, s, buf) == 1 || ha_inet_pton(AF_INET6, s, buf) == 1;
}

/* Sets up the SSL object of c: SNI, verification and the hostname to check.
 * Returns false with a message in err. */
static bool tls_setup(tcp_conn *c, SSL_CTX *ctx, const char *sni, bool verify, char *err, size_t errlen)
{
    char why[128];
    c->ssl = SSL_new(ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        snprintf(err, errlen, "tls: %s", ssl_reason(why, sizeof why));
        return false;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    const char *name = sni ? sni : c->host;
    bool ip = is_ip_literal(name);
    if (!ip && SSL_set_tlsext_host_name(c->ssl, name) != 1) {
        snprintf(err, errlen, "tls: bad server name '%s'", name);
        return false;
    }
    if (verify) {
        SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) : SSL_set1_host(c->ssl, name);
        if (ok != 1) {
            snprintf(err, errlen, "tls: bad host name '%s'", name);
            return false;
        }
    } else {
        SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
    }
    return true;
}

/* Sends whatever OpenSSL has written to the write BIO. */
static void tls_flush(tcp_conn *c)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0)
        return;
    if (!c->handle_open || c->closed) {
        (void)BIO_reset(c->wbio);
        return;
    }
    tcp_write *w = malloc(sizeof *w + n);
    if (w == NULL) {
        conn_fail(c, "not enough memory");
        return;
    }
    int got = BIO_read(c->wbio, w->data, (int)n);
    w->req.data = c;
    w->len = got > 0 ? (size_t)got : 0;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r != 0) {
        free(w);
        conn_fail(c, "%s", api_fail_uv(r));
        return;
    }
    c->writes_pending++;
}

/* Advances the handshake, then decrypts whatever arrived into c->in. */
static void tls_pump(tcp_conn *c)
{
    char why[128];
    if (!c->hs_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            c->hs_done = true;
            c->cert = SSL_get1_peer_certificate(c->ssl);
        } else {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                long v = SSL_get_verify_result(c->ssl);
                if (v != X509_V_OK)
                    fail_verify(c, v);
                else
                    conn_fail(c, "tls: handshake failed: %s", ssl_reason(why, sizeof why));
            }
        }
    }
    if (c->hs_done && !c->err[0]) {
        char tmp[16384];
        for (;;) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, tmp, sizeof tmp);
            if (n > 0) {
                in_append(c, tmp, (size_t)n);
                if (c->err[0])
                    break;
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_ZERO_RETURN)
                c->eof = true; /* close_notify */
            else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                conn_fail(c, "tls: %s", ssl_reason(why, sizeof why));
            break;
        }
    }
    tls_flush(c);
}

/* --- connecting ---------------------------------------------------------- */

static void format_peer(tcp_conn *c, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, c->port);
    } else {
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, c->port);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    tcp_conn *c = req->data;
    if (c->closed || status == UV_ECANCELED)
        return; /* the close callback finishes */
    if (status < 0) {
        c->last_uv = status;
        c->retry = true; /* on_handle_closed tries the next address */
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->ssl)
        tls_pump(c); /* writes the ClientHello */
    conn_progress(c);
}

/* Tries the next resolved address; fails c when none is left. */
static void conn_connect_next(tcp_conn *c)
{
    while (c->next_addr < c->naddrs) {
        const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->next_addr++];
        format_peer(c, sa);
        int r = uv_tcp_init(c->loop, &c->tcp);
        if (r != 0) {
            c->last_uv = r;
            continue;
        }
        c->tcp.data = c;
        c->handle_open = true;
        c->creq.data = c;
        r = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
        if (r == 0)
            return;
        c->last_uv = r;
        c->retry = true;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    char msg[300];
    api_fail_resolve(msg, sizeof msg, c->host, 0);
    conn_fail(c, "%s", c->last_uv ? api_fail_uv(c->last_uv) : msg);
    conn_progress(c);
}

static void on_resolved(api_dns_req *r, int status, struct addrinfo *res)
{
    tcp_conn *c = r->req.data;
    if (c->closed) {
        uv_freeaddrinfo(res);
        conn_maybe_free(c);
        return;
    }
    if (status < 0) {
        char msg[300];
        api_fail_resolve(msg, sizeof msg, c->host, status);
        conn_fail(c, "%s", msg);
    } else {
        for (struct addrinfo *ai = res; ai && c->naddrs < TCP_MAX_ADDRS; ai = ai->ai_next)
            if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) && ai->ai_addrlen <= sizeof c->addrs[0])
                memcpy(&c->addrs[c->naddrs++], ai->ai_addr, ai->ai_addrlen);
        uv_freeaddrinfo(res);
        res = NULL;
        conn_connect_next(c);
        return;
    }
    uv_freeaddrinfo(res);
    conn_progress(c);
}

/* --- ops ----------------------------------------------------------------- */

/* Pushes the answer of a receive from c's buffer: data, or nil, err, partial.
 * Consumes what it hands out. Call only when recv_ready. */
static int recv_push(lua_State *L, tcp_conn *c, tcp_recv_kind kind, size_t want)
{
    if (kind == RECV_LINE) {
        char *nl = c->in_len ? memchr(c->in, '\n', c->in_len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->in), len = n;
            if (len > 0 && c->in[len - 1] == '\r')
                len--;
            lua_pushlstring(L, c->in, len);
            memmove(c->in, nl + 1, c->in_len - n - 1);
            c->in_len -= n + 1;
            return 1;
        }
    } else if (kind == RECV_COUNT && c->in_len >= want) {
        lua_pushlstring(L, c->in, want);
        memmove(c->in, c->in + want, c->in_len - want);
        c->in_len -= want;
        return 1;
    } else if (kind == RECV_ALL && c->eof && !c->err[0]) {
        lua_pushlstring(L, c->in_len ? c->in : "", c->in_len);
        c->in_len = 0;
        return 1;
    }
    /* cannot be satisfied: closed or failed; hand out what there is */
    lua_pushnil(L);
    lua_pushstring(L, c->err[0] ? c->err : "closed");
    lua_pushlstring(L, c->in_len ? c->in : "", c->in_len);
    c->in_len = 0;
    return 3;
}

static int op_push(ha_op *o, lua_State *L)
{
    tcp_op *op = (tcp_op *)o;
    tcp_conn *c = op->c;
    op->pushed = true;
    switch (op->kind) {
    case OP_CONNECT:
        if (c->err[0]) {
            lua_pushnil(L);
            lua_pushstring(L, c->err);
            return 2;
        }
        tcp_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* [sock] */
        b->c = c;
        luaL_setmetatable(L, SOCK_MT);
        op->handed = true;
        return 1;
    case OP_SEND:
        if (c->err[0]) {
            lua_pushnil(L);
            lua_pushstring(L, c->err);
            return 2;
        }
        lua_pushinteger(L, (lua_Integer)op->want);
        return 1;
    case OP_RECV:
        return recv_push(L, c, op->rkind, op->want);
    }
    return 0;
}

/* Ends the op: a cancelled op (no push) closes its connection. */
static void op_close(ha_op *o)
{
    tcp_op *op = (tcp_op *)o;
    tcp_conn *c = op->c;
    bool connect = op->kind == OP_CONNECT, handed = op->handed, pushed = op->pushed;
    if (c->op == op)
        c->op = NULL;
    free(op);
    if (connect && !handed)
        conn_release(c); /* may free c */
    else if (!pushed)
        conn_shutdown(c);
    else if (!c->closed)
        conn_update_reading(c);
    if (!connect || handed)
        conn_maybe_free(c); /* a socket collected while this op ran */
}

static tcp_op *op_new(lua_State *L, tcp_conn *c, tcp_op_kind kind)
{
    tcp_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        luaL_error(L, "not enough memory");
    op->op.push = op_push;
    op->op.close = op_close;
    op->c = c;
    op->kind = kind;
    return op;
}

/* Runs op: answers at once when it can, otherwise parks the task. Must be
 * the last call of the lua_CFunction. */
static int op_run(lua_State *L, ha_task *t, tcp_op *op, uint64_t timeout_ns)
{
    tcp_conn *c = op->c;
    c->op = op;
    conn_progress(c);
    if (op_ready(c, op)) {
        int n = op_push(&op->op, L);
        op_close(&op->op);
        return n;
    }
    uv_update_time(c->loop); /* the timeout counts from now, not from the loop's last poll */
    return engine_task_yield(L, t, &op->op, timeout_ns);
}

/* --- Lua API ------------------------------------------------------------- */

/* Reads a timeout (seconds or a duration string) at idx; nil keeps dflt. */
static uint64_t opt_timeout(lua_State *L, int idx, const char *what, uint64_t dflt)
{
    if (lua_isnoneornil(L, idx))
        return dflt;
    return api_opt_duration(L, idx, what, "timeout", false);
}

/* Reads opts.timeout of the options table at idx (absent or nil: dflt). */
static uint64_t opts_timeout(lua_State *L, int idx, const char *what, uint64_t dflt)
{
    if (lua_isnoneornil(L, idx))
        return dflt;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "timeout");
    uint64_t ns = opt_timeout(L, -1, what, dflt);
    lua_pop(L, 1);
    return ns;
}

static const char *opt_string(lua_State *L, int idx, const char *key, const char *what)
{
    int ty = lua_getfield(L, idx, key);
    const char *s = NULL;
    if (ty == LUA_TSTRING)
        s = lua_tostring(L, -1);
    else if (ty != LUA_TNIL)
        luaL_error(L, "%s: option '%s' must be a string", what, key);
    lua_pop(L, 1); /* the string stays alive in the options table */
    return s;
}

static bool opt_bool(lua_State *L, int idx, const char *key, bool dflt, const char *what)
{
    int ty = lua_getfield(L, idx, key);
    bool v = dflt;
    if (ty == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL)
        luaL_error(L, "%s: option '%s' must be a boolean", what, key);
    lua_pop(L, 1);
    return v;
}

/* tcp.connect(host, port [, opts]) -> socket | nil, err */
static int l_connect(lua_State *L)
{
    static const char *const known[] = {"timeout", "tls", "sni", "verify", "ca_file", NULL};
    const char *what = "health.tcp.connect";
    size_t hlen;
    const char *host = luaL_checklstring(L, 1, &hlen);
    luaL_argcheck(L, hlen > 0 && hlen < 256 && strlen(host) == hlen, 1, "expected a host name or address");
    lua_Integer port = luaL_checkinteger(L, 2);
    luaL_argcheck(L, port >= 1 && port <= 65535, 2, "expected a port from 1 to 65535");
    bool tls = false, verify = true;
    const char *sni = NULL, *ca_file = NULL;
    uint64_t timeout = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pop(L, 1);
            bool ok = false;
            for (int i = 0; known[i] && !ok; i++)
                ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), known[i]) == 0;
            if (!ok)
                return luaL_error(L, "%s: unknown option '%s'", what, luaL_tolstring(L, -1, NULL));
        }
        timeout = opts_timeout(L, 3, what, 0);
        tls = opt_bool(L, 3, "tls", false, what);
        verify = opt_bool(L, 3, "verify", true, what);
        sni = opt_string(L, 3, "sni", what);
        ca_file = opt_string(L, 3, "ca_file", what);
        if ((sni || ca_file) && !tls)
            return luaL_error(L, "%s: options 'sni' and 'ca_file' need tls = true", what);
        if (sni)
            luaL_argcheck(L, sni[0] != '\0', 3, "'sni' must not be empty");
    }
    ha_task *t = engine_task_current(L, what);

    tcp_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->host = strdup(host)) == NULL) {
        free(c);
        return luaL_error(L, "not enough memory");
    }
    c->loop = engine_task_loop(t);
    c->owned = true;
    c->port = (int)port;
    c->timeout_ns = timeout;
    tcp_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        conn_release(c);
        return luaL_error(L, "not enough memory");
    }
    op->op.push = op_push;
    op->op.close = op_close;
    op->c = c;
    op->kind = OP_CONNECT;

    if (tls) {
        char err[256];
        SSL_CTX *ctx = ctx_get(ca_file, err, sizeof err);
        if (ctx == NULL || !tls_setup(c, ctx, sni, verify, err, sizeof err)) {
            conn_fail(c, "%s", err);
            return op_run(L, t, op, 0);
        }
    }
    /* numeric addresses need no resolver */
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->addrs[0];
    struct sockaddr_in *a4 = (struct sockaddr_in *)&c->addrs[0];
    if (uv_ip4_addr(host, (int)port, a4) == 0 || uv_ip6_addr(host, (int)port, a6) == 0) {
        c->naddrs = 1;
        conn_connect_next(c);
    } else {
        c->dns.req.data = c;
        int r = api_dns_start(c->loop, &c->dns, host, AF_UNSPEC, (int)port, on_resolved);
        if (r != 0) {
            char msg[300];
            api_fail_resolve(msg, sizeof msg, c->host, r);
            conn_fail(c, "%s", msg);
        }
    }
    return op_run(L, t, op, timeout);
}

static tcp_box *check_box(lua_State *L)
{
    tcp_box *b = luaL_checkudata(L, 1, SOCK_MT);
    if (b->c == NULL)
        luaL_error(L, "socket was collected");
    return b;
}

static tcp_conn *check_conn(lua_State *L) { return check_box(L)->c; }

/* Raises when another task is using c (a socket shared between checks). */
static void check_idle(lua_State *L, tcp_conn *c, const char *what)
{
    if (c->op)
        luaL_error(L, "%s: socket is busy (another check run is using it)", what);
}

/* s:send(data [, opts]) -> bytes | nil, err */
static int l_send(lua_State *L)
{
    const char *what = "send";
    tcp_conn *c = check_conn(L);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    uint64_t timeout = opts_timeout(L, 3, what, c->timeout_ns);
    ha_task *t = engine_task_current(L, what);
    check_idle(L, c, what);
    if (c->err[0] || c->closed) {
        lua_pushnil(L);
        lua_pushstring(L, c->err[0] ? c->err : "closed");
        return 2;
    }
    if (n == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_write(c->ssl, data, (int)n);
        if (r <= 0) {
            char why[128];
            conn_fail(c, "tls: %s", ssl_reason(why, sizeof why));
        }
        tls_flush(c);
    } else {
        conn_write(c, data, n);
    }
    tcp_op *op = op_new(L, c, OP_SEND);
    op->want = n;
    return op_run(L, t, op, timeout);
}

/* s:receive("*l" | "*a" | n [, opts]) -> data | nil, err, partial */
static int l_receive(lua_State *L)
{
    const char *what = "receive";
    tcp_conn *c = check_conn(L);
    tcp_recv_kind kind = RECV_LINE;
    size_t want = 0;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, 2);
        luaL_argcheck(L, n >= 0 && n <= TCP_RECV_MAX, 2, "byte count out of range");
        kind = RECV_COUNT;
        want = (size_t)n;
    } else if (!lua_isnoneornil(L, 2)) {
        const char *p = luaL_checkstring(L, 2);
        if (p[0] == '*')
            p++; /* "*l" and "l" alike, as in Lua 5.4's io.read */
        if (strcmp(p, "l") == 0)
            kind = RECV_LINE;
        else if (strcmp(p, "a") == 0)
            kind = RECV_ALL;
        else
            return luaL_argerror(L, 2, "expected \"*l\", \"*a\" or a byte count");
    }
    uint64_t timeout = opts_timeout(L, 3, what, c->timeout_ns);
    ha_task *t = engine_task_current(L, what);
    check_idle(L, c, what);
    if (kind == RECV_COUNT && want == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    tcp_op *op = op_new(L, c, OP_RECV);
    op->rkind = kind;
    op->want = want;
    return op_run(L, t, op, timeout);
}

/* s:settimeout(seconds | nil): default timeout of the socket's later calls
 * (nil: the rest of the check's deadline). */
static int l_settimeout(lua_State *L)
{
    tcp_conn *c = check_conn(L);
    c->timeout_ns = lua_isnoneornil(L, 2) ? 0 : opt_timeout(L, 2, "settimeout", 0);
    return 0;
}

/* Formats an ASN1 time as RFC 3339 UTC; stores seconds since the epoch. */
static bool asn1_rfc3339(const ASN1_TIME *at, char *buf, size_t len, time_t *epoch)
{
    struct tm tm;
    if (at == NULL || ASN1_TIME_to_tm(at, &tm) != 1)
        return false;
    *epoch = timegm(&tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return true;
}

/* Pushes an X509 name in RFC 2253 form ("CN=localhost,O=..."). */
static void push_name(lua_State *L, const X509_NAME *name)
{
    BIO *m = BIO_new(BIO_s_mem());
    if (m == NULL || X509_NAME_print_ex(m, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        BIO_free(m);
        lua_pushliteral(L, "");
        return;
    }
    char *p;
    long n = BIO_get_mem_data(m, &p);
    lua_pushlstring(L, p, n > 0 ? (size_t)n : 0);
    BIO_free(m);
}

/* s:certificate() -> {subject=, issuer=, not_after=, days_left=} | nil, err */
static int l_certificate(lua_State *L)
{
    tcp_conn *c = check_conn(L);
    if (c->ssl == NULL)
        return luaL_error(L, "certificate: not a TLS socket");
    if (c->cert == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "tls: no peer certificate");
        return 2;
    }
    lua_createtable(L, 0, 5);
    push_name(L, X509_get_subject_name(c->cert));
    lua_setfield(L, -2, "subject");
    push_name(L, X509_get_issuer_name(c->cert));
    lua_setfield(L, -2, "issuer");
    char buf[32];
    time_t when;
    if (asn1_rfc3339(X509_get0_notBefore(c->cert), buf, sizeof buf, &when)) {
        lua_pushstring(L, buf);
        lua_setfield(L, -2, "not_before");
    }
    if (asn1_rfc3339(X509_get0_notAfter(c->cert), buf, sizeof buf, &when)) {
        lua_pushstring(L, buf);
        lua_setfield(L, -2, "not_after");
        double left = difftime(when, time(NULL)) / 86400.0;
        lua_pushinteger(L, (lua_Integer)floor(left));
        lua_setfield(L, -2, "days_left");
    }
    return 1;
}

/* s:close(): closes the socket; later calls return nil, "closed". */
static int l_close(lua_State *L)
{
    tcp_box *b = luaL_checkudata(L, 1, SOCK_MT);
    if (b->c)
        conn_shutdown(b->c);
    return 0;
}

/* __gc: releases the C state (closing the socket if still open). */
static int l_gc(lua_State *L)
{
    tcp_box *b = luaL_checkudata(L, 1, SOCK_MT);
    tcp_conn *c = b->c;
    b->c = NULL;
    if (c)
        conn_release(c); /* freed later if an op still refers to it */
    return 0;
}

static int l_tostring(lua_State *L)
{
    tcp_box *b = luaL_checkudata(L, 1, SOCK_MT);
    tcp_conn *c = b->c;
    if (c == NULL)
        lua_pushliteral(L, "tcp socket (collected)");
    else
        lua_pushfstring(L, "tcp socket %s%s (%s)", c->peer, c->ssl ? " tls" : "",
                        c->closed ? "closed" : c->err[0] ? c->err : "open");
    return 1;
}

/* s:address() -> "ip:port" of the peer. */
static int l_address(lua_State *L)
{
    lua_pushstring(L, check_conn(L)->peer);
    return 1;
}

int api_tcp_open(lua_State *L)
{
    static bool once;
    if (!once) {
        /* A write to a socket the peer reset must give EPIPE, not kill the
         * process (the agent does this at start-up; the runner does not). */
        signal(SIGPIPE, SIG_IGN);
        once = true;
    }
    static const luaL_Reg methods[] = {
        {"send", l_send},   {"receive", l_receive}, {"settimeout", l_settimeout}, {"certificate", l_certificate},
        {"close", l_close}, {"address", l_address}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_gc}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL},
    };
    if (luaL_newmetatable(L, SOCK_MT)) { /* [mt] */
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);          /* [mt, methods] */
        lua_setfield(L, -2, "__index");   /* [mt] */
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1); /* [] */
    static const luaL_Reg funcs[] = {{"connect", l_connect}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
