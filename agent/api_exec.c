/* api_exec.c: health.exec, running commands and Nagios plugins from checks
 * without blocking the engine loop.
 *
 *   exec.run(argv [, {timeout=, env=, cwd=, max_output=, stdin=}])
 *       -> {code=, signal=, stdout=, stderr=, truncated=} | nil, message
 *   exec.nagios(argv [, opts]) -> "UP" | "WARN" | "DOWN", message, perfdata
 *                               | nil, "unknown: <message>", perfdata
 *                               | nil, message (the command could not run)
 *
 * The child is spawned with uv_spawn(UV_PROCESS_DETACHED), so it leads a
 * process group of its own (setsid). Its stdout and stderr are read through
 * pipes; a run completes when the child has exited and both pipes are at
 * EOF. Output beyond max_output is read and thrown away (truncated = true)
 * so the child never blocks on a full pipe and its exit status stays real.
 *
 * Ending a process group: when the child exits, and when a run is cancelled
 * (per-call timeout, check deadline, reload), the whole group gets SIGKILL,
 * which also stops grandchildren that keep the pipes open. The uv_process_t
 * stays open until its exit callback has reaped the child. The agent makes
 * itself a child subreaper (PR_SET_CHILD_SUBREAPER) so that the orphaned
 * grandchildren become its own children; it reaps them (never a pid libuv
 * still waits for) and keeps the op alive until its group is gone, so no
 * zombie is left behind. Only this file spawns processes in the agent. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "api_opt.h"
#include "common.h"
#include "engine_task.h"
#include "log.h"

#define EXEC_OUTPUT_DEFAULT (64 * 1024)     /* max_output default, bytes per stream */
#define EXEC_OUTPUT_LIMIT (64 * 1024 * 1024) /* largest max_output accepted */
#define EXEC_READ_CHUNK (64 * 1024)         /* bytes offered to one read */
#define LINGER_TICK_MS 10                   /* group poll period after a kill */
#define LINGER_MAX_MS 3000                  /* give up waiting for the group */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

typedef struct exec_op exec_op;

/* One captured output stream (stdout or stderr). */
typedef struct {
    uv_pipe_t pipe;        /* read end; handle of the op */
    exec_op *owner;
    char *data;            /* captured bytes, owned; capacity cap */
    size_t len, cap;
    size_t max;            /* capture limit */
    bool eof;              /* EOF or a read error: nothing more comes */
    bool truncated;        /* bytes beyond max were thrown away */
} exec_stream;

struct exec_op {
    ha_op op;              /* first: the task's pending slot points here */
    uv_loop_t *loop;
    /* what to run, owned, NULL-terminated arrays */
    char **argv;
    char **env;            /* NULL: inherit the agent's environment */
    char *cwd;             /* NULL: the agent's working directory */
    char *input;           /* stdin bytes, or NULL for /dev/null */
    size_t input_len;
    /* handles; each counted in open_handles until its close callback */
    uv_process_t proc;
    exec_stream out, err;
    uv_pipe_t in;
    uv_write_t wreq;
    uv_timer_t linger;     /* polls the group after it was killed */
    uv_fs_t cwd_req;       /* stat of cwd before spawning */
    int open_handles;
    /* state */
    bool cwd_busy;         /* cwd_req is in the threadpool */
    bool spawned;          /* the child runs or ran: pid is valid */
    bool exited;           /* its exit callback ran: the child is reaped */
    bool closed;           /* the core's close ran: free when handles are gone */
    bool lingering;        /* linger timer started */
    int fail;              /* 0, or the libuv error that stopped the run */
    const char *fail_what; /* the path the error is about (argv[0] or cwd) */
    pid_t pid;             /* child pid = its process group id */
    int64_t code;          /* exit status */
    int signal;            /* terminating signal, 0 if none */
    uint64_t linger_until; /* uv_now() limit of the linger */
    exec_op *prev, *next;  /* live children: spawned and not yet exited */
    char discard[16384];   /* where bytes beyond max_output go */
};

static exec_op *live;      /* children libuv still waits for (engine thread) */

