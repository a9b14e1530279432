/* engine_reload.c: hot reload of the scripts directory (see engine_reload.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "engine_check.h"
#include "engine_int.h"
#include "engine_load.h"
#include "engine_reload.h"
#include "engine_vm.h"
#include "log.h"

typedef struct ha_loader ha_loader;

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
    ha_loader *loader;        /* the loader in flight (or stuck), or NULL */
    bool stuck;               /* that loader is past its budget and given up */
    bool pending;             /* a reload was asked for meanwhile: at most one waits */
    bool pending_explicit;    /* one of those was SIGHUP or POST /-/reload */
    uint64_t last_start_ns;   /* monotonic start of the last loader */
    uint64_t refused_log_ns;  /* last "reload refused" line; 0 = none yet */
    uv_timer_t gap;           /* runs the pending reload once HA_RELOAD_MIN_GAP_MS passed */
    uv_timer_t stuck_timer;   /* the loader's budget plus grace */
    uv_async_t loaded;        /* signalled by the loader thread when it is done */
    int open_handles;         /* handles not yet closed at stop */
} ha_reload;

static void on_stuck(uv_timer_t *h);
static void on_gap(uv_timer_t *h);

/* --- the loader thread -------------------------------------------------- */

/* One generation being built off the engine thread. Shared by the engine
 * thread and the loader thread; the fields marked "lock" are guarded by
 * lock, the inputs are fixed before the thread starts and the context is the
 * loader's alone until the hand-over. Freed by whichever side lets go last. */
struct ha_loader {
    ha_engine ctx;            /* the loader's own engine context: its VM's eng; ctx.cfg = &cfg */
    ha_config cfg;            /* a copy of the agent's: the loader may outlive it (stuck at exit).
                                 scripts_dir and lualib_dir are its own; other pointers are shared,
                                 read-only, and only freed at exit */
    uv_mutex_t lock;
    int refs;                 /* lock: 2 while both sides hold it */
    uv_async_t *notify;       /* lock: the engine's "loaded" handle; NULL once the engine let go */
    bool done;                /* lock: the thread has finished */
    ha_gen *gen;              /* lock: the result once done, or NULL with err */
    char err[1024];           /* lock */
    char file[256];           /* lock: the file being loaded */
    ha_script_set set;        /* input, owned; freed by the thread */
    uint64_t hash;            /* input: content hash of set */
    uint64_t started_ns;      /* engine side: monotonic start */
    uv_thread_t thread;
};

/* Drops one side's reference; the last one frees the loader. */
static void loader_release(ha_loader *ld)
{
    uv_mutex_lock(&ld->lock);
    bool last = --ld->refs == 0;
    uv_mutex_unlock(&ld->lock);
    if (!last)
        return;
    uv_mutex_destroy(&ld->lock);
    free(ld->cfg.scripts_dir);
    free(ld->cfg.lualib_dir);
    free(ld);
}

/* ctx->on_load_file of a loader: remembers the file for the stuck message. */
static void loader_progress(ha_engine *ctx, const char *file)
{
    ha_loader *ld = (ha_loader *)ctx; /* ctx is the first member */
    uv_mutex_lock(&ld->lock);
    snprintf(ld->file, sizeof ld->file, "%s", file);
    uv_mutex_unlock(&ld->lock);
}

/* The loader thread: compiles and runs the scripts in a new state, then
 * hands the result over under the lock and wakes the engine. When the
 * engine has let go (shutdown) the result is closed here: its VM has no
 * task and its checks no handle yet. */
static void loader_main(void *arg)
{
    ha_loader *ld = arg;
    char err[sizeof ld->err] = "";
    ha_gen *g = engine_load_gen(&ld->ctx, ld->cfg.scripts_dir, &ld->set, err, sizeof err);
    engine_load_free(&ld->set);
    uv_mutex_lock(&ld->lock);
    ld->done = true;
    bool orphan = ld->notify == NULL;
    if (!orphan) {
        ld->gen = g;
        memcpy(ld->err, err, sizeof err);
        uv_async_send(ld->notify);
    }
    uv_mutex_unlock(&ld->lock);
    if (orphan)
        engine_gen_close(g);
    loader_release(ld);
}

