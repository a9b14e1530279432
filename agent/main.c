/* main.c: the command line, start-up and teardown order, and the script
 * runner (`healthagent file.lua args...` acts like `lua`, with the engine
 * loop running, so `busted --lua=healthagent` runs specs inside the agent). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "api.h"
#include "bridge.h"
#include "cmd.h"
#include "config.h"
#include "engine.h"
#include "engine_check.h"
#include "engine_load.h"
#include "engine_vm.h"
#include "front.h"
#include "front_admin.h"
#include "log.h"

#ifndef HA_GIT_COMMIT /* CMake sets both, "unknown" without git */
#define HA_GIT_COMMIT "unknown"
#endif
#ifndef HA_BUILD_DATE
#define HA_BUILD_DATE "unknown"
#endif

static const char usage[] =
    "usage: healthagent [--config FILE] [--scripts DIR] [--listen ADDR:PORT]... [--token-file FILE]\n"
    "                   [--grpc-listen ADDR:PORT]...\n"
    "                   [--log-format text|json] [--log-level debug|info|warn|error]\n"
    "       healthagent COMMAND [ARGS...]    (healthagent COMMAND --help for its options)\n"
    "       healthagent FILE.lua [ARGS...]   run a Lua script inside the agent runtime\n"
    "\n"
    "Serves Kubernetes-style health probes (/livez /readyz /startupz /healthz) from\n"
    "checks written in Lua. With no arguments it serves the bundled scripts on\n"
    "0.0.0.0:8080.\n"
    "\n"
    "Commands:\n"
    "  probe    one HTTP GET against a running agent: exit 0 UP, 1 not (Docker HEALTHCHECK)\n"
    "  check    load the scripts, run every check once, print text/json/tap/junit\n"
    "  lint     load every script without running a check\n"
    "  report   report a pushed check's result: healthagent report NAME UP|WARN|DOWN [MESSAGE]\n"
    "  help     this text, or a command's: healthagent help probe\n"
    "  version  the version, commit and build date (also --version)\n"
    "\n"
    "Environment: HEALTHAGENT_CONFIG, HEALTHAGENT_LISTEN (comma-separated), HEALTHAGENT_SCRIPTS,\n"
    "HEALTHAGENT_TOKEN, HEALTHAGENT_TOKEN_FILE, HEALTHAGENT_LOG_FORMAT, HEALTHAGENT_LOG_LEVEL.\n"
    "Precedence: command line, environment, config file, defaults.\n"
    "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 the engine did not stop in time,\n"
    "2 bad usage, configuration or scripts (see man healthagent).\n";

/* --- secrets ---------------------------------------------------------------- */

static const char *const secret_vars[] = {"HEALTHAGENT_TOKEN", "HEALTHAGENT_TOKEN_FILE"};

/* Takes the secret variables out of the environment before anything runs:
 * copies them to saved[], overwrites their values where they lie (the
 * initial environment block, which /proc/self/environ shows whatever
 * unsetenv does) and unsets them. Every mode calls this first; only the
 * agent puts them back, for the configuration to read (restore_secrets). */
static void take_secrets(char *saved[])
{
    for (size_t i = 0; i < HA_ARRAY_SIZE(secret_vars); i++) {
        char *v = getenv(secret_vars[i]);
        saved[i] = v ? strdup(v) : NULL;
        if (v)
            memset(v, 0, strlen(v));
        unsetenv(secret_vars[i]);
    }
}

/* Sets the saved variables again (heap copies, not the initial block) so
 * that config_apply_env reads them; unset_secrets removes them before any
 * script runs. */
static void restore_secrets(char *saved[])
{
    for (size_t i = 0; i < HA_ARRAY_SIZE(secret_vars); i++)
        if (saved[i]) {
            setenv(secret_vars[i], saved[i], 1);
            memset(saved[i], 0, strlen(saved[i]));
        }
}

static void unset_secrets(void)
{
    for (size_t i = 0; i < HA_ARRAY_SIZE(secret_vars); i++) {
        char *v = getenv(secret_vars[i]);
        if (v)
            memset(v, 0, strlen(v));
        unsetenv(secret_vars[i]);
    }
}

/* --- script runner -------------------------------------------------------- */

