/*
 * fees.c: FeeService (docs/design/finance.md, Fees). A schedule is stored
 * whole (packed) with its effective time, at least an hour ahead, so every
 * schedule that can apply to a capture's time committed an hour before it;
 * CalculateFee(at_time) is then a pure function of stored data. The
 * merchant's schedule in force applies, else the default's; within it the
 * most specific rule (method + currency > method > currency > any).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "claims.h"
#include "fees.h"
#include "money.h"

static int method_ok(const char *m)
{
    return m[0] == '\0' || strcmp(m, "card") == 0 || strcmp(m, "bank") == 0 ||
           strcmp(m, "on_chain") == 0;
}

static void check_rule(svc_req *r, const Paywire__Finance__V1__FeeRule *rule, size_t i)
{
    char f[64];
#define RULE_FIELD(name) (snprintf(f, sizeof(f), "schedule.rules[%zu].%s", i, name), f)
    if (!method_ok(rule->method)) {
        svc_violation(r, RULE_FIELD("method"), "\"card\", \"bank\", \"on_chain\" or empty (any)");
    }
    if (rule->currency[0] != '\0' && !svc_currency_ok(rule->currency)) {
        svc_violation(r, RULE_FIELD("currency"), "a currency code, or empty (any)");
    }
    if (rule->basis_points > 10000) {
        svc_violation(r, RULE_FIELD("basis_points"), "at most 10 000 (100%)");
    }
    if (rule->fixed_minor < 0 || rule->min_minor < 0 || rule->max_minor < 0) {
        svc_violation(r, RULE_FIELD("fixed_minor"), "fixed, min and max are not negative");
    }
    /* Minor units of one currency: a rule for any currency may set basis points only. */
    if (rule->currency[0] == '\0' && (rule->fixed_minor || rule->min_minor || rule->max_minor)) {
        svc_violation(r, RULE_FIELD("fixed_minor"),
                      "fixed_minor, min_minor and max_minor need the rule's currency");
    }
    if (rule->min_minor > 0 && rule->max_minor > 0 && rule->min_minor > rule->max_minor) {
        svc_violation(r, RULE_FIELD("min_minor"), "must not exceed max_minor");
    }
#undef RULE_FIELD
}

static void check_schedule(svc_req *r, const Paywire__Finance__V1__FeeSchedule *s)
{
    if (s == NULL) {
        svc_violation(r, "schedule", "required");
        svc_check(r);
    }
    if (s->merchant_id[0] != '\0' && !svc_id_ok(s->merchant_id, "mer")) {
        svc_violation(r, "schedule.merchant_id", "a merchant id, or empty for the default");
    }
    int64_t lead = ledger_shared_fee_lead_us(r->app->service);
    if (s->effective_time == NULL || ledger_ts_us(s->effective_time) < ledger_now_us() + lead) {
        svc_violation(r, "schedule.effective_time",
                      "required, at least fee_lead_seconds ahead (an hour unless configured: the"
                      " lead time, so a capture's fee never changes once computed)");
    }
    if (s->n_rules == 0 || s->n_rules > 100) {
        svc_violation(r, "schedule.rules", "1 to 100 rules");
    }
    for (size_t i = 0; i < s->n_rules; i++) {
        check_rule(r, s->rules[i], i);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(s->rules[k]->method, s->rules[i]->method) == 0 &&
                strcmp(s->rules[k]->currency, s->rules[i]->currency) == 0) {
                char f[64];
                snprintf(f, sizeof(f), "schedule.rules[%zu]", i);
                svc_violation(r, f, "a second rule for the same method and currency");
            }
        }
    }
}

static const pw_db_stmt insert_schedule = {
    "fees_insert_schedule",
    "INSERT INTO fee_schedules (id, merchant_id, effective_time, schedule) VALUES ($1, $2, $3, $4)",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TIMESTAMPTZ, PW_DB_BYTEA}};
static const pw_db_stmt insert_audit = {
    "fees_insert_audit",
    "INSERT INTO audit_outbox (actor, action, subject_id, detail) VALUES ($1, $2, $3, $4)",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_JSONB}};

