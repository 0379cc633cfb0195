#ifndef PAYWIRE_MERCHANT_H
#define PAYWIRE_MERCHANT_H

/* The merchant service (docs/design/merchant.md): shared between its files. */
#include "svc_req.h"
#include "paywire/merchant/v1/merchant.pw.h"

typedef Paywire__Merchant__V1__Merchant Merchant;
typedef Paywire__Merchant__V1__LegalEntity LegalEntity;
typedef Paywire__Merchant__V1__ApiKey ApiKey;
typedef Paywire__Merchant__V1__SettlementDestination Destination;
typedef Paywire__Merchant__V1__WebhookEndpoint WebhookEndpoint;

#define MERCHANT_DOMAIN "merchant.paywire"
#define DEFAULT_PAGE    50
#define MAX_PAGE        500

/* rows.c: statements' column lists and row → message conversions. */
#define MERCHANT_COLS                                                                              \
    "id, display_name, legal_entity, country, merchant_category_code, currencies, support_email, " \
    "website_url, state, state_reason, compliance_case_id, etag, create_time, update_time"
#define KEY_COLS                                                                            \
    "id, merchant_id, mode, scopes, description, secret_prefix, create_time, revoke_time, " \
    "last_used_time"

/** A Merchant from row (columns MERCHANT_COLS from col0), in call memory; tax id masked. */
Merchant *merchant_from_row(svc_req *r, const pw_db_result *res, int row, int col0);
ApiKey *api_key_from_row(svc_req *r, const pw_db_result *res, int row, int col0);
/** Splits "A,B,C" into call memory. */
char **split_csv(svc_req *r, const char *csv, size_t *n);
/** Joins n strings with commas into call memory. */
char *join_csv(svc_req *r, char *const *items, size_t n);
/** Protobuf Timestamp in call memory from microseconds since the epoch. */
Google__Protobuf__Timestamp *timestamp(svc_req *r, int64_t unix_us);
/** "MERCHANT_STATE_ACTIVE" ↔ "ACTIVE" as stored. */
const char *state_name(Paywire__Merchant__V1__MerchantState s);
Paywire__Merchant__V1__MerchantState state_from_name(const char *s);
/** Records an audit event for compliance's log in the current transaction (fire and forget). */
void audit_event(svc_req *r, const char *action, const char *subject_id, const char *detail_json);
/** Keyset page tokens: an opaque encoding of the last position and the filter. */
char *page_token(svc_req *r, const char *position, const char *filter);
/** Decodes a token; 0 (and a violation) when it is not ours or its filter differs. */
int page_token_read(svc_req *r, const char *token, const char *filter, char *position, size_t cap);
int page_size(int32_t requested);

/* merchants.c, keys.c, payout.c: handlers. */
void merchant_handlers_init(paywire_merchant_v1_merchant_service_handlers *h);
void keys_handlers_init(paywire_merchant_v1_merchant_service_handlers *h);
void payout_handlers_init(paywire_merchant_v1_merchant_service_handlers *h);
/** The svc_key_resolver of this service: api_keys in our own database. */
void resolve_key_locally(svc_req *r, const char *secret);

#endif
