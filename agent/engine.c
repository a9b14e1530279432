/* engine.c: the engine's life cycle (init, the engine thread, stop, join,
 * close), messages from the front, the readiness override, and snapshot
 * publication (at most one per PUBLISH_GAP_NS). The scheduler and the
 * watchdog heartbeat it stores are engine_task.c's. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "api.h"
#include "bridge.h"
#include "engine_int.h"
#include "engine_check.h"
#include "engine_group.h"
#include "engine_reload.h"
#include "json.h"
#include "log.h"

#define CLOSE_GRACE_MS 2000 /* at exit: how long closing handles (a killed child) may take */

#define PUBLISH_GAP_NS (5 * HA_NS_PER_MS) /* at most one snapshot per gap: 1,000 checks
                                            finishing in 1,000 loop turns make 200, not 1,000 */
/* Routine changes alone wait longer, in proportion to the snapshot: a
 * snapshot is built and taken in time proportional to its checks, so at
 * most about 50,000 checks a second go across for routine results (1,000
 * checks: 50 snapshots a second, not 200), and no result waits more than
 * ROUTINE_GAP_MAX_NS to be seen. */
#define ROUTINE_NS_PER_CHECK 20000ull /* 20 us */
#define ROUTINE_GAP_MAX_NS (100 * HA_NS_PER_MS)
/* A held result goes out this long before what the front shows of its
 * check expires: for the snapshot to be built, cross and be taken (a few
 * ms for 5,000 checks; ten times that in a sanitized build) */
#define ROUTINE_MARGIN_NS (25 * HA_NS_PER_MS)

static void publish(ha_engine *eng);

static void on_publish_timer(uv_timer_t *h)
{
    ha_engine *eng = h->data;
    if ((eng->dirty || eng->started) && !eng->stopping)
        publish(eng);
}

/* The least time between the last snapshot and the next: PUBLISH_GAP_NS
 * for an urgent change, longer with many checks for routine ones. */
static uint64_t publish_gap(const ha_engine *eng)
{
    uint64_t gap = eng->gen ? eng->gen->n * ROUTINE_NS_PER_CHECK : 0;
    if (eng->urgent || gap < PUBLISH_GAP_NS)
        return PUBLISH_GAP_NS;
    return gap < ROUTINE_GAP_MAX_NS ? gap : ROUTINE_GAP_MAX_NS;
}

/* Publishes now if anything changed (or a run began) and the last snapshot
 * is older than the gap; otherwise makes sure the publish timer fires when
 * it is (sooner, when a routine wait became an urgent one). */
void engine__publish_pending(ha_engine *eng)
{
    if (!(eng->dirty || eng->started) || eng->bridge == NULL || eng->stopping)
        return;
    uint64_t now = uv_hrtime(), due = eng->published_ns + publish_gap(eng);
    if (eng->held_until_ns < due) /* a held result must reach the front before its last one expires */
        due = eng->held_until_ns > eng->published_ns + PUBLISH_GAP_NS ? eng->held_until_ns
                                                                       : eng->published_ns + PUBLISH_GAP_NS;
    if (now >= due) {
        publish(eng);
    } else if (!uv_is_active((uv_handle_t *)&eng->publish_timer) || due < eng->publish_due_ns) {
        eng->publish_due_ns = due;
        uv_timer_start(&eng->publish_timer, on_publish_timer, (due - now + HA_NS_PER_MS - 1) / HA_NS_PER_MS, 0);
    }
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    api_exec_reap_orphans();
}

int engine_init(ha_engine *eng, const ha_config *cfg, uv_loop_t *loop)
{
    memset(eng, 0, sizeof *eng);
    eng->cfg = cfg;
    if (loop == NULL) {
        loop = malloc(sizeof *loop);
        if (loop == NULL)
            return UV_ENOMEM;
        int r = uv_loop_init(loop);
        if (r != 0) {
            free(loop);
            return r;
        }
        eng->own_loop = true;
    }
    eng->loop = loop;
    eng->next_gen_id = 1;
    eng->held_until_ns = UINT64_MAX;
    engine__sched_init(eng);
    /* libuv reaps only the children it spawned: the daemonised grandchildren
     * of exec checks (and, as PID 1, every orphan) are reaped here when they
     * exit, not at the next exec run */
    uv_signal_init(loop, &eng->sigchld);
    uv_signal_start(&eng->sigchld, on_sigchld, SIGCHLD);
    uv_unref((uv_handle_t *)&eng->sigchld);
    return 0;
}

void engine_mark_dirty(ha_engine *eng) { eng->dirty = eng->urgent = true; }

bool engine_mark_routine(ha_engine *eng, uint64_t shown_until)
{
    uint64_t now = uv_hrtime();
    if (shown_until < now + ROUTINE_MARGIN_NS)
        return false;
    if (shown_until - ROUTINE_MARGIN_NS < eng->held_until_ns)
        eng->held_until_ns = shown_until - ROUTINE_MARGIN_NS;
    eng->dirty = true;
    return true;
}

