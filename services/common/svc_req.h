#ifndef PAYWIRE_SERVICES_SVC_REQ_H
#define PAYWIRE_SERVICES_SVC_REQ_H

/*
 * One RPC being served by a business service (docs/design/services.md).
 * Each call runs its handler on a fiber of its worker's loop, so a handler is
 * written top to bottom in the order things happen and waits for the
 * database (or another service) where it needs an answer:
 *
 *   SVC_HANDLER(get_merchant, Paywire__Merchant__V1__GetMerchantRequest)
 *   {
 *       if (!svc_id_ok(req->merchant_id, "mer")) {
 *           svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
 *       }
 *       svc_check(r);
 *       svc_authenticate(r, "merchants:read");
 *       svc_owns(r, req->merchant_id, "merchant");
 *       pw_db_param p = pw_db_text(req->merchant_id);
 *       svc_row m = svc_one(r, svc_query(r, &select_merchant, &p, 1), "merchant",
 * req->merchant_id);
 *       ...
 *       svc_reply(r, &resp.base);
 *   }
 *
 * What fails, fails once, in the framework: a failed query, a cancelled call
 * or a passed deadline ends the handler (the functions marked "does not
 * return on failure" never come back then), rolls back an open transaction
 * and answers the call with the status and a safe message. Handlers never
 * check allocations: service binaries run with an allocator that aborts on
 * out-of-memory (svc_main).
 *
 * Memory: svc_alloc and everything built from rows live in the call's memory
 * until the call ends. A query result is valid until the handler's next
 * wait (the next svc_query, svc_tx_query, svc_commit...).
 */
#include <protobuf-c/protobuf-c.h>
#include <paywire/auth.h>
#include "svc.h"
#include "svc_fiber.h"

typedef struct svc_req svc_req;

/** A handler's body, run on the call's fiber. request is the typed request (see SVC_HANDLER). */
typedef void (*svc_handler_fn)(svc_req *r, const void *request);
/** A transaction's body: its statements, ending with svc_commit or svc_abort. May run again. */
typedef void (*svc_tx_fn)(svc_req *r, const void *arg);
/**
 * Looks up an API key secret (runs on the request's fiber, may wait): fills
 * r->caller and returns, or ends the call with svc_fail. Set by the service.
 */
typedef void (*svc_key_resolver)(svc_req *r, const char *secret);

/** One worker loop's share of a service: filled by svc_main; read-only to handlers. */
typedef struct svc_app {
    pw_db_pool *pool;
    svc_fibers *fibers;
    /** URI SANs of internal callers ("spiffe://paywire/orchestration"), comma-separated. */
    const char *internal_identities;
    svc_key_resolver resolve_key;
    /** ErrorInfo domain ("merchant.paywire"). */
    const char *domain;
    /** Seals stored secrets (configured when the service asks for an encryption_key). */
    const svc_sealer *sealer;
    /**
     * Calls with an API key, per merchant (NULL: no limit). Over it:
     * RESOURCE_EXHAUSTED, reason RATE_LIMITED, with RetryInfo. One per loop.
     */
    pw_rate_limiter *merchant_limit;
    /** The service's own process-wide state (svc_service.setup), or NULL. */
    void *service;
    /** This worker's metrics registry (pw_metrics_gauge_set for the service's own gauges, from
     * this loop only). */
    struct pw_metrics *metrics;
} svc_app;

/** Where a transaction is. */
typedef enum svc_tx_state {
    SVC_TX_NONE = 0,
    SVC_TX_OPEN,
    SVC_TX_ENDED,
} svc_tx_state;

