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
#include "finance_calls.h"
#include "svc_process.h"
#include "paywire/finance/v1/ledger.pw.h"
#include "paywire/finance/v1/settlement.pw.h"

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

/* A unary call with a JSON request; the status (the message into msg when not NULL). */
static pw_status call_json(const char *path, const ProtobufCMessageDescriptor *req_type,
                           const ProtobufCMessageDescriptor *resp_type, const char *json,
                           ProtobufCMessage **resp, char *msg, size_t cap)
{
    ProtobufCMessage *req = NULL;
    char err[256];
    if (pw_json_decode(req_type, json, strlen(json), NULL, &req, err, sizeof(err)) != PW_OK) {
        fail_msg("%s: %s", json, err);
    }
    pw_call_options o = {.timeout_ms = 20000};
    char *m = NULL;
    *resp = NULL;
    pw_status rv = pw_client_unary_blocking(ch, path, &o, req, resp_type, resp, &m, NULL);
    if (msg != NULL) {
        snprintf(msg, cap, "%s", m ? m : "");
    }
    pw_free(m);
    pw_protobuf_free(req);
    return rv;
}

static pw_status create_batch(const char *key, const char *merchant, const char *date,
                              ProtobufCMessage **resp, char *msg, size_t cap)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"%s\",\"merchantId\":\"%s\",\"currency\":\"USD\","
             "\"mode\":\"MODE_TEST\",\"settlementDate\":\"%s\"}",
             key, merchant, date);
    return call_json("/paywire.finance.v1.SettlementService/CreateSettlementBatch",
                     &paywire__finance__v1__create_settlement_batch_request__descriptor,
                     &paywire__finance__v1__create_settlement_batch_response__descriptor, json,
                     resp, msg, cap);
}

static Paywire__Finance__V1__SettlementBatch *batch_of(ProtobufCMessage *m)
{
    return ((Paywire__Finance__V1__CreateSettlementBatchResponse *)m)->batch;
}

/* The report's lines: their sum, and how many (into *n). */
static int64_t report_sum(const char *batch_id, int *n)
{
    return finance_report_sum(ch, batch_id, n);
}

/* M1's payable balance: posted credits − posted debits − pending debits of its available account.
 */
static long long payable(const char *merchant)
{
    char sql[256];
    snprintf(
        sql, sizeof(sql),
        "SELECT coalesce(sum(posted_credits - posted_debits - pending_debits), 0) FROM accounts"
        " WHERE owner = '%s' AND kind = 'merchant_available'",
        merchant);
    return scalar(sql);
}

static char first_batch[40], refund_batch[40];
static long long first_net;

