/* engine_reload.c: hot reload of the scripts directory (see engine_reload.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "engine_check.h"
#include "engine_load.h"
#include "engine_reload.h"
#include "log.h"

typedef struct ha_reload {
    ha_engine *eng;           /* not owned */
    uv_fs_event_t watch;      /* the scripts directory itself */
    uv_timer_t debounce;      /* fires once the burst of events is over */
    uv_timer_t rescan;        /* periodic content-hash check; idle when rescan_ns == 0 */
    bool watching;            /* watch started and not failed since */
    bool watch_off;           /* HEALTHAGENT_WATCH=off: never watch */
    bool watch_warned;        /* the "cannot watch" line was logged */
    uint64_t burst_ns;        /* monotonic time of the first event of the pending burst; 0 = none */
    uint64_t failed_hash;     /* content hash of the last failed build; 0 = none */
    int open_handles;         /* handles not yet closed at stop */
} ha_reload;

/* --- health.info ------------------------------------------------------- */

void engine_reload_info_changed(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    ha_engine *eng = vm->eng;
    if (eng == NULL || vm->gen == NULL || vm->gen != eng->gen)
        return;
    char *json = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, HA_INFO_KEY) == LUA_TTABLE) { /* [info] */
        ha_buf b = HA_BUF_INIT;
        engine_json_encode(L, -1, &b);
        json = buf_steal(&b);
    }
    lua_pop(L, 1); /* [] */
    free(eng->info_json);
    eng->info_json = json;
    engine_mark_dirty(eng);
}

/* --- reloading --------------------------------------------------------- */

/* Records a failed reload: the old generation keeps serving. Returns -1. */
static int reload_failed(ha_engine *eng, const char *msg, uint64_t hash)
{
    ha_reload *r = eng->reload;
    free(eng->load_error);
    eng->load_error = strdup(msg);
    eng->load_error_ms = ha_wall_ms();
    eng->reload_failures++;
    if (r)
        r->failed_hash = hash;
    log_event(LOG_ERROR, NULL, "reload failed: %s (generation %llu keeps serving)", msg,
              (unsigned long long)(eng->gen ? eng->gen->id : 0));
    engine_mark_dirty(eng);
    return -1;
}

static void clear_error(ha_engine *eng)
{
    if (eng->load_error == NULL)
        return;
    free(eng->load_error);
    eng->load_error = NULL;
    eng->load_error_ms = 0;
    if (eng->reload)
        eng->reload->failed_hash = 0;
    engine_mark_dirty(eng);
}

int engine_reload_now(ha_engine *eng, bool force)
{
    const char *dir = eng->cfg->scripts_dir;
    ha_reload *r = eng->reload;
    ha_script_set set;
    char err[1024];
    if (eng->stopping || eng->gen == NULL)
        return 0;
    if (engine_load_read(dir, &set, err, sizeof err) != 0)
        return reload_failed(eng, err, 0);
    uint64_t hash = set.hash;
    if (!force && hash == eng->gen->hash) {
        engine_load_free(&set);
        if (eng->load_error) {
            log_event(LOG_INFO, NULL, "scripts are back to generation %llu's: load error cleared",
                      (unsigned long long)eng->gen->id);
            clear_error(eng);
        }
        return 0;
    }
    if (!force && r && eng->load_error && hash == r->failed_hash) {
        engine_load_free(&set); /* the same broken content: reported already */
        return -1;
    }
    uint64_t t0 = uv_hrtime();
    ha_gen *g = engine_load_gen(eng, dir, &set, err, sizeof err);
    engine_load_free(&set);
    if (g == NULL)
        return reload_failed(eng, err, hash);
    g->hash = hash;
    g->id = eng->next_gen_id++;

    ha_gen *old = eng->gen;
    size_t added = 0, changed = 0, removed = 0;
    for (size_t i = 0; i < g->n; i++) {
        const ha_check *o = engine_gen_find(old, g->checks[i]->name, strlen(g->checks[i]->name));
        if (o == NULL)
            added++;
        else if (o->def_hash != g->checks[i]->def_hash)
            changed++;
    }
    for (size_t i = 0; i < old->n; i++)
        if (engine_gen_find(g, old->checks[i]->name, strlen(old->checks[i]->name)) == NULL)
            removed++;

    engine_gen_activate(g, old, true);
    eng->gen = g;
    /* runs of unchanged checks that the old generation had in flight are
     * cancelled with it: start them again so waiting probes get an answer */
    for (size_t i = 0; i < g->n; i++) {
        ha_check *c = g->checks[i];
        const ha_check *o = engine_gen_find(old, c->name, strlen(c->name));
        if (o && o->task && o->def_hash == c->def_hash)
            engine_check_request(c, false);
    }
    engine_gen_close(old); /* cancels the old runs, then closes the old state */
    clear_error(eng);
    eng->reloads++;
    eng->reload_ms = ha_wall_ms();
    engine_reload_info_changed(g->vm->L);
    engine_mark_dirty(eng);
    log_event(LOG_INFO, NULL,
              "reload: generation %llu serving %zu check(s) (hash %016llx): %zu added, %zu removed, "
              "%zu changed (%.1f ms)",
              (unsigned long long)g->id, g->n, (unsigned long long)hash, added, removed, changed,
              (double)(uv_hrtime() - t0) / 1e6);
    return 1;
}

