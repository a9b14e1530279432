/* cmd_probe.c: `healthagent probe`: one HTTP/1.1 GET with plain sockets and
 * a poll(2) deadline, no Lua state, no event loop (see cmd.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "cmd.h"
#include "front_grpc.h"

#define PROBE_MAX_RESPONSE (64u << 10) /* bytes of the response read at most */

static const char probe_usage[] =
    "usage: healthagent probe [URL | --probe liveness|readiness|startup|health] [--timeout 1s]\n"
    "                         [--config FILE]\n"
    "One GET against a running agent: exit 0 on a 2xx answer, 1 otherwise with the\n"
    "reason on stderr. Default URL: the readiness path on 127.0.0.1 and the port of\n"
    "the first listen address (config file, HEALTHAGENT_LISTEN or 8080).\n"
    "\n"
    "       healthagent probe --grpc ADDR:PORT [--service NAME] [--timeout 1s]\n"
    "One grpc.health.v1.Health/Check (cleartext HTTP/2); one timeout covers the\n"
    "dial and the call. Exit codes as grpc_health_probe's: 0 SERVING, 1 bad\n"
    "arguments, 2 connection failure, 3 RPC failure (NOT_FOUND, UNIMPLEMENTED,\n"
    "deadline ...), 4 an answer other than SERVING.\n";

static int probe_fail(const char *url, const char *fmt, const char *a)
{
    fprintf(stderr, "healthagent probe: %s%s", url ? url : "", url ? ": " : "");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return 1;
}

/* Sends a GET for u's path and reads the response (see cmd_exchange). */
static ssize_t exchange(int fd, const cmd_url *u, uint64_t deadline, char *buf, size_t cap, char *err,
                        size_t errlen)
{
    char req[1400];
    bool v6 = strchr(u->host, ':') != NULL;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: healthagent-probe/" HA_VERSION
                     "\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
                     u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
    return cmd_exchange(fd, req, (size_t)n, deadline, buf, cap, err, errlen);
}

/* --- the answer's body ----------------------------------------------------
 * A JSON reader just big enough for the agent's own answers: the top-level
 * "reason", the "output" of a one-check answer, and the "status" and
 * "output" of each of "components". Anything else is skipped; a malformed
 * body makes the caller fall back to its first line. */

#define PROBE_JSON_DEPTH 32   /* nesting skipped at most (details are capped at 16) */
#define PROBE_MAX_LISTED 32   /* failing checks printed, one line each */

typedef struct {
    const char *p, *end;      /* the unread part of the body */
} probe_json;

typedef struct {
    char name[160];
    char status[8];           /* "DOWN", "INIT", ... */
    char output[256];         /* "" when the answer withholds it */
} probe_check;

typedef struct {
    char reason[256];         /* top-level "reason" or "error", or a one-check answer's "output" */
    probe_check failing[PROBE_MAX_LISTED];
    int nfailing;             /* listed */
    int more;                 /* failing but not listed */
} probe_answer;

static void pj_ws(probe_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n'))
        j->p++;
}

/* Consumes c (after white space). Returns true if it was there. */
static bool pj_eat(probe_json *j, char c)
{
    pj_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* The byte an escape \e stands for, or -1 (\u is read by the caller). */
static int pj_escape(char e)
{
    switch (e) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return -1;
    }
}

/* Reads a string into out (cap bytes, NUL-terminated, cut on overflow;
 * control characters become spaces, \u escapes UTF-8). Returns 0 or -1. */
static int pj_string(probe_json *j, char *out, size_t cap)
{
    size_t k = 0;
    if (!pj_eat(j, '"'))
        return -1;
    while (j->p < j->end && *j->p != '"') {
        unsigned cp = (unsigned char)*j->p++;
        bool raw = cp != '\\'; /* raw bytes (UTF-8 included) are copied as they are */
        if (!raw) {
            if (j->p >= j->end)
                return -1;
            char e = *j->p++;
            if (e == 'u') {
                char hex[5] = {0}, *endp;
                if (j->end - j->p < 4)
                    return -1;
                memcpy(hex, j->p, 4);
                cp = (unsigned)strtoul(hex, &endp, 16);
                if (*endp != '\0')
                    return -1;
                j->p += 4;
            } else {
                int b = pj_escape(e);
                if (b < 0)
                    return -1;
                cp = (unsigned)b;
            }
        }
        char u[3];
        size_t n = 1;
        if (cp < 0x20 || cp == 0x7f) {
            u[0] = ' ';
        } else if (raw || cp < 0x80) {
            u[0] = (char)cp;
        } else if (cp < 0x800) {
            u[0] = (char)(0xc0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp >= 0xd800 && cp < 0xe000) {
            u[0] = '?'; /* a surrogate half: not worth pairing for a message */
        } else {
            u[0] = (char)(0xe0 | cp >> 12);
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (char)(0x80 | (cp & 0x3f));
            n = 3;
        }
        if (k + n < cap) {
            memcpy(out + k, u, n);
            k += n;
        }
    }
    out[k] = '\0';
    return pj_eat(j, '"') ? 0 : -1;
}

/* Skips one value of any kind. Returns 0 or -1. */
static int pj_skip(probe_json *j, int depth)
{
    char scratch[8];
    pj_ws(j);
    if (j->p >= j->end || depth > PROBE_JSON_DEPTH)
        return -1;
    char c = *j->p;
    if (c == '"')
        return pj_string(j, scratch, sizeof scratch);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (pj_eat(j, close))
            return 0;
        do {
            if (c == '{' && (pj_string(j, scratch, sizeof scratch) != 0 || !pj_eat(j, ':')))
                return -1;
            if (pj_skip(j, depth + 1) != 0)
                return -1;
        } while (pj_eat(j, ','));
        return pj_eat(j, close) ? 0 : -1;
    }
    const char *start = j->p; /* number, true, false, null */
    while (j->p < j->end && strchr("0123456789+-.eEtruefalsn", *j->p) != NULL)
        j->p++;
    return j->p > start ? 0 : -1;
}

