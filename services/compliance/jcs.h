#ifndef PAYWIRE_COMPLIANCE_JCS_H
#define PAYWIRE_COMPLIANCE_JCS_H

/*
 * RFC 8785 (JSON Canonicalization Scheme) for the audit log's canonical bytes
 * (docs/design/compliance.md, Audit log), restricted to what the log accepts:
 * I-JSON whose numbers are integers within ±(2^53 − 1), so no floating-point
 * number is ever formatted. Members are sorted by their names' UTF-16 code
 * units, strings use the minimal escapes, and there is no whitespace.
 */
#include <stddef.h>
#include <stdint.h>
#include <paywire/buf.h>
#include <paywire/status.h>

/**
 * Appends the canonical form of the JSON text json (len bytes) to out. With
 * object_only, the top-level value must be an object. Returns PW_OK;
 * PW_INVALID_ARGUMENT with err saying why (malformed JSON, invalid UTF-8, a
 * duplicate member name, a number that is not an integer within ±(2^53 − 1),
 * nesting deeper than 64, a \u0000 escape, which PostgreSQL's jsonb cannot
 * store, or a non-object top level with object_only); PW_ERRNO(ENOMEM). out
 * may hold a partial result after a failure; it is not NUL-terminated.
 */
pw_status jcs_canonicalize(const char *json, size_t len, int object_only, pw_buf *out, char *err,
                           size_t err_len);

/** 1 when the len bytes at s are valid UTF-8 (no overlongs, surrogates or NUL). */
int jcs_utf8_ok(const char *s, size_t len);

/** Appends s (valid UTF-8, len bytes) as a JSON string with RFC 8785's escapes. */
pw_status jcs_string(pw_buf *out, const char *s, size_t len);

/** The fields of one audit event, borrowed. */
typedef struct jcs_event {
    int64_t sequence;
    const char *actor;
    const char *action;
    const char *subject_id;
    const char *source;
    /** Microseconds since the Unix epoch (written as RFC 3339 UTC with six fractional digits). */
    int64_t time_us;
    /** The detail object's canonical bytes (from jcs_canonicalize). */
    const char *detail;
    size_t detail_len;
} jcs_event;

/** Appends the event's canonical bytes to out. PW_OK or PW_ERRNO(ENOMEM). */
pw_status jcs_event_bytes(const jcs_event *e, pw_buf *out);

/** "2025-01-02T03:04:05.000006Z" into out (>= 28 bytes). */
void jcs_rfc3339(int64_t unix_us, char out[32]);

/** hash = SHA-256(previous ‖ canonical) of the audit chain. */
void jcs_chain_hash(const uint8_t previous[32], const void *canonical, size_t len, uint8_t out[32]);

/** 64 lower-case hex characters and a NUL into out. */
void jcs_hex(const uint8_t hash[32], char out[65]);

#endif
