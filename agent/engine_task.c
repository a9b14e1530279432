/* engine_task.c: coroutine tasks, their pending-operation slot, deadlines,
 * preemption and memory allowance (see engine_task.h for the contract), and
 * the scheduler that resumes them (engine_int.h). */
#include <assert.h>
#include <malloc.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "bridge.h"
#include "engine_int.h"
#include "log.h"

#define HOOK_COUNT 1000                 /* VM instructions between hook calls */
#define SLICE_NS (10 * 1000 * 1000ull)  /* CPU time a task runs before others get a turn */
#define CLOSE_BUDGET_NS (100 * 1000 * 1000ull) /* to-be-closed variables of a dead run: time they get */
#define HOLD_NS (2 * SLICE_NS)          /* a resume this long held the engine: it could not be preempted */
#define TRIM_BURST 256                  /* runs that make a burst worth trimming after */
#define TRIM_DELAY_MS 200               /* after the burst: lets closing handles free their memory first */

enum { OP_NONE = 0, OP_PENDING, OP_DONE, OP_TIMEOUT };

struct ha_task {
    ha_vm *vm;                /* not owned */
    lua_State *co;            /* the task's thread, anchored by ref */
    int ref;                  /* registry reference of co; LUA_NOREF once released */
    ha_op *pending;           /* the one pending operation, or NULL */
    int op_state;             /* OP_*: what the pending slot holds */
    int nargs;                /* arguments for the first resume */
    bool started;             /* resumed at least once */
    bool queued;              /* in the engine's ready queue */
    bool ended;               /* finish was called */
    bool expired;             /* past its deadline */
    bool closing;             /* to-be-closed variables running after the run ended */
    uint64_t close_deadline_ns; /* monotonic end of the closing budget */
    uint64_t deadline_ns;     /* monotonic; 0 = none; the effective one is due() */
    uint64_t held_base;       /* eng->held_ns when the task started */
    uint64_t held_own;        /* ns of eng->held_ns this task or its children caused since */
    uint64_t op_due_ns;       /* monotonic end of the pending op's own timeout, before credit */
    uint64_t op_credit;       /* credit(t) when that timeout was armed */
    uint64_t slice_ns;        /* monotonic start of the current resume */
    int64_t mem;              /* bytes allocated (net) while this task ran */
    uint32_t owner;           /* memory owner charged (engine_vm_owner_new); 0 = the engine */
    uint64_t mem_limit;       /* 0 = none */
    const char *name;         /* not owned; for logs */
    ha_task_finish_cb finish;
    void *ud;
    uv_timer_t deadline;      /* the task's hard deadline */
    uv_timer_t op_timer;      /* the pending op's own timeout */
    int open_handles;         /* handles not yet closed; freed at 0 */
    ha_task *prev, *next;     /* the VM's live tasks */
    ha_task *ready_next;      /* the engine's ready queue */
    uint64_t queued_pass;     /* the engine's drain pass when it was queued */
    ha_task *parent;          /* spawned by this task (health.spawn), or NULL */
    ha_task *children;        /* tasks this one spawned that still live */
    ha_task *sib_prev, *sib_next; /* the parent's children */
    char last_failure[160];   /* "" or the message of the last op, when it failed */
};

static void task_end(ha_task *t, ha_task_end how, int nres);
static void sched_ready(ha_engine *eng, ha_task *t);
static void sched_task_ended(ha_engine *eng);
static void sched_drain(ha_engine *eng);

/* --- deadline accounting -------------------------------------------------
 * Only the culprit pays. A resume that runs longer than HOLD_NS held the
 * engine where the hook could not preempt it (a C function, a C callback, a
 * metamethod); the time beyond one slice is added to eng->held_ns and to the
 * culprit's own held_own. Every task's deadline is moved back by the time
 * others held the engine since it started (credit), so a bystander is never
 * recorded "timeout" for time it could not run; the culprit's deadline is
 * not moved by its own holding. */