/* Reads one component object into c. Returns 0 or -1. */
static int pj_check(probe_json *j, probe_check *c)
{
    char key[16];
    c->status[0] = c->output[0] = '\0';
    if (!pj_eat(j, '{'))
        return -1;
    if (pj_eat(j, '}'))
        return 0;
    do {
        if (pj_string(j, key, sizeof key) != 0 || !pj_eat(j, ':'))
            return -1;
        int r = strcmp(key, "status") == 0   ? pj_string(j, c->status, sizeof c->status)
                : strcmp(key, "output") == 0 ? pj_string(j, c->output, sizeof c->output)
                                             : pj_skip(j, 1);
        if (r != 0)
            return -1;
    } while (pj_eat(j, ','));
    return pj_eat(j, '}') ? 0 : -1;
}

/* Parses a probe answer ({"status","reason","components":{...}}) or a
 * one-check answer ({"status","output",...}). Returns 0 or -1. */
static int parse_answer(const char *body, size_t len, probe_answer *a)
{
    probe_json j = {body, body + len};
    probe_check one;
    char key[16];
    memset(a, 0, sizeof *a);
    if (!pj_eat(&j, '{'))
        return -1;
    if (pj_eat(&j, '}'))
        return 0;
    do {
        if (pj_string(&j, key, sizeof key) != 0 || !pj_eat(&j, ':'))
            return -1;
        int r;
        if (strcmp(key, "reason") == 0 || strcmp(key, "error") == 0 ||
            (strcmp(key, "output") == 0 && a->reason[0] == '\0')) {
            r = pj_string(&j, a->reason, sizeof a->reason);
        } else if (strcmp(key, "components") == 0) {
            if (!pj_eat(&j, '{'))
                return -1;
            if (pj_eat(&j, '}'))
                continue;
            do {
                if (pj_string(&j, one.name, sizeof one.name) != 0 || !pj_eat(&j, ':') || pj_check(&j, &one) != 0)
                    return -1;
                if (strcmp(one.status, "DOWN") != 0 && strcmp(one.status, "INIT") != 0)
                    continue;
                if (a->nfailing < PROBE_MAX_LISTED)
                    a->failing[a->nfailing++] = one;
                else
                    a->more++;
            } while (pj_eat(&j, ','));
            r = pj_eat(&j, '}') ? 0 : -1;
        } else {
            r = pj_skip(&j, 1);
        }
        if (r != 0)
            return -1;
    } while (pj_eat(&j, ','));
    return pj_eat(&j, '}') ? 0 : -1;
}

/* The failure of an answer, on stderr: "URL: HTTP n[: reason]", then one
 * line per failing check of a probe answer ("  DOWN  db: connection
 * refused"). A body that is not the agent's JSON gives its first 200 bytes
 * on the first line instead. */
static void report_status(const char *url, int status, const char *body, size_t len)
{
    probe_answer a;
    char what[600];
    if (parse_answer(body, len, &a) == 0) {
        snprintf(what, sizeof what, "HTTP %d%s%s", status, a.reason[0] ? ": " : "", a.reason);
        probe_fail(url, "%s", what);
        for (int i = 0; i < a.nfailing; i++)
            fprintf(stderr, "  %-4s  %s%s%s\n", a.failing[i].status, a.failing[i].name, a.failing[i].output[0] ? ": " : "",
                    a.failing[i].output);
        if (a.more)
            fprintf(stderr, "  ... and %d more failing check(s)\n", a.more);
        return;
    }
    char first[201];
    size_t k = 0;
    for (size_t i = 0; i < len && k < 200 && body[i] != '\n'; i++)
        first[k++] = (body[i] == '\r' || body[i] == '\t') ? ' ' : body[i];
    while (k && first[k - 1] == ' ')
        k--;
    first[k] = '\0';
    snprintf(what, sizeof what, "HTTP %d%s%s", status, k ? ": " : "", first);
    probe_fail(url, "%s", what);
}

