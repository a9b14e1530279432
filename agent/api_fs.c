/* api_fs.c: health.fs, file-system facts for checks without blocking the
 * engine loop: every system call runs on libuv's threadpool (uv_fs_* with a
 * callback; fs.read's reads and close as one job) while only the calling
 * check waits.
 *
 *   fs.stat(path [, {follow=true, timeout=}])  -> {size=, mtime=, mode=, type=, uid=, gid=}
 *   fs.exists(path [, opts])                   -> true | false
 *   fs.age(path [, opts])                      -> seconds since mtime
 *   fs.read(path [, max_bytes [, opts]])       -> string (at most max_bytes, default 1 MiB)
 *   fs.disk(path [, opts])                     -> {free=, total=, used=, free_percent=}
 *
 * I/O failure returns nil, "no such file: <path>" | "permission denied: <path>"
 * | "timeout" | ...; misuse raises.
 *
 * Cancellation: a threadpool request cannot be stopped once a worker runs it.
 * The op's close therefore only marks it closed (and uv_cancel()s a request
 * still queued); the callback, which libuv always calls, sees the mark,
 * closes a file the op may have opened and frees the op. Nothing touches the
 * task after close. */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "api_opt.h"
#include "common.h"
#include "engine.h"
#include "engine_task.h"
#include "engine_vm.h"

#define FS_READ_DEFAULT (1024 * 1024) /* fs.read's default cap, bytes */
#define FS_READ_CHUNK (64 * 1024)     /* bytes asked for per read request */

typedef enum { FS_STAT, FS_EXISTS, FS_AGE, FS_READ, FS_DISK } fs_kind;

/* The request an op has in flight (or last had). STEP_READ is one job that
 * reads to the end or the cap and closes the file: two threadpool trips per
 * fs.read (open, then that), not one per read and one more for the close. */
typedef enum { STEP_STAT, STEP_STATFS, STEP_OPEN, STEP_READ, STEP_CLOSE } fs_step;

typedef struct {
    ha_op op;            /* first: the task's pending slot points here */
    uv_fs_t req;         /* the one request in flight; reused step by step */
    uv_work_t work;      /* STEP_READ's job; it owns fd, data, len and cap while busy */
    uv_loop_t *loop;     /* for the steps after the task is gone */
    ha_vm *vm;           /* the file policy's; used only while not closed */
    fs_kind kind;
    fs_step step;
    bool follow;         /* stat follows symbolic links */
    bool busy;           /* req is queued or running in the threadpool */
    bool closed;         /* close ran: the next callback frees the op */
    atomic_bool abandoned; /* closed, for STEP_READ's job: it stops at its next chunk */
    int err;             /* 0 or the libuv error of the failed step */
    int read_err;        /* STEP_READ's job: 0 or the libuv error of its read */
    uv_file fd;          /* fs.read's open file, -1 when none */
    uv_stat_t st;        /* stat result (FS_STAT, FS_EXISTS, FS_AGE) */
    uv_statfs_t sfs;     /* statfs result (FS_DISK) */
    char *data;          /* fs.read: bytes read, owned, capacity cap */
    size_t len, cap, max;
    char path[];         /* NUL-terminated copy of the path */
} fs_op;

/* --- errors ------------------------------------------------------------- */

/* Pushes nil and the message for libuv error err on path: [-0, +2]. */
static int push_error(lua_State *L, int err, const char *path)
{
    lua_pushnil(L);
    switch (err) {
    case UV_ENOENT:
    case UV_ENOTDIR:
        lua_pushfstring(L, "no such file: %s", path);
        break;
    case UV_EACCES:
    case UV_EPERM:
        lua_pushfstring(L, "permission denied: %s", path);
        break;
    case UV_EISDIR:
        lua_pushfstring(L, "is a directory: %s", path);
        break;
    case UV_ELOOP:
        lua_pushfstring(L, "too many symbolic links: %s", path);
        break;
    default:
        lua_pushfstring(L, "%s: %s", uv_strerror(err), path);
        break;
    }
    return 2;
}

/* --- the request chain -------------------------------------------------- */

static void on_fs(uv_fs_t *req);
static void on_read_done(uv_work_t *w, int status);

