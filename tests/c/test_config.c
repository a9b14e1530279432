/* test_config.c: defaults, Lua config files, environment overrides, listen
 * and token helpers (config.c). Config files are written to a fresh
 * directory under /tmp, removed at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "log.h"

#include "testlib.h"

static char dir[64];
static char files[128][128];
static int nfiles;

/* Writes content to dir/name and returns the path (kept for cleanup). */
static const char *write_file(const char *name, const char *content)
{
    if (nfiles == (int)(sizeof files / sizeof files[0]))
        exit(2);
    char *path = files[nfiles++];
    snprintf(path, sizeof files[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fputs(content, f);
    fclose(f);
    return path;
}

/* Loads content as a config file over the defaults; expects success. */
static int load_ok(ha_config *cfg, const char *name, const char *content)
{
    char err[512] = "";
    config_defaults(cfg);
    int rc = config_load_file(cfg, write_file(name, content), err, sizeof err);
    if (rc != 0) {
        failed++;
        fprintf(stderr, "config %s rejected: %s\n", name, err);
    }
    return rc;
}

/* Loads content and returns the error message ("" when it loaded). */
static const char *load_err(const char *name, const char *content)
{
    static char err[512];
    ha_config cfg;
    err[0] = '\0';
    config_defaults(&cfg);
    if (config_load_file(&cfg, write_file(name, content), err, sizeof err) == 0)
        snprintf(err, sizeof err, "(loaded)");
    config_free(&cfg);
    return err;
}

/* The expected message: dir + "/" + rest. */
static const char *in_dir(const char *rest)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, rest);
    return buf;
}

static bool trusted(const ha_config *cfg, const char *ip)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        return cidr_match(&cfg->trusted, (struct sockaddr *)&sin);
    }
    sin6.sin6_family = AF_INET6;
    CHECK(inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1);
    return cidr_match(&cfg->trusted, (struct sockaddr *)&sin6);
}

static void test_defaults(void)
{
    ha_config cfg;
    config_defaults(&cfg);
    CHECK(cfg.nlisten == 1);
    CHECK_STR(cfg.listen[0], "0.0.0.0:8080");
    CHECK(!cfg.listen_set);
    CHECK(cfg.scripts_dir == NULL && cfg.lualib_dir == NULL && cfg.token == NULL);
    CHECK(cfg.config_file == NULL);
    CHECK(cfg.trusted.n == 2);
    CHECK(trusted(&cfg, "127.0.0.1") && trusted(&cfg, "::1"));
    CHECK(!trusted(&cfg, "127.0.0.6") && !trusted(&cfg, "127.9.9.9")); /* a mesh sidecar's address */
    CHECK(cfg.send_timeout_ns == 30 * HA_NS_PER_S);
    CHECK(cfg.max_connections == 0 && cfg.max_connections_per_address == 256);
    CHECK(trusted(&cfg, "::ffff:127.0.0.1"));
    CHECK(!trusted(&cfg, "10.0.0.1") && !trusted(&cfg, "::2"));
    CHECK_U64(cfg.memory_limit, 64ull << 20);
    CHECK_U64(cfg.check_memory_limit, 16ull << 20);
    CHECK_U64(cfg.watchdog_ns, 5 * HA_NS_PER_S);
    CHECK_U64(cfg.default_timeout_ns, 1 * HA_NS_PER_S);
    CHECK_U64(cfg.default_ttl_ns, 5 * HA_NS_PER_S);
    CHECK_U64(cfg.idle_timeout_ns, 10 * HA_NS_PER_S);
    CHECK_U64(cfg.request_timeout_ns, 5 * HA_NS_PER_S);
    CHECK_U64(cfg.shutdown_delay_ns, 5 * HA_NS_PER_S);
    CHECK_U64(cfg.shutdown_timeout_ns, 10 * HA_NS_PER_S);
    CHECK_U64(cfg.rescan_ns, 30 * HA_NS_PER_S);
    CHECK(cfg.log_json == 0);
    CHECK(cfg.log_level == LOG_INFO);
    static const char *const paths[] = {"/livez", "/readyz", "/startupz", "/healthz"};
    static const int npaths[] = {3, 3, 1, 2}; /* canonical + the built-in aliases */
    CHECK(cfg.aliases);
    CHECK_STR(cfg.probes[HA_PI_LIVENESS].paths[1], "/health/live");
    CHECK_STR(cfg.probes[HA_PI_LIVENESS].paths[2], "/actuator/health/liveness");
    CHECK_STR(cfg.probes[HA_PI_READINESS].paths[1], "/health/ready");
    CHECK_STR(cfg.probes[HA_PI_READINESS].paths[2], "/actuator/health/readiness");
    CHECK_STR(cfg.probes[HA_PI_HEALTH].paths[1], "/actuator/health");
    for (int i = 0; i < HA_NPROBES; i++) {
        CHECK(cfg.probes[i].npaths == npaths[i]);
        CHECK(cfg.probes[i].nextra == 0);
        CHECK_STR(cfg.probes[i].paths[0], paths[i]);
        CHECK(cfg.probes[i].success_status == 200);
        CHECK(cfg.probes[i].failure_status == 503);
    }
    config_free(&cfg);
    CHECK(cfg.nlisten == 0 && cfg.listen[0] == NULL);
}