static void runner_done(ha_task *t, lua_State *co, ha_task_end how, int nres, void *ud)
{
    ha_engine *eng = ud;
    (void)t;
    (void)nres;
    if (how == HA_TASK_ERROR || how == HA_TASK_MEMORY) {
        const char *msg = how == HA_TASK_MEMORY ? "not enough memory" : lua_tostring(co, -1);
        luaL_traceback(co, co, msg, 0);
        fprintf(stderr, "healthagent: %s\n", lua_tostring(co, -1));
        eng->exit_code = 1;
    }
    uv_stop(eng->loop);
}

/* os.exit(code) in runner mode: unwinds the script through a special yield
 * so the loop can be emptied and checked before the process exits. */
static int runner_exit(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    int code = EXIT_SUCCESS;
    if (lua_isboolean(L, 1))
        code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
    else
        code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
    vm->eng->exit_code = code;
    if (!lua_isyieldable(L)) {
        fflush(NULL);
        exit(code);
    }
    vm->yield_kind = HA_YIELD_EXIT;
    return lua_yield(L, 0);
}

/* Runs path as the main chunk of a task with args as the `arg` table. */
static int run_script(ha_config *cfg, int argc, char **argv, int first)
{
    ha_engine eng;
    char err[1024];
    uv_loop_t loop;
    int code = 2;
    uv_loop_init(&loop);
    engine_init(&eng, cfg, &loop);
    ha_vm *vm = engine_vm_new(&eng, false, 0, cfg->lualib_dir, NULL, err, sizeof err);
    if (vm == NULL) {
        fprintf(stderr, "healthagent: %s\n", err);
        goto out;
    }
    lua_State *L = vm->L;
    lua_createtable(L, argc - first, first + 1); /* [arg] */
    lua_pushstring(L, argv[0]);
    lua_rawseti(L, -2, -first);
    for (int i = first; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - first);
    }
    lua_setglobal(L, "arg"); /* [] */
    lua_getglobal(L, "os");
    lua_pushcfunction(L, runner_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    if (luaL_loadfile(L, argv[first]) != LUA_OK) { /* [chunk] */
        fprintf(stderr, "healthagent: %s\n", lua_tostring(L, -1));
        code = 1;
        goto out;
    }
    for (int i = first + 1; i < argc; i++)
        lua_pushstring(L, argv[i]);
    engine_task_start(vm, L, argc - first - 1, 0, 0, runner_done, &eng);
    uv_run(&loop, UV_RUN_DEFAULT);
    code = eng.exit_code;
    fflush(stdout);
    api_testing_close_all();
out:
    engine_vm_close(vm);
    int left = engine_close(&eng); /* closes the loop too */
    if (left) {
        fprintf(stderr, "healthagent: %d libuv handle(s) still open when the script ended\n", left);
        if (code == 0)
            code = 3;
    }
    return code;
}

/* --- agent -------------------------------------------------------------- */

/* Prints "healthagent: <message>" as one line (control bytes escaped: a
 * file name may hold a newline) and returns exit code 2. */
static int fail(const char *fmt, const char *a, const char *b)
{
    char msg[2048];
    ha_buf line = HA_BUF_INIT;
    snprintf(msg, sizeof msg, fmt, a, b);
    buf_adds(&line, "healthagent: ");
    log_escape(&line, msg, strlen(msg));
    buf_addc(&line, '\n');
    fwrite(line.data, 1, line.len, stderr);
    buf_free(&line);
    return 2;
}

/* Parses the agent's command line over cfg: the config file (--config, else
 * $HEALTHAGENT_CONFIG) and the environment first, then the flags. Returns -1
 * to continue, else an exit code. */
