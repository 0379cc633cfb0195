/*
 * The merchant's audit outbox reaches compliance (svc_outbox + audit.c): a
 * real merchant-server publishing to a real compliance-server over mTLS
 * (merchant's own certificate, spiffe://paywire/merchant). Rows delivered
 * once each; compliance down: rows wait, are retried with backoff, and arrive
 * once compliance is back; a row compliance refuses for good (a float in its
 * detail) is dead-lettered and does not hold up the rows after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/db.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"

static svc_process compliance = {.name = "compliance",
                                 .binary = PW_COMPLIANCE_SERVER,
                                 .health_service = "paywire.compliance.v1.ScreeningService"};
static svc_process merchant = {.name = "merchant",
                               .binary = PW_MERCHANT_SERVER,
                               .health_service = "paywire.merchant.v1.MerchantService"};
static char merchant_db[512], compliance_db[512];
static uv_loop_t loop;

static void start_compliance(void)
{
    svc_process_start(&compliance, compliance_db,
                      "log_level = warning\nworkers = 1\n"
                      "encryption_key = "
                      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
                      "internal_identities = spiffe://paywire/tests,spiffe://paywire/merchant\n");
    pw_channel *ch = svc_process_channel(&compliance, &loop);
    svc_process_wait_serving(&compliance, ch);
    pw_channel_close(ch, NULL, NULL);
}

/* Audit rows as merchant's transactions write them (rows.c): n of them, subjects prefix-0.. */
static void add_rows(const char *prefix, int n, const char *detail)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO audit_outbox (actor, action, subject_id, detail) SELECT"
             " 'spiffe://paywire/operator', 'merchant.updated', '%s-' || i, '%s'::jsonb"
             " FROM generate_series(0, %d) i",
             prefix, detail, n - 1);
    pw_test_db_exec(merchant_db, sql);
}

static long long in_compliance(const char *prefix)
{
    char sql[256];
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM audit_events WHERE source = 'merchant' AND subject_id LIKE '%s-%%'",
        prefix);
    return pw_test_db_scalar(compliance_db, sql);
}

static void test_merchant_audit_reaches_compliance(void **state)
{
    (void)state;
    add_rows("first", 25, "{\"n\": 1}");
    assert_int_equal(pw_test_db_wait_scalar(compliance_db,
                                            "SELECT count(*) FROM audit_events WHERE subject_id"
                                            " LIKE 'first-%'",
                                            25, 15000),
                     25);
    assert_int_equal(pw_test_db_wait_scalar(merchant_db,
                                            "SELECT count(*) FROM audit_outbox WHERE"
                                            " published_time IS NULL",
                                            0, 5000),
                     0);
    /* Each event once: one per subject. */
    assert_int_equal(
        pw_test_db_scalar(compliance_db, "SELECT count(DISTINCT subject_id) FROM audit_events"),
        in_compliance("first"));

    /* Compliance goes away: rows wait and are retried. */
    svc_process_stop(&compliance);
    add_rows("while-down", 10, "{}");
    assert_true(pw_test_db_wait_scalar(merchant_db,
                                       "SELECT count(*) FROM audit_outbox WHERE attempts > 0"
                                       " AND subject_id LIKE 'while-down-%'",
                                       10, 15000) == 10);
    assert_int_equal(pw_test_db_scalar(merchant_db, "SELECT count(*) FROM audit_outbox WHERE"
                                                    " published_time IS NOT NULL AND"
                                                    " subject_id LIKE 'while-down-%'"),
                     0);
    start_compliance();
    assert_int_equal(pw_test_db_wait_scalar(compliance_db,
                                            "SELECT count(*) FROM audit_events WHERE subject_id"
                                            " LIKE 'while-down-%'",
                                            10, 30000),
                     10);

    /* Refused for good: dead-lettered, and the rows after it still arrive. */
    add_rows("refused", 1, "{\"rate\": 1.5}");
    add_rows("after", 3, "{}");
    assert_int_equal(pw_test_db_wait_scalar(compliance_db,
                                            "SELECT count(*) FROM audit_events WHERE subject_id"
                                            " LIKE 'after-%'",
                                            3, 15000),
                     3);
    assert_int_equal(pw_test_db_wait_scalar(merchant_db,
                                            "SELECT count(*) FROM audit_outbox WHERE dead_time IS"
                                            " NOT NULL AND last_error LIKE 'INVALID_ARGUMENT%'",
                                            1, 5000),
                     1);
    assert_int_equal(in_compliance("refused"), 0);
    /* Still each once. */
    assert_int_equal(
        pw_test_db_scalar(compliance_db, "SELECT count(*) FROM audit_events"),
        pw_test_db_scalar(compliance_db, "SELECT count(DISTINCT subject_id) FROM audit_events"));
}

static int setup(void **state)
{
    (void)state;
    pw_test_db_exec(pw_test_db_admin_url(),
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                    "'compliance_app') THEN CREATE ROLE compliance_app LOGIN; END IF; END $$");
    pw_test_db_create("audit_m", merchant_db, sizeof(merchant_db));
    pw_test_db_create("audit_c", compliance_db, sizeof(compliance_db));
    svc_process_migrate(merchant_db, PW_SOURCE_DIR "/services/merchant/migrations",
                        "paywire.migrate.merchant");
    svc_process_migrate(compliance_db, PW_SOURCE_DIR "/services/compliance/migrations",
                        "paywire.migrate.compliance");
    uv_loop_init(&loop);
    svc_process_prepare(&compliance);
    svc_process_prepare(&merchant);
    /* One CA for both, so each verifies the other. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp %s/*.crt %s/*.key %s/", compliance.dir, compliance.dir,
             merchant.dir);
    assert_int_equal(system(cmd), 0);
    start_compliance();
    char extra[512];
    snprintf(extra, sizeof(extra),
             "log_level = warning\nworkers = 1\n"
             "encryption_key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
             "audit_target = localhost:%d\n",
             compliance.port);
    svc_process_start(&merchant, merchant_db, extra);
    pw_channel *ch = svc_process_channel(&merchant, &loop);
    svc_process_wait_serving(&merchant, ch);
    pw_channel_close(ch, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&merchant);
    svc_process_stop(&compliance);
    svc_process_cleanup(&merchant);
    svc_process_cleanup(&compliance);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merchant_audit_reaches_compliance),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
