/* cmd.h: the one-shot commands of the healthagent binary. Each takes the
 * defaults in cfg (the config file and environment apply as for the agent),
 * its own arguments (argv[0] is the command's name) and returns the process
 * exit code.
 *
 *   probe  one HTTP GET against a running agent, no Lua at all: 0 on 2xx,
 *          1 otherwise (the reason on stderr). For Docker HEALTHCHECK (which
 *          reserves 2) and Kubernetes exec probes.
 *   check  loads the scripts and runs every check once, concurrently, in
 *          process; prints text, JSON, TAP or JUnit; 1 when a critical check
 *          fails, 2 when the scripts do not load or on bad usage.
 *   lint   compiles and loads every script without running a check;
 *          "file:line: message" per error; 1 on any error, 2 on bad usage.
 * main.c adds help and version. docs/commands.md has the table of every
 * exit code; cmd.c what the commands share. */
#ifndef HA_CMD_H
#define HA_CMD_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/* Sets the commit and build date of the version line (main does, first). */
void cmd_set_build(const char *commit, const char *date);
/* Prints "healthagent 0.1.0 (commit abc1234, built DATE)" on stdout; returns 0. */
int cmd_version(void);
/* The words every command takes: --help and -h print usage on stdout,
 * --version the version line. Returns the exit code (0) when arg is one of
 * them, else -1. */
int cmd_common_flag(const char *arg, const char *usage);

/* Monotonic milliseconds, for the probes' deadlines. */
uint64_t cmd_now_ms(void);
/* Waits for events (POLLIN/POLLOUT) on fd until deadline (cmd_now_ms
 * clock). Returns 1 ready, 0 at the deadline, -1 on error. */
int cmd_wait_fd(int fd, short events, uint64_t deadline);

/* An http:// URL split up. */
typedef struct {
    char host[256];   /* name or address, without brackets */
    char port[8];
    char path[1024];  /* path and query */
} cmd_url;

/* Splits "http://host[:port][/path]", "[v6]:port" forms included. Returns 0 or -1. */
int cmd_url_parse(const char *s, cmd_url *u);
/* "http://127.0.0.1:<port><path>": the port of the first listen address
 * (config file, HEALTHAGENT_LISTEN, default 8080), a wildcard address
 * replaced by loopback. */
void cmd_default_url(const ha_config *cfg, const char *path, char *out, size_t len);
/* Connects to the first address of u that answers before deadline. Returns
 * the socket (non-blocking), or -1 with a message in err, or -2 when the
 * deadline passed (err: "connect: timeout"). u->path is not read. */
int cmd_dial(const cmd_url *u, uint64_t deadline, char *err, size_t errlen);
/* Sends req[0..n) on fd and reads the response into buf (NUL-terminated,
 * at most cap - 1 bytes) until EOF, the end of the declared body, or
 * deadline. Returns bytes read, or -1 with a message in err. */
ssize_t cmd_exchange(int fd, const char *req, size_t n, uint64_t deadline, char *buf, size_t cap, char *err,
                     size_t errlen);

int cmd_probe(ha_config *cfg, int argc, char **argv);
int cmd_report(ha_config *cfg, int argc, char **argv);
int cmd_check(ha_config *cfg, int argc, char **argv);
int cmd_lint(ha_config *cfg, int argc, char **argv);

#endif
