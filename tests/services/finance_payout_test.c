/*
 * Settlement's payout job end to end: real merchant-server (the merchants'
 * bank destinations, sealed there), payout-bank-sim and finance-server with
 * its payout job every second. A READY batch must reach the bank once, as
 * one instruction, whatever is lost on the way (the bank's answer, or the
 * finance process killed while the instruction is in flight), and go
 * IN_TRANSIT → SETTLED (clearing → our cash) or, returned by the creditor's
 * bank, FAILED (clearing → available), the next batch paying it once. The
 * ledger balances per currency after every step; the account numbers never
 * reach finance's log.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <paywire/db.h>
#include <paywire/json.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/finance/v1/ledger.pw.h"
#include "paywire/finance/v1/settlement.pw.h"
#include "paywire/merchant/v1/merchant.pw.h"

static char fin_db[512], mer_db[512], bank_db[512];
static svc_process fin = {.name = "finance",
                          .binary = PW_FINANCE_SERVER,
                          .health_service = "paywire.finance.v1.LedgerService"};
static svc_process mer = {.name = "merchant",
                          .binary = PW_MERCHANT_SERVER,
                          .health_service = "paywire.merchant.v1.MerchantService"};
static svc_process bank = {.name = "bank",
                           .binary = PW_PAYOUT_BANK_SIM,
                           .health_service = "paywire.simulators.v1.PayoutBankService"};
static uv_loop_t loop;
static pw_channel *ch;

#define ROUTING  "021000021"
#define INTERNAL "internal_identities = spiffe://paywire/tests,spiffe://paywire/finance\n"

static void migrate(const char *url, const char *dir, const char *lock)
{
    char err[512];
    if (pw_db_migrate(url, dir, lock, NULL, err, sizeof(err)) != PW_OK) {
        fail_msg("migrations %s: %s", dir, err);
    }
}

static void start(svc_process *p, const char *db, const char *conf)
{
    svc_process_start(p, db, conf);
    pw_channel *c = svc_process_channel(p, &loop);
    svc_process_wait_serving(p, c);
    pw_channel_close(c, NULL, NULL);
}

static void start_bank(const char *extra)
{
    char conf[512];
    snprintf(
        conf, sizeof(conf),
        "log_level = warning\nworkers = 1\nsettle_delay_ms = 1500\ncharge_minor = 25\n" INTERNAL
        "%s",
        extra);
    start(&bank, bank_db, conf);
}

static void start_finance(void)
{
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "log_level = notice\nworkers = 2\navailability_job_seconds = 0\n"
             "recon_job_seconds = 0\npayout_job_seconds = 1\n"
             "merchant_target = localhost:%d\npayout_bank_target = localhost:%d\n",
             mer.port, bank.port);
    svc_process_start(&fin, fin_db, conf);
    if (ch != NULL) {
        pw_channel_close(ch, NULL, NULL);
    }
    ch = svc_process_channel(&fin, &loop);
    svc_process_wait_serving(&fin, ch);
}

static int group_setup(void **state)
{
    (void)state;
    pw_test_db_create("finance_payout_fin", fin_db, sizeof(fin_db));
    pw_test_db_create("finance_payout_mer", mer_db, sizeof(mer_db));
    pw_test_db_create("finance_payout_bank", bank_db, sizeof(bank_db));
    migrate(fin_db, PW_SOURCE_DIR "/services/finance/migrations", "paywire.migrate.finance");
    migrate(mer_db, PW_SOURCE_DIR "/services/merchant/migrations", "paywire.migrate.merchant");
    migrate(bank_db, PW_SOURCE_DIR "/services/finance/simulators/payout-bank-sim/migrations",
            "paywire.migrate.payout_bank_sim");
    uv_loop_init(&loop);
    svc_process *all[] = {&fin, &mer, &bank};
    for (int i = 0; i < 3; i++) {
        svc_process_prepare(all[i]);
    }
    /* One CA for all, so each verifies the others. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "bash %s/scripts/certs %s bank >/dev/null && for d in %s %s; do cp %s/*.crt %s/*.key"
             " $d/; done",
             PW_SOURCE_DIR, fin.dir, mer.dir, bank.dir, fin.dir, fin.dir);
    assert_int_equal(system(cmd), 0);
    start(&mer, mer_db,
          "log_level = warning\nworkers = 1\nencryption_key = "
          "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n" INTERNAL);
    /* The first bank loses every answer after recording the payout. */
    start_bank("lost_answer_percent = 100\n");
    start_finance();
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
    svc_process *all[] = {&fin, &bank, &mer};
    for (int i = 0; i < 3; i++) {
        svc_process_stop(all[i]);
        svc_process_cleanup(all[i]);
    }
    return 0;
}