/* --- bookkeeping -------------------------------------------------------- */

static void track(exec_op *o)
{
    o->next = live;
    if (live)
        live->prev = o;
    live = o;
}

static void untrack(exec_op *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else if (live == o)
        live = o->next;
    if (o->next)
        o->next->prev = o->prev;
    o->prev = o->next = NULL;
}

static bool tracked_pid(pid_t pid)
{
    for (exec_op *o = live; o; o = o->next)
        if (o->pid == pid)
            return true;
    return false;
}

/* Reaps exited children the agent inherited as subreaper (grandchildren of
 * its commands). Peeks first (WNOWAIT) so that it never takes a child libuv
 * still waits for; stops at the first such child. */
void api_exec_reap_orphans(void)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
            return;
        if (tracked_pid(si.si_pid))
            return;
        if (waitpid(si.si_pid, NULL, WNOHANG) <= 0)
            return;
    }
}

/* True while the process group pgid still has members (zombies included). */
static bool group_alive(pid_t pgid)
{
    return kill(-pgid, 0) == 0 || errno == EPERM;
}

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void op_free(exec_op *o)
{
    free_strv(o->argv);
    free_strv(o->env);
    free(o->cwd);
    free(o->input);
    free(o->out.data);
    free(o->err.data);
    free(o);
}

static void on_linger(uv_timer_t *h);

static void on_closed(uv_handle_t *h);

/* Frees o once the core closed it, its handles are gone and its process
 * group is empty (or the wait for it timed out). */
static void maybe_free(exec_op *o)
{
    if (!o->closed || o->open_handles > 0 || o->cwd_busy)
        return;
    if (o->spawned && !o->lingering)
        api_exec_reap_orphans();
    if (o->spawned && !o->lingering && group_alive(o->pid)) {
        /* killed members not reaped yet: wait for them */
        uv_timer_init(o->loop, &o->linger);
        o->linger.data = o;
        o->open_handles++;
        o->lingering = true;
        o->linger_until = uv_now(o->loop) + LINGER_MAX_MS;
        uv_timer_start(&o->linger, on_linger, 1, LINGER_TICK_MS);
        return;
    }
    op_free(o);
}

static void on_closed(uv_handle_t *h)
{
    exec_op *o = h->data;
    o->open_handles--;
    maybe_free(o);
}

static void close_handle(exec_op *o, uv_handle_t *h)
{
    if (h->loop != NULL && !uv_is_closing(h)) {
        h->data = o;
        uv_close(h, on_closed);
    }
}

static void on_linger(uv_timer_t *h)
{
    exec_op *o = h->data;
    api_exec_reap_orphans();
    if (group_alive(o->pid)) {
        if (uv_now(o->loop) < o->linger_until) {
            kill(-o->pid, SIGKILL); /* the group exists, so its id is still ours */
            return;
        }
        log_event(LOG_WARN, NULL, "health.exec: process group %d still alive after SIGKILL", (int)o->pid);
    }
    uv_timer_stop(h);
    close_handle(o, (uv_handle_t *)h);
}

/* --- the child ---------------------------------------------------------- */

/* Completes the op once the child has exited and both pipes are drained. */
static void maybe_complete(exec_op *o)
{
    if (!o->closed && o->exited && o->out.eof && o->err.eof)
        engine_task_complete(&o->op);
}