static int parse_args(ha_config *cfg, int argc, char **argv)
{
    char err[1024];
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        int code = cmd_common_flag(argv[i], usage);
        if (code >= 0)
            return code;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[i + 1];
    }
    int r = config_load(cfg, config, err, sizeof err);
    unset_secrets(); /* read: scripts (os.getenv, /proc/self/environ) must not see them */
    if (r != 0)
        return fail("%s%s", err, "");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--config") != 0 && strcmp(a, "--scripts") != 0 && strcmp(a, "--listen") != 0 &&
            strcmp(a, "--grpc-listen") != 0 &&
            strcmp(a, "--token-file") != 0 && strcmp(a, "--log-format") != 0 && strcmp(a, "--log-level") != 0)
            return fail("unknown option '%s' (see --help)%s", a, "");
        if (v == NULL)
            return fail("option '%s' needs a value%s", a, "");
        i++;
        if (strcmp(a, "--scripts") == 0) {
            free(cfg->scripts_dir);
            cfg->scripts_dir = strdup(v);
        } else if (strcmp(a, "--listen") == 0) {
            if (config_add_listen(cfg, v, err, sizeof err) != 0)
                return fail("--listen: %s%s", err, "");
        } else if (strcmp(a, "--grpc-listen") == 0) {
            if (config_add_grpc_listen(cfg, v, err, sizeof err) != 0)
                return fail("--grpc-listen: %s%s", err, "");
        } else if (strcmp(a, "--token-file") == 0) {
            if (config_read_token(cfg, v, err, sizeof err) != 0)
                return fail("--token-file: %s%s", err, "");
        } else if (strcmp(a, "--log-format") == 0) {
            if (strcmp(v, "text") != 0 && strcmp(v, "json") != 0)
                return fail("--log-format: expected text or json, got '%s'%s", v, "");
            cfg->log_json = strcmp(v, "json") == 0;
        } else if (strcmp(a, "--log-level") == 0) {
            if ((cfg->log_level = log_level_parse(v)) < 0)
                return fail("--log-level: expected debug, info, warn or error, got '%s'%s", v, "");
        }
    }
    return -1;
}

/* Makes a relative *path absolute against the working directory, without
 * resolving symlinks (a ConfigMap's scripts directory may be one: the watch
 * must keep following the name). "./" prefixes are dropped. Leaves *path
 * as it is when the working directory cannot be read. */
static void absolutize(char **path)
{
    char cwd[4096];
    const char *p = *path;
    if (p == NULL || p[0] == '/' || getcwd(cwd, sizeof cwd) == NULL)
        return;
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (*p == '/')
            p++;
    }
    size_t len = strlen(cwd) + 1 + strlen(p) + 1;
    char *abs = malloc(len);
    if (abs == NULL)
        return;
    if (strcmp(p, ".") == 0 || p[0] == '\0')
        snprintf(abs, len, "%s", cwd);
    else
        snprintf(abs, len, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", p);
    free(*path);
    *path = abs;
}

/* The listen addresses as one "a, b, c" line, in buf. */
static const char *listen_list(const ha_config *cfg, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < cfg->nlisten && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", cfg->listen[i]);
    return buf;
}

/* Signals reach the front loop as a graceful or immediate stop. */
static int run_agent(ha_config *cfg)
{
    char err[1024];
    ha_script_set set;
    ha_engine eng;
    ha_gen *gen = NULL;
    ha_bridge bridge;
    uv_loop_t loop;
    ha_front *front = NULL;
    int code = 2;
    if (cfg->scripts_dir == NULL)
        cfg->scripts_dir = strdup(config_default_scripts());
    if (cfg->lualib_dir == NULL)
        cfg->lualib_dir = strdup(config_default_lualib());
    absolutize(&cfg->scripts_dir); /* /info, /-/status and the logs name it unambiguously */
    log_setup(cfg->log_json, cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    front_admin_init(HA_GIT_COMMIT, HA_BUILD_DATE);

    int r = engine_init(&eng, cfg, NULL);
    if (r != 0)
        return fail("engine: %s%s", uv_strerror(r), "");
    if (engine_load_read(cfg->scripts_dir, &set, err, sizeof err) != 0)
        goto fail_load;
    gen = engine_load_gen(&eng, cfg->scripts_dir, &set, err, sizeof err);
    engine_load_free(&set);
    if (gen == NULL)
        goto fail_load;

    bridge_init(&bridge);
    uv_loop_init(&loop);
    front = front_new(&loop, cfg, &bridge, err, sizeof err);
    if (front == NULL)
        goto fail_front;
    size_t nchecks = gen->n; /* gen belongs to the engine thread from here: a reload may free it */
    if ((r = engine_start_thread(&eng, gen, &bridge)) != 0) {
        fail("engine thread: %s%s", uv_strerror(r), "");
        goto out;
    }
    if (nchecks == 0)
        log_event(LOG_WARN, NULL, "%s defines no checks: every probe answers UP", cfg->scripts_dir);
    if (cfg->token_file_absent != NULL)
        log_event(LOG_WARN, NULL, "token file %s does not exist (token_file_optional): running without a token",
                  cfg->token_file_absent);
    char addrs[HA_MAX_LISTEN * 64];
    log_event(LOG_INFO, NULL, "healthagent %s serving %zu check(s) from %s on %s", HA_VERSION, nchecks,
              cfg->scripts_dir, listen_list(cfg, addrs, sizeof addrs));
    code = front_run(front);
    /* the front loop no longer turns: a further signal must act at once */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (engine_join(&eng, cfg->shutdown_timeout_ns) != 0) {
        char d[32];
        ha_duration_format(cfg->shutdown_timeout_ns, d, sizeof d);
        log_event(LOG_ERROR, NULL, "engine did not stop within %s (a script is stuck in a C function): exit 1", d);
        _exit(1);
    }
out:
    front_free(front);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) != 0)
        log_event(LOG_ERROR, NULL, "front loop not empty at exit");
    bridge_dispose(&bridge);
    log_event(LOG_INFO, NULL, "exit %d", code);
    return code;

    /* start-up failed before the engine thread: what was made so far, newest
     * first, then the one line that says why */