static void set_schedule_tx(svc_req *r, const void *arg)
{
    const Paywire__Finance__V1__SetFeeScheduleRequest *req = arg;
    Paywire__Finance__V1__FeeSchedule *s = svc_alloc(r, sizeof(*s));
    *s = *req->schedule;
    char id[40];
    if (svc_new_id("fsc", id, sizeof(id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    s->id = svc_strdup(r, id);
    size_t len = protobuf_c_message_get_packed_size(&s->base);
    uint8_t *bytes = svc_alloc(r, len);
    protobuf_c_message_pack(&s->base, bytes);
    pw_db_param p[] = {pw_db_text(id), pw_db_text(s->merchant_id),
                       pw_db_timestamptz(ledger_ts_us(s->effective_time)), pw_db_bytea(bytes, len)};
    svc_tx_pipe(r, &insert_schedule, p, 4);
    char detail[160];
    snprintf(detail, sizeof(detail),
             "{\"merchant_id\":\"%s\",\"rules\":%zu,\"effective_time\":%" PRId64 "}",
             s->merchant_id, s->n_rules, (int64_t)s->effective_time->seconds);
    pw_db_param a[] = {pw_db_text(r->caller.identity), pw_db_text("fees.schedule_set"),
                       pw_db_text(id), pw_db_jsonb(detail)};
    svc_tx_pipe(r, &insert_audit, a, 4);
    Paywire__Finance__V1__SetFeeScheduleResponse resp =
        PAYWIRE__FINANCE__V1__SET_FEE_SCHEDULE_RESPONSE__INIT;
    resp.schedule = s;
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(set_fee_schedule, Paywire__Finance__V1__SetFeeScheduleRequest)
{
    check_schedule(r, req->schedule);
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "SetFeeSchedule", req->idempotency_key,
                   &paywire__finance__v1__set_fee_schedule_response__descriptor, set_schedule_tx,
                   req);
}

/* The merchant's schedule in force at t, else the default's. */
static const pw_db_stmt schedule_at = {
    "fees_schedule_at",
    "SELECT id, schedule FROM fee_schedules WHERE merchant_id IN ($1, '') AND effective_time <= $2"
    " ORDER BY merchant_id = $1 DESC, effective_time DESC LIMIT 1",
    2,
    {PW_DB_TEXT, PW_DB_TIMESTAMPTZ}};

static Paywire__Finance__V1__FeeSchedule *schedule_in_force(svc_req *r, const char *merchant,
                                                            int64_t at_us)
{
    pw_db_param p[] = {pw_db_text(merchant), pw_db_timestamptz(at_us)};
    svc_row row = svc_one(r, svc_query(r, &schedule_at, p, 2), "fee schedule for merchant",
                          merchant[0] ? merchant : "(default)");
    pw_slice bytes = svc_bytes(row, "schedule");
    ProtobufCMessage *m = NULL;
    if (pw_call_unpack(r->call, bytes, &paywire__finance__v1__fee_schedule__descriptor, &m) !=
        PW_OK) {
        svc_fail(r, PW_INTERNAL, "stored fee schedule %s cannot be read", svc_text(row, "id"));
    }
    return (Paywire__Finance__V1__FeeSchedule *)m;
}

static void check_merchant(svc_req *r, const char *merchant)
{
    if (merchant[0] != '\0' && !svc_id_ok(merchant, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id, or empty for the default");
    }
}

SVC_HANDLER(get_fee_schedule, Paywire__Finance__V1__GetFeeScheduleRequest)
{
    check_merchant(r, req->merchant_id);
    svc_check(r);
    svc_authenticate(r, NULL);
    Paywire__Finance__V1__GetFeeScheduleResponse resp =
        PAYWIRE__FINANCE__V1__GET_FEE_SCHEDULE_RESPONSE__INIT;
    resp.schedule = schedule_in_force(r, req->merchant_id,
                                      req->at_time ? ledger_ts_us(req->at_time) : ledger_now_us());
    svc_reply(r, &resp.base);
}

/* How well a rule fits (method, currency): 3 both, 2 method, 1 currency, 0 any; -1 no match. */
static int specificity(const Paywire__Finance__V1__FeeRule *rule, const char *method,
                       const char *currency)
{
    int m = rule->method[0] != '\0', c = rule->currency[0] != '\0';
    if ((m && strcmp(rule->method, method) != 0) || (c && strcmp(rule->currency, currency) != 0)) {
        return -1;
    }
    return m * 2 + c;
}

SVC_HANDLER(calculate_fee, Paywire__Finance__V1__CalculateFeeRequest)
{
    check_merchant(r, req->merchant_id);
    if (!method_ok(req->method) || req->method[0] == '\0') {
        svc_violation(r, "method", "required: \"card\", \"bank\" or \"on_chain\"");
    }
    if (req->amount == NULL || req->amount->amount_minor <= 0) {
        svc_violation(r, "amount", "required: a positive number of minor units");
    } else if (!svc_currency_ok(req->amount->currency)) {
        svc_violation(r, "amount.currency", "a currency code");
    }
    if (req->at_time == NULL ||
        ledger_ts_us(req->at_time) > ledger_now_us() + ledger_shared_fee_lead_us(r->app->service)) {
        svc_violation(r, "at_time", "required: the capture's time, at most one hour ahead");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    Paywire__Finance__V1__FeeSchedule *s =
        schedule_in_force(r, req->merchant_id, ledger_ts_us(req->at_time));
    const Paywire__Finance__V1__FeeRule *best = NULL;
    int best_fit = -1;
    for (size_t i = 0; i < s->n_rules; i++) {
        int fit = specificity(s->rules[i], req->method, req->amount->currency);
        if (fit > best_fit) {
            best_fit = fit;
            best = s->rules[i];
        }
    }
    if (best == NULL) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "NO_FEE_RULE",
                        "fee schedule %s has no rule for %s in %s", s->id, req->method,
                        req->amount->currency);
    }
    int64_t fee = 0;
    if (money_fee(req->amount->amount_minor, best->basis_points, best->fixed_minor, best->min_minor,
                  best->max_minor, &fee) != PW_OK) {
        svc_violation(r, "amount", "the fee of this amount does not fit int64 minor units");
        svc_check(r);
    }
    Paywire__Finance__V1__CalculateFeeResponse resp =
        PAYWIRE__FINANCE__V1__CALCULATE_FEE_RESPONSE__INIT;
    resp.fee = ledger_money(r, fee, req->amount->currency);
    resp.rule = (Paywire__Finance__V1__FeeRule *)best;
    resp.schedule_id = s->id;
    svc_reply(r, &resp.base);
}

static const paywire_finance_v1_fee_service_handlers fee_handlers = {
    .set_fee_schedule = set_fee_schedule_h,
    .get_fee_schedule = get_fee_schedule_h,
    .calculate_fee = calculate_fee_h,
};

pw_status fees_register(pw_server *server, svc_app *app)
{
    return paywire_finance_v1_fee_service_register(server, &fee_handlers, app);
}