static void on_child_exit(uv_process_t *p, int64_t status, int sig)
{
    exec_op *o = p->data;
    o->exited = true;
    o->code = status;
    o->signal = sig;
    untrack(o);
    /* what the child left running in its group (daemons holding the pipes) */
    kill(-o->pid, SIGKILL);
    api_exec_reap_orphans();
    if (o->closed)
        close_handle(o, (uv_handle_t *)p);
    else
        maybe_complete(o);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    exec_stream *s = h->data;
    (void)suggested;
    if (s->len < s->max) {
        size_t want = s->max - s->len;
        if (want > EXEC_READ_CHUNK)
            want = EXEC_READ_CHUNK;
        if (s->cap - s->len < want) {
            char *p = realloc(s->data, s->len + want);
            if (p != NULL) {
                s->data = p;
                s->cap = s->len + want;
            }
        }
        if (s->cap - s->len >= want) {
            *buf = uv_buf_init(s->data + s->len, (unsigned)want);
            return;
        }
    }
    *buf = uv_buf_init(s->owner->discard, sizeof s->owner->discard);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    exec_stream *s = st->data;
    exec_op *o = s->owner;
    if (n > 0) {
        if (buf->base == o->discard)
            s->truncated = true;
        else
            s->len += (size_t)n;
        return;
    }
    if (n == 0)
        return; /* EAGAIN */
    s->eof = true;
    close_handle(o, (uv_handle_t *)&s->pipe);
    maybe_complete(o);
}

static void on_written(uv_write_t *w, int status)
{
    exec_op *o = w->data;
    (void)status; /* a child that does not read its input is not an error */
    close_handle(o, (uv_handle_t *)&o->in);
}

/* Spawns the child; 0 or a negative libuv error (the handles are then
 * closing and o->fail_what names the culprit). */
static int spawn(exec_op *o)
{
    uv_stdio_container_t stdio[3];
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    uv_pipe_init(o->loop, &o->out.pipe, 0);
    uv_pipe_init(o->loop, &o->err.pipe, 0);
    o->open_handles += 2;
    if (o->input) {
        uv_pipe_init(o->loop, &o->in, 0);
        o->open_handles++;
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)&o->in;
    } else {
        stdio[0].flags = UV_IGNORE; /* /dev/null */
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&o->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&o->err.pipe;
    po.exit_cb = on_child_exit;
    po.file = o->argv[0];
    po.args = o->argv;
    po.env = o->env;
    po.cwd = o->cwd;
    po.flags = UV_PROCESS_DETACHED;
    po.stdio_count = 3;
    po.stdio = stdio;
    o->proc.data = o;
    int r = uv_spawn(o->loop, &o->proc, &po);
    o->open_handles++; /* uv_spawn initialises the handle even when it fails */
    if (r != 0) {
        o->fail = r;
        o->fail_what = o->argv[0];
        o->out.eof = o->err.eof = true;
        close_handle(o, (uv_handle_t *)&o->proc);
        close_handle(o, (uv_handle_t *)&o->out.pipe);
        close_handle(o, (uv_handle_t *)&o->err.pipe);
        if (o->input)
            close_handle(o, (uv_handle_t *)&o->in);
        return r;
    }
    o->spawned = true;
    o->pid = o->proc.pid;
    track(o);
    o->out.pipe.data = &o->out;
    o->err.pipe.data = &o->err;
    uv_read_start((uv_stream_t *)&o->out.pipe, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&o->err.pipe, on_alloc, on_read);
    if (o->input) {
        uv_buf_t b = uv_buf_init(o->input, (unsigned)o->input_len);
        o->wreq.data = o;
        if (o->input_len == 0 || uv_write(&o->wreq, (uv_stream_t *)&o->in, &b, 1, on_written) != 0)
            close_handle(o, (uv_handle_t *)&o->in);
    }
    return 0;
}

/* The stat of cwd came back: spawn, or fail with a message about cwd. */
static void on_cwd(uv_fs_t *req)
{
    exec_op *o = req->data;
    ssize_t r = req->result;
    bool dir = r >= 0 && S_ISDIR(req->statbuf.st_mode);
    uv_fs_req_cleanup(req);
    o->cwd_busy = false;
    if (o->closed) {
        maybe_free(o);
        return;
    }
    if (r < 0 || !dir) {
        o->fail = r < 0 ? (int)r : UV_ENOTDIR;
        o->fail_what = o->cwd;
        o->exited = o->out.eof = o->err.eof = true;
        maybe_complete(o);
        return;
    }
    if (spawn(o) != 0) {
        o->exited = true;
        maybe_complete(o);
    }
}

/* --- results ------------------------------------------------------------ */