void engine_mark_started(ha_engine *eng) { eng->started = true; }

/* Builds a snapshot of the generation and hands it to the front: waking it
 * when something changed, quietly when runs only began (the front takes it
 * at its next wake-up, a watchdog look at the latest). */
static void publish(ha_engine *eng)
{
    bool wake = eng->dirty;
    eng->dirty = false;
    eng->urgent = false;
    eng->started = false;
    eng->held_until_ns = UINT64_MAX;
    eng->published_ns = uv_hrtime();
    if (uv_is_active((uv_handle_t *)&eng->publish_timer))
        uv_timer_stop(&eng->publish_timer);
    ha_snapshot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return;
    s->seq = ++eng->seq;
    s->ready_override = eng->not_ready;
    s->override_reason = eng->not_ready_reason ? strdup(eng->not_ready_reason) : NULL;
    s->override_seq = eng->override_seq;
    s->report_seq = eng->report_seq;
    s->load_error = eng->load_error ? strdup(eng->load_error) : NULL;
    s->load_error_ms = eng->load_error_ms;
    s->reload_ms = eng->reload_ms;
    s->reloads = eng->reloads;
    s->reload_failures = eng->reload_failures;
    s->info_json = eng->info_json ? strdup(eng->info_json) : NULL;
    ha_gen *g = eng->gen;
    if (g) {
        s->generation = g->id;
        s->scripts_hash = g->hash;
        s->checks = calloc(g->n ? g->n : 1, sizeof *s->checks);
        if (s->checks == NULL) {
            snapshot_free(s);
            return;
        }
        for (size_t i = 0; i < g->n; i++)
            engine_check_snap(g->checks[i], &s->checks[i], s);
        s->n = g->n;
        if (engine_group_snap(g, s) != 0) {
            snapshot_free(s);
            return;
        }
    }
    bridge_publish(eng->bridge, s, wake);
}

void engine__serve(ha_engine *eng, ha_gen *g)
{
    g->id = eng->next_gen_id++;
    eng->gen = g;
}

/* Ends the engine loop: cancels every run and closes every handle. */
static void stop(ha_engine *eng)
{
    if (eng->stopping)
        return;
    eng->stopping = true;
    engine_reload_stop(eng);
    engine_gen_close(eng->gen);
    eng->gen = NULL;
    engine__sched_close(eng);
    uv_close((uv_handle_t *)&eng->publish_timer, NULL);
    uv_close((uv_handle_t *)&eng->wakeup, NULL);
    uv_close((uv_handle_t *)&eng->sigchld, NULL);
    log_event(LOG_DEBUG, NULL, "engine stopped");
}

static void on_wakeup(uv_async_t *h)
{
    ha_engine *eng = h->data;
    ha_msg *m = bridge_receive(eng->bridge);
    while (m) {
        ha_msg *next = m->next;
        switch (m->type) {
        case HA_MSG_RUN: {
            ha_check *c = eng->gen && !eng->stopping ? engine_gen_find(eng->gen, m->text, m->len) : NULL;
            log_event(LOG_DEBUG, m->text, "run requested by a probe%s", c ? "" : " (no such check)");
            if (c) {
                c->awaited = true; /* its result is urgent */
                engine_check_request(c, false);
                if (c->task == NULL) /* no run: what the engine has is the answer, maybe held back */
                    engine_mark_dirty(eng);
            }
            break;
        }
        case HA_MSG_STOP:
            stop(eng);
            break;
        case HA_MSG_READY:
            engine_set_ready(eng, (m->arg & 1) != 0, m->len ? m->text : NULL);
            eng->override_seq = (uint64_t)m->arg >> 1;
            break;
        case HA_MSG_REPORT: {
            size_t nl = strnlen(m->text, m->len);
            ha_check *c = eng->gen && !eng->stopping ? engine_gen_find(eng->gen, m->text, nl) : NULL;
            if (c && c->pushed)
                engine_check_report(c, (ha_status)m->arg, nl < m->len ? m->text + nl + 1 : NULL,
                                    nl < m->len ? m->len - nl - 1 : 0);
            else
                log_event(LOG_INFO, m->text, "report dropped: no such pushed check (a reload removed it)");
            eng->report_seq = m->seq;
            engine_mark_dirty(eng); /* the ack travels in the next snapshot */
            break;
        }
        case HA_MSG_RELOAD:
            if (eng->on_reload && !eng->stopping)
                eng->on_reload(eng);
            break;
        }
        free(m);
        m = next;
    }
}

void engine_set_ready(ha_engine *eng, bool ready, const char *reason)
{
    bool changed = eng->not_ready != !ready;
    free(eng->not_ready_reason);
    eng->not_ready_reason = !ready && reason ? strdup(reason) : NULL;
    eng->not_ready = !ready;
    if (changed)
        log_event(LOG_INFO, NULL, "readiness override: %s%s%s", ready ? "cleared" : "not ready",
                  reason ? ": " : "", reason ? reason : "");
    engine_mark_dirty(eng);
}