static void test_full_file(void)
{
    ha_config cfg;
    write_file("token.txt", "s3cr3t-token-0123456789\n\n");
    char text[2048];
    snprintf(text, sizeof text,
             "-- a complete configuration\n"
             "local base = '/srv/checks'\n"
             "return {\n"
             "  listen = { '127.0.0.1:9000', '[::1]:9001', 'localhost:9002' },\n"
             "  scripts = base,\n"
             "  lualib = base .. '/lib',\n"
             "  token_file = '%s/token.txt',\n"
             "  trusted_networks = { '10.0.0.0/8', 'fd00::/8' },\n"
             "  memory_limit = '32MiB',\n"
             "  check_memory_limit = 1048576,\n"
             "  watchdog = 3,\n"
             "  default_timeout = '250ms',\n"
             "  default_ttl = 0.5,\n"
             "  idle_timeout = '1m',\n"
             "  request_timeout = '2s',\n"
             "  shutdown_delay = 0,\n"
             "  shutdown_timeout = '1.5m',\n"
             "  rescan_interval = '1h',\n"
             "  log_format = 'json',\n"
             "  log_level = 'debug',\n"
             "  probes = {\n"
             "    readiness = { paths = { '/ready', '/readyz', '/ready', '/health/ready' },\n"
             "                  success_status = 204, failure_status = 500 },\n"
             "    liveness = { paths = '/live' },\n"
             "    startup = { failure_status = 599.0 },\n"
             "  },\n"
             "}\n",
             dir);
    if (load_ok(&cfg, "full.lua", text) != 0)
        return;
    CHECK(cfg.nlisten == 3);
    CHECK_STR(cfg.listen[0], "127.0.0.1:9000");
    CHECK_STR(cfg.listen[1], "[::1]:9001");
    CHECK_STR(cfg.listen[2], "localhost:9002");
    CHECK_STR(cfg.scripts_dir, "/srv/checks");
    CHECK_STR(cfg.lualib_dir, "/srv/checks/lib");
    CHECK_STR(cfg.token, "s3cr3t-token-0123456789");
    CHECK_STR(cfg.config_file, in_dir("full.lua"));
    CHECK(cfg.trusted.n == 2);
    CHECK(trusted(&cfg, "10.1.2.3") && trusted(&cfg, "fd12::1"));
    CHECK(!trusted(&cfg, "127.0.0.1")); /* the list replaces the defaults */
    CHECK_U64(cfg.memory_limit, 32ull << 20);
    CHECK_U64(cfg.check_memory_limit, 1048576);
    CHECK_U64(cfg.watchdog_ns, 3 * HA_NS_PER_S);
    CHECK_U64(cfg.default_timeout_ns, 250 * HA_NS_PER_MS);
    CHECK_U64(cfg.default_ttl_ns, 500 * HA_NS_PER_MS);
    CHECK_U64(cfg.idle_timeout_ns, 60 * HA_NS_PER_S);
    CHECK_U64(cfg.request_timeout_ns, 2 * HA_NS_PER_S);
    CHECK_U64(cfg.shutdown_delay_ns, 0);
    CHECK_U64(cfg.shutdown_timeout_ns, 90 * HA_NS_PER_S);
    CHECK_U64(cfg.rescan_ns, 3600 * HA_NS_PER_S);
    CHECK(cfg.log_json == 1);
    CHECK(cfg.log_level == LOG_DEBUG);
    /* probes.<probe>.paths adds to the canonical path and the built-in
     * aliases; repeats are dropped */
    const ha_probe_conf *rd = &cfg.probes[HA_PI_READINESS];
    CHECK(rd->npaths == 4);
    CHECK_STR(rd->paths[0], "/readyz");
    CHECK_STR(rd->paths[1], "/health/ready");
    CHECK_STR(rd->paths[2], "/actuator/health/readiness");
    CHECK_STR(rd->paths[3], "/ready");
    CHECK(rd->success_status == 204 && rd->failure_status == 500);
    const ha_probe_conf *lv = &cfg.probes[HA_PI_LIVENESS];
    CHECK(lv->npaths == 4);
    CHECK_STR(lv->paths[0], "/livez");
    CHECK_STR(lv->paths[3], "/live");
    CHECK(lv->success_status == 200 && lv->failure_status == 503);
    CHECK(cfg.probes[HA_PI_STARTUP].failure_status == 599);
    CHECK(cfg.probes[HA_PI_HEALTH].npaths == 2);

    /* A second file on top: its extra paths replace the first's. */
    char err[256] = "";
    const char *p2 = write_file("second.lua",
                                "return { probes = { readiness = { paths = { '/r2' } } } }\n");
    CHECK(config_load_file(&cfg, p2, err, sizeof err) == 0);
    CHECK(rd->npaths == 4);
    CHECK_STR(rd->paths[3], "/r2");
    CHECK_STR(cfg.config_file, p2);
    config_free(&cfg);
}