/* Pushes nil and the message for o's failure: [-0, +2]. */
static int push_fail(exec_op *o, lua_State *L)
{
    bool about_cwd = o->fail_what == o->cwd && o->cwd != NULL;
    lua_pushnil(L);
    switch (o->fail) {
    case UV_ENOENT:
        lua_pushfstring(L, about_cwd ? "no such directory: %s" : "no such file: %s", o->fail_what);
        break;
    case UV_ENOTDIR:
        lua_pushfstring(L, about_cwd ? "not a directory: %s" : "no such file: %s", o->fail_what);
        break;
    case UV_EACCES:
    case UV_EPERM:
        lua_pushliteral(L, "permission denied");
        break;
    default:
        lua_pushfstring(L, "%s: %s", uv_strerror(o->fail), o->fail_what);
        break;
    }
    return 2;
}

static int run_push(ha_op *op, lua_State *L)
{
    exec_op *o = (exec_op *)op;
    if (o->fail)
        return push_fail(o, L);
    lua_createtable(L, 0, 5);
    if (o->signal == 0) {
        lua_pushinteger(L, (lua_Integer)o->code);
        lua_setfield(L, -2, "code");
    } else {
        lua_pushinteger(L, o->signal);
        lua_setfield(L, -2, "signal");
    }
    lua_pushlstring(L, o->out.data ? o->out.data : "", o->out.len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, o->err.data ? o->err.data : "", o->err.len);
    lua_setfield(L, -2, "stderr");
    lua_pushboolean(L, o->out.truncated || o->err.truncated);
    lua_setfield(L, -2, "truncated");
    return 1;
}

/* --- Nagios plugin output ------------------------------------------------ */

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Pushes s[0..n) as a Lua number when it is one, else as a string. */
static void push_num_or_str(lua_State *L, const char *s, size_t n)
{
    char buf[64];
    if (n > 0 && n < sizeof buf) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (lua_stringtonumber(L, buf) == n + 1)
            return;
    }
    lua_pushlstring(L, s, n);
}

/* Parses one perfdata token at *pp ('label'=value[UOM];[warn];[crit];[min];[max])
 * into the table on top of L; advances *pp past it. Malformed tokens are
 * skipped. */
static void parse_perf_item(lua_State *L, const char **pp, const char *end)
{
    const char *p = *pp;
    luaL_Buffer label;
    luaL_buffinit(L, &label);
    if (*p == '\'') {
        p++;
        while (p < end) {
            if (*p == '\'' && p + 1 < end && p[1] == '\'') {
                luaL_addchar(&label, '\'');
                p += 2;
            } else if (*p == '\'') {
                p++;
                break;
            } else {
                luaL_addchar(&label, *p++);
            }
        }
    } else {
        while (p < end && *p != '=' && !is_space(*p))
            luaL_addchar(&label, *p++);
    }
    luaL_pushresult(&label); /* [t, label] */
    if (p >= end || *p != '=' || lua_rawlen(L, -1) == 0) {
        while (p < end && !is_space(*p))
            p++;
        *pp = p;
        lua_pop(L, 1); /* pop the label */
        return;
    }
    p++;
    const char *tok = p;
    while (p < end && !is_space(*p))
        p++;
    *pp = p;
    lua_createtable(L, 0, 6); /* [t, label, item] */
    /* value and unit: the longest numeric prefix is the value */
    const char *f = tok, *fe = memchr(tok, ';', (size_t)(p - tok));
    if (fe == NULL)
        fe = p;
    size_t num = 0;
    while (f + num < fe && strchr("0123456789.+-eE", f[num]) != NULL)
        num++;
    char buf[64];
    while (num > 0) {
        if (num < sizeof buf) {
            memcpy(buf, f, num);
            buf[num] = '\0';
            if (lua_stringtonumber(L, buf) == num + 1)
                break; /* [t, label, item, value] */
        }
        num--;
    }
    if (num > 0) {
        lua_setfield(L, -2, "value");
        if (fe > f + num) {
            lua_pushlstring(L, f + num, (size_t)(fe - f - num));
            lua_setfield(L, -2, "uom");
        }
    } else if (fe > f) {
        lua_pushlstring(L, f, (size_t)(fe - f)); /* "U": no value */
        lua_setfield(L, -2, "value");
    }
    static const char *const names[] = {"warn", "crit", "min", "max"};
    for (int i = 0; i < 4 && fe < p; i++) {
        f = fe + 1;
        fe = memchr(f, ';', (size_t)(p - f));
        if (fe == NULL)
            fe = p;
        if (fe > f) {
            push_num_or_str(L, f, (size_t)(fe - f));
            lua_setfield(L, -2, names[i]);
        }
    }
    lua_rawset(L, -3); /* t[label] = item; [t] */
}

