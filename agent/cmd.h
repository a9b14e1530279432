/* cmd.h: the one-shot commands of the healthagent binary. Each takes the
 * defaults in cfg (the config file and environment apply as for the agent),
 * its own arguments (argv[0] is the command's name) and returns the process
 * exit code.
 *
 *   probe  one HTTP GET against a running agent, no Lua at all: 0 on 2xx,
 *          1 otherwise (the reason on stderr). For Docker HEALTHCHECK (which
 *          reserves 2) and Kubernetes exec probes.
 *   check  loads the scripts and runs every check once, concurrently, in
 *          process; prints text, JSON, TAP or JUnit; 1 when a critical check
 *          fails, 2 when the scripts do not load or on bad usage.
 *   lint   compiles and loads every script without running a check;
 *          "file:line: message" per error; 1 on any error, 2 on bad usage. */
#ifndef HA_CMD_H
#define HA_CMD_H

#include "config.h"

int cmd_probe(ha_config *cfg, int argc, char **argv);
int cmd_check(ha_config *cfg, int argc, char **argv);
int cmd_lint(ha_config *cfg, int argc, char **argv);

#endif