/* STEP_READ's job, on a threadpool worker: reads fd until the end of file
 * or o->max bytes, growing o->data by FS_READ_CHUNK at most a step, then
 * closes fd; an op closed meanwhile stops it at the next chunk. Touches only
 * what the op gave the job. */
static void read_job(uv_work_t *w)
{
    fs_op *o = w->data;
    while (o->len < o->max && !atomic_load_explicit(&o->abandoned, memory_order_relaxed)) {
        size_t want = o->max - o->len;
        if (want > FS_READ_CHUNK)
            want = FS_READ_CHUNK;
        if (o->cap - o->len < want) {
            char *p = realloc(o->data, o->len + want);
            if (p == NULL) {
                o->read_err = UV_ENOMEM;
                break;
            }
            o->data = p;
            o->cap = o->len + want;
        }
        ssize_t n = read(o->fd, o->data + o->len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            o->read_err = -errno; /* libuv's errors are negated errno values here */
            break;
        }
        if (n == 0)
            break;
        o->len += (size_t)n;
    }
    close(o->fd);
    o->fd = -1;
}

static void op_free(fs_op *o)
{
    free(o->data);
    free(o);
}

/* Starts the next step; 0 or a negative libuv error (then nothing is in
 * flight). Marks the op busy on success. */
static int submit(fs_op *o, fs_step step)
{
    int r;
    o->step = step;
    o->req.data = o; /* uv_fs_* leave data alone */
    switch (step) {
    case STEP_STAT:
        r = o->follow ? uv_fs_stat(o->loop, &o->req, o->path, on_fs) : uv_fs_lstat(o->loop, &o->req, o->path, on_fs);
        break;
    case STEP_STATFS:
        r = uv_fs_statfs(o->loop, &o->req, o->path, on_fs);
        break;
    case STEP_OPEN:
        /* O_NONBLOCK: a FIFO without a writer reads as empty instead of
         * holding a threadpool worker forever; regular files ignore it */
        r = uv_fs_open(o->loop, &o->req, o->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0, on_fs);
        break;
    case STEP_READ:
        o->work.data = o;
        r = uv_queue_work(o->loop, &o->work, read_job, on_read_done);
        break;
    case STEP_CLOSE:
        r = uv_fs_close(o->loop, &o->req, o->fd, on_fs);
        o->fd = -1; /* closed either way: never retried */
        break;
    default:
        r = UV_EINVAL;
        break;
    }
    if (r == 0)
        o->busy = true;
    return r;
}

/* Closes the open file if any, then either completes the op or, once it was
 * closed by the core, frees it. */
static void finish(fs_op *o)
{
    if (o->fd >= 0 && submit(o, STEP_CLOSE) == 0)
        return;
    if (o->closed)
        op_free(o);
    else
        engine_task_complete(&o->op);
}

/* The one callback of every step: records the outcome in C, starts the next
 * step or finishes. Never touches Lua. */
static void on_fs(uv_fs_t *req)
{
    fs_op *o = req->data;
    ssize_t r = req->result;
    o->busy = false;
    if (r >= 0) {
        if (o->step == STEP_STAT)
            o->st = req->statbuf;
        else if (o->step == STEP_STATFS)
            o->sfs = *(uv_statfs_t *)req->ptr;
        else if (o->step == STEP_OPEN)
            o->fd = (uv_file)r;
    }
    char why[64 + 4096];
    if (r >= 0 && o->step == STEP_OPEN && !o->closed &&
        engine_vm_file_check(o->vm, o->fd, o->path, why, sizeof why) != 0)
        r = UV_EACCES; /* the scripts' file policy (engine_vm.c): finish closes fd */
    uv_fs_req_cleanup(req);
    if (r < 0 && o->step != STEP_CLOSE && o->err == 0)
        o->err = (int)r;
    if (o->closed || o->err || o->step == STEP_CLOSE) {
        finish(o);
        return;
    }
    if (o->step != STEP_OPEN) {
        engine_task_complete(&o->op);
        return;
    }
    int e = submit(o, STEP_READ);
    if (e != 0) {
        o->err = e;
        finish(o);
    }
}