/* Parses a perfdata string into the table on top of L. */
static void parse_perf(lua_State *L, const char *p, const char *end)
{
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        if (p < end)
            parse_perf_item(L, &p, end);
    }
}

/* Pushes the Nagios reading of the run: status (or nil), message, perfdata. */
static int nagios_push(ha_op *op, lua_State *L)
{
    exec_op *o = (exec_op *)op;
    if (o->fail)
        return push_fail(o, L);
    const char *s = o->out.data ? o->out.data : "";
    size_t n = o->out.len;
    const char *e = s + n;
    const char *q = s;
    while (q < e && is_space(*q))
        q++;
    if (q == e) { /* nothing on stdout: a plugin error on stderr, perhaps */
        s = o->err.data ? o->err.data : "";
        e = s + o->err.len;
    }
    /* line 1: TEXT [| PERF]; later lines: long text up to a '|', then perfdata */
    const char *nl = memchr(s, '\n', (size_t)(e - s));
    const char *l1e = nl ? nl : e;
    const char *bar = memchr(s, '|', (size_t)(l1e - s));
    const char *te = bar ? bar : l1e;
    const char *ts = s;
    while (ts < te && is_space(*ts))
        ts++;
    while (te > ts && is_space(te[-1]))
        te--;
    lua_createtable(L, 0, 4); /* [details] */
    if (bar)
        parse_perf(L, bar + 1, l1e);
    if (nl) {
        const char *rest = nl + 1;
        const char *bar2 = memchr(rest, '|', (size_t)(e - rest));
        if (bar2)
            parse_perf(L, bar2 + 1, e);
    }
    const char *status = NULL;
    if (o->signal == 0 && o->code == 0)
        status = "UP";
    else if (o->signal == 0 && o->code == 1)
        status = "WARN";
    else if (o->signal == 0 && o->code == 2)
        status = "DOWN";
    luaL_Buffer b;
    luaL_buffinit(L, &b); /* [details, (buffer)] */
    if (status == NULL)
        luaL_addstring(&b, "unknown: ");
    if (te > ts)
        luaL_addlstring(&b, ts, (size_t)(te - ts));
    else if (o->signal)
        lua_pushfstring(L, "killed by signal %d", o->signal), luaL_addvalue(&b);
    else
        lua_pushfstring(L, "exit code %d", (int)o->code), luaL_addvalue(&b);
    luaL_pushresult(&b); /* [details, message] */
    lua_insert(L, -2);   /* [message, details] */
    if (status)
        lua_pushstring(L, status);
    else
        lua_pushnil(L);
    lua_insert(L, -3);   /* [status, message, details] */
    return 3;
}

/* --- closing ------------------------------------------------------------ */

/* Called once by the core, after push or instead of it: stops the child's
 * whole group if it still runs, closes the pipes; the process handle closes
 * once the child is reaped. */
static void exec_close(ha_op *op)
{
    exec_op *o = (exec_op *)op;
    o->closed = true;
    if (o->cwd_busy) {
        uv_cancel((uv_req_t *)&o->cwd_req); /* on_cwd frees */
        return;
    }
    if (o->spawned) {
        if (!o->exited)
            kill(-o->pid, SIGKILL);
        close_handle(o, (uv_handle_t *)&o->out.pipe);
        close_handle(o, (uv_handle_t *)&o->err.pipe);
        if (o->input)
            close_handle(o, (uv_handle_t *)&o->in);
        if (o->exited)
            close_handle(o, (uv_handle_t *)&o->proc);
    }
    maybe_free(o);
}

