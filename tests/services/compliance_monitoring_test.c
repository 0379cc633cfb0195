/*
 * Transaction monitoring end to end (docs/design/compliance.md, Monitoring):
 * a real compliance-server on a fresh database, a one-entry sanctions list
 * (ScreenTransaction fails closed without one), versioned rule sets, the
 * synchronous rules in ScreenTransaction, velocity over payments delivered
 * through RecordPayments, alerts once per rule version and payment, and
 * ResolveAlert. Last, the database taken away: screening fails closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <paywire/db.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "compliance_calls.h"
#include "ofac.h"
#include "paywire/compliance/v1/monitoring.pw.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/compliance/v1/verification.pw.h"

#define MONITORING "/paywire.compliance.v1.MonitoringService/"
#define P(x)       Paywire__Compliance__V1__##x
#define VERDICT(x) PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_##x
#define ALERT(x)   PAYWIRE__COMPLIANCE__V1__ALERT_STATE__ALERT_STATE_##x

typedef Paywire__Common__V1__Money Money;

static svc_process srv = {.name = "compliance",
                          .binary = PW_COMPLIANCE_SERVER,
                          .health_service = "paywire.compliance.v1.ScreeningService"};
static char db_url[512];
static uv_loop_t loop;
static pw_channel *ch;

static int group_setup(void **state)
{
    (void)state;
    compliance_db_prepare("compliance_monitoring_test", db_url, sizeof(db_url));
    svc_process_prepare(&srv);
    svc_process_start(
        &srv, db_url,
        "log_level = warning\nworkers = 2\n"
        "encryption_key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    uv_loop_init(&loop);
    ch = svc_process_channel(&srv, &loop);
    svc_process_wait_serving(&srv, ch);
    /* A list of one entry: transaction screening needs an active list (it fails closed). */
    char *names[] = {"QUARTERMAINE, Zebedee Oswin"};
    P(SanctionsEntry) e = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT;
    e.entry_id = "z1";
    e.names = names;
    e.n_names = 1;
    e.type = "individual";
    P(SanctionsEntry) * es[] = {&e};
    int active = 0;
    char msg[256];
    assert_int_equal(ofac_upload(ch, "test-list", "v1", es, 1, 1, 0, &active, msg, sizeof(msg)),
                     PW_OK);
    return 0;
}

static void set_flag(pw_channel *c, void *ud)
{
    (void)c;
    *(int *)ud = 1;
}

static int group_teardown(void **state)
{
    (void)state;
    int done = 0;
    pw_channel_close(ch, set_flag, &done);
    pw_test_run_until(&loop, &done, 5000);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&srv);
    svc_process_cleanup(&srv);
    return 0;
}

static reply call(const char *path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_type)
{
    return compliance_call(ch, path, req, resp_type, NULL);
}

/* ---- the rule set ---- */

static reply set_rules(const char *key, int64_t expected, P(Rule) * *rules, size_t n)
{
    P(SetRulesRequest) req = PAYWIRE__COMPLIANCE__V1__SET_RULES_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.expected_version = expected;
    req.rules = rules;
    req.n_rules = n;
    return call(MONITORING "SetRules", &req.base,
                &paywire__compliance__v1__set_rules_response__descriptor);
}

static Money eur(int64_t minor)
{
    Money m = PAYWIRE__COMMON__V1__MONEY__INIT;
    m.amount_minor = minor;
    m.currency = "EUR";
    return m;
}

/* The rules every test below runs against (version 2 after test_rules_versioned). */
static Money big, payer_cap;
static Google__Protobuf__Duration hour = GOOGLE__PROTOBUF__DURATION__INIT,
                                  ten_min = GOOGLE__PROTOBUF__DURATION__INIT;
static P(ThresholdRule) threshold = PAYWIRE__COMPLIANCE__V1__THRESHOLD_RULE__INIT;
static P(CountryRule) countries = PAYWIRE__COMPLIANCE__V1__COUNTRY_RULE__INIT;
static P(VelocityRule) per_merchant = PAYWIRE__COMPLIANCE__V1__VELOCITY_RULE__INIT,
                       per_payer = PAYWIRE__COMPLIANCE__V1__VELOCITY_RULE__INIT;
static P(Rule) rule[4];
static char *risky[] = {"NG", "KP"};

