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
static const pw_db_stmt case_approved = {
    "merchant_case_approved",
    "SELECT 1 FROM approved_compliance_cases WHERE case_id = $1 AND merchant_id = $2",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};

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
        svc_seal(&r->app->sealer, e->tax_id, sealed, sizeof(sealed)) != PW_OK) {
        return NULL;
    }
    copy.tax_id = sealed;
    *len = protobuf_c_message_get_packed_size(&copy.base);
    uint8_t *out = svc_alloc(r, *len);
    if (out != NULL) {
        protobuf_c_message_pack(&copy.base, out);
    }
    return out;
}

/* ---- create ---- */

static void created(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    Paywire__Merchant__V1__CreateMerchantResponse *resp = svc_alloc(r, sizeof(*resp));
    paywire__merchant__v1__create_merchant_response__init(resp);
    resp->merchant = merchant_from_row(r, res, 0, 0);
    audit_event(r, "merchant.created", resp->merchant->id, "{}");
    svc_commit(r, &resp->base, NULL);
}

static void create_effect(svc_req *r)
{
    const Paywire__Merchant__V1__CreateMerchantRequest *req = (const void *)r->request;
    const Merchant *m = req->merchant;
    char id[40];
    size_t le_len;
    uint8_t *le = seal_entity(r, m->legal_entity, &le_len);
    if (svc_new_id("mer", id, sizeof(id)) != PW_OK || le == NULL) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create an id or seal the tax id");
        return;
    }
    pw_db_param p[] = {pw_db_text(id),
                       pw_db_text(m->display_name),
                       pw_db_bytea(le, le_len),
                       pw_db_text(m->country),
                       pw_db_text(m->merchant_category_code),
                       pw_db_text(join_csv(r, m->currencies, m->n_currencies)),
                       pw_db_text(m->support_email),
                       pw_db_text(m->website_url)};
    svc_tx_query(r, &insert_merchant, p, 8, created);
}

static void create_authed(svc_req *r)
{
    const Paywire__Merchant__V1__CreateMerchantRequest *req = (const void *)r->request;
    if (req->merchant == NULL) {
        svc_violation(r, "merchant", "required");
    } else {
        check_profile(r, req->merchant, 1, NULL, 0);
    }
    if (svc_fail_if_invalid(r)) {
        return;
    }
    svc_idempotent(r, "CreateMerchant", req->idempotency_key,
                   &paywire__merchant__v1__create_merchant_response__descriptor, create_effect);
}

static void create_merchant(pw_call *call, const Paywire__Merchant__V1__CreateMerchantRequest *req,
                            void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, NULL, create_authed); /* onboarding backends only */
    }
}

/* ---- get ---- */

static void got(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    if (pw_db_status(res) != PW_OK) {
        svc_fail_db(r, res);
        return;
    }
    const Paywire__Merchant__V1__GetMerchantRequest *req = (const void *)r->request;
    if (pw_db_rows(res) == 0) {
        pw_error_set_resource(&r->details, "paywire.merchant.v1.Merchant", req->merchant_id, NULL,
                              NULL);
        svc_fail(r, PW_NOT_FOUND, "merchant %s not found", req->merchant_id);
        return;
    }
    Paywire__Merchant__V1__GetMerchantResponse resp =
        PAYWIRE__MERCHANT__V1__GET_MERCHANT_RESPONSE__INIT;
    resp.merchant = merchant_from_row(r, res, 0, 0);
    svc_reply(r, &resp.base);
}

static void get_authed(svc_req *r)
{
    const Paywire__Merchant__V1__GetMerchantRequest *req = (const void *)r->request;
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant_id, "merchant")) {
        return;
    }
    pw_db_param p = pw_db_text(req->merchant_id);
    if (pw_db_query(r->app->pool, r->call, &select_merchant, &p, 1, got, r) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot query");
    }
}

static void get_merchant(pw_call *call, const Paywire__Merchant__V1__GetMerchantRequest *req,
                         void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "merchants:read", get_authed);
    }
}

