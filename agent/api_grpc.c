/* api_grpc.c: health.grpc, the standard gRPC health check
 * (grpc.health.v1.Health/Check) as one HTTP/2 request.
 *
 *   local grpc = require "health.grpc"
 *   local st, err = grpc.check("127.0.0.1:50051", "app", {timeout = 2, tls = false})
 *   -- "SERVING" | "NOT_SERVING" | "UNKNOWN" | "SERVICE_UNKNOWN"  or  nil, message
 *
 * A unary gRPC call is a POST of one length-prefixed message, and its
 * status comes back in the HTTP/2 trailers. health.http already runs
 * HTTP/2 on the engine loop (libcurl: prior knowledge for plaintext, ALPN
 * for TLS, trailers through the header callback), so this module only
 * speaks the protocol: it builds the frame, calls http.request (held as an
 * upvalue) with lua_callk, and reads the answer in the continuation. The
 * request yields the task exactly as a script's own http.request would, so
 * timeouts, deadlines and cancellation are health.http's.
 *
 * Wire format (protobuf, hand-encoded: two fields):
 *   request  HealthCheckRequest  { string service = 1; }  -> 0x0a len bytes
 *   response HealthCheckResponse { ServingStatus status = 1; } -> 0x08 varint
 *   frame    1 byte compressed flag (0), 4 bytes big-endian length, message */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "common.h"

#define GRPC_FN "health.grpc.check"
#define GRPC_MAX_SERVICE 4096   /* longest service name sent */
#define GRPC_MAX_RESPONSE 65536 /* response bytes read */

static const char *const code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

static const char *const serving_names[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};

/* --- protobuf and framing ----------------------------------------------- */

static void put_varint(ha_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        buf_addc(b, (char)(v | 0x80));
        v >>= 7;
    }
    buf_addc(b, (char)v);
}

/* Reads a varint at *p (< end); returns false when truncated or too long. */
static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return true;
    }
    return false;
}

/* The framed HealthCheckRequest for service into b. */
static void encode_request(ha_buf *b, const char *service, size_t len)
{
    ha_buf msg = HA_BUF_INIT;
    if (len) { /* proto3: an empty string is not sent */
        buf_addc(&msg, 0x0a); /* field 1, wire type 2 */
        put_varint(&msg, len);
        buf_add(&msg, service, len);
    }
    unsigned char hdr[5] = {0, (unsigned char)(msg.len >> 24), (unsigned char)(msg.len >> 16),
                            (unsigned char)(msg.len >> 8), (unsigned char)msg.len};
    buf_add(b, hdr, sizeof hdr);
    buf_add(b, msg.data, msg.len);
    buf_free(&msg);
}

/* Decodes a framed HealthCheckResponse. Returns the status (0..3, or the
 * raw enum value) or -1 with a reason in *why. */
static long decode_response(const unsigned char *p, size_t n, const char **why)
{
    if (n < 5) {
        *why = "short response";
        return -1;
    }
    if (p[0] != 0) {
        *why = "compressed response";
        return -1;
    }
    size_t len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    if (len > n - 5) {
        *why = "truncated response";
        return -1;
    }
    const unsigned char *q = p + 5, *end = p + 5 + len;
    long status = 0; /* absent = UNKNOWN (proto3 default) */
    while (q < end) {
        uint64_t key, v;
        if (!get_varint(&q, end, &key))
            goto bad;
        switch (key & 7) {
        case 0: /* varint */
            if (!get_varint(&q, end, &v))
                goto bad;
            if (key >> 3 == 1)
                status = (long)(v > 1000 ? 1000 : v);
            break;
        case 1: /* 64-bit */
            if (end - q < 8)
                goto bad;
            q += 8;
            break;
        case 2: /* length-delimited */
            if (!get_varint(&q, end, &v) || v > (uint64_t)(end - q))
                goto bad;
            q += v;
            break;
        case 5: /* 32-bit */
            if (end - q < 4)
                goto bad;
            q += 4;
            break;
        default:
            goto bad;
        }
    }
    return status;
bad:
    *why = "malformed response";
    return -1;
}

