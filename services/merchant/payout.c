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

/* The stored form: account numbers sealed. The returned form: masked. */
static Destination *destination_from_row(svc_req *r, const pw_db_result *res, int row)
{
    const uint8_t *bytes;
    size_t len;
    ProtobufCMessage *m = NULL;
    if (pw_db_get_bytea(res, row, 2, &bytes, &len) != PW_OK ||
        pw_call_unpack(r->call, pw_slice_make(bytes, len),
                       &paywire__merchant__v1__settlement_destination__descriptor, &m) != PW_OK) {
        return NULL;
    }
    /* Copies in call memory: the unpacked message's own fields are freed with it. */
    Destination *d = svc_alloc(r, sizeof(*d));
    *d = *(Destination *)m;
    const char *s;
    size_t n;
    pw_db_get_text(res, row, 0, &s, &n);
    d->id = svc_strdup(r, s);
    pw_db_get_text(res, row, 1, &s, &n);
    d->merchant_id = svc_strdup(r, s);
    int64_t us;
    if (pw_db_get_timestamptz(res, row, 3, &us) == PW_OK) {
        d->create_time = timestamp(r, us);
    }
    if (d->destination_case ==
        PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_BANK_ACCOUNT) {
        Paywire__Merchant__V1__BankAccount *b = svc_alloc(r, sizeof(*b));
        *b = *d->bank_account;
        d->bank_account = b;
        char *fields[] = {b->iban, b->account_number};
        for (int i = 0; i < 2; i++) {
            char plain[128];
            char out[16] = "";
            if (fields[i][0] != '\0' &&
                svc_open(&r->app->sealer, fields[i], plain, sizeof(plain)) == PW_OK) {
                size_t pn = strlen(plain);
                snprintf(out, sizeof(out), "****%.4s", pn > 4 ? plain + pn - 4 : plain);
                OPENSSL_cleanse(plain, sizeof(plain));
            }
            if (i == 0) {
                b->iban = svc_strdup(r, out);
            } else {
                b->account_number = svc_strdup(r, out);
            }
        }
    }
    return d;
}

static void dst_inserted(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_rows(res) == 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "MERCHANT_CLOSED",
                  "merchant does not exist or is closed");
        return;
    }
    Paywire__Merchant__V1__AddSettlementDestinationResponse *resp = svc_alloc(r, sizeof(*resp));
    paywire__merchant__v1__add_settlement_destination_response__init(resp);
    resp->destination = destination_from_row(r, res, 0);
    audit_event(r, "settlement_destination.added", resp->destination->id, "{}");
    svc_commit(r, &resp->base, NULL);
}

static void add_dst_effect(svc_req *r)
{
    const Paywire__Merchant__V1__AddSettlementDestinationRequest *req = (const void *)r->request;
    char id[40];
    Destination copy = *req->destination;
    Paywire__Merchant__V1__BankAccount bank;
    char iban[256] = "", account[256] = "";
    if (copy.destination_case ==
        PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_BANK_ACCOUNT) {
        bank = *copy.bank_account;
        /* IBANs are kept in their electronic form: no spaces, upper case. */
        char compact[64];
        size_t k = 0;
        for (const char *c = bank.iban; *c && k + 1 < sizeof(compact); c++) {
            if (*c != ' ') {
                compact[k++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
            }
        }
        compact[k] = '\0';
        bank.iban = compact;
        if ((bank.iban[0] && svc_seal(&r->app->sealer, bank.iban, iban, sizeof(iban)) != PW_OK) ||
            (bank.account_number[0] &&
             svc_seal(&r->app->sealer, bank.account_number, account, sizeof(account)) != PW_OK)) {
            svc_abort(r, PW_INTERNAL, NULL, "cannot seal the account number");
            return;
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
    if (svc_new_id("dst", id, sizeof(id)) != PW_OK) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create an id");
        return;
    }
    pw_db_param p[] = {pw_db_text(id), pw_db_text(req->merchant_id), pw_db_bytea(bytes, len)};
    svc_tx_query(r, &insert_dst, p, 3, dst_inserted);
}

static void add_dst_authed(svc_req *r)
{
    const Paywire__Merchant__V1__AddSettlementDestinationRequest *req = (const void *)r->request;
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    check_destination(r, req->destination);
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant_id, "merchant")) {
        return;
    }
    svc_idempotent(r, "AddSettlementDestination", req->idempotency_key,
                   &paywire__merchant__v1__add_settlement_destination_response__descriptor,
                   add_dst_effect);
}

