#ifndef PAYWIRE_ORCHESTRATION_H
#define PAYWIRE_ORCHESTRATION_H

/*
 * The orchestration service (docs/design/orchestration.md): what its files
 * share. payments.c serves PaymentService; connector.c calls the acquirer
 * (simulator) on the loop; recovery.c completes what a crash left open.
 */
#include "svc_main.h"
#include "paywire/orchestration/v1/payments.pw.h"

#define ORCH_DOMAIN "orchestration.paywire"

/** Resolved API keys, shared by the workers (auth.c; locked inside). */
typedef struct orch_key_cache orch_key_cache;

/** The process-wide settings (svc_service.setup), read-only once the workers run. */
typedef struct orch_state {
    /** The acquirer's address ("localhost:15071"). */
    char acquirer_target[256];
    /** The merchant service's address (API keys); "" accepts internal callers only. */
    char merchant_target[256];
    /** The compliance service's address (payment facts to monitoring); "" keeps them waiting. */
    char compliance_target[256];
    /** Our database (WatchPayment's LISTEN connections). */
    char database_url[512];
    /** The finance service's address (the ledger consumer); "" keeps ledger events waiting. */
    char finance_target[256];
    /** Our own certificate, key and CA for the calls to partners and services. */
    char tls_cert[256], tls_key[256], tls_ca[256];
    /** Each partner call's deadline. */
    int64_t connector_timeout_ms;
    /** How often recovery looks for expired leases. */
    int64_t recovery_interval_ms;
    /** An attempt the partner has not seen after this long is FAILED (not re-sent). */
    int64_t attempt_give_up_ms;
    /** Webhooks: a request's deadline, the retry backoff, and when a delivery is given up. */
    int64_t webhook_timeout_ms, webhook_backoff_initial_ms, webhook_backoff_max_ms;
    int64_t webhook_give_up_ms;
    /** This process ("orch_<pid>_<random>"): the owner of the leases it takes. */
    char instance[64];
    /** Test fault point: "after_authorize" (the acquirer answered), "after_capture_commit"
     * (a capture's outcome and event committed): the process kills itself there. */
    char fault[32];
    /** Owned; the one mutable part, locked inside. */
    orch_key_cache *keys;
} orch_state;

extern const svc_setting orch_settings[];
pw_status orch_setup(const svc_config *cfg, void **state, char *err, size_t err_len);
void orch_teardown(void *state);
pw_status orch_register(pw_server *server, svc_app *app);
pw_status orch_start_jobs(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs);
void orch_stop_jobs(void *jobs);
/** svc_service.start_jobs: recovery (above) and the event consumers (events.c). */
pw_status orch_jobs_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs);
void orch_jobs_stop(void *jobs);

/* ---- payments.c, events_api.c ---- */

/** The payment as stored, with its attempts and operations; NOT_FOUND ends the call. */
Paywire__Orchestration__V1__Payment *orch_payment_read(svc_req *r, const char *payment_id);
/** The refund as stored; NOT_FOUND ends the call. */
Paywire__Orchestration__V1__Refund *orch_refund_read(svc_req *r, const char *refund_id);
/** PaymentService.WatchPayment (watch.c), for the handler table. */
void orch_watch_payment_h(pw_call *call, const Paywire__Orchestration__V1__WatchPaymentRequest *req,
                          void *app);
/** PaymentService.ListEvents (events_api.c), for the handler table. */
void orch_list_events_h(pw_call *call, const Paywire__Orchestration__V1__ListEventsRequest *req,
                        void *app);

/* ---- connector.c ---- */

/** A partner's answer, normalised. */
typedef struct conn_result {
    /**
     * SUCCEEDED, DECLINED; FAILED (a definite "not done": refused before it
     * was recorded, or never reached); TIMED_OUT (ambiguous: it may have been
     * done); NOT_FOUND (status queries: the partner has no such key).
     */
    const char *outcome;
    char decline_code[64];
    int soft;
    char reference[64];
    int64_t amount_minor;
} conn_result;

typedef void (*conn_done_cb)(const conn_result *res, void *user_data);

/** What a partner request is: Authorize, Capture, VoidAuthorization, Refund or GetOperation. */
typedef struct conn_request {
    const char *method;
    const char *key;
    /** Authorize. */
    const char *vault_token;
    const char *currency;
    /** Authorize, Capture, Refund. */
    int64_t amount_minor;
    /** Capture, VoidAuthorization, Refund. */
    const char *authorization_reference;
} conn_request;

/** An mTLS channel (our certificate) to target on loop; the result of pw_channel_new. */
pw_status orch_channel(const orch_state *s, const char *target, uv_loop_t *loop, pw_channel **out);
/**
 * Sends req (copied) on ch with the configured deadline; done runs once,
 * later, with the normalised answer. Returns PW_OK, or the error of
 * pw_client_unary (done never runs then).
 */
pw_status conn_send(const orch_state *s, pw_channel *ch, const conn_request *req, conn_done_cb done,
                    void *user_data);
/**
 * From a handler: opens a channel on the call's loop, sends req, waits for
 * the answer (the handler is suspended, outside any transaction) and closes
 * the channel. A request that cannot start is FAILED.
 */
void conn_call(svc_req *r, const conn_request *req, conn_result *out);

/* ---- auth.c ---- */

/** A new, empty cache (NULL when out of memory); free it with orch_key_cache_free. */
orch_key_cache *orch_key_cache_new(void);
void orch_key_cache_free(orch_key_cache *c);
/** svc_service.resolve_key: a merchant's API key through merchant's ResolveApiKey (cached). */
void orch_resolve_key(svc_req *r, const char *secret);

/* ---- recovery.c ---- */

/** The step-4 statements (record_* in the migration), shared by handlers and recovery. */
extern const pw_db_stmt orch_record_authorization, orch_record_operation, orch_record_refund;

#endif