/* Nanoseconds other tasks held the engine since t started. */
static uint64_t credit(const ha_task *t) { return t->vm->eng->held_ns - t->held_base - t->held_own; }

/* t's effective deadline (monotonic ns), 0 when it has none. */
static uint64_t due(const ha_task *t) { return t->deadline_ns ? t->deadline_ns + credit(t) : 0; }

/* Charges the time beyond one slice of a resume that began at start_ns to
 * t (and the tasks that spawned it) when the resume held the engine. */
static void account_hold(ha_task *t, uint64_t start_ns, uint64_t now)
{
    uint64_t ran = now - start_ns;
    if (ran < HOLD_NS)
        return;
    uint64_t extra = ran - SLICE_NS;
    t->vm->eng->held_ns += extra;
    for (ha_task *p = t; p; p = p->parent)
        p->held_own += extra;
}

/* --- allocator and hook support ---------------------------------------- */

/* The task whose allowance t's allocations use: spawned tasks share their
 * root's. */
static ha_task *charged(ha_task *t)
{
    while (t->parent)
        t = t->parent;
    return t;
}

void engine__task_account(ha_task *t, ha_vm *vm, int64_t delta)
{
    if (t->vm == vm)
        charged(t)->mem += delta;
}

bool engine__task_over(ha_task *t, ha_vm *vm, uint64_t extra)
{
    if (t == NULL || t->vm != vm) {
        return vm->in_load && vm->limit && vm->used + extra > vm->limit;
    }
    if (vm->limit && vm->used + extra > vm->limit)
        return true;
    t = charged(t);
    return t->mem_limit && t->mem > 0 && (uint64_t)t->mem + extra > t->mem_limit;
}

static ha_task *running_on(ha_vm *vm)
{
    ha_task *t = vm->eng ? vm->eng->current : NULL;
    return t && t->vm == vm ? t : NULL;
}

bool engine__task_expired(ha_vm *vm)
{
    ha_task *t = running_on(vm);
    return t && t->expired;
}

bool engine__overdue(lua_State *L)
{
    ha_vm *vm = engine_vm_of(L);
    ha_task *t = running_on(vm);
    uint64_t now = uv_hrtime();
    if (t && t->closing)
        return now >= t->close_deadline_ns;
    if (t && (t->expired || (t->deadline_ns && now >= due(t)))) {
        t->expired = true; /* from here on pcall re-raises */
        return true;
    }
    if (vm->in_load && vm->load_deadline_ns && now >= vm->load_deadline_ns) {
        vm->doomed = true;
        return true;
    }
    return false;
}

/* Detaches and closes t's pending op. */
static void drop_op(ha_task *t)
{
    ha_op *op = t->pending;
    if (op == NULL)
        return;
    t->pending = NULL;
    t->op_state = OP_NONE;
    if (t->op_timer.loop)
        uv_timer_stop(&t->op_timer);
    op->task = NULL;
    op->close(op);
}

void engine__task_abandon_op(ha_vm *vm)
{
    ha_task *t = running_on(vm);
    if (t)
        drop_op(t);
}

/* Count hook of a task's threads: enforces the deadline, and yields to let
 * other tasks run after a time slice. Runs only between VM instructions, so
 * it never interrupts a C function; the front's watchdog covers that. */
static void task_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    ha_vm *vm = engine_vm_of(L);
    ha_task *t = running_on(vm);
    if (t == NULL)
        return;
    uint64_t now = uv_hrtime();
    if (t->closing) { /* a dead run's to-be-closed variables: a short budget */
        if (now >= t->close_deadline_ns)
            luaL_error(L, "timeout");
        return;
    }
    if (t->deadline_ns && now >= due(t))
        t->expired = true;
    if (t->expired) {
        lua_sethook(L, task_hook, LUA_MASKCOUNT, 1); /* from now on, at every instruction */
        if (!t->closing && lua_isyieldable(L)) {
            vm->yield_kind = HA_YIELD_HOOK;
            lua_yield(L, 0);
            return;
        }
        luaL_error(L, "timeout");
        return;
    }
    if (now - t->slice_ns >= SLICE_NS && !t->closing && lua_isyieldable(L)) {
        vm->yield_kind = HA_YIELD_HOOK;
        lua_yield(L, 0);
    }
}