static void make_rules(void)
{
    big = eur(1000000); /* EUR 10,000.00 */
    payer_cap = eur(100000);
    hour.seconds = 3600;
    ten_min.seconds = 600;
    threshold.amount = &big;
    countries.countries = risky;
    countries.n_countries = 2;
    per_merchant.window = &hour;
    per_merchant.max_count = 3;
    per_merchant.per = "merchant";
    per_payer.window = &ten_min;
    per_payer.max_amount = &payer_cap;
    per_payer.per = "payer";
    const char *names[] = {"big_payment", "risky_country", "merchant_velocity_1h",
                           "payer_amount_10m"};
    for (int i = 0; i < 4; i++) {
        paywire__compliance__v1__rule__init(&rule[i]);
        rule[i].name = (char *)names[i];
    }
    rule[0].condition_case = PAYWIRE__COMPLIANCE__V1__RULE__CONDITION_THRESHOLD;
    rule[0].threshold = &threshold;
    rule[0].hold_for_review = 1;
    rule[1].condition_case = PAYWIRE__COMPLIANCE__V1__RULE__CONDITION_HIGH_RISK_COUNTRY;
    rule[1].high_risk_country = &countries;
    rule[2].condition_case = PAYWIRE__COMPLIANCE__V1__RULE__CONDITION_VELOCITY;
    rule[2].velocity = &per_merchant;
    rule[3].condition_case = PAYWIRE__COMPLIANCE__V1__RULE__CONDITION_VELOCITY;
    rule[3].velocity = &per_payer;
}

static void test_rules_versioned(void **state)
{
    (void)state;
    make_rules();
    P(GetRulesRequest) g = PAYWIRE__COMPLIANCE__V1__GET_RULES_REQUEST__INIT;
    reply r = call(MONITORING "GetRules", &g.base,
                   &paywire__compliance__v1__get_rules_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(GetRulesResponse) *)r.msg)->version, 0);
    reply_free(&r);
    P(Rule) * first[] = {&rule[0]};
    r = set_rules("rules-1", 0, first, 1);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(SetRulesResponse) *)r.msg)->version, 1);
    reply_free(&r);
    /* A retry: the same version; another writer who read version 0: refused. */
    r = set_rules("rules-1", 0, first, 1);
    assert_int_equal(((P(SetRulesResponse) *)r.msg)->version, 1);
    reply_free(&r);
    r = set_rules("rules-1b", 0, first, 1);
    assert_int_equal(r.code, PW_ABORTED);
    assert_string_equal(r.details.reason, "RULES_VERSION_MISMATCH");
    reply_free(&r);
    /* Bad rules are named: no condition, a name used twice, a window of nothing. */
    P(Rule) empty = PAYWIRE__COMPLIANCE__V1__RULE__INIT, again = rule[1];
    again.name = "big_payment";
    P(VelocityRule) bad_v = per_merchant;
    Google__Protobuf__Duration zero = GOOGLE__PROTOBUF__DURATION__INIT;
    bad_v.window = &zero;
    P(Rule) bad = rule[2];
    bad.velocity = &bad_v;
    empty.name = "nothing";
    P(Rule) * bads[] = {&rule[0], &empty, &again, &bad};
    r = set_rules("rules-bad", 1, bads, 4);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "rules[1]"));
    assert_true(has_violation(&r, "rules[2].name"));
    assert_true(has_violation(&r, "rules[3]"));
    reply_free(&r);
    P(Rule) * all[] = {&rule[0], &rule[1], &rule[2], &rule[3]};
    r = set_rules("rules-2", 1, all, 4);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(SetRulesResponse) *)r.msg)->version, 2);
    reply_free(&r);
    r = call(MONITORING "GetRules", &g.base,
             &paywire__compliance__v1__get_rules_response__descriptor);
    P(GetRulesResponse) *now = (P(GetRulesResponse) *)r.msg;
    assert_int_equal(now->version, 2);
    assert_int_equal(now->n_rules, 4);
    assert_string_equal(now->rules[3]->name, "payer_amount_10m");
    assert_int_equal(now->rules[2]->velocity->max_count, 3);
    reply_free(&r);
}

/* ---- payments ---- */

