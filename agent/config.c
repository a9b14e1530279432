/* config.c: defaults (the install paths of lualib/ and scripts/ too), the Lua
 * configuration file, environment overrides and listen/token helpers,
 * validated into one ha_config (see config.h).
 *
 * The configuration file is Lua 5.4 run in a state of its own: base, string,
 * table and math only (no io, os, package; dofile, loadfile and load are
 * removed), text chunks only, a 64 MiB heap and 2 seconds of run time. It
 * ends with `return { listen = "...", ... }`. A file that returns nothing (or
 * nil) is read as the list of globals it assigned instead, so
 *     listen = "0.0.0.0:9000"
 *     watchdog = "3s"
 * is a valid configuration too. The globals live in a table of their own
 * whose misses fall through to the standard library, so only the names the
 * file set are read. */
#include "config.h"
#include "common.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "log.h"
#include "safelib.h"

#define CONFIG_RUN_LIMIT_NS (2 * HA_NS_PER_S) /* wall time the file may run */
#define CONFIG_HOOK_COUNT 10000              /* instructions between clock reads */
#define CONFIG_HEAP_LIMIT (64u << 20)        /* bytes of Lua heap for the file */
#define CONFIG_TOKEN_MAX (64u << 10)         /* largest token file */
#define CONFIG_MAX_WAIT_NS (60 * HA_NS_PER_S) /* largest max_wait */

static const char *const config_default_paths[HA_NPROBES] = {"/livez", "/readyz", "/startupz",
                                                             "/healthz"};

/* The built-in aliases: the paths the systems this agent replaces use by
 * default (dubbo-go's health checks; Layotto's and Spring Boot's Actuator).
 * `aliases = false` leaves only the canonical paths and the config's own. */
static const char *const config_alias_paths[HA_NPROBES][3] = {
    {"/health/live", "/actuator/health/liveness", NULL},
    {"/health/ready", "/actuator/health/readiness", NULL},
    {NULL},
    {"/actuator/health", NULL},
};

/* The front's routes other than the probes (front.c, front_admin.c and the
 * status and metrics pages): a probe path may not shadow them. */
static const struct {
    const char *path;
    bool prefix;             /* also every path below path (which ends in '/') */
    const char *owner;
} config_reserved[] = {
    {"/", false, "the status page"},
    {"/status", false, "the status page"},
    {"/metrics", false, "the metrics endpoint"},
    {"/info", false, "the info endpoint"},
    {"/actuator/info", false, "the info endpoint"},
    {"/-", false, "the admin endpoints"},
    {"/-/", true, "the admin endpoints"},
    {"/groupz", false, "the groups"},
    {"/groupz/", true, "the groups"},
};

/* Names a check may not take: /actuator/health/<check> and
 * /actuator/health/liveness must never mean two things. */
static const char *const config_reserved_names[] = {"liveness", "readiness", "startup", "health"};

static void config_compose_paths(ha_config *cfg);

/* State of one config_load_file call; also the Lua allocator's userdata. */
typedef struct {
    ha_config *cfg;
    const char *file;        /* path as given, prefixes every message */
    char *err;               /* caller's buffer */
    size_t errlen;
    size_t heap;             /* bytes the Lua state holds */
    uint64_t deadline_ns;    /* CLOCK_MONOTONIC time the file must be done by */
    char where[96];          /* "file:line: " where the time ran out */
} config_ctx;

/* strdup that aborts on allocation failure (config values are small). */
static char *config_strdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        abort();
    return p;
}

/* Replaces *slot by a copy of s (NULL clears it). */
static void config_set_str(char **slot, const char *s)
{
    free(*slot);
    *slot = s ? config_strdup(s) : NULL;
}

static void config_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void config_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++) /* one line, whatever a value or a script said */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

static uint64_t config_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * HA_NS_PER_S + (uint64_t)ts.tv_nsec;
}

void config_defaults(ha_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen[0] = config_strdup("0.0.0.0:8080");
    cfg->nlisten = 1;
    cidr_parse("127.0.0.1/32", &cfg->trusted.nets[0]);
    cidr_parse("::1/128", &cfg->trusted.nets[1]);
    cfg->trusted.n = 2;
    cfg->memory_limit = 64u << 20;
    cfg->check_memory_limit = 16u << 20;
    cfg->watchdog_ns = 5 * HA_NS_PER_S;
    cfg->max_wait_ns = 500 * HA_NS_PER_MS;
    cfg->default_timeout_ns = 1 * HA_NS_PER_S;
    cfg->default_ttl_ns = 5 * HA_NS_PER_S;
    cfg->idle_timeout_ns = 10 * HA_NS_PER_S;
    cfg->request_timeout_ns = 5 * HA_NS_PER_S;
    cfg->send_timeout_ns = 30 * HA_NS_PER_S;
    cfg->max_connections = 0;
    cfg->max_connections_per_address = 256;
    cfg->shutdown_delay_ns = 5 * HA_NS_PER_S;
    cfg->shutdown_timeout_ns = 10 * HA_NS_PER_S;
    cfg->rescan_ns = 30 * HA_NS_PER_S;
    cfg->log_json = 0;
    cfg->log_level = LOG_INFO;
    cfg->aliases = true;
    cfg->history = HA_HIST_DEFAULT;
    for (int i = 0; i < HA_NPROBES; i++) {
        cfg->probes[i].success_status = 200;
        cfg->probes[i].failure_status = 503;
    }
    config_compose_paths(cfg);
}

void config_free(ha_config *cfg)
{
    if (cfg == NULL)
        return;
    for (int i = 0; i < cfg->nlisten; i++)
        free(cfg->listen[i]);
    for (int i = 0; i < cfg->ngrpc_listen; i++)
        free(cfg->grpc_listen[i]);
    free(cfg->scripts_dir);
    free(cfg->lualib_dir);
    free(cfg->token);
    free(cfg->token_file_absent);
    free(cfg->config_file);
    free(cfg->token_file);
    for (int i = 0; i < HA_NPROBES; i++) {
        for (int j = 0; j < cfg->probes[i].npaths; j++)
            free(cfg->probes[i].paths[j]);
        for (int j = 0; j < cfg->probes[i].nextra; j++)
            free(cfg->probes[i].extra[j]);
    }
    memset(cfg, 0, sizeof *cfg);
}

/* ---- probe paths and the reserved paths ---- */

/* --- install paths: where lualib/ and scripts/ are ---------------------- */

static int config_dir_has(const char *dir, const char *rel)
{
    char p[2 * PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return access(p, R_OK) == 0;
}

/* Finds name ("lualib" or "scripts"): next to the binary's parent, in the
 * install prefix, or in the source tree. Result is cached per name. */
static const char *config_find_dir(const char *name, const char *probe, char *cache, size_t cachelen)
{
    if (cache[0])
        return cache;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char cand[2 * PATH_MAX];
            snprintf(cand, sizeof cand, "%s/../%s", exe, name);
            if (config_dir_has(cand, probe) && realpath(cand, cache))
                return cache;
            snprintf(cand, sizeof cand, "%s/../share/healthagent/%s", exe, name);
            if (config_dir_has(cand, probe) && realpath(cand, cache))
                return cache;
        }
    }
    snprintf(cache, cachelen, "%s/%s", HA_DATA_DIR, name);
    if (config_dir_has(cache, probe))
        return cache;
    snprintf(cache, cachelen, "%s/%s", HA_SOURCE_DIR, name);
    return cache;
}