/* The documented example of every key loads and matches the defaults. */
static void test_example_file(void)
{
#ifdef HA_SOURCE_DIR
    ha_config cfg, def;
    char err[512] = "";
    config_defaults(&cfg);
    config_defaults(&def);
    if (config_load_file(&cfg, HA_SOURCE_DIR "/examples/agent.lua", err, sizeof err) != 0) {
        failed++;
        fprintf(stderr, "examples/agent.lua rejected: %s\n", err);
        goto done;
    }
    CHECK(cfg.nlisten == 1);
    CHECK_STR(cfg.listen[0], def.listen[0]);
    CHECK(cfg.token == NULL && cfg.scripts_dir == NULL && cfg.lualib_dir == NULL);
    CHECK(cfg.trusted.n == def.trusted.n);
    CHECK(memcmp(&cfg.trusted, &def.trusted, sizeof cfg.trusted) == 0);
    CHECK(cfg.memory_limit == def.memory_limit);
    CHECK(cfg.check_memory_limit == def.check_memory_limit);
    CHECK(cfg.watchdog_ns == def.watchdog_ns);
    CHECK(cfg.default_timeout_ns == def.default_timeout_ns);
    CHECK(cfg.default_ttl_ns == def.default_ttl_ns);
    CHECK(cfg.idle_timeout_ns == def.idle_timeout_ns);
    CHECK(cfg.request_timeout_ns == def.request_timeout_ns);
    CHECK(cfg.shutdown_delay_ns == def.shutdown_delay_ns);
    CHECK(cfg.shutdown_timeout_ns == def.shutdown_timeout_ns);
    CHECK(cfg.rescan_ns == def.rescan_ns);
    CHECK(cfg.log_json == def.log_json && cfg.log_level == def.log_level);
    CHECK(cfg.aliases == def.aliases);
    for (int i = 0; i < HA_NPROBES; i++) {
        CHECK(cfg.probes[i].npaths == def.probes[i].npaths); /* the built-ins are not repeated */
        CHECK(cfg.probes[i].nextra == 0);
        for (int j = 0; j < cfg.probes[i].npaths && j < def.probes[i].npaths; j++)
            CHECK_STR(cfg.probes[i].paths[j], def.probes[i].paths[j]);
        CHECK(cfg.probes[i].success_status == 200 && cfg.probes[i].failure_status == 503);
    }
done:
    config_free(&cfg);
    config_free(&def);
#endif
}

static void test_globals_file(void)
{
    ha_config cfg;
    if (load_ok(&cfg, "globals.lua",
                "-- no return: the globals set here are the configuration\n"
                "listen = '127.0.0.1:7000'\n"
                "watchdog = '2s'\n"
                "local helper = string.upper('info')\n"
                "log_level = helper:lower()\n") != 0)
        return;
    CHECK(cfg.nlisten == 1);
    CHECK_STR(cfg.listen[0], "127.0.0.1:7000");
    CHECK_U64(cfg.watchdog_ns, 2 * HA_NS_PER_S);
    CHECK(cfg.log_level == LOG_INFO);
    config_free(&cfg);

    /* return nil behaves the same; an empty file is the defaults. */
    if (load_ok(&cfg, "nil.lua", "scripts = '/x'\nreturn nil\n") == 0) {
        CHECK_STR(cfg.scripts_dir, "/x");
        config_free(&cfg);
    }
    if (load_ok(&cfg, "empty.lua", "") == 0) {
        CHECK_STR(cfg.listen[0], "0.0.0.0:8080");
        config_free(&cfg);
    }
    if (load_ok(&cfg, "emptytable.lua", "return {}") == 0)
        config_free(&cfg);
}

static void test_unknown_keys(void)
{
    CHECK_STR(load_err("u1.lua", "return { listen = '0.0.0.0:1', bogus = 1 }"),
              in_dir("u1.lua: unknown key 'bogus'"));
    CHECK_STR(load_err("u2.lua", "return { probes = { readiness = { pathz = { '/x' } } } }"),
              in_dir("u2.lua: unknown key 'probes.readiness.pathz'"));
    CHECK_STR(load_err("u3.lua", "return { probes = { ready = {} } }"),
              in_dir("u3.lua: unknown key 'probes.ready'"));
    CHECK_STR(load_err("u4.lua", "return { '0.0.0.0:80' }"), in_dir("u4.lua: unknown key '[1]'"));
    CHECK_STR(load_err("u5.lua", "Listen = '0.0.0.0:80'"), in_dir("u5.lua: unknown key 'Listen'"));
    CHECK_STR(load_err("u6.lua", "return { probes = { health = { [2] = 1 } } }"),
              in_dir("u6.lua: unknown key 'probes.health.[2]'"));
}

