/*
 * log.c: levelled, structured logging. Each line is rendered here as one
 * JSON object ({"time","level","module","msg", extra fields...}), passed
 * through pw_log_redact, and handed to the sink (default: stderr). The
 * runtime never writes to stdout. Levels (default and per module) and the
 * sink are start-up configuration.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <paywire/buf.h>
#include <paywire/log.h>

#define MAX_MODULES 32

static pw_log_sink_cb log_sink;
static void *log_sink_data;
static pw_log_level log_level = PW_LOG_INFO;
static pw_log_level log_max = PW_LOG_INFO;
static struct {
    char name[32];
    pw_log_level level;
} modules[MAX_MODULES];
static size_t module_count;

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

void pw_log_set_sink(pw_log_sink_cb sink, void *user_data)
{
    log_sink = sink;
    log_sink_data = user_data;
}

static void recompute_max(void)
{
    log_max = log_level;
    for (size_t i = 0; i < module_count; i++) {
        if (modules[i].level > log_max) {
            log_max = modules[i].level;
        }
    }
}

void pw_log_set_level(pw_log_level level)
{
    log_level = level;
    recompute_max();
}

pw_status pw_log_set_module_level(const char *module, pw_log_level level)
{
    if (module == NULL || strlen(module) >= sizeof(modules[0].name)) {
        return PW_INVALID_ARGUMENT;
    }
    size_t i = 0;
    while (i < module_count && strcmp(modules[i].name, module) != 0) {
        i++;
    }
    if (i == module_count) {
        if (module_count == MAX_MODULES) {
            return PW_RESOURCE_EXHAUSTED;
        }
        snprintf(modules[i].name, sizeof(modules[i].name), "%s", module);
        module_count++;
    }
    modules[i].level = level;
    recompute_max();
    return PW_OK;
}

pw_log_level pw_log_get_level(void)
{
    return log_max;
}

static pw_log_level module_level(const char *module)
{
    for (size_t i = 0; i < module_count; i++) {
        if (strcmp(modules[i].name, module) == 0) {
            return modules[i].level;
        }
    }
    return log_level;
}

/* ---- redaction ---- */

static int luhn_ok(const char *digits, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = digits[n - 1 - i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9) {
                d -= 9;
            }
        }
        sum += d;
    }
    return sum % 10 == 0;
}

/*
 * Replaces text[start, end) with repl. A longer replacement needs room past
 * the string's end: it is used only while *budget covers the growth; otherwise
 * the secret is overwritten in place with '*'.
 */
static void splice(char *text, size_t start, size_t end, const char *repl, size_t *budget)
{
    size_t rl = strlen(repl), span = end - start, tail = strlen(text + end);
    if (rl > span && rl - span > *budget) {
        memset(text + start, '*', span);
        return;
    }
    if (rl > span) {
        *budget -= rl - span;
    }
    memmove(text + start + rl, text + end, tail + 1);
    memcpy(text + start, repl, rl);
}

static size_t redact_pans(char *t, size_t *budget)
{
    size_t count = 0;
    for (size_t i = 0; t[i] != '\0'; i++) {
        if (!isdigit((unsigned char)t[i]) || (i > 0 && isalnum((unsigned char)t[i - 1]))) {
            continue;
        }
        char digits[20];
        size_t n = 0, j = i, last = i;
        while (t[j] != '\0' && n < 20) {
            if (isdigit((unsigned char)t[j])) {
                digits[n++] = t[j];
                last = j + 1;
            } else if (t[j] != ' ' && t[j] != '-') {
                break;
            }
            j++;
        }
        if (n >= 13 && n <= 19 && !isalnum((unsigned char)t[last]) && luhn_ok(digits, n)) {
            splice(t, i, last, "[REDACTED-PAN]", budget);
            count++;
            i += strlen("[REDACTED-PAN]") - 1;
        }
    }
    return count;
}