const char *config_default_lualib(void)
{
    static char cache[PATH_MAX];
    return config_find_dir("lualib", "health", cache, sizeof cache);
}

const char *config_default_scripts(void)
{
    static char cache[PATH_MAX];
    return config_find_dir("scripts", ".", cache, sizeof cache);
}

/* Appends a copy of p to pc->paths unless it is there already. */
static void config_path_add(ha_probe_conf *pc, const char *p)
{
    for (int j = 0; j < pc->npaths; j++)
        if (strcmp(pc->paths[j], p) == 0)
            return;
    if (pc->npaths < HA_MAX_PATHS) /* cannot fail: 1 + aliases + extra fit */
        pc->paths[pc->npaths++] = config_strdup(p);
}

/* Rebuilds every probe's paths[]: the canonical path, the built-in aliases
 * when cfg->aliases, then the config's extra paths. */
static void config_compose_paths(ha_config *cfg)
{
    for (int i = 0; i < HA_NPROBES; i++) {
        ha_probe_conf *pc = &cfg->probes[i];
        for (int j = 0; j < pc->npaths; j++)
            free(pc->paths[j]);
        pc->npaths = 0;
        config_path_add(pc, config_default_paths[i]);
        for (int j = 0; cfg->aliases && config_alias_paths[i][j] != NULL; j++)
            config_path_add(pc, config_alias_paths[i][j]);
        for (int j = 0; j < pc->nextra; j++)
            config_path_add(pc, pc->extra[j]);
    }
}

const char *config_path_owner(const ha_config *cfg, const char *path, size_t len)
{
    for (size_t k = 0; k < HA_ARRAY_SIZE(config_reserved); k++) {
        size_t rl = strlen(config_reserved[k].path);
        if (config_reserved[k].prefix ? len >= rl && memcmp(path, config_reserved[k].path, rl) == 0
                                      : len == rl && memcmp(path, config_reserved[k].path, rl) == 0)
            return config_reserved[k].owner;
    }
    static const char *const owners[HA_NPROBES] = {"probe liveness", "probe readiness",
                                                   "probe startup", "probe health"};
    for (int i = 0; cfg != NULL && i < HA_NPROBES; i++)
        for (int j = 0; j < cfg->probes[i].npaths; j++)
            if (strlen(cfg->probes[i].paths[j]) == len && memcmp(cfg->probes[i].paths[j], path, len) == 0)
                return owners[i];
    return NULL;
}

bool config_name_reserved(const char *name)
{
    for (size_t k = 0; k < HA_ARRAY_SIZE(config_reserved_names); k++)
        if (strcmp(name, config_reserved_names[k]) == 0)
            return true;
    return false;
}

/* NULL when p is a path as the front sees it after normalisation (h2o
 * resolves "." and "..", and the front ignores a trailing '/'), else why
 * not. p starts with '/'. */
static const char *config_path_unnormal(const char *p)
{
    if (p[1] == '\0')
        return NULL;
    for (const char *seg = p + 1;; ) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0)
            return end ? "has an empty segment" : "ends with '/'";
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return "has a '.' or '..' segment";
        if (end == NULL)
            return NULL;
        seg = end + 1;
    }
}

bool config_path_invalid(const ha_config *cfg, const char *p, char *why, size_t len)
{
    const char *r, *owner;
    size_t pl = strlen(p);
    if (p[0] != '/') {
        snprintf(why, len, "path '%s' must start with '/'", p);
        return true;
    }
    for (const char *q = p; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f || *q == '?' || *q == '#' || *q == '%' || *q == '\\') {
            snprintf(why, len, "path '%s' has a bad character", p);
            return true;
        }
    if ((r = config_path_unnormal(p)) != NULL) {
        snprintf(why, len, "path '%s' %s: no request could reach it", p, r);
        return true;
    }
    if ((owner = config_path_owner(cfg, p, pl)) != NULL) {
        snprintf(why, len, "path '%s' is reserved for %s", p, owner);
        return true;
    }
    for (int i = 0; cfg != NULL && i < HA_NPROBES; i++)
        for (int k = 0; k < cfg->probes[i].npaths; k++) {
            const char *pp = cfg->probes[i].paths[k];
            size_t ppl = strlen(pp);
            if (pl > ppl && memcmp(p, pp, ppl) == 0 && p[ppl] == '/') {
                snprintf(why, len, "path '%s' is below %s (probe %s): it would hide that probe's checks", p, pp,
                         ha_probe_name(i));
                return true;
            }
        }
    return false;
}

/* ---- listen addresses ---- */

/* Checks "host:port" (host an IPv4 address or a name of letters, digits,
 * '.', '-', '_') or "[v6]:port" with port 1..65535. Returns NULL when fine,
 * else a static reason. */
static const char *config_listen_check(const char *a)
{
    const char *colon;
    char host[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];

    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        size_t n = close ? (size_t)(close - a - 1) : 0;
        if (close == NULL || close[1] != ':')
            return "want host:port or [ipv6]:port";
        if (n == 0 || n >= sizeof host)
            return "bad IPv6 address";
        memcpy(host, a + 1, n);
        host[n] = '\0';
        if (ha_inet_pton(AF_INET6, host, bin) != 1)
            return "bad IPv6 address";
        colon = close + 1;
    } else {
        colon = strrchr(a, ':');
        if (colon == NULL || colon == a)
            return "want host:port or [ipv6]:port";
        if (memchr(a, ':', (size_t)(colon - a)) != NULL)
            return "IPv6 addresses need brackets: [::]:8080";
        for (const char *p = a; p < colon; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
                return "bad host";
    }
    const char *port = colon + 1;
    size_t nd = strspn(port, "0123456789");
    if (nd == 0 || nd > 5 || port[nd] != '\0')
        return "port must be 1..65535";
    long v = strtol(port, NULL, 10);
    if (v < 1 || v > 65535)
        return "port must be 1..65535";
    return NULL;
}

/* Appends a copy of addr after checking it. Returns NULL or a reason. */
static const char *config_listen_push(ha_config *cfg, const char *addr)
{
    const char *why = config_listen_check(addr);
    if (why != NULL)
        return why;
    for (int i = 0; i < cfg->nlisten; i++)
        if (strcmp(cfg->listen[i], addr) == 0)
            return "given twice";
    if (cfg->nlisten >= HA_MAX_LISTEN)
        return "too many listen addresses (at most 16)";
    cfg->listen[cfg->nlisten++] = config_strdup(addr);
    return NULL;
}

static void config_listen_clear(ha_config *cfg)
{
    for (int i = 0; i < cfg->nlisten; i++)
        free(cfg->listen[i]);
    cfg->nlisten = 0;
}

/* --- gRPC listen addresses: same grammar, own list, may be empty ---- */

