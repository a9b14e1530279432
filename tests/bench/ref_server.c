/*
 * ref_server: the yardstick the benchmarks compare healthagent against.
 *
 * A single-threaded libh2o (libuv flavour) server on 127.0.0.1:<port> that answers
 * every request with the same static JSON body. It does the least work h2o allows:
 * no pool copy of the body (the iovec points at static storage, which outlives every
 * write), one header, no logging. HTTP/1.1 and h2c with prior knowledge are both
 * served, as h2o's HTTP/1 accept path recognises the HTTP/2 connection preface.
 *
 * Usage: ha_ref_server <port>       SIGTERM or SIGINT stops it with status 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <h2o.h>

static const char ref_body[] = "{\"status\":\"UP\",\"components\":{\"self\":{\"status\":\"UP\"}}}";

typedef struct {
    uv_loop_t loop;            /* the only loop; owns every handle below */
    uv_tcp_t listener;         /* 127.0.0.1:<port> */
    uv_signal_t sigterm;       /* SIGTERM: stop */
    uv_signal_t sigint;        /* SIGINT: stop */
    h2o_globalconf_t config;   /* one host, one path "/", one handler */
    h2o_context_t ctx;         /* per-loop h2o state */
    h2o_accept_ctx_t accept;   /* borrows ctx and config.hosts */
} ref_server_t;

static ref_server_t ref_srv;

/* Generator with no callbacks: the whole body goes out in one final h2o_send, so
 * h2o never asks to proceed; there is nothing to stop either. */
static h2o_generator_t ref_generator = {NULL, NULL};

/* on_req: answers any method and path with 200 and ref_body. Returns 0 (handled). */
static int ref_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_iovec_t body = {(char *)ref_body, sizeof(ref_body) - 1};
    h2o_iovec_t buf = body; /* h2o_send takes a mutable array; the bytes stay static */

    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_start_response(req, &ref_generator);
    h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

/* on_accept: hands each accepted TCP stream to h2o. The uv_tcp_t is heap-allocated and
 * freed by its close callback, which h2o invokes when it closes the socket. */
static void ref_on_accept(uv_stream_t *listener, int status)
{
    uv_tcp_t *conn;
    h2o_socket_t *sock;

    if (status != 0)
        return;
    conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&ref_srv.accept, sock);
}

/* on_signal: stops the loop. Open keep-alive connections are not drained: the
 * process exits right after, and the yardstick has no state worth flushing. The
 * watchers stay installed, so a second signal during teardown is harmless too. */
static void ref_on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    if (!uv_is_closing((uv_handle_t *)&ref_srv.listener))
        uv_close((uv_handle_t *)&ref_srv.listener, NULL);
    uv_stop(sig->loop);
}

/* ref_listen: binds and listens on 127.0.0.1:port. Returns 0 or a negative libuv code. */
static int ref_listen(uv_loop_t *loop, uv_tcp_t *listener, int port)
{
    struct sockaddr_in addr;
    int r;

    if ((r = uv_tcp_init(loop, listener)) != 0)
        return r;
    if ((r = uv_ip4_addr("127.0.0.1", port, &addr)) != 0)
        goto fail;
    if ((r = uv_tcp_bind(listener, (struct sockaddr *)&addr, 0)) != 0)
        goto fail;
    if ((r = uv_listen((uv_stream_t *)listener, 1024, ref_on_accept)) != 0)
        goto fail;
    return 0;

fail:
    uv_close((uv_handle_t *)listener, NULL);
    return r;
}

int main(int argc, char **argv)
{
    h2o_hostconf_t *hostconf;
    h2o_pathconf_t *pathconf;
    h2o_handler_t *handler;
    char *end;
    long port;
    int r;

    if (argc != 2) {
        fprintf(stderr, "usage: %s <port>\n", argv[0]);
        return 2;
    }
    errno = 0;
    port = strtol(argv[1], &end, 10);
    if (errno != 0 || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "%s: bad port '%s'\n", argv[0], argv[1]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&ref_srv.config);
    hostconf = h2o_config_register_host(&ref_srv.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pathconf = h2o_config_register_path(hostconf, "/", 0);
    handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = ref_on_req;

    uv_loop_init(&ref_srv.loop);
    h2o_context_init(&ref_srv.ctx, &ref_srv.loop, &ref_srv.config);
    ref_srv.accept.ctx = &ref_srv.ctx;
    ref_srv.accept.hosts = ref_srv.config.hosts;

    if ((r = ref_listen(&ref_srv.loop, &ref_srv.listener, (int)port)) != 0) {
        fprintf(stderr, "%s: listen on 127.0.0.1:%ld: %s\n", argv[0], port, uv_strerror(r));
        return 1;
    }
    uv_signal_init(&ref_srv.loop, &ref_srv.sigterm);
    uv_signal_init(&ref_srv.loop, &ref_srv.sigint);
    uv_signal_start(&ref_srv.sigterm, ref_on_signal, SIGTERM);
    uv_signal_start(&ref_srv.sigint, ref_on_signal, SIGINT);

    uv_run(&ref_srv.loop, UV_RUN_DEFAULT);
    return 0;
}