static void test_bad_values(void)
{
    CHECK_STR(load_err("d1.lua", "return { watchdog = 'abc' }"),
              in_dir("d1.lua: field 'watchdog': bad duration 'abc'"));
    CHECK_STR(load_err("d2.lua", "return { default_timeout = -1 }"),
              in_dir("d2.lua: field 'default_timeout': bad duration -1"));
    CHECK_STR(load_err("d3.lua", "return { rescan_interval = true }"),
              in_dir("d3.lua: field 'rescan_interval': expected a duration (seconds or \"250ms\"), "
                     "got boolean"));
    CHECK_STR(load_err("d4.lua", "return { watchdog = 0 }"),
              in_dir("d4.lua: field 'watchdog': must be greater than 0"));
    CHECK_STR(load_err("d5.lua", "return { idle_timeout = 1/0 }"),
              in_dir("d5.lua: field 'idle_timeout': bad duration inf"));
    CHECK_STR(load_err("d6.lua", "return { idle_timeout = '10 s' }"),
              in_dir("d6.lua: field 'idle_timeout': bad duration '10 s'"));
    CHECK_STR(load_err("s1.lua", "return { memory_limit = '12 parsecs' }"),
              in_dir("s1.lua: field 'memory_limit': bad size '12 parsecs'"));
    CHECK_STR(load_err("s2.lua", "return { check_memory_limit = 1.5 }"),
              in_dir("s2.lua: field 'check_memory_limit': bad size 1.5"));
    CHECK_STR(load_err("s3.lua", "return { memory_limit = 0 }"),
              in_dir("s3.lua: field 'memory_limit': must be greater than 0"));
    CHECK_STR(load_err("f1.lua", "return { log_format = 'xml' }"),
              in_dir("f1.lua: field 'log_format': want \"text\" or \"json\", got 'xml'"));
    CHECK_STR(load_err("f2.lua", "return { log_level = 'loud' }"),
              in_dir("f2.lua: field 'log_level': want debug, info, warn or error, got 'loud'"));
    CHECK_STR(load_err("f3.lua", "return { scripts = 42 }"),
              in_dir("f3.lua: field 'scripts': expected a string, got number"));
    CHECK_STR(load_err("f4.lua", "return { scripts = '' }"),
              in_dir("f4.lua: field 'scripts': must not be empty"));
    CHECK_STR(load_err("t1.lua", "return { trusted_networks = { '10.0.0.0/8', '10.0.0.0/33' } }"),
              in_dir("t1.lua: field 'trusted_networks': bad network '10.0.0.0/33'"));
    CHECK_STR(load_err("t2.lua", "return { trusted_networks = { a = '10.0.0.0/8' } }"),
              in_dir("t2.lua: field 'trusted_networks': expected a string or a list of strings"));
    CHECK_STR(load_err("p1.lua", "return { probes = { readiness = { paths = { 'ready' } } } }"),
              in_dir("p1.lua: field 'probes.readiness.paths': path 'ready' must start with '/'"));
    CHECK_STR(load_err("p2.lua", "return { probes = { readiness = { success_status = 99 } } }"),
              in_dir("p2.lua: field 'probes.readiness.success_status': must be an HTTP status "
                     "200..599, got 99"));
    CHECK_STR(load_err("p2b.lua", "return { probes = { readiness = { success_status = 101 } } }"),
              in_dir("p2b.lua: field 'probes.readiness.success_status': must be an HTTP status "
                     "200..599, got 101"));
    CHECK_STR(load_err("p3.lua", "return { probes = { liveness = { failure_status = '503' } } }"),
              in_dir("p3.lua: field 'probes.liveness.failure_status': expected an HTTP status "
                     "code, got string"));
    CHECK_STR(load_err("p4.lua", "return { probes = { readiness = { paths = { '/a', '/b', '/c', "
                                 "'/d', '/e', '/f', '/g', '/h', '/i' } } } }"),
              in_dir("p4.lua: field 'probes.readiness.paths': too many paths (at most 8)"));
    CHECK_STR(load_err("p5.lua", "return { probes = { liveness = { paths = { '/livez', '/x' } }, "
                                 "startup = { paths = { '/x' } } } }"),
              in_dir("p5.lua: path '/x' is used by probes liveness and startup"));
    CHECK_STR(load_err("p6.lua", "return { probes = { readiness = { paths = { '/-/ready' } } } }"),
              in_dir("p6.lua: field 'probes.readiness.paths': path '/-/ready' is reserved for the "
                     "admin endpoints"));
    CHECK_STR(load_err("p7.lua", "return { probes = { readiness = 5 } }"),
              in_dir("p7.lua: field 'probes.readiness': expected a table, got number"));
    CHECK_STR(load_err("k1.lua", "return { token = 'a', token_file = '/nonexistent' }"),
              in_dir("k1.lua: 'token' and 'token_file' are exclusive"));
    CHECK_STR(load_err("k2.lua", "return { token_file = '/nonexistent/t' }"),
              in_dir("k2.lua: field 'token_file': /nonexistent/t: cannot read token file: No such "
                     "file or directory"));
    CHECK_STR(load_err("k3.lua", "return { token = 'a\\nb' }"),
              in_dir("k3.lua: field 'token': must be non-empty, without control characters"));
    CHECK_STR(load_err("k4.lua", "return { token = 'x' }"),
              in_dir("k4.lua: field 'token': must be at least 16 characters"));
    /* values that cannot work */
    CHECK_STR(load_err("v1.lua", "return { request_timeout = '0.0001ms' }"),
              in_dir("v1.lua: field 'request_timeout': must be at least 100ms"));
    CHECK_STR(load_err("v2.lua", "return { watchdog = '1ms' }"),
              in_dir("v2.lua: field 'watchdog': must be at least 500ms"));
    CHECK_STR(load_err("v3.lua", "return { send_timeout = 0.5 }"),
              in_dir("v3.lua: field 'send_timeout': must be at least 1s"));
    CHECK_STR(load_err("v4.lua", "return { idle_timeout = '10ms' }"),
              in_dir("v4.lua: field 'idle_timeout': must be at least 100ms"));
    CHECK_STR(load_err("v5.lua", "return { max_connections_per_address = 0 }"),
              in_dir("v5.lua: field 'max_connections_per_address': must be a whole number 1..1000000, got 0"));
    CHECK_STR(load_err("v6.lua", "return { max_connections = 2.5 }"),
              in_dir("v6.lua: field 'max_connections': must be a whole number 0..1000000, got 2.5"));
    CHECK_STR(load_err("v7.lua", "return { max_connections = '10' }"),
              in_dir("v7.lua: field 'max_connections': expected a whole number, got string"));
    CHECK_STR(load_err("r1.lua", "return 5"), in_dir("r1.lua: must return a table, not a number"));

    /* Eight extra paths fit exactly, next to the canonical one and the
     * aliases (one of them repeats the canonical path). */
    ha_config cfg;
    if (load_ok(&cfg, "p8.lua", "return { probes = { readiness = { paths = { '/a', '/b', '/c', "
                                "'/d', '/e', '/f', '/g', '/readyz' } } } }") == 0) {
        CHECK(cfg.probes[HA_PI_READINESS].npaths == 10);
        config_free(&cfg);
    }
}