/* ---- calls ---- */

static pw_status call_on(pw_channel *c, const char *path,
                         const ProtobufCMessageDescriptor *req_type,
                         const ProtobufCMessageDescriptor *resp_type, const char *json,
                         ProtobufCMessage **resp)
{
    ProtobufCMessage *req = NULL;
    char err[256];
    if (pw_json_decode(req_type, json, strlen(json), NULL, &req, err, sizeof(err)) != PW_OK) {
        fail_msg("%s: %s", json, err);
    }
    pw_call_options o = {.timeout_ms = 20000};
    char *m = NULL;
    ProtobufCMessage *out = NULL;
    pw_status rv = pw_client_unary_blocking(c, path, &o, req, resp_type, &out, &m, NULL);
    if (rv != PW_OK) {
        print_message("%s: %s %s\n", path, pw_status_str(rv), m ? m : "");
    }
    pw_free(m);
    pw_protobuf_free(req);
    if (resp != NULL) {
        *resp = out;
    } else {
        pw_protobuf_free(out);
    }
    return rv;
}

static pw_status merchant_call(const char *method, const ProtobufCMessageDescriptor *req_type,
                               const ProtobufCMessageDescriptor *resp_type, const char *json,
                               ProtobufCMessage **resp)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.merchant.v1.MerchantService/%s", method);
    pw_channel *mc = svc_process_channel(&mer, &loop);
    pw_status rv = call_on(mc, path, req_type, resp_type, json, resp);
    pw_channel_close(mc, NULL, NULL);
    return rv;
}

/* A merchant in the merchant service; its id into out. */
static void new_merchant(const char *name, char *out, size_t cap)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"%s\",\"merchant\":{\"displayName\":\"%s\",\"legalEntity\":"
             "{\"legalName\":\"%s Inc\",\"entityType\":\"ENTITY_TYPE_COMPANY\",\"taxId\":"
             "\"12-3456789\",\"registeredAddress\":{\"country\":\"US\"}},\"country\":\"US\","
             "\"merchantCategoryCode\":\"5942\",\"currencies\":[\"USD\"]}}",
             name, name, name);
    ProtobufCMessage *resp;
    assert_int_equal(
        merchant_call("CreateMerchant", &paywire__merchant__v1__create_merchant_request__descriptor,
                      &paywire__merchant__v1__create_merchant_response__descriptor, json, &resp),
        PW_OK);
    snprintf(out, cap, "%s", ((Paywire__Merchant__V1__CreateMerchantResponse *)resp)->merchant->id);
    pw_protobuf_free(resp);
}

/* A US bank account of merchant; its destination id into out. */
static void add_destination(const char *merchant, const char *account, char *out, size_t cap)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"dst-%s-%s\",\"merchantId\":\"%s\",\"destination\":"
             "{\"bankAccount\":{\"accountHolderName\":\"Holder %s\",\"country\":\"US\","
             "\"currency\":\"USD\",\"accountNumber\":\"%s\",\"routingCode\":\"" ROUTING "\"}}}",
             merchant, account, merchant, account, account);
    ProtobufCMessage *resp;
    assert_int_equal(
        merchant_call("AddSettlementDestination",
                      &paywire__merchant__v1__add_settlement_destination_request__descriptor,
                      &paywire__merchant__v1__add_settlement_destination_response__descriptor, json,
                      &resp),
        PW_OK);
    snprintf(out, cap, "%s",
             ((Paywire__Merchant__V1__AddSettlementDestinationResponse *)resp)->destination->id);
    pw_protobuf_free(resp);
}

static void remove_destination(const char *merchant, const char *destination)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"rm-%s\",\"merchantId\":\"%s\",\"destinationId\":\"%s\"}",
             destination, merchant, destination);
    assert_int_equal(
        merchant_call("RemoveSettlementDestination",
                      &paywire__merchant__v1__remove_settlement_destination_request__descriptor,
                      &paywire__merchant__v1__remove_settlement_destination_response__descriptor,
                      json, NULL),
        PW_OK);
}

