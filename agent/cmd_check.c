/* cmd_check.c: `healthagent check` (run every check once, in process, and
 * print the results) and `healthagent lint` (load every script, run none).
 * Both build generations exactly as the agent does (see cmd.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "engine.h"
#include "engine_check.h"
#include "engine_load.h"
#include "log.h"

typedef enum { FMT_TEXT, FMT_JSON, FMT_TAP, FMT_JUNIT } out_format;

static int usage_error(const char *cmd, const char *fmt, const char *a)
{
    fprintf(stderr, "healthagent %s: ", cmd);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return 2;
}

/* Applies --config FILE (else $HEALTHAGENT_CONFIG) and the environment.
 * Returns 0 or 2. */
static int load_config(ha_config *cfg, const char *cmd, const char *config)
{
    char err[1024];
    if (config_load(cfg, config, err, sizeof err) != 0)
        return usage_error(cmd, "%s", err);
    if (cfg->lualib_dir == NULL)
        cfg->lualib_dir = strdup(config_default_lualib());
    return 0;
}

/* What a check's one run shows: its raw result, a failing non-critical
 * check as WARN (it fails no probe). */
static ha_status shown(const ha_check *c)
{
    return !c->critical && c->last == HA_DOWN ? HA_WARN : c->last;
}

/* --- output ------------------------------------------------------------- */

static void xml_escaped(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        default:
            if (c < 0x20 && c != '\n' && c != '\t')
                fputc('?', out); /* not allowed in XML 1.0 */
            else
                fputc(c, out);
        }
    }
}

static void json_str(FILE *out, const char *s)
{
    ha_buf b = HA_BUF_INIT;
    buf_json_str(&b, s, strlen(s));
    fwrite(b.data, 1, b.len, out);
    buf_free(&b);
}

/* A YAML double-quoted scalar (TAP diagnostics): JSON string syntax is valid. */
#define yaml_str json_str

static void print_text(FILE *out, ha_check **cs, size_t n, ha_status agg, double secs)
{
    size_t w = 4;
    for (size_t i = 0; i < n; i++)
        if (strlen(cs[i]->name) > w)
            w = strlen(cs[i]->name);
    int count[4] = {0};
    for (size_t i = 0; i < n; i++) {
        const ha_check *c = cs[i];
        ha_status s = shown(c);
        count[s]++;
        fprintf(out, "%-4s  %-*s  %6.1f ms%s%s%s\n", ha_status_name(s), (int)w, c->name,
                (double)c->duration_ns / 1e6, c->critical ? "" : "  (non-critical)", c->output ? "  " : "",
                c->output ? c->output : "");
    }
    fprintf(out, "%s: %zu check(s), %d up, %d warn, %d down in %.2f s\n", ha_status_name(agg), n, count[HA_UP],
            count[HA_WARN], count[HA_DOWN], secs);
}

static void print_json(FILE *out, ha_check **cs, size_t n, ha_status agg, double secs)
{
    fprintf(out, "{\"status\":\"%s\",\"duration_ms\":%.1f,\"checks\":[", ha_status_name(agg), secs * 1e3);
    for (size_t i = 0; i < n; i++) {
        const ha_check *c = cs[i];
        fprintf(out, "%s{\"name\":", i ? "," : "");
        json_str(out, c->name);
        fprintf(out, ",\"status\":\"%s\",\"result\":\"%s\",\"critical\":%s,\"probes\":[", ha_status_name(shown(c)),
                ha_status_name(c->last), c->critical ? "true" : "false");
        int k = 0;
        for (int pi = 0; pi < 3; pi++)
            if (c->probes & ha_probe_mask(pi))
                fprintf(out, "%s\"%s\"", k++ ? "," : "", ha_probe_name(pi));
        fprintf(out, "],\"duration_ms\":%.1f", (double)c->duration_ns / 1e6);
        if (c->output) {
            fputs(",\"output\":", out);
            json_str(out, c->output);
        }
        if (c->details_json)
            fprintf(out, ",\"details\":%s", c->details_json);
        fputs(",\"where\":", out);
        json_str(out, c->where);
        fputc('}', out);
    }
    fputs("]}\n", out);
}