/* The built-in aliases, aliases = false, and the one table of reserved
 * paths that probe paths and check names are checked against. */
static void test_paths(void)
{
    ha_config cfg;
    if (load_ok(&cfg, "a1.lua", "return { aliases = false, probes = { readiness = { paths = "
                                "{ '/ready' } } } }") == 0) {
        CHECK(!cfg.aliases);
        CHECK(cfg.probes[HA_PI_LIVENESS].npaths == 1);
        CHECK(cfg.probes[HA_PI_HEALTH].npaths == 1);
        CHECK(cfg.probes[HA_PI_READINESS].npaths == 2);
        CHECK_STR(cfg.probes[HA_PI_READINESS].paths[1], "/ready");
        CHECK(config_path_owner(&cfg, "/health/live", 12) == NULL);
        CHECK_STR(config_path_owner(&cfg, "/ready", 6), "probe readiness");
        config_free(&cfg);
    }
    /* globals style, aliases read after probes in traversal order or not */
    if (load_ok(&cfg, "a2.lua", "probes = { liveness = { paths = '/alive' } }\naliases = false\n") == 0) {
        CHECK(cfg.probes[HA_PI_LIVENESS].npaths == 2);
        CHECK_STR(cfg.probes[HA_PI_LIVENESS].paths[1], "/alive");
        config_free(&cfg);
    }
    CHECK_STR(load_err("a3.lua", "return { aliases = 'no' }"),
              in_dir("a3.lua: field 'aliases': expected a boolean, got string"));
    /* a built-in alias of one probe cannot be added to another */
    CHECK_STR(load_err("a4.lua", "return { probes = { liveness = { paths = { '/health/ready' } } } }"),
              in_dir("a4.lua: path '/health/ready' is used by probes liveness and readiness"));
    /* with the aliases off, it can */
    CHECK_STR(load_err("a5.lua", "return { aliases = false, probes = { liveness = { paths = "
                                 "{ '/health/ready' } } } }"),
              "(loaded)");
    /* reserved routes, one line naming the key */
    static const struct {
        const char *path, *owner;
    } reserved[] = {
        {"/", "the status page"},       {"/status", "the status page"},
        {"/metrics", "the metrics endpoint"}, {"/info", "the info endpoint"},
        {"/actuator/info", "the info endpoint"}, {"/-", "the admin endpoints"},
        {"/-/x", "the admin endpoints"}, {"/groupz", "the groups"},
        {"/groupz/db", "the groups"},
    };
    for (size_t i = 0; i < HA_ARRAY_SIZE(reserved); i++) {
        char text[128], want[256];
        snprintf(text, sizeof text, "return { probes = { startup = { paths = { '%s' } } } }",
                 reserved[i].path);
        snprintf(want, sizeof want, "r%zu.lua: field 'probes.startup.paths': path '%s' is reserved for %s",
                 i, reserved[i].path, reserved[i].owner);
        char name[16];
        snprintf(name, sizeof name, "r%zu.lua", i);
        CHECK_STR(load_err(name, text), in_dir(want));
    }
    /* paths no request can reach after normalisation */
    CHECK_STR(load_err("n1.lua", "return { probes = { startup = { paths = { '/a/../b' } } } }"),
              in_dir("n1.lua: field 'probes.startup.paths': path '/a/../b' has a '.' or '..' segment: "
                     "no request could reach it"));
    CHECK_STR(load_err("n2.lua", "return { probes = { startup = { paths = { '/a//b' } } } }"),
              in_dir("n2.lua: field 'probes.startup.paths': path '/a//b' has an empty segment: no "
                     "request could reach it"));
    CHECK_STR(load_err("n3.lua", "return { probes = { startup = { paths = { '/started/' } } } }"),
              in_dir("n3.lua: field 'probes.startup.paths': path '/started/' ends with '/': no "
                     "request could reach it"));
    CHECK_STR(load_err("n4.lua", "return { probes = { startup = { paths = { '/s%41' } } } }"),
              in_dir("n4.lua: field 'probes.startup.paths': path '/s%41' has a bad character"));
    /* the table with defaults: probe paths and front routes; others free */
    config_defaults(&cfg);
    CHECK_STR(config_path_owner(&cfg, "/actuator/health/liveness", 25), "probe liveness");
    CHECK_STR(config_path_owner(&cfg, "/actuator/health", 16), "probe health");
    CHECK_STR(config_path_owner(&cfg, "/metrics", 8), "the metrics endpoint");
    CHECK(config_path_owner(&cfg, "/actuator/health/db", 19) == NULL);
    CHECK(config_path_owner(&cfg, "/metricsx", 9) == NULL);
    CHECK(config_name_reserved("liveness") && config_name_reserved("health"));
    CHECK(!config_name_reserved("db") && !config_name_reserved("healthz"));
    config_free(&cfg);
}

