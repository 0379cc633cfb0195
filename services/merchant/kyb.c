/*
 * kyb.c: the merchant's KYB case in compliance (docs/design/merchant.md,
 * issue 17). CreateMerchant writes a kyb_outbox row in its own transaction;
 * svc_outbox delivers it to compliance's VerificationService.CreateCase
 * (idempotency key "merchant/kyb/<merchant>"), at least once, after any
 * outage: an outbox rather than a call during CreateMerchant, because a
 * call would either fail the onboarding whenever compliance is down or,
 * made after the commit, lose the case when the process dies in between.
 * ActivateMerchant asks GetCase and accepts only an APPROVED KYB case of the
 * same merchant; with compliance unreachable it fails closed (UNAVAILABLE).
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "merchant.h"
#include "svc_outbox.h"
#include "paywire/compliance/v1/verification.pw.h"

#define VERIFICATION "/paywire.compliance.v1.VerificationService/"

typedef Paywire__Compliance__V1__Party Party;

static const pw_db_stmt insert_kyb = {"merchant_kyb_outbox",
                                      "INSERT INTO kyb_outbox (merchant_id, party) VALUES ($1, $2)",
                                      2,
                                      {PW_DB_TEXT, PW_DB_BYTEA}};

void kyb_case_request(svc_req *r, const char *merchant_id, const Merchant *m)
{
    const LegalEntity *e = m->legal_entity;
    Party p = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    char *names[2] = {e->legal_name, m->display_name};
    p.names = names;
    p.n_names = strcmp(e->legal_name, m->display_name) == 0 ? 1 : 2;
    char *countries[2] = {m->country, NULL};
    p.countries = countries;
    p.n_countries = 1;
    if (e->registered_address && e->registered_address->country[0] &&
        strcmp(e->registered_address->country, m->country) != 0) {
        countries[p.n_countries++] = e->registered_address->country;
    }
    p.kind = PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_ORGANIZATION;
    p.registration_number = e->registration_number;
    p.address = e->registered_address;
    size_t len = protobuf_c_message_get_packed_size(&p.base);
    uint8_t *packed = svc_alloc(r, len + 1);
    protobuf_c_message_pack(&p.base, packed);
    pw_db_param q[] = {pw_db_text(merchant_id), pw_db_bytea(packed, len)};
    svc_tx_pipe(r, &insert_kyb, q, 2);
}

/* ---- activation ---- */

void kyb_check_approved(svc_req *r, const char *merchant_id, const char *case_id)
{
    const merchant_state *s = r->app->service;
    if (s->compliance_target[0] == '\0') {
        svc_fail(r, PW_UNAVAILABLE, "compliance_target is not set: no case can be checked");
    }
    pw_tls_config tls = {
        .cert_file = s->tls_cert[0] ? s->tls_cert : NULL,
        .key_file = s->tls_key[0] ? s->tls_key : NULL,
        .ca_file = s->tls_ca[0] ? s->tls_ca : NULL,
    };
    pw_channel_options co = {.tls = tls.ca_file != NULL ? &tls : NULL};
    pw_channel *ch = NULL;
    if (pw_channel_new(&ch, pw_call_loop(r->call), s->compliance_target, &co) != PW_OK) {
        svc_fail(r, PW_UNAVAILABLE, "compliance cannot be reached");
    }
    Paywire__Compliance__V1__GetCaseRequest req = PAYWIRE__COMPLIANCE__V1__GET_CASE_REQUEST__INIT;
    req.case_id = (char *)case_id;
    svc_answer a = svc_call(r, ch, VERIFICATION "GetCase", &req.base,
                            &paywire__compliance__v1__get_case_response__descriptor, 5000);
    pw_channel_close(ch, NULL, NULL);
    if (a.code == PW_NOT_FOUND || a.code == PW_INVALID_ARGUMENT) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "COMPLIANCE_NOT_APPROVED",
                        "compliance has no case %s", case_id);
    }
    if (a.code != PW_OK) {
        svc_fail_call(r, &a, "compliance"); /* fail closed: no answer, no activation */
    }
    const Paywire__Compliance__V1__VerificationCase *c =
        ((Paywire__Compliance__V1__GetCaseResponse *)a.response)->case_;
    if (c == NULL || c->kind != PAYWIRE__COMPLIANCE__V1__CASE_KIND__CASE_KIND_KYB ||
        strcmp(c->merchant_id, merchant_id) != 0 ||
        c->state != PAYWIRE__COMPLIANCE__V1__CASE_STATE__CASE_STATE_APPROVED) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "COMPLIANCE_NOT_APPROVED",
                        "compliance case %s is not an approved KYB case of merchant %s", case_id,
                        merchant_id);
    }
}

