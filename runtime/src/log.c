/*
 * log.c: levelled logging through a pluggable sink. The default sink writes one
 * JSON object per line on stderr ({"time","level","module","msg"}); the runtime
 * never writes to stdout. Level and sink are start-up configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <paywire/log.h>

static pw_log_sink_cb log_sink;
static void *log_sink_data;
static pw_log_level log_level = PW_LOG_INFO;

static const char *level_name(pw_log_level level)
{
    switch (level) {
    case PW_LOG_ERR:
        return "error";
    case PW_LOG_WARNING:
        return "warning";
    case PW_LOG_NOTICE:
        return "notice";
    case PW_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

/* Writes s as the inside of a JSON string. */
static void json_escape(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
}

static void stderr_sink(pw_log_level level, const char *module, const char *line)
{
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    flockfile(stderr);
    fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"module\":\"", when,
            ts.tv_nsec / 1000000, level_name(level));
    json_escape(stderr, module);
    fputs("\",\"msg\":\"", stderr);
    json_escape(stderr, line);
    fputs("\"}\n", stderr);
    funlockfile(stderr);
}

void pw_log_set_sink(pw_log_sink_cb sink, void *user_data)
{
    log_sink = sink;
    log_sink_data = user_data;
}

void pw_log_set_level(pw_log_level level)
{
    log_level = level;
}

pw_log_level pw_log_get_level(void)
{
    return log_level;
}

void pw_log_write(pw_log_level level, const char *module, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_sink != NULL) {
        log_sink(level, module, line, log_sink_data);
    } else {
        stderr_sink(level, module, line);
    }
}

void pw__assert_fail(const char *expr, const char *file, int line)
{
    pw_log_write(PW_LOG_ERR, "assert", "assertion failed: %s at %s:%d", expr, file, line);
    abort();
}