struct svc_req {
    pw_call *call;
    svc_app *app;
    /** Who is calling: set by svc_authenticate. */
    svc_caller caller;
    /** Error details gathered for the answer (violations, resource info). */
    pw_error_details details;
    /* ---- the framework's (handlers do not touch these) ---- */
    svc_fiber *fiber;
    const ProtobufCMessage *request;
    svc_handler_fn handler;
    int authenticated;
    /* Where the answer of the svc_call in progress goes. */
    struct svc_answer *call_reply;
    /* The column read last (svc_text and friends look beside it first). */
    int column_hint;
    /* The API key while it is being resolved (wiped after). */
    char secret[160];
    /* What the last wait delivered. */
    int event;
    pw_db_result *result;
    pw_db_tx *tx;
    pw_status tx_status;
    char tx_message[300];
    svc_tx_state tx_state;
    /* A pipelined statement that failed (its status and message), reported at the next wait. */
    pw_status piped_status;
    char piped_message[300];
    int piped_pending;
    /* How the handler ended, and where to jump to end it early. */
    pw_status code;
    char message[512];
    int replied;
    /* 1 while the fiber waits in svc_wait_writable. */
    int waiting_writable;
    void *exit_jmp;
    void *restart_jmp;
    /* The idempotent transaction. */
    const char *method;
    const char *key;
    const ProtobufCMessageDescriptor *response_type;
    char scope[300];
    uint8_t fingerprint[32];
    svc_tx_fn effect;
    const void *effect_arg;
    int replayed;
    /* svc_at_end's function and argument. */
    void (*at_end)(svc_req *r, void *arg);
    void *at_end_arg;
};

/**
 * Serves call on a fiber of app: handler(r, request) runs until it waits or
 * ends; the call is finished when it ends. Used by SVC_HANDLER.
 */
void svc_serve(pw_call *call, svc_app *app, const ProtobufCMessage *request,
               svc_handler_fn handler);

/**
 * Defines a typed handler body for a method with request type Req:
 *   SVC_HANDLER(get_merchant, Paywire__Merchant__V1__GetMerchantRequest) { ... }
 * declares `static void get_merchant(svc_req *r, const Req *req)` and the
 * generated-table entry `get_merchant_h`, which runs it on a fiber.
 */