/* Funds for merchant: a posted credit of its available account against a partner. */
static void fund(const char *id, const char *merchant, long long amount)
{
    char json[2048];
    snprintf(json, sizeof(json),
             "{\"transfer\":{\"mode\":\"MODE_TEST\",\"id\":\"txf_adjust_%s\",\"kind\":\"adjust\","
             "\"entries\":[{\"account\":{\"platform\":{\"kind\":"
             "\"ACCOUNT_KIND_PARTNER_RECEIVABLE\",\"currency\":\"USD\",\"counterparty\":"
             "\"acq1\"}},\"amount\":{\"amountMinor\":\"%lld\",\"currency\":\"USD\"},\"side\":"
             "\"NORMAL_BALANCE_DEBIT\",\"purpose\":\"payment\"},{\"account\":{\"merchant\":"
             "{\"merchantId\":\"%s\",\"kind\":\"ACCOUNT_KIND_MERCHANT_AVAILABLE\",\"currency\":"
             "\"USD\"}},\"amount\":{\"amountMinor\":\"%lld\",\"currency\":\"USD\"},\"side\":"
             "\"NORMAL_BALANCE_CREDIT\",\"purpose\":\"payment\"}]},"
             "\"balanceCheck\":\"BALANCE_CHECK_NONE\"}",
             id, amount, merchant, amount);
    assert_int_equal(call_on(ch, "/paywire.finance.v1.LedgerService/CreateTransfer",
                             &paywire__finance__v1__create_transfer_request__descriptor,
                             &paywire__finance__v1__create_transfer_response__descriptor, json,
                             NULL),
                     PW_OK);
}

/* A READY batch of merchant's USD for date; its id into out; its net returned. */
static long long ready_batch(const char *merchant, const char *date, char *out, size_t cap)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"stl-%s-%s\",\"merchantId\":\"%s\",\"currency\":\"USD\","
             "\"mode\":\"MODE_TEST\",\"settlementDate\":\"%s\"}",
             merchant, date, merchant, date);
    ProtobufCMessage *resp;
    assert_int_equal(call_on(ch, "/paywire.finance.v1.SettlementService/CreateSettlementBatch",
                             &paywire__finance__v1__create_settlement_batch_request__descriptor,
                             &paywire__finance__v1__create_settlement_batch_response__descriptor,
                             json, &resp),
                     PW_OK);
    Paywire__Finance__V1__SettlementBatch *b =
        ((Paywire__Finance__V1__CreateSettlementBatchResponse *)resp)->batch;
    assert_int_equal(b->state, PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_READY);
    snprintf(out, cap, "%s", b->id);
    long long net = b->net_payout->amount_minor;
    pw_protobuf_free(resp);
    return net;
}

/* ---- reads ---- */

/* A number from the database at url, the query formatted. */
__attribute__((format(printf, 2, 3))) static long long scalar_at(const char *url, const char *fmt,
                                                                 ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return pw_test_db_scalar(url, sql);
}

#define fin_scalar(...)  scalar_at(fin_db, __VA_ARGS__)
#define bank_scalar(...) scalar_at(bank_db, __VA_ARGS__)

/* Waits (up to 30 s) until batch is in state, its transfer booked. */
static void wait_state(const char *batch, const char *state)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM settlement_batches WHERE id = '%s' AND state = '%s'"
             " AND ledger_booked",
             batch, state);
    if (pw_test_db_wait_scalar(fin_db, sql, 1, 30000) != 1) {
        fail_msg("batch %s is %s, not %s", batch,
                 fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s'", batch)
                     ? "?"
                     : "gone",
                 state);
    }
}

static long long payable(const char *merchant)
{
    return fin_scalar("SELECT coalesce(sum(posted_credits - posted_debits - pending_debits), 0)"
                      " FROM accounts WHERE owner = '%s' AND kind = 'merchant_available'",
                      merchant);
}

static long long clearing(void)
{
    return pw_test_db_scalar(fin_db, "SELECT coalesce(sum(posted_credits - posted_debits), 0)"
                                     " FROM accounts WHERE kind = 'settlement_clearing'");
}

static long long cash(void)
{
    return pw_test_db_scalar(fin_db, "SELECT coalesce(sum(posted_debits - posted_credits), 0)"
                                     " FROM accounts WHERE kind = 'platform_cash'");
}

static void assert_balanced(void)
{
    assert_int_equal(pw_test_db_scalar(fin_db, "SELECT count(*) FROM (SELECT mode, currency FROM"
                                               " accounts GROUP BY mode, currency HAVING"
                                               " sum(posted_debits) <> sum(posted_credits) OR"
                                               " sum(pending_debits) <> sum(pending_credits)) x"),
                     0);
}

/* The instruction id of a batch: "pyo_" and the batch id's 26 characters. */
static const char *instruction_of(const char *batch, char *out, size_t cap)
{
    snprintf(out, cap, "pyo_%s", batch + 4);
    return out;
}