/* grpc-message is percent-encoded; decodes it in place. */
static void percent_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        unsigned hi, lo;
        if (r[0] == '%' && sscanf(r + 1, "%1x%1x", &hi, &lo) == 2) {
            *w++ = (char)(hi << 4 | lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* --- the call ----------------------------------------------------------- */

/* Reads a header of the response headers table at idx (trailers included). */
static const char *header(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table keeps it alive */
    return s;
}

/* Continuation after http.request: stack [response | nil, message]. Pushes
 * the serving status or nil, message. */
static int check_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    int top = lua_gettop(L);
    if (lua_isnil(L, top - 1))
        return 2; /* nil, "timeout" | "connection refused" | "tls: ..." */
    int r = top - 1;
    lua_getfield(L, r, "http_version");
    bool h2 = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "2") == 0;
    lua_getfield(L, r, "status");
    lua_Integer http_status = lua_tointeger(L, -1);
    lua_getfield(L, r, "headers");
    int h = lua_gettop(L);
    lua_getfield(L, r, "body");
    size_t blen;
    const unsigned char *body = (const unsigned char *)lua_tolstring(L, -1, &blen);
    lua_pushnil(L);
    if (!h2) {
        lua_pushliteral(L, "grpc: the server does not speak HTTP/2");
        return 2;
    }
    if (http_status != 200) {
        lua_pushfstring(L, "grpc: HTTP status %d", (int)http_status);
        return 2;
    }
    const char *gs = header(L, h, "grpc-status");
    if (gs == NULL) {
        lua_pushliteral(L, "grpc: no grpc-status in the response");
        return 2;
    }
    long code = strtol(gs, NULL, 10);
    if (code == 5) { /* NOT_FOUND: the server does not know the service */
        lua_pushliteral(L, "SERVICE_UNKNOWN");
        return 1;
    }
    if (code != 0) {
        char msg[256] = "";
        const char *gm = header(L, h, "grpc-message");
        if (gm) {
            snprintf(msg, sizeof msg, "%s", gm);
            percent_decode(msg);
        }
        char num[24];
        snprintf(num, sizeof num, "code %ld", code);
        const char *name = code > 0 && code < (long)HA_ARRAY_SIZE(code_names) ? code_names[code] : num;
        if (msg[0])
            lua_pushfstring(L, "grpc: %s: %s", name, msg);
        else
            lua_pushfstring(L, "grpc: %s", name);
        return 2;
    }
    const char *why = NULL;
    long st = decode_response(body, blen, &why);
    if (st < 0) {
        lua_pushfstring(L, "grpc: %s", why);
        return 2;
    }
    if (st >= (long)HA_ARRAY_SIZE(serving_names)) {
        lua_pushfstring(L, "grpc: unknown serving status %d", (int)st);
        return 2;
    }
    lua_pushstring(L, serving_names[st]);
    return 1;
}