static void config_grpc_clear(ha_config *cfg)
{
    for (int i = 0; i < cfg->ngrpc_listen; i++)
        free(cfg->grpc_listen[i]);
    cfg->ngrpc_listen = 0;
}

/* Appends a copy of addr after checking it. Returns NULL or a reason. */
static const char *config_grpc_push(ha_config *cfg, const char *addr)
{
    const char *why = config_listen_check(addr);
    if (why != NULL)
        return why;
    for (int i = 0; i < cfg->ngrpc_listen; i++)
        if (strcmp(cfg->grpc_listen[i], addr) == 0)
            return "given twice";
    for (int i = 0; i < cfg->nlisten; i++)
        if (strcmp(cfg->listen[i], addr) == 0)
            return "already an HTTP listen address";
    if (cfg->ngrpc_listen >= HA_MAX_LISTEN)
        return "too many gRPC listen addresses (at most 16)";
    cfg->grpc_listen[cfg->ngrpc_listen++] = config_strdup(addr);
    return NULL;
}

int config_add_grpc_listen(ha_config *cfg, const char *addr, char *err, size_t errlen)
{
    const char *why = config_listen_check(addr);
    if (why == NULL && !cfg->grpc_listen_set)
        config_grpc_clear(cfg);
    if (why == NULL)
        why = config_grpc_push(cfg, addr);
    if (why != NULL) {
        config_errf(err, errlen, "bad gRPC listen address '%s': %s", addr, why);
        return -1;
    }
    cfg->grpc_listen_set = true;
    return 0;
}

/* The first call drops the listeners configured so far (the defaults, or
 * what the file or the environment set: the command line wins); later
 * calls append. On error cfg is unchanged. */
int config_add_listen(ha_config *cfg, const char *addr, char *err, size_t errlen)
{
    const char *why = config_listen_check(addr);
    if (why == NULL && !cfg->listen_set)
        config_listen_clear(cfg);
    if (why == NULL)
        why = config_listen_push(cfg, addr);
    if (why != NULL) {
        config_errf(err, errlen, "bad listen address '%s': %s", addr, why);
        return -1;
    }
    cfg->listen_set = true;
    return 0;
}

/* Replaces the listeners by addrs[0..n), all or nothing (the file's and
 * the environment's listen). Returns NULL or a reason, with *bad set to the
 * offending address. */
static const char *config_listen_replace(ha_config *cfg, const char *const *addrs, int n,
                                         const char **bad)
{
    ha_config probe;
    const char *why = NULL;

    if (n == 0) {
        *bad = "";
        return "at least one address is needed";
    }
    memset(&probe, 0, sizeof probe);
    for (int i = 0; i < n && why == NULL; i++) {
        why = config_listen_push(&probe, addrs[i]);
        *bad = addrs[i];
    }
    if (why != NULL) {
        config_listen_clear(&probe);
        return why;
    }
    config_listen_clear(cfg);
    memcpy(cfg->listen, probe.listen, sizeof probe.listen);
    cfg->nlisten = probe.nlisten;
    return NULL;
}

/* ---- token ---- */

/* Reads the whole token file, strips trailing whitespace and rejects an
 * empty token or one with control characters. On success replaces
 * cfg->token; on error cfg is unchanged. */
int config_read_token(ha_config *cfg, const char *path, char *err, size_t errlen)
{
    char *data = NULL;
    size_t n = 0;
    int rc = -1;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        config_errf(err, errlen, "%s: cannot read token file: %s", path, strerror(errno));
        goto fail;
    }
    data = malloc(CONFIG_TOKEN_MAX + 1);
    if (data == NULL)
        abort();
    n = fread(data, 1, CONFIG_TOKEN_MAX + 1, f);
    if (ferror(f)) {
        config_errf(err, errlen, "%s: cannot read token file: %s", path, strerror(errno));
        goto fail;
    }
    if (n > CONFIG_TOKEN_MAX) {
        config_errf(err, errlen, "%s: token file larger than 64 KiB", path);
        goto fail;
    }
    while (n > 0 && (data[n - 1] == ' ' || data[n - 1] == '\t' || data[n - 1] == '\r' ||
                     data[n - 1] == '\n' || data[n - 1] == '\v' || data[n - 1] == '\f'))
        n--;
    data[n] = '\0';
    if (n == 0) {
        config_errf(err, errlen, "%s: token file is empty", path);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x20 || c == 0x7f) {
            config_errf(err, errlen, "%s: token contains control characters", path);
            goto fail;
        }
    }
    if (n < HA_TOKEN_MIN) {
        config_errf(err, errlen, "%s: token shorter than %d characters", path, HA_TOKEN_MIN);
        goto fail;
    }
    free(cfg->token);
    cfg->token = data;
    data = NULL;
    config_set_str(&cfg->token_file, path); /* scripts may not open it (engine_vm.c) */
    rc = 0;
fail:
    free(data);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* token_file and HEALTHAGENT_TOKEN_FILE: the token file, or with
 * token_file_optional a file that does not exist (an optional Kubernetes
 * Secret that was never created): no token, and the path is kept for the
 * start-up warning. Returns 0 or -1 with err. */
static int config_token_file(ha_config *cfg, const char *path, char *err, size_t errlen)
{
    if (cfg->token_file_optional && access(path, F_OK) != 0 && errno == ENOENT) {
        config_set_str(&cfg->token_file_absent, path);
        config_set_str(&cfg->token, NULL);
        config_set_str(&cfg->token_file, path); /* should the Secret appear, scripts may not open it either */
        return 0;
    }
    config_set_str(&cfg->token_file_absent, NULL);
    return config_read_token(cfg, path, err, errlen);
}

/* True when s[0..n) is non-empty, NUL-free and free of control characters. */
static bool config_token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* ---- environment ---- */