/* --- life cycle --------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    ha_task *t = h->data;
    if (--t->open_handles == 0)
        free(t);
}

static uint64_t ms_ceil(uint64_t ns) { return (ns + 999999) / 1000000; }

/* The deadline timer: re-armed while others' holding moved the deadline. */
static void on_deadline(uv_timer_t *h)
{
    ha_task *t = h->data;
    uint64_t now = uv_hrtime(), d = due(t);
    if (now < d) {
        uv_timer_start(&t->deadline, on_deadline, ms_ceil(d - now), 0);
        return;
    }
    t->expired = true;
    engine_task_kill(t, HA_TASK_TIMEOUT);
}

static void on_op_timeout(uv_timer_t *h)
{
    ha_task *t = h->data;
    if (t->pending == NULL || t->op_state != OP_PENDING)
        return;
    uint64_t now = uv_hrtime(), d = t->op_due_ns + (credit(t) - t->op_credit);
    if (now < d) { /* others held the engine meanwhile: the completion may be waiting in the poll */
        uv_timer_start(&t->op_timer, on_op_timeout, ms_ceil(d - now), 0);
        return;
    }
    ha_op *op = t->pending;
    t->pending = NULL;
    op->task = NULL;
    op->close(op);
    t->op_state = OP_TIMEOUT;
    sched_ready(t->vm->eng, t);
}

#define TASK_THREADS_KEY "healthagent.task_threads" /* registry: weak set of task threads */

/* Adds the thread at the top of L to the weak set of task threads. [-0, +0] */
static void mark_thread(lua_State *L)
{
    if (luaL_getsubtable(L, LUA_REGISTRYINDEX, TASK_THREADS_KEY) == 0) { /* new: make it weak */
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
    }
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

bool engine__task_owns_thread(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_getfield(L, LUA_REGISTRYINDEX, TASK_THREADS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        return false;
    }
    lua_pushvalue(L, idx);
    bool owned = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return owned;
}

ha_task *engine_task_spawn(ha_task *parent, lua_State *L, int nargs, ha_task_finish_cb finish, void *ud)
{
    uint64_t timeout = 0;
    if (parent->deadline_ns) {
        timeout = engine_task_remaining(parent);
        if (timeout == 0)
            timeout = 1; /* already due: the child ends at once */
    }
    ha_task *t = engine_task_start(parent->vm, L, nargs, timeout, parent->mem_limit, finish, ud);
    t->name = parent->name;
    t->owner = parent->owner;
    t->parent = parent;
    t->sib_next = parent->children;
    if (parent->children)
        parent->children->sib_prev = t;
    parent->children = t;
    return t;
}

ha_task *engine_task_start(ha_vm *vm, lua_State *L, int nargs, uint64_t timeout_ns,
                           uint64_t mem_limit, ha_task_finish_cb finish, void *ud)
{
    ha_engine *eng = vm->eng;
    ha_task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        luaL_error(L, "not enough memory");
        return NULL;
    }
    t->vm = vm;
    t->co = lua_newthread(L);                  /* [f, args, co] */
    mark_thread(L);                            /* remembered as a task's own thread */
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* [f, args] */
    lua_xmove(L, t->co, nargs + 1);            /* [] ; co: [f, args] */
    t->nargs = nargs;
    t->mem_limit = mem_limit;
    t->finish = finish;
    t->ud = ud;
    t->held_base = eng->held_ns;
    if (timeout_ns) {
        uv_timer_init(eng->loop, &t->deadline);
        t->deadline.data = t;
        t->open_handles++;
        uv_update_time(eng->loop);
        t->deadline_ns = uv_hrtime() + timeout_ns;
        uv_timer_start(&t->deadline, on_deadline, ms_ceil(timeout_ns), 0);
        lua_sethook(t->co, task_hook, LUA_MASKCOUNT, HOOK_COUNT);
    }
    t->next = vm->tasks;
    if (vm->tasks)
        vm->tasks->prev = t;
    vm->tasks = t;
    vm->ntasks++;
    eng->live_tasks++;
    sched_ready(eng, t);
    return t;
}

