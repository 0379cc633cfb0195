/*
 * Settlement's availability job end to end: a real finance-server whose job
 * runs every second of business time; captures booked through
 * CreateTransfer as orchestration books them; the business clock moved a day
 * at a time. A capture's net must become available exactly at its
 * merchant's T+N, once, whatever the number of runs, pages or merchants,
 * with the ledger balanced.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/db.h>
#include <paywire/json.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/finance/v1/ledger.pw.h"

static char db_url[512];
static svc_process proc = {
    .name = "finance",
    .binary = PW_FINANCE_SERVER,
    .health_service = "paywire.finance.v1.LedgerService",
};
static uv_loop_t loop;
static pw_channel *ch;

#define M1 "mer_00000000000000000000000001"
#define M2 "mer_00000000000000000000000002"

static int group_setup(void **state)
{
    (void)state;
    svc_process_prepare(&proc);
    pw_test_db_create("finance_settlement_test", db_url, sizeof(db_url));
    char err[512];
    assert_int_equal(pw_db_migrate(db_url, PW_SOURCE_DIR "/services/finance/migrations",
                                   "paywire.migrate.finance", NULL, err, sizeof(err)),
                     PW_OK);
    /* M2 settles later than the default T+2. */
    pw_test_db_exec(db_url, "INSERT INTO settlement_settings VALUES ('" M2 "', 5)");
    svc_process_start(&proc, db_url,
                      "log_level = warning\nworkers = 2\navailability_job_seconds = 1\n"
                      "recon_job_seconds = 0\n");
    uv_loop_init(&loop);
    ch = svc_process_channel(&proc, &loop);
    svc_process_wait_serving(&proc, ch);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (ch != NULL) {
        pw_channel_close(ch, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    svc_process_stop(&proc);
    svc_process_cleanup(&proc);
    return 0;
}

/* txf_capture_<cap>: gross C from the partner to the merchant, fee F to platform revenue. */
static void capture(const char *cap, const char *merchant, long long gross, long long fee)
{
    char json[4096];
    snprintf(
        json, sizeof(json),
        "{\"transfer\":{\"mode\":\"MODE_TEST\",\"id\":\"txf_capture_%s\",\"kind\":\"capture\","
        "\"partnerReference\":\"sim1_%s\",\"entries\":["
        "{\"account\":{\"platform\":{\"kind\":\"ACCOUNT_KIND_PARTNER_RECEIVABLE\","
        "\"currency\":\"USD\",\"counterparty\":\"acq1\"}},\"amount\":{\"amountMinor\":\"%lld\","
        "\"currency\":\"USD\"},\"side\":\"NORMAL_BALANCE_DEBIT\",\"purpose\":\"payment\"},"
        "{\"account\":{\"merchant\":{\"merchantId\":\"%s\",\"kind\":"
        "\"ACCOUNT_KIND_MERCHANT_PENDING\",\"currency\":\"USD\"}},\"amount\":{\"amountMinor\":"
        "\"%lld\",\"currency\":\"USD\"},\"side\":\"NORMAL_BALANCE_CREDIT\",\"purpose\":"
        "\"payment\"},"
        "{\"account\":{\"merchant\":{\"merchantId\":\"%s\",\"kind\":"
        "\"ACCOUNT_KIND_MERCHANT_PENDING\",\"currency\":\"USD\"}},\"amount\":{\"amountMinor\":"
        "\"%lld\",\"currency\":\"USD\"},\"side\":\"NORMAL_BALANCE_DEBIT\",\"purpose\":\"fee\"},"
        "{\"account\":{\"platform\":{\"kind\":\"ACCOUNT_KIND_PLATFORM_REVENUE\","
        "\"currency\":\"USD\"}},\"amount\":{\"amountMinor\":\"%lld\",\"currency\":\"USD\"},"
        "\"side\":\"NORMAL_BALANCE_CREDIT\",\"purpose\":\"fee\"}]},"
        "\"balanceCheck\":\"BALANCE_CHECK_NONE\"}",
        cap, cap, gross, merchant, gross, merchant, fee, fee);
    ProtobufCMessage *req = NULL;
    char err[256];
    if (pw_json_decode(&paywire__finance__v1__create_transfer_request__descriptor, json,
                       strlen(json), NULL, &req, err, sizeof(err)) != PW_OK) {
        fail_msg("%s", err);
    }
    pw_call_options o = {.timeout_ms = 20000};
    ProtobufCMessage *resp = NULL;
    char *msg = NULL;
    pw_status rv = pw_client_unary_blocking(
        ch, "/paywire.finance.v1.LedgerService/CreateTransfer", &o, req,
        &paywire__finance__v1__create_transfer_response__descriptor, &resp, &msg, NULL);
    if (rv != PW_OK) {
        fail_msg("capture %s: %s %s", cap, pw_status_str(rv), msg ? msg : "");
    }
    pw_free(msg);
    pw_protobuf_free(resp);
    pw_protobuf_free(req);
}

static long long scalar(const char *sql)
{
    return pw_test_db_scalar(db_url, sql);
}

/* A merchant account's posted balance, credit-normal (credits − debits). */
static long long balance(const char *merchant, const char *kind)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(sum(posted_credits - posted_debits), 0) FROM accounts WHERE owner ="
             " '%s' AND kind = '%s'",
             merchant, kind);
    return scalar(sql);
}