static void add_dst_h(pw_call *call,
                      const Paywire__Merchant__V1__AddSettlementDestinationRequest *req, void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "settlement:write", add_dst_authed);
    }
}

static void dst_listed(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    const Paywire__Merchant__V1__ListSettlementDestinationsRequest *req = (const void *)r->request;
    if (pw_db_status(res) != PW_OK) {
        svc_fail_db(r, res);
        return;
    }
    int want = page_size(req->page_size), rows = pw_db_rows(res), n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListSettlementDestinationsResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_SETTLEMENT_DESTINATIONS_RESPONSE__INIT;
    resp.destinations = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.destinations));
    for (int i = 0; i < n; i++) {
        resp.destinations[resp.n_destinations++] = destination_from_row(r, res, i);
    }
    if (rows > want) {
        resp.next_page_token = page_token(r, resp.destinations[n - 1]->id, "dst");
    }
    svc_reply(r, &resp.base);
}

/* Lists (destinations, webhooks): merchant id check, token, then the query. */
static void list_owned(svc_req *r, const char *merchant_id, const char *token, int32_t size,
                       const char *filter, const pw_db_stmt *stmt, pw_db_result_cb cb)
{
    char after[48];
    if (!svc_id_ok(merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    page_token_read(r, token, filter, after, sizeof(after));
    if (svc_fail_if_invalid(r) || !svc_owns(r, merchant_id, "merchant")) {
        return;
    }
    pw_db_param p[] = {pw_db_text(merchant_id), pw_db_text(after), pw_db_int8(page_size(size) + 1)};
    if (pw_db_query(r->app->pool, r->call, stmt, p, 3, cb, r) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot query");
    }
}

static void list_dst_authed(svc_req *r)
{
    const Paywire__Merchant__V1__ListSettlementDestinationsRequest *req = (const void *)r->request;
    list_owned(r, req->merchant_id, req->page_token, req->page_size, "dst", &list_dst, dst_listed);
}

static void list_dst_h(pw_call *call,
                       const Paywire__Merchant__V1__ListSettlementDestinationsRequest *req,
                       void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "settlement:read", list_dst_authed);
    }
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

static void removed(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    removal *rm = r->scratch;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_rows(res) == 0) {
        svc_abort(r, PW_NOT_FOUND, NULL, "%s %s not found", rm->what, rm->id);
        return;
    }
    ProtobufCMessage *resp = svc_alloc(r, rm->response_type->sizeof_message);
    protobuf_c_message_init(rm->response_type, resp);
    audit_event(r, rm->action, rm->id, "{}");
    svc_commit(r, resp, NULL);
}

static void remove_effect(svc_req *r)
{
    removal *rm = r->scratch;
    pw_db_param p[] = {pw_db_text(rm->id), pw_db_text(rm->merchant_id)};
    svc_tx_query(r, rm->stmt, p, 2, removed);
}

static void remove_dst_authed(svc_req *r)
{
    const Paywire__Merchant__V1__RemoveSettlementDestinationRequest *req = (const void *)r->request;
    removal *rm = svc_alloc(r, sizeof(*rm));
    *rm = (removal){&remove_dst,
                    req->destination_id,
                    req->merchant_id,
                    "settlement destination",
                    "settlement_destination.removed",
                    &paywire__merchant__v1__remove_settlement_destination_response__descriptor};
    r->scratch = rm;
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (!svc_id_ok(req->destination_id, "dst")) {
        svc_violation(r, "destination_id", "a destination id: \"dst_\" and 26 characters");
    }
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant_id, "merchant")) {
        return;
    }
    svc_idempotent(r, "RemoveSettlementDestination", req->idempotency_key, rm->response_type,
                   remove_effect);
}

static void remove_dst_h(pw_call *call,
                         const Paywire__Merchant__V1__RemoveSettlementDestinationRequest *req,
                         void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "settlement:write", remove_dst_authed);
    }
}

/* ---- webhook endpoints ---- */