/* Removes t from the engine's ready queue if it is there. */
static void unqueue(ha_task *t)
{
    if (!t->queued)
        return;
    ha_engine *eng = t->vm->eng;
    ha_task **pp = &eng->ready_head, *prev = NULL;
    while (*pp && *pp != t) {
        prev = *pp;
        pp = &(*pp)->ready_next;
    }
    if (*pp == t) {
        *pp = t->ready_next;
        if (eng->ready_tail == t)
            eng->ready_tail = prev;
    }
    t->ready_next = NULL;
    t->queued = false;
}

/* Ends t: finish callback, to-be-closed variables of a killed thread,
 * release of the thread and of the handles (t is freed after they close). */
static void task_end(ha_task *t, ha_task_end how, int nres)
{
    ha_vm *vm = t->vm;
    ha_engine *eng = vm->eng;
    assert(!t->ended);
    t->ended = true;
    unqueue(t);
    drop_op(t);
    while (t->children) /* spawned tasks do not outlive their parent */
        task_end(t->children, HA_TASK_CANCELLED, 0);
    if (t->parent) {
        if (t->sib_prev)
            t->sib_prev->sib_next = t->sib_next;
        else
            t->parent->children = t->sib_next;
        if (t->sib_next)
            t->sib_next->sib_prev = t->sib_prev;
        t->parent = NULL;
    }
    if (t->deadline.loop)
        uv_timer_stop(&t->deadline);
    if (t->finish)
        t->finish(t, t->co, how, nres, t->ud);
    if (how != HA_TASK_OK && t->started) {
        /* run the thread's pending to-be-closed variables (sockets, files)
         * within a short budget of their own; the hook turns an overrun
         * into an error, never a yield, and pcall re-raises meanwhile */
        ha_task *saved = eng->current;
        t->closing = true;
        t->expired = true;
        t->close_deadline_ns = uv_hrtime() + CLOSE_BUDGET_NS;
        lua_sethook(t->co, task_hook, LUA_MASKCOUNT, HOOK_COUNT);
        eng->current = t;
        char *mark = engine__cstack_enter(vm);
        lua_resetthread(t->co);
        engine__cstack_leave(vm, mark);
        eng->current = saved;
    }
    luaL_unref(vm->L, LUA_REGISTRYINDEX, t->ref);
    t->ref = LUA_NOREF;
    t->co = NULL;
    if (t->prev)
        t->prev->next = t->next;
    else
        vm->tasks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    vm->ntasks--;
    sched_task_ended(eng);
    if (t->deadline.loop)
        uv_close((uv_handle_t *)&t->deadline, on_handle_closed);
    if (t->op_timer.loop)
        uv_close((uv_handle_t *)&t->op_timer, on_handle_closed);
    if (t->open_handles == 0)
        free(t);
}

void engine_task_kill(ha_task *t, ha_task_end how)
{
    assert(t->vm->eng->current != t);
    if (t->ended)
        return;
    task_end(t, how, 0);
}

/* Pushes what the resumed code receives onto t's suspended thread: the
 * first resume's arguments, a completed op's results (op->push, which must
 * not raise), or nil, "timeout". Returns their count, or -1 when the op is
 * still pending (a spurious wake-up). */
