/* payout.c: settlement destinations and webhook endpoints. */
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <protobuf-c/protobuf-c.h>
#include "merchant.h"

#define DST_COLS "id, merchant_id, destination, create_time"
#define WHK_COLS "id, merchant_id, url, event_types, enabled, create_time"

static const pw_db_stmt insert_dst = {
    "dst_insert",
    "INSERT INTO settlement_destinations (id, merchant_id, destination)"
    " SELECT $1, $2, $3 FROM merchants WHERE id = $2 AND state <> 'CLOSED' RETURNING " DST_COLS,
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA}};
static const pw_db_stmt list_dst = {
    "dst_list",
    "SELECT " DST_COLS " FROM settlement_destinations WHERE merchant_id = $1 AND id > $2"
    " AND removed_time IS NULL ORDER BY id LIMIT $3",
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};
static const pw_db_stmt remove_dst = {
    "dst_remove",
    "UPDATE settlement_destinations SET removed_time = coalesce(removed_time, now())"
    " WHERE id = $1 AND merchant_id = $2 RETURNING id",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt insert_whk = {
    "whk_insert",
    "INSERT INTO webhook_endpoints (id, merchant_id, url, event_types, secret_ciphertext)"
    " SELECT $1, $2, $3, $4, $5 FROM merchants WHERE id = $2 AND state <> 'CLOSED'"
    " RETURNING " WHK_COLS,
    5,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA}};
static const pw_db_stmt list_whk = {"whk_list",
                                    "SELECT " WHK_COLS
                                    " FROM webhook_endpoints WHERE merchant_id = $1 AND id > $2"
                                    " AND deleted_time IS NULL ORDER BY id LIMIT $3",
                                    3,
                                    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};