static void test_listen(void)
{
    CHECK_STR(load_err("l1.lua", "return { listen = '0.0.0.0:0' }"),
              in_dir("l1.lua: field 'listen': bad address '0.0.0.0:0': port must be 1..65535"));
    CHECK_STR(load_err("l2.lua", "return { listen = '0.0.0.0' }"),
              in_dir("l2.lua: field 'listen': bad address '0.0.0.0': want host:port or "
                     "[ipv6]:port"));
    CHECK_STR(load_err("l3.lua", "return { listen = { '127.0.0.1:80', '[::1]:70000' } }"),
              in_dir("l3.lua: field 'listen': bad address '[::1]:70000': port must be 1..65535"));
    CHECK_STR(load_err("l4.lua", "return { listen = '::1:80' }"),
              in_dir("l4.lua: field 'listen': bad address '::1:80': IPv6 addresses need brackets: "
                     "[::]:8080"));
    CHECK_STR(load_err("l5.lua", "return { listen = '[zz]:80' }"),
              in_dir("l5.lua: field 'listen': bad address '[zz]:80': bad IPv6 address"));
    CHECK_STR(load_err("l6.lua", "return { listen = {} }"),
              in_dir("l6.lua: field 'listen': bad address '': at least one address is needed"));
    CHECK_STR(load_err("l7.lua", "return { listen = 8080 }"),
              in_dir("l7.lua: field 'listen': expected a string or a list of strings, got number"));
    CHECK_STR(load_err("l8.lua", "return { listen = { '127.0.0.1:80', '127.0.0.1:80' } }"),
              in_dir("l8.lua: field 'listen': bad address '127.0.0.1:80': given twice"));
    CHECK_STR(load_err("l9.lua", "return { listen = 'ho st:80' }"),
              in_dir("l9.lua: field 'listen': bad address 'ho st:80': bad host"));
    CHECK_STR(load_err("l10.lua", "return { listen = ':80' }"),
              in_dir("l10.lua: field 'listen': bad address ':80': want host:port or [ipv6]:port"));
    CHECK_STR(load_err("l11.lua", "return { listen = '1.2.3.4:80x' }"),
              in_dir("l11.lua: field 'listen': bad address '1.2.3.4:80x': port must be 1..65535"));

    ha_config cfg;
    char err[256];
    config_defaults(&cfg);
    CHECK(config_add_listen(&cfg, "1.2.3.4:5", err, sizeof err) == 0);
    CHECK(cfg.nlisten == 1);
    CHECK_STR(cfg.listen[0], "1.2.3.4:5");
    CHECK(config_add_listen(&cfg, "[::]:6", err, sizeof err) == 0);
    CHECK(cfg.nlisten == 2);
    CHECK_STR(cfg.listen[1], "[::]:6");
    CHECK(config_add_listen(&cfg, "[::]:65536", err, sizeof err) == -1);
    CHECK_STR(err, "bad listen address '[::]:65536': port must be 1..65535");
    CHECK(cfg.nlisten == 2);
    for (int i = 0; i < HA_MAX_LISTEN - 2; i++) {
        char a[32];
        snprintf(a, sizeof a, "127.0.0.1:%d", 100 + i);
        CHECK(config_add_listen(&cfg, a, err, sizeof err) == 0);
    }
    CHECK(config_add_listen(&cfg, "127.0.0.1:99", err, sizeof err) == -1);
    CHECK_STR(err, "bad listen address '127.0.0.1:99': too many listen addresses (at most 16)");
    config_free(&cfg);

    /* A bad first address leaves the defaults in place. */
    config_defaults(&cfg);
    CHECK(config_add_listen(&cfg, "nope", err, sizeof err) == -1);
    CHECK(cfg.nlisten == 1 && !cfg.listen_set);
    CHECK_STR(cfg.listen[0], "0.0.0.0:8080");
    config_free(&cfg);
}

/* grpc_listen: off by default, the listen grammar, an own list that may be
 * empty; --grpc-listen replaces the file's list the first time. */
static void test_grpc_listen(void)
{
    ha_config cfg;
    char err[256];
    config_defaults(&cfg);
    CHECK(cfg.ngrpc_listen == 0);
    config_free(&cfg);
    if (load_ok(&cfg, "g1.lua", "return { grpc_listen = { '127.0.0.1:9091', '[::1]:9091' } }") == 0) {
        CHECK(cfg.ngrpc_listen == 2);
        CHECK_STR(cfg.grpc_listen[1], "[::1]:9091");
        CHECK(config_add_grpc_listen(&cfg, "0.0.0.0:7", err, sizeof err) == 0);
        CHECK(cfg.ngrpc_listen == 1);
        CHECK_STR(cfg.grpc_listen[0], "0.0.0.0:7");
        CHECK(config_add_grpc_listen(&cfg, "0.0.0.0:8", err, sizeof err) == 0);
        CHECK(cfg.ngrpc_listen == 2);
        CHECK(config_add_grpc_listen(&cfg, "0.0.0.0:8080", err, sizeof err) == -1);
        CHECK_STR(err, "bad gRPC listen address '0.0.0.0:8080': already an HTTP listen address");
        config_free(&cfg);
    }
    if (load_ok(&cfg, "g2.lua", "return { grpc_listen = {} }") == 0) {
        CHECK(cfg.ngrpc_listen == 0);
        config_free(&cfg);
    }
    CHECK_STR(load_err("g3.lua", "return { grpc_listen = '0.0.0.0:0' }"),
              in_dir("g3.lua: field 'grpc_listen': bad address '0.0.0.0:0': port must be 1..65535"));
    CHECK_STR(load_err("g4.lua", "return { grpc_listen = { ':1', } }"),
              in_dir("g4.lua: field 'grpc_listen': bad address ':1': want host:port or [ipv6]:port"));
    CHECK_STR(load_err("g5.lua", "return { grpc_listen = { '1.2.3.4:5', '1.2.3.4:5' } }"),
              in_dir("g5.lua: field 'grpc_listen': bad address '1.2.3.4:5': given twice"));
    CHECK_STR(load_err("g6.lua", "return { grpc_listen = 9091 }"),
              in_dir("g6.lua: field 'grpc_listen': expected a string or a list of strings, got number"));
}