/* Non-empty value of an environment variable, or NULL. */
static const char *config_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* HEALTHAGENT_LISTEN is split on commas, spaces around items ignored. */
int config_apply_env(ha_config *cfg, char *err, size_t errlen)
{
    const char *v;
    char *copy = NULL;
    int rc = -1;

    if ((v = config_env("HEALTHAGENT_LISTEN")) != NULL) {
        const char *items[HA_MAX_LISTEN + 1];
        const char *bad = "", *why = NULL;
        int n = 0;
        copy = config_strdup(v);
        for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ' || *tok == '\t')
                tok++;
            size_t len = strlen(tok);
            while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
                tok[--len] = '\0';
            if (len == 0)
                continue;
            if (n == HA_MAX_LISTEN) {
                why = "too many listen addresses (at most 16)";
                bad = tok;
                break;
            }
            items[n++] = tok;
        }
        if (why == NULL)
            why = config_listen_replace(cfg, items, n, &bad);
        if (why != NULL) {
            config_errf(err, errlen, "HEALTHAGENT_LISTEN: bad address '%s': %s", bad, why);
            goto fail;
        }
    }
    if ((v = config_env("HEALTHAGENT_SCRIPTS")) != NULL)
        config_set_str(&cfg->scripts_dir, v);
    if (config_env("HEALTHAGENT_TOKEN") != NULL && config_env("HEALTHAGENT_TOKEN_FILE") != NULL) {
        config_errf(err, errlen, "HEALTHAGENT_TOKEN and HEALTHAGENT_TOKEN_FILE are exclusive");
        goto fail;
    }
    if ((v = config_env("HEALTHAGENT_TOKEN")) != NULL) {
        if (!config_token_ok(v, strlen(v))) {
            config_errf(err, errlen, "HEALTHAGENT_TOKEN: token contains control characters");
            goto fail;
        }
        if (strlen(v) < HA_TOKEN_MIN) {
            config_errf(err, errlen, "HEALTHAGENT_TOKEN: token shorter than %d characters", HA_TOKEN_MIN);
            goto fail;
        }
        config_set_str(&cfg->token, v);
    }
    if ((v = config_env("HEALTHAGENT_TOKEN_FILE")) != NULL &&
        config_token_file(cfg, v, err, errlen) < 0)
        goto fail;
    if ((v = config_env("HEALTHAGENT_LOG_FORMAT")) != NULL) {
        if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0) {
            config_errf(err, errlen, "HEALTHAGENT_LOG_FORMAT: want text or json, got '%s'", v);
            goto fail;
        }
        cfg->log_json = strcmp(v, "json") == 0;
    }
    if ((v = config_env("HEALTHAGENT_LOG_LEVEL")) != NULL) {
        int level = log_level_parse(v);
        if (level < 0) {
            config_errf(err, errlen, "HEALTHAGENT_LOG_LEVEL: want debug, info, warn or error, got '%s'", v);
            goto fail;
        }
        cfg->log_level = level;
    }
    rc = 0;
fail:
    free(copy);
    return rc;
}

int config_load(ha_config *cfg, const char *path, char *err, size_t errlen)
{
    if (path == NULL)
        path = config_env("HEALTHAGENT_CONFIG");
    if (path != NULL && config_load_file(cfg, path, err, errlen) != 0)
        return -1;
    return config_apply_env(cfg, err, errlen);
}

/* ---- the Lua file: reading values ---- */

/* Formats "<file>: field '<field>': <message>" into the caller's buffer
 * and returns -1. */
static int config_field_err(config_ctx *ctx, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int config_field_err(config_ctx *ctx, const char *field, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    config_errf(ctx->err, ctx->errlen, "%s: field '%s': %s", ctx->file, field, msg);
    return -1;
}

/* "<file>: unknown key '<prefix><key>'" for the key at idx. Returns -1. */
static int config_unknown(config_ctx *ctx, lua_State *L, const char *prefix, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        config_errf(ctx->err, ctx->errlen, "%s: unknown key '%s%s'", ctx->file, prefix,
                    lua_tostring(L, idx));
    else if (lua_isinteger(L, idx))
        config_errf(ctx->err, ctx->errlen, "%s: unknown key '%s[%lld]'", ctx->file, prefix,
                    (long long)lua_tointeger(L, idx));
    else
        config_errf(ctx->err, ctx->errlen, "%s: unknown key '%s<%s>'", ctx->file, prefix,
                    luaL_typename(L, idx));
    return -1;
}

/* The string at idx (NUL-free), else NULL after reporting "expected <what>". */
static const char *config_string(config_ctx *ctx, lua_State *L, int idx, const char *field,
                                 const char *what)
{
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING) {
        config_field_err(ctx, field, "expected %s, got %s", what, luaL_typename(L, idx));
        return NULL;
    }
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len) {
        config_field_err(ctx, field, "contains a NUL byte");
        return NULL;
    }
    return s;
}

/* Checks that the table at idx is a sequence 1..n of strings and returns n,
 * or -1 after reporting. A single string counts as a list of one when
 * one_ok; then *n is 1 and the value is used as item 1 by config_item. */
static int config_list(config_ctx *ctx, lua_State *L, int idx, const char *field, bool one_ok)
{
    const char *want = one_ok ? "a string or a list of strings" : "a list of strings";
    if (one_ok && lua_type(L, idx) == LUA_TSTRING)
        return 1;
    if (lua_type(L, idx) != LUA_TTABLE)
        return config_field_err(ctx, field, "expected %s, got %s", want, luaL_typename(L, idx));
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);                                    /* key */
    while (lua_next(L, idx) != 0) {                    /* key value */
        lua_Integer k = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
        if (k < 1 || k > len || lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);                             /* (empty) */
            return config_field_err(ctx, field, "expected %s", want);
        }
        count++;
        lua_pop(L, 1);                                 /* key */
    }
    if (count != len)
        return config_field_err(ctx, field, "expected %s", want);
    return (int)len;
}

/* Item i (1-based) of a list accepted by config_list; valid while the list
 * is on the stack. NULL (reported) for an item with a NUL byte. */
static const char *config_item(config_ctx *ctx, lua_State *L, int idx, int i, const char *field)
{
    const char *s;
    if (lua_type(L, idx) == LUA_TSTRING)
        return config_string(ctx, L, idx, field, "a string");
    lua_rawgeti(L, idx, i);                            /* item */
    s = config_string(ctx, L, -1, field, "a string");
    lua_pop(L, 1);                                     /* (empty): the table still holds it */
    return s;
}

/* Reads a duration: a number of seconds or a string for ha_duration_parse.
 * zero_ok allows 0. Returns 0 with *ns, or -1 after reporting. */
static int config_duration(config_ctx *ctx, lua_State *L, int idx, const char *field, bool zero_ok,
                           uint64_t *ns)
{
    uint64_t v;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number d = lua_tonumber(L, idx);
        if (!(d >= 0 && d <= 365.0 * 24 * 3600))
            return config_field_err(ctx, field, "bad duration %s", lua_tostring(L, idx));
        v = lua_isinteger(L, idx) ? (uint64_t)lua_tointeger(L, idx) * HA_NS_PER_S
                                  : (uint64_t)(d * (double)HA_NS_PER_S + 0.5);
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        if (ha_duration_parse(s, &v) < 0)
            return config_field_err(ctx, field, "bad duration '%s'", s);
    } else {
        return config_field_err(ctx, field, "expected a duration (seconds or \"250ms\"), got %s",
                                luaL_typename(L, idx));
    }
    if (v == 0 && !zero_ok)
        return config_field_err(ctx, field, "must be greater than 0");
    *ns = v;
    return 0;
}

/* Reads a positive size: a whole number of bytes or a string for
 * ha_size_parse. Returns 0 with *bytes, or -1 after reporting. */
static int config_size(config_ctx *ctx, lua_State *L, int idx, const char *field, uint64_t *bytes)
{
    uint64_t v;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        int exact;
        lua_Integer i = lua_tointegerx(L, idx, &exact);
        if (!exact || i < 0)
            return config_field_err(ctx, field, "bad size %s", lua_tostring(L, idx));
        v = (uint64_t)i;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        if (ha_size_parse(s, &v) < 0)
            return config_field_err(ctx, field, "bad size '%s'", s);
    } else {
        return config_field_err(ctx, field, "expected a size (bytes or \"64MiB\"), got %s",
                                luaL_typename(L, idx));
    }
    if (v == 0)
        return config_field_err(ctx, field, "must be greater than 0");
    *bytes = v;
    return 0;
}

