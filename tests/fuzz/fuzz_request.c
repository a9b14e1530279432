/* fuzz_request.c: the front's request path, end to end: the fuzz bytes are
 * what one client sends on one TCP connection to a real front (front_new on
 * 127.0.0.1, h2o parsing HTTP/1, h2c upgrade and HTTP/2 with prior
 * knowledge), then the client half-closes and reads until the front ends the
 * connection. That drives the connection bookkeeping (caps, read wrapper,
 * in-flight counts, refusals with RST_STREAM or 431), routing (probes, check
 * paths, /-/ admin, /info, 404), the query (verbose, exclude) and header
 * handling (Accept, Authorization, the header bounds).
 *
 * The front serves a fixed snapshot whose checks are fresh, so no probe
 * waits for an engine; a stand-in engine loop end drains the front's
 * messages. The client connects from 127.0.0.2, outside the trusted
 * networks. Checks:
 *   - every HTTP/1 response starts with "HTTP/1.1 " and a status the front
 *     or h2o can give;
 *   - a check output never reaches a client that did not send the token;
 *   - the front ends every connection (the client sees EOF or a reset within
 *     the input's time budget), so nothing is held after the client left. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "bridge.h"
#include "config.h"
#include "front.h"
#include "front_admin.h"
#include "fuzz.h"
#include "log.h"

#define TOKEN "fuzz-admin-token-0123456789"
#define SECRET "SECRET-OUTPUT-7f3a"
#define REPLY_MAX (1 << 20)
#define INPUT_BUDGET_MS 2000 /* the front must have ended the connection by then */

typedef struct {
    uv_loop_t loop;
    ha_config cfg;
    ha_bridge bridge;
    ha_front *front;
    uv_async_t engine;        /* stands in for the engine loop's wakeup */
    struct sockaddr_in addr;  /* where the front listens */
} fuzz_server;

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uv_timer_t deadline;
    uv_buf_t out;
    char *reply;              /* malloc'd, REPLY_MAX */
    size_t len;
    bool ended;               /* EOF, reset or connect failure */
    int closing;              /* handles whose close is pending */
} fuzz_client;

static fuzz_server srv;

static void engine_drain(uv_async_t *h)
{
    for (ha_msg *m = bridge_receive(&srv.bridge), *next; m; m = next) {
        next = m->next;
        free(m);
    }
}

static void add_check(ha_snapshot *s, const char *name, unsigned probes, ha_status st, const char *out)
{
    ha_snap_check *c = &s->checks[s->n++];
    c->name = strdup(name);
    c->probes = probes;
    c->critical = true;
    c->status = st;
    c->output = strdup(out);
    c->details_json = strdup("{\"k\":\"" SECRET "\"}");
    c->time_ms = 1795341600000LL;
    c->runs = 1;
    c->expires_ns = UINT64_MAX / 2; /* fresh: no probe waits */
    c->expired_ns = UINT64_MAX / 2;
    c->max_age_ns = UINT64_MAX / 2;
    c->timeout_ns = HA_NS_PER_S;
}

static int server_start(void)
{
    char err[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof srv.addr;
    memset(&srv.addr, 0, sizeof srv.addr);
    srv.addr.sin_family = AF_INET;
    srv.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&srv.addr, sizeof srv.addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&srv.addr, &len) != 0)
        return -1;
    close(fd); /* the front binds it next: a free port */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", ntohs(srv.addr.sin_port));
    log_setup(0, LOG_ERROR);
    config_defaults(&srv.cfg);
    free(srv.cfg.listen[0]);
    srv.cfg.listen[0] = strdup(listen);
    srv.cfg.token = strdup(TOKEN);
    srv.cfg.shutdown_delay_ns = 0;
    uv_loop_init(&srv.loop);
    bridge_init(&srv.bridge);
    uv_async_init(&srv.loop, &srv.engine, engine_drain);
    srv.bridge.engine_wakeup = &srv.engine;
    front_admin_init("fuzz", "fuzz");
    srv.front = front_new(&srv.loop, &srv.cfg, &srv.bridge, err, sizeof err);
    if (srv.front == NULL) {
        fprintf(stderr, "fuzz_request: %s\n", err);
        return -1;
    }
    ha_snapshot *s = calloc(1, sizeof *s);
    s->checks = calloc(3, sizeof *s->checks);
    s->generation = 1;
    add_check(s, "cache", HA_PROBE_READINESS, HA_DOWN, SECRET " cache");
    add_check(s, "db", HA_PROBE_READINESS | HA_PROBE_LIVENESS, HA_UP, SECRET " db");
    add_check(s, "x y", HA_PROBE_STARTUP, HA_WARN, SECRET " xy");
    bridge_publish(&srv.bridge, s, true);
    uv_run(&srv.loop, UV_RUN_NOWAIT); /* the front takes it */
    return 0;
}

