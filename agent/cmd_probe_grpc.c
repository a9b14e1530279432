/* cmd_probe_grpc.c: `healthagent probe --grpc ADDR`: one
 * grpc.health.v1.Health/Check over cleartext HTTP/2 (prior knowledge), with
 * plain sockets, poll(2) and a libnghttp2 client session; built into
 * ha_grpcserver.so with the server, so the binary maps libnghttp2 only
 * here. One timeout covers the dial and the call, as Kubernetes' grpc probe.
 * Exit codes as grpc_health_probe's: 0 SERVING, 2 connection failure, 3 RPC
 * failure (any grpc-status but OK, NOT_FOUND and UNIMPLEMENTED included, or
 * no answer in time), 4 an answer other than SERVING. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "cmd.h"
#include "common.h"
#include "front_grpc.h"

enum { PG_OK = 0, PG_CONNECT = 2, PG_RPC = 3, PG_UNHEALTHY = 4 };

/* The call's state, filled by the nghttp2 callbacks. */
typedef struct {
    int32_t id;                 /* the Check stream */
    int http_status;            /* :status, 0 before */
    int grpc_status;            /* -1 before the trailers (or Trailers-Only) */
    char grpc_message[256];     /* percent-decoded */
    uint8_t body[64];           /* the response message frame (bounded) */
    size_t body_len;
    bool closed;                /* the stream is over */
    uint32_t rst;               /* its RST_STREAM code, if reset */
    uint8_t req[5 + 3 + 1024];  /* the request frame */
    size_t req_len, req_off;
} pg_call;

static const char *const pg_codes[] = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
    "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
    "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"};

static const char *const pg_serving[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};

/* Splits "host:port" / "[v6]:port". Returns 0 or -1. */
static int pg_split(const char *addr, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t n;
    if (colon == NULL || colon == addr || colon[1] == '\0')
        return -1;
    n = (size_t)(colon - addr);
    if (addr[0] == '[') {
        if (n < 3 || addr[n - 1] != ']')
            return -1;
        h = addr + 1;
        n -= 2;
    } else if (memchr(addr, ':', n) != NULL) {
        return -1;
    }
    if (n == 0 || n >= hl || strlen(colon + 1) >= pl || strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

/* Connects to host:port before deadline (cmd_dial). Returns the socket,
 * -1 with err, or -2 when the deadline passed. */
static int pg_dial(const char *host, const char *port, uint64_t deadline, char *err, size_t errlen)
{
    cmd_url u = {0};
    snprintf(u.host, sizeof u.host, "%s", host);
    snprintf(u.port, sizeof u.port, "%s", port);
    return cmd_dial(&u, deadline, err, errlen);
}

static ssize_t pg_read_req(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *ud)
{
    pg_call *c = src->ptr;
    size_t n = c->req_len - c->req_off;
    if (n > len)
        n = len;
    memcpy(buf, c->req + c->req_off, n);
    c->req_off += n;
    if (c->req_off == c->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Decodes %XX escapes of grpc-message into out. */
static void pg_unpercent(const uint8_t *v, size_t n, char *out, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < len; i++) {
        unsigned x;
        if (v[i] == '%' && i + 2 < n && sscanf((const char *)v + i + 1, "%2x", &x) == 1) {
            out[k++] = (char)x;
            i += 2;
        } else {
            out[k++] = (char)v[i];
        }
    }
    out[k] = '\0';
}

static int pg_on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                        const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    pg_call *c = ud;
    if (frame->hd.stream_id != c->id)
        return 0;
    if (nl == 7 && memcmp(name, ":status", 7) == 0)
        c->http_status = atoi((const char *)value);
    else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
        c->grpc_status = atoi((const char *)value);
    else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0)
        pg_unpercent(value, vl, c->grpc_message, sizeof c->grpc_message);
    return 0;
}

static int pg_on_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    pg_call *c = ud;
    if (id == c->id && c->body_len + len <= sizeof c->body) {
        memcpy(c->body + c->body_len, data, len);
        c->body_len += len;
    }
    return 0;
}

static int pg_on_close(nghttp2_session *sess, int32_t id, uint32_t code, void *ud)
{
    pg_call *c = ud;
    if (id == c->id) {
        c->closed = true;
        c->rst = code;
    }
    return 0;
}

/* Sends what the session has. Returns 0, or -1 on a socket error or timeout. */
static int pg_send(nghttp2_session *sess, int fd, uint64_t deadline)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(sess, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(fd, data + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w > 0)
                off += w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            else if (cmd_wait_fd(fd, POLLOUT, deadline) <= 0)
                return -1;
        }
    }
}

/* The Check exchange on a connected socket. Returns an exit code and
 * prints the outcome. */
