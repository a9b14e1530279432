/* fuzz_config.c: config_load_file (agent/config.h) on the fuzz bytes as a
 * Lua configuration file.
 *
 * The bytes are written to a file in a private temporary directory (also the
 * working directory, so relative paths the file names stay inside it); stdin
 * reads /dev/null, so a token_file of /dev/stdin cannot block. The loader
 * runs the file in its sandbox (2 s, 64 MiB). Keep inputs small
 * (-max_len=4096) and give libFuzzer a -timeout above 2 s.
 * Checks:
 *   - on failure, err is a non-empty line naming the file;
 *   - on success, the configuration is valid: 1..16 distinct listen
 *     addresses, at most 32 trusted networks with clean host bits, every
 *     probe with 1..8 distinct paths starting with '/' (not /-/, no blank,
 *     '?' or '#'), no path shared by two probes, status codes 200..599,
 *     durations in (0, 1 year] (shutdown_delay may be 0), sizes > 0, a
 *     known log level, a token without control characters;
 *   - either way config_free releases everything (LeakSanitizer). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"

#define YEAR_NS (365ull * 24 * 3600 * HA_NS_PER_S)

static char fuzz_dir[64];   /* private directory, removed at exit */
static char fuzz_path[96];  /* the configuration file in it */

static void fuzz_cleanup(void)
{
    unlink(fuzz_path);
    if (fuzz_dir[0] != '\0')
        rmdir(fuzz_dir); /* fails if the file left something behind: fine */
}

static void fuzz_setup(void)
{
    snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/ha_fuzz_config.XXXXXX");
    if (mkdtemp(fuzz_dir) == NULL || chdir(fuzz_dir) != 0) {
        perror("fuzz_config: temporary directory");
        abort();
    }
    snprintf(fuzz_path, sizeof fuzz_path, "%s/c.lua", fuzz_dir);
    int fd = open("/dev/null", O_RDONLY);
    if (fd >= 0) {
        dup2(fd, 0);
        close(fd);
    }
    atexit(fuzz_cleanup);
}

static bool fuzz_path_ok(const char *p)
{
    if (p == NULL || p[0] != '/' || strncmp(p, "/-/", 3) == 0)
        return false;
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
            return false;
    return true;
}

static void fuzz_valid_config(const ha_config *cfg)
{
    const uint64_t durations[] = {cfg->watchdog_ns,        cfg->default_timeout_ns,
                                  cfg->default_ttl_ns,     cfg->idle_timeout_ns,
                                  cfg->request_timeout_ns, cfg->shutdown_timeout_ns,
                                  cfg->rescan_ns};

    FUZZ_CHECK(cfg->nlisten >= 1 && cfg->nlisten <= HA_MAX_LISTEN, "listen count");
    for (int i = 0; i < cfg->nlisten && i < HA_MAX_LISTEN; i++) {
        FUZZ_CHECK(cfg->listen[i] != NULL && strchr(cfg->listen[i], ':') != NULL, "listen");
        for (int j = 0; j < i && cfg->listen[i] != NULL; j++)
            FUZZ_CHECK(strcmp(cfg->listen[i], cfg->listen[j]) != 0, "listen given twice");
    }
    FUZZ_CHECK(cfg->trusted.n >= 0 && cfg->trusted.n <= HA_MAX_CIDR, "trusted count");
    for (int i = 0; i < cfg->trusted.n && i < HA_MAX_CIDR; i++) {
        const ha_cidr *c = &cfg->trusted.nets[i];
        int bits = c->family == AF_INET ? 32 : 128;
        FUZZ_CHECK(c->family == AF_INET || c->family == AF_INET6, "trusted family");
        FUZZ_CHECK(c->prefix >= 0 && c->prefix <= bits, "trusted prefix");
        for (int b = c->prefix; b >= 0 && b < 128; b++)
            FUZZ_CHECK((c->addr[b / 8] >> (7 - b % 8) & 1) == 0, "trusted host bits");
    }
    for (size_t i = 0; i < HA_ARRAY_SIZE(durations); i++)
        FUZZ_CHECK(durations[i] > 0 && durations[i] <= YEAR_NS, "duration out of range");
    FUZZ_CHECK(cfg->shutdown_delay_ns <= YEAR_NS, "shutdown_delay out of range");
    FUZZ_CHECK(cfg->memory_limit > 0 && cfg->check_memory_limit > 0, "size is 0");
    FUZZ_CHECK(cfg->log_level >= LOG_DEBUG && cfg->log_level <= LOG_ERROR, "log level");
    FUZZ_CHECK(cfg->log_json == 0 || cfg->log_json == 1, "log format");
    FUZZ_CHECK(cfg->scripts_dir == NULL || cfg->scripts_dir[0] != '\0', "empty scripts");
    FUZZ_CHECK(cfg->lualib_dir == NULL || cfg->lualib_dir[0] != '\0', "empty lualib");
    if (cfg->token != NULL) {
        FUZZ_CHECK(cfg->token[0] != '\0', "empty token");
        for (const char *p = cfg->token; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control character in token");
    }
    for (int a = 0; a < HA_NPROBES; a++) {
        const ha_probe_conf *pc = &cfg->probes[a];
        FUZZ_CHECK(pc->npaths >= 1 && pc->npaths <= HA_MAX_PATHS, "path count");
        FUZZ_CHECK(pc->success_status >= 200 && pc->success_status <= 599, "success_status");
        FUZZ_CHECK(pc->failure_status >= 200 && pc->failure_status <= 599, "failure_status");
        for (int i = 0; i < pc->npaths && i < HA_MAX_PATHS; i++) {
            FUZZ_CHECK(fuzz_path_ok(pc->paths[i]), pc->paths[i]);
            for (int b = 0; b < HA_NPROBES && pc->paths[i] != NULL; b++)
                for (int j = 0; j < cfg->probes[b].npaths && j < HA_MAX_PATHS; j++)
                    if (a != b || i != j)
                        FUZZ_CHECK(cfg->probes[b].paths[j] == NULL ||
                                       strcmp(pc->paths[i], cfg->probes[b].paths[j]) != 0,
                                   pc->paths[i]);
        }
    }
    FUZZ_CHECK(cfg->config_file != NULL && strcmp(cfg->config_file, fuzz_path) == 0,
               "config_file");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    ha_config cfg;
    char err[512];

    if (!ready) {
        fuzz_setup();
        ready = true;
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz_config: writing the input");
        abort();
    }
    config_defaults(&cfg);
    memset(err, 0, sizeof err);
    int rc = config_load_file(&cfg, fuzz_path, err, sizeof err);
    if (rc == 0) {
        fuzz_valid_config(&cfg);
    } else {
        FUZZ_CHECK(rc == -1, err);
        FUZZ_CHECK(err[0] != '\0', "no error message");
        FUZZ_CHECK(strchr(err, '\n') == NULL, err);
        FUZZ_CHECK(strstr(err, fuzz_path) != NULL, err);
    }
    config_free(&cfg);
    return 0;
}