fail_front:
    uv_loop_close(&loop);
    bridge_dispose(&bridge);
fail_load:
    engine_gen_close(gen);
    engine_close(&eng);
    free(eng.loop);
    return fail("%s%s", err, "");
}

/* --- commands ------------------------------------------------------------ */

static int main_version(ha_config *cfg, int argc, char **argv)
{
    (void)cfg;
    for (int i = 1; i < argc; i++) {
        int code = cmd_common_flag(argv[i], "usage: healthagent version\n");
        if (code >= 0)
            return code;
        return fail("version: unexpected argument '%s'%s", argv[i], "");
    }
    return cmd_version();
}

static int main_help(ha_config *cfg, int argc, char **argv);

typedef struct {
    const char *name;
    int (*run)(ha_config *cfg, int argc, char **argv); /* argv[0] is the name; returns the exit code */
} main_command;

static const main_command main_commands[] = {
    {"probe", cmd_probe}, {"check", cmd_check}, {"lint", cmd_lint}, {"report", cmd_report}, {"help", main_help},
    {"version", main_version},
};

static const main_command *main_find(const char *name)
{
    for (size_t i = 0; i < HA_ARRAY_SIZE(main_commands); i++)
        if (strcmp(name, main_commands[i].name) == 0)
            return &main_commands[i];
    return NULL;
}

/* healthagent help [COMMAND]: the usage, or COMMAND --help. */
static int main_help(ha_config *cfg, int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stdout);
        return 0;
    }
    const main_command *c = main_find(argv[1]);
    if (c == NULL || c->run == main_help)
        return fail("help: no command '%s' (commands: probe, check, lint, report, help, version)%s", argv[1], "");
    char *args[] = {argv[1], "--help", NULL};
    return c->run(cfg, 2, args);
}

int main(int argc, char **argv)
{
    ha_config cfg;
    config_defaults(&cfg);
    cmd_set_build(HA_GIT_COMMIT, HA_BUILD_DATE);
    int code;
    char *secrets[HA_ARRAY_SIZE(secret_vars)];
    take_secrets(secrets); /* in every mode: check, lint and the runner run scripts too */
    if (secrets[1])
        cfg.token_file = strdup(secrets[1]); /* check and lint: scripts may not open it either */
    signal(SIGPIPE, SIG_IGN); /* a peer that resets must not kill us: writes return EPIPE */
    /* commands come first: the runner takes any other word as a script */
    const main_command *c = argc > 1 ? main_find(argv[1]) : NULL;
    if (c != NULL) {
        if (c->run == cmd_report)
            restore_secrets(secrets); /* it sends the token; it runs no script */
        code = c->run(&cfg, argc - 1, argv + 1);
    } else if (argc > 1 && argv[1][0] != '-') {
        cfg.lualib_dir = strdup(config_default_lualib());
        code = run_script(&cfg, argc, argv, 1);
    } else {
        restore_secrets(secrets);
        code = parse_args(&cfg, argc, argv);
        if (code < 0)
            code = run_agent(&cfg);
    }
    for (size_t i = 0; i < HA_ARRAY_SIZE(secrets); i++)
        free(secrets[i]);
    config_free(&cfg);
    return code;
}