static void move_days(int days)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE svc_clock SET offset_ms = offset_ms + %d * 86400000", days);
    pw_test_db_exec(db_url, sql);
}

static long long avail_count(void)
{
    return scalar("SELECT count(*) FROM transfers WHERE kind = 'avail'");
}

static void test_settlement_available_at_t_plus_n_once(void **state)
{
    (void)state;
    enum { MANY = 120 }; /* more than one page of the job's (100) */
    capture("cap_one", M1, 10000, 290);
    char cap[40];
    for (int i = 0; i < MANY; i++) {
        snprintf(cap, sizeof(cap), "cap_m%03d", i);
        capture(cap, M1, 1000 + i, 30);
    }
    capture("cap_two", M2, 5000, 150);
    long long m1_gross = 10000, m1_fees = 290;
    for (int i = 0; i < MANY; i++) {
        m1_gross += 1000 + i;
        m1_fees += 30;
    }
    /* T+0 and T+1: nothing is available yet (the job runs every second meanwhile). */
    uv_sleep(2500);
    assert_int_equal(avail_count(), 0);
    move_days(1);
    uv_sleep(2500);
    assert_int_equal(avail_count(), 0);
    assert_int_equal(balance(M1, "merchant_pending"), m1_gross - m1_fees);
    /* T+2: M1's captures, all pages of them; M2 (T+5) not yet. */
    move_days(1);
    assert_int_equal(pw_test_db_wait_scalar(db_url,
                                            "SELECT count(*) FROM transfers WHERE kind = 'avail'",
                                            MANY + 1, 30000),
                     MANY + 1);
    assert_int_equal(balance(M1, "merchant_pending"), 0);
    assert_int_equal(balance(M1, "merchant_available"), m1_gross - m1_fees);
    assert_int_equal(balance(M2, "merchant_available"), 0);
    assert_int_equal(scalar("SELECT count(*) FROM entries WHERE transfer_id ="
                            " 'txf_avail_cap_one'"),
                     4);
    assert_int_equal(scalar("SELECT count(*) FROM transfers WHERE id = 'txf_avail_cap_one'"
                            " AND reference = 'txf_capture_cap_one'"),
                     1);
    /* More runs book nothing more. */
    uv_sleep(2500);
    assert_int_equal(avail_count(), MANY + 1);
    assert_true(scalar("SELECT runs FROM svc_jobs WHERE name = 'availability'") >= 3);
    assert_int_equal(scalar("SELECT count(*) FROM svc_jobs WHERE last_error IS NOT NULL"), 0);
    /* T+5: M2's. */
    move_days(3);
    assert_int_equal(pw_test_db_wait_scalar(db_url,
                                            "SELECT count(*) FROM transfers WHERE kind = 'avail'",
                                            MANY + 2, 30000),
                     MANY + 2);
    assert_int_equal(balance(M2, "merchant_pending"), 0);
    assert_int_equal(balance(M2, "merchant_available"), 5000 - 150);
    /* The ledger balances per currency, posted and pending. */
    assert_int_equal(scalar("SELECT count(*) FROM (SELECT mode, currency FROM accounts GROUP BY"
                            " mode, currency HAVING sum(posted_debits) <> sum(posted_credits)"
                            " OR sum(pending_debits) <> sum(pending_credits)) x"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settlement_available_at_t_plus_n_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