static int resume_values(ha_task *t)
{
    if (!t->started) {
        t->started = true;
        return t->nargs;
    }
    switch (t->op_state) {
    case OP_DONE: {
        ha_op *op = t->pending;
        t->pending = NULL;
        t->op_state = OP_NONE;
        if (t->op_timer.loop)
            uv_timer_stop(&t->op_timer);
        int n = op->push(op, t->co);
        op->task = NULL;
        op->close(op);
        t->last_failure[0] = '\0';
        if (n == 2 && lua_isnil(t->co, -2) && lua_type(t->co, -1) == LUA_TSTRING)
            snprintf(t->last_failure, sizeof t->last_failure, "%s", lua_tostring(t->co, -1));
        return n;
    }
    case OP_TIMEOUT:
        t->op_state = OP_NONE;
        lua_pushnil(t->co);
        lua_pushliteral(t->co, "timeout");
        snprintf(t->last_failure, sizeof t->last_failure, "timeout");
        return 2;
    case OP_PENDING:
        return -1;
    default:
        return 0;
    }
}

/* Pushes msg prefixed with the file:line of co's innermost Lua frame (the
 * code that raised or yielded), or msg alone when co has none: [-0, +1]. */
static void push_at_raiser(lua_State *co, const char *msg)
{
    lua_Debug ar;
    int line = -1;
    for (int lv = 0; line <= 0 && lua_getstack(co, lv, &ar); lv++)
        if (lua_getinfo(co, "Sl", &ar))
            line = ar.currentline;
    if (line > 0)
        lua_pushfstring(co, "%s:%d: %s", ar.short_src, line, msg);
    else
        lua_pushstring(co, msg);
}

/* Resumes t once, delivering its completed op's results. */
static void task_resume(ha_task *t)
{
    ha_vm *vm = t->vm;
    ha_engine *eng = vm->eng;
    lua_State *co = t->co;
    int nargs = resume_values(t);
    if (nargs < 0)
        return;
    if (t->deadline_ns && uv_hrtime() >= due(t)) {
        lua_pop(co, nargs);
        t->expired = true;
        task_end(t, HA_TASK_TIMEOUT, 0);
        return;
    }
    int nres = 0;
    eng->current = t;
    t->slice_ns = uv_hrtime();
    char *mark = engine__cstack_enter(vm);
    int st = lua_resume(co, NULL, nargs, &nres);
    engine__cstack_leave(vm, mark);
    eng->current = NULL;
    int kind = vm->yield_kind;
    vm->yield_kind = HA_YIELD_NONE;
    uint64_t now = uv_hrtime();
    account_hold(t, t->slice_ns, now);
    /* past the deadline, whatever happened inside C: the run is a timeout
     * and what it returned is discarded */
    if (t->deadline_ns && now >= due(t) && kind != HA_YIELD_EXIT)
        t->expired = true;
    if (st == LUA_YIELD) {
        lua_pop(co, nres);
        if (kind == HA_YIELD_EXIT) {
            task_end(t, HA_TASK_CANCELLED, 0); /* runner's os.exit, from any task */
            uv_stop(eng->loop);
            return;
        }
        if (t->expired) {
            task_end(t, HA_TASK_TIMEOUT, 0); /* drops a pending op */
            return;
        }
        if (kind == HA_YIELD_API && t->pending)
            return; /* parked until the op completes */
        if (kind == HA_YIELD_HOOK) {
            sched_ready(eng, t); /* preempted: back of the queue */
            return;
        }
        /* a bare yield of the task's own thread (coroutine.yield raises
         * there, see engine_vm.c; this is a C library's yield) */
        push_at_raiser(co, "attempt to yield from outside a coroutine");
        task_end(t, HA_TASK_ERROR, 0);
        return;
    }
    if (t->expired) {
        task_end(t, HA_TASK_TIMEOUT, 0);
    } else if (st == LUA_OK) {
        task_end(t, HA_TASK_OK, nres);
    } else if (st == LUA_ERRMEM) {
        task_end(t, HA_TASK_MEMORY, 0);
    } else {
        if (lua_type(co, -1) != LUA_TSTRING) {
            /* a non-string error: describe it and add where it was raised */
            lua_pushfstring(co, "error object is a %s value", luaL_typename(co, -1));
            push_at_raiser(co, lua_tostring(co, -1));
        }
        task_end(t, HA_TASK_ERROR, 0);
    }
}