/* Reads an optional string option of the table at idx. Raises. */
static const char *opt_string(lua_State *L, int idx, const char *name)
{
    if (idx == 0)
        return NULL;
    int t = lua_getfield(L, idx, name);
    lua_pop(L, 1);
    if (t == LUA_TNIL)
        return NULL;
    if (t != LUA_TSTRING)
        luaL_error(L, GRPC_FN ": option '%s' must be a string", name);
    lua_getfield(L, idx, name);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

/* True for "host:port" or "[v6]:port" with a decimal port. */
static bool valid_target(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0' || strlen(colon + 1) > 5)
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    if (s[0] == '[')
        return colon[-1] == ']';
    return memchr(s, ':', (size_t)(colon - s)) == NULL && strpbrk(s, "/@ ") == NULL;
}

/* grpc.check(target, service [, {timeout=, tls=, ca_file=, authority=, verify=}])
 *   -> status string | nil, message. Raises on misuse. */
static int l_check(lua_State *L)
{
    const char *target = luaL_checkstring(L, 1);
    luaL_argcheck(L, valid_target(target), 1, "expected \"host:port\"");
    size_t slen = 0;
    const char *service = luaL_optlstring(L, 2, "", &slen);
    luaL_argcheck(L, slen <= GRPC_MAX_SERVICE, 2, "service name too long");
    int o = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        o = 3;
        static const char *const known[] = {"timeout", "tls", "ca_file", "authority", "verify", NULL};
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pop(L, 1);
            int i = 0;
            while (known[i] && !(lua_type(L, -1) == LUA_TSTRING && strcmp(known[i], lua_tostring(L, -1)) == 0))
                i++;
            if (known[i] == NULL)
                luaL_error(L, GRPC_FN ": unknown option '%s'", luaL_tolstring(L, -1, NULL));
        }
    }
    bool tls = false;
    if (o) {
        int t = lua_getfield(L, o, "tls");
        if (t != LUA_TNIL && t != LUA_TBOOLEAN)
            luaL_error(L, GRPC_FN ": option 'tls' must be a boolean");
        tls = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    const char *authority = opt_string(L, o, "authority");
    if (authority && (strpbrk(authority, "/@ \r\n") != NULL || *authority == '\0'))
        luaL_error(L, GRPC_FN ": option 'authority' must be a host name (with an optional port)");
    const char *ca_file = opt_string(L, o, "ca_file");
    lua_settop(L, 3);

    /* http.request{...}: [target, service, opts, request, req] */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_createtable(L, 0, 10);
    int req = lua_gettop(L);
    if (authority) { /* the URL names the authority (:authority, SNI); connect to target */
        lua_pushfstring(L, "%s://%s/grpc.health.v1.Health/Check", tls ? "https" : "http", authority);
        lua_setfield(L, req, "url");
        lua_pushstring(L, target);
        lua_setfield(L, req, "connect_to");
    } else {
        lua_pushfstring(L, "%s://%s/grpc.health.v1.Health/Check", tls ? "https" : "http", target);
        lua_setfield(L, req, "url");
    }
    lua_pushliteral(L, "POST");
    lua_setfield(L, req, "method");
    if (tls)
        lua_pushboolean(L, 1); /* ALPN h2 */
    else
        lua_pushliteral(L, "prior_knowledge");
    lua_setfield(L, req, "http2");
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "application/grpc");
    lua_setfield(L, -2, "content-type");
    lua_pushliteral(L, "trailers");
    lua_setfield(L, -2, "te");
    if (o) {
        lua_getfield(L, o, "timeout"); /* [..., req, headers, timeout] */
        if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) > 0 && lua_tonumber(L, -1) < 1e5) {
            char tv[32]; /* grpc-timeout: at most 8 digits and a unit */
            snprintf(tv, sizeof tv, "%.0fm", lua_tonumber(L, -1) * 1000.0);
            lua_pushstring(L, tv);
            lua_setfield(L, -3, "grpc-timeout");
        }
        lua_setfield(L, req, "timeout"); /* http.request checks it */
    }
    lua_setfield(L, req, "headers");
    ha_buf frame = HA_BUF_INIT;
    encode_request(&frame, service, slen);
    lua_pushlstring(L, frame.data, frame.len);
    buf_free(&frame);
    lua_setfield(L, req, "body");
    lua_pushinteger(L, GRPC_MAX_RESPONSE);
    lua_setfield(L, req, "max_body");
    if (ca_file) {
        lua_pushstring(L, ca_file);
        lua_setfield(L, req, "ca_file");
    }
    if (o) {
        lua_getfield(L, o, "verify"); /* nil leaves the default */
        lua_setfield(L, req, "verify");
    }
    lua_callk(L, 1, 2, 0, check_k); /* yields inside http.request */
    return check_k(L, LUA_OK, 0);
}

/* require "health.grpc": [-0, +1] the module; health.http underneath. */
int api_grpc_open(lua_State *L)
{
    api_http_open(L);                 /* [http] */
    lua_getfield(L, -1, "request");   /* [http, request] */
    lua_remove(L, -2);                /* [request] */
    lua_createtable(L, 0, 1);         /* [request, M] */
    lua_insert(L, -2);                /* [M, request] */
    lua_pushcclosure(L, l_check, 1);  /* [M, check] */
    lua_setfield(L, -2, "check");
    return 1;
}