static WebhookEndpoint *endpoint_from_row(svc_req *r, const pw_db_result *res, int row)
{
    WebhookEndpoint *w = svc_alloc(r, sizeof(*w));
    paywire__merchant__v1__webhook_endpoint__init(w);
    const char *s;
    size_t n;
    pw_db_get_text(res, row, 0, &s, &n);
    w->id = svc_strdup(r, s);
    pw_db_get_text(res, row, 1, &s, &n);
    w->merchant_id = svc_strdup(r, s);
    pw_db_get_text(res, row, 2, &s, &n);
    w->url = svc_strdup(r, s);
    pw_db_get_text(res, row, 3, &s, &n);
    w->event_types = split_csv(r, s, &w->n_event_types);
    int enabled = 0;
    pw_db_get_bool(res, row, 4, &enabled);
    w->enabled = enabled;
    int64_t us;
    if (pw_db_get_timestamptz(res, row, 5, &us) == PW_OK) {
        w->create_time = timestamp(r, us);
    }
    return w;
}

/* A new signing secret: its sealed form for the row, the plain one for the response. */
static int new_signing_secret(svc_req *r, char *plain, size_t plain_cap, char *sealed, size_t cap)
{
    return svc_new_secret("whsec_", plain, plain_cap) == PW_OK &&
           svc_seal(&r->app->sealer, plain, sealed, cap) == PW_OK;
}

typedef struct secret_scratch {
    char plain[64];
    char sealed[256];
} secret_scratch;

static void whk_answered(pw_db_result *res, void *ud, int create)
{
    svc_req *r = ud;
    secret_scratch *s = r->scratch;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_rows(res) == 0) {
        svc_abort(r, create ? PW_FAILED_PRECONDITION : PW_NOT_FOUND,
                  create ? "MERCHANT_CLOSED" : NULL, "%s",
                  create ? "merchant does not exist or is closed" : "webhook endpoint not found");
        return;
    }
    WebhookEndpoint *w = endpoint_from_row(r, res, 0);
    char *secret = svc_strdup(r, s->plain);
    OPENSSL_cleanse(s->plain, sizeof(s->plain));
    /* Create and rotate answer the same shape: endpoint, signing_secret, secret_withheld. */
    const ProtobufCMessageDescriptor *d =
        create ? &paywire__merchant__v1__create_webhook_endpoint_response__descriptor
               : &paywire__merchant__v1__rotate_webhook_secret_response__descriptor;
    Paywire__Merchant__V1__CreateWebhookEndpointResponse *resp = svc_alloc(r, d->sizeof_message);
    Paywire__Merchant__V1__CreateWebhookEndpointResponse *stored = svc_alloc(r, d->sizeof_message);
    protobuf_c_message_init(d, resp);
    resp->endpoint = w;
    resp->signing_secret = secret;
    *stored = *resp;
    stored->signing_secret = (char *)protobuf_c_empty_string;
    stored->secret_withheld = 1;
    audit_event(r, create ? "webhook_endpoint.created" : "webhook_endpoint.secret_rotated", w->id,
                "{}");
    svc_commit(r, &resp->base, &stored->base);
}

static void whk_created(pw_db_result *res, void *ud)
{
    whk_answered(res, ud, 1);
}

static void whk_rotated(pw_db_result *res, void *ud)
{
    whk_answered(res, ud, 0);
}

static void create_whk_effect(svc_req *r)
{
    const Paywire__Merchant__V1__CreateWebhookEndpointRequest *req = (const void *)r->request;
    secret_scratch *s = svc_alloc(r, sizeof(*s));
    r->scratch = s;
    char id[40];
    if (svc_new_id("whk", id, sizeof(id)) != PW_OK ||
        !new_signing_secret(r, s->plain, sizeof(s->plain), s->sealed, sizeof(s->sealed))) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create the endpoint's secret");
        return;
    }
    pw_db_param p[] = {
        pw_db_text(id), pw_db_text(req->merchant_id), pw_db_text(req->endpoint->url),
        pw_db_text(join_csv(r, req->endpoint->event_types, req->endpoint->n_event_types)),
        pw_db_bytea(s->sealed, strlen(s->sealed))};
    svc_tx_query(r, &insert_whk, p, 5, whk_created);
}

static void create_whk_authed(svc_req *r)
{
    const Paywire__Merchant__V1__CreateWebhookEndpointRequest *req = (const void *)r->request;
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (req->endpoint == NULL || !svc_https_url_ok(req->endpoint->url, 1)) {
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
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant_id, "merchant")) {
        return;
    }
    svc_idempotent(r, "CreateWebhookEndpoint", req->idempotency_key,
                   &paywire__merchant__v1__create_webhook_endpoint_response__descriptor,
                   create_whk_effect);
}

static void create_whk_h(pw_call *call,
                         const Paywire__Merchant__V1__CreateWebhookEndpointRequest *req, void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "webhooks:write", create_whk_authed);
    }
}

