/*
 * Finance's audit outbox reaches compliance (svc_audit): a real finance-server
 * publishing to a real compliance-server over mTLS (finance's own
 * certificate, spiffe://paywire/finance). A fee schedule change, made through
 * FeeService, arrives once as an event of source "finance"; with compliance
 * down, the next change waits in the outbox and arrives once it is back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <paywire/db.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/finance/v1/fees.pw.h"

static svc_process compliance = {.name = "compliance",
                                 .binary = PW_COMPLIANCE_SERVER,
                                 .health_service = "paywire.compliance.v1.ScreeningService"};
static svc_process finance = {.name = "finance",
                              .binary = PW_FINANCE_SERVER,
                              .health_service = "paywire.finance.v1.LedgerService"};
static char finance_db[512], compliance_db[512];
static uv_loop_t loop;
static pw_channel *fin;

static void start_compliance(void)
{
    svc_process_start(&compliance, compliance_db,
                      "log_level = warning\nworkers = 1\n"
                      "encryption_key = "
                      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
                      "internal_identities = spiffe://paywire/tests,spiffe://paywire/finance\n");
    pw_channel *ch = svc_process_channel(&compliance, &loop);
    svc_process_wait_serving(&compliance, ch);
    pw_channel_close(ch, NULL, NULL);
}

/* A default schedule (one rule) effective two hours from now, through FeeService. */
static void set_schedule(const char *key, uint32_t bps)
{
    Paywire__Finance__V1__FeeRule rule = PAYWIRE__FINANCE__V1__FEE_RULE__INIT;
    rule.method = "card";
    rule.currency = "USD";
    rule.basis_points = bps;
    rule.fixed_minor = 30;
    Paywire__Finance__V1__FeeRule *rules[] = {&rule};
    Google__Protobuf__Timestamp eff = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    eff.seconds = (int64_t)time(NULL) + 7200 + bps;
    Paywire__Finance__V1__FeeSchedule s = PAYWIRE__FINANCE__V1__FEE_SCHEDULE__INIT;
    s.merchant_id = "";
    s.rules = rules;
    s.n_rules = 1;
    s.effective_time = &eff;
    Paywire__Finance__V1__SetFeeScheduleRequest req =
        PAYWIRE__FINANCE__V1__SET_FEE_SCHEDULE_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.schedule = &s;
    ProtobufCMessage *resp = NULL;
    char *msg = NULL;
    pw_call_options o = {.timeout_ms = 20000};
    pw_status rv = pw_client_unary_blocking(
        fin, "/paywire.finance.v1.FeeService/SetFeeSchedule", &o, &req.base,
        &paywire__finance__v1__set_fee_schedule_response__descriptor, &resp, &msg, NULL);
    if (rv != PW_OK) {
        fail_msg("SetFeeSchedule: %s %s", pw_status_str(rv), msg ? msg : "");
    }
    pw_free(msg);
    pw_protobuf_free(resp);
}

static long long events(void)
{
    return pw_test_db_scalar(compliance_db,
                             "SELECT count(*) FROM audit_events WHERE source = 'finance'");
}

static void test_finance_audit_reaches_compliance(void **state)
{
    (void)state;
    long long rows = pw_test_db_scalar(finance_db, "SELECT count(*) FROM audit_outbox");
    set_schedule("audit-1", 250);
    assert_int_equal(pw_test_db_scalar(finance_db, "SELECT count(*) FROM audit_outbox"), rows + 1);
    assert_int_equal(pw_test_db_wait_scalar(compliance_db,
                                            "SELECT count(*) FROM audit_events WHERE source ="
                                            " 'finance'",
                                            rows + 1, 15000),
                     rows + 1);
    assert_int_equal(pw_test_db_wait_scalar(finance_db,
                                            "SELECT count(*) FROM audit_outbox WHERE"
                                            " published_time IS NULL",
                                            0, 5000),
                     0);
    /* The event is the outbox row: same subject and action. */
    assert_int_equal(
        pw_test_db_scalar(compliance_db,
                          "SELECT count(*) FROM audit_events WHERE source = 'finance' AND"
                          " subject_id LIKE 'fsc_%' AND action = 'fees.schedule_set'"),
        rows + 1);

    /* Compliance goes away: the next change waits in the outbox, then arrives once. */
    svc_process_stop(&compliance);
    set_schedule("audit-2", 260);
    assert_true(pw_test_db_wait_scalar(finance_db,
                                       "SELECT count(*) FROM audit_outbox WHERE attempts > 0"
                                       " AND published_time IS NULL",
                                       1, 15000) == 1);
    start_compliance();
    assert_int_equal(pw_test_db_wait_scalar(compliance_db,
                                            "SELECT count(*) FROM audit_events WHERE source ="
                                            " 'finance'",
                                            rows + 2, 30000),
                     rows + 2);
    assert_int_equal(events(),
                     pw_test_db_scalar(compliance_db, "SELECT count(DISTINCT subject_id) FROM"
                                                      " audit_events WHERE source = 'finance'"));
}

static int setup(void **state)
{
    (void)state;
    pw_test_db_exec(pw_test_db_admin_url(),
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                    "'compliance_app') THEN CREATE ROLE compliance_app LOGIN; END IF; END $$");
    pw_test_db_create("audit_f", finance_db, sizeof(finance_db));
    pw_test_db_create("audit_fc", compliance_db, sizeof(compliance_db));
    svc_process_migrate(finance_db, PW_SOURCE_DIR "/services/finance/migrations",
                        "paywire.migrate.finance");
    svc_process_migrate(compliance_db, PW_SOURCE_DIR "/services/compliance/migrations",
                        "paywire.migrate.compliance");
    uv_loop_init(&loop);
    svc_process_prepare(&compliance);
    svc_process_prepare(&finance);
    /* One CA for both, so each verifies the other. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp %s/*.crt %s/*.key %s/", compliance.dir, compliance.dir,
             finance.dir);
    assert_int_equal(system(cmd), 0);
    start_compliance();
    char extra[512];
    snprintf(extra, sizeof(extra),
             "log_level = warning\nworkers = 1\nledger_check_seconds = 0\n"
             "audit_target = localhost:%d\n",
             compliance.port);
    svc_process_start(&finance, finance_db, extra);
    fin = svc_process_channel(&finance, &loop);
    svc_process_wait_serving(&finance, fin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pw_channel_close(fin, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&finance);
    svc_process_stop(&compliance);
    svc_process_cleanup(&finance);
    svc_process_cleanup(&compliance);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finance_audit_reaches_compliance),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
