/* rows.c: database rows to API messages, lists, tokens and audit events. */
#include <stdio.h>
#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include "merchant.h"

static const char *const state_names[] = {
    [PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_PENDING_REVIEW] = "PENDING_REVIEW",
    [PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_ACTIVE] = "ACTIVE",
    [PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_SUSPENDED] = "SUSPENDED",
    [PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_CLOSED] = "CLOSED",
};

const char *state_name(Paywire__Merchant__V1__MerchantState s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) && state_names[s]
               ? state_names[s]
               : "";
}

Paywire__Merchant__V1__MerchantState state_from_name(const char *s)
{
    for (size_t i = 1; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (strcmp(state_names[i], s) == 0) {
            return (Paywire__Merchant__V1__MerchantState)i;
        }
    }
    return PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_UNSPECIFIED;
}

char **split_csv(svc_req *r, const char *csv, size_t *n)
{
    *n = 0;
    if (csv == NULL || csv[0] == '\0') {
        return NULL;
    }
    size_t count = 1;
    for (const char *p = csv; *p; p++) {
        count += *p == ',';
    }
    char **items = svc_alloc(r, count * sizeof(*items));
    for (char *tok = svc_strdup(r, csv); tok != NULL;) {
        char *comma = strchr(tok, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        items[(*n)++] = tok;
        tok = comma ? comma + 1 : NULL;
    }
    return items;
}

char *join_csv(svc_req *r, char *const *items, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        len += strlen(items[i]) + 1;
    }
    char *out = svc_alloc(r, len);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            strcat(out, ",");
        }
        strcat(out, items[i]);
    }
    return out;
}

/* "****6789": a tax id or account number as people may see it. */
char *masked(svc_req *r, const char *plain)
{
    size_t n = strlen(plain);
    char buf[16];
    snprintf(buf, sizeof(buf), "****%.4s", n > 4 ? plain + n - 4 : plain);
    return svc_strdup(r, buf);
}

/* The stored legal entity (packed, tax id sealed) as people may see it: tax id masked. */
static LegalEntity *entity_from(svc_req *r, pw_slice packed)
{
    ProtobufCMessage *entity = NULL;
    if (pw_call_unpack(r->call, packed, &paywire__merchant__v1__legal_entity__descriptor,
                       &entity) != PW_OK) {
        return NULL;
    }
    /* A copy in call memory: the unpacked message's own fields are freed with it. */
    LegalEntity *e = svc_alloc(r, sizeof(*e));
    *e = *(LegalEntity *)entity;
    char plain[128] = "";
    if (e->tax_id[0] != '\0' &&
        svc_open(r->app->sealer, e->tax_id, plain, sizeof(plain)) == PW_OK) {
        e->tax_id = masked(r, plain);
    } else if (e->tax_id[0] != '\0') {
        e->tax_id = svc_strdup(r, "****");
    }
    return e;
}

Merchant *merchant_from_row(svc_row row)
{
    svc_req *r = row.r;
    Merchant *m = svc_alloc(r, sizeof(*m));
    paywire__merchant__v1__merchant__init(m);
    m->id = svc_text(row, "id");
    m->display_name = svc_text(row, "display_name");
    m->legal_entity = entity_from(r, svc_bytes(row, "legal_entity"));
    m->country = svc_text(row, "country");
    m->merchant_category_code = svc_text(row, "merchant_category_code");
    m->currencies = split_csv(r, svc_text(row, "currencies"), &m->n_currencies);
    m->support_email = svc_text(row, "support_email");
    m->website_url = svc_text(row, "website_url");
    m->state = state_from_name(svc_text(row, "state"));
    m->state_reason = svc_text(row, "state_reason");
    m->compliance_case_id = svc_text(row, "compliance_case_id");
    char etag[24];
    snprintf(etag, sizeof(etag), "%lld", (long long)svc_int64(row, "etag"));
    m->etag = svc_strdup(r, etag);
    m->create_time = svc_time(row, "create_time");
    m->update_time = svc_time(row, "update_time");
    return m;
}

ApiKey *api_key_from_row(svc_row row)
{
    svc_req *r = row.r;
    ApiKey *k = svc_alloc(r, sizeof(*k));
    paywire__merchant__v1__api_key__init(k);
    k->id = svc_text(row, "id");
    k->merchant_id = svc_text(row, "merchant_id");
    k->mode = strcmp(svc_text(row, "mode"), "LIVE") == 0
                  ? PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_LIVE
                  : PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_TEST;
    k->scopes = split_csv(r, svc_text(row, "scopes"), &k->n_scopes);
    k->description = svc_text(row, "description");
    k->secret_prefix = svc_text(row, "secret_prefix");
    k->create_time = svc_time(row, "create_time");
    k->revoke_time = svc_time(row, "revoke_time");
    k->last_used_time = svc_time(row, "last_used_time");
    return k;
}

static const pw_db_stmt audit_insert = {
    "merchant_audit_insert",
    "INSERT INTO audit_outbox (actor, action, subject_id, detail) VALUES ($1, $2, $3, $4)",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_JSONB}};

void audit_event(svc_req *r, const char *action, const char *subject_id, const char *detail_json)
{
    /* Who: the service's SPIFFE id, or "api_key:key_…" for a merchant's key. */
    char actor[300];
    snprintf(actor, sizeof(actor), "%s%s",
             r->caller.internal ? "" : "api_key:", r->caller.identity);
    pw_db_param p[] = {pw_db_text(actor), pw_db_text(action), pw_db_text(subject_id),
                       pw_db_jsonb(detail_json)};
    /* Pipelined before the next statement of the transaction; its failure aborts it. */
    svc_tx_pipe(r, &audit_insert, p, 4);
}