/* STEP_READ's job ended (status UV_ECANCELED when it never ran: the file is
 * still open, and finish closes it). */
static void on_read_done(uv_work_t *w, int status)
{
    fs_op *o = w->data;
    o->busy = false;
    if (status < 0 && o->err == 0)
        o->err = status;
    else if (o->read_err && o->err == 0)
        o->err = o->read_err;
    finish(o);
}

/* --- results ------------------------------------------------------------ */

static double mtime_of(const uv_stat_t *st)
{
    return (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9;
}

static const char *type_of(uint64_t mode)
{
    if (S_ISREG(mode))
        return "file";
    if (S_ISDIR(mode))
        return "directory";
    if (S_ISLNK(mode))
        return "link";
    return "other";
}

/* Pushes the results of a completed op: [-0, +1 or +2]. */
static int fs_push(ha_op *op, lua_State *L)
{
    fs_op *o = (fs_op *)op;
    if (o->kind == FS_EXISTS) {
        if (o->err == UV_ENOENT || o->err == UV_ENOTDIR) {
            lua_pushboolean(L, 0);
            return 1;
        }
        if (o->err)
            return push_error(L, o->err, o->path);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (o->err)
        return push_error(L, o->err, o->path);
    switch (o->kind) {
    case FS_STAT: {
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", (unsigned)(o->st.st_mode & 07777));
        lua_createtable(L, 0, 6);
        lua_pushinteger(L, (lua_Integer)o->st.st_size);
        lua_setfield(L, -2, "size");
        lua_pushnumber(L, mtime_of(&o->st));
        lua_setfield(L, -2, "mtime");
        lua_pushstring(L, mode);
        lua_setfield(L, -2, "mode");
        lua_pushstring(L, type_of(o->st.st_mode));
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, (lua_Integer)o->st.st_uid);
        lua_setfield(L, -2, "uid");
        lua_pushinteger(L, (lua_Integer)o->st.st_gid);
        lua_setfield(L, -2, "gid");
        return 1;
    }
    case FS_AGE: {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        lua_pushnumber(L, (double)now.tv_sec + (double)now.tv_nsec / 1e9 - mtime_of(&o->st));
        return 1;
    }
    case FS_READ:
        lua_pushlstring(L, o->data ? o->data : "", o->len);
        return 1;
    case FS_DISK: {
        /* like df: free is what unprivileged users may still write, and the
         * percentage leaves out the blocks reserved for root */
        uint64_t bs = o->sfs.f_bsize;
        uint64_t total = o->sfs.f_blocks * bs;
        uint64_t avail = o->sfs.f_bavail * bs;
        uint64_t used = (o->sfs.f_blocks - o->sfs.f_bfree) * bs;
        double pct = used + avail ? 100.0 * (double)avail / (double)(used + avail) : 0.0;
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, (lua_Integer)avail);
        lua_setfield(L, -2, "free");
        lua_pushinteger(L, (lua_Integer)total);
        lua_setfield(L, -2, "total");
        lua_pushinteger(L, (lua_Integer)used);
        lua_setfield(L, -2, "used");
        lua_pushnumber(L, round(pct * 100.0) / 100.0);
        lua_setfield(L, -2, "free_percent");
        return 1;
    }
    default:
        return 0;
    }
}

/* Called once by the core, after push or instead of it. */
static void fs_close(ha_op *op)
{
    fs_op *o = (fs_op *)op;
    o->closed = true;
    atomic_store_explicit(&o->abandoned, true, memory_order_relaxed);
    if (o->busy) {
        /* a queued close must run: cancelling it would leak the file */
        if (o->step == STEP_READ)
            uv_cancel((uv_req_t *)&o->work); /* fails harmlessly when running */
        else if (o->step != STEP_CLOSE)
            uv_cancel((uv_req_t *)&o->req);
        return;                             /* on_fs frees */
    }
    if (o->fd >= 0 && submit(o, STEP_CLOSE) == 0)
        return;
    op_free(o);
}

/* --- Lua functions ------------------------------------------------------ */

/* Reads the options table at idx (absent or nil allowed): timeout (seconds
 * or "250ms"), and follow when follow != NULL. Raises on misuse. */