/* --- API side ----------------------------------------------------------- */

ha_task *engine_task_current(lua_State *L, const char *fn)
{
    ha_vm *vm = engine_vm_of(L);
    ha_task *t = running_on(vm);
    if (t == NULL)
        luaL_error(L, "%s: called outside a check run (not at load time)", fn);
    else if (!lua_isyieldable(L))
        luaL_error(L, "%s: cannot wait here (inside a metamethod, iterator or C callback)", fn);
    return t;
}

int engine_task_yield(lua_State *L, ha_task *t, ha_op *op, uint64_t timeout_ns)
{
    assert(t->pending == NULL);
    t->pending = op;
    t->op_state = OP_PENDING;
    op->task = t;
    /* an op timeout that would end at or after the deadline is the
     * deadline's: the run then ends "timeout after <timeout>" */
    if (timeout_ns && timeout_ns < engine_task_remaining(t)) {
        if (t->op_timer.loop == NULL) {
            uv_timer_init(t->vm->eng->loop, &t->op_timer);
            t->op_timer.data = t;
            t->open_handles++;
        }
        uv_update_time(t->vm->eng->loop);
        t->op_due_ns = uv_hrtime() + timeout_ns;
        t->op_credit = credit(t);
        uv_timer_start(&t->op_timer, on_op_timeout, ms_ceil(timeout_ns), 0);
    }
    t->vm->yield_kind = HA_YIELD_API;
    return lua_yield(L, 0);
}

void engine_task_complete(ha_op *op)
{
    ha_task *t = op->task;
    if (t == NULL || t->pending != op || t->op_state != OP_PENDING)
        return;
    t->op_state = OP_DONE;
    if (t->op_timer.loop)
        uv_timer_stop(&t->op_timer);
    sched_ready(t->vm->eng, t);
}

uint64_t engine_task_remaining(const ha_task *t)
{
    if (t->deadline_ns == 0)
        return UINT64_MAX;
    uint64_t now = uv_hrtime(), d = due(t);
    return now >= d ? 0 : d - now;
}

uv_loop_t *engine_task_loop(const ha_task *t) { return t->vm->eng->loop; }

const char *engine_task_name(const ha_task *t) { return t->name; }

const char *engine_task_last_failure(const ha_task *t) { return t->last_failure; }

void engine_task_set_name(ha_task *t, const char *name) { t->name = name; }

void engine_task_set_owner(ha_task *t, uint32_t owner) { t->owner = owner; }

uint32_t engine__task_owner(ha_vm *vm)
{
    ha_task *t = running_on(vm);
    if (t)
        return t->owner;
    return vm->in_load ? vm->load_owner : 0;
}

int engine_task_count(const ha_vm *vm) { return vm->ntasks; }

int engine_task_handles(const ha_task *t) { return t ? t->open_handles : 0; }

/* --- the scheduler ---------------------------------------------------------
 * The engine's ready queue (FIFO, linked through ha_task) and the loop
 * handles that drive it: the idle handle keeps poll from blocking while
 * tasks are ready, the check handle drains the queue after every poll and
 * then publishes (engine.c) what changed, and the trim timer gives freed heap
 * back after a burst of runs. The watchdog's heartbeat is the time the loop
 * left poll, stored when the check phase begins, and 0 from the prepare
 * phase on (the engine waits for work): an idle engine is never woken for
 * the watchdog, and a stuck resume is measured from when its turn began. */

static void idle_cb(uv_idle_t *h) { sched_drain(h->data); }