/* probe --grpc: grpc_health_probe's arguments and exit codes. */
static int probe_grpc(int argc, char **argv)
{
    const char *addr = NULL, *service = "";
    uint64_t timeout = HA_NS_PER_S;
    char err[700];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL || (strcmp(a, "--grpc") != 0 && strcmp(a, "--service") != 0 && strcmp(a, "--timeout") != 0)) {
            fprintf(stderr, "healthagent probe: ");
            fprintf(stderr, v ? "unknown option '%s' with --grpc (see --help)\n" : "option '%s' needs a value\n", a);
            return 1;
        }
        i++;
        if (strcmp(a, "--grpc") == 0) {
            addr = v;
        } else if (strcmp(a, "--service") == 0) {
            service = v;
        } else if (ha_duration_parse(v, &timeout) != 0 || timeout == 0) {
            fprintf(stderr, "healthagent probe: --timeout: bad duration '%s'\n", v);
            return 1;
        }
    }
    const ha_grpc_module *m = front_grpc_load(err, sizeof err);
    if (m == NULL) {
        fprintf(stderr, "healthagent probe: %s\n", err);
        return 2;
    }
    return m->probe(addr, service, timeout);
}

int cmd_probe(ha_config *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--grpc") == 0)
            return probe_grpc(argc, argv);
    char err[1024];
    const char *url = NULL, *config = NULL;
    int pi = HA_PI_READINESS;
    uint64_t timeout = HA_NS_PER_S;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int common = cmd_common_flag(a, probe_usage);
        if (common >= 0)
            return common;
        if (a[0] != '-') {
            if (url)
                return probe_fail(NULL, "more than one URL (see --help)%s", "");
            url = a;
            continue;
        }
        if (v == NULL || (strcmp(a, "--probe") != 0 && strcmp(a, "--timeout") != 0 && strcmp(a, "--config") != 0))
            return probe_fail(NULL, v ? "unknown option '%s' (see --help)" : "option '%s' needs a value", a);
        i++;
        if (strcmp(a, "--probe") == 0) {
            pi = -1;
            for (int k = 0; k < HA_NPROBES; k++)
                if (strcmp(v, ha_probe_name(k)) == 0)
                    pi = k;
            if (pi < 0)
                return probe_fail(NULL, "--probe: expected liveness, readiness, startup or health, got '%s'", v);
        } else if (strcmp(a, "--timeout") == 0) {
            if (ha_duration_parse(v, &timeout) != 0 || timeout == 0)
                return probe_fail(NULL, "--timeout: bad duration '%s'", v);
        } else {
            config = v;
        }
    }
    if (config_load(cfg, config, err, sizeof err) != 0)
        return probe_fail(NULL, "%s", err);
    char def[1400];
    if (url == NULL) {
        cmd_default_url(cfg, cfg->probes[pi].paths[0], def, sizeof def);
        url = def;
    }
    cmd_url u;
    if (cmd_url_parse(url, &u) != 0)
        return probe_fail(url, "%s", strncmp(url, "https://", 8) == 0 ? "https is not supported: probe the plain HTTP listener"
                                                                      : "bad URL: expected http://host[:port][/path]");
    uint64_t deadline = cmd_now_ms() + (timeout + HA_NS_PER_MS - 1) / HA_NS_PER_MS;
    int fd = cmd_dial(&u, deadline, err, sizeof err);
    if (fd < 0)
        return probe_fail(url, "%s", err);
    char *buf = malloc(PROBE_MAX_RESPONSE);
    if (buf == NULL) {
        close(fd);
        return probe_fail(url, "%s", "not enough memory");
    }
    ssize_t n = exchange(fd, &u, deadline, buf, PROBE_MAX_RESPONSE, err, sizeof err);
    close(fd);
    int code = 1;
    if (n < 0) {
        probe_fail(url, "%s", err);
        goto out;
    }
    buf[n] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*[01] %3d", &status) != 1 || status < 100) {
        probe_fail(url, "%s", n ? "not an HTTP response" : "connection closed without a response");
        goto out;
    }
    if (status >= 200 && status < 300) {
        code = 0;
        goto out;
    }
    char *body = strstr(buf, "\r\n\r\n");
    body = body ? body + 4 : buf + n;
    report_status(url, status, body, (size_t)(buf + n - body));
out:
    free(buf);
    return code;
}