/* --- Lua functions ------------------------------------------------------ */

/* Validates argv (index 1) and opts (index 2). Raises on misuse; allocates
 * nothing in C, so that a raise leaks nothing. */
static void validate(lua_State *L, const char *fn)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1, 1, "expected a non-empty list of strings (argv)");
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, 1, i) != LUA_TSTRING)
            luaL_error(L, "%s: argv[%d] must be a string, got %s", fn, (int)i, luaL_typename(L, -1));
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len || (i == 1 && len == 0))
            luaL_error(L, "%s: argv[%d] must be a non-empty string without NUL bytes", fn, (int)i);
        lua_pop(L, 1); /* pop argv[i] */
    }
    if (lua_isnoneornil(L, 2))
        return;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) { /* [key, value] */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        int vt = lua_type(L, -1);
        if (strcmp(k, "timeout") == 0) {
            api_opt_duration(L, -1, fn, "timeout", true);
        } else if (strcmp(k, "cwd") == 0 || strcmp(k, "stdin") == 0) {
            size_t len;
            const char *s = vt == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (s == NULL || (k[0] == 'c' && (len == 0 || strlen(s) != len)))
                luaL_error(L, "%s: option '%s' must be a %s", fn, k,
                           k[0] == 'c' ? "non-empty path without NUL bytes" : "string");
        } else if (strcmp(k, "max_output") == 0) {
            int isint = 0;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (vt != LUA_TNUMBER || !isint || v < 0 || v > EXEC_OUTPUT_LIMIT)
                luaL_error(L, "%s: option 'max_output' must be an integer from 0 to %d", fn, EXEC_OUTPUT_LIMIT);
        } else if (strcmp(k, "env") == 0) {
            if (vt != LUA_TTABLE)
                luaL_error(L, "%s: option 'env' must be a table of NAME = value", fn);
            lua_pushnil(L);
            while (lua_next(L, -2)) { /* [key, env, name, value] */
                size_t nl, vl;
                const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nl) : NULL;
                int t = lua_type(L, -1);
                const char *val = t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tolstring(L, -1, &vl) : NULL;
                if (name == NULL || nl == 0 || strchr(name, '=') || strlen(name) != nl)
                    luaL_error(L, "%s: env: names must be non-empty strings without '='", fn);
                if (val == NULL || strlen(val) != vl)
                    luaL_error(L, "%s: env.%s must be a string or a number", fn, name);
                lua_pop(L, 1); /* pop the value */
            }
        } else {
            luaL_error(L, "%s: unknown option '%s'", fn, k);
        }
        lua_pop(L, 1); /* pop the value */
    }
}

/* Builds the child's environment from the env table on top of L: exactly
 * its entries, plus the agent's PATH when the table has none. */
static char **build_env(lua_State *L)
{
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        n++;
    }
    char **env = calloc(n + 2, sizeof *env);
    if (env == NULL)
        return NULL;
    size_t i = 0;
    bool has_path = false;
    lua_pushnil(L);
    while (lua_next(L, -2)) { /* [env, name, value] */
        const char *name = lua_tostring(L, -2);
        const char *val = lua_tolstring(L, -1, NULL); /* converts a number in place: fine, keys are strings */
        size_t len = strlen(name) + strlen(val) + 2;
        env[i] = malloc(len);
        if (env[i] == NULL) {
            lua_pop(L, 2);
            free_strv(env);
            return NULL;
        }
        snprintf(env[i++], len, "%s=%s", name, val);
        if (strcmp(name, "PATH") == 0)
            has_path = true;
        lua_pop(L, 1); /* pop the value */
    }
    if (!has_path) {
        const char *path = getenv("PATH");
        size_t len = strlen(path ? path : DEFAULT_PATH) + 6;
        env[i] = malloc(len);
        if (env[i] == NULL) {
            free_strv(env);
            return NULL;
        }
        snprintf(env[i], len, "PATH=%s", path ? path : DEFAULT_PATH);
    }
    return env;
}