/* ---- list ---- */

static void listed(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    if (pw_db_status(res) != PW_OK) {
        svc_fail_db(r, res);
        return;
    }
    const Paywire__Merchant__V1__ListMerchantsRequest *req = (const void *)r->request;
    int want = page_size(req->page_size);
    int rows = pw_db_rows(res);
    int n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListMerchantsResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_MERCHANTS_RESPONSE__INIT;
    resp.merchants = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.merchants));
    for (int i = 0; i < n; i++) {
        resp.merchants[i] = merchant_from_row(r, res, i, 1);
    }
    resp.n_merchants = (size_t)n;
    if (rows > want) {
        int64_t seq = 0;
        pw_db_get_int64(res, n - 1, 0, &seq);
        char pos[24];
        snprintf(pos, sizeof(pos), "%lld", (long long)seq);
        resp.next_page_token = page_token(r, pos, state_name(req->state));
    }
    svc_reply(r, &resp.base);
}

static void list_authed(svc_req *r)
{
    const Paywire__Merchant__V1__ListMerchantsRequest *req = (const void *)r->request;
    char pos[32];
    if (req->page_size < 0) {
        svc_violation(r, "page_size", "must not be negative");
    }
    page_token_read(r, req->page_token, state_name(req->state), pos, sizeof(pos));
    if (svc_fail_if_invalid(r)) {
        return;
    }
    pw_db_param p[] = {pw_db_text(state_name(req->state)),
                       pw_db_int8(pos[0] ? strtoll(pos, NULL, 10) : INT64_MAX),
                       pw_db_int8(page_size(req->page_size) + 1)};
    if (pw_db_query(r->app->pool, r->call, &list_merchants, p, 3, listed, r) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot query");
    }
}

static void list_merchants_h(pw_call *call, const Paywire__Merchant__V1__ListMerchantsRequest *req,
                             void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, NULL, list_authed);
    }
}

/* ---- update ---- */

static const char *const updatable[] = {"display_name", "legal_entity",  "merchant_category_code",
                                        "currencies",   "support_email", "website_url"};

static void updated(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    Paywire__Merchant__V1__UpdateMerchantResponse *resp = svc_alloc(r, sizeof(*resp));
    paywire__merchant__v1__update_merchant_response__init(resp);
    resp->merchant = merchant_from_row(r, res, 0, 0);
    audit_event(r, "merchant.updated", resp->merchant->id, "{}");
    svc_commit(r, &resp->base, NULL);
}

/* The current row is locked: apply the mask on top of it. */
static void update_locked(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    const Paywire__Merchant__V1__UpdateMerchantRequest *req = (const void *)r->request;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_rows(res) == 0) {
        svc_abort(r, PW_NOT_FOUND, NULL, "merchant %s not found", req->merchant->id);
        return;
    }
    Merchant *cur = merchant_from_row(r, res, 0, 0);
    if (req->etag[0] != '\0' && strcmp(req->etag, cur->etag) != 0) {
        svc_abort(r, PW_ABORTED, "ETAG_MISMATCH",
                  "merchant %s changed since you read it (etag %s, now %s); read it again", cur->id,
                  req->etag, cur->etag);
        return;
    }
    char *const *paths = req->update_mask->paths;
    size_t np = req->update_mask->n_paths;
    if (in_paths(paths, np, "legal_entity") &&
        cur->state != PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_PENDING_REVIEW) {
        svc_abort(r, PW_FAILED_PRECONDITION, "LEGAL_ENTITY_LOCKED",
                  "the legal entity of merchant %s cannot change after activation", cur->id);
        return;
    }
    const Merchant *m = req->merchant;
    const uint8_t *le;
    size_t le_len;
    pw_db_get_bytea(res, 0, 2, &le, &le_len); /* unchanged unless in the mask: stays sealed */
    if (in_paths(paths, np, "legal_entity")) {
        le = seal_entity(r, m->legal_entity, &le_len);
    }
    const char *currencies = in_paths(paths, np, "currencies")
                                 ? join_csv(r, m->currencies, m->n_currencies)
                                 : join_csv(r, cur->currencies, cur->n_currencies);
    pw_db_param p[] = {
        pw_db_text(cur->id),
        pw_db_text(in_paths(paths, np, "display_name") ? m->display_name : cur->display_name),
        pw_db_bytea(le, le_len),
        pw_db_text(in_paths(paths, np, "merchant_category_code") ? m->merchant_category_code
                                                                 : cur->merchant_category_code),
        pw_db_text(currencies),
        pw_db_text(in_paths(paths, np, "support_email") ? m->support_email : cur->support_email),
        pw_db_text(in_paths(paths, np, "website_url") ? m->website_url : cur->website_url)};
    svc_tx_query(r, &update_merchant, p, 7, updated);
}