static void sched_ready(ha_engine *eng, ha_task *t)
{
    if (t->queued || t->ended)
        return;
    t->queued = true;
    t->queued_pass = eng->drain_pass;
    t->ready_next = NULL;
    if (eng->ready_tail)
        eng->ready_tail->ready_next = t;
    else
        eng->ready_head = t;
    eng->ready_tail = t;
    if (!uv_is_active((uv_handle_t *)&eng->idle))
        uv_idle_start(&eng->idle, idle_cb);
}

static void sched_drain(ha_engine *eng)
{
    if (eng->current)
        return; /* never resume inside a resume */
    engine__publish_pending(eng);
    /* only the tasks queued before this pass: a preempted task requeues
     * with the new pass number and waits for the next pass, so the loop
     * keeps polling (a marker task could be killed mid-pass; a number cannot) */
    uint64_t pass = ++eng->drain_pass;
    while (eng->ready_head && eng->ready_head->queued_pass < pass) {
        ha_task *t = eng->ready_head;
        eng->ready_head = t->ready_next;
        if (eng->ready_head == NULL)
            eng->ready_tail = NULL;
        t->ready_next = NULL;
        t->queued = false;
        task_resume(t); /* may free t */
    }
    if (eng->ready_head == NULL)
        uv_idle_stop(&eng->idle);
}

/* After every poll: the heartbeat says the engine is at work since now
 * (until the next poll: this turn's drain and closes, the next turn's
 * timers); resume what became ready, then publish what changed. */
static void on_check(uv_check_t *h)
{
    ha_engine *eng = h->data;
    if (eng->bridge)
        atomic_store_explicit(&eng->bridge->heartbeat_ns, uv_hrtime(), memory_order_relaxed);
    sched_drain(eng);
    engine__publish_pending(eng);
}

/* Before every poll: publishes what changed since the check phase (a timer
 * callback's work: the poll may block for long, and nothing else would turn
 * the loop), then the heartbeat says the engine waits for work. */
static void on_prepare(uv_prepare_t *h)
{
    ha_engine *eng = h->data;
    engine__publish_pending(eng);
    if (eng->bridge)
        atomic_store_explicit(&eng->bridge->heartbeat_ns, 0, memory_order_relaxed);
}

static void on_trim(uv_timer_t *h)
{
    ha_engine *eng = h->data;
    eng->ended_since_trim = 0;
    malloc_trim(0); /* glibc keeps what 1,000 finished transfers freed: give it back */
}

static void sched_task_ended(ha_engine *eng)
{
    eng->live_tasks--;
    if (++eng->ended_since_trim >= TRIM_BURST && eng->live_tasks <= 1 &&
        !uv_is_active((uv_handle_t *)&eng->trim_timer) && !uv_is_closing((uv_handle_t *)&eng->trim_timer))
        uv_timer_start(&eng->trim_timer, on_trim, TRIM_DELAY_MS, 0);
}

void engine__sched_init(ha_engine *eng)
{
    uv_loop_t *loop = eng->loop;
    uv_idle_init(loop, &eng->idle);
    eng->idle.data = eng;
    uv_check_init(loop, &eng->check);
    eng->check.data = eng;
    uv_check_start(&eng->check, on_check);
    uv_unref((uv_handle_t *)&eng->check); /* it alone must not keep the loop alive */
    uv_prepare_init(loop, &eng->prepare);
    eng->prepare.data = eng;
    uv_prepare_start(&eng->prepare, on_prepare);
    uv_unref((uv_handle_t *)&eng->prepare);
    uv_timer_init(loop, &eng->trim_timer);
    eng->trim_timer.data = eng;
    uv_unref((uv_handle_t *)&eng->trim_timer);
}

void engine__sched_close(ha_engine *eng)
{
    uv_close((uv_handle_t *)&eng->idle, NULL);
    uv_close((uv_handle_t *)&eng->check, NULL);
    uv_close((uv_handle_t *)&eng->prepare, NULL);
    uv_close((uv_handle_t *)&eng->trim_timer, NULL);
}