static reply screen(const char *payment, const char *merchant, int64_t minor, const char *country)
{
    char key[80];
    snprintf(key, sizeof(key), "%s:CONFIRM", payment);
    Money m = eur(minor);
    P(ScreenTransactionRequest) req = PAYWIRE__COMPLIANCE__V1__SCREEN_TRANSACTION_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = (char *)merchant;
    req.payment_id = (char *)payment;
    req.amount = &m;
    req.payer_country = (char *)country;
    req.stage = PAYWIRE__COMPLIANCE__V1__SCREENING_STAGE__SCREENING_STAGE_CONFIRM;
    return call("/paywire.compliance.v1.ScreeningService/ScreenTransaction", &req.base,
                &paywire__compliance__v1__screen_transaction_response__descriptor);
}

static int has_reason(const P(ScreenTransactionResponse) * t, const char *why)
{
    for (size_t i = 0; i < t->n_reasons; i++) {
        if (strcmp(t->reasons[i], why) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Records one payment made ago_s seconds ago; returns how many alert ids came back (ids[0]). */
static size_t record(const char *payment, const char *merchant, const char *payer, int64_t minor,
                     const char *country, int ago_s, char first[64])
{
    Money m = eur(minor);
    Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    t.seconds = (int64_t)time(NULL) - ago_s;
    P(PaymentFact) f = PAYWIRE__COMPLIANCE__V1__PAYMENT_FACT__INIT, *fs[] = {&f};
    f.payment_id = (char *)payment;
    f.merchant_id = (char *)merchant;
    f.payer_key = (char *)payer;
    f.amount = &m;
    f.payer_country = (char *)country;
    f.time = &t;
    P(RecordPaymentsRequest) req = PAYWIRE__COMPLIANCE__V1__RECORD_PAYMENTS_REQUEST__INIT;
    req.payments = fs;
    req.n_payments = 1;
    reply r = call(MONITORING "RecordPayments", &req.base,
                   &paywire__compliance__v1__record_payments_response__descriptor);
    if (r.code != PW_OK) {
        fail_msg("RecordPayments %s: %s %s", payment, pw_status_str(r.code), r.message);
    }
    P(RecordPaymentsResponse) *resp = (P(RecordPaymentsResponse) *)r.msg;
    size_t n = resp->n_alert_ids;
    if (first != NULL) {
        snprintf(first, 64, "%s", n ? resp->alert_ids[0] : "");
    }
    reply_free(&r);
    return n;
}

static long long alerts_of(const char *rule_name, const char *payment)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM alerts WHERE rule_name = '%s' AND payment_id LIKE '%s'",
             rule_name, payment);
    return pw_test_db_scalar(db_url, sql);
}

/* Thresholds and countries decide in ScreenTransaction; recording the payment later raises no
 * second alert. */
static void test_rules_in_screening(void **state)
{
    (void)state;
    reply r = screen("pay_big", "mer_sync", 1500000, "DE");
    assert_int_equal(r.code, PW_OK);
    P(ScreenTransactionResponse) *t = (P(ScreenTransactionResponse) *)r.msg;
    assert_int_equal(t->verdict, VERDICT(REVIEW)); /* hold_for_review */
    assert_true(has_reason(t, "threshold_exceeded"));
    char alert[64];
    snprintf(alert, sizeof(alert), "%s", t->alert_id);
    assert_int_equal(strncmp(alert, "alt_", 4), 0);
    reply_free(&r);
    r = screen("pay_big", "mer_sync", 1500000, "DE"); /* a retry: the first verdict */
    assert_string_equal(((P(ScreenTransactionResponse) *)r.msg)->alert_id, alert);
    reply_free(&r);
    /* Below the threshold from a high-risk country: an alert, but the payment is allowed. */
    r = screen("pay_ng", "mer_sync", 5000, "NG");
    t = (P(ScreenTransactionResponse) *)r.msg;
    assert_int_equal(t->verdict, VERDICT(ALLOW));
    assert_true(has_reason(t, "high_risk_country"));
    assert_true(t->alert_id[0] != '\0');
    reply_free(&r);
    r = screen("pay_small", "mer_sync", 5000, "DE");
    t = (P(ScreenTransactionResponse) *)r.msg;
    assert_int_equal(t->verdict, VERDICT(ALLOW));
    assert_int_equal(t->n_reasons, 0);
    assert_string_equal(t->alert_id, "");
    reply_free(&r);
    /* The same payment through the event stream's entry point: the alert it already has. */
    char again[64];
    assert_int_equal(record("pay_big", "mer_sync", "", 1500000, "DE", 0, again), 1);
    assert_string_equal(again, alert);
    assert_int_equal(alerts_of("big_payment", "pay_big"), 1);
    assert_int_equal(alerts_of("risky_country", "pay_ng"), 1);
    /* Alerts of a hold carry the screening its REVIEW is decided on. */
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM alerts a JOIN screenings s ON s.id = "
             "a.screening_id WHERE a.id = '%s' AND s.verdict = 'REVIEW'",
             alert);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1);
}

