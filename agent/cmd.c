/* cmd.c: what the commands share: the version line and the words every
 * command understands (see cmd.h). */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static char cmd_version_line[160] = "healthagent " HA_VERSION " (commit unknown, built unknown)";

void cmd_set_build(const char *commit, const char *date)
{
    snprintf(cmd_version_line, sizeof cmd_version_line, "healthagent %s (commit %s, built %s)", HA_VERSION,
             commit && commit[0] ? commit : "unknown", date && date[0] ? date : "unknown");
}

int cmd_version(void)
{
    printf("%s\n", cmd_version_line);
    return 0;
}

int cmd_common_flag(const char *arg, const char *usage)
{
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(arg, "--version") == 0)
        return cmd_version();
    return -1;
}
