/* merchants.c: onboarding, profile and lifecycle (docs/design/merchant.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include "merchant.h"

#define FIELD_MASK_MAX 8

static const pw_db_stmt insert_merchant = {
    "merchant_insert",
    "INSERT INTO merchants (id, display_name, legal_entity, country, merchant_category_code,"
    " currencies, support_email, website_url, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
    " 'PENDING_REVIEW') RETURNING " MERCHANT_COLS,
    8,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT,
     PW_DB_TEXT}};
static const pw_db_stmt select_merchant = {
    "merchant_select", "SELECT " MERCHANT_COLS " FROM merchants WHERE id = $1", 1, {PW_DB_TEXT}};
static const pw_db_stmt lock_merchant = {"merchant_lock",
                                         "SELECT " MERCHANT_COLS
                                         " FROM merchants WHERE id = $1 FOR UPDATE",
                                         1,
                                         {PW_DB_TEXT}};
static const pw_db_stmt update_merchant = {
    "merchant_update",
    "UPDATE merchants SET display_name = $2, legal_entity = $3, merchant_category_code = $4,"
    " currencies = $5, support_email = $6, website_url = $7, etag = etag + 1, update_time = now()"
    " WHERE id = $1 RETURNING " MERCHANT_COLS,
    7,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt transition_merchant = {
    "merchant_transition",
    "UPDATE merchants SET state = $2, state_reason = $3, compliance_case_id ="
    " CASE WHEN $4 = '' THEN compliance_case_id ELSE $4 END, etag = etag + 1, update_time = now()"
    " WHERE id = $1 RETURNING " MERCHANT_COLS,
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt list_merchants = {
    "merchant_list",
    "SELECT seq, " MERCHANT_COLS " FROM merchants WHERE ($1 = '' OR state = $1) AND seq < $2"
    " ORDER BY seq DESC LIMIT $3",
    3,
    {PW_DB_TEXT, PW_DB_INT8, PW_DB_INT8}};

/* ---- validation ---- */