static size_t redact_after(char *t, const char *marker, int case_insensitive, size_t *budget)
{
    size_t count = 0, ml = strlen(marker);
    for (char *p = t; (p = case_insensitive ? strcasestr(p, marker) : strstr(p, marker)) != NULL;) {
        char *v = p + ml;
        char *e = v;
        while (*e != '\0' && !isspace((unsigned char)*e) && *e != '"' && *e != ',' && *e != '&' &&
               *e != ';' && *e != '\\') {
            e++;
        }
        if (e > v && strncmp(v, "[REDACTED", 9) != 0 && *v != '*') {
            splice(t, (size_t)(v - t), (size_t)(e - t), "[REDACTED]", budget);
            count++;
        }
        p = v;
    }
    return count;
}

static size_t redact_keys(char *t, size_t *budget)
{
    static const char *const prefixes[] = {"sk_live_", "sk_test_", "pk_live_", "pk_test_",
                                           "rk_live_", "whsec_",   NULL};
    size_t count = 0;
    for (size_t k = 0; prefixes[k] != NULL; k++) {
        for (char *p = t; (p = strstr(p, prefixes[k])) != NULL;) {
            char *e = p;
            while (isalnum((unsigned char)*e) || *e == '_') {
                e++;
            }
            splice(t, (size_t)(p - t), (size_t)(e - t), "[REDACTED]", budget);
            count++;
            p++;
        }
    }
    return count;
}

static size_t redact(char *text, size_t budget)
{
    size_t n = redact_pans(text, &budget);
    n += redact_after(text, "bearer ", 1, &budget);
    n += redact_keys(text, &budget);
    static const char *const pairs[] = {
        "password=", "password\\\":\\\"", "secret=",        "token=",
        "api_key=",  "apikey=",           "authorization=", NULL};
    for (size_t i = 0; pairs[i] != NULL; i++) {
        n += redact_after(text, pairs[i], 1, &budget);
    }
    return n;
}

size_t pw_log_redact(char *text)
{
    return redact(text, 0); /* no room is known past the string: mask in place */
}

/* ---- rendering ---- */

static void json_string(pw_buf *b, const char *s)
{
    pw_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            pw_buf_append(b, e, 2);
        } else if (*p < 0x20) {
            pw_buf_printf(b, "\\u%04x", *p);
        } else {
            pw_buf_append(b, p, 1);
        }
    }
    pw_buf_append(b, "\"", 1);
}

static void log_emit(pw_log_level level, const char *module, const pw_log_field *fields,
                     size_t count, const char *fmt, va_list ap) PW_PRINTF(5, 0);
static void log_emit(pw_log_level level, const char *module, const pw_log_field *fields,
                     size_t count, const char *fmt, va_list ap)
{
    if (level > module_level(module)) {
        return;
    }
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    pw_buf b = {0};
    pw_buf_printf(&b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"module\":", when,
                  ts.tv_nsec / 1000000, level_name(level));
    json_string(&b, module);
    pw_buf_append(&b, ",\"msg\":", 7);
    json_string(&b, msg);
    for (size_t i = 0; i < count; i++) {
        pw_buf_append(&b, ",", 1);
        json_string(&b, fields[i].key);
        pw_buf_append(&b, ":", 1);
        json_string(&b, fields[i].value ? fields[i].value : "");
    }
    pw_buf_append(&b, "}", 1);
    /* Room for redaction markers longer than what they replace. */
    if (pw_buf_reserve(&b, 257) != PW_OK) {
        pw_buf_reset(&b);
        return;
    }
    b.data[b.len] = '\0';
    redact((char *)b.data, 256);
    if (log_sink != NULL) {
        log_sink(level, module, (const char *)b.data, log_sink_data);
    } else {
        flockfile(stderr);
        fputs((const char *)b.data, stderr);
        fputc('\n', stderr);
        funlockfile(stderr);
    }
    pw_buf_reset(&b);
}

void pw_log_write(pw_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, module, NULL, 0, fmt, ap);
    va_end(ap);
}

void pw_log_fields(pw_log_level level, const char *module, const pw_log_field *fields, size_t count,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, module, fields, count, fmt, ap);
    va_end(ap);
}

void pw__assert_fail(const char *expr, const char *file, int line)
{
    pw_log_write(PW_LOG_ERR, "assert", "assertion failed: %s at %s:%d", expr, file, line);
    abort();
}