/* health.info: the values of the served generation, as JSON for /info. */
void engine_info_changed(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    ha_engine *eng = vm->eng;
    if (eng == NULL || vm->gen == NULL || vm->gen != eng->gen)
        return;
    char *json = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, HA_INFO_KEY) == LUA_TTABLE) { /* [info] */
        ha_buf b = HA_BUF_INIT;
        json_encode_lua(L, -1, &b, HA_DETAILS_MAX);
        json = buf_steal(&b);
    }
    lua_pop(L, 1); /* [] */
    free(eng->info_json);
    eng->info_json = json;
    engine_mark_dirty(eng);
}

static void engine_thread(void *arg)
{
    ha_engine *eng = arg;
    pthread_setname_np(pthread_self(), "ha-engine"); /* for top -H and /proc/PID/task/TID/comm */
    engine_gen_activate(eng->gen, NULL, true);
    if (engine_reload_setup(eng) != 0)
        log_event(LOG_ERROR, NULL, "hot reload unavailable: not enough memory");
    publish(eng);
    uv_run(eng->loop, UV_RUN_DEFAULT);
    uv_mutex_lock(&eng->done_lock);
    eng->done = true;
    uv_cond_signal(&eng->done_cond);
    uv_mutex_unlock(&eng->done_lock);
}

int engine_start_thread(ha_engine *eng, ha_gen *gen, ha_bridge *bridge)
{
    engine__serve(eng, gen);
    eng->bridge = bridge;
    uv_async_init(eng->loop, &eng->wakeup, on_wakeup);
    eng->wakeup.data = eng;
    bridge->engine_wakeup = &eng->wakeup;
    uv_timer_init(eng->loop, &eng->publish_timer);
    eng->publish_timer.data = eng;
    uv_mutex_init(&eng->done_lock);
    uv_cond_init(&eng->done_cond);
    /* a known stack, whatever RLIMIT_STACK says: the C-stack guard of
     * engine_vm.c needs HA_CSTACK_BUDGET of it and more */
    uv_thread_options_t opts = {.flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = HA_ENGINE_STACK};
    return uv_thread_create_ex(&eng->thread, &opts, engine_thread, eng);
}

static void log_handle(uv_handle_t *h, void *arg)
{
    (*(int *)arg)++;
    log_event(LOG_ERROR, NULL, "handle left open on the engine loop: %s%s", uv_handle_type_name(h->type),
              uv_is_closing(h) ? " (closing)" : "");
}

static void on_close_grace(uv_timer_t *t) { uv_stop(t->loop); }

/* Closes the loop, logging any handle still open. Handles that are still
 * finishing (a child killed at its check's deadline, reaped when its exit
 * callback runs) get up to CLOSE_GRACE_MS: the loop runs until nothing
 * referenced is left, or the grace is over. Returns 0 or the count. */
static int close_loop(uv_loop_t *loop)
{
    if (uv_loop_close(loop) == 0)
        return 0;
    uv_timer_t grace;
    uv_timer_init(loop, &grace);
    uv_timer_start(&grace, on_close_grace, CLOSE_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&grace); /* keeps nothing alive: the run ends with the last referenced handle */
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&grace, NULL);
    for (int i = 0; i < 100; i++) {
        if (uv_loop_close(loop) == 0)
            return 0;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    int n = 0;
    uv_walk(loop, log_handle, &n);
    return n ? n : 1;
}

int engine_join(ha_engine *eng, uint64_t timeout_ns)
{
    bridge_send(eng->bridge, HA_MSG_STOP, 0, NULL, 0);
    /* a script stuck inside a C function never lets the engine loop turn:
     * wait for it only so long */
    uv_mutex_lock(&eng->done_lock);
    int r = 0;
    while (!eng->done && r == 0)
        r = uv_cond_timedwait(&eng->done_cond, &eng->done_lock, timeout_ns);
    bool done = eng->done;
    uv_mutex_unlock(&eng->done_lock);
    if (!done)
        return UV_ETIMEDOUT;
    uv_thread_join(&eng->thread);
    uv_cond_destroy(&eng->done_cond);
    uv_mutex_destroy(&eng->done_lock);
    if (close_loop(eng->loop) != 0)
        log_event(LOG_ERROR, NULL, "engine loop not empty at exit");
    free(eng->not_ready_reason);
    free(eng->load_error);
    free(eng->info_json);
    if (eng->own_loop)
        free(eng->loop);
    eng->loop = NULL;
    return 0;
}

int engine_close(ha_engine *eng)
{
    engine__sched_close(eng);
    uv_close((uv_handle_t *)&eng->sigchld, NULL);
    int r = close_loop(eng->loop);
    free(eng->not_ready_reason);
    free(eng->load_error);
    return r;
}