static int in_paths(char *const *paths, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(paths[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int mcc_ok(const char *s)
{
    if (s == NULL || strlen(s) != 4 || strcmp(s, "0000") == 0) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

static void check_legal_entity(svc_req *r, const LegalEntity *e, const char *path)
{
    char f[96];
    if (e == NULL) {
        snprintf(f, sizeof(f), "%s", path);
        svc_violation(r, f, "required");
        return;
    }
    if (!svc_text_ok(e->legal_name, 200)) {
        snprintf(f, sizeof(f), "%s.legal_name", path);
        svc_violation(r, f, "required: 1-200 characters");
    }
    if (e->entity_type == PAYWIRE__MERCHANT__V1__ENTITY_TYPE__ENTITY_TYPE_UNSPECIFIED) {
        snprintf(f, sizeof(f), "%s.entity_type", path);
        svc_violation(r, f, "required");
    }
    if (e->registration_number[0] != '\0' && !svc_text_ok(e->registration_number, 64)) {
        snprintf(f, sizeof(f), "%s.registration_number", path);
        svc_violation(r, f, "at most 64 characters");
    }
    if (e->tax_id[0] != '\0' && (!svc_text_ok(e->tax_id, 64) || strchr(e->tax_id, '*'))) {
        snprintf(f, sizeof(f), "%s.tax_id", path);
        svc_violation(r, f, "at most 64 characters, not a masked value");
    }
    if (e->registered_address == NULL || !svc_country_ok(e->registered_address->country)) {
        snprintf(f, sizeof(f), "%s.registered_address.country", path);
        svc_violation(r, f, "required: an ISO 3166-1 alpha-2 code such as \"DE\"");
    }
}

static void check_currencies(svc_req *r, char *const *cur, size_t n)
{
    if (n == 0) {
        svc_violation(r, "merchant.currencies", "at least one ISO 4217 code or token symbol");
    }
    for (size_t i = 0; i < n; i++) {
        char f[48];
        snprintf(f, sizeof(f), "merchant.currencies[%zu]", i);
        if (!svc_currency_ok(cur[i])) {
            svc_violation(r, f, "not a currency we know (ISO 4217 like \"USD\", or \"USDC\")");
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(cur[k], cur[i]) == 0) {
                svc_violation(r, f, "listed twice");
            }
        }
    }
}

static void check_profile(svc_req *r, const Merchant *m, int all, char *const *paths, size_t npaths)
{
#define WANT(name) (all || in_paths(paths, npaths, name))
    if (WANT("display_name") && !svc_text_ok(m->display_name, 100)) {
        svc_violation(r, "merchant.display_name", "required: 1-100 characters");
    }
    if (WANT("legal_entity")) {
        check_legal_entity(r, m->legal_entity, "merchant.legal_entity");
    }
    if (all && !svc_country_ok(m->country)) {
        svc_violation(r, "merchant.country", "required: an ISO 3166-1 alpha-2 code such as \"DE\"");
    }
    if (WANT("merchant_category_code") && !mcc_ok(m->merchant_category_code)) {
        svc_violation(r, "merchant.merchant_category_code", "required: four digits (ISO 18245)");
    }
    if (WANT("currencies")) {
        check_currencies(r, m->currencies, m->n_currencies);
    }
    if (WANT("support_email") && m->support_email[0] != '\0' && !svc_email_ok(m->support_email)) {
        svc_violation(r, "merchant.support_email", "not an e-mail address");
    }
    if (WANT("website_url") && m->website_url[0] != '\0' && !svc_https_url_ok(m->website_url, 1)) {
        svc_violation(r, "merchant.website_url", "must be a public https:// URL");
    }
#undef WANT
}

/* The stored legal entity: packed, with the tax id sealed. */
static uint8_t *seal_entity(svc_req *r, const LegalEntity *e, size_t *len)
{
    LegalEntity copy = *e;
    char sealed[256] = "";
    if (e->tax_id[0] != '\0' &&
        svc_seal(r->app->sealer, e->tax_id, sealed, sizeof(sealed)) != PW_OK) {
        return NULL;
    }
    copy.tax_id = sealed;
    *len = protobuf_c_message_get_packed_size(&copy.base);
    uint8_t *out = svc_alloc(r, *len);
    protobuf_c_message_pack(&copy.base, out);
    return out;
}

/* ---- create ---- */

static void create_tx(svc_req *r, const void *arg)
{
    const Merchant *m = arg;
    char id[40];
    size_t le_len;
    uint8_t *le = seal_entity(r, m->legal_entity, &le_len);
    if (svc_new_id("mer", id, sizeof(id)) != PW_OK || le == NULL) {
        svc_fail(r, PW_INTERNAL, "cannot create an id or seal the tax id");
    }
    pw_db_param p[] = {pw_db_text(id),
                       pw_db_text(m->display_name),
                       pw_db_bytea(le, le_len),
                       pw_db_text(m->country),
                       pw_db_text(m->merchant_category_code),
                       pw_db_text(join_csv(r, m->currencies, m->n_currencies)),
                       pw_db_text(m->support_email),
                       pw_db_text(m->website_url)};
    Paywire__Merchant__V1__CreateMerchantResponse resp =
        PAYWIRE__MERCHANT__V1__CREATE_MERCHANT_RESPONSE__INIT;
    resp.merchant = merchant_from_row(svc_row_at(r, svc_tx_query(r, &insert_merchant, p, 8), 0));
    audit_event(r, "merchant.created", resp.merchant->id, "{}");
    kyb_case_request(r, resp.merchant->id, m);
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(create_merchant, Paywire__Merchant__V1__CreateMerchantRequest)
{
    svc_authenticate(r, NULL); /* onboarding backends only */
    if (req->merchant == NULL) {
        svc_violation(r, "merchant", "required");
    } else {
        check_profile(r, req->merchant, 1, NULL, 0);
    }
    svc_check(r);
    svc_idempotent(r, "CreateMerchant", req->idempotency_key,
                   &paywire__merchant__v1__create_merchant_response__descriptor, create_tx,
                   req->merchant);
}

/* ---- get ---- */

SVC_HANDLER(get_merchant, Paywire__Merchant__V1__GetMerchantRequest)
{
    svc_authenticate(r, "merchants:read");
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    svc_check(r);
    svc_owns(r, req->merchant_id, "merchant");
    pw_db_param p = pw_db_text(req->merchant_id);
    const pw_db_result *res = svc_query(r, &select_merchant, &p, 1);
    if (pw_db_rows(res) == 0) {
        pw_error_set_resource(&r->details, "paywire.merchant.v1.Merchant", req->merchant_id, NULL,
                              NULL);
        svc_fail(r, PW_NOT_FOUND, "merchant %s not found", req->merchant_id);
    }
    Paywire__Merchant__V1__GetMerchantResponse resp =
        PAYWIRE__MERCHANT__V1__GET_MERCHANT_RESPONSE__INIT;
    resp.merchant = merchant_from_row(svc_row_at(r, res, 0));
    svc_reply(r, &resp.base);
}

/* ---- list ---- */

SVC_HANDLER(list_merchants_rpc, Paywire__Merchant__V1__ListMerchantsRequest)
{
    svc_authenticate(r, NULL);
    char pos[32];
    if (req->page_size < 0) {
        svc_violation(r, "page_size", "must not be negative");
    }
    svc_page_token_read(r, req->page_token, state_name(req->state), pos, sizeof(pos));
    svc_check(r);
    int want = svc_page_size(req->page_size);
    pw_db_param p[] = {pw_db_text(state_name(req->state)),
                       pw_db_int8(pos[0] ? strtoll(pos, NULL, 10) : INT64_MAX),
                       pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &list_merchants, p, 3);
    int rows = pw_db_rows(res);
    int n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListMerchantsResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_MERCHANTS_RESPONSE__INIT;
    resp.merchants = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.merchants));
    for (int i = 0; i < n; i++) {
        resp.merchants[i] = merchant_from_row(svc_row_at(r, res, i));
    }
    resp.n_merchants = (size_t)n;
    if (rows > want) {
        snprintf(pos, sizeof(pos), "%lld", (long long)svc_int64(svc_row_at(r, res, n - 1), "seq"));
        resp.next_page_token = svc_page_token(r, pos, state_name(req->state));
    }
    svc_reply(r, &resp.base);
}

/* ---- update ---- */

static const char *const updatable[] = {"display_name", "legal_entity",  "merchant_category_code",
                                        "currencies",   "support_email", "website_url"};

static void check_update(svc_req *r, const Paywire__Merchant__V1__UpdateMerchantRequest *req)
{
    if (req->merchant == NULL || !svc_id_ok(req->merchant->id, "mer")) {
        svc_violation(r, "merchant.id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (req->update_mask == NULL || req->update_mask->n_paths == 0) {
        svc_violation(r, "update_mask", "name the fields to change (e.g. \"display_name\")");
        return;
    }
    for (size_t i = 0; i < req->update_mask->n_paths; i++) {
        const char *p = req->update_mask->paths[i];
        int ok = 0;
        for (size_t k = 0; k < sizeof(updatable) / sizeof(updatable[0]); k++) {
            ok |= strcmp(p, updatable[k]) == 0;
        }
        if (!ok) {
            char desc[256];
            snprintf(desc, sizeof(desc),
                     "\"%.40s\" cannot be updated (updatable: display_name, legal_entity, "
                     "merchant_category_code, currencies, support_email, website_url)",
                     p);
            svc_violation(r, "update_mask", desc);
        }
    }
    if (req->merchant != NULL) {
        check_profile(r, req->merchant, 0, req->update_mask->paths, req->update_mask->n_paths);
    }
}

/* Locks the current row and applies the mask on top of it. */
static void update_tx(svc_req *r, const void *arg)
{
    const Paywire__Merchant__V1__UpdateMerchantRequest *req = arg;
    const Merchant *m = req->merchant;
    pw_db_param id = pw_db_text(m->id);
    svc_row row = svc_one(r, svc_tx_query(r, &lock_merchant, &id, 1), "merchant", m->id);
    Merchant *cur = merchant_from_row(row);
    if (req->etag[0] != '\0' && strcmp(req->etag, cur->etag) != 0) {
        svc_fail_reason(r, PW_ABORTED, "ETAG_MISMATCH",
                        "merchant %s changed since you read it (etag %s, now %s); read it again",
                        cur->id, req->etag, cur->etag);
    }
    char *const *paths = req->update_mask->paths;
    size_t np = req->update_mask->n_paths;
    if (in_paths(paths, np, "legal_entity") &&
        cur->state != PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_PENDING_REVIEW) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "LEGAL_ENTITY_LOCKED",
                        "the legal entity of merchant %s cannot change after activation", cur->id);
    }
    pw_slice le = svc_bytes(row, "legal_entity"); /* unchanged unless in the mask: stays sealed */
    size_t le_len = le.len;
    const uint8_t *le_bytes =
        in_paths(paths, np, "legal_entity") ? seal_entity(r, m->legal_entity, &le_len) : le.base;
    const char *currencies = in_paths(paths, np, "currencies")
                                 ? join_csv(r, m->currencies, m->n_currencies)
                                 : join_csv(r, cur->currencies, cur->n_currencies);
#define PICK(f) (in_paths(paths, np, #f) ? m->f : cur->f)
    pw_db_param p[] = {pw_db_text(cur->id),           pw_db_text(PICK(display_name)),
                       pw_db_bytea(le_bytes, le_len), pw_db_text(PICK(merchant_category_code)),
                       pw_db_text(currencies),        pw_db_text(PICK(support_email)),
                       pw_db_text(PICK(website_url))};
#undef PICK
    Paywire__Merchant__V1__UpdateMerchantResponse resp =
        PAYWIRE__MERCHANT__V1__UPDATE_MERCHANT_RESPONSE__INIT;
    resp.merchant = merchant_from_row(svc_row_at(r, svc_tx_query(r, &update_merchant, p, 7), 0));
    audit_event(r, "merchant.updated", resp.merchant->id, "{}");
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(update_merchant_rpc, Paywire__Merchant__V1__UpdateMerchantRequest)
{
    svc_authenticate(r, "merchants:write");
    check_update(r, req);
    svc_check(r);
    svc_owns(r, req->merchant->id, "merchant");
    svc_idempotent(r, "UpdateMerchant", req->idempotency_key,
                   &paywire__merchant__v1__update_merchant_response__descriptor, update_tx, req);
}

/* ---- lifecycle ---- */

/* A transition: the states it may leave from, its target, and what its request must carry. */
typedef struct transition {
    const char *method;
    const char *action;
    Paywire__Merchant__V1__MerchantState to;
    unsigned from_mask; /* bit per MerchantState */
    int needs_reason;
    int needs_case;
    const ProtobufCMessageDescriptor *response_type;
} transition;

#define ST(x)  PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_##x
#define BIT(x) (1u << ST(x))

static const transition activate_t = {
    "ActivateMerchant",
    "merchant.activated",
    ST(ACTIVE),
    BIT(PENDING_REVIEW),
    0,
    1,
    &paywire__merchant__v1__activate_merchant_response__descriptor};
static const transition suspend_t = {"SuspendMerchant",
                                     "merchant.suspended",
                                     ST(SUSPENDED),
                                     BIT(ACTIVE),
                                     1,
                                     0,
                                     &paywire__merchant__v1__suspend_merchant_response__descriptor};
static const transition reinstate_t = {
    "ReinstateMerchant",
    "merchant.reinstated",
    ST(ACTIVE),
    BIT(SUSPENDED),
    0,
    0,
    &paywire__merchant__v1__reinstate_merchant_response__descriptor};
static const transition close_t = {"CloseMerchant",
                                   "merchant.closed",
                                   ST(CLOSED),
                                   BIT(PENDING_REVIEW) | BIT(ACTIVE) | BIT(SUSPENDED),
                                   1,
                                   0,
                                   &paywire__merchant__v1__close_merchant_response__descriptor};

/* What every lifecycle request carries. */
typedef struct lifecycle_args {
    const transition *t;
    const char *key;
    const char *merchant_id;
    const char *reason;
    const char *case_id;
} lifecycle_args;

static const char *from_names(unsigned mask)
{
    return mask == BIT(PENDING_REVIEW) ? "PENDING_REVIEW"
           : mask == BIT(ACTIVE)       ? "ACTIVE"
           : mask == BIT(SUSPENDED)    ? "SUSPENDED"
                                       : "not CLOSED";
}

static void lifecycle_tx(svc_req *r, const void *arg)
{
    const lifecycle_args *a = arg;
    pw_db_param id = pw_db_text(a->merchant_id);
    svc_row row = svc_one(r, svc_tx_query(r, &lock_merchant, &id, 1), "merchant", a->merchant_id);
    Merchant *cur = merchant_from_row(row);
    if (!(a->t->from_mask & (1u << cur->state))) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "INVALID_STATE_TRANSITION",
                        "merchant %s is %s; %s needs it to be %s", cur->id, state_name(cur->state),
                        a->t->method, from_names(a->t->from_mask));
    }
    pw_db_param p[] = {pw_db_text(a->merchant_id), pw_db_text(state_name(a->t->to)),
                       pw_db_text(a->reason), pw_db_text(a->case_id)};
    Merchant *m = merchant_from_row(svc_row_at(r, svc_tx_query(r, &transition_merchant, p, 4), 0));
    /* Every lifecycle response is { Merchant merchant = 1; }. */
    ProtobufCMessage *resp = svc_alloc(r, a->t->response_type->sizeof_message);
    protobuf_c_message_init(a->t->response_type, resp);
    *(Merchant **)((uint8_t *)resp + a->t->response_type->fields[0].offset) = m;
    char detail[400];
    snprintf(detail, sizeof(detail), "{\"to\": \"%s\", \"reason_length\": %zu}",
             state_name(a->t->to), strlen(a->reason));
    audit_event(r, a->t->action, m->id, detail);
    svc_commit(r, resp, NULL);
}

