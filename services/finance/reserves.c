/*
 * reserves.c: SettlementService's reserve rules (docs/design/finance.md,
 * Settlement; migration 0014). A rule (merchant, currency or '' for every
 * currency, basis points, hold days) applies from its effective_time on,
 * which is never in the past: the rule in force at any past instant never
 * changes, so the availability job (which holds a capture's reserve under
 * the rule in force then) and the release job (which reads the hold days in
 * force at the hold's posting) agree whenever they run. The rules are
 * configuration, shared by both modes; a change is audited.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "ledger_names.h"
#include "settlement.h"

typedef Paywire__Finance__V1__ReserveRule Rule;

static const pw_db_stmt insert_rule = {
    "reserves_insert_rule",
    "INSERT INTO reserve_rules (merchant_id, currency, basis_points, hold_days, effective_time)"
    " VALUES ($1, $2, $3, $4, $5)",
    5,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_INT8, PW_DB_TIMESTAMPTZ}};
static const pw_db_stmt insert_audit = {
    "reserves_insert_audit",
    "INSERT INTO audit_outbox (actor, action, subject_id, detail) VALUES ($1, $2, $3, $4)",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_JSONB}};
static const pw_db_stmt rule_at = {
    "reserves_rule_at",
    "SELECT merchant_id, currency, basis_points, hold_days, effective_time FROM reserve_rules"
    " WHERE merchant_id = $1 AND currency IN ($2, '') AND effective_time <= $3"
    " ORDER BY currency = $2 DESC, effective_time DESC LIMIT 1",
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TIMESTAMPTZ}};

static void check_rule(svc_req *r, const Rule *rule)
{
    if (rule == NULL) {
        svc_violation(r, "rule", "required");
        return;
    }
    if (!svc_id_ok(rule->merchant_id, "mer")) {
        svc_violation(r, "rule.merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (rule->currency[0] != '\0' && !svc_currency_ok(rule->currency)) {
        svc_violation(r, "rule.currency", "empty (every currency) or an ISO 4217 code");
    }
    if (rule->basis_points > 10000) {
        svc_violation(r, "rule.basis_points", "0 to 10000 (100%)");
    }
    if (rule->hold_days > 365 || (rule->basis_points > 0 && rule->hold_days == 0)) {
        svc_violation(r, "rule.hold_days", "1 to 365 when basis_points is above 0");
    }
    /* A second of slack for the caller's clock; never before what the jobs may have read. */
    if (rule->effective_time == NULL ||
        ledger_ts_us(rule->effective_time) < ledger_now_us() - 1000000) {
        svc_violation(r, "rule.effective_time", "required, and not in the past");
    }
}

static void set_rule_tx(svc_req *r, const void *arg)
{
    const Paywire__Finance__V1__SetReserveRuleRequest *req = arg;
    const Rule *rule = req->rule;
    /* Not before now: a rule effective in the second of slack starts now. */
    int64_t at = ledger_ts_us(rule->effective_time);
    int64_t now = ledger_now_us();
    at = at < now ? now : at;
    pw_db_param p[] = {pw_db_text(rule->merchant_id), pw_db_text(rule->currency),
                       pw_db_int8(rule->basis_points), pw_db_int8(rule->hold_days),
                       pw_db_timestamptz(at)};
    svc_tx_pipe(r, &insert_rule, p, 5);
    char detail[256];
    snprintf(detail, sizeof(detail),
             "{\"currency\":\"%s\",\"basis_points\":%u,\"hold_days\":%u,\"effective_time\":%" PRId64
             "}",
             rule->currency, rule->basis_points, rule->hold_days, at / 1000000);
    pw_db_param a[] = {pw_db_text(r->caller.identity), pw_db_text("settlement.reserve_rule_set"),
                       pw_db_text(rule->merchant_id), pw_db_jsonb(detail)};
    svc_tx_pipe(r, &insert_audit, a, 4);
    Rule *out = svc_alloc(r, sizeof(*out));
    *out = *rule;
    out->effective_time = svc_timestamp(r, at);
    Paywire__Finance__V1__SetReserveRuleResponse resp =
        PAYWIRE__FINANCE__V1__SET_RESERVE_RULE_RESPONSE__INIT;
    resp.rule = out;
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(set_reserve_rule, Paywire__Finance__V1__SetReserveRuleRequest)
{
    check_rule(r, req->rule);
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "SetReserveRule", req->idempotency_key,
                   &paywire__finance__v1__set_reserve_rule_response__descriptor, set_rule_tx, req);
}

SVC_HANDLER(get_reserve_rule, Paywire__Finance__V1__GetReserveRuleRequest)
{
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (req->currency[0] != '\0' && !svc_currency_ok(req->currency)) {
        svc_violation(r, "currency", "empty (the rule for every currency) or an ISO 4217 code");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    int64_t at = req->at_time != NULL ? ledger_ts_us(req->at_time) : ledger_now_us();
    pw_db_param p[] = {pw_db_text(req->merchant_id), pw_db_text(req->currency),
                       pw_db_timestamptz(at)};
    const pw_db_result *res = svc_query(r, &rule_at, p, 3);
    Rule *rule = svc_alloc(r, sizeof(*rule));
    paywire__finance__v1__reserve_rule__init(rule);
    rule->merchant_id = (char *)req->merchant_id;
    rule->currency = (char *)req->currency;
    if (pw_db_rows(res) == 1) { /* else none: 0 basis points, no effective_time */
        svc_row row = svc_row_at(r, res, 0);
        rule->currency = svc_text(row, "currency");
        rule->basis_points = (uint32_t)svc_int64(row, "basis_points");
        rule->hold_days = (uint32_t)svc_int64(row, "hold_days");
        rule->effective_time = svc_time(row, "effective_time");
    }
    Paywire__Finance__V1__GetReserveRuleResponse resp =
        PAYWIRE__FINANCE__V1__GET_RESERVE_RULE_RESPONSE__INIT;
    resp.rule = rule;
    svc_reply(r, &resp.base);
}

void reserves_handlers_init(paywire_finance_v1_settlement_service_handlers *h)
{
    h->set_reserve_rule = set_reserve_rule_h;
    h->get_reserve_rule = get_reserve_rule_h;
}
