#ifndef PAYWIRE_LOG_H
#define PAYWIRE_LOG_H

#include <stdarg.h>
#include <paywire/version.h>

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
 * A log sink receives one formatted line (no newline). It may be called from any
 * loop thread; it must be thread-safe if several loops log.
 */
typedef void (*pw_log_sink_cb)(pw_log_level level, const char *module, const char *line,
                               void *user_data);

/**
 * Installs the sink (NULL restores the default: one JSON object per line on
 * stderr) and the highest level that is emitted. Process-wide configuration,
 * set at start-up.
 */
PW_EXTERN void pw_log_set_sink(pw_log_sink_cb sink, void *user_data);
PW_EXTERN void pw_log_set_level(pw_log_level level);
PW_EXTERN pw_log_level pw_log_get_level(void);

/** Formats and emits a line. Prefer PW_LOG, which checks the level first. */
PW_EXTERN void pw_log_write(pw_log_level level, const char *module, const char *fmt, ...)
    PW_PRINTF(3, 4);

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