/* Reads an HTTP status code 200..599 (a 1xx is interim: a client would wait
 * for the final answer). */
static int config_http_status(config_ctx *ctx, lua_State *L, int idx, const char *field, int *out)
{
    int exact;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return config_field_err(ctx, field, "expected an HTTP status code, got %s",
                                luaL_typename(L, idx));
    lua_Integer i = lua_tointegerx(L, idx, &exact);
    if (!exact || i < 200 || i > 599)
        return config_field_err(ctx, field, "must be an HTTP status 200..599, got %s",
                                lua_tostring(L, idx));
    *out = (int)i;
    return 0;
}

/* ---- the Lua file: one setter per key ---- */

typedef int (*config_setter)(config_ctx *ctx, lua_State *L, int idx, const char *field,
                             size_t off);

/* The field at byte offset off of the config. */
#define CONFIG_AT(ctx, type, off) ((type *)((char *)(ctx)->cfg + (off)))

static int config_k_listen(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    const char *items[HA_MAX_LISTEN];
    const char *bad = "", *why;
    int n = config_list(ctx, L, idx, field, true);
    if (n < 0)
        return -1;
    if (n > HA_MAX_LISTEN)
        return config_field_err(ctx, field, "too many listen addresses (at most 16)");
    for (int i = 0; i < n; i++)
        if ((items[i] = config_item(ctx, L, idx, i + 1, field)) == NULL)
            return -1;
    why = config_listen_replace(ctx->cfg, items, n, &bad);
    if (why != NULL)
        return config_field_err(ctx, field, "bad address '%s': %s", bad, why);
    return 0;
}

/* grpc_listen: an address or a list of them (an empty list: off). */
static int config_k_grpc_listen(config_ctx *ctx, lua_State *L, int idx, const char *field,
                                size_t off)
{
    const char *why;
    int n = config_list(ctx, L, idx, field, true);
    if (n < 0)
        return -1;
    if (n > HA_MAX_LISTEN)
        return config_field_err(ctx, field, "too many gRPC listen addresses (at most 16)");
    config_grpc_clear(ctx->cfg);
    for (int i = 0; i < n; i++) {
        const char *a = config_item(ctx, L, idx, i + 1, field);
        if (a == NULL)
            return -1;
        if ((why = config_grpc_push(ctx->cfg, a)) != NULL)
            return config_field_err(ctx, field, "bad address '%s': %s", a, why);
    }
    return 0;
}

/* scripts, lualib: a non-empty path string. */
static int config_k_path(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    const char *s = config_string(ctx, L, idx, field, "a string");
    if (s == NULL)
        return -1;
    if (s[0] == '\0')
        return config_field_err(ctx, field, "must not be empty");
    config_set_str(CONFIG_AT(ctx, char *, off), s);
    return 0;
}

static int config_k_token(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    size_t len;
    if (config_string(ctx, L, idx, field, "a string") == NULL)
        return -1;
    const char *s = lua_tolstring(L, idx, &len);
    if (!config_token_ok(s, len))
        return config_field_err(ctx, field, "must be non-empty, without control characters");
    if (len < HA_TOKEN_MIN)
        return config_field_err(ctx, field, "must be at least %d characters", HA_TOKEN_MIN);
    config_set_str(&ctx->cfg->token, s);
    return 0;
}

static int config_k_token_file(config_ctx *ctx, lua_State *L, int idx, const char *field,
                               size_t off)
{
    char msg[256];
    const char *s = config_string(ctx, L, idx, field, "a string");
    if (s == NULL)
        return -1;
    if (config_token_file(ctx->cfg, s, msg, sizeof msg) < 0)
        return config_field_err(ctx, field, "%s", msg);
    return 0;
}

/* token_file_optional: read by config_walk before token_file; here only
 * its type is checked. */
static int config_k_token_file_optional(config_ctx *ctx, lua_State *L, int idx, const char *field,
                                        size_t off)
{
    if (!lua_isboolean(L, idx))
        return config_field_err(ctx, field, "expected a boolean, got %s", luaL_typename(L, idx));
    return 0;
}

static int config_k_trusted(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    ha_cidr_list l;
    int n = config_list(ctx, L, idx, field, true);
    if (n < 0)
        return -1;
    if (n > HA_MAX_CIDR)
        return config_field_err(ctx, field, "too many networks (at most %d)", HA_MAX_CIDR);
    memset(&l, 0, sizeof l);
    for (int i = 0; i < n; i++) {
        const char *s = config_item(ctx, L, idx, i + 1, field);
        if (s == NULL)
            return -1;
        if (cidr_parse(s, &l.nets[l.n++]) < 0)
            return config_field_err(ctx, field, "bad network '%s'", s);
    }
    ctx->cfg->trusted = l;
    return 0;
}

static int config_k_size(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    return config_size(ctx, L, idx, field, CONFIG_AT(ctx, uint64_t, off));
}

/* The smallest value that works, for the durations that have one: below it
 * HTTP/1 serves nothing (request_timeout rounds to 0 ms) or liveness flaps
 * (a busy engine's loop may take tens of milliseconds to turn). */
static const struct {
    const char *key;
    uint64_t min_ns;
    const char *text;
} config_duration_min[] = {
    {"request_timeout", 100 * HA_NS_PER_MS, "100ms"},
    {"idle_timeout", 100 * HA_NS_PER_MS, "100ms"},
    {"send_timeout", HA_NS_PER_S, "1s"},
    {"watchdog", 500 * HA_NS_PER_MS, "500ms"},
};

static int config_k_duration(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    uint64_t *slot = CONFIG_AT(ctx, uint64_t, off);
    if (config_duration(ctx, L, idx, field, false, slot) < 0)
        return -1;
    for (size_t i = 0; i < HA_ARRAY_SIZE(config_duration_min); i++)
        if (strcmp(field, config_duration_min[i].key) == 0 && *slot < config_duration_min[i].min_ns)
            return config_field_err(ctx, field, "must be at least %s", config_duration_min[i].text);
    return 0;
}

/* A whole number of connections, 1..1000000 (max_connections also takes 0:
 * derived from the descriptor limit). */
static int config_k_count(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    int exact;
    bool zero_ok = strcmp(field, "max_connections") == 0;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return config_field_err(ctx, field, "expected a whole number, got %s", luaL_typename(L, idx));
    lua_Integer v = lua_tointegerx(L, idx, &exact);
    if (!exact || v < (zero_ok ? 0 : 1) || v > 1000000)
        return config_field_err(ctx, field, "must be a whole number %s..1000000, got %s", zero_ok ? "0" : "1",
                                lua_tostring(L, idx));
    *CONFIG_AT(ctx, int, off) = (int)v;
    return 0;
}

/* A duration that may be 0 (shutdown_delay: stop at once). */
static int config_k_duration0(config_ctx *ctx, lua_State *L, int idx, const char *field,
                              size_t off)
{
    return config_duration(ctx, L, idx, field, true, CONFIG_AT(ctx, uint64_t, off));
}

