/* cmd_report.c: `healthagent report NAME STATUS [MESSAGE]`: one PUT
 * /-/checks/NAME against a running agent, for shell scripts and preStop
 * hooks (see cmd.h). Finds the agent and its token as the agent does: the
 * first listen address and the token of the config file and environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cmd.h"

#define REPORT_MESSAGE_MAX 1024          /* bytes of MESSAGE (the agent's HA_REPORT_OUTPUT_MAX) */
#define REPORT_MAX_RESPONSE (16u << 10)  /* bytes of the answer read at most */

static const char report_usage[] =
    "usage: healthagent report NAME UP|WARN|DOWN [MESSAGE] [--url http://HOST:PORT] [--timeout 2s]\n"
    "                          [--config FILE]\n"
    "Reports a result of the pushed check NAME (health.push) to the running agent:\n"
    "PUT /-/checks/NAME with the bearer token of the config file, HEALTHAGENT_TOKEN or\n"
    "HEALTHAGENT_TOKEN_FILE, on the first listen address (or --url). Exit 0 once the\n"
    "agent shows the report, 1 when it refuses it (the reason on stderr), 2 on bad\n"
    "usage or configuration, 3 when the agent cannot be reached in time.\n";

static int report_fail(int code, const char *fmt, const char *a)
{
    fputs("healthagent report: ", stderr);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return code;
}

/* The "error" string of the agent's JSON answer, or its first line:
 * copied into out. */
static void answer_reason(const char *body, char *out, size_t cap)
{
    const char *e = strstr(body, "\"error\":\"");
    size_t n = 0;
    if (e) {
        for (e += 9; *e && *e != '"' && n + 1 < cap; e++) {
            if (*e == '\\' && e[1])
                e++;
            out[n++] = *e;
        }
    } else {
        while (body[n] && body[n] != '\n' && body[n] != '\r' && n + 1 < cap) {
            out[n] = body[n];
            n++;
        }
    }
    out[n] = '\0';
}

int cmd_report(ha_config *cfg, int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    const char *config = NULL, *base = NULL;
    int npos = 0;
    uint64_t timeout = 2 * HA_NS_PER_S;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int common = cmd_common_flag(a, report_usage);
        if (common >= 0)
            return common;
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (npos == 3)
                return report_fail(2, "too many arguments (see --help)%s", "");
            pos[npos++] = a;
            continue;
        }
        if (v == NULL || (strcmp(a, "--url") != 0 && strcmp(a, "--timeout") != 0 && strcmp(a, "--config") != 0))
            return report_fail(2, v ? "unknown option '%s' (see --help)" : "option '%s' needs a value", a);
        i++;
        if (strcmp(a, "--timeout") == 0) {
            if (ha_duration_parse(v, &timeout) != 0 || timeout == 0)
                return report_fail(2, "--timeout: bad duration '%s'", v);
        } else if (strcmp(a, "--url") == 0) {
            base = v;
        } else {
            config = v;
        }
    }
    if (npos < 2)
        return report_fail(2, "expected NAME and STATUS (see --help)%s", "");
    const char *name = pos[0], *status = pos[1], *msg = pos[2];
    if (strcmp(status, "UP") != 0 && strcmp(status, "WARN") != 0 && strcmp(status, "DOWN") != 0)
        return report_fail(2, "STATUS must be UP, WARN or DOWN, not '%s'", status);
    if (msg && strlen(msg) > REPORT_MESSAGE_MAX)
        return report_fail(2, "MESSAGE is longer than %s bytes", "1024");
    /* empty, "." or "..": the URL would resolve to another path; longer
     * than a name: the URL would be cut to another name */
    if (!ha_name_valid(name, strlen(name)))
        return report_fail(2, "NAME '%s' is not a check name (1 to 128 of [A-Za-z0-9_.-], not . or ..)", name);
    char err[1024];
    if (config_load(cfg, config, err, sizeof err) != 0)
        return report_fail(2, "%s", err);
    if (cfg->token == NULL)
        return report_fail(2, "%s", "no token: the agent's /-/ endpoints need the one of its config "
                                    "(token, token_file), HEALTHAGENT_TOKEN or HEALTHAGENT_TOKEN_FILE");
    char url[1400];
    if (base)
        snprintf(url, sizeof url, "%s/-/checks/%s", base, name);
    else {
        char path[200];
        snprintf(path, sizeof path, "/-/checks/%s", name);
        cmd_default_url(cfg, path, url, sizeof url);
    }
    cmd_url u;
    if (cmd_url_parse(url, &u) != 0)
        return report_fail(2, "bad URL '%s': expected http://host[:port]", base ? base : url);

    ha_buf body = HA_BUF_INIT, req = HA_BUF_INIT;
    buf_printf(&body, "{\"status\":\"%s\"", status);
    if (msg) {
        buf_adds(&body, ",\"output\":");
        buf_json_str(&body, msg, strlen(msg));
    }
    buf_adds(&body, "}");
    bool v6 = strchr(u.host, ':') != NULL;
    buf_printf(&req,
               "PUT %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: healthagent-report/" HA_VERSION
               "\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n\r\n",
               u.path, v6 ? "[" : "", u.host, v6 ? "]" : "", u.port, cfg->token, body.len);
    buf_add(&req, body.data, body.len);
    buf_free(&body);
    int code = 3;
    char *buf = malloc(REPORT_MAX_RESPONSE);
    uint64_t deadline = cmd_now_ms() + (timeout + HA_NS_PER_MS - 1) / HA_NS_PER_MS;
    int fd = buf ? cmd_dial(&u, deadline, err, sizeof err) : -1;
    if (buf == NULL) {
        report_fail(1, "%s", "not enough memory");
        code = 1;
        goto out;
    }
    if (fd < 0) {
        report_fail(3, "%s", err);
        goto out;
    }
    ssize_t n = cmd_exchange(fd, buf_cstr(&req), req.len, deadline, buf, REPORT_MAX_RESPONSE, err, sizeof err);
    close(fd);
    if (n < 0) {
        report_fail(3, "%s", err);
        goto out;
    }
    int st = 0;
    if (sscanf(buf, "HTTP/1.%*[01] %3d", &st) != 1 || st < 100) {
        report_fail(3, "%s", n ? "not an HTTP response" : "connection closed without a response");
        goto out;
    }
    code = st >= 200 && st < 300 ? 0 : 1;
    if (code != 0) {
        char *b = strstr(buf, "\r\n\r\n");
        char reason[512];
        answer_reason(b ? b + 4 : "", reason, sizeof reason);
        if (reason[0] == '\0')
            snprintf(reason, sizeof reason, "%s", st == 401 ? "the token was refused"
                                                 : st == 403 ? "the agent has no token configured (admin is off)"
                                                             : "no reason given");
        fprintf(stderr, "healthagent report: %s: HTTP %d: %s\n", name, st, reason);
    }
out:
    free(buf);
    buf_free(&req);
    return code;
}