/* How long a loader may run before it counts as stuck. */
static uint64_t stuck_after(const ha_engine *eng)
{
    return engine_load_budget(eng->cfg) + HA_RELOAD_STUCK_GRACE_NS;
}

/* Starts a loader for set (ownership moves). Returns 0 or a libuv error
 * (set freed). */
static int loader_start(ha_engine *eng, ha_script_set *set)
{
    ha_reload *r = eng->reload;
    ha_loader *ld = calloc(1, sizeof *ld);
    if (ld == NULL || uv_mutex_init(&ld->lock) != 0) {
        free(ld);
        engine_load_free(set);
        return UV_ENOMEM;
    }
    ld->cfg = *eng->cfg;
    ld->cfg.scripts_dir = strdup(eng->cfg->scripts_dir);
    ld->cfg.lualib_dir = eng->cfg->lualib_dir ? strdup(eng->cfg->lualib_dir) : NULL;
    if (ld->cfg.scripts_dir == NULL || (eng->cfg->lualib_dir && ld->cfg.lualib_dir == NULL)) {
        free(ld->cfg.scripts_dir);
        free(ld->cfg.lualib_dir);
        uv_mutex_destroy(&ld->lock);
        free(ld);
        engine_load_free(set);
        return UV_ENOMEM;
    }
    ld->ctx.cfg = &ld->cfg;
    ld->ctx.on_load_file = loader_progress;
    ld->refs = 2;
    ld->notify = &r->loaded;
    ld->set = *set;
    ld->hash = set->hash;
    ld->started_ns = uv_hrtime();
    memset(set, 0, sizeof *set);
    int e = uv_thread_create(&ld->thread, loader_main, ld);
    if (e != 0) {
        engine_load_free(&ld->set);
        ld->refs = 1;
        loader_release(ld);
        return e;
    }
    r->loader = ld;
    r->last_start_ns = ld->started_ns;
    uv_update_time(eng->loop); /* the loop's clock may be a long callback behind */
    uv_timer_start(&r->stuck_timer, on_stuck, stuck_after(eng) / HA_NS_PER_MS, 0);
    return 0;
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

/* Serves g (built by a loader, already re-homed on eng): activates it, keeping the
 * state of unchanged checks, and closes the old generation. */
static void hand_over(ha_engine *eng, ha_gen *g, uint64_t t0)
{
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
    engine__serve(eng, g);
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
    engine_info_changed(g->vm->L);
    engine_mark_dirty(eng);
    log_event(LOG_INFO, NULL,
              "reload: generation %llu serving %zu check(s) (hash %016llx): %zu added, %zu removed, "
              "%zu changed (%.1f ms)",
              (unsigned long long)g->id, g->n, (unsigned long long)g->hash, added, removed, changed,
              (double)(uv_hrtime() - t0) / 1e6);
}

/* Marks a reload pending and makes sure it runs: after the loader in
 * flight, or once the minimum interval since the last start has passed. */
static void defer(ha_reload *r, bool explicit)
{
    if (!r->pending)
        log_event(LOG_DEBUG, NULL, "reload: %s", r->loader ? "one is in flight: coalesced into the next"
                                                          : "too soon after the last: coalesced into the next");
    r->pending = true;
    r->pending_explicit |= explicit;
    if (r->loader || uv_is_active((uv_handle_t *)&r->gap))
        return;
    uint64_t since = uv_hrtime() - r->last_start_ns;
    uint64_t gap = HA_RELOAD_MIN_GAP_MS * HA_NS_PER_MS;
    uv_update_time(r->eng->loop);
    uv_timer_start(&r->gap, on_gap, since >= gap ? 0 : (gap - since + HA_NS_PER_MS - 1) / HA_NS_PER_MS, 0);
}

int engine_reload_request(ha_engine *eng, bool explicit)
{
    const char *dir = eng->cfg->scripts_dir;
    ha_reload *r = eng->reload;
    ha_script_set set;
    char err[1024];
    if (eng->stopping || eng->gen == NULL || r == NULL)
        return 0;
    if (r->stuck) {
        uint64_t now = uv_hrtime();
        if (r->refused_log_ns == 0 || now - r->refused_log_ns >= HA_NS_PER_S) { /* one line a second at most */
            r->refused_log_ns = now;
            log_event(LOG_ERROR, NULL, "reload refused: %s", eng->load_error ? eng->load_error : "a reload is stuck");
        }
        return -1;
    }
    if (r->loader || uv_hrtime() - r->last_start_ns < HA_RELOAD_MIN_GAP_MS * HA_NS_PER_MS) {
        defer(r, explicit);
        return 1;
    }
    if (engine_load_read(dir, &set, err, sizeof err) != 0)
        return reload_failed(eng, err, 0);
    uint64_t hash = set.hash;
    if (hash == eng->gen->hash) {
        engine_load_free(&set);
        if (eng->load_error) {
            log_event(LOG_INFO, NULL, "scripts are back to generation %llu's: load error cleared",
                      (unsigned long long)eng->gen->id);
            clear_error(eng);
        } else if (explicit) {
            log_event(LOG_INFO, NULL, "reload: scripts unchanged (hash %016llx): generation %llu keeps serving",
                      (unsigned long long)hash, (unsigned long long)eng->gen->id);
        }
        return 0;
    }
    if (eng->load_error && hash == r->failed_hash) {
        engine_load_free(&set); /* the same broken content: reported already */
        if (explicit)
            log_event(LOG_WARN, NULL, "reload: scripts unchanged since the failed load: %s", eng->load_error);
        return -1;
    }
    int e = loader_start(eng, &set);
    if (e != 0) {
        char m[96];
        snprintf(m, sizeof m, "cannot start the loader thread: %s", uv_strerror(e));
        return reload_failed(eng, m, 0);
    }
    return 1;
}

/* A loader finished (its async): serve its generation, record its error,
 * or, if it had been given up as stuck, discard its result and accept
 * reloads again. Then runs a reload that was asked for meanwhile. */
static void on_loaded(uv_async_t *h)
{
    ha_reload *r = h->data;
    ha_engine *eng = r->eng;
    ha_loader *ld = r->loader;
    if (ld == NULL)
        return;
    uv_mutex_lock(&ld->lock);
    bool done = ld->done;
    ha_gen *g = ld->gen;
    char err[sizeof ld->err];
    memcpy(err, ld->err, sizeof err);
    ld->gen = NULL;
    uv_mutex_unlock(&ld->lock);
    if (!done)
        return; /* a spurious wake-up */
    uv_thread_join(&ld->thread);
    r->loader = NULL;
    uv_timer_stop(&r->stuck_timer);
    uint64_t hash = ld->hash, t0 = ld->started_ns;
    char file[sizeof ld->file];
    memcpy(file, ld->file, sizeof file); /* the thread is joined: no lock needed */
    if (g) { /* the generation is the engine's now: off the loader's context before that is freed */
        g->eng = eng;
        g->vm->eng = eng;
    }
    loader_release(ld);
    if (r->stuck) {
        r->stuck = false;
        char d[32];
        ha_duration_format(uv_hrtime() - t0, d, sizeof d);
        log_event(LOG_WARN, NULL, "reload: the stuck load returned after %s; its result is discarded, reloads are "
                  "accepted again", d);
        engine_gen_close(g);
        char msg[512];
        snprintf(msg, sizeof msg, "%s/%s: loading was stuck inside a C function for %s (past the load budget); "
                 "this content is not tried again until it changes", eng->cfg->scripts_dir, file[0] ? file : "?", d);
        reload_failed(eng, msg, hash);
    } else if (g) {
        hand_over(eng, g, t0);
    } else {
        reload_failed(eng, err, hash);
    }
    if (r->pending && !eng->stopping) {
        bool explicit = r->pending_explicit;
        r->pending = r->pending_explicit = false;
        engine_reload_request(eng, explicit);
    }
}

/* The loader passed its budget and the grace: it is stuck inside a C
 * function no hook can stop. It is given up (it keeps its thread until it
 * returns, if ever), the generation being served is untouched, and reloads
 * are refused meanwhile: at most one loader is ever abandoned. */
static void on_stuck(uv_timer_t *h)
{
    ha_reload *r = h->data;
    ha_engine *eng = r->eng;
    ha_loader *ld = r->loader;
    if (ld == NULL)
        return;
    uint64_t ran = uv_hrtime() - ld->started_ns;
    if (ran < stuck_after(eng)) { /* the timer's millisecond clock ran ahead */
        uv_timer_start(&r->stuck_timer, on_stuck, (stuck_after(eng) - ran) / HA_NS_PER_MS + 1, 0);
        return;
    }
    char file[sizeof ld->file];
    uv_mutex_lock(&ld->lock);
    memcpy(file, ld->file, sizeof file);
    uv_mutex_unlock(&ld->lock);
    r->stuck = true;
    r->pending = r->pending_explicit = false;
    char d[32], msg[512];
    ha_duration_format(uv_hrtime() - ld->started_ns, d, sizeof d);
    snprintf(msg, sizeof msg,
             "%s/%s: loading is stuck inside a C function (no result after %s, past the load budget); "
             "the loader is abandoned and further reloads are refused until it returns (restart the agent to "
             "load new scripts)", eng->cfg->scripts_dir, file[0] ? file : "?", d);
    reload_failed(eng, msg, ld->hash);
}

/* --- triggers ---------------------------------------------------------- */

/* HA_MSG_RELOAD: SIGHUP or POST /-/reload (each logged where it arrived). */
static void on_reload_request(ha_engine *eng) { engine_reload_request(eng, true); }

static void on_debounce(uv_timer_t *h)
{
    ha_reload *r = h->data;
    r->burst_ns = 0;
    engine_reload_request(r->eng, false);
}

/* The minimum interval since the last reload passed: run the pending one. */
static void on_gap(uv_timer_t *h)
{
    ha_reload *r = h->data;
    if (!r->pending || r->loader)
        return;
    bool explicit = r->pending_explicit;
    r->pending = r->pending_explicit = false;
    engine_reload_request(r->eng, explicit);
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
    engine_reload_request(r->eng, false);
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
    uv_timer_init(eng->loop, &r->gap);
    uv_timer_init(eng->loop, &r->stuck_timer);
    uv_async_init(eng->loop, &r->loaded, on_loaded);
    r->watch.data = r->debounce.data = r->rescan.data = r;
    r->gap.data = r->stuck_timer.data = r->loaded.data = r;
    r->open_handles = 6;
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
        engine_info_changed(eng->gen->vm->L);
    /* a change between the start-up read and the watch would otherwise wait
     * for the rescan */
    engine_reload_request(eng, false);
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
    ha_loader *ld = r->loader;
    if (ld) {
        /* let go of the loader: a finished one is joined and its result
         * closed; one still running (stuck in C) closes its own result, if
         * it ever returns, and frees what it shares */
        uv_mutex_lock(&ld->lock);
        ld->notify = NULL;
        bool done = ld->done;
        ha_gen *g = ld->gen;
        ld->gen = NULL;
        uv_mutex_unlock(&ld->lock);
        if (done) {
            uv_thread_join(&ld->thread);
            engine_gen_close(g); /* before the release: its VM still uses the loader's context */
        } else {
            pthread_detach(ld->thread);
        }
        r->loader = NULL;
        loader_release(ld);
    }
    uv_close((uv_handle_t *)&r->gap, on_closed);
    uv_close((uv_handle_t *)&r->stuck_timer, on_closed);
    uv_close((uv_handle_t *)&r->loaded, on_closed);
    uv_close((uv_handle_t *)&r->watch, on_closed);
    uv_close((uv_handle_t *)&r->debounce, on_closed);
    uv_close((uv_handle_t *)&r->rescan, on_closed);
}