/* max_wait: 0 (answer at once from what is known) up to CONFIG_MAX_WAIT_NS. */
static int config_k_max_wait(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    uint64_t v;
    if (config_duration(ctx, L, idx, field, true, &v) < 0)
        return -1;
    if (v > CONFIG_MAX_WAIT_NS)
        return config_field_err(ctx, field, "must be at most 60s (a probe's whole answer time)");
    *CONFIG_AT(ctx, uint64_t, off) = v;
    return 0;
}

static int config_k_log_format(config_ctx *ctx, lua_State *L, int idx, const char *field,
                               size_t off)
{
    const char *s = config_string(ctx, L, idx, field, "\"text\" or \"json\"");
    if (s == NULL)
        return -1;
    if (strcmp(s, "text") != 0 && strcmp(s, "json") != 0)
        return config_field_err(ctx, field, "want \"text\" or \"json\", got '%s'", s);
    ctx->cfg->log_json = strcmp(s, "json") == 0;
    return 0;
}

static int config_k_log_level(config_ctx *ctx, lua_State *L, int idx, const char *field,
                              size_t off)
{
    const char *s = config_string(ctx, L, idx, field, "a log level");
    if (s == NULL)
        return -1;
    int level = log_level_parse(s);
    if (level < 0)
        return config_field_err(ctx, field, "want debug, info, warn or error, got '%s'", s);
    ctx->cfg->log_level = level;
    return 0;
}

/* Replaces the extra paths of pc by the list at idx (a second file's list
 * replaces the first's); config_compose_paths adds them to the canonical
 * path and the built-in aliases. Refuses a path that is not in normal form
 * or that a front route other than the probes reserves. */
/* metrics / status_page = "public" | "trusted" | "off" */
static int config_k_access(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    static const char *const names[] = {"public", "trusted", "off"};
    const char *s = config_string(ctx, L, idx, field, "\"public\", \"trusted\" or \"off\"");
    if (s == NULL)
        return -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *CONFIG_AT(ctx, ha_access, off) = (ha_access)i;
            return 0;
        }
    return config_field_err(ctx, field, "want \"public\", \"trusted\" or \"off\", got '%s'", s);
}

/* history = number of past results kept per check, 0..HA_HIST_MAX */
static int config_k_history(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    int exact = 0;
    lua_Integer i = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &exact) : 0;
    if (!exact || i < 0 || i > HA_HIST_MAX)
        return config_field_err(ctx, field, "expected a whole number from 0 to %d, got %s", HA_HIST_MAX,
                                lua_type(L, idx) == LUA_TNUMBER ? lua_tostring(L, idx) : luaL_typename(L, idx));
    *CONFIG_AT(ctx, int, off) = (int)i;
    return 0;
}

/* Replaces the extra paths of pc (paths[0] stays) by the list at idx. */
static int config_paths(config_ctx *ctx, lua_State *L, int idx, const char *field,
                        ha_probe_conf *pc)
{
    const char *items[HA_MAX_EXTRA_PATHS];
    int nitems = 0;
    int n = config_list(ctx, L, idx, field, true);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *p = config_item(ctx, L, idx, i + 1, field);
        const char *why, *owner;
        bool dup = false;
        if (p == NULL)
            return -1;
        if (p[0] != '/')
            return config_field_err(ctx, field, "path '%s' must start with '/'", p);
        for (const char *q = p; *q; q++)
            if ((unsigned char)*q <= 0x20 || *q == 0x7f || *q == '?' || *q == '#' || *q == '%' ||
                *q == '\\')
                return config_field_err(ctx, field, "path '%s' has a bad character", p);
        if ((why = config_path_unnormal(p)) != NULL)
            return config_field_err(ctx, field, "path '%s' %s: no request could reach it", p, why);
        if ((owner = config_path_owner(NULL, p, strlen(p))) != NULL)
            return config_field_err(ctx, field, "path '%s' is reserved for %s", p, owner);
        for (int j = 0; j < nitems && !dup; j++)
            dup = strcmp(p, items[j]) == 0;
        if (dup)
            continue;
        if (nitems >= HA_MAX_EXTRA_PATHS)
            return config_field_err(ctx, field, "too many paths (at most %d)", HA_MAX_EXTRA_PATHS);
        items[nitems++] = p;
    }
    for (int j = 0; j < pc->nextra; j++)
        free(pc->extra[j]);
    for (int j = 0; j < nitems; j++)
        pc->extra[j] = config_strdup(items[j]);
    pc->nextra = nitems;
    return 0;
}

/* aliases = true | false: serve the built-in alias paths. */
static int config_k_aliases(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    if (lua_type(L, idx) != LUA_TBOOLEAN)
        return config_field_err(ctx, field, "expected a boolean, got %s", luaL_typename(L, idx));
    ctx->cfg->aliases = lua_toboolean(L, idx);
    return 0;
}

/* probes.<name>.status_codes = { UP = 200, WARN = 200, DOWN = 503, INIT = 503 }:
 * replaces the codes of the statuses it names. */
static int config_status_codes(config_ctx *ctx, lua_State *L, int idx, const char *prefix, ha_probe_conf *pc)
{
    static const char *const keys[HA_NSTATUS] = {"UP", "WARN", "INIT", "DOWN"}; /* by ha_status */
    char field[128];
    if (lua_type(L, idx) != LUA_TTABLE)
        return config_field_err(ctx, prefix, "expected a table like { UP = 200, DOWN = 503 }, got %s",
                                luaL_typename(L, idx));
    lua_pushnil(L);                                    /* key */
    while (lua_next(L, idx) != 0) {                    /* key value */
        int k = -1;
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        for (int i = 0; key && i < HA_NSTATUS; i++)
            if (strcmp(key, keys[i]) == 0)
                k = i;
        if (k < 0) {
            snprintf(field, sizeof field, "%s.", prefix);
            return config_unknown(ctx, L, field, -2);
        }
        snprintf(field, sizeof field, "%s.%s", prefix, key);
        if (config_http_status(ctx, L, lua_gettop(L), field, &pc->codes[k]) < 0)
            return -1;
        lua_pop(L, 1);                                 /* key */
    }
    return 0;
}

/* probes.<name> = { paths = {...}, success_status = n, failure_status = n,
 * status_codes = {...} } */
static int config_probe(config_ctx *ctx, lua_State *L, int idx, const char *prefix,
                        ha_probe_conf *pc)
{
    char field[96];
    if (lua_type(L, idx) != LUA_TTABLE)
        return config_field_err(ctx, prefix, "expected a table, got %s", luaL_typename(L, idx));
    lua_pushnil(L);                                    /* key */
    while (lua_next(L, idx) != 0) {                    /* key value */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        int vi = lua_gettop(L), rc;
        snprintf(field, sizeof field, "%s.%s", prefix, k);
        if (strcmp(k, "paths") == 0)
            rc = config_paths(ctx, L, vi, field, pc);
        else if (strcmp(k, "success_status") == 0)
            rc = config_http_status(ctx, L, vi, field, &pc->success_status);
        else if (strcmp(k, "failure_status") == 0)
            rc = config_http_status(ctx, L, vi, field, &pc->failure_status);
        else if (strcmp(k, "status_codes") == 0)
            rc = config_status_codes(ctx, L, vi, field, pc);
        else {
            snprintf(field, sizeof field, "%s.", prefix);
            rc = config_unknown(ctx, L, field, -2);
        }
        if (rc < 0)
            return -1;
        lua_pop(L, 1);                                 /* key */
    }
    return 0;
}