/* More than 3 payments by one merchant within an hour: an alert naming the window's payments;
 * payments older than the window do not count; a payment recorded twice counts once. */
static void test_velocity_per_merchant(void **state)
{
    (void)state;
    assert_int_equal(record("pay_v0", "mer_fast", "", 100, "", 5000, NULL), 0); /* outside */
    assert_int_equal(record("pay_v1", "mer_fast", "", 100, "", 1800, NULL), 0);
    assert_int_equal(record("pay_v2", "mer_fast", "", 100, "", 1200, NULL), 0);
    assert_int_equal(record("pay_v3", "mer_fast", "", 100, "", 600, NULL), 0);
    assert_int_equal(record("pay_v2", "mer_fast", "", 100, "", 1200, NULL), 0); /* again */
    char id[64];
    assert_int_equal(record("pay_v4", "mer_fast", "", 100, "", 10, id), 1);
    assert_int_equal(alerts_of("merchant_velocity_1h", "pay_v%"), 1);
    assert_int_equal(record("pay_v4", "mer_fast", "", 100, "", 10, NULL), 1); /* the same one */
    assert_int_equal(alerts_of("merchant_velocity_1h", "pay_v%"), 1);
    P(ListAlertsRequest) l = PAYWIRE__COMPLIANCE__V1__LIST_ALERTS_REQUEST__INIT;
    l.merchant_id = "mer_fast";
    reply r = call(MONITORING "ListAlerts", &l.base,
                   &paywire__compliance__v1__list_alerts_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(ListAlertsResponse) *page = (P(ListAlertsResponse) *)r.msg;
    assert_int_equal(page->n_alerts, 1);
    P(Alert) *a = page->alerts[0];
    assert_string_equal(a->id, id);
    assert_string_equal(a->rule_name, "merchant_velocity_1h");
    assert_int_equal(a->rule_version, 2);
    assert_int_equal(a->state, ALERT(OPEN));
    assert_int_equal(a->n_payment_ids, 4);
    for (size_t i = 0; i < a->n_payment_ids; i++) {
        assert_string_not_equal(a->payment_ids[i], "pay_v0");
    }
    reply_free(&r);
}

/* A payer's payments above EUR 1,000.00 within ten minutes, whichever merchants they pay. */
static void test_velocity_per_payer(void **state)
{
    (void)state;
    assert_int_equal(record("pay_p1", "mer_a", "card_fp_1", 60000, "", 900, NULL), 0); /* old */
    assert_int_equal(record("pay_p2", "mer_b", "card_fp_1", 60000, "", 300, NULL), 0);
    assert_int_equal(record("pay_p3", "mer_c", "card_fp_2", 60000, "", 200, NULL), 0);
    char id[64];
    assert_int_equal(record("pay_p4", "mer_c", "card_fp_1", 50000, "", 100, id), 1);
    assert_int_equal(alerts_of("payer_amount_10m", "pay_p%"), 1);
}

static reply resolve(const char *key, const char *alert, int escalate)
{
    P(ResolveAlertRequest) req = PAYWIRE__COMPLIANCE__V1__RESOLVE_ALERT_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.alert_id = (char *)alert;
    req.escalate = escalate;
    req.note = "looked at it";
    return call(MONITORING "ResolveAlert", &req.base,
                &paywire__compliance__v1__resolve_alert_response__descriptor);
}

static void test_alerts_resolve(void **state)
{
    (void)state;
    char a1[64], a2[64];
    assert_int_equal(record("pay_r1", "mer_r", "", 2000000, "", 0, a1), 1);
    assert_int_equal(record("pay_r2", "mer_r", "", 2000000, "", 0, a2), 1);
    reply r = resolve("res-1", a1, 0);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(ResolveAlertResponse) *)r.msg)->alert->state, ALERT(DISMISSED));
    reply_free(&r);
    r = resolve("res-1", a1, 0); /* a retry */
    assert_int_equal(r.code, PW_OK);
    reply_free(&r);
    r = resolve("res-1b", a1, 1);
    assert_int_equal(r.code, PW_FAILED_PRECONDITION);
    assert_string_equal(r.details.reason, "ALERT_CLOSED");
    reply_free(&r);
    /* Escalated: an investigation case of the merchant. */
    r = resolve("res-2", a2, 1);
    assert_int_equal(r.code, PW_OK);
    P(Alert) *a = ((P(ResolveAlertResponse) *)r.msg)->alert;
    assert_int_equal(a->state, ALERT(ESCALATED));
    char case_id[64];
    snprintf(case_id, sizeof(case_id), "%s", a->case_id);
    reply_free(&r);
    P(GetCaseRequest) g = PAYWIRE__COMPLIANCE__V1__GET_CASE_REQUEST__INIT;
    g.case_id = case_id;
    r = call("/paywire.compliance.v1.VerificationService/GetCase", &g.base,
             &paywire__compliance__v1__get_case_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(VerificationCase) *c = ((P(GetCaseResponse) *)r.msg)->case_;
    assert_int_equal(c->kind, PAYWIRE__COMPLIANCE__V1__CASE_KIND__CASE_KIND_INVESTIGATION);
    assert_string_equal(c->merchant_id, "mer_r");
    assert_string_equal(c->subject_id, a2);
    reply_free(&r);
    r = resolve("res-3", "alt_bad", 0);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "alert_id"));
    reply_free(&r);
    /* Each resolution is audited. */
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM audit_events WHERE action = "
                                               "'alert.resolved'"),
                     2);
}