/* Builds the op from validated arguments; NULL on memory exhaustion. */
static exec_op *build(lua_State *L, uint64_t *timeout_ns)
{
    exec_op *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->out.owner = o->err.owner = o;
    o->out.max = o->err.max = EXEC_OUTPUT_DEFAULT;
    lua_Integer n = luaL_len(L, 1);
    o->argv = calloc((size_t)n + 1, sizeof *o->argv);
    if (o->argv == NULL)
        goto fail;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        o->argv[i - 1] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1); /* pop argv[i] */
        if (o->argv[i - 1] == NULL)
            goto fail;
    }
    *timeout_ns = 0;
    if (lua_istable(L, 2)) {
        if (lua_getfield(L, 2, "timeout") != LUA_TNIL)
            ha_duration_parse(lua_tostring(L, -1), timeout_ns);
        lua_pop(L, 1);
        if (lua_getfield(L, 2, "cwd") == LUA_TSTRING && (o->cwd = strdup(lua_tostring(L, -1))) == NULL)
            goto fail_pop;
        lua_pop(L, 1);
        if (lua_getfield(L, 2, "max_output") == LUA_TNUMBER)
            o->out.max = o->err.max = (size_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (lua_getfield(L, 2, "stdin") == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            o->input = malloc(len ? len : 1);
            if (o->input == NULL)
                goto fail_pop;
            memcpy(o->input, s, len);
            o->input_len = len;
        }
        lua_pop(L, 1);
        if (lua_getfield(L, 2, "env") == LUA_TTABLE && (o->env = build_env(L)) == NULL)
            goto fail_pop;
        lua_pop(L, 1);
    }
    return o;
fail_pop:
    lua_pop(L, 1);
fail:
    op_free(o);
    return NULL;
}

/* Common body of exec.run and exec.nagios. Raises on misuse. */
static int start(lua_State *L, const char *fn, bool nagios)
{
    lua_settop(L, 2);
    validate(L, fn);
    ha_task *t = engine_task_current(L, fn);
    uint64_t timeout_ns;
    exec_op *o = build(L, &timeout_ns);
    if (o == NULL)
        return luaL_error(L, "not enough memory");
    o->op.push = nagios ? nagios_push : run_push;
    o->op.close = exec_close;
    o->loop = engine_task_loop(t);
    if (o->cwd) {
        o->cwd_req.data = o;
        int r = uv_fs_stat(o->loop, &o->cwd_req, o->cwd, on_cwd);
        if (r != 0) {
            o->fail = r;
            o->fail_what = o->cwd;
        } else {
            o->cwd_busy = true;
        }
    } else {
        spawn(o);
    }
    if (o->fail) { /* failed before yielding: answer now */
        int nret = push_fail(o, L);
        o->closed = true;
        maybe_free(o);
        return nret;
    }
    return engine_task_yield(L, t, &o->op, timeout_ns);
}

/* exec.run(argv [, opts]) -> {code=, signal=, stdout=, stderr=, truncated=} | nil, message */
static int l_run(lua_State *L) { return start(L, "health.exec.run", false); }

/* exec.nagios(argv [, opts]) -> status | nil, message, perfdata */
static int l_nagios(lua_State *L) { return start(L, "health.exec.nagios", true); }

static const luaL_Reg funcs[] = {
    {"run", l_run}, {"nagios", l_nagios}, {NULL, NULL},
};

/* Process-wide set-up, once: own the orphans of our commands, and survive a
 * command that exits without reading its stdin (the agent ignores SIGPIPE
 * already; the script runner may not). */
static void setup_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        log_event(LOG_WARN, NULL, "health.exec: cannot become a child subreaper: %s", strerror(errno));
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

/* require "health.exec": [-0, +1] the module table. */
int api_exec_open(lua_State *L)
{
    setup_once();
    luaL_newlib(L, funcs);
    lua_pushinteger(L, EXEC_OUTPUT_DEFAULT);
    lua_setfield(L, -2, "max_output_default");
    return 1;
}