static const pw_db_stmt rotate_whk = {
    "whk_rotate",
    "UPDATE webhook_endpoints SET previous_secret_ciphertext = secret_ciphertext,"
    " previous_secret_until = now() + interval '24 hours', secret_ciphertext = $3"
    " WHERE id = $1 AND merchant_id = $2 AND deleted_time IS NULL RETURNING " WHK_COLS,
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA}};
static const pw_db_stmt targets_whk = {
    "whk_targets",
    "SELECT id, url, event_types, convert_from(secret_ciphertext, 'UTF8') AS secret,"
    " CASE WHEN previous_secret_until > now()"
    " THEN convert_from(previous_secret_ciphertext, 'UTF8') ELSE '' END AS previous_secret"
    " FROM webhook_endpoints WHERE merchant_id = $1 AND enabled AND deleted_time IS NULL"
    " ORDER BY seq LIMIT 100",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt delete_whk = {
    "whk_delete",
    "UPDATE webhook_endpoints SET deleted_time = coalesce(deleted_time, now()), enabled = false"
    " WHERE id = $1 AND merchant_id = $2 RETURNING id",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};

/* ---- destinations ---- */

static int digits_ok(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* ABA routing numbers: 9 digits, weights 3 7 1. */
static int aba_ok(const char *s)
{
    if (!digits_ok(s, 9, 9)) {
        return 0;
    }
    static const int w[9] = {3, 7, 1, 3, 7, 1, 3, 7, 1};
    int sum = 0;
    for (int i = 0; i < 9; i++) {
        sum += w[i] * (s[i] - '0');
    }
    return sum % 10 == 0;
}

static void check_destination(svc_req *r, const Destination *d)
{
    if (d == NULL) {
        svc_violation(r, "destination", "required: a bank_account or a wallet");
        return;
    }
    if (d->destination_case ==
        PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_BANK_ACCOUNT) {
        const Paywire__Merchant__V1__BankAccount *b = d->bank_account;
        if (!svc_text_ok(b->account_holder_name, 140)) {
            svc_violation(r, "destination.bank_account.account_holder_name",
                          "required: 1-140 characters");
        }
        if (!svc_country_ok(b->country)) {
            svc_violation(r, "destination.bank_account.country", "an ISO 3166-1 alpha-2 code");
        }
        if (!svc_currency_ok(b->currency)) {
            svc_violation(r, "destination.bank_account.currency", "an ISO 4217 code");
        }
        if (b->iban[0] != '\0') {
            if (!svc_iban_ok(b->iban)) {
                svc_violation(r, "destination.bank_account.iban",
                              "not a valid IBAN (length for its country and mod-97 check)");
            }
        } else if (strcmp(b->country, "US") == 0) {
            if (!digits_ok(b->account_number, 4, 17)) {
                svc_violation(r, "destination.bank_account.account_number", "4-17 digits");
            }
            if (!aba_ok(b->routing_code)) {
                svc_violation(r, "destination.bank_account.routing_code",
                              "not a valid ABA routing number");
            }
        } else if (!digits_ok(b->account_number, 4, 34) || !svc_text_ok(b->routing_code, 20)) {
            svc_violation(r, "destination.bank_account",
                          "an iban, or account_number (digits) and routing_code");
        }
    } else if (d->destination_case ==
               PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_WALLET) {
        const Paywire__Merchant__V1__Wallet *w = d->wallet;
        if (w->address == NULL || !svc_wallet_ok((int)w->address->chain, w->address->address)) {
            svc_violation(
                r, "destination.wallet.address",
                "not a valid address for its chain (EVM: 0x + 40 hex with a valid EIP-55 "
                "checksum if mixed case; Solana: base58 public key; Tron: base58check T...)");
        }
        if (!svc_currency_ok(w->token)) {
            svc_violation(r, "destination.wallet.token", "a token we support (USDC, USDT, ...)");
        }
    } else {
        svc_violation(r, "destination", "required: a bank_account or a wallet");
    }
}

static int listed(const char *list, const char *identity);

/* The stored form: account numbers sealed. The returned form: masked, except to the payout
 * readers (finance's payout job, an internal mTLS identity), who pay to them. */
static Destination *destination_from_row(svc_row row)
{
    svc_req *r = row.r;
    ProtobufCMessage *m = NULL;
    if (pw_call_unpack(r->call, svc_bytes(row, "destination"),
                       &paywire__merchant__v1__settlement_destination__descriptor, &m) != PW_OK) {
        svc_fail(r, PW_DATA_LOSS, "settlement destination %s cannot be read", svc_text(row, "id"));
    }
    /* Copies in call memory: the unpacked message's own fields are freed with it. */
    Destination *d = svc_alloc(r, sizeof(*d));
    *d = *(Destination *)m;
    d->id = svc_text(row, "id");
    d->merchant_id = svc_text(row, "merchant_id");
    d->create_time = svc_time(row, "create_time");
    if (d->destination_case !=
        PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_BANK_ACCOUNT) {
        return d;
    }
    Paywire__Merchant__V1__BankAccount *b = svc_alloc(r, sizeof(*b));
    *b = *d->bank_account;
    d->bank_account = b;
    const merchant_state *ms = r->app->service;
    int in_full = r->caller.internal && listed(ms->payout_readers, r->caller.identity);
    char **fields[] = {&b->iban, &b->account_number};
    for (int i = 0; i < 2; i++) {
        char plain[128];
        const char *sealed = *fields[i];
        *fields[i] = svc_strdup(r, "");
        if (sealed[0] != '\0' && svc_open(r->app->sealer, sealed, plain, sizeof(plain)) == PW_OK) {
            *fields[i] = in_full ? svc_strdup(r, plain) : masked(r, plain);
            OPENSSL_cleanse(plain, sizeof(plain));
        }
    }
    return d;
}

/* The destination as stored: no id, merchant or time (they are columns), account numbers
 * sealed, IBANs in their electronic form (no spaces, upper case). */
static pw_slice sealed_destination(svc_req *r, const Destination *in)
{
    Destination copy = *in;
    Paywire__Merchant__V1__BankAccount bank;
    char iban[256] = "", account[256] = "";
    if (copy.destination_case ==
        PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_BANK_ACCOUNT) {
        bank = *copy.bank_account;
        char compact[64];
        size_t k = 0;
        for (const char *c = bank.iban; *c && k + 1 < sizeof(compact); c++) {
            if (*c != ' ') {
                compact[k++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
            }
        }
        compact[k] = '\0';
        if ((compact[0] && svc_seal(r->app->sealer, compact, iban, sizeof(iban)) != PW_OK) ||
            (bank.account_number[0] &&
             svc_seal(r->app->sealer, bank.account_number, account, sizeof(account)) != PW_OK)) {
            svc_fail(r, PW_INTERNAL, "cannot seal the account number");
        }
        bank.iban = iban;
        bank.account_number = account;
        copy.bank_account = &bank;
    }
    copy.id = (char *)protobuf_c_empty_string;
    copy.merchant_id = (char *)protobuf_c_empty_string;
    copy.create_time = NULL;
    size_t len = protobuf_c_message_get_packed_size(&copy.base);
    uint8_t *bytes = svc_alloc(r, len);
    protobuf_c_message_pack(&copy.base, bytes);
    return pw_slice_make(bytes, len);
}

/* An insert that selects the merchant: no row means it does not exist or is closed. */
static svc_row inserted_for_open_merchant(svc_req *r, const pw_db_result *res)
{
    if (pw_db_rows(res) == 0) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "MERCHANT_CLOSED",
                        "merchant does not exist or is closed");
    }
    return svc_row_at(r, res, 0);
}

static void add_dst_tx(svc_req *r, const void *arg)
{
    const Paywire__Merchant__V1__AddSettlementDestinationRequest *req = arg;
    char id[40];
    pw_slice stored = sealed_destination(r, req->destination);
    if (svc_new_id("dst", id, sizeof(id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    pw_db_param p[] = {pw_db_text(id), pw_db_text(req->merchant_id),
                       pw_db_bytea(stored.base, stored.len)};
    svc_row row = inserted_for_open_merchant(r, svc_tx_query(r, &insert_dst, p, 3));
    Paywire__Merchant__V1__AddSettlementDestinationResponse resp =
        PAYWIRE__MERCHANT__V1__ADD_SETTLEMENT_DESTINATION_RESPONSE__INIT;
    resp.destination = destination_from_row(row);
    audit_event(r, "settlement_destination.added", resp.destination->id, "{}");
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(add_destination, Paywire__Merchant__V1__AddSettlementDestinationRequest)
{
    svc_authenticate(r, "settlement:write");
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    check_destination(r, req->destination);
    svc_check(r);
    svc_owns(r, req->merchant_id, "merchant");
    svc_idempotent(r, "AddSettlementDestination", req->idempotency_key,
                   &paywire__merchant__v1__add_settlement_destination_response__descriptor,
                   add_dst_tx, req);
}

/* Lists (destinations, webhooks): merchant id check, token, then a page plus one. */
static const pw_db_result *list_owned(svc_req *r, const char *merchant_id, const char *token,
                                      int want, const char *filter, const pw_db_stmt *stmt)
{
    char after[48];
    if (!svc_id_ok(merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    svc_page_token_read(r, token, filter, after, sizeof(after));
    svc_check(r);
    svc_owns(r, merchant_id, "merchant");
    pw_db_param p[] = {pw_db_text(merchant_id), pw_db_text(after), pw_db_int8(want + 1)};
    return svc_query(r, stmt, p, 3);
}

SVC_HANDLER(list_destinations, Paywire__Merchant__V1__ListSettlementDestinationsRequest)
{
    svc_authenticate(r, "settlement:read");
    int want = svc_page_size(req->page_size);
    const pw_db_result *res =
        list_owned(r, req->merchant_id, req->page_token, want, "dst", &list_dst);
    int rows = pw_db_rows(res), n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListSettlementDestinationsResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_SETTLEMENT_DESTINATIONS_RESPONSE__INIT;
    resp.destinations = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.destinations));
    for (int i = 0; i < n; i++) {
        resp.destinations[resp.n_destinations++] = destination_from_row(svc_row_at(r, res, i));
    }
    if (rows > want) {
        resp.next_page_token = svc_page_token(r, resp.destinations[n - 1]->id, "dst");
    }
    svc_reply(r, &resp.base);
}

/* Soft deletes (destinations, webhooks) share their shape: id + merchant, empty response. */
typedef struct removal {
    const pw_db_stmt *stmt;
    const char *id;
    const char *merchant_id;
    const char *what;
    const char *action;
    const ProtobufCMessageDescriptor *response_type;
} removal;

static void remove_tx(svc_req *r, const void *arg)
{
    const removal *rm = arg;
    pw_db_param p[] = {pw_db_text(rm->id), pw_db_text(rm->merchant_id)};
    svc_one(r, svc_tx_query(r, rm->stmt, p, 2), rm->what, rm->id);
    ProtobufCMessage *resp = svc_alloc(r, rm->response_type->sizeof_message);
    protobuf_c_message_init(rm->response_type, resp);
    audit_event(r, rm->action, rm->id, "{}");
    svc_commit(r, resp, NULL);
}

SVC_HANDLER(remove_destination, Paywire__Merchant__V1__RemoveSettlementDestinationRequest)
{
    svc_authenticate(r, "settlement:write");
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (!svc_id_ok(req->destination_id, "dst")) {
        svc_violation(r, "destination_id", "a destination id: \"dst_\" and 26 characters");
    }
    svc_check(r);
    svc_owns(r, req->merchant_id, "merchant");
    removal rm = {&remove_dst,
                  req->destination_id,
                  req->merchant_id,
                  "settlement destination",
                  "settlement_destination.removed",
                  &paywire__merchant__v1__remove_settlement_destination_response__descriptor};
    svc_idempotent(r, "RemoveSettlementDestination", req->idempotency_key, rm.response_type,
                   remove_tx, &rm);
}

/* ---- webhook endpoints ---- */

static WebhookEndpoint *endpoint_from_row(svc_row row)
{
    WebhookEndpoint *w = svc_alloc(row.r, sizeof(*w));
    paywire__merchant__v1__webhook_endpoint__init(w);
    w->id = svc_text(row, "id");
    w->merchant_id = svc_text(row, "merchant_id");
    w->url = svc_text(row, "url");
    w->event_types = split_csv(row.r, svc_text(row, "event_types"), &w->n_event_types);
    w->enabled = svc_bool(row, "enabled");
    w->create_time = svc_time(row, "create_time");
    return w;
}

/* A new signing secret: its sealed form for the row, the plain one for the response. */
typedef struct signing_secret {
    char plain[64];
    char sealed[256];
} signing_secret;

static void new_signing_secret(svc_req *r, signing_secret *s)
{
    if (svc_new_secret("whsec_", s->plain, sizeof(s->plain)) != PW_OK ||
        svc_seal(r->app->sealer, s->plain, s->sealed, sizeof(s->sealed)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create a signing secret");
    }
}

/* The plain secret for the response, in call memory; the stack copy is wiped. */
static char *hand_out(svc_req *r, signing_secret *s)
{
    char *out = svc_strdup(r, s->plain);
    OPENSSL_cleanse(s, sizeof(*s));
    return out;
}

static void create_whk_tx(svc_req *r, const void *arg)
{
    const Paywire__Merchant__V1__CreateWebhookEndpointRequest *req = arg;
    signing_secret s;
    char id[40];
    if (svc_new_id("whk", id, sizeof(id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    new_signing_secret(r, &s);
    pw_db_param p[] = {
        pw_db_text(id), pw_db_text(req->merchant_id), pw_db_text(req->endpoint->url),
        pw_db_text(join_csv(r, req->endpoint->event_types, req->endpoint->n_event_types)),
        pw_db_bytea(s.sealed, strlen(s.sealed))};
    svc_row row = inserted_for_open_merchant(r, svc_tx_query(r, &insert_whk, p, 5));
    Paywire__Merchant__V1__CreateWebhookEndpointResponse resp =
        PAYWIRE__MERCHANT__V1__CREATE_WEBHOOK_ENDPOINT_RESPONSE__INIT;
    resp.endpoint = endpoint_from_row(row);
    resp.signing_secret = hand_out(r, &s);
    /* What a retry gets: the endpoint, the secret withheld. */
    Paywire__Merchant__V1__CreateWebhookEndpointResponse stored = resp;
    stored.signing_secret = (char *)protobuf_c_empty_string;
    stored.secret_withheld = 1;
    audit_event(r, "webhook_endpoint.created", resp.endpoint->id, "{}");
    svc_commit(r, &resp.base, &stored.base);
}

/* http://127.0.0.1:<port>/…: a test or dev receiver, when webhook_loopback_http allows it. */
static int loopback_http(const char *url)
{
    const char *prefix = "http://127.0.0.1:";
    return svc_text_ok(url, 2048) && strncmp(url, prefix, strlen(prefix)) == 0 &&
           strchr(url, ' ') == NULL && strchr(url, '@') == NULL;
}

SVC_HANDLER(create_webhook, Paywire__Merchant__V1__CreateWebhookEndpointRequest)
{
    svc_authenticate(r, "webhooks:write");
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    const merchant_state *ms = r->app->service;
    if (req->endpoint == NULL ||
        !(svc_https_url_ok(req->endpoint->url, 1) ||
          (ms->webhook_loopback_http && loopback_http(req->endpoint->url)))) {
        svc_violation(r, "endpoint.url",
                      "a public https:// URL (no private, loopback or link-local hosts)");
    }
    for (size_t i = 0; req->endpoint != NULL && i < req->endpoint->n_event_types; i++) {
        const char *t = req->endpoint->event_types[i];
        if (!svc_text_ok(t, 64) || strchr(t, '.') == NULL || strchr(t, ',') != NULL) {
            char f[48];
            snprintf(f, sizeof(f), "endpoint.event_types[%zu]", i);
            svc_violation(r, f, "an event type such as \"payment.captured\"");
        }
    }
    svc_check(r);
    svc_owns(r, req->merchant_id, "merchant");
    svc_idempotent(r, "CreateWebhookEndpoint", req->idempotency_key,
                   &paywire__merchant__v1__create_webhook_endpoint_response__descriptor,
                   create_whk_tx, req);
}

SVC_HANDLER(list_webhooks, Paywire__Merchant__V1__ListWebhookEndpointsRequest)
{
    svc_authenticate(r, "webhooks:read");
    int want = svc_page_size(req->page_size);
    const pw_db_result *res =
        list_owned(r, req->merchant_id, req->page_token, want, "whk", &list_whk);
    int rows = pw_db_rows(res), n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListWebhookEndpointsResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_WEBHOOK_ENDPOINTS_RESPONSE__INIT;
    resp.endpoints = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.endpoints));
    for (int i = 0; i < n; i++) {
        resp.endpoints[resp.n_endpoints++] = endpoint_from_row(svc_row_at(r, res, i));
    }
    if (rows > want) {
        resp.next_page_token = svc_page_token(r, resp.endpoints[n - 1]->id, "whk");
    }
    svc_reply(r, &resp.base);
}

static void rotate_tx(svc_req *r, const void *arg)
{
    const Paywire__Merchant__V1__RotateWebhookSecretRequest *req = arg;
    signing_secret s;
    new_signing_secret(r, &s);
    pw_db_param p[] = {pw_db_text(req->endpoint_id), pw_db_text(req->merchant_id),
                       pw_db_bytea(s.sealed, strlen(s.sealed))};
    const pw_db_result *res = svc_tx_query(r, &rotate_whk, p, 3);
    if (pw_db_rows(res) == 0) {
        OPENSSL_cleanse(&s, sizeof(s));
        svc_fail(r, PW_NOT_FOUND, "webhook endpoint not found");
    }
    Paywire__Merchant__V1__RotateWebhookSecretResponse resp =
        PAYWIRE__MERCHANT__V1__ROTATE_WEBHOOK_SECRET_RESPONSE__INIT;
    resp.endpoint = endpoint_from_row(svc_row_at(r, res, 0));
    resp.signing_secret = hand_out(r, &s);
    Paywire__Merchant__V1__RotateWebhookSecretResponse stored = resp;
    stored.signing_secret = (char *)protobuf_c_empty_string;
    stored.secret_withheld = 1;
    audit_event(r, "webhook_endpoint.secret_rotated", resp.endpoint->id, "{}");
    svc_commit(r, &resp.base, &stored.base);
}

/* Rotate and delete name an endpoint of a merchant. */
static void check_endpoint_ref(svc_req *r, const char *merchant_id, const char *endpoint_id)
{
    if (!svc_id_ok(merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (!svc_id_ok(endpoint_id, "whk")) {
        svc_violation(r, "endpoint_id", "a webhook endpoint id: \"whk_\" and 26 characters");
    }
    svc_check(r);
    svc_owns(r, merchant_id, "merchant");
}

SVC_HANDLER(rotate_webhook, Paywire__Merchant__V1__RotateWebhookSecretRequest)
{
    svc_authenticate(r, "webhooks:write");
    check_endpoint_ref(r, req->merchant_id, req->endpoint_id);
    svc_idempotent(r, "RotateWebhookSecret", req->idempotency_key,
                   &paywire__merchant__v1__rotate_webhook_secret_response__descriptor, rotate_tx,
                   req);
}

SVC_HANDLER(delete_webhook, Paywire__Merchant__V1__DeleteWebhookEndpointRequest)
{
    svc_authenticate(r, "webhooks:write");
    check_endpoint_ref(r, req->merchant_id, req->endpoint_id);
    removal rm = {&delete_whk,
                  req->endpoint_id,
                  req->merchant_id,
                  "webhook endpoint",
                  "webhook_endpoint.deleted",
                  &paywire__merchant__v1__delete_webhook_endpoint_response__descriptor};
    svc_idempotent(r, "DeleteWebhookEndpoint", req->idempotency_key, rm.response_type, remove_tx,
                   &rm);
}

/* 1 when identity is one of the comma-separated list. */
static int listed(const char *list, const char *identity)
{
    size_t n = strlen(identity);
    for (const char *p = list; n > 0 && *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, identity, n) == 0) {
            return 1;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* The signer's view of a merchant's endpoints (orchestration): secrets opened, in call memory. */
SVC_HANDLER(get_webhook_targets, Paywire__Merchant__V1__GetWebhookTargetsRequest)
{
    svc_authenticate(r, NULL);
    const merchant_state *ms = r->app->service;
    if (!listed(ms->webhook_signers, r->caller.identity)) {
        svc_fail(r, PW_PERMISSION_DENIED,
                 "only the webhook signer (webhook_signers: %s) may read signing secrets, not %s",
                 ms->webhook_signers, r->caller.identity);
    }
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    svc_check(r);
    pw_db_param p = pw_db_text(req->merchant_id);
    const pw_db_result *res = svc_query(r, &targets_whk, &p, 1);
    int n = pw_db_rows(res);
    Paywire__Merchant__V1__GetWebhookTargetsResponse resp =
        PAYWIRE__MERCHANT__V1__GET_WEBHOOK_TARGETS_RESPONSE__INIT;
    resp.targets = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.targets));
    for (int i = 0; i < n; i++) {
        svc_row row = svc_row_at(r, res, i);
        Paywire__Merchant__V1__WebhookTarget *t = svc_alloc(r, sizeof(*t));
        paywire__merchant__v1__webhook_target__init(t);
        t->endpoint_id = svc_text(row, "id");
        t->url = svc_text(row, "url");
        t->event_types = split_csv(r, svc_text(row, "event_types"), &t->n_event_types);
        const char *sealed[] = {svc_text(row, "secret"), svc_text(row, "previous_secret")};
        char **plain[] = {&t->signing_secret, &t->previous_signing_secret};
        for (int k = 0; k < 2; k++) {
            char open[128] = "";
            if (sealed[k][0] != '\0' &&
                svc_open(r->app->sealer, sealed[k], open, sizeof(open)) != PW_OK) {
                svc_fail(r, PW_INTERNAL, "the signing secret of %s cannot be opened",
                         t->endpoint_id);
            }
            *plain[k] = svc_strdup(r, open);
            OPENSSL_cleanse(open, sizeof(open));
        }
        resp.targets[resp.n_targets++] = t;
    }
    svc_reply(r, &resp.base);
}

void payout_handlers_init(paywire_merchant_v1_merchant_service_handlers *h)
{
    h->add_settlement_destination = add_destination_h;
    h->list_settlement_destinations = list_destinations_h;
    h->remove_settlement_destination = remove_destination_h;
    h->create_webhook_endpoint = create_webhook_h;
    h->list_webhook_endpoints = list_webhooks_h;
    h->rotate_webhook_secret = rotate_webhook_h;
    h->delete_webhook_endpoint = delete_webhook_h;
    h->get_webhook_targets = get_webhook_targets_h;
}
