/* cmd.c: what the commands share: the version line, the words every
 * command understands, and the deadline waits of the probes (see cmd.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

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

uint64_t cmd_now_ms(void) { return uv_hrtime() / HA_NS_PER_MS; }

int cmd_wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = cmd_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}