#define SVC_HANDLER(name, Req)                                     \
    static void name(svc_req *r, const Req *req);                  \
    static void name##_fiber(svc_req *r, const void *request)      \
    {                                                              \
        name(r, request);                                          \
    }                                                              \
    static void name##_h(pw_call *call, const Req *req, void *app) \
    {                                                              \
        svc_serve(call, app, &req->base, name##_fiber);            \
    }                                                              \
    static void name(svc_req *r, const Req *req)

/* ---- memory: the call's, freed when it ends; never NULL (allocation failure aborts) ---- */

/** A copy of s (NULL → ""). */
char *svc_strdup(svc_req *r, const char *s);
/** size zeroed bytes. */
void *svc_alloc(svc_req *r, size_t size);

/* ---- answering ---- */

/** Sends response; the call ends OK when the handler returns. */
void svc_reply(svc_req *r, const ProtobufCMessage *response);
/**
 * Server streaming: waits until the call can take another message
 * (pw_call_writable), so a slow reader holds the handler back instead of
 * filling memory. Does not return when the call is cancelled meanwhile.
 */
void svc_wait_writable(svc_req *r);
/** Server streaming: the messages sent so far (maybe none) are the answer; ends OK on return. */
void svc_stream_end(svc_req *r);
/** Ends the handler: code, the details gathered so far, and a printf message. */
_Noreturn void svc_fail(svc_req *r, pw_status code, const char *fmt, ...) PW_PRINTF(3, 4);
/** As svc_fail with ErrorInfo reason in the service's domain. */
_Noreturn void svc_fail_reason(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
    PW_PRINTF(4, 5);
/** Adds a BadRequest violation for field. */
void svc_violation(svc_req *r, const char *field, const char *description);
/** Ends the handler with INVALID_ARGUMENT and the violations, if there are any. */
void svc_check(svc_req *r);

/* ---- callers ---- */

/**
 * Identifies the caller: an internal service by its mTLS identity, or a
 * merchant by its API key (Authorization: Bearer sk_…), which must have scope
 * (NULL: internal callers only). Does not return on failure.
 */
void svc_authenticate(svc_req *r, const char *scope);
/**
 * Returns when the caller may act for merchant_id (internal callers: any;
 * API-key callers: their own); otherwise ends with NOT_FOUND ("what not found").
 */
void svc_owns(svc_req *r, const char *merchant_id, const char *what);

/* ---- queries outside a transaction ---- */

/** Runs stmt and waits for it. Does not return on failure. */
const pw_db_result *svc_query(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params, int n);

/* ---- calling another service ---- */

/** What svc_call returns: the status, its message, and the response in call memory. */
typedef struct svc_answer {
    pw_status code;
    /** The peer's message (call memory; "" when none). */
    const char *message;
    /** The response (call memory), or NULL unless code is PW_OK. */
    ProtobufCMessage *response;
} svc_answer;

/**
 * Calls path on channel (unary) and waits for the answer: the call is a
 * child of this request (its deadline and cancellation pass on; timeout_ms
 * may shorten it; 0: the request's own), and the response is copied into
 * call memory. Returns the outcome whatever it is, so the handler decides
 * what a failure means (fail closed, fall back, retry); svc_fail_call makes
 * it this call's answer. Not inside a transaction (asserted): commit, then
 * call (STYLE §12).
 */
svc_answer svc_call(svc_req *r, pw_channel *channel, const char *path,
                    const ProtobufCMessage *request,
                    const ProtobufCMessageDescriptor *response_type, int64_t timeout_ms);
/**
 * Ends the handler with a failed svc_call's outcome: what ("compliance") and
 * its message; UNAVAILABLE stays UNAVAILABLE (with RetryInfo), a deadline
 * stays DEADLINE_EXCEEDED, anything else the peer said becomes UNAVAILABLE
 * or INTERNAL as gRPC advises for a dependency (never the peer's own
 * INVALID_ARGUMENT, which is not the caller's fault).
 */
_Noreturn void svc_fail_call(svc_req *r, const svc_answer *a, const char *what);

/* ---- waiting for work done elsewhere ---- */

/**
 * Suspends the handler until svc_resume(r): for a handler whose answer is
 * produced by something it does not own (the ledger's batches, which apply
 * many calls' transfers in one transaction). Before suspending, the handler
 * must have handed r to that work, which resumes it exactly once. Neither
 * the call's cancellation nor its deadline wakes it: the work must be bounded
 * on its own (a statement timeout). Not inside a transaction (asserted).
 */
void svc_suspend(svc_req *r);
/**
 * Resumes a handler suspended in svc_suspend; it runs until its next wait or
 * its end, then this returns. Call it from the loop (a database callback, a
 * timer), never from inside a fiber, and once per svc_suspend.
 */
void svc_resume(svc_req *r);
/**
 * Runs fn(r, arg) once when the handler ends, whichever way (its return, or
 * a failure that does not return), before the call is finished: for what a
 * handler opened that must not outlive it (a listener, a watch). One per
 * handler; arg must outlive the handler's stack (call memory, svc_alloc).
 */
void svc_at_end(svc_req *r, void (*fn)(svc_req *r, void *arg), void *arg);
/**
 * Suspends the handler for ms on the call's loop (simulated latency, a
 * partner that answers late); 0 or less returns at once. Not inside a
 * transaction.
 */
void svc_sleep(svc_req *r, int64_t ms);

/* ---- transactions ---- */

/**
 * Runs fn(r, arg) in a READ COMMITTED transaction. fn issues svc_tx_query /
 * svc_tx_pipe and ends with svc_commit or svc_abort. After a serialization
 * failure or deadlock the transaction is rolled back and fn runs again from
 * its start (so fn keeps no state across runs but what it reads). Returns
 * once committed (the response sent by svc_commit); does not return on
 * failure.
 */
void svc_transaction(svc_req *r, svc_tx_fn fn, const void *arg);
/**
 * The idempotent transaction (docs/design/api-conventions.md): claims
 * (caller, method, key) with the request's fingerprint in a transaction; a
 * fresh key runs fn(r, arg) in it as svc_transaction does; a key used before
 * with the same request replies the stored response (of response_type); with
 * a different request ends with FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED.
 * A missing or malformed key ends with INVALID_ARGUMENT naming idempotency_key.
 */
void svc_idempotent(svc_req *r, const char *method, const char *key,
                    const ProtobufCMessageDescriptor *response_type, svc_tx_fn fn, const void *arg);
/** 1 when key is an idempotency key: 1-128 printable ASCII characters. */
int svc_key_ok(const char *key);
/** A statement in the transaction, waited for. Does not return on failure. */
const pw_db_result *svc_tx_query(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params,
                                 int n);
/**
 * A statement in the transaction that nothing waits for (an audit or outbox
 * row): sent now, pipelined before the next one; if it fails, the next wait
 * ends the handler and rolls back.
 */
void svc_tx_pipe(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params, int n);
/**
 * Ends fn: stores `stored` (the response with its secrets removed, or
 * response itself when NULL) for replays, commits, and sends response.
 */
void svc_commit(svc_req *r, const ProtobufCMessage *response, const ProtobufCMessage *stored);
/**
 * Ends fn: commits and sends nothing, so the handler goes on after
 * svc_transaction returns (the three-step partner pattern: commit the
 * attempt, call the partner outside any transaction, commit the outcome).
 * Not with svc_idempotent (nothing would be stored for replays; asserted).
 * Does not return on failure.
 */
void svc_tx_commit(svc_req *r);
/** Ends the transaction with a failure (rolled back); reason (may be NULL) becomes ErrorInfo. */
_Noreturn void svc_abort(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
    PW_PRINTF(4, 5);
/**
 * Inside a transaction, a key's replay: ends it (svc_abort, rolled back, so nothing is
 * counted) with FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED naming field when the value stored
 * for key differs from the one asked; returns otherwise. A partner's idempotency, as the
 * simulators keep it: a key used again with other values is refused.
 */
void svc_same_text(svc_req *r, const char *key, const char *field, const char *stored,
                   const char *asked);
void svc_same_int(svc_req *r, const char *key, const char *field, int64_t stored, int64_t asked);

/* ---- paging (api-conventions.md: keyset tokens, 50 by default, 500 at most) ---- */

#define SVC_PAGE_DEFAULT 50
#define SVC_PAGE_MAX     500
/** An opaque token for the page after position, valid only with the same filter. */
char *svc_page_token(svc_req *r, const char *position, const char *filter);
/**
 * Decodes token into position ("" for none: the first page); 0, with a
 * violation for page_token, when it is not this method's or its filter
 * differs (svc_check then ends the call).
 */
int svc_page_token_read(svc_req *r, const char *token, const char *filter, char *position,
                        size_t cap);
/** The page size for a request's page_size: 0 the default, above the maximum clamped. */
int svc_page_size(int32_t requested);

/* ---- rows, read by column name ---- */

typedef struct svc_row {
    svc_req *r;
    const pw_db_result *res;
    int row;
} svc_row;

/** Row i of res. */
svc_row svc_row_at(svc_req *r, const pw_db_result *res, int i);
/**
 * The only row of res; with no row, ends with NOT_FOUND "what id not found"
 * and the ResourceInfo (resource_type may be NULL).
 */
svc_row svc_one(svc_req *r, const pw_db_result *res, const char *what, const char *id);
/* Column values. A column the query does not return ends with INTERNAL (a bug). */
/** Text in call memory; "" for NULL. */
char *svc_text(svc_row row, const char *col);
/** 0 for NULL. */
int64_t svc_int64(svc_row row, const char *col);
int svc_bool(svc_row row, const char *col);
/** Bytes, borrowed until the next wait; empty for NULL. */
pw_slice svc_bytes(svc_row row, const char *col);
int svc_is_null(svc_row row, const char *col);
/** A Timestamp in call memory, NULL for NULL. */
struct Google__Protobuf__Timestamp *svc_time(svc_row row, const char *col);
/** A Timestamp in call memory from microseconds since the epoch. */
struct Google__Protobuf__Timestamp *svc_timestamp(svc_req *r, int64_t unix_us);

#endif