/* Runs after the availability test: M1's captures are available. */
static void test_settlement_batch_pays_exactly_the_payable_balance(void **state)
{
    (void)state;
    char msg[512];
    ProtobufCMessage *m;
    /* A refund reserved against M1's funds (orchestration's step 2): a line of its own. */
    assert_int_equal(
        call_json(
            "/paywire.finance.v1.LedgerService/CreateTransfer",
            &paywire__finance__v1__create_transfer_request__descriptor,
            &paywire__finance__v1__create_transfer_response__descriptor,
            "{\"transfer\":{\"mode\":\"MODE_TEST\",\"id\":\"txf_refund_ref_s1\",\"kind\":"
            "\"refund\",\"entries\":[{\"account\":{\"merchant\":{\"merchantId\":\"" M1 "\","
            "\"kind\":\"ACCOUNT_KIND_MERCHANT_AVAILABLE\",\"currency\":\"USD\"}},\"amount\":"
            "{\"amountMinor\":\"500\",\"currency\":\"USD\"},\"side\":\"NORMAL_BALANCE_DEBIT\","
            "\"purpose\":\"refund\"},{\"account\":{\"platform\":{\"kind\":"
            "\"ACCOUNT_KIND_PARTNER_RECEIVABLE\",\"currency\":\"USD\",\"counterparty\":"
            "\"acq1\"}},\"amount\":{\"amountMinor\":\"500\",\"currency\":\"USD\"},\"side\":"
            "\"NORMAL_BALANCE_CREDIT\",\"purpose\":\"refund\"}]},\"pending\":true,"
            "\"balanceCheck\":\"BALANCE_CHECK_MERCHANT_FUNDS\"}",
            &m, msg, sizeof(msg)),
        PW_OK);
    pw_protobuf_free(m);
    long long owed = payable(M1);
    assert_true(owed > 0);
    assert_int_equal(create_batch("stl-m1-1", M1, "2026-12-10", &m, msg, sizeof(msg)), PW_OK);
    Paywire__Finance__V1__SettlementBatch *b = batch_of(m);
    assert_int_equal(b->state, PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_READY);
    assert_int_equal(b->net_payout->amount_minor, owed);
    assert_int_equal(b->refunded->amount_minor, 500);
    assert_int_equal(b->gross_captured->amount_minor - b->refunded->amount_minor -
                         b->fees->amount_minor - b->reserve_withheld->amount_minor +
                         b->other->amount_minor,
                     b->net_payout->amount_minor);
    char id[40];
    snprintf(id, sizeof(id), "%s", b->id);
    snprintf(first_batch, sizeof(first_batch), "%s", b->id);
    first_net = owed;
    /* The report's lines sum to the net; the net left available for clearing. */
    int lines;
    assert_int_equal(report_sum(id, &lines), owed);
    assert_int_equal(lines, scalar("SELECT count(*) FROM settlement_links"));
    assert_int_equal(payable(M1), 0);
    assert_int_equal(scalar("SELECT posted_credits FROM accounts WHERE kind ="
                            " 'settlement_clearing' AND currency = 'USD'"),
                     owed);
    pw_protobuf_free(m);
    /* The same key again: the same batch, no second payout. Another key for the day: refused. */
    assert_int_equal(create_batch("stl-m1-1", M1, "2026-12-10", &m, msg, sizeof(msg)), PW_OK);
    assert_string_equal(batch_of(m)->id, id);
    pw_protobuf_free(m);
    assert_int_equal(scalar("SELECT count(*) FROM transfers WHERE kind = 'payout'"), 1);
    assert_int_equal(create_batch("stl-m1-other", M1, "2026-12-10", &m, msg, sizeof(msg)),
                     PW_ALREADY_EXISTS);
    assert_non_null(strstr(msg, id));
    /* The next day has nothing new: carried forward, nothing linked or moved. */
    assert_int_equal(create_batch("stl-m1-2", M1, "2026-12-11", &m, msg, sizeof(msg)), PW_OK);
    assert_int_equal(batch_of(m)->state,
                     PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_CARRIED_FORWARD);
    assert_int_equal(batch_of(m)->net_payout->amount_minor, 0);
    pw_protobuf_free(m);
    /* The refund fails: its reservation is released, a +500 line for the next batch. */
    assert_int_equal(call_json("/paywire.finance.v1.LedgerService/VoidTransfer",
                               &paywire__finance__v1__void_transfer_request__descriptor,
                               &paywire__finance__v1__void_transfer_response__descriptor,
                               "{\"transferId\":\"txf_refund_ref_s1\",\"mode\":\"MODE_TEST\"}", &m,
                               msg, sizeof(msg)),
                     PW_OK);
    pw_protobuf_free(m);
    assert_int_equal(create_batch("stl-m1-3", M1, "2026-12-12", &m, msg, sizeof(msg)), PW_OK);
    assert_int_equal(batch_of(m)->state, PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_READY);
    assert_int_equal(batch_of(m)->net_payout->amount_minor, 500);
    snprintf(refund_batch, sizeof(refund_batch), "%s", batch_of(m)->id);
    assert_int_equal(report_sum(batch_of(m)->id, &lines), 500);
    assert_int_equal(lines, 1);
    pw_protobuf_free(m);
    assert_int_equal(payable(M1), 0);
    assert_int_equal(scalar("SELECT count(*) FROM (SELECT mode, currency FROM accounts GROUP BY"
                            " mode, currency HAVING sum(posted_debits) <> sum(posted_credits)"
                            " OR sum(pending_debits) <> sum(pending_credits)) x"),
                     0);
    /* Bad input names the field. */
    assert_int_equal(create_batch("stl-bad", "merchant-1", "2026-12-12", &m, msg, sizeof(msg)),
                     PW_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "merchant_id"));
    assert_int_equal(create_batch("stl-bad", M1, "2026-13-01", &m, msg, sizeof(msg)),
                     PW_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "settlement_date"));
}

static pw_status mark_paid(const char *batch, const char *reference, ProtobufCMessage **resp,
                           char *msg, size_t cap)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"paid-%s\",\"batchId\":\"%s\",\"payoutReference\":\"%s\","
             "\"mode\":\"MODE_TEST\"}",
             reference, batch, reference);
    return call_json("/paywire.finance.v1.SettlementService/MarkBatchPaid",
                     &paywire__finance__v1__mark_batch_paid_request__descriptor,
                     &paywire__finance__v1__mark_batch_paid_response__descriptor, json, resp, msg,
                     cap);
}