/* The database taken away from the service (its connections ended, new ones refused): every
 * screening is UNAVAILABLE, never a CLEAR or an ALLOW; back, it answers again. */
static void test_screening_fail_closed(void **state)
{
    (void)state;
    char *names[] = {"Harriet Pennington"};
    P(Party) party = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    party.names = names;
    party.n_names = 1;
    P(ScreenPartyRequest) sp = PAYWIRE__COMPLIANCE__V1__SCREEN_PARTY_REQUEST__INIT;
    sp.party = &party;
    char db[128], sql[400];
    snprintf(db, sizeof(db), "%s", strrchr(db_url, '/') + 1);
    snprintf(sql, sizeof(sql),
             "ALTER DATABASE %s ALLOW_CONNECTIONS false; SELECT pg_terminate_backend(pid) FROM "
             "pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()",
             db, db);
    pw_test_db_exec(pw_test_db_admin_url(), sql);
    for (int i = 0; i < 4; i++) { /* both workers, every pooled connection */
        char key[32], pay[32];
        snprintf(key, sizeof(key), "down-%d", i);
        sp.idempotency_key = key;
        reply r = call("/paywire.compliance.v1.ScreeningService/ScreenParty", &sp.base,
                       &paywire__compliance__v1__screen_party_response__descriptor);
        if (r.code != PW_UNAVAILABLE) {
            fail_msg("ScreenParty with the database gone: %s %s", pw_status_str(r.code), r.message);
        }
        reply_free(&r);
        snprintf(pay, sizeof(pay), "pay_down_%d", i);
        r = screen(pay, "mer_down", 100, "DE");
        if (r.code != PW_UNAVAILABLE) {
            fail_msg("ScreenTransaction with the database gone: %s %s", pw_status_str(r.code),
                     r.message);
        }
        reply_free(&r);
    }
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", db);
    pw_test_db_exec(pw_test_db_admin_url(), sql);
    /* Back: the pool reconnects (allow it a few seconds), and the same request is answered. */
    pw_status last = PW_UNAVAILABLE;
    for (int i = 0; i < 100 && last != PW_OK; i++) {
        sp.idempotency_key = "down-0";
        reply r = call("/paywire.compliance.v1.ScreeningService/ScreenParty", &sp.base,
                       &paywire__compliance__v1__screen_party_response__descriptor);
        last = r.code;
        if (last == PW_OK) {
            assert_int_equal(((P(ScreenPartyResponse) *)r.msg)->outcome,
                             PAYWIRE__COMPLIANCE__V1__SCREENING_OUTCOME__SCREENING_OUTCOME_CLEAR);
        }
        reply_free(&r);
        if (last != PW_OK) {
            uv_sleep(100);
        }
    }
    assert_int_equal(last, PW_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_versioned),       cmocka_unit_test(test_rules_in_screening),
        cmocka_unit_test(test_velocity_per_merchant), cmocka_unit_test(test_velocity_per_payer),
        cmocka_unit_test(test_alerts_resolve),        cmocka_unit_test(test_screening_fail_closed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
