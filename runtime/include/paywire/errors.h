#ifndef PAYWIRE_ERRORS_H
#define PAYWIRE_ERRORS_H

/*
 * Rich errors (library paywire_builtins): a google.rpc.Status with standard
 * details (ErrorInfo, BadRequest, RetryInfo, ResourceInfo) in the
 * grpc-status-details-bin trailer, which every gRPC implementation decodes.
 */
#include <stdint.h>
#include <paywire/call.h>
#include <paywire/metadata.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_field_violation {
    char *field;
    char *description;
} pw_field_violation;

/**
 * Error details. Zero-initialise ({0}, with retry_delay_ms = -1 for "none" when
 * reading) and fill with the pw_error_* functions; release with
 * pw_error_details_clear. Every string is owned (copied in).
 */
typedef struct pw_error_details {
    /** Set by pw_error_details_read: the status the trailer carries. */
    pw_status code;
    char *message;
    /** google.rpc.ErrorInfo: a stable reason and the domain that owns it (NULL: none). */
    char *reason;
    char *domain;
    /** google.rpc.BadRequest field violations. */
    pw_field_violation *violations;
    size_t violation_count;
    /** google.rpc.RetryInfo: when to retry, in milliseconds (0: none when writing). */
    int64_t retry_delay_ms;
    /** google.rpc.ResourceInfo (resource_type NULL: none). */
    char *resource_type;
    char *resource_name;
    char *resource_owner;
    char *resource_description;
} pw_error_details;

/**
 * Sets ErrorInfo (copied; NULL clears a field). Returns PW_OK, or
 * PW_ERRNO(ENOMEM) with the fields it could not copy set to NULL.
 */
PW_EXTERN pw_status pw_error_set_info(pw_error_details *d, const char *reason, const char *domain);
/**
 * Adds one BadRequest field violation ("merchant.country", "must be ISO
 * 3166-1 alpha-2"), copied. Returns PW_OK, or PW_ERRNO(ENOMEM) with d unchanged.
 */
PW_EXTERN pw_status pw_error_add_violation(pw_error_details *d, const char *field,
                                           const char *description);
/**
 * Sets ResourceInfo (copied; owner and description may be NULL). Returns
 * PW_OK, or PW_ERRNO(ENOMEM) with the fields it could not copy set to NULL.
 */
PW_EXTERN pw_status pw_error_set_resource(pw_error_details *d, const char *type, const char *name,
                                          const char *owner, const char *description);
/** Frees everything; d is empty afterwards. */
PW_EXTERN void pw_error_details_clear(pw_error_details *d);

/**
 * Finishes call with code, a printf-style message and the details in
 * grpc-status-details-bin (a google.rpc.Status with the same code and
 * message). Borrows d. Like pw_call_finish otherwise.
 */
PW_EXTERN void pw_call_finish_details(pw_call *call, pw_status code, const pw_error_details *d,
                                      const char *fmt, ...) PW_PRINTF(4, 5);

/**
 * Adds the details for a status the call will end with (grpc-status-details-bin
 * trailer) without finishing it: for interceptors that reject a call by
 * returning code with message. PW_OK, PW_ERRNO(ENOMEM), or
 * PW_FAILED_PRECONDITION when the trailers were already sent.
 */
PW_EXTERN pw_status pw_call_attach_details(pw_call *call, pw_status code, const char *message,
                                           const pw_error_details *d);

/**
 * Reads the details from a call's trailing metadata into out (which it
 * clears first). Returns PW_OK; PW_NOT_FOUND when there is no
 * grpc-status-details-bin; PW_INTERNAL when it cannot be decoded (or memory
 * ran out decoding it). On failure out is left cleared (release it with
 * pw_error_details_clear() either way).
 */
PW_EXTERN pw_status pw_error_details_read(const pw_metadata *trailers, pw_error_details *out);

#ifdef __cplusplus
}
#endif
#endif