static pw_status confirm(const char *batch, int succeeded, ProtobufCMessage **resp, char *msg,
                         size_t cap)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"confirm-%s-%d\",\"batchId\":\"%s\",\"succeeded\":%s,"
             "\"failureReason\":\"%s\",\"mode\":\"MODE_TEST\"}",
             batch, succeeded, batch, succeeded ? "true" : "false", succeeded ? "" : "AC04 closed");
    return call_json("/paywire.finance.v1.SettlementService/ConfirmBatch",
                     &paywire__finance__v1__confirm_batch_request__descriptor,
                     &paywire__finance__v1__confirm_batch_response__descriptor, json, resp, msg,
                     cap);
}

static int state_of(ProtobufCMessage *m)
{
    return (int)((Paywire__Finance__V1__ConfirmBatchResponse *)m)->batch->state;
}

static long long clearing(void)
{
    return scalar("SELECT coalesce(sum(posted_credits - posted_debits), 0) FROM accounts WHERE"
                  " kind = 'settlement_clearing'");
}

static long long cash(void)
{
    return scalar("SELECT coalesce(sum(posted_debits - posted_credits), 0) FROM accounts WHERE"
                  " kind = 'platform_cash' AND owner = 'bank_1'");
}

/* Runs after the batches test: its two READY batches are paid, settled, returned. */
static void test_settlement_paid_settled_and_returned(void **state)
{
    (void)state;
    char msg[512];
    ProtobufCMessage *m;
    long long clearing0 = clearing(), cash0 = cash(), available0 = payable(M1);
    /* Paid: IN_TRANSIT with the bank's reference, once. */
    assert_int_equal(mark_paid(first_batch, "bnk_ref_1", &m, msg, sizeof(msg)), PW_OK);
    assert_int_equal(state_of(m), PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_IN_TRANSIT);
    pw_protobuf_free(m);
    assert_int_equal(mark_paid(first_batch, "bnk_ref_1", &m, msg, sizeof(msg)), PW_OK);
    pw_protobuf_free(m);
    assert_int_equal(mark_paid(first_batch, "bnk_ref_2", &m, msg, sizeof(msg)),
                     PW_FAILED_PRECONDITION);
    /* Settled: clearing → our cash, once however often it is confirmed. */
    assert_int_equal(confirm(first_batch, 1, &m, msg, sizeof(msg)), PW_OK);
    assert_int_equal(state_of(m), PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_SETTLED);
    pw_protobuf_free(m);
    assert_int_equal(confirm(first_batch, 1, &m, msg, sizeof(msg)), PW_OK);
    pw_protobuf_free(m);
    assert_int_equal(clearing(), clearing0 - first_net);
    assert_int_equal(cash(), cash0 - first_net);
    /* The bank's statement debit matches txf_paid_ by the batch id (the EndToEndId). */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM transfers WHERE id = 'txf_paid_%s' AND partner_reference = '%s'",
             first_batch, first_batch);
    assert_int_equal(scalar(sql), 1);
    /* A late return after settlement: back from our cash to the merchant's available funds. */
    assert_int_equal(confirm(first_batch, 0, &m, msg, sizeof(msg)), PW_OK);
    assert_int_equal(state_of(m), PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_FAILED);
    pw_protobuf_free(m);
    assert_int_equal(cash(), cash0);
    assert_int_equal(payable(M1), available0 + first_net);
    /* The refund batch fails before it was ever sent: clearing back to available. */
    assert_int_equal(confirm(refund_batch, 0, &m, msg, sizeof(msg)), PW_OK);
    pw_protobuf_free(m);
    assert_int_equal(confirm(refund_batch, 1, &m, msg, sizeof(msg)), PW_FAILED_PRECONDITION);
    assert_int_equal(clearing(), clearing0 - first_net - 500);
    assert_int_equal(payable(M1), available0 + first_net + 500);
    assert_int_equal(scalar("SELECT count(*) FROM transfers WHERE kind IN ('paid', 'return')"), 3);
    /* What came back is paid by the next batch, as returned payouts. */
    assert_int_equal(create_batch("stl-m1-4", M1, "2026-12-13", &m, msg, sizeof(msg)), PW_OK);
    assert_int_equal(batch_of(m)->net_payout->amount_minor, first_net + 500);
    assert_int_equal(batch_of(m)->other->amount_minor, first_net + 500);
    pw_protobuf_free(m);
    assert_int_equal(scalar("SELECT count(*) FROM (SELECT mode, currency FROM accounts GROUP BY"
                            " mode, currency HAVING sum(posted_debits) <> sum(posted_credits)"
                            " OR sum(pending_debits) <> sum(pending_credits)) x"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settlement_available_at_t_plus_n_once),
        cmocka_unit_test(test_settlement_batch_pays_exactly_the_payable_balance),
        cmocka_unit_test(test_settlement_paid_settled_and_returned),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