static void print_tap(FILE *out, ha_check **cs, size_t n)
{
    fprintf(out, "TAP version 13\n1..%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const ha_check *c = cs[i];
        ha_status s = shown(c);
        fprintf(out, "%s %zu - %s\n", s == HA_DOWN ? "not ok" : "ok", i + 1, c->name);
        if (s == HA_UP && c->output == NULL)
            continue;
        fprintf(out, "  ---\n  status: %s\n  critical: %s\n  duration_ms: %.1f\n", ha_status_name(s),
                c->critical ? "true" : "false", (double)c->duration_ns / 1e6);
        if (c->output) {
            fputs("  message: ", out);
            yaml_str(out, c->output);
            fputc('\n', out);
        }
        fputs("  where: ", out);
        yaml_str(out, c->where);
        fputs("\n  ...\n", out);
    }
}

/* True when msg begins with a location in the check's own file,
 * "<file>:<line>:" (an error raised by the check's script). */
static bool starts_with_where(const char *msg, const char *where)
{
    const char *colon = where ? strrchr(where, ':') : NULL;
    size_t n = colon ? (size_t)(colon - where) : 0;
    if (n == 0 || strncmp(msg, where, n) != 0 || msg[n] != ':')
        return false;
    const char *p = msg + n + 1;
    while (*p >= '0' && *p <= '9')
        p++;
    return p > msg + n + 1 && *p == ':';
}

static void print_junit(FILE *out, ha_check **cs, size_t n, double secs)
{
    size_t failures = 0;
    for (size_t i = 0; i < n; i++)
        failures += shown(cs[i]) == HA_DOWN;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(out, "<testsuites name=\"healthagent\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" time=\"%.3f\">\n", n,
            failures, secs);
    fprintf(out, "  <testsuite name=\"healthagent check\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
                 "skipped=\"0\" time=\"%.3f\">\n",
            n, failures, secs);
    for (size_t i = 0; i < n; i++) {
        const ha_check *c = cs[i];
        ha_status s = shown(c);
        fputs("    <testcase classname=\"healthagent\" name=\"", out);
        xml_escaped(out, c->name);
        fprintf(out, "\" time=\"%.3f\"", (double)c->duration_ns / 1e9);
        if (s == HA_UP && c->output == NULL) {
            fputs("/>\n", out);
            continue;
        }
        fputs(">\n", out);
        if (s == HA_DOWN) {
            const char *msg = c->output ? c->output : "DOWN";
            fputs("      <failure type=\"DOWN\" message=\"", out);
            xml_escaped(out, msg);
            fputs("\">", out);
            if (!starts_with_where(msg, c->where)) { /* an error's message names it already */
                xml_escaped(out, c->where);
                fputs(": ", out);
            }
            xml_escaped(out, msg);
            fputs("</failure>\n", out);
        } else {
            fprintf(out, "      <system-out>%s: ", ha_status_name(s));
            xml_escaped(out, c->output);
            fputs("</system-out>\n", out);
        }
        fputs("    </testcase>\n", out);
    }
    fputs("  </testsuite>\n</testsuites>\n", out);
}

/* --- check ---------------------------------------------------------------- */

static const char check_usage[] =
    "usage: healthagent check [--scripts DIR] [--format text|json|tap|junit] [--only NAME]...\n"
    "                         [--config FILE] [--verbose | --log-level LEVEL]\n"
    "Loads the scripts like the agent, runs every check once (concurrently), prints\n"
    "the results. Exit 0 when no critical check fails, 1 when one does, 2 when the\n"
    "scripts do not load or on bad usage. --verbose lets the agent's log lines\n"
    "through on stderr (--log-level info); by default only errors.\n";

/* True when c will not change any more in this one-shot run: it ran, its
 * dependencies block it, it is pushed (no report comes), or what holds it
 * back (an undecided dependency) is done. */
static bool is_done(const ha_check *c)
{
    if (c->task)
        return false;
    if (c->pushed || c->runs > 0 || c->blocked)
        return true;
    return c->holder && is_done(c->holder);
}

/* Runs c and, first, everything it depends on (once each: seen). */
static void request_closure(ha_check *c, unsigned char *seen)
{
    if (seen[c->index])
        return;
    seen[c->index] = 1;
    for (uint32_t i = 0; i < c->ndeps; i++)
        request_closure(c->deps[i], seen);
    c->not_before_ns = 0; /* no initial_delay for a one-shot run */
    engine_check_request(c, true);
}

