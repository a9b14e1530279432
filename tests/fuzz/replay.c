/* replay.c: runs a fuzz target over saved inputs without libFuzzer, so the
 * corpus is a regression suite in every build (plain, ASan, TSan).
 *
 *   fuzz_replay_<target> [-t seconds] <dir or file>...
 *
 * Each regular file of each directory (in name order) goes once through
 * LLVMFuzzerTestOneInput. A broken contract is counted; a sanitizer report
 * or a crash ends the run, naming the input. -t bounds one input's run time
 * (default 30 s). Prints "N passed, M failed"; exits 0 only when M is 0. */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Present in sanitizer runtimes only: called before a sanitizer exits. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static const char *replay_current = "(none)"; /* input being run, for the reports */

static void replay_say_current(void)
{
    /* write(2) only: this also runs from signal handlers */
    static const char pre[] = "replay: died on input ";
    ssize_t rc = write(2, pre, sizeof pre - 1);
    rc = write(2, replay_current, strlen(replay_current));
    rc = write(2, "\n", 1);
    (void)rc;
}

static void replay_on_signal(int sig)
{
    if (sig == SIGALRM) {
        static const char msg[] = "replay: time limit reached\n";
        ssize_t rc = write(2, msg, sizeof msg - 1);
        (void)rc;
    }
    replay_say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads the whole file at path into a malloc'd buffer. Returns 0 or -1. */
static int replay_read(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    if (f == NULL)
        goto fail;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *q = realloc(p, cap);
            if (q == NULL)
                goto fail;
            p = q;
        }
        size_t got = fread(p + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f))
        goto fail;
    *data = p;
    *size = n;
    p = NULL;
    rc = 0;
fail:
    free(p);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Runs one input. Returns the number of broken contracts, or -1 when the
 * file cannot be read. */
static int replay_one(const char *path, unsigned limit)
{
    uint8_t *data;
    size_t size;
    if (replay_read(path, &data, &size) < 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    replay_current = path;
    alarm(limit);
    LLVMFuzzerTestOneInput(data, size);
    alarm(0);
    free(data);
    int failures = fuzz_take_failures();
    if (failures > 0)
        fprintf(stderr, "replay: %s: %d broken contract(s)\n", path, failures);
    return failures;
}

static int replay_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir in name order; adds to the counters. */
static void replay_dir(const char *dir, unsigned limit, int *passed, int *failed)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        (*failed)++;
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **q = realloc(names, cap * sizeof *names);
            if (q == NULL)
                abort();
            names = q;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL)
            abort();
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, replay_cmp);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0)
            (*failed)++;
        else if (S_ISREG(st.st_mode) && replay_one(names[i], limit) == 0)
            (*passed)++;
        else if (S_ISREG(st.st_mode))
            (*failed)++;
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    unsigned limit = 30;
    int passed = 0, failed = 0, i = 1;

    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        limit = (unsigned)atoi(argv[2]);
        i = 3;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-t seconds] <dir or file>...\n", argv[0]);
        return 2;
    }
    fuzz_replay = true;
    signal(SIGALRM, replay_on_signal);
    if (__sanitizer_set_death_callback != NULL) {
        __sanitizer_set_death_callback(replay_say_current);
    } else { /* no sanitizer: its SEGV handler is not ours to replace */
        signal(SIGSEGV, replay_on_signal);
        signal(SIGABRT, replay_on_signal);
    }
    /* absolute, all before the first input: a target may change directory
     * (fuzz_config does) */
    char **paths = calloc((size_t)argc, sizeof *paths);
    if (paths == NULL)
        abort();
    for (int k = i; k < argc; k++)
        if ((paths[k] = realpath(argv[k], NULL)) == NULL)
            fprintf(stderr, "replay: cannot find %s\n", argv[k]);
    for (; i < argc; i++) {
        struct stat st;
        if (paths[i] == NULL)
            failed++;
        else if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
            replay_dir(paths[i], limit, &passed, &failed);
        else if (replay_one(paths[i], limit) == 0)
            passed++;
        else
            failed++;
        free(paths[i]);
    }
    free(paths);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
