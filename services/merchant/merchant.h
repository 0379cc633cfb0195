#ifndef PAYWIRE_MERCHANT_H
#define PAYWIRE_MERCHANT_H

/* The merchant service (docs/design/merchant.md): shared between its files. */
#include "svc_main.h"
#include "paywire/merchant/v1/merchant.pw.h"

typedef Paywire__Merchant__V1__Merchant Merchant;
typedef Paywire__Merchant__V1__LegalEntity LegalEntity;
typedef Paywire__Merchant__V1__ApiKey ApiKey;
typedef Paywire__Merchant__V1__SettlementDestination Destination;
typedef Paywire__Merchant__V1__WebhookEndpoint WebhookEndpoint;

#define MERCHANT_DOMAIN "merchant.paywire"

/* rows.c: statements' column lists and row → message conversions (columns read by name). */
#define MERCHANT_COLS                                                                              \
    "id, display_name, legal_entity, country, merchant_category_code, currencies, support_email, " \
    "website_url, state, state_reason, compliance_case_id, etag, create_time, update_time"
#define KEY_COLS                                                                            \
    "id, merchant_id, mode, scopes, description, secret_prefix, create_time, revoke_time, " \
    "last_used_time"

/** A Merchant from a row with the MERCHANT_COLS columns, in call memory; tax id masked. */
Merchant *merchant_from_row(svc_row row);
/** An ApiKey from a row with the KEY_COLS columns. */
ApiKey *api_key_from_row(svc_row row);
/** Splits "A,B,C" into call memory. */
char **split_csv(svc_req *r, const char *csv, size_t *n);
/** Joins n strings with commas into call memory. */
char *join_csv(svc_req *r, char *const *items, size_t n);
/** "****6789". */
char *masked(svc_req *r, const char *plain);
/** "MERCHANT_STATE_ACTIVE" ↔ "ACTIVE" as stored. */
const char *state_name(Paywire__Merchant__V1__MerchantState s);
Paywire__Merchant__V1__MerchantState state_from_name(const char *s);
/** Records an audit event for compliance's log in the current transaction (pipelined). */
void audit_event(svc_req *r, const char *action, const char *subject_id, const char *detail_json);

/* merchants.c, keys.c, payout.c: the handlers, one table for the generated stubs. */
void merchant_handlers_init(paywire_merchant_v1_merchant_service_handlers *h);
void keys_handlers_init(paywire_merchant_v1_merchant_service_handlers *h);
void payout_handlers_init(paywire_merchant_v1_merchant_service_handlers *h);
/** The process-wide state (svc_service.setup): the handler table and the settings handlers read. */
typedef struct merchant_state {
    paywire_merchant_v1_merchant_service_handlers handlers;
    /** webhook_loopback_http: endpoints may be http://127.0.0.1 (tests, development). */
    int webhook_loopback_http;
    /** compliance_target (KYB cases, GetCase at activation; "" unset) and our TLS files. */
    char compliance_target[256];
    char tls_cert[256];
    char tls_key[256];
    char tls_ca[256];
    /** webhook_signers: who may read signing secrets (comma-separated SPIFFE ids). */
    char webhook_signers[512];
    /** payout_readers: who gets account numbers in full (comma-separated SPIFFE ids). */
    char payout_readers[512];
} merchant_state;
/**
 * kyb.c: in CreateMerchant's transaction, the outbox row that opens merchant_id's KYB case in
 * compliance (its business as a Party; no tax id).
 */
void kyb_case_request(svc_req *r, const char *merchant_id, const Merchant *m);
/**
 * Returns when compliance's GetCase says case_id is an APPROVED KYB case of merchant_id;
 * otherwise ends with FAILED_PRECONDITION COMPLIANCE_NOT_APPROVED, or UNAVAILABLE when
 * compliance cannot answer (fail closed). Not in a transaction.
 */
void kyb_check_approved(svc_req *r, const char *merchant_id, const char *case_id);
/**
 * The kyb_outbox publisher to compliance_target (its own channel, our TLS identity), on loop;
 * *out is NULL when compliance_target is not set (a warning says cases wait). PW_OK, or the
 * channel's or the outbox's failure.
 */
typedef struct kyb_jobs kyb_jobs;
pw_status kyb_jobs_start(kyb_jobs **out, svc_app *app, uv_loop_t *loop, const svc_config *cfg);
/** Stops it (deliveries in flight end CANCELLED and are retried later); NULL is a no-op. */
void kyb_jobs_stop(kyb_jobs *k);
/** svc_service.setup and .register_services of the merchant service (merchants.c). */
pw_status merchant_setup(const svc_config *cfg, void **state, char *err, size_t err_len);
void merchant_teardown(void *state);
pw_status merchant_register(pw_server *server, svc_app *app);
/** audit.c: the merchant's own settings, and the audit outbox's publisher (svc_service jobs). */
extern const svc_setting merchant_settings[];
pw_status merchant_start_jobs(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs);
void merchant_stop_jobs(void *jobs);
/** The svc_key_resolver of this service: api_keys in our own database. */
void resolve_key_locally(svc_req *r, const char *secret);

#endif