/* 1 when text occurs in the file at path. */
static int file_contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, text) != NULL;
    }
    fclose(f);
    return found;
}

static char mer_a[40], mer_b[40], mer_c[40];
static long long paid_total;

/* Every answer of the first bank is lost after it recorded the payout: the job's next run asks
 * the bank for the instruction instead of sending another, and the batch is paid once. */
static void test_payout_lost_answer_pays_once(void **state)
{
    (void)state;
    char dst[40], stl[40], pyo[40];
    new_merchant("Alpha", mer_a, sizeof(mer_a));
    add_destination(mer_a, "123456789", dst, sizeof(dst));
    fund("fund_a1", mer_a, 10000);
    long long net = ready_batch(mer_a, "2026-12-01", stl, sizeof(stl));
    assert_int_equal(net, 10000);
    instruction_of(stl, pyo, sizeof(pyo));
    assert_int_equal(clearing(), 10000);
    wait_state(stl, "IN_TRANSIT");
    wait_state(stl, "SETTLED");
    paid_total += net;
    /* One payout at the bank, submitted once (the job asked, it did not resend). */
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl),
                     1);
    assert_int_equal(bank_scalar("SELECT requests FROM payouts WHERE instruction_id = '%s'", pyo),
                     1);
    assert_int_equal(bank_scalar("SELECT amount_minor FROM payouts WHERE instruction_id = '%s'"
                                 " AND creditor_account = '" ROUTING ":123456789'",
                                 pyo),
                     10000);
    /* The batch carries the bank's reference; our instruction is CONFIRMED; one paid transfer. */
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches b JOIN payouts p ON"
                                " p.batch_id = b.id WHERE b.id = '%s' AND p.state = 'CONFIRMED'"
                                " AND b.payout_reference = p.bank_reference AND"
                                " p.bank_reference LIKE 'bnk_%%'",
                                stl),
                     1);
    assert_int_equal(fin_scalar("SELECT count(*) FROM transfers WHERE id = 'txf_paid_%s'", stl), 1);
    assert_int_equal(clearing(), 0);
    assert_int_equal(cash(), -paid_total);
    assert_int_equal(payable(mer_a), 0);
    assert_balanced();
    /* The answer was lost at least once, so a run failed and was retried. */
    assert_true(pw_test_db_scalar(fin_db, "SELECT runs FROM svc_jobs WHERE name = 'payout'") >= 2);
    /* Runs later book nothing more. */
    uv_sleep(2500);
    assert_int_equal(fin_scalar("SELECT count(*) FROM transfers WHERE reference = '%s'", stl), 2);
    char log[256];
    snprintf(log, sizeof(log), "%s/finance.log", fin.dir);
    assert_int_equal(file_contains(log, "123456789"), 0);
    /* Only the payout readers (finance) get account numbers in full; other callers, internal
     * ones too, see them masked. */
    char json[256];
    snprintf(json, sizeof(json), "{\"merchantId\":\"%s\"}", mer_a);
    ProtobufCMessage *resp;
    assert_int_equal(
        merchant_call("ListSettlementDestinations",
                      &paywire__merchant__v1__list_settlement_destinations_request__descriptor,
                      &paywire__merchant__v1__list_settlement_destinations_response__descriptor,
                      json, &resp),
        PW_OK);
    Paywire__Merchant__V1__ListSettlementDestinationsResponse *l = (void *)resp;
    assert_int_equal(l->n_destinations, 1);
    assert_string_equal(l->destinations[0]->bank_account->account_number, "****6789");
    pw_protobuf_free(resp);
}

/* finance-server is killed while its instruction is at the bank (the bank takes 3 s): the
 * restarted job asks for the same instruction id, and the batch is paid once. */