/* What a check that did not run shows in the report: its dependency's
 * verdict, or that a pushed check gets no report here. */
static void settle_unrun(ha_check *c)
{
    const char *msg = c->blocked ? c->blocked : c->pushed && c->runs == 0 ? "pushed check: no report in a one-shot run"
                                                                          : NULL;
    if (msg == NULL)
        return;
    char *copy = strdup(msg);
    if (copy == NULL)
        return;
    if (c->blocked)
        c->last = HA_DOWN;
    free(c->output);
    c->output = copy;
}

int cmd_check(ha_config *cfg, int argc, char **argv)
{
    const char *config = NULL, *scripts = NULL;
    const char *only[32];
    int nonly = 0, level = LOG_ERROR; /* the agent's log lines: errors only, unless asked */
    out_format fmt = FMT_TEXT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int common = cmd_common_flag(a, check_usage);
        if (common >= 0)
            return common;
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            level = LOG_INFO;
            continue;
        }
        if (strcmp(a, "--scripts") != 0 && strcmp(a, "--format") != 0 && strcmp(a, "--only") != 0 &&
            strcmp(a, "--config") != 0 && strcmp(a, "--log-level") != 0)
            return usage_error("check", "unknown argument '%s' (see --help)", a);
        if (v == NULL)
            return usage_error("check", "option '%s' needs a value", a);
        i++;
        if (strcmp(a, "--log-level") == 0) {
            if ((level = log_level_parse(v)) < 0)
                return usage_error("check", "--log-level: expected debug, info, warn or error, got '%s'", v);
        } else if (strcmp(a, "--scripts") == 0) {
            scripts = v;
        } else if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--only") == 0) {
            if (nonly == (int)HA_ARRAY_SIZE(only))
                return usage_error("check", "too many --only options%s", "");
            only[nonly++] = v;
        } else if (strcmp(v, "text") == 0) {
            fmt = FMT_TEXT;
        } else if (strcmp(v, "json") == 0) {
            fmt = FMT_JSON;
        } else if (strcmp(v, "tap") == 0) {
            fmt = FMT_TAP;
        } else if (strcmp(v, "junit") == 0) {
            fmt = FMT_JUNIT;
        } else {
            return usage_error("check", "--format: expected text, json, tap or junit, got '%s'", v);
        }
    }
    if (load_config(cfg, "check", config) != 0)
        return 2;
    if (scripts) {
        free(cfg->scripts_dir);
        cfg->scripts_dir = strdup(scripts);
    } else if (cfg->scripts_dir == NULL) {
        cfg->scripts_dir = strdup(config_default_scripts());
    }
    log_setup(cfg->log_json, level);

    char err[1024];
    int code = 2;
    uv_loop_t loop;
    ha_engine eng;
    ha_script_set set;
    ha_gen *gen = NULL;
    ha_check **sel = NULL;
    uv_loop_init(&loop);
    engine_init(&eng, cfg, &loop);
    if (engine_load_read(cfg->scripts_dir, &set, err, sizeof err) != 0) {
        fprintf(stderr, "healthagent check: %s\n", err);
        goto out;
    }
    gen = engine_load_gen(&eng, cfg->scripts_dir, &set, err, sizeof err);
    engine_load_free(&set);
    if (gen == NULL) {
        fprintf(stderr, "healthagent check: %s\n", err);
        goto out;
    }
    size_t n = 0;
    sel = calloc(gen->n ? gen->n : 1, sizeof *sel);
    if (sel == NULL)
        goto out;
    for (int k = 0; k < nonly; k++)
        if (engine_gen_find(gen, only[k], strlen(only[k])) == NULL) {
            fprintf(stderr, "healthagent check: no check named '%s' in %s\n", only[k], cfg->scripts_dir);
            goto out;
        }
    for (size_t i = 0; i < gen->n; i++) {
        bool want = nonly == 0;
        for (int k = 0; k < nonly && !want; k++)
            want = strcmp(gen->checks[i]->name, only[k]) == 0;
        if (want)
            sel[n++] = gen->checks[i];
    }
    /* every selected check at once; each run ends by its own deadline */
    uint64_t t0 = uv_hrtime();
    engine_gen_activate(gen, NULL, false);
    unsigned char *seen = calloc(gen->n ? gen->n : 1, 1);
    if (seen == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        request_closure(sel[i], seen);
    free(seen);
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += is_done(sel[i]);
        if (done == n)
            break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    for (size_t i = 0; i < n; i++)
        settle_unrun(sel[i]);
    ha_status agg = HA_UP;
    code = 0;
    for (size_t i = 0; i < n; i++) {
        ha_status s = shown(sel[i]);
        if (s > agg)
            agg = s;
        if (s == HA_DOWN)
            code = 1;
    }
    if (n == 0)
        fprintf(stderr, "healthagent check: %s defines no checks\n", cfg->scripts_dir);
    switch (fmt) {
    case FMT_TEXT: print_text(stdout, sel, n, agg, secs); break;
    case FMT_JSON: print_json(stdout, sel, n, agg, secs); break;
    case FMT_TAP: print_tap(stdout, sel, n); break;
    case FMT_JUNIT: print_junit(stdout, sel, n, secs); break;
    }
    fflush(stdout);
out:
    free(sel);
    engine_gen_close(gen);
    /* a handle still open after the grace is the agent's bug, logged as an
     * error line: the exit code stays the checks' verdict */
    engine_close(&eng);
    uv_loop_close(&loop);
    return code;
}

