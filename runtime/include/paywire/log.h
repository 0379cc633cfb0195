#ifndef PAYWIRE_LOG_H
#define PAYWIRE_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <paywire/version.h>
#include <paywire/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Syslog level numbers. */
typedef enum pw_log_level {
    PW_LOG_ERR = 3,
    PW_LOG_WARNING = 4,
    PW_LOG_NOTICE = 5,
    PW_LOG_INFO = 6,
    PW_LOG_DEBUG = 7,
} pw_log_level;

/**
 * A log sink receives each line already rendered as one JSON object (no
 * newline) and already redacted. It may be called from any loop thread; it
 * must be thread-safe if several loops log.
 */
typedef void (*pw_log_sink_cb)(pw_log_level level, const char *module, const char *json_line,
                               void *user_data);

/** A structured field: both strings are JSON-escaped and redacted when rendered. */
typedef struct pw_log_field {
    const char *key;
    const char *value;
} pw_log_field;

/**
 * Installs the sink (NULL restores the default: one line per object on
 * stderr) and the default level. Process-wide configuration, set at start-up.
 */
PW_EXTERN void pw_log_set_sink(pw_log_sink_cb sink, void *user_data);
PW_EXTERN void pw_log_set_level(pw_log_level level);
/**
 * A level for one module (e.g. "server", "channel", "access"), copied; up to
 * 32 modules. Returns PW_OK; PW_INVALID_ARGUMENT for a NULL name or one of 32
 * bytes or more; PW_RESOURCE_EXHAUSTED when 32 other modules have levels.
 */
PW_EXTERN pw_status pw_log_set_module_level(const char *module, pw_log_level level);
/** The most verbose level any module logs at (what PW_LOG checks first). */
PW_EXTERN pw_log_level pw_log_get_level(void);

/**
 * Formats and emits a line {"time","level","module","msg"}. Prefer PW_LOG,
 * which checks the level first.
 */
PW_EXTERN void pw_log_write(pw_log_level level, const char *module, const char *fmt, ...)
    PW_PRINTF(3, 4);
/** Like pw_log_write, with extra top-level fields after "msg". */
PW_EXTERN void pw_log_fields(pw_log_level level, const char *module, const pw_log_field *fields,
                             size_t count, const char *fmt, ...) PW_PRINTF(5, 6);

/**
 * Replaces secrets in text, in place: card numbers (13-19 digits, spaces or
 * dashes allowed, passing the Luhn check) become [REDACTED-PAN]; "Bearer x",
 * API keys (sk_live_, sk_test_, pk_live_, pk_test_, rk_live_, whsec_ prefixes)
 * and the values of password/secret/token/api_key/authorization pairs become
 * [REDACTED]. Returns how many were replaced. Every log line passes here.
 */
PW_EXTERN size_t pw_log_redact(char *text);

/** Logs when level is enabled; the arguments are not evaluated otherwise. */
#define PW_LOG(level, module, ...)                        \
    do {                                                  \
        if ((level) <= pw_log_get_level()) {              \
            pw_log_write((level), (module), __VA_ARGS__); \
        }                                                 \
    } while (0)

#ifndef NDEBUG
#define PW_DEBUGF(module, ...) PW_LOG(PW_LOG_DEBUG, module, __VA_ARGS__)
#else
#define PW_DEBUGF(module, ...) \
    do {                       \
    } while (0)
#endif

/** Programmer-error check; stays on in release builds. Logs and aborts. */
PW_EXTERN void pw__assert_fail(const char *expr, const char *file, int line);
#define PW_ASSERT(expr) ((expr) ? (void)0 : pw__assert_fail(#expr, __FILE__, __LINE__))

#ifdef __cplusplus
}
#endif
#endif