static void lifecycle(svc_req *r, lifecycle_args a)
{
    svc_authenticate(r, NULL); /* internal: operators and compliance */
    if (!svc_id_ok(a.merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (a.t->needs_reason && !svc_text_ok(a.reason, 500)) {
        svc_violation(r, "reason", "required: 1-500 characters (kept in the audit log)");
    } else if (!a.t->needs_reason && a.reason[0] != '\0' && !svc_text_ok(a.reason, 500)) {
        svc_violation(r, "reason", "at most 500 characters");
    }
    if (a.t->needs_case && !svc_text_ok(a.case_id, 64)) {
        svc_violation(r, "compliance_case_id", "required: the approved compliance case");
    }
    svc_check(r);
    if (a.t->needs_case) {
        /* Asked before the transaction (no call inside one): compliance's own answer. */
        kyb_check_approved(r, a.merchant_id, a.case_id);
    }
    svc_idempotent(r, a.t->method, a.key, a.t->response_type, lifecycle_tx, &a);
}

SVC_HANDLER(activate, Paywire__Merchant__V1__ActivateMerchantRequest)
{
    lifecycle(r, (lifecycle_args){&activate_t, req->idempotency_key, req->merchant_id, "",
                                  req->compliance_case_id});
}

SVC_HANDLER(suspend, Paywire__Merchant__V1__SuspendMerchantRequest)
{
    lifecycle(
        r, (lifecycle_args){&suspend_t, req->idempotency_key, req->merchant_id, req->reason, ""});
}

SVC_HANDLER(reinstate, Paywire__Merchant__V1__ReinstateMerchantRequest)
{
    lifecycle(
        r, (lifecycle_args){&reinstate_t, req->idempotency_key, req->merchant_id, req->reason, ""});
}

SVC_HANDLER(close_merchant, Paywire__Merchant__V1__CloseMerchantRequest)
{
    lifecycle(r,
              (lifecycle_args){&close_t, req->idempotency_key, req->merchant_id, req->reason, ""});
}

void merchant_handlers_init(paywire_merchant_v1_merchant_service_handlers *h)
{
    h->create_merchant = create_merchant_h;
    h->get_merchant = get_merchant_h;
    h->list_merchants = list_merchants_rpc_h;
    h->update_merchant = update_merchant_rpc_h;
    h->activate_merchant = activate_h;
    h->suspend_merchant = suspend_h;
    h->reinstate_merchant = reinstate_h;
    h->close_merchant = close_merchant_h;
}

/* ---- the service ---- */

pw_status merchant_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    merchant_state *s = pw_calloc(1, sizeof(*s));
    merchant_handlers_init(&s->handlers);
    keys_handlers_init(&s->handlers);
    payout_handlers_init(&s->handlers);
    s->webhook_loopback_http = (int)svc_config_int(cfg, "webhook_loopback_http");
    const char *v[] = {svc_config_text(cfg, "compliance_target"), svc_config_text(cfg, "tls_cert"),
                       svc_config_text(cfg, "tls_key"), svc_config_text(cfg, "tls_ca")};
    char *out[] = {s->compliance_target, s->tls_cert, s->tls_key, s->tls_ca};
    for (int i = 0; i < 4; i++) {
        snprintf(out[i], sizeof(s->tls_ca), "%s", v[i] ? v[i] : "");
    }
    const char *signers = svc_config_text(cfg, "webhook_signers");
    snprintf(s->webhook_signers, sizeof(s->webhook_signers), "%s", signers ? signers : "");
    const char *readers = svc_config_text(cfg, "payout_readers");
    snprintf(s->payout_readers, sizeof(s->payout_readers), "%s", readers ? readers : "");
    *state = s;
    return PW_OK;
}

void merchant_teardown(void *state)
{
    pw_free(state);
}

pw_status merchant_register(pw_server *server, svc_app *app)
{
    merchant_state *s = app->service;
    return paywire_merchant_v1_merchant_service_register(server, &s->handlers, app);
}
