/* log.c: line-oriented logging to stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "common.h"

static int log_json;            /* set once before threads start */
static int log_min = LOG_INFO;  /* likewise */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(int json, int level)
{
    log_json = json;
    log_min = level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < (int)HA_ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_escape(ha_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] != 0x7f)
            j++;
        buf_add(b, s + i, j - i);
        if (j == n)
            break;
        switch (s[j]) {
        case '\n': buf_add(b, "\\n", 2); break;
        case '\r': buf_add(b, "\\r", 2); break;
        case '\t': buf_add(b, "\\t", 2); break;
        default: buf_printf(b, "\\u%04x", s[j]); break;
        }
        i = j + 1;
    }
}

/* Builds and writes one line; fields only in JSON. */
static void log_emit(int level, const char *check, const log_field *fields, int nfields, const char *fmt,
                     va_list ap)
{
    ha_buf msg = HA_BUF_INIT, line = HA_BUF_INIT;
    buf_vprintf(&msg, fmt, ap);
    char ts[32];
    ha_time_format(ha_wall_ms(), ts, sizeof ts);
    if (log_json) {
        buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
        if (check) {
            buf_adds(&line, ",\"check\":");
            buf_json_str(&line, check, strlen(check));
        }
        buf_adds(&line, ",\"msg\":");
        buf_json_str(&line, msg.data ? msg.data : "", msg.len);
        for (int i = 0; i < nfields; i++) {
            buf_printf(&line, ",\"%s\":", fields[i].key);
            if (fields[i].json != NULL)
                buf_adds(&line, fields[i].json);
            else if (fields[i].str != NULL)
                buf_json_str(&line, fields[i].str, strlen(fields[i].str));
            else
                buf_adds(&line, "null");
        }
        buf_adds(&line, "}\n");
    } else {
        buf_printf(&line, "%s %-5s ", ts, level_names[level]);
        if (check) {
            buf_addc(&line, '[');
            log_escape(&line, check, strlen(check));
            buf_adds(&line, "] ");
        }
        log_escape(&line, msg.data ? msg.data : "", msg.len);
        buf_addc(&line, '\n');
    }
    ssize_t r = write(STDERR_FILENO, line.data, line.len);
    (void)r;
    buf_free(&msg);
    buf_free(&line);
}

void log_event(int level, const char *check, const char *fmt, ...)
{
    va_list ap;
    if (level < log_min)
        return;
    va_start(ap, fmt);
    log_emit(level, check, NULL, 0, fmt, ap);
    va_end(ap);
}

void log_event_fields(int level, const char *check, const log_field *fields, int nfields, const char *fmt, ...)
{
    va_list ap;
    if (level < log_min)
        return;
    va_start(ap, fmt);
    log_emit(level, check, fields, nfields, fmt, ap);
    va_end(ap);
}
