/* engine_load.h: builds a scripts generation: reads the *.lua files of a
 * directory (following symlinks, skipping names that begin with '.', as
 * Kubernetes ConfigMap volumes need), compiles them in text mode, each in its
 * own environment, and collects the checks they define. All or nothing. */
#ifndef HA_ENGINE_LOAD_H
#define HA_ENGINE_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "engine_check.h"

typedef struct {
    char *name;      /* owned: file name within the directory */
    char *src;       /* owned: contents */
    size_t len;
} ha_script;

typedef struct {
    ha_script *files; /* owned, sorted by name */
    size_t n;
    uint64_t hash;    /* content hash over names and contents */
    bool partial;     /* some files of a set (lint loads each alone): depends_on may name
                         checks the other files define */
} ha_script_set;

/* Reads the scripts of dir. The content hash covers the names and contents
 * of the *.lua files and of the *.lua modules under dir/lib (what require
 * finds). Returns 0, or -1 with "dir: reason" in err. */
int engine_load_read(const char *dir, ha_script_set *set, char *err, size_t errlen);
void engine_load_free(ha_script_set *set);

/* Compiles and runs every file of set in a new sandboxed VM and returns the
 * generation (not yet active), or NULL with "file:line: message" in err.
 * dir names the files in messages and locates lib/ for require. The main
 * chunks share one budget (engine_load_budget): a top-level loop ends with
 * "file:line: scripts took longer than 2.5s to load". Runs on any thread
 * when eng is a context of that thread's own (engine_reload.c's loader):
 * the generation then belongs to eng until handed over. Calls
 * eng->on_load_file, when set, before each file. */
ha_gen *engine_load_gen(ha_engine *eng, const char *dir, const ha_script_set *set, char *err, size_t errlen);

/* The time the main chunks of one generation may take: 5 s, or half the
 * watchdog when that is shorter. */
uint64_t engine_load_budget(const ha_config *cfg);

#endif