static void update_effect(svc_req *r)
{
    const Paywire__Merchant__V1__UpdateMerchantRequest *req = (const void *)r->request;
    pw_db_param p = pw_db_text(req->merchant->id);
    svc_tx_query(r, &lock_merchant, &p, 1, update_locked);
}

static void update_authed(svc_req *r)
{
    const Paywire__Merchant__V1__UpdateMerchantRequest *req = (const void *)r->request;
    if (req->merchant == NULL || !svc_id_ok(req->merchant->id, "mer")) {
        svc_violation(r, "merchant.id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (req->update_mask == NULL || req->update_mask->n_paths == 0) {
        svc_violation(r, "update_mask", "name the fields to change (e.g. \"display_name\")");
    } else {
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
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant->id, "merchant")) {
        return;
    }
    svc_idempotent(r, "UpdateMerchant", req->idempotency_key,
                   &paywire__merchant__v1__update_merchant_response__descriptor, update_effect);
}

static void update_merchant_h(pw_call *call,
                              const Paywire__Merchant__V1__UpdateMerchantRequest *req, void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "merchants:write", update_authed);
    }
}

/* ---- lifecycle ---- */

/* A transition: the method's request fields, the states it may leave from, and its target. */
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

/* The fields every lifecycle request shares, read through the descriptor. */
typedef struct lifecycle_args {
    const transition *t;
    const char *key;
    const char *merchant_id;
    const char *reason;
    const char *case_id;
} lifecycle_args;

static const char *field_text(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    return f ? *(const char *const *)((const uint8_t *)m + f->offset) : "";
}

static void transitioned(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    lifecycle_args *a = r->scratch;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    /* Every lifecycle response is { Merchant merchant = 1; }. */
    ProtobufCMessage *resp = svc_alloc(r, a->t->response_type->sizeof_message);
    protobuf_c_message_init(a->t->response_type, resp);
    Merchant *m = merchant_from_row(r, res, 0, 0);
    *(Merchant **)((uint8_t *)resp + a->t->response_type->fields[0].offset) = m;
    char detail[400];
    snprintf(detail, sizeof(detail), "{\"to\": \"%s\", \"reason_length\": %zu}",
             state_name(a->t->to), strlen(a->reason));
    audit_event(r, a->t->action, m->id, detail);
    svc_commit(r, resp, NULL);
}

static void do_transition(svc_req *r)
{
    lifecycle_args *a = r->scratch;
    pw_db_param p[] = {pw_db_text(a->merchant_id), pw_db_text(state_name(a->t->to)),
                       pw_db_text(a->reason), pw_db_text(a->case_id)};
    svc_tx_query(r, &transition_merchant, p, 4, transitioned);
}

static void case_checked(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    lifecycle_args *a = r->scratch;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
    } else if (pw_db_rows(res) == 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "COMPLIANCE_NOT_APPROVED",
                  "compliance case %s is not an approved case of merchant %s", a->case_id,
                  a->merchant_id);
    } else {
        do_transition(r);
    }
}