static int config_k_probes(config_ctx *ctx, lua_State *L, int idx, const char *field, size_t off)
{
    char prefix[64];
    if (lua_type(L, idx) != LUA_TTABLE)
        return config_field_err(ctx, field, "expected a table, got %s", luaL_typename(L, idx));
    lua_pushnil(L);                                    /* key */
    while (lua_next(L, idx) != 0) {                    /* key value */
        int pi = -1;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (int i = 0; i < HA_NPROBES && pi < 0; i++)
                if (strcmp(lua_tostring(L, -2), ha_probe_name(i)) == 0)
                    pi = i;
        if (pi < 0)
            return config_unknown(ctx, L, "probes.", -2);
        snprintf(prefix, sizeof prefix, "probes.%s", ha_probe_name(pi));
        if (config_probe(ctx, L, lua_gettop(L), prefix, &ctx->cfg->probes[pi]) < 0)
            return -1;
        lua_pop(L, 1);                                 /* key */
    }
    return 0;
}

static const struct {
    const char *key;
    config_setter set;
    size_t off;
} config_keys[] = {
    {"listen", config_k_listen, 0},
    {"grpc_listen", config_k_grpc_listen, 0},
    {"scripts", config_k_path, offsetof(ha_config, scripts_dir)},
    {"lualib", config_k_path, offsetof(ha_config, lualib_dir)},
    {"token", config_k_token, 0},
    {"token_file", config_k_token_file, 0},
    {"token_file_optional", config_k_token_file_optional, 0},
    {"trusted_networks", config_k_trusted, 0},
    {"memory_limit", config_k_size, offsetof(ha_config, memory_limit)},
    {"check_memory_limit", config_k_size, offsetof(ha_config, check_memory_limit)},
    {"watchdog", config_k_duration, offsetof(ha_config, watchdog_ns)},
    {"max_wait", config_k_max_wait, offsetof(ha_config, max_wait_ns)},
    {"default_timeout", config_k_duration, offsetof(ha_config, default_timeout_ns)},
    {"default_ttl", config_k_duration, offsetof(ha_config, default_ttl_ns)},
    {"idle_timeout", config_k_duration, offsetof(ha_config, idle_timeout_ns)},
    {"request_timeout", config_k_duration, offsetof(ha_config, request_timeout_ns)},
    {"send_timeout", config_k_duration, offsetof(ha_config, send_timeout_ns)},
    {"max_connections", config_k_count, offsetof(ha_config, max_connections)},
    {"max_connections_per_address", config_k_count, offsetof(ha_config, max_connections_per_address)},
    {"shutdown_delay", config_k_duration0, offsetof(ha_config, shutdown_delay_ns)},
    {"shutdown_timeout", config_k_duration, offsetof(ha_config, shutdown_timeout_ns)},
    {"rescan_interval", config_k_duration, offsetof(ha_config, rescan_ns)},
    {"log_format", config_k_log_format, 0},
    {"log_level", config_k_log_level, 0},
    {"aliases", config_k_aliases, 0},
    {"probes", config_k_probes, 0},
    {"metrics", config_k_access, offsetof(ha_config, metrics)},
    {"status_page", config_k_access, offsetof(ha_config, status_page)},
    {"history", config_k_history, offsetof(ha_config, history)},
};

/* Composes the probe paths, then rejects an extra path that another probe
 * serves too (as its canonical path, a built-in alias or an extra one). */
static int config_check_paths(config_ctx *ctx)
{
    ha_config *cfg = ctx->cfg;
    config_compose_paths(cfg);
    for (int a = 0; a < HA_NPROBES; a++)
        for (int i = 0; i < cfg->probes[a].nextra; i++)
            for (int b = 0; b < HA_NPROBES; b++)
                for (int j = 0; b != a && j < cfg->probes[b].npaths; j++)
                    if (strcmp(cfg->probes[a].extra[i], cfg->probes[b].paths[j]) == 0) {
                        config_errf(ctx->err, ctx->errlen,
                                    "%s: path '%s' is used by probes %s and %s", ctx->file,
                                    cfg->probes[a].extra[i], ha_probe_name(a < b ? a : b),
                                    ha_probe_name(a < b ? b : a));
                        return -1;
                    }
    return 0;
}

/* Applies the table at idx to ctx->cfg. Returns 0 or -1 with ctx->err set.
 * Never runs Lua code: raw traversal only. */
static int config_walk(config_ctx *ctx, lua_State *L, int idx)
{
    lua_pushliteral(L, "token");                       /* "token" */
    lua_rawget(L, idx);                                /* token */
    lua_pushliteral(L, "token_file");                  /* token "token_file" */
    lua_rawget(L, idx);                                /* token token_file */
    bool both = !lua_isnil(L, -1) && !lua_isnil(L, -2);
    lua_pop(L, 2);                                     /* (empty) */
    if (both) {
        config_errf(ctx->err, ctx->errlen, "%s: 'token' and 'token_file' are exclusive",
                    ctx->file);
        return -1;
    }
    lua_pushliteral(L, "token_file_optional");         /* "token_file_optional" */
    lua_rawget(L, idx);                                /* optional */
    if (lua_isboolean(L, -1))                          /* before token_file, whatever the order */
        ctx->cfg->token_file_optional = lua_toboolean(L, -1);
    lua_pop(L, 1);                                     /* (empty) */
    lua_pushnil(L);                                    /* key */
    while (lua_next(L, idx) != 0) {                    /* key value */
        size_t k = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (; k < HA_ARRAY_SIZE(config_keys); k++)
                if (strcmp(lua_tostring(L, -2), config_keys[k].key) == 0)
                    break;
        if (lua_type(L, -2) != LUA_TSTRING || k == HA_ARRAY_SIZE(config_keys))
            return config_unknown(ctx, L, "", -2);
        if (config_keys[k].set(ctx, L, lua_gettop(L), config_keys[k].key, config_keys[k].off) < 0)
            return -1;
        lua_pop(L, 1);                                 /* key */
    }
    return config_check_paths(ctx);
}

/* lua_CFunction running config_walk under protection (memory errors).
 * Stack in: ctx (light userdata), table. Returns 1 result: the status. */
static int config_walk_cf(lua_State *L)
{
    config_ctx *ctx = lua_touserdata(L, 1);
    lua_pushinteger(L, config_walk(ctx, L, 2));        /* ctx table ... status */
    return 1;
}

/* The allocator of the file's state: realloc with a heap cap. */
static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    config_ctx *ctx = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        ctx->heap -= old;
        return NULL;
    }
    if (nsize > old && ctx->heap + (nsize - old) > CONFIG_HEAP_LIMIT)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    ctx->heap = ctx->heap - old + nsize;
    return p;
}

