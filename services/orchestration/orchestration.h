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
/** The connectors' circuit breakers, shared by the workers (breaker.c; locked inside). */
typedef struct orch_breakers orch_breakers;
/** Every worker's long-lived partner channels (connector.c; the registry locked inside). */
typedef struct orch_links orch_links;

#define ORCH_MAX_CONNECTORS 8

/** A partner connector as configured (`connectors`): where it is and what it costs. */
typedef struct orch_connector {
    char name[32];
    char target[256];
    uint32_t cost_bps;
    int64_t cost_fixed_minor;
} orch_connector;

/** The breakers' settings (design: 30 s window, 20 requests, 50%, 15 s open, 5 trials). */
typedef struct orch_breaker_config {
    int64_t window_ms;
    int64_t min_requests;
    int64_t error_percent;
    int64_t open_ms;
    int64_t trials;
} orch_breaker_config;

/** The process-wide settings (svc_service.setup), read-only once the workers run. */
typedef struct orch_state {
    /** The acquirer's address ("localhost:15071"): the one connector when `connectors` is unset. */
    char acquirer_target[256];
    /** The card connectors, in configuration order (the default route). */
    orch_connector connectors[ORCH_MAX_CONNECTORS];
    int n_connectors;
    /** The merchant service's address (API keys); "" accepts internal callers only. */
    char merchant_target[256];
    /**
     * The compliance service's address: ScreenTransaction at confirm and payment facts to
     * monitoring; "": payments are not screened and the facts wait.
     */
    char compliance_target[256];
    /** Our database (WatchPayment's LISTEN connections). */
    char database_url[512];
    /** The finance service's address (the ledger consumer); "" keeps ledger events waiting. */
    char finance_target[256];
    /** 1: compliance unavailable at confirm routes the payment unscreened; 0: UNAVAILABLE. */
    int compliance_fail_open;
    /** The screening call's deadline. */
    int64_t compliance_timeout_ms;
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
    /** On-chain: the custody partner (chain-sim), the chain it watches, the confirmations a
     * deposit needs to be final, and how often the watcher polls an open deposit. */
    char chain_target[256];
    int chain;
    int64_t chain_confirmations, chain_poll_interval_ms;
    /** Owned; the mutable parts, each locked inside. */
    orch_key_cache *keys;
    orch_breakers *breakers;
    orch_links *links;
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
/** EventService's dead letters (events_api.c), on each worker. */
pw_status orch_register_events(pw_server *server, svc_app *app);
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

/** A handler's hold on its worker's channel to a partner (orch_link_take). */
typedef struct orch_link {
    struct worker_links *w;
} orch_link;

/** An empty registry (NULL when out of memory); free it with orch_links_free after the workers. */
orch_links *orch_links_new(void);
void orch_links_free(orch_links *l);
/**
 * On each worker, with its server (svc_service.register_services): the
 * worker's channels, one per partner target, opened on first use and shared
 * by every call on that loop (HTTP/2 streams on one mTLS connection that
 * reconnects by itself). When the server has closed they close, once the
 * last hold is given back. PW_OK, PW_RESOURCE_EXHAUSTED (more than 64
 * workers) or the error of pw_server_add_hook.
 */
pw_status orch_links_attach(pw_server *server, const svc_app *app);
/**
 * The calling worker's channel to target (a string of orch_state, borrowed),
 * held until orch_link_give(link): the handler may wait while it holds it.
 * NULL (no hold) when the worker is shutting down or the channel cannot be
 * made.
 */
pw_channel *orch_link_take(svc_req *r, const char *target, orch_link *link);
/** Gives back a hold of orch_link_take (the channel must not be used after). */
void orch_link_give(orch_link *link);
/**
 * Sends req (copied) on ch with the configured deadline; done runs once,
 * later, with the normalised answer. Returns PW_OK, or the error of
 * pw_client_unary (done never runs then).
 */
pw_status conn_send(const orch_state *s, pw_channel *ch, const conn_request *req, conn_done_cb done,
                    void *user_data);
/**
 * From a handler: sends req on the worker's channel to the connector
 * (orch_link_take) and waits for the answer (the handler is suspended,
 * outside any transaction). A request that cannot start, or to a connector
 * that is not configured, is FAILED. Every request but GetOperation is
 * counted by the connector's breaker.
 */
void conn_call(svc_req *r, const char *connector, const conn_request *req, conn_result *out);

/* ---- breaker.c ---- */

typedef enum orch_circuit {
    ORCH_CIRCUIT_CLOSED = 1,
    ORCH_CIRCUIT_OPEN = 2,
    ORCH_CIRCUIT_HALF_OPEN = 3,
} orch_circuit;

/** One connector's breaker as seen now. */
typedef struct orch_breaker_stats {
    orch_circuit state;
    uint32_t requests;
    /** Answered calls over all calls in the window, in basis points (10000 when none). */
    uint32_t success_rate_bps;
    /** Upper bound of the 99th percentile's latency bucket (a power of two), 0 when none. */
    uint32_t p99_latency_ms;
} orch_breaker_stats;

/** n CLOSED breakers (NULL when out of memory); free with orch_breakers_free. */
orch_breakers *orch_breakers_new(const orch_breaker_config *cfg, int n);
void orch_breakers_free(orch_breakers *bs);
/** 1 when connector idx may be called now (HALF_OPEN: takes one of the trial slots). */
int orch_breaker_allow(orch_breakers *bs, int idx, uint64_t now_ms);
/** One call's result: answered (an approval or a decline) or not, and how long it took. */
void orch_breaker_record(orch_breakers *bs, int idx, int answered, uint64_t latency_ms,
                         uint64_t now_ms);
void orch_breaker_view(orch_breakers *bs, int idx, uint64_t now_ms, orch_breaker_stats *out);
/**
 * Sets m's gauges orchestration_connector_breaker_state_<name> (0 closed, 1
 * open, 2 half-open) and orchestration_connector_success_rate_bps_<name>
 * for connector idx, or every connector when idx is -1 (characters of
 * name other than letters and digits become '_'). On m's loop; NULL m is a
 * no-op.
 */
void orch_breakers_publish(const orch_state *s, struct pw_metrics *m, int idx, uint64_t now_ms);
/** A monotonic clock in milliseconds, the breakers' time. */
uint64_t orch_now_ms(void);

/* ---- routing.c ---- */

/** The connectors to try for a payment, best first (indexes into orch_state.connectors). */
typedef struct orch_route {
    int n;
    int idx[ORCH_MAX_CONNECTORS];
} orch_route;

/** Parses `connectors` ("name@host:port/cost_bps/cost_fixed_minor", comma-separated). */
pw_status orch_connectors_parse(orch_state *s, const char *spec, char *err, size_t err_len);
/** The connector called name, or -1. */
int orch_connector_find(const orch_state *s, const char *name);
/**
 * In the confirm's transaction: the first routing rule that matches the
 * payment (method card, currency, issuer country, amount) gives the ordered
 * connectors (all of them in configuration order when none matches);
 * cheapest_first orders them by cost, a split picks the first by a hash of
 * the payment id (the same payment always routes the same way); connectors
 * whose breaker refuses are left out.
 */
void orch_route_payment(svc_req *r, const char *payment_id, const char *currency,
                        const char *issuer_country, int64_t amount_minor, orch_route *out);
/** The split's pick for a payment id: FNV-1a of the id, mod 100. */
uint32_t orch_split_point(const char *payment_id);
/** Mounts RoutingService (ListConnectors, SetRoutingRules, GetRoutingRules). */
pw_status orch_register_routing(pw_server *server, svc_app *app);

/* ---- screening.c ---- */

/** What compliance's ScreenTransaction decided for a confirm. */
typedef enum orch_verdict {
    /** Not screened: the payment is past REQUIRES_CONFIRMATION (the confirm decides). */
    ORCH_VERDICT_NONE = 0,
    ORCH_VERDICT_ALLOW,
    ORCH_VERDICT_REVIEW,
    ORCH_VERDICT_BLOCK,
    /** Compliance unavailable and the policy is open: routed unscreened. */
    ORCH_VERDICT_UNSCREENED,
} orch_verdict;

/**
 * Screens payment_id at CONFIRM (outside any transaction), once its owner is
 * checked; without a compliance target ALLOW at once, nothing read (the
 * confirm's transaction checks the owner). The screening's id goes into
 * screening_id ("" when none). Ends
 * the handler UNAVAILABLE when compliance cannot answer and the policy is
 * closed.
 */
orch_verdict orch_screen_confirm(svc_req *r, const char *payment_id, char *screening_id,
                                 size_t cap);

/* ---- chain.c: on-chain payments ---- */

/** CreatePayment: the violations of an on-chain method (chain, token = the amount's currency). */
void orch_chain_check(svc_req *r, const Paywire__Orchestration__V1__CreatePaymentRequest *req);
/** In the create's transaction: the new payment's on-chain columns. */
void orch_chain_created(svc_req *r, const char *payment_id,
                        const Paywire__Orchestration__V1__OnChainMethod *m);
/** In the confirm's transaction: the deposit attempt (an open one is reused) into att_id. */
void orch_chain_attempt(svc_req *r, const char *payment_id, char *att_id, size_t cap);
/** After that commit: the address from chain-sim, recorded (REQUIRES_ACTION); on failure the
 * watcher asks again. */
void orch_chain_allocate(svc_req *r, const char *att_id, int chain, const char *token);
/** The Payment message's on-chain parts: method, deposits, next_action, amount_unapplied. */
void orch_chain_read(svc_req *r, Paywire__Orchestration__V1__Payment *p, svc_row row);
/** The chain watcher on worker 0's loop (chain.c); stop frees it once idle. */
pw_status orch_chain_watch_start(svc_app *app, uv_loop_t *loop, void **out);
void orch_chain_watch_stop(void *watch);

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