static void test_lua_errors(void)
{
    const char *e = load_err("syntax.lua", "return {\n  listen = '0.0.0.0:80'\n  watchdog = 1\n}\n");
    CHECK(strncmp(e, in_dir("syntax.lua:3: "), strlen(in_dir("syntax.lua:3: "))) == 0);
    CHECK(strstr(e, "'}' expected") != NULL);
    CHECK_STR(load_err("runtime.lua", "local x = 1\nerror('boom')\n"), in_dir("runtime.lua:2: boom"));
    CHECK_STR(load_err("nonstr.lua", "error({})\n"),
              in_dir("nonstr.lua: error object is a table value"));

    /* The sandbox: no io, os, require, dofile, loadfile or load. */
    e = load_err("os.lua", "return { scripts = os.getenv('HOME') }\n");
    CHECK(strstr(e, "os.lua:1: attempt to index a nil value (global 'os')") != NULL);
    e = load_err("io.lua", "local f = io.open('/etc/passwd')\n");
    CHECK(strstr(e, "io.lua:1: attempt to index a nil value (global 'io')") != NULL);
    e = load_err("req.lua", "require('os')\n");
    CHECK(strstr(e, "req.lua:1: attempt to call a nil value (global 'require')") != NULL);
    e = load_err("dofile.lua", "dofile('/etc/passwd')\n");
    CHECK(strstr(e, "attempt to call a nil value (global 'dofile')") != NULL);
    e = load_err("load.lua", "load('return 1')\n");
    CHECK(strstr(e, "attempt to call a nil value (global 'load')") != NULL);

    /* Text chunks only. */
    e = load_err("binary.lua", "\x1bLua\x54\x00");
    CHECK(strstr(e, "binary chunk") != NULL);

    /* Missing file. */
    char err[256] = "";
    ha_config cfg;
    config_defaults(&cfg);
    CHECK(config_load_file(&cfg, "/nonexistent/healthagent.lua", err, sizeof err) == -1);
    CHECK(strstr(err, "/nonexistent/healthagent.lua") != NULL);
    config_free(&cfg);

    /* Memory and time limits. */
    e = load_err("mem.lua", "local t = {}\nfor i = 1, 1e9 do t[i] = i end\n");
    CHECK_STR(e, in_dir("mem.lua: not enough memory (config heap is 64 MiB)"));
    e = load_err("rep.lua", "local s = string.rep('x', 1 << 30)\n");
    CHECK_STR(e, in_dir("rep.lua: not enough memory (config heap is 64 MiB)"));
    e = load_err("loop.lua", "local n = 0\nwhile true do n = n + 1 end\n");
    CHECK_STR(e, in_dir("loop.lua:2: configuration ran longer than 2s"));
    /* A pcall loop cannot swallow the time limit. */
    e = load_err("pcall.lua", "while true do pcall(function() while true do end end) end\n");
    CHECK_STR(e, in_dir("pcall.lua:1: configuration ran longer than 2s"));
    /* Nor can a finalizer run at lua_close. */
    e = load_err("gc.lua", "setmetatable({}, { __gc = function() while true do end end })\n");
    CHECK_STR(e, in_dir("gc.lua:1: __gc metamethods are not allowed in the configuration"));
    ha_config gcfg;
    if (load_ok(&gcfg, "mt.lua", "local t = setmetatable({}, { __index = { listen = 'x' } })\n"
                                 "return setmetatable({ watchdog = 2 }, { __index = t })\n") == 0) {
        CHECK_STR(gcfg.listen[0], "0.0.0.0:8080"); /* only raw fields count */
        CHECK_U64(gcfg.watchdog_ns, 2 * HA_NS_PER_S);
        config_free(&gcfg);
    }
}