/* --- triggers ---------------------------------------------------------- */

/* HA_MSG_RELOAD: SIGHUP or POST /-/reload. */
static void on_reload_request(ha_engine *eng)
{
    log_event(LOG_INFO, NULL, "reload requested");
    engine_reload_now(eng, true);
}

static void on_debounce(uv_timer_t *h)
{
    ha_reload *r = h->data;
    r->burst_ns = 0;
    engine_reload_now(r->eng, false);
}

static void on_fs_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    ha_reload *r = h->data;
    (void)name;
    (void)events;
    if (status < 0) {
        log_event(LOG_WARN, NULL, "watching %s failed (%s): relying on the rescan", r->eng->cfg->scripts_dir,
                  uv_strerror(status));
        uv_fs_event_stop(h);
        r->watching = false;
        return;
    }
    /* any event, '..data' renames included, starts or extends the burst */
    uint64_t now = uv_hrtime();
    if (r->burst_ns == 0)
        r->burst_ns = now;
    if (now - r->burst_ns < HA_RELOAD_MAX_WAIT_MS * HA_NS_PER_MS || !uv_is_active((uv_handle_t *)&r->debounce))
        uv_timer_start(&r->debounce, on_debounce, HA_RELOAD_DEBOUNCE_MS, 0);
}

/* Starts the directory watch. Logs the first failure only. */
static void start_watch(ha_reload *r)
{
    const ha_config *cfg = r->eng->cfg;
    int e = uv_fs_event_start(&r->watch, on_fs_event, cfg->scripts_dir, 0);
    if (e == 0) {
        r->watching = true;
        return;
    }
    if (!r->watch_warned) {
        char d[32];
        ha_duration_format(cfg->rescan_ns, d, sizeof d);
        log_event(LOG_WARN, NULL, "cannot watch %s for changes (%s): %s%s", cfg->scripts_dir, uv_strerror(e),
                  cfg->rescan_ns ? "relying on the rescan every " : "reloading on SIGHUP or POST /-/reload only",
                  cfg->rescan_ns ? d : "");
        r->watch_warned = true;
    }
}

static void on_rescan(uv_timer_t *h)
{
    ha_reload *r = h->data;
    if (!r->watching && !r->watch_off)
        start_watch(r); /* the directory may exist now */
    engine_reload_now(r->eng, false);
}

int engine_reload_setup(ha_engine *eng)
{
    ha_reload *r = calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    const ha_config *cfg = eng->cfg;
    r->eng = eng;
    uv_fs_event_init(eng->loop, &r->watch);
    uv_timer_init(eng->loop, &r->debounce);
    uv_timer_init(eng->loop, &r->rescan);
    r->watch.data = r->debounce.data = r->rescan.data = r;
    r->open_handles = 3;
    eng->reload = r;
    eng->on_reload = on_reload_request;
    eng->reload_ms = ha_wall_ms();
    const char *w = getenv("HEALTHAGENT_WATCH");
    r->watch_off = w && (strcmp(w, "off") == 0 || strcmp(w, "0") == 0 || strcmp(w, "false") == 0);
    if (r->watch_off)
        log_event(LOG_INFO, NULL, "HEALTHAGENT_WATCH=%s: not watching %s; the rescan finds changes", w,
                  cfg->scripts_dir);
    else
        start_watch(r);
    if (cfg->rescan_ns) {
        uint64_t ms = cfg->rescan_ns / HA_NS_PER_MS;
        uv_timer_start(&r->rescan, on_rescan, ms ? ms : 1, ms ? ms : 1);
    }
    if (eng->gen)
        engine_reload_info_changed(eng->gen->vm->L);
    /* a change between the start-up read and the watch would otherwise wait
     * for the rescan */
    engine_reload_now(eng, false);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    ha_reload *r = h->data;
    if (--r->open_handles == 0)
        free(r);
}

void engine_reload_stop(ha_engine *eng)
{
    ha_reload *r = eng->reload;
    if (r == NULL)
        return;
    eng->reload = NULL;
    eng->on_reload = NULL;
    uv_close((uv_handle_t *)&r->watch, on_closed);
    uv_close((uv_handle_t *)&r->debounce, on_closed);
    uv_close((uv_handle_t *)&r->rescan, on_closed);
}
