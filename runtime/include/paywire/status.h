#ifndef PAYWIRE_STATUS_H
#define PAYWIRE_STATUS_H

#include <errno.h>
#include <stddef.h>
#include <paywire/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The one error type of paywire (see STYLE.md §4).
 *  - 0 is PW_OK.
 *  - 1..16 are the gRPC status codes with their wire numbers.
 *  - values < 0 are local or system failures: -errno, or a libuv result passed on unchanged.
 * A negative value never goes on the wire: pw_status_to_wire() maps it first.
 */
typedef int pw_status;

#define PW_ERRNO(e) (-(e))

/* XX(name, code) for every gRPC status code, in wire order. */
#define PW_STATUS_MAP(XX)      \
    XX(OK, 0)                  \
    XX(CANCELLED, 1)           \
    XX(UNKNOWN, 2)             \
    XX(INVALID_ARGUMENT, 3)    \
    XX(DEADLINE_EXCEEDED, 4)   \
    XX(NOT_FOUND, 5)           \
    XX(ALREADY_EXISTS, 6)      \
    XX(PERMISSION_DENIED, 7)   \
    XX(RESOURCE_EXHAUSTED, 8)  \
    XX(FAILED_PRECONDITION, 9) \
    XX(ABORTED, 10)            \
    XX(OUT_OF_RANGE, 11)       \
    XX(UNIMPLEMENTED, 12)      \
    XX(INTERNAL, 13)           \
    XX(UNAVAILABLE, 14)        \
    XX(DATA_LOSS, 15)          \
    XX(UNAUTHENTICATED, 16)

enum {
#define PW_STATUS_ENUM(name, code) PW_##name = code,
    PW_STATUS_MAP(PW_STATUS_ENUM)
#undef PW_STATUS_ENUM
};

/** Largest gRPC code. */
#define PW_STATUS_MAX 16

/**
 * A static name for any status: "OK", "NOT_FOUND", or for negative values the
 * errno/libuv text (e.g. "connection refused"). Never NULL.
 */
PW_EXTERN const char *pw_status_str(pw_status rv);

/**
 * The gRPC code to put on the wire for rv, always one of PW_OK ...
 * PW_UNAUTHENTICATED: gRPC codes map to themselves; negative values map by
 * cause (ECONNREFUSED and friends -> PW_UNAVAILABLE, ETIMEDOUT ->
 * PW_DEADLINE_EXCEEDED, ENOMEM -> PW_RESOURCE_EXHAUSTED, ECANCELED ->
 * PW_CANCELLED, anything else -> PW_INTERNAL); codes above 16 (unknown on
 * the wire) map to PW_UNKNOWN.
 */
PW_EXTERN pw_status pw_status_to_wire(pw_status rv);

/**
 * Parses the decimal text of a grpc-status header (len bytes, no NUL needed).
 * Returns PW_OK and sets *out; PW_INVALID_ARGUMENT, with *out left as it was,
 * when text is not a decimal number in 0..INT32_MAX. Codes above 16 are
 * stored as given (callers treat them as UNKNOWN).
 */
PW_EXTERN pw_status pw_status_parse(const char *text, size_t len, pw_status *out);

#ifdef __cplusplus
}
#endif
#endif