static void client_closed(uv_handle_t *h)
{
    fuzz_client *c = h->data;
    c->closing--;
}

static void client_end(fuzz_client *c)
{
    if (c->ended)
        return;
    c->ended = true;
    uv_timer_stop(&c->deadline);
    c->closing = 2;
    uv_close((uv_handle_t *)&c->tcp, client_closed);
    uv_close((uv_handle_t *)&c->deadline, client_closed);
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    fuzz_client *c = h->data;
    size_t room = REPLY_MAX - c->len;
    *buf = uv_buf_init(c->reply + c->len, room > 65536 ? 65536 : (unsigned)room);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    fuzz_client *c = s->data;
    if (n > 0)
        c->len += (size_t)n;
    if (n < 0 || c->len == REPLY_MAX)
        client_end(c);
}

static void client_shut(uv_shutdown_t *r, int status) { (void)r; (void)status; }

static void client_written(uv_write_t *r, int status)
{
    fuzz_client *c = r->data;
    if (status == 0 && !c->ended)
        uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, client_shut);
}

static void client_connected(uv_connect_t *r, int status)
{
    fuzz_client *c = r->data;
    if (status != 0) {
        client_end(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read);
    c->wreq.data = c;
    uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &c->out, 1, client_written);
}

static void client_timeout(uv_timer_t *t)
{
    fuzz_client *c = t->data;
    FUZZ_CHECK(c->ended, "the front still holds the connection after the client left");
    client_end(c);
}

/* Statuses the front (front.c, front_admin.c) and h2o can answer with. */
static bool known_status(int st)
{
    static const int ok[] = {101, 200, 202, 204, 400, 401, 403, 404, 405, 413, 414, 417, 431, 500, 501, 503};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (st == ok[i])
            return true;
    return false;
}

/* Checks each "HTTP/1.1 NNN" status line at the start of a response. */
static void check_http1(const char *r, size_t n)
{
    if (n < 5 || memcmp(r, "HTTP/", 5) != 0)
        return; /* HTTP/2 frames, or nothing */
    for (const char *p = r; p && (size_t)(p - r) + 12 <= n;) {
        FUZZ_CHECK(memcmp(p, "HTTP/1.1 ", 9) == 0, "a response that does not start with HTTP/1.1");
        int st = atoi(p + 9);
        FUZZ_CHECK(known_status(st), p);
        if (st == 101)
            break; /* HTTP/2 follows */
        /* the next response of a pipelined series, if any */
        const char *q = memmem(p + 12, n - (size_t)(p + 12 - r), "\r\nHTTP/1.1 ", 11);
        p = q ? q + 2 : NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (srv.front == NULL && server_start() != 0)
        abort();
    atomic_store(&srv.bridge.heartbeat_ns, uv_hrtime()); /* the engine looks alive */
    fuzz_client c;
    memset(&c, 0, sizeof c);
    c.reply = malloc(REPLY_MAX + 1);
    c.out = uv_buf_init((char *)data, (unsigned)size);
    uv_tcp_init(&srv.loop, &c.tcp);
    uv_timer_init(&srv.loop, &c.deadline);
    c.tcp.data = c.creq.data = c.deadline.data = &c;
    struct sockaddr_in from;
    uv_ip4_addr("127.0.0.2", 0, &from); /* not in the trusted networks */
    uv_tcp_bind(&c.tcp, (const struct sockaddr *)&from, 0);
    uv_tcp_connect(&c.creq, &c.tcp, (const struct sockaddr *)&srv.addr, client_connected);
    uv_timer_start(&c.deadline, client_timeout, INPUT_BUDGET_MS, 0);
    while (!c.ended || c.closing > 0)
        uv_run(&srv.loop, UV_RUN_ONCE);
    uv_run(&srv.loop, UV_RUN_NOWAIT); /* the front's side of the close */

    c.reply[c.len] = '\0';
    if (getenv("FUZZ_REQUEST_DUMP")) /* debugging a corpus entry: show the reply */
        fwrite(c.reply, 1, c.len, stderr);
    check_http1(c.reply, c.len);
    if (memmem(data, size, TOKEN, strlen(TOKEN)) == NULL)
        FUZZ_CHECK(memmem(c.reply, c.len, SECRET, strlen(SECRET)) == NULL,
                   "a check output or details reached a client without the token");
    free(c.reply);
    return 0;
}