/* ---- the outbox's publisher ---- */

typedef struct kyb_pending {
    svc_outbox *outbox;
    void *token;
} kyb_pending;

static void created(const ProtobufCMessage *resp, const pw_result *result, void (*typed)(void),
                    void *ud)
{
    (void)resp;
    (void)typed;
    kyb_pending *p = ud;
    /* Another KYB case of the merchant is open (an operator opened one): the merchant has its
     * case, which is what the row asked for. */
    pw_status code = result->code == PW_ALREADY_EXISTS ? PW_OK : result->code;
    svc_outbox_delivered(p->outbox, p->token, code, result->message);
    pw_free(p);
}

static void deliver(svc_outbox *o, const pw_db_result *res, int row, void *token, void *ud)
{
    pw_channel *ch = ud;
    const char *merchant = "";
    const uint8_t *party = NULL;
    size_t len = 0, l;
    pw_db_get_text(res, row, pw_db_column(res, "merchant_id"), &merchant, &l);
    pw_db_get_bytea(res, row, pw_db_column(res, "party"), &party, &len);
    ProtobufCMessage *m = protobuf_c_message_unpack(&paywire__compliance__v1__party__descriptor,
                                                    pw_protobuf_allocator(), len, party);
    if (m == NULL) {
        svc_outbox_delivered(o, token, PW_DATA_LOSS, "the stored party cannot be read");
        return;
    }
    char key[80];
    snprintf(key, sizeof(key), "merchant/kyb/%s", merchant);
    Paywire__Compliance__V1__CreateCaseRequest req =
        PAYWIRE__COMPLIANCE__V1__CREATE_CASE_REQUEST__INIT;
    req.idempotency_key = key;
    req.kind = PAYWIRE__COMPLIANCE__V1__CASE_KIND__CASE_KIND_KYB;
    req.subject_id = (char *)merchant;
    req.merchant_id = (char *)merchant;
    req.party = (Party *)m;
    kyb_pending *p = pw_calloc(1, sizeof(*p));
    p->outbox = o;
    p->token = token;
    pw_call_options opts = {.timeout_ms = 10000};
    pw_status rv = pw_client_unary(ch, VERIFICATION "CreateCase", &opts, &req.base,
                                   &paywire__compliance__v1__create_case_response__descriptor,
                                   created, NULL, p);
    pw_protobuf_free(m);
    if (rv != PW_OK) {
        pw_free(p);
        svc_outbox_delivered(o, token, rv, "cannot start the call");
    }
}

struct kyb_jobs {
    pw_channel *compliance;
    svc_outbox *outbox;
};

pw_status kyb_jobs_start(kyb_jobs **out, svc_app *app, uv_loop_t *loop, const svc_config *cfg)
{
    *out = NULL;
    const char *target = svc_config_text(cfg, "compliance_target");
    if (target == NULL) {
        PW_LOG(PW_LOG_WARNING, "merchant",
               "compliance_target is not set: KYB cases stay in kyb_outbox and no merchant can "
               "be activated");
        return PW_OK;
    }
    kyb_jobs *k = pw_calloc(1, sizeof(*k));
    /* Our own certificate: compliance knows us by spiffe://paywire/merchant. */
    pw_tls_config tls = {
        .cert_file = svc_config_text(cfg, "tls_cert"),
        .key_file = svc_config_text(cfg, "tls_key"),
        .ca_file = svc_config_text(cfg, "tls_ca"),
    };
    pw_channel_options co = {.tls = tls.ca_file != NULL ? &tls : NULL};
    svc_outbox_options oo = {
        .table = "kyb_outbox",
        .what = "KYB cases to compliance",
        .deliver = deliver,
    };
    pw_status rv = pw_channel_new(&k->compliance, loop, target, &co);
    oo.user_data = k->compliance;
    if (rv == PW_OK) {
        rv = svc_outbox_start(&k->outbox, loop, app->pool, &oo);
    }
    if (rv != PW_OK) {
        if (k->compliance != NULL) {
            pw_channel_close(k->compliance, NULL, NULL);
        }
        pw_free(k);
        return rv;
    }
    *out = k;
    return PW_OK;
}

static void channel_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    pw_free(ud);
}

void kyb_jobs_stop(kyb_jobs *k)
{
    if (k == NULL) {
        return;
    }
    svc_outbox_stop(k->outbox);
    /* Calls in flight end CANCELLED: their rows are retried by the next publisher. */
    pw_channel_close(k->compliance, channel_closed, k);
}
