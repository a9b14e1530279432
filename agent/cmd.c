/* cmd.c: what the commands share: the version line, the words every
 * command understands, and the plain-socket HTTP/1.1 client of the commands
 * that talk to a running agent (probe, report) with its deadline waits (see
 * cmd.h). */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "cmd.h"

static char cmd_version_line[160] = "healthagent " HA_VERSION " (commit unknown, built unknown)";

void cmd_set_build(const char *commit, const char *date)
{
    snprintf(cmd_version_line, sizeof cmd_version_line, "healthagent %s (commit %s, built %s)", HA_VERSION,
             commit && commit[0] ? commit : "unknown", date && date[0] ? date : "unknown");
}

int cmd_version(void)
{
    printf("%s\n", cmd_version_line);
    return 0;
}

int cmd_common_flag(const char *arg, const char *usage)
{
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(arg, "--version") == 0)
        return cmd_version();
    return -1;
}

uint64_t cmd_now_ms(void) { return uv_hrtime() / HA_NS_PER_MS; }

int cmd_wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = cmd_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* --- talking to a running agent -------------------------------------------- */

int cmd_url_parse(const char *s, cmd_url *u)
{
    if (strncmp(s, "http://", 7) != 0)
        return -1;
    s += 7;
    const char *slash = strchr(s, '/');
    const char *hend = slash ? slash : s + strlen(s);
    const char *colon = NULL;
    const char *h = s;
    size_t hl;
    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(hend - s));
        if (rb == NULL)
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        if (rb + 1 < hend) {
            if (rb[1] != ':')
                return -1;
            colon = rb + 1;
        }
    } else {
        colon = memchr(s, ':', (size_t)(hend - s));
        hl = (size_t)((colon ? colon : hend) - s);
    }
    if (hl == 0 || hl >= sizeof u->host)
        return -1;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    size_t pl = colon ? (size_t)(hend - colon - 1) : 2;
    if (pl == 0 || pl >= sizeof u->port)
        return -1;
    if (colon) {
        memcpy(u->port, colon + 1, pl);
        u->port[pl] = '\0';
        for (size_t i = 0; i < pl; i++)
            if (u->port[i] < '0' || u->port[i] > '9')
                return -1;
    } else {
        strcpy(u->port, "80");
    }
    snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/");
    return strlen(slash ? slash : "/") < sizeof u->path ? 0 : -1;
}

void cmd_default_url(const ha_config *cfg, const char *path, char *out, size_t len)
{
    const char *l = cfg->nlisten ? cfg->listen[0] : "0.0.0.0:8080";
    const char *colon = strrchr(l, ':');
    char host[256] = "127.0.0.1";
    if (colon && colon > l) {
        size_t hl = (size_t)(colon - l);
        if (hl < sizeof host) {
            memcpy(host, l, hl);
            host[hl] = '\0';
        }
    }
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "localhost") == 0 || host[0] == '\0')
        strcpy(host, "127.0.0.1");
    else if (strcmp(host, "[::]") == 0)
        strcpy(host, "[::1]");
    snprintf(out, len, "http://%s:%s%s", host, colon ? colon + 1 : "8080", path);
}

int cmd_dial(const cmd_url *u, uint64_t deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(u->host, u->port, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(g));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "no address for %s", u->host);
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            continue;
        }
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            int w = cmd_wait_fd(fd, POLLOUT, deadline);
            if (w == 0) {
                snprintf(err, errlen, "connect: timeout");
                close(fd);
                fd = -2;
                break;
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            r = soerr ? -1 : 0;
            errno = soerr;
        }
        if (r == 0)
            break;
        snprintf(err, errlen, "connect: %s", errno == ECONNREFUSED ? "connection refused" : strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

ssize_t cmd_exchange(int fd, const char *req, size_t n, uint64_t deadline, char *buf, size_t cap, char *err,
                     size_t errlen)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(err, errlen, "send: %s", strerror(errno));
            return -1;
        }
        if (cmd_wait_fd(fd, POLLOUT, deadline) <= 0) {
            snprintf(err, errlen, "timeout sending the request");
            return -1;
        }
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r > 0) {
            got += (size_t)r;
            buf[got] = '\0';
            /* done once the headers and the Content-Length body are in */
            char *eoh = strstr(buf, "\r\n\r\n");
            if (eoh) {
                const char *cl = strcasestr(buf, "\r\ncontent-length:");
                if (cl && cl < eoh) {
                    size_t want = (size_t)(eoh + 4 - buf) + strtoul(cl + 17, NULL, 10);
                    if (got >= want)
                        return (ssize_t)got;
                }
            }
            if (got + 1 >= cap)
                return (ssize_t)got;
            continue;
        }
        if (r == 0)
            return (ssize_t)got;
        if (errno != EAGAIN && errno != EINTR) {
            snprintf(err, errlen, "recv: %s", errno == ECONNRESET ? "connection reset" : strerror(errno));
            return -1;
        }
        int w = cmd_wait_fd(fd, POLLIN, deadline);
        if (w <= 0) {
            snprintf(err, errlen, "%s", got ? "timeout reading the response" : "timeout waiting for the response");
            return -1;
        }
    }
}