static void test_payout_crash_in_flight_pays_once(void **state)
{
    (void)state;
    svc_process_stop(&bank);
    start_bank("latency_min_ms = 3000\nlatency_max_ms = 3000\n");
    char dst[40], stl[40], pyo[40];
    add_destination(mer_a, "123456789", dst, sizeof(dst)); /* the same one: idempotent */
    fund("fund_a2", mer_a, 4321);
    long long net = ready_batch(mer_a, "2026-12-02", stl, sizeof(stl));
    instruction_of(stl, pyo, sizeof(pyo));
    /* PREPARED is stored before the instruction leaves; then the process dies. */
    assert_int_equal(pw_test_db_wait_scalar(
                         fin_db, "SELECT count(*) FROM payouts WHERE state = 'PREPARED'", 1, 20000),
                     1);
    uv_sleep(500);
    kill(fin.pid, SIGKILL);
    int status;
    waitpid(fin.pid, &status, 0);
    fin.pid = 0;
    start_finance();
    wait_state(stl, "SETTLED");
    paid_total += net;
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl),
                     1);
    long long requests =
        bank_scalar("SELECT requests FROM payouts WHERE instruction_id = '%s'", pyo);
    print_message("instruction %s: %lld request(s) at the bank\n", pyo, requests);
    assert_true(requests >= 1 && requests <= 2);
    assert_int_equal(fin_scalar("SELECT count(*) FROM payouts WHERE batch_id = '%s'", stl), 1);
    assert_int_equal(fin_scalar("SELECT count(*) FROM transfers WHERE id = 'txf_paid_%s'", stl), 1);
    assert_int_equal(clearing(), 0);
    assert_int_equal(cash(), -paid_total);
    assert_balanced();
    svc_process_stop(&bank);
    start_bank("");
}

/* A payout the creditor's bank returns (a test account ending 0004): FAILED, the money back to
 * available; a payout the bank rejects (0001): FAILED at once. The next batch, to a corrected
 * destination, pays what came back exactly once. */
static void test_payout_returned_paid_by_next_batch(void **state)
{
    (void)state;
    char bad[40], rejected[40], good[40], stl[40], stl2[40], stl3[40];
    new_merchant("Bravo", mer_b, sizeof(mer_b));
    new_merchant("Charlie", mer_c, sizeof(mer_c));
    add_destination(mer_b, "77770004", bad, sizeof(bad));
    add_destination(mer_c, "88880001", rejected, sizeof(rejected));
    fund("fund_b1", mer_b, 7000);
    fund("fund_c1", mer_c, 300);
    long long clearing0 = clearing(), cash0 = cash();
    ready_batch(mer_b, "2026-12-03", stl, sizeof(stl));
    ready_batch(mer_c, "2026-12-03", stl3, sizeof(stl3));
    assert_int_equal(clearing(), clearing0 + 7300);
    wait_state(stl3, "FAILED");
    wait_state(stl, "IN_TRANSIT");
    wait_state(stl, "FAILED");
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " failure_reason = 'returned by the bank: AC04'",
                                stl),
                     1);
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " failure_reason = 'rejected by the bank: AC01'",
                                stl3),
                     1);
    assert_int_equal(clearing(), clearing0);
    assert_int_equal(cash(), cash0);
    assert_int_equal(payable(mer_b), 7000);
    assert_int_equal(payable(mer_c), 300);
    assert_balanced();
    /* The merchant corrects its destination; the next batch pays the returned 7000 once. */
    remove_destination(mer_b, bad);
    add_destination(mer_b, "555555555", good, sizeof(good));
    long long net = ready_batch(mer_b, "2026-12-04", stl2, sizeof(stl2));
    assert_int_equal(net, 7000);
    wait_state(stl2, "SETTLED");
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE creditor_account = '" ROUTING
                                 ":555555555' AND end_to_end_id = '%s'",
                                 stl2),
                     1);
    assert_int_equal(payable(mer_b), 0);
    assert_int_equal(clearing(), clearing0);
    assert_int_equal(cash(), cash0 - 7000);
    /* Later runs pay nothing more. */
    uv_sleep(2500);
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl2),
                     1);
    assert_int_equal(fin_scalar("SELECT count(*) FROM transfers WHERE reference = '%s'", stl2), 2);
    assert_balanced();
}

/* A merchant without a bank destination in the batch's currency: nothing is sent, the batch
 * stays READY, and the job's error says why. */
static void test_payout_without_destination_waits(void **state)
{
    (void)state;
    char mer_d[40], stl[40];
    new_merchant("Delta", mer_d, sizeof(mer_d));
    fund("fund_d1", mer_d, 900);
    ready_batch(mer_d, "2026-12-05", stl, sizeof(stl));
    uv_sleep(3000);
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " state = 'READY'",
                                stl),
                     1);
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl),
                     0);
    assert_int_equal(fin_scalar("SELECT count(*) FROM svc_jobs WHERE name = 'payout' AND"
                                " last_error LIKE '%%%s%%no bank destination%%'",
                                stl),
                     1);
    assert_balanced();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payout_lost_answer_pays_once),
        cmocka_unit_test(test_payout_crash_in_flight_pays_once),
        cmocka_unit_test(test_payout_returned_paid_by_next_batch),
        cmocka_unit_test(test_payout_without_destination_waits),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