/* Count hook. Once the deadline has passed it yields the config coroutine
 * right out to config_load_file, through any pcall in the file (a raised
 * error would be swallowed by `while true do pcall(f) end`). Where it
 * cannot yield (inside a C call such as a table.sort comparator) it raises
 * instead. Stays installed through lua_close, so a runaway finalizer is cut
 * short as well. */
static void config_hook(lua_State *L, lua_Debug *ar)
{
    void *ud;
    lua_getallocf(L, &ud);
    config_ctx *ctx = ud;
    if (config_mono_ns() <= ctx->deadline_ns)
        return;
    luaL_where(L, 0);                                  /* where */
    if (lua_isyieldable(L)) {
        snprintf(ctx->where, sizeof ctx->where, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);                                 /* (empty) */
        lua_yield(L, 0);
        return;
    }
    lua_pushstring(L, "configuration ran longer than 2s"); /* where msg */
    lua_concat(L, 2);                                  /* message */
    lua_error(L);
}

/* setmetatable that refuses a metatable with __gc: a finalizer would run
 * in lua_close, after every limit but the hook. Upvalue 1: the original. */
static int config_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");                    /* ... "__gc" */
        if (lua_rawget(L, 2) != LUA_TNIL)              /* ... gc */
            return luaL_error(L, "__gc metamethods are not allowed in the configuration");
        lua_pop(L, 1);                                 /* ... */
    }
    lua_pushvalue(L, lua_upvalueindex(1));             /* args setmetatable */
    lua_insert(L, 1);                                  /* setmetatable args */
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);       /* results */
    return lua_gettop(L);
}

/* Copies the error message on top of the stack to ctx->err, with the file
 * name when Lua's message has none. */
static void config_lua_err(config_ctx *ctx, lua_State *L, int status)
{
    const char *msg = lua_tostring(L, -1);
    if (status == LUA_ERRMEM)
        config_errf(ctx->err, ctx->errlen, "%s: not enough memory (config heap is 64 MiB)",
                    ctx->file);
    else if (msg != NULL && strncmp(msg, ctx->file, strlen(ctx->file)) == 0)
        config_errf(ctx->err, ctx->errlen, "%s", msg);
    else if (msg != NULL)
        config_errf(ctx->err, ctx->errlen, "%s: %s", ctx->file, msg);
    else
        config_errf(ctx->err, ctx->errlen, "%s: error object is a %s value", ctx->file,
                    luaL_typename(L, -1));
}

/* True once the file has run past its time: safelib's bounded loops raise
 * (string.rep, table.move ... loop in C where the hook cannot stop them). */
static bool config_overdue(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return config_mono_ns() > ((config_ctx *)ud)->deadline_ns;
}

/* Opens base, string, table and math in L, without dofile, loadfile and
 * load, and with the __gc-refusing setmetatable. */
static void config_open_libs(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math},
    };
    static const char *const unsafe[] = {"dofile", "loadfile", "load"};
    for (size_t i = 0; i < HA_ARRAY_SIZE(libs); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1); /* lib */
        lua_pop(L, 1);                                 /* (empty) */
    }
    safelib_install(L, config_overdue);
    lua_pushglobaltable(L);                            /* _G */
    for (size_t i = 0; i < HA_ARRAY_SIZE(unsafe); i++) {
        lua_pushnil(L);                                /* _G nil */
        lua_setfield(L, -2, unsafe[i]);                /* _G */
    }
    lua_getfield(L, -1, "setmetatable");               /* _G setmetatable */
    lua_pushcclosure(L, config_setmetatable, 1);       /* _G wrapped */
    lua_setfield(L, -2, "setmetatable");               /* _G */
    lua_pop(L, 1);                                     /* (empty) */
}

/* Loads and runs the file in a coroutine, then applies its table (or its
 * globals). On error cfg may be partly updated but stays consistent for
 * config_free. */
int config_load_file(ha_config *cfg, const char *path, char *err, size_t errlen)
{
    config_ctx ctx;
    int rc = -1, status, nres = 0;
    lua_State *L, *co;

    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = cfg;
    ctx.file = path;
    ctx.err = err;
    ctx.errlen = errlen;
    L = lua_newstate(config_alloc, &ctx);
    if (L == NULL) {
        config_errf(err, errlen, "%s: cannot create a Lua state", path);
        goto fail;
    }
    config_set_str(&cfg->config_file, path);
    ctx.deadline_ns = config_mono_ns() + CONFIG_RUN_LIMIT_NS;
    lua_sethook(L, config_hook, LUA_MASKCOUNT, CONFIG_HOOK_COUNT);
    config_open_libs(L);

    status = luaL_loadfilex(L, path, "t");             /* chunk */
    if (status != LUA_OK) {
        config_lua_err(&ctx, L, status);
        goto fail;
    }
    lua_newtable(L);                                   /* chunk env */
    lua_newtable(L);                                   /* chunk env mt */
    lua_pushglobaltable(L);                            /* chunk env mt _G */
    lua_setfield(L, -2, "__index");                    /* chunk env mt */
    lua_setmetatable(L, -2);                           /* chunk env */
    lua_pushvalue(L, -1);                              /* chunk env env */
    lua_setupvalue(L, -3, 1);                          /* chunk env: env is the chunk's _ENV */
    lua_insert(L, -2);                                 /* env chunk */
    co = lua_newthread(L);                             /* env chunk co */
    lua_sethook(co, config_hook, LUA_MASKCOUNT, CONFIG_HOOK_COUNT);
    lua_insert(L, -2);                                 /* env co chunk */
    lua_xmove(L, co, 1);                               /* env co | co: chunk */
    status = lua_resume(co, L, 0, &nres);              /* env co | co: results */
    if (status == LUA_YIELD) {
        if (ctx.where[0] != '\0')
            config_errf(err, errlen, "%sconfiguration ran longer than 2s", ctx.where);
        else
            config_errf(err, errlen, "%s: configuration ran longer than 2s", path);
        goto fail;
    }
    if (status != LUA_OK) {
        config_lua_err(&ctx, co, status);
        goto fail;
    }
    if (nres > 0) {
        lua_settop(co, 1);                             /* co: first result */
        lua_xmove(co, L, 1);                           /* env co result */
    } else {
        lua_pushnil(L);                                /* env co nil */
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 2);                                 /* env: read the globals it set */
    } else if (lua_type(L, -1) != LUA_TTABLE) {
        config_errf(err, errlen, "%s: must return a table, not a %s", path, luaL_typename(L, -1));
        goto fail;
    }
    /* stack: ... conf */
    lua_pushcfunction(L, config_walk_cf);              /* ... conf walk */
    lua_pushlightuserdata(L, &ctx);                    /* ... conf walk ctx */
    lua_pushvalue(L, -3);                              /* ... conf walk ctx conf */
    status = lua_pcall(L, 2, 1, 0);                    /* ... conf status */
    if (status != LUA_OK) {
        config_lua_err(&ctx, L, status);
        goto fail;
    }
    if (lua_tointeger(L, -1) != 0)
        goto fail;
    rc = 0;
fail:
    config_compose_paths(cfg); /* paths[] matches aliases and extra[] also after an error */
    if (L != NULL)
        lua_close(L);
    return rc;
}
