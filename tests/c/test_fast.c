/* test_fast.c: the connection-per-probe fast path's parser and response
 * head (front_fast.c): what qualifies, and that everything unusual is left
 * to h2o. */
#include <stdlib.h>
#include <string.h>

#include "front_fast.h"

#include "testlib.h"

/* Parses a copy of s sized exactly (so a read past the end is an ASan
 * report); returns whether it qualified. */
static bool parse(const char *s, ha_fast_req *r)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    bool ok = front_fast_parse(copy, n, r);
    /* the view points into the copy: re-base it onto s for the checks */
    if (ok) {
        r->path = s + (r->path - copy);
        if (r->accept)
            r->accept = s + (r->accept - copy);
        if (r->authorization)
            r->authorization = s + (r->authorization - copy);
    }
    free(copy);
    return ok;
}

static bool qualifies(const char *s)
{
    ha_fast_req r;
    return parse(s, &r);
}

static void test_kubelet_request(void)
{
    /* what kubelet's prober (Go net/http, keep-alives disabled) sends */
    ha_fast_req r;
    const char *k = "GET /readyz HTTP/1.1\r\nHost: 10.0.0.7:8080\r\nUser-Agent: kube-probe/1.31\r\n"
                    "Accept: */*\r\nConnection: close\r\nAccept-Encoding: gzip\r\n\r\n";
    CHECK(parse(k, &r));
    CHECK(!r.head);
    CHECK_INT(r.path_len, 7);
    CHECK(memcmp(r.path, "/readyz", 7) == 0);
    CHECK(r.accept != NULL && r.accept_len == 3 && memcmp(r.accept, "*/*", 3) == 0);
    CHECK(r.authorization == NULL);

    CHECK(parse("HEAD /livez/engine HTTP/1.1\r\nconnection: Close\r\nAuthorization: Bearer abc  \r\n\r\n", &r));
    CHECK(r.head);
    CHECK_INT(r.path_len, 13);
    CHECK(r.authorization != NULL && r.authorization_len == 10 && memcmp(r.authorization, "Bearer abc", 10) == 0);
    /* HTTP/1.0 closes unless it asks for keep-alive */
    CHECK(qualifies("GET /healthz HTTP/1.0\r\n\r\n"));
    CHECK(qualifies("GET /health/ready HTTP/1.0\r\nUser-Agent: curl\r\n\r\n"));
    CHECK(qualifies("GET /readyz/ HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n"));
    CHECK(qualifies("GET /a.b/c-d_e HTTP/1.1\r\nX:\r\nConnection:close\r\n\r\n")); /* empty value, no space */
}

static void test_left_to_h2o(void)
{
    /* keep-alive: h2o serves the connection */
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    /* incomplete, pipelined, trailing bytes */
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\nGET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n"));
    CHECK(!qualifies(""));
    CHECK(!qualifies("\r\n\r\n"));
    /* methods, versions, HTTP/2 preface */
    CHECK(!qualifies("POST /readyz HTTP/1.1\r\nConnection: close\r\n\r\n"));
    CHECK(!qualifies("get /readyz HTTP/1.1\r\nConnection: close\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/2.0\r\nConnection: close\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.2\r\nConnection: close\r\n\r\n"));
    CHECK(!qualifies("GET /readyz\r\n\r\n"));
    CHECK(!qualifies("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    /* paths that h2o would normalise, decode or split */
    static const char *paths[] = {"/readyz?verbose", "/readyz?exclude=x", "//readyz", "/a/../readyz", "/./readyz",
                                  "/readyz/..", "/readyz/.", "/ready%7a", "readyz", "*", "/r y", "/réadyz", ""};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nConnection: close\r\n\r\n", paths[i]);
        CHECK(!qualifies(req));
    }
    /* bodies, upgrades and other fields h2o must see */
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close, Upgrade\r\nUpgrade: h2c\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nUpgrade: h2c\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nTE: trailers\r\n\r\n"));
    /* duplicates of the fields the fast path reads */
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nConnection: close\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nAccept: a\r\nAccept: b\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nAuthorization: a\r\nauthorization: b\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nHost: a\r\nHost: b\r\n\r\n"));
    /* malformed fields */
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\n: x\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nBad Name: x\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nNoColon\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\n folded: x\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\nConnection: close\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\nX: y\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nX: a\x01z\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: close\r\nX: a\x7fz\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: clo se\r\n\r\n"));
    CHECK(!qualifies("GET /readyz HTTP/1.1\r\nConnection: ,\"close\"\r\n\r\n"));
    /* an embedded NUL ends nothing early: the whole buffer is parsed */
    {
        static const char nul[] = "GET /readyz HTTP/1.1\r\nConnection: close\r\nX: a\0b\r\n\r\n";
        ha_fast_req r;
        CHECK(!front_fast_parse(nul, sizeof nul - 1, &r));
    }
}

static void test_limits(void)
{
    ha_buf b = HA_BUF_INIT;
    buf_adds(&b, "GET /readyz HTTP/1.1\r\nConnection: close\r\n");
    for (int i = 0; i < HA_FAST_MAX_HEADERS - 1; i++)
        buf_printf(&b, "X-%d: y\r\n", i);
    buf_adds(&b, "\r\n");
    CHECK(qualifies(buf_cstr(&b))); /* exactly the limit */
    b.len -= 2;
    buf_adds(&b, "X-last: y\r\n\r\n");
    CHECK(!qualifies(buf_cstr(&b)));
    buf_reset(&b);
    buf_adds(&b, "GET /readyz HTTP/1.1\r\nConnection: close\r\nX: ");
    while (b.len < HA_FAST_MAX_REQUEST - 4)
        buf_addc(&b, 'a');
    buf_adds(&b, "\r\n\r\n");
    CHECK_INT(b.len, HA_FAST_MAX_REQUEST);
    CHECK(qualifies(buf_cstr(&b)));
    b.len -= 4;
    buf_adds(&b, "a\r\n\r\n");
    CHECK(!qualifies(buf_cstr(&b)));
    buf_free(&b);
}

static void test_head(void)
{
    ha_buf b = HA_BUF_INIT;
    size_t at = 0;
    front_fast_head(&b, 503, "Service Unavailable", "application/json", 142, &at);
    const char *want = "HTTP/1.1 503 Service Unavailable\r\nDate: Tue, 01 Dec 2026 17:13:54 GMT\r\n"
                       "Connection: close\r\nContent-Length: 142\r\nServer: healthagent\r\n"
                       "content-type: application/json\r\ncache-control: no-store\r\n\r\n";
    CHECK_INT(b.len, strlen(want));
    memcpy(b.data + at, "Tue, 01 Dec 2026 17:13:54 GMT", HA_FAST_DATE_LEN);
    CHECK_STR(buf_cstr(&b), want);
    buf_free(&b);
}

int main(void)
{
    test_kubelet_request();
    test_left_to_h2o();
    test_limits();
    test_head();
    return testlib_report();
}
