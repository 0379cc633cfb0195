#ifndef PAYWIRE_SERVICES_SVC_REQ_H
#define PAYWIRE_SERVICES_SVC_REQ_H

/*
 * One RPC being served by a business service: its caller, accumulated error
 * details, and the idempotent transaction pattern (docs/design/merchant.md):
 *
 *   svc_idempotent(r, "CreateMerchant", req->idempotency_key, response_type, effect)
 *
 * claims (scope, method, key) with the request's fingerprint in a
 * transaction; a fresh key runs effect(r) inside the transaction, which ends
 * with svc_commit (stores the response, commits, replies) or svc_abort; a
 * key already used with the same request replies the stored response; with a
 * different request, FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED.
 *
 * A request lives in the call's memory (pw_call_alloc): everything it points
 * to is freed with the call, after the reply.
 */
#include <protobuf-c/protobuf-c.h>
#include <paywire/auth.h>
#include "svc.h"

typedef struct svc_req svc_req;
typedef void (*svc_step)(svc_req *r);

/** Looks up an API key secret; calls svc_auth_done when it knows. Set by the service. */
typedef void (*svc_key_resolver)(svc_req *r, const char *secret);

typedef struct svc_app {
    pw_db_pool *pool;
    /** URI SANs of internal callers ("spiffe://paywire/orchestration"), comma-separated. */
    const char *internal_identities;
    svc_key_resolver resolve_key;
    /** ErrorInfo domain ("merchant.paywire"). */
    const char *domain;
    svc_sealer sealer;
    /**
     * Calls with an API key, per merchant (NULL: no limit). Over it:
     * RESOURCE_EXHAUSTED, reason RATE_LIMITED, with RetryInfo. One per loop.
     */
    pw_rate_limiter *merchant_limit;
} svc_app;

struct svc_req {
    pw_call *call;
    svc_app *app;
    const ProtobufCMessage *request;
    svc_caller caller;
    pw_error_details details;
    /* Authentication in progress. */
    const char *need_scope;
    svc_step after_auth;
    /* The idempotent transaction. */
    const char *method;
    const char *key;
    const ProtobufCMessageDescriptor *response_type;
    char scope[300];
    uint8_t fingerprint[32];
    pw_db_tx *tx;
    svc_step effect;
    ProtobufCMessage *response;
    uint8_t *stored;
    size_t stored_len;
    int replayed;
    pw_status fail_code;
    char fail_msg[300];
    /* Handler data. */
    void *scratch;
};

/** A request for call (its memory is the call's). NULL only when out of memory (call finished). */
svc_req *svc_req_new(pw_call *call, svc_app *app, const ProtobufCMessage *request);

/** Call memory: a copy of s (NULL → ""), and zeroed space. */
char *svc_strdup(svc_req *r, const char *s);
void *svc_alloc(svc_req *r, size_t size);

/* ---- answering ---- */

void svc_reply(svc_req *r, const ProtobufCMessage *response);
/** Finishes with code, the details gathered so far, and a printf message. */
void svc_fail(svc_req *r, pw_status code, const char *fmt, ...) PW_PRINTF(3, 4);
/** As svc_fail with ErrorInfo reason in our domain. */
void svc_fail_reason(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
    PW_PRINTF(4, 5);
/** A database outcome that is not OK: its status and safe message. */
void svc_fail_db(svc_req *r, const pw_db_result *res);
/** Adds a BadRequest violation; svc_has_violations tells whether any were added. */
void svc_violation(svc_req *r, const char *field, const char *description);
int svc_has_violations(const svc_req *r);
/** Finishes with INVALID_ARGUMENT and the violations; returns 1 when there were any. */
int svc_fail_if_invalid(svc_req *r);

/* ---- callers ---- */

/**
 * Identifies the caller, then runs next: an internal service by its mTLS
 * identity, or a merchant by its API key (Authorization: Bearer sk_…),
 * which must have scope (NULL: internal callers only).
 */
void svc_authenticate(svc_req *r, const char *scope, svc_step next);
/** The key resolver's answer: status PW_OK with r->caller filled, or the failure. */
void svc_auth_done(svc_req *r, pw_status status, const char *message);
/**
 * 1 when the caller may act for merchant_id (internal callers: any; API-key
 * callers: their own). Otherwise finishes the call with NOT_FOUND and returns 0.
 */
int svc_owns(svc_req *r, const char *merchant_id, const char *what);

/* ---- the idempotent transaction ---- */

void svc_idempotent(svc_req *r, const char *method, const char *key,
                    const ProtobufCMessageDescriptor *response_type, svc_step effect);
/** A query inside the transaction. */
pw_status svc_tx_query(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params, int n,
                       pw_db_result_cb cb);
/**
 * Ends the effect: stores `stored` (the response with its secrets removed, or
 * the response itself when NULL) for replays, commits, then replies response.
 */
void svc_commit(svc_req *r, ProtobufCMessage *response, const ProtobufCMessage *stored);
/** Ends the effect with a failure (rolls back); reason (may be NULL) becomes ErrorInfo. */
void svc_abort(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
    PW_PRINTF(4, 5);
/** Ends the effect with a failed query's status and message. */
void svc_abort_db(svc_req *r, const pw_db_result *res);

#endif