static void test_env(void)
{
    ha_config cfg;
    char err[256] = "";
    const char *tok = write_file("envtoken", "  from-file-0123456789 \t\r\n");

    config_defaults(&cfg);
    setenv("HEALTHAGENT_LISTEN", " 127.0.0.1:9000 , [::1]:9001,,", 1);
    setenv("HEALTHAGENT_SCRIPTS", "/env/scripts", 1);
    setenv("HEALTHAGENT_TOKEN", "env-token-0123456789", 1);
    CHECK(config_apply_env(&cfg, err, sizeof err) == 0);
    CHECK(cfg.nlisten == 2);
    CHECK_STR(cfg.listen[0], "127.0.0.1:9000");
    CHECK_STR(cfg.listen[1], "[::1]:9001");
    CHECK_STR(cfg.scripts_dir, "/env/scripts");
    CHECK_STR(cfg.token, "env-token-0123456789");

    /* The environment replaces what a file set... */
    setenv("HEALTHAGENT_LISTEN", "0.0.0.0:1", 1);
    CHECK(config_apply_env(&cfg, err, sizeof err) == 0);
    CHECK(cfg.nlisten == 1);
    CHECK_STR(cfg.listen[0], "0.0.0.0:1");
    /* ...and the command line replaces the environment's, then appends. */
    CHECK(config_add_listen(&cfg, "0.0.0.0:9002", err, sizeof err) == 0);
    CHECK(config_add_listen(&cfg, "0.0.0.0:9003", err, sizeof err) == 0);
    CHECK(cfg.nlisten == 2);
    CHECK_STR(cfg.listen[0], "0.0.0.0:9002");
    CHECK_STR(cfg.listen[1], "0.0.0.0:9003");

    setenv("HEALTHAGENT_LISTEN", "0.0.0.0:1,bad", 1);
    CHECK(config_apply_env(&cfg, err, sizeof err) == -1);
    CHECK_STR(err, "HEALTHAGENT_LISTEN: bad address 'bad': want host:port or [ipv6]:port");
    CHECK(cfg.nlisten == 2); /* unchanged */
    setenv("HEALTHAGENT_LISTEN", " , ", 1);
    CHECK(config_apply_env(&cfg, err, sizeof err) == -1);
    CHECK_STR(err, "HEALTHAGENT_LISTEN: bad address '': at least one address is needed");
    unsetenv("HEALTHAGENT_LISTEN");

    setenv("HEALTHAGENT_TOKEN_FILE", tok, 1);
    CHECK(config_apply_env(&cfg, err, sizeof err) == -1);
    CHECK_STR(err, "HEALTHAGENT_TOKEN and HEALTHAGENT_TOKEN_FILE are exclusive");
    unsetenv("HEALTHAGENT_TOKEN");
    CHECK(config_apply_env(&cfg, err, sizeof err) == 0);
    CHECK_STR(cfg.token, "  from-file-0123456789");
    setenv("HEALTHAGENT_TOKEN_FILE", "", 1); /* empty is unset */
    CHECK(config_apply_env(&cfg, err, sizeof err) == 0);
    unsetenv("HEALTHAGENT_TOKEN_FILE");
    unsetenv("HEALTHAGENT_SCRIPTS");
    config_free(&cfg);
}

static void test_token_file(void)
{
    ha_config cfg;
    char err[256] = "";
    config_defaults(&cfg);
    CHECK(config_read_token(&cfg, write_file("t-ok", "abc-0123456789-abc\n"), err, sizeof err) == 0);
    CHECK_STR(cfg.token, "abc-0123456789-abc");
    CHECK(config_read_token(&cfg, write_file("t-noeol", "xyz-0123456789-xyz"), err, sizeof err) == 0);
    CHECK_STR(cfg.token, "xyz-0123456789-xyz");
    const char *p = write_file("t-empty", " \n\t\n");
    CHECK(config_read_token(&cfg, p, err, sizeof err) == -1);
    char want[256];
    snprintf(want, sizeof want, "%s: token file is empty", p);
    CHECK_STR(err, want);
    CHECK_STR(cfg.token, "xyz-0123456789-xyz"); /* unchanged on error */
    p = write_file("t-ctl", "ab-0123456789\ncd-0123456789\n");
    CHECK(config_read_token(&cfg, p, err, sizeof err) == -1);
    snprintf(want, sizeof want, "%s: token contains control characters", p);
    CHECK_STR(err, want);
    p = write_file("t-short", "0123456789abcde\n"); /* 15 characters */
    CHECK(config_read_token(&cfg, p, err, sizeof err) == -1);
    snprintf(want, sizeof want, "%s: token shorter than 16 characters", p);
    CHECK_STR(err, want);
    CHECK(config_read_token(&cfg, write_file("t-16", "0123456789abcdef"), err, sizeof err) == 0);
    CHECK_STR(cfg.token, "0123456789abcdef");
    setenv("HEALTHAGENT_TOKEN", "short", 1);
    CHECK(config_apply_env(&cfg, err, sizeof err) == -1);
    CHECK_STR(err, "HEALTHAGENT_TOKEN: token shorter than 16 characters");
    unsetenv("HEALTHAGENT_TOKEN");
    CHECK(config_read_token(&cfg, "/nonexistent/t", err, sizeof err) == -1);
    CHECK_STR(err, "/nonexistent/t: cannot read token file: No such file or directory");
    config_free(&cfg);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ha-config-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    unsetenv("HEALTHAGENT_LISTEN");
    unsetenv("HEALTHAGENT_SCRIPTS");
    unsetenv("HEALTHAGENT_TOKEN");
    unsetenv("HEALTHAGENT_TOKEN_FILE");

    test_defaults();
    test_full_file();
    test_example_file();
    test_globals_file();
    test_unknown_keys();
    test_bad_values();
    test_listen();
    test_grpc_listen();
    test_lua_errors();
    test_env();
    test_token_file();
    test_paths();

    for (int i = 0; i < nfiles; i++)
        unlink(files[i]);
    rmdir(dir);
    return testlib_report();
}
