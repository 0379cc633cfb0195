/*
 * screening.c: compliance's ScreenTransaction at confirm (design: "Calls to
 * other services"), after the payment is stored and before any connector is
 * called. The key is "<payment id>:CONFIRM", so a retried confirm (or two
 * concurrent ones) gets the verdict compliance stored the first time. The
 * payer screened is what the payment knows: the cardholder's name and the
 * issuer's country.
 *
 * Compliance unavailable (any answer that is not a verdict): the configured
 * policy decides. Closed (the default): the confirm is UNAVAILABLE and the
 * payment stays REQUIRES_CONFIRMATION for the retry. Open: the payment is
 * routed unscreened, and its PROCESSING transition says so ("not_screened").
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "orchestration.h"
#include "paywire/compliance/v1/screening.pw.h"

static const pw_db_stmt screened_payment = {
    .name = "orch_screened_payment",
    .sql = "SELECT merchant_id, mode, state, amount_minor, currency, cardholder_name,"
           " issuer_country FROM payments WHERE id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

orch_verdict orch_screen_confirm(svc_req *r, const char *payment_id, char *screening_id, size_t cap)
{
    const orch_state *s = r->app->service;
    screening_id[0] = '\0';
    if (s->compliance_target[0] == '\0') {
        /* No compliance configured: not screened (README). Nothing to read either: the
         * confirm's transaction checks the owner and the state under the payment's lock. */
        return ORCH_VERDICT_ALLOW;
    }
    pw_db_param id = pw_db_text(payment_id);
    svc_row p = svc_one(r, svc_query(r, &screened_payment, &id, 1), "payment", payment_id);
    svc_owns(r, svc_text(p, "merchant_id"), "payment");
    if (strcmp(svc_text(p, "state"), "REQUIRES_CONFIRMATION") != 0) {
        return ORCH_VERDICT_NONE; /* the confirm's transaction refuses or answers it */
    }
    char key[64];
    snprintf(key, sizeof(key), "%s:CONFIRM", payment_id);
    Paywire__Common__V1__Money amount = PAYWIRE__COMMON__V1__MONEY__INIT;
    amount.amount_minor = svc_int64(p, "amount_minor");
    amount.currency = svc_text(p, "currency");
    char *names[1] = {svc_text(p, "cardholder_name")};
    Paywire__Compliance__V1__Party payer = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    payer.n_names = names[0][0] != '\0';
    payer.names = names;
    payer.kind = PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_PERSON;
    Paywire__Compliance__V1__ScreenTransactionRequest req =
        PAYWIRE__COMPLIANCE__V1__SCREEN_TRANSACTION_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = svc_text(p, "merchant_id");
    req.payment_id = (char *)payment_id;
    req.amount = &amount;
    req.payer = &payer;
    req.payer_country = svc_text(p, "issuer_country");
    req.stage = PAYWIRE__COMPLIANCE__V1__SCREENING_STAGE__SCREENING_STAGE_CONFIRM;
    req.mode = strcmp(svc_text(p, "mode"), "LIVE") == 0 ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE
                                                        : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    orch_link link;
    pw_channel *ch = orch_link_take(r, s->compliance_target, &link);
    svc_answer a = {.code = PW_UNAVAILABLE, .message = "cannot open a channel"};
    if (ch != NULL) {
        a = svc_call(r, ch, "/paywire.compliance.v1.ScreeningService/ScreenTransaction", &req.base,
                     &paywire__compliance__v1__screen_transaction_response__descriptor,
                     s->compliance_timeout_ms);
        orch_link_give(&link);
    }
    if (a.code != PW_OK) {
        if (!s->compliance_fail_open) {
            svc_fail_call(r, &a, "compliance");
        }
        PW_LOG(PW_LOG_WARNING, "orchestration",
               "compliance unavailable (%s): %s routed unscreened (compliance_unavailable = open)",
               pw_status_str(a.code), payment_id);
        return ORCH_VERDICT_UNSCREENED;
    }
    const Paywire__Compliance__V1__ScreenTransactionResponse *v = (const void *)a.response;
    snprintf(screening_id, cap, "%s", v->screening_id);
    switch (v->verdict) {
    case PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_BLOCK:
        return ORCH_VERDICT_BLOCK;
    case PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_REVIEW:
        return ORCH_VERDICT_REVIEW;
    case PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_ALLOW:
        return ORCH_VERDICT_ALLOW;
    default:
        svc_fail(r, PW_INTERNAL, "compliance answered no verdict");
    }
}