static void whk_listed(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    const Paywire__Merchant__V1__ListWebhookEndpointsRequest *req = (const void *)r->request;
    if (pw_db_status(res) != PW_OK) {
        svc_fail_db(r, res);
        return;
    }
    int want = page_size(req->page_size), rows = pw_db_rows(res), n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListWebhookEndpointsResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_WEBHOOK_ENDPOINTS_RESPONSE__INIT;
    resp.endpoints = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.endpoints));
    for (int i = 0; i < n; i++) {
        resp.endpoints[resp.n_endpoints++] = endpoint_from_row(r, res, i);
    }
    if (rows > want) {
        resp.next_page_token = page_token(r, resp.endpoints[n - 1]->id, "whk");
    }
    svc_reply(r, &resp.base);
}

static void list_whk_authed(svc_req *r)
{
    const Paywire__Merchant__V1__ListWebhookEndpointsRequest *req = (const void *)r->request;
    list_owned(r, req->merchant_id, req->page_token, req->page_size, "whk", &list_whk, whk_listed);
}

static void list_whk_h(pw_call *call, const Paywire__Merchant__V1__ListWebhookEndpointsRequest *req,
                       void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "webhooks:read", list_whk_authed);
    }
}

static void rotate_effect(svc_req *r)
{
    const Paywire__Merchant__V1__RotateWebhookSecretRequest *req = (const void *)r->request;
    secret_scratch *s = svc_alloc(r, sizeof(*s));
    r->scratch = s;
    if (!new_signing_secret(r, s->plain, sizeof(s->plain), s->sealed, sizeof(s->sealed))) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create a secret");
        return;
    }
    pw_db_param p[] = {pw_db_text(req->endpoint_id), pw_db_text(req->merchant_id),
                       pw_db_bytea(s->sealed, strlen(s->sealed))};
    svc_tx_query(r, &rotate_whk, p, 3, whk_rotated);
}

/* Rotate and delete name an endpoint of a merchant. */
static int check_endpoint_ref(svc_req *r, const char *merchant_id, const char *endpoint_id)
{
    if (!svc_id_ok(merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (!svc_id_ok(endpoint_id, "whk")) {
        svc_violation(r, "endpoint_id", "a webhook endpoint id: \"whk_\" and 26 characters");
    }
    return !svc_fail_if_invalid(r) && svc_owns(r, merchant_id, "merchant");
}

static void rotate_authed(svc_req *r)
{
    const Paywire__Merchant__V1__RotateWebhookSecretRequest *req = (const void *)r->request;
    if (check_endpoint_ref(r, req->merchant_id, req->endpoint_id)) {
        svc_idempotent(r, "RotateWebhookSecret", req->idempotency_key,
                       &paywire__merchant__v1__rotate_webhook_secret_response__descriptor,
                       rotate_effect);
    }
}

static void rotate_h(pw_call *call, const Paywire__Merchant__V1__RotateWebhookSecretRequest *req,
                     void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "webhooks:write", rotate_authed);
    }
}

static void delete_whk_authed(svc_req *r)
{
    const Paywire__Merchant__V1__DeleteWebhookEndpointRequest *req = (const void *)r->request;
    removal *rm = svc_alloc(r, sizeof(*rm));
    *rm = (removal){&delete_whk,
                    req->endpoint_id,
                    req->merchant_id,
                    "webhook endpoint",
                    "webhook_endpoint.deleted",
                    &paywire__merchant__v1__delete_webhook_endpoint_response__descriptor};
    r->scratch = rm;
    if (check_endpoint_ref(r, req->merchant_id, req->endpoint_id)) {
        svc_idempotent(r, "DeleteWebhookEndpoint", req->idempotency_key, rm->response_type,
                       remove_effect);
    }
}

static void delete_whk_h(pw_call *call,
                         const Paywire__Merchant__V1__DeleteWebhookEndpointRequest *req, void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "webhooks:write", delete_whk_authed);
    }
}

void payout_handlers_init(paywire_merchant_v1_merchant_service_handlers *h)
{
    h->add_settlement_destination = add_dst_h;
    h->list_settlement_destinations = list_dst_h;
    h->remove_settlement_destination = remove_dst_h;
    h->create_webhook_endpoint = create_whk_h;
    h->list_webhook_endpoints = list_whk_h;
    h->rotate_webhook_secret = rotate_h;
    h->delete_webhook_endpoint = delete_whk_h;
}