/* --- lint ----------------------------------------------------------------- */

static const char lint_usage[] = "usage: healthagent lint [DIR] [--config FILE]\n"
                                 "Compiles and loads every script of DIR (default: the configured scripts\n"
                                 "directory) without running a check. Prints file:line: message per error;\n"
                                 "exit 1 on any error, 2 when DIR cannot be read.\n";

int cmd_lint(ha_config *cfg, int argc, char **argv)
{
    const char *config = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int common = cmd_common_flag(a, lint_usage);
        if (common >= 0)
            return common;
        if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc)
                return usage_error("lint", "option '%s' needs a value", a);
            config = argv[++i];
        } else if (a[0] == '-' || dir) {
            return usage_error("lint", "unexpected argument '%s' (see --help)", a);
        } else {
            dir = a;
        }
    }
    if (load_config(cfg, "lint", config) != 0)
        return 2;
    if (dir == NULL)
        dir = cfg->scripts_dir ? cfg->scripts_dir : config_default_scripts();
    log_setup(cfg->log_json, LOG_ERROR);

    char err[1024];
    int code = 2;
    uv_loop_t loop;
    ha_engine eng;
    ha_script_set set;
    uv_loop_init(&loop);
    engine_init(&eng, cfg, &loop);
    if (engine_load_read(dir, &set, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    /* each file alone, so that every broken file is reported ... */
    size_t errors = 0, checks = 0, groups = 0;
    ha_script_set good = {calloc(set.n ? set.n : 1, sizeof *set.files), 0, set.hash, false};
    if (good.files == NULL) {
        engine_load_free(&set);
        goto out;
    }
    for (size_t i = 0; i < set.n; i++) {
        ha_script_set one = {&set.files[i], 1, set.hash, set.n > 1};
        ha_gen *g = engine_load_gen(&eng, dir, &one, err, sizeof err);
        if (g == NULL) {
            fprintf(stderr, "%s\n", err);
            errors++;
            continue;
        }
        good.files[good.n++] = set.files[i]; /* shares the buffers of set */
        checks += g->n;
        groups += g->ngroups;
        engine_gen_close(g);
    }
    /* ... then the files that load alone, together: names must be unique
     * across files, also while another file is broken */
    good.partial = good.n < set.n; /* depends_on into a broken file: that file's error says it */
    if (good.n > 1) {
        ha_gen *g = engine_load_gen(&eng, dir, &good, err, sizeof err);
        if (g == NULL) {
            fprintf(stderr, "%s\n", err);
            errors++;
        }
        engine_gen_close(g);
    }
    free(good.files);
    if (errors)
        fprintf(stderr, "%s: %zu error(s) in %zu file(s)\n", dir, errors, set.n);
    else if (groups)
        printf("%s: %zu file(s), %zu check(s), %zu group(s): ok\n", dir, set.n, checks, groups);
    else
        printf("%s: %zu file(s), %zu check(s): ok\n", dir, set.n, checks);
    engine_load_free(&set);
    code = errors ? 1 : 0;
out:
    engine_close(&eng); /* as in check: a leftover handle is logged, the verdict stands */
    uv_loop_close(&loop);
    return code;
}