static int pg_call_check(int fd, const char *addr, const char *service, uint64_t timeout_ns, uint64_t deadline)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_session *sess = NULL;
    pg_call c = {0};
    int code = PG_RPC;
    char tmo[32], msg[300] = "";
    size_t sl = strlen(service);

    c.grpc_status = -1;
    /* HealthCheckRequest{service}: 0x0a len service, in one gRPC frame */
    size_t ml = sl ? 1 + (sl < 128 ? 1 : 2) + sl : 0;
    c.req[0] = 0;
    c.req[1] = c.req[2] = 0;
    c.req[3] = (uint8_t)(ml >> 8);
    c.req[4] = (uint8_t)ml;
    c.req_len = 5;
    if (sl) {
        c.req[c.req_len++] = 0x0a;
        if (sl < 128) {
            c.req[c.req_len++] = (uint8_t)sl;
        } else {
            c.req[c.req_len++] = (uint8_t)(sl | 0x80);
            c.req[c.req_len++] = (uint8_t)(sl >> 7);
        }
        memcpy(c.req + c.req_len, service, sl);
        c.req_len += sl;
    }
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, pg_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, pg_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, pg_on_close);
    if (nghttp2_session_client_new(&sess, cbs, &c) != 0) {
        snprintf(msg, sizeof msg, "error: not enough memory");
        goto out;
    }
    nghttp2_submit_settings(sess, NGHTTP2_FLAG_NONE, NULL, 0);
    uint64_t left = deadline > cmd_now_ms() ? deadline - cmd_now_ms() : 1;
    snprintf(tmo, sizeof tmo, "%llum", (unsigned long long)left);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv nv[] = {
        NV(":method", "POST"), NV(":scheme", "http"), NV(":path", "/grpc.health.v1.Health/Check"),
        NV(":authority", addr), NV("content-type", "application/grpc"), NV("te", "trailers"),
        NV("grpc-timeout", tmo), NV("user-agent", "healthagent-probe/" HA_VERSION),
    };
#undef NV
    nghttp2_data_provider dp;
    dp.source.ptr = &c;
    dp.read_callback = pg_read_req;
    c.id = nghttp2_submit_request(sess, NULL, nv, HA_ARRAY_SIZE(nv), &dp, NULL);
    if (c.id < 0) {
        snprintf(msg, sizeof msg, "error: %s", nghttp2_strerror(c.id));
        goto out;
    }
    uint8_t buf[16384];
    while (!c.closed) {
        if (pg_send(sess, fd, deadline) != 0) {
            snprintf(msg, sizeof msg, cmd_now_ms() >= deadline ? "timeout: health rpc did not complete within %s"
                                                              : "error: health rpc failed: connection lost%s", tmo);
            goto out;
        }
        int w = cmd_wait_fd(fd, POLLIN, deadline);
        if (w <= 0) {
            char d[32];
            ha_duration_format(timeout_ns, d, sizeof d);
            snprintf(msg, sizeof msg, "timeout: health rpc did not complete within %s", d);
            goto out;
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0 || nghttp2_session_mem_recv(sess, buf, (size_t)n) < 0) {
            snprintf(msg, sizeof msg, "error: health rpc failed: %s",
                     n == 0 ? "connection closed by the server" : n < 0 ? strerror(errno) : "HTTP/2 protocol error");
            goto out;
        }
    }
    if (c.http_status != 200) {
        snprintf(msg, sizeof msg, "error: health rpc failed: HTTP status %d", c.http_status);
    } else if (c.grpc_status < 0) {
        snprintf(msg, sizeof msg, "error: health rpc failed: %s",
                 c.rst ? "stream reset by the server" : "no grpc-status in the response");
    } else if (c.grpc_status != 0) {
        const char *name = c.grpc_status < (int)HA_ARRAY_SIZE(pg_codes) ? pg_codes[c.grpc_status] : "Unknown";
        snprintf(msg, sizeof msg, "error: health rpc failed: rpc error: code = %s desc = %.200s", name,
                 c.grpc_message);
    } else {
        /* frame 0 len(4) then HealthCheckResponse{status (field 1, varint)} */
        int st = 0;
        if (c.body_len >= 7 && c.body[0] == 0 && c.body[5] == 0x08 && c.body[6] < 128)
            st = c.body[6];
        else if (c.body_len != 5)
            st = -1;
        if (st == 1) {
            printf("status: SERVING\n");
            code = PG_OK;
        } else if (st < 0) {
            snprintf(msg, sizeof msg, "error: health rpc failed: malformed response message");
        } else {
            snprintf(msg, sizeof msg, "service unhealthy (responded with \"%s\")",
                     st < (int)HA_ARRAY_SIZE(pg_serving) ? pg_serving[st] : "UNKNOWN");
            code = PG_UNHEALTHY;
        }
    }
out:
    if (msg[0])
        fprintf(stderr, "%s\n", msg);
    nghttp2_session_del(sess);
    nghttp2_session_callbacks_del(cbs);
    return code;
}

/* See ha_grpc_module.probe. */
int cmd__probe_grpc(const char *addr, const char *service, uint64_t timeout_ns)
{
    char host[256], port[8], err[512];
    uint64_t deadline = cmd_now_ms() + (timeout_ns + HA_NS_PER_MS - 1) / HA_NS_PER_MS;
    if (pg_split(addr, host, sizeof host, port, sizeof port) != 0) {
        fprintf(stderr, "error: --grpc: want host:port or [ipv6]:port, got '%s'\n", addr);
        return 1;
    }
    if (strlen(service) > 1024) {
        fprintf(stderr, "error: --service: longer than 1024 bytes\n");
        return 1;
    }
    int fd = pg_dial(host, port, deadline, err, sizeof err);
    if (fd < 0) {
        char d[32];
        ha_duration_format(timeout_ns, d, sizeof d);
        if (fd == -2)
            fprintf(stderr, "timeout: failed to connect service \"%s\" within %s\n", addr, d);
        else
            fprintf(stderr, "error: failed to connect service at \"%s\": %s\n", addr, err);
        return PG_CONNECT;
    }
    int code = pg_call_check(fd, addr, service, timeout_ns, deadline);
    close(fd);
    return code;
}