static void lifecycle_locked(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    lifecycle_args *a = r->scratch;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_rows(res) == 0) {
        svc_abort(r, PW_NOT_FOUND, NULL, "merchant %s not found", a->merchant_id);
        return;
    }
    Merchant *cur = merchant_from_row(r, res, 0, 0);
    if (!(a->t->from_mask & (1u << cur->state))) {
        svc_abort(r, PW_FAILED_PRECONDITION, "INVALID_STATE_TRANSITION",
                  "merchant %s is %s; %s needs it to be %s", cur->id, state_name(cur->state),
                  a->t->method,
                  a->t->from_mask == BIT(PENDING_REVIEW) ? "PENDING_REVIEW"
                  : a->t->from_mask == BIT(ACTIVE)       ? "ACTIVE"
                  : a->t->from_mask == BIT(SUSPENDED)    ? "SUSPENDED"
                                                         : "not CLOSED");
        return;
    }
    if (a->t->needs_case) {
        pw_db_param p[] = {pw_db_text(a->case_id), pw_db_text(a->merchant_id)};
        svc_tx_query(r, &case_approved, p, 2, case_checked);
        return;
    }
    do_transition(r);
}

static void lifecycle_effect(svc_req *r)
{
    lifecycle_args *a = r->scratch;
    pw_db_param p = pw_db_text(a->merchant_id);
    svc_tx_query(r, &lock_merchant, &p, 1, lifecycle_locked);
}

static void lifecycle_authed(svc_req *r)
{
    lifecycle_args *a = r->scratch;
    if (!svc_id_ok(a->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (a->t->needs_reason && !svc_text_ok(a->reason, 500)) {
        svc_violation(r, "reason", "required: 1-500 characters (kept in the audit log)");
    } else if (!a->t->needs_reason && a->reason[0] != '\0' && !svc_text_ok(a->reason, 500)) {
        svc_violation(r, "reason", "at most 500 characters");
    }
    if (a->t->needs_case && !svc_text_ok(a->case_id, 64)) {
        svc_violation(r, "compliance_case_id", "required: the approved compliance case");
    }
    if (svc_fail_if_invalid(r)) {
        return;
    }
    svc_idempotent(r, a->t->method, a->key, a->t->response_type, lifecycle_effect);
}

static void lifecycle(pw_call *call, const ProtobufCMessage *req, void *ud, const transition *t)
{
    svc_req *r = svc_req_new(call, ud, req);
    if (r == NULL) {
        return;
    }
    lifecycle_args *a = svc_alloc(r, sizeof(*a));
    a->t = t;
    a->key = field_text(req, "idempotency_key");
    a->merchant_id = field_text(req, "merchant_id");
    a->reason = t == &activate_t ? "" : field_text(req, "reason");
    a->case_id = t == &activate_t ? field_text(req, "compliance_case_id") : "";
    r->scratch = a;
    svc_authenticate(r, NULL, lifecycle_authed); /* internal: operators and compliance */
}

static void activate(pw_call *call, const Paywire__Merchant__V1__ActivateMerchantRequest *req,
                     void *ud)
{
    lifecycle(call, &req->base, ud, &activate_t);
}

static void suspend(pw_call *call, const Paywire__Merchant__V1__SuspendMerchantRequest *req,
                    void *ud)
{
    lifecycle(call, &req->base, ud, &suspend_t);
}

static void reinstate(pw_call *call, const Paywire__Merchant__V1__ReinstateMerchantRequest *req,
                      void *ud)
{
    lifecycle(call, &req->base, ud, &reinstate_t);
}

static void close_h(pw_call *call, const Paywire__Merchant__V1__CloseMerchantRequest *req, void *ud)
{
    lifecycle(call, &req->base, ud, &close_t);
}

void merchant_handlers_init(paywire_merchant_v1_merchant_service_handlers *h)
{
    h->create_merchant = create_merchant;
    h->get_merchant = get_merchant;
    h->list_merchants = list_merchants_h;
    h->update_merchant = update_merchant_h;
    h->activate_merchant = activate;
    h->suspend_merchant = suspend;
    h->reinstate_merchant = reinstate;
    h->close_merchant = close_h;
}