static void read_opts(lua_State *L, int idx, const char *fn, uint64_t *timeout_ns, bool *follow)
{
    *timeout_ns = 0;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* [key, value] */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "timeout") == 0) {
            *timeout_ns = api_opt_duration(L, -1, fn, "timeout", true);
        } else if (follow && strcmp(k, "follow") == 0) {
            luaL_argexpected(L, lua_isboolean(L, -1), idx, "boolean field 'follow'");
            *follow = lua_toboolean(L, -1);
        } else {
            luaL_error(L, "%s: unknown option '%s'", fn, k);
        }
        lua_pop(L, 1); /* pop the value */
    }
}

/* Checks argument 1 is a path without NUL bytes; returns it. */
static const char *check_path(lua_State *L, size_t *len)
{
    const char *p = luaL_checklstring(L, 1, len);
    luaL_argcheck(L, *len > 0 && strlen(p) == *len, 1, "expected a non-empty path without NUL bytes");
    return p;
}

/* Common body of every function: validates, starts the first step, yields.
 * opts_idx is where the options table sits. Raises on misuse. */
static int start(lua_State *L, fs_kind kind, const char *fn, int opts_idx, size_t max)
{
    size_t len;
    const char *path = check_path(L, &len);
    uint64_t timeout_ns;
    bool follow = true;
    read_opts(L, opts_idx, fn, &timeout_ns, kind == FS_STAT ? &follow : NULL);
    ha_task *t = engine_task_current(L, fn);
    fs_op *o = calloc(1, sizeof *o + len + 1);
    if (o == NULL)
        return luaL_error(L, "not enough memory");
    atomic_init(&o->abandoned, false);
    o->op.push = fs_push;
    o->op.close = fs_close;
    o->loop = engine_task_loop(t);
    o->vm = engine_vm_of(L);
    o->kind = kind;
    o->follow = follow;
    o->fd = -1;
    o->max = max;
    memcpy(o->path, path, len + 1);
    fs_step first = kind == FS_DISK ? STEP_STATFS : kind == FS_READ ? STEP_OPEN : STEP_STAT;
    int r = submit(o, first);
    if (r != 0) {
        op_free(o);
        return push_error(L, r, path);
    }
    return engine_task_yield(L, t, &o->op, timeout_ns);
}

/* fs.stat(path [, opts]) -> table | nil, message. */
static int l_stat(lua_State *L) { return start(L, FS_STAT, "health.fs.stat", 2, 0); }

/* fs.exists(path [, opts]) -> boolean | nil, message (errors other than a
 * missing file or a missing directory on the way). */
static int l_exists(lua_State *L) { return start(L, FS_EXISTS, "health.fs.exists", 2, 0); }

/* fs.age(path [, opts]) -> seconds since the last modification (negative
 * when mtime lies in the future) | nil, message. */
static int l_age(lua_State *L) { return start(L, FS_AGE, "health.fs.age", 2, 0); }

/* fs.read(path [, max_bytes [, opts]]) -> at most max_bytes bytes | nil, message. */
static int l_read(lua_State *L)
{
    lua_Integer max = FS_READ_DEFAULT;
    if (!lua_isnoneornil(L, 2)) {
        max = luaL_checkinteger(L, 2);
        luaL_argcheck(L, max >= 0, 2, "expected a non-negative number of bytes");
    }
    return start(L, FS_READ, "health.fs.read", 3, (size_t)max);
}

/* fs.disk(path [, opts]) -> {free=, total=, used=, free_percent=} | nil, message. */
static int l_disk(lua_State *L) { return start(L, FS_DISK, "health.fs.disk", 2, 0); }

static const luaL_Reg funcs[] = {
    {"stat", l_stat}, {"exists", l_exists}, {"age", l_age}, {"read", l_read}, {"disk", l_disk}, {NULL, NULL},
};

/* require "health.fs": [-0, +1] the module table. */
int api_fs_open(lua_State *L)
{
    luaL_newlib(L, funcs);
    lua_pushinteger(L, FS_READ_DEFAULT);
    lua_setfield(L, -2, "read_max_default");
    return 1;
}
