/*
 * Settlement's payout job end to end: real merchant-server (the merchants'
 * bank destinations, sealed there), payout-bank-sim and finance-server with
 * its payout job every second. A READY batch must reach the bank once, as
 * one instruction, whatever is lost on the way (the bank's answer, or the
 * finance process killed while the instruction is in flight), and go
 * IN_TRANSIT → SETTLED (clearing → our cash) or, returned by the creditor's
 * bank, FAILED (clearing → available), the next batch paying it once. The
 * ledger balances per currency after every step; the account numbers never
 * reach finance's log. Batches in a token go to the merchant's wallet from
 * chain-sim's treasury wallet: once per batch, SETTLED at the confirmations,
 * FAILED (money back to available) when a reorg drops the withdrawal or the
 * treasury cannot pay. Every destination is screened by a real
 * compliance-server before it is paid, fail closed: a holder's name like a
 * listed person's waits until a reviewer clears it, a listed wallet is never
 * paid, and nothing is paid while compliance does not answer.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <paywire/db.h>
#include <paywire/json.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "compliance_calls.h"
#include "finance_calls.h"
#include "mint.h"
#include "ofac.h"
#include "svc_process.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/finance/v1/ledger.pw.h"
#include "paywire/finance/v1/settlement.pw.h"
#include "paywire/merchant/v1/merchant.pw.h"
#include "paywire/simulators/v1/chain.pw.h"

static char fin_db[512], mer_db[512], bank_db[512], chain_db[512], comp_db[512];
static svc_process fin = {.name = "finance",
                          .binary = PW_FINANCE_SERVER,
                          .health_service = "paywire.finance.v1.LedgerService"};
static svc_process mer = {.name = "merchant",
                          .binary = PW_MERCHANT_SERVER,
                          .health_service = "paywire.merchant.v1.MerchantService"};
static svc_process bank = {.name = "bank",
                           .binary = PW_PAYOUT_BANK_SIM,
                           .health_service = "paywire.simulators.v1.PayoutBankService"};
static svc_process chain = {.name = "chain",
                            .binary = PW_CHAIN_SIM,
                            .health_service = "paywire.simulators.v1.ChainService"};
static svc_process comp = {.name = "compliance",
                           .binary = PW_COMPLIANCE_SERVER,
                           .health_service = "paywire.compliance.v1.ScreeningService"};
static uv_loop_t loop;
static pw_channel *ch;
static char idp_key[300]; /* signs the reviewers' tokens (compliance has its public half) */

#define ROUTING  "021000021"
#define INTERNAL "internal_identities = spiffe://paywire/tests,spiffe://paywire/finance\n"

static void start_bank(const char *extra)
{
    char conf[512];
    snprintf(
        conf, sizeof(conf),
        "log_level = warning\nworkers = 1\nsettle_delay_ms = 1500\ncharge_minor = 25\n" INTERNAL
        "%s",
        extra);
    svc_process_start_serving(&bank, &loop, bank_db, conf);
}

static void start_compliance(void)
{
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "log_level = warning\nworkers = 1\nencryption_key = "
             "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
             "reviewer_token_key = %s/idp.pub\n" INTERNAL,
             comp.dir);
    svc_process_start_serving(&comp, &loop, comp_db, conf);
}

/* A listed person (a name like it is a POTENTIAL_MATCH: a reviewer may clear it) and a listed
 * wallet (an exact MATCH). */
static const char listed_wallet[] = "0x4444444444444444444444444444444444444444";

/* Version version of the test list: the two entries, and a third person named extra (NULL:
 * none). */
static void upload_list_version(const char *version, const char *extra)
{
    static char *names[] = {"QUARTERMAINE, Zebedee Oswin"};
    Paywire__Compliance__V1__SanctionsEntry person = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT;
    person.entry_id = "p1";
    person.names = names;
    person.n_names = 1;
    person.type = "individual";
    Paywire__Compliance__V1__DigitalCurrencyAddress a =
        PAYWIRE__COMPLIANCE__V1__DIGITAL_CURRENCY_ADDRESS__INIT;
    a.currency = "ETH";
    a.address = (char *)listed_wallet;
    Paywire__Compliance__V1__DigitalCurrencyAddress *as[] = {&a};
    static char *org[] = {"KESTREL NOIR TRADING"};
    Paywire__Compliance__V1__SanctionsEntry wallet = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT;
    wallet.entry_id = "w1";
    wallet.names = org;
    wallet.n_names = 1;
    wallet.type = "entity";
    wallet.digital_currency_addresses = as;
    wallet.n_digital_currency_addresses = 1;
    char *extra_names[] = {(char *)extra};
    Paywire__Compliance__V1__SanctionsEntry third = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT;
    third.entry_id = "p2";
    third.names = extra_names;
    third.n_names = 1;
    third.type = "individual";
    Paywire__Compliance__V1__SanctionsEntry *es[] = {&person, &wallet, &third};
    pw_channel *cc = svc_process_channel(&comp, &loop);
    char msg[256];
    int active = 0;
    assert_int_equal(
        ofac_upload(cc, "test-list", version, es, extra ? 3 : 2, 3, 0, &active, msg, sizeof(msg)),
        PW_OK);
    assert_true(active);
    pw_channel_close(cc, NULL, NULL);
}

/* The finance jobs of the group running (besides the payout job, every second). */
static const char *fin_jobs = "";

static void start_finance_process(svc_process *p)
{
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "log_level = notice\nworkers = 2\nrecon_job_seconds = 0\npayout_job_seconds = 1\n"
             "merchant_target = localhost:%d\npayout_bank_target = localhost:%d\n"
             "payout_chain_target = localhost:%d\npayout_confirmations = 3\n"
             "compliance_target = localhost:%d\n%s",
             mer.port, bank.port, chain.port, comp.port, fin_jobs);
    svc_process_start(p, fin_db, conf);
}

static void start_finance(void)
{
    start_finance_process(&fin);
    if (ch != NULL) {
        pw_channel_close(ch, NULL, NULL);
    }
    ch = svc_process_channel(&fin, &loop);
    svc_process_wait_serving(&fin, ch);
}

/* Fresh databases (named after group) and the three processes, finance with jobs. */
static void stack_up(const char *group, const char *jobs, const char *bank_extra)
{
    char name[64];
    char *urls[] = {fin_db, mer_db, bank_db, chain_db};
    const char *what[] = {"fin", "mer", "bank", "chain"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "finance_%s_%s", group, what[i]);
        pw_test_db_create(name, urls[i], sizeof(fin_db));
    }
    svc_process_migrate(fin_db, PW_SOURCE_DIR "/services/finance/migrations",
                        "paywire.migrate.finance");
    svc_process_migrate(mer_db, PW_SOURCE_DIR "/services/merchant/migrations",
                        "paywire.migrate.merchant");
    svc_process_migrate(bank_db,
                        PW_SOURCE_DIR "/services/finance/simulators/payout-bank-sim/migrations",
                        "paywire.migrate.payout_bank_sim");
    svc_process_migrate(chain_db,
                        PW_SOURCE_DIR "/services/orchestration/simulators/chain-sim/migrations",
                        "paywire.migrate.chain_sim");
    snprintf(name, sizeof(name), "finance_%s_comp", group);
    compliance_db_prepare(name, comp_db, sizeof(comp_db));
    uv_loop_init(&loop);
    svc_process *all[] = {&fin, &mer, &bank, &chain, &comp};
    for (int i = 0; i < 5; i++) {
        svc_process_prepare(all[i]);
    }
    /* One CA for all, so each verifies the others. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "bash %s/scripts/certs %s bank chain >/dev/null && for d in %s %s %s %s; do cp"
             " %s/*.crt %s/*.key $d/; done",
             PW_SOURCE_DIR, fin.dir, mer.dir, bank.dir, chain.dir, comp.dir, fin.dir, fin.dir);
    assert_int_equal(system(cmd), 0);
    char pub[320];
    snprintf(idp_key, sizeof(idp_key), "%s/idp.key", comp.dir);
    snprintf(pub, sizeof(pub), "%s/idp.pub", comp.dir);
    assert_int_equal(pwreviewer_keygen(idp_key, pub), PW_OK);
    start_compliance();
    upload_list_version("v1", NULL);
    svc_process_start_serving(
        &mer, &loop, mer_db,
        "log_level = warning\nworkers = 1\nencryption_key = "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n" INTERNAL);
    start_bank(bank_extra);
    /* The treasury holds 30 USDC: enough for the first wallet payout, not for every one. */
    svc_process_start_serving(&chain, &loop, chain_db,
                              "log_level = warning\nworkers = 1\ntreasury_float = 30000000\n"
                              "tokens = USDC\n" INTERNAL);
    fin_jobs = jobs;
    start_finance();
}

static void stack_down(void)
{
    if (ch != NULL) {
        pw_channel_close(ch, NULL, NULL);
        ch = NULL;
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    svc_process *all[] = {&fin, &bank, &mer, &chain, &comp};
    for (int i = 0; i < 5; i++) {
        svc_process_stop(all[i]);
        svc_process_cleanup(all[i]);
    }
}

static int payout_setup(void **state)
{
    (void)state;
    /* No availability or cut-off: the tests make their batches. The first bank loses every
     * answer after recording the payout. */
    stack_up("payout", "availability_job_seconds = 0\ncutoff_job_seconds = 0\n",
             "lost_answer_percent = 100\n");
    return 0;
}

static int stack_teardown(void **state)
{
    (void)state;
    stack_down();
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

/* A US bank account of merchant held by holder; its destination id into out. */
static void add_destination_held(const char *merchant, const char *holder, const char *account,
                                 char *out, size_t cap)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"dst-%s-%s\",\"merchantId\":\"%s\",\"destination\":"
             "{\"bankAccount\":{\"accountHolderName\":\"%s\",\"country\":\"US\","
             "\"currency\":\"USD\",\"accountNumber\":\"%s\",\"routingCode\":\"" ROUTING "\"}}}",
             merchant, account, merchant, holder, account);
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

/* A USDC wallet of merchant on Ethereum at address. */
static void add_wallet(const char *merchant, const char *address)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"dst-%s\",\"merchantId\":\"%s\",\"destination\":{\"wallet\":"
             "{\"address\":{\"chain\":\"CHAIN_ETHEREUM\",\"address\":\"%s\"},\"token\":\"USDC\"}}}",
             address, merchant, address);
    assert_int_equal(
        merchant_call("AddSettlementDestination",
                      &paywire__merchant__v1__add_settlement_destination_request__descriptor,
                      &paywire__merchant__v1__add_settlement_destination_response__descriptor, json,
                      NULL),
        PW_OK);
}

/* A US bank account of merchant ("Holder <account>"); its destination id into out. */
static void add_destination(const char *merchant, const char *account, char *out, size_t cap)
{
    char holder[80];
    snprintf(holder, sizeof(holder), "Holder %s", account);
    add_destination_held(merchant, holder, account, out, cap);
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

/* One entry of a transfer's JSON: account (its JSON), amount, debit or credit, purpose. */
static int entry_json(char *out, size_t cap, const char *account, long long amount, int debit,
                      const char *purpose)
{
    return snprintf(out, cap,
                    "{\"account\":%s,\"amount\":{\"amountMinor\":\"%lld\",\"currency\":\"USD\"},"
                    "\"side\":\"NORMAL_BALANCE_%s\",\"purpose\":\"%s\"}",
                    account, amount, debit ? "DEBIT" : "CREDIT", purpose);
}

static const char partner[] = "{\"platform\":{\"kind\":\"ACCOUNT_KIND_PARTNER_RECEIVABLE\","
                              "\"currency\":\"USD\",\"counterparty\":\"acq1\"}}";
static const char revenue[] =
    "{\"platform\":{\"kind\":\"ACCOUNT_KIND_PLATFORM_REVENUE\",\"currency\":\"USD\"}}";

/* A merchant account's JSON (kind "PENDING" or "AVAILABLE") into out. */
static const char *merchant_account(char *out, size_t cap, const char *merchant, const char *kind)
{
    snprintf(out, cap,
             "{\"merchant\":{\"merchantId\":\"%s\",\"kind\":\"ACCOUNT_KIND_MERCHANT_%s\","
             "\"currency\":\"USD\"}}",
             merchant, kind);
    return out;
}

/* CreateTransfer of id (kind) with the entries (JSON, comma-separated); the status. */
static pw_status transfer(const char *id, const char *kind, const char *entries, int pending,
                          const char *check)
{
    char json[4096];
    int len = snprintf(json, sizeof(json),
                       "{\"transfer\":{\"mode\":\"MODE_TEST\",\"id\":\"%s\",\"kind\":\"%s\","
                       "\"partnerReference\":\"ref_%s\",\"entries\":[%s]},\"pending\":%s,"
                       "\"balanceCheck\":\"BALANCE_CHECK_%s\"}",
                       id, kind, id, entries, pending ? "true" : "false", check);
    assert_true(len > 0 && (size_t)len < sizeof(json));
    return call_on(ch, "/paywire.finance.v1.LedgerService/CreateTransfer",
                   &paywire__finance__v1__create_transfer_request__descriptor,
                   &paywire__finance__v1__create_transfer_response__descriptor, json, NULL);
}

/* Funds for merchant: a posted credit of its available account against a partner. */
static void fund(const char *id, const char *merchant, long long amount)
{
    char entries[2048], acc[256], tid[80];
    int n = entry_json(entries, sizeof(entries), partner, amount, 1, "payment");
    entries[n++] = ',';
    entry_json(entries + n, sizeof(entries) - (size_t)n,
               merchant_account(acc, sizeof(acc), merchant, "AVAILABLE"), amount, 0, "payment");
    snprintf(tid, sizeof(tid), "txf_adjust_%s", id);
    assert_int_equal(transfer(tid, "adjust", entries, 0, "NONE"), PW_OK);
}

/* A READY batch of merchant's currency for date; its id into out; its net returned. */
static long long ready_batch_in(const char *merchant, const char *date, const char *currency,
                                char *out, size_t cap)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"stl-%s-%s-%s\",\"merchantId\":\"%s\",\"currency\":"
             "\"%s\",\"mode\":\"MODE_TEST\",\"settlementDate\":\"%s\"}",
             merchant, date, currency, merchant, currency, date);
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

static long long ready_batch(const char *merchant, const char *date, char *out, size_t cap)
{
    return ready_batch_in(merchant, date, "USD", out, cap);
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

#define fin_scalar(...)   scalar_at(fin_db, __VA_ARGS__)
#define bank_scalar(...)  scalar_at(bank_db, __VA_ARGS__)
#define chain_scalar(...) scalar_at(chain_db, __VA_ARGS__)

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

/* Settlement's queues (migration 0022) hold exactly what waits, read in one snapshot: the posted
 * captures without their txf_avail_, and the avail transfers holding a reserve without their
 * txf_unreserve_. */
static void assert_settlement_queues(void)
{
    static const char captures[] =
        "SELECT t.mode, t.id FROM transfers t WHERE t.kind = 'capture' AND t.state = 'POSTED' AND"
        " NOT EXISTS (SELECT 1 FROM transfers v WHERE v.mode = t.mode AND v.id = 'txf_avail_' ||"
        " substr(t.id, 13))";
    static const char reserves[] =
        "SELECT t.mode, t.id FROM transfers t JOIN entries e ON e.mode = t.mode AND e.transfer_id ="
        " t.id AND e.side = 'CREDIT' JOIN accounts a ON a.id = e.account_id AND a.kind ="
        " 'merchant_reserved' WHERE t.kind = 'avail' AND t.state = 'POSTED' AND NOT EXISTS (SELECT"
        " 1 FROM transfers u WHERE u.mode = t.mode AND u.id = 'txf_unreserve_' || substr(t.id, "
        "11))";
    const char *queue[] = {"availability_due", "reserve_release_due"};
    const char *waiting[] = {captures, reserves};
    for (int i = 0; i < 2; i++) {
        char sql[2048];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM ((SELECT mode, transfer_id FROM %s EXCEPT %s) UNION ALL"
                 " (%s EXCEPT SELECT mode, transfer_id FROM %s)) x",
                 queue[i], waiting[i], waiting[i], queue[i]);
        assert_int_equal(pw_test_db_scalar(fin_db, sql), 0);
    }
}

/* The ledger balances per mode and currency, posted and pending (and settlement's queues hold
 * what waits). */
static void assert_balanced(void)
{
    assert_int_equal(pw_test_db_scalar(fin_db, "SELECT count(*) FROM (SELECT mode, currency FROM"
                                               " accounts GROUP BY mode, currency HAVING"
                                               " sum(posted_debits) <> sum(posted_credits) OR"
                                               " sum(pending_debits) <> sum(pending_credits)) x"),
                     0);
    assert_settlement_queues();
}

/* The instruction id of a batch: "pyo_" and the batch id's 26 characters. */
static const char *instruction_of(const char *batch, char *out, size_t cap)
{
    snprintf(out, cap, "pyo_%s", batch + 4);
    return out;
}

/* 1 when a line of the file at path (which must exist: a wrong path fails the test) has text,
 * and also and_text unless it is NULL. */
static int file_has_line(const char *path, const char *text, const char *and_text)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, text) != NULL && (and_text == NULL || strstr(line, and_text) != NULL);
    }
    fclose(f);
    return found;
}

/* After three runs of the job: batch is still READY, nothing reached the bank, and finance's
 * log names the batch as not sent, and why. */
static void assert_not_sent(const char *batch, const char *why)
{
    uv_sleep(3000);
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " state = 'READY'",
                                batch),
                     1);
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", batch),
                     0);
    /* The batch's failure is logged with its id and why, and does not fail the job's runs
     * (a batch that cannot be paid must not hold back the others, nor retry every tick). */
    char log[256], line[160];
    snprintf(log, sizeof(log), "%s/finance.log", fin.dir);
    snprintf(line, sizeof(line), "payout of batch %s: not sent", batch);
    assert_int_equal(file_has_line(log, line, why), 1);
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
    assert_int_equal(file_has_line(log, "payout", NULL),
                     1); /* the right log: the job wrote to it */
    assert_int_equal(file_has_line(log, "123456789", NULL), 0);
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
    assert_not_sent(stl, "no bank destination");
    assert_int_equal(fin_scalar("SELECT count(*) FROM svc_jobs WHERE name = 'payout' AND"
                                " last_error LIKE '%%%s%%'",
                                stl),
                     0);
    assert_balanced();
}

/* ---- the cut-off job, reserves, suspended and closed merchants ---- */

/* A second finance-server on the same database, with the same jobs. */
static svc_process fin2 = {.name = "finance",
                           .binary = PW_FINANCE_SERVER,
                           .health_service = "paywire.finance.v1.LedgerService"};

static int cutoff_setup(void **state)
{
    (void)state;
    stack_up("cutoff", "availability_job_seconds = 1\ncutoff_job_seconds = 1\n", "");
    /* Its certificates are finance's (the same directory); its jobs race the first's. */
    fin2.port = svc_process_free_port();
    fin2.admin_port = svc_process_free_port();
    snprintf(fin2.dir, sizeof(fin2.dir), "%s", fin.dir);
    snprintf(fin2.conf_path, sizeof(fin2.conf_path), "%s/finance2.conf", fin.dir);
    start_finance_process(&fin2);
    pw_channel *c = svc_process_channel(&fin2, &loop);
    svc_process_wait_serving(&fin2, c);
    pw_channel_close(c, NULL, NULL);
    return 0;
}

static int cutoff_teardown(void **state)
{
    (void)state;
    svc_process_stop(&fin2);
    stack_down();
    return 0;
}

/* txf_capture_<cap>: gross from the partner to merchant's pending funds, the fee to revenue. */
static void capture(const char *cap, const char *merchant, long long gross, long long fee)
{
    char entries[4096], acc[256], tid[80];
    merchant_account(acc, sizeof(acc), merchant, "PENDING");
    int n = entry_json(entries, sizeof(entries), partner, gross, 1, "payment");
    n += snprintf(entries + n, sizeof(entries) - (size_t)n, ",");
    n += entry_json(entries + n, sizeof(entries) - (size_t)n, acc, gross, 0, "payment");
    n += snprintf(entries + n, sizeof(entries) - (size_t)n, ",");
    n += entry_json(entries + n, sizeof(entries) - (size_t)n, acc, fee, 1, "fee");
    n += snprintf(entries + n, sizeof(entries) - (size_t)n, ",");
    entry_json(entries + n, sizeof(entries) - (size_t)n, revenue, fee, 0, "fee");
    snprintf(tid, sizeof(tid), "txf_capture_%s", cap);
    assert_int_equal(transfer(tid, "capture", entries, 0, "NONE"), PW_OK);
}

/* A refund reserved against merchant's funds (pending, MERCHANT_FUNDS), as orchestration does. */
static void reserve_refund(const char *ref, const char *merchant, long long amount)
{
    char entries[2048], acc[256], tid[80];
    int n =
        entry_json(entries, sizeof(entries),
                   merchant_account(acc, sizeof(acc), merchant, "AVAILABLE"), amount, 1, "refund");
    n += snprintf(entries + n, sizeof(entries) - (size_t)n, ",");
    entry_json(entries + n, sizeof(entries) - (size_t)n, partner, amount, 0, "refund");
    snprintf(tid, sizeof(tid), "txf_refund_%s", ref);
    assert_int_equal(transfer(tid, "refund", entries, 1, "MERCHANT_FUNDS"), PW_OK);
}

static pw_status set_reserve_rule(const char *key, const char *merchant, const char *currency,
                                  int bps, int days, long long effective_s, char *msg, size_t cap)
{
    char when[32], json[512];
    time_t t = (time_t)effective_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"%s\",\"rule\":{\"merchantId\":\"%s\",\"currency\":\"%s\","
             "\"basisPoints\":%d,\"holdDays\":%d,\"effectiveTime\":\"%s\"}}",
             key, merchant, currency, bps, days, when);
    char path[] = "/paywire.finance.v1.SettlementService/SetReserveRule";
    ProtobufCMessage *req = NULL;
    char err[256];
    assert_int_equal(pw_json_decode(&paywire__finance__v1__set_reserve_rule_request__descriptor,
                                    json, strlen(json), NULL, &req, err, sizeof(err)),
                     PW_OK);
    pw_call_options o = {.timeout_ms = 20000};
    ProtobufCMessage *resp = NULL;
    char *m = NULL;
    pw_status rv = pw_client_unary_blocking(
        ch, path, &o, req, &paywire__finance__v1__set_reserve_rule_response__descriptor, &resp, &m,
        NULL);
    snprintf(msg, cap, "%s", m ? m : "");
    pw_free(m);
    pw_protobuf_free(resp);
    pw_protobuf_free(req);
    return rv;
}

static void merchant_transition(const char *method, const char *merchant)
{
    char json[256];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"%s-%s\",\"merchantId\":\"%s\",\"reason\":\"test\"}", method,
             merchant, merchant);
    const ProtobufCMessageDescriptor *types[3][2] = {
        {&paywire__merchant__v1__suspend_merchant_request__descriptor,
         &paywire__merchant__v1__suspend_merchant_response__descriptor},
        {&paywire__merchant__v1__close_merchant_request__descriptor,
         &paywire__merchant__v1__close_merchant_response__descriptor},
        {&paywire__merchant__v1__reinstate_merchant_request__descriptor,
         &paywire__merchant__v1__reinstate_merchant_response__descriptor}};
    int k = strcmp(method, "SuspendMerchant") == 0 ? 0
            : strcmp(method, "CloseMerchant") == 0 ? 1
                                                   : 2;
    assert_int_equal(merchant_call(method, types[k][0], types[k][1], json, NULL), PW_OK);
}

/* Issue 18: a READY batch of a merchant suspended after the batch was made is not sent (logged
 * with the batch and why, still READY, nothing at the bank); reinstated, it is paid once. */
static void test_payout_suspended_merchant_waits(void **state)
{
    (void)state;
    char mer_e[40], dst[40], stl[40], pyo[40];
    new_merchant("Echo", mer_e, sizeof(mer_e));
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE merchants SET state = 'ACTIVE' WHERE id = '%s'", mer_e);
    pw_test_db_exec(mer_db, sql); /* as compliance's approval would */
    add_destination(mer_e, "444455556", dst, sizeof(dst));
    fund("fund_e1", mer_e, 2500);
    long long clearing0 = clearing(), cash0 = cash();
    /* Suspended first, so that the job cannot pay the batch before; CreateSettlementBatch does
     * not read the merchant's state (the cut-off job does), so this is the batch of a merchant
     * suspended after its cut-off. */
    merchant_transition("SuspendMerchant", mer_e);
    long long net = ready_batch(mer_e, "2026-12-06", stl, sizeof(stl));
    assert_int_equal(net, 2500);
    instruction_of(stl, pyo, sizeof(pyo));
    assert_not_sent(stl, "the merchant is SUSPENDED");
    assert_int_equal(fin_scalar("SELECT count(*) FROM payouts WHERE batch_id = '%s'", stl), 0);
    assert_int_equal(clearing(), clearing0 + 2500);
    /* Reinstated: the next run pays it, once. */
    merchant_transition("ReinstateMerchant", mer_e);
    wait_state(stl, "SETTLED");
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl),
                     1);
    assert_int_equal(bank_scalar("SELECT requests FROM payouts WHERE instruction_id = '%s'", pyo),
                     1);
    assert_int_equal(fin_scalar("SELECT count(*) FROM transfers WHERE id = 'txf_paid_%s'", stl), 1);
    assert_int_equal(payable(mer_e), 0);
    assert_int_equal(clearing(), clearing0);
    assert_int_equal(cash(), cash0 - 2500);
    assert_balanced();
}

static void move_days(int days)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE svc_clock SET offset_ms = offset_ms + %d * 86400000", days);
    pw_test_db_exec(fin_db, sql);
}

/* x × bps / 10 000, half-even: what the availability job must hold. */
static long long half_even(long long x, long long bps)
{
    long long q = x * bps / 10000, m = x * bps % 10000;
    return q + (2 * m > 10000 || (2 * m == 10000 && q % 2 == 1));
}

/* Every batch of merchant (ListSettlementBatches): their count, and the sums of their net,
 * reserve and refunds into out[3]; each one's report sums to its net, and each is SETTLED. */
static int settled_batches(const char *merchant, long long out[3])
{
    char json[256];
    snprintf(json, sizeof(json), "{\"merchantId\":\"%s\",\"mode\":\"MODE_TEST\",\"pageSize\":100}",
             merchant);
    ProtobufCMessage *resp;
    assert_int_equal(call_on(ch, "/paywire.finance.v1.SettlementService/ListSettlementBatches",
                             &paywire__finance__v1__list_settlement_batches_request__descriptor,
                             &paywire__finance__v1__list_settlement_batches_response__descriptor,
                             json, &resp),
                     PW_OK);
    Paywire__Finance__V1__ListSettlementBatchesResponse *l = (void *)resp;
    out[0] = out[1] = out[2] = 0;
    for (size_t i = 0; i < l->n_batches; i++) {
        Paywire__Finance__V1__SettlementBatch *b = l->batches[i];
        int lines;
        assert_int_equal(finance_report_sum(ch, b->id, &lines), b->net_payout->amount_minor);
        assert_true(lines > 0);
        assert_int_equal(b->state, PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_SETTLED);
        out[0] += b->net_payout->amount_minor;
        out[1] += b->reserve_withheld->amount_minor;
        out[2] += b->refunded->amount_minor;
    }
    int n = (int)l->n_batches;
    pw_protobuf_free(resp);
    return n;
}

/* Waits (30 s) until every batch of merchant is SETTLED and their nets sum to want. */
static void wait_paid(const char *merchant, long long want)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT CASE WHEN bool_and(state = 'SETTLED' AND ledger_booked) THEN"
             " sum(net_payout) ELSE -1 END FROM settlement_batches WHERE merchant_id = '%s'",
             merchant);
    assert_int_equal(pw_test_db_wait_scalar(fin_db, sql, want, 30000), want);
}

static long long balance_of(const char *merchant, const char *kind)
{
    return fin_scalar("SELECT coalesce(sum(posted_credits - posted_debits - pending_debits), 0)"
                      " FROM accounts WHERE owner = '%s' AND kind = '%s'",
                      merchant, kind);
}

static char act[40], sus[40], clo[40];

/* Reserve rules: set, read back, refused with the field named. */
static void test_reserve_rules(void **state)
{
    (void)state;
    char msg[512], dst[40];
    new_merchant("Active", act, sizeof(act));
    new_merchant("Suspended", sus, sizeof(sus));
    new_merchant("Closed", clo, sizeof(clo));
    char *all[] = {act, sus, clo};
    for (int i = 0; i < 3; i++) {
        add_destination(all[i],
                        i == 0   ? "111111111"
                        : i == 1 ? "222222222"
                                 : "333333333",
                        dst, sizeof(dst));
    }
    long long now = (long long)time(NULL);
    assert_int_equal(set_reserve_rule("rr-act", act, "USD", 1000, 3, now + 1, msg, sizeof(msg)),
                     PW_OK);
    assert_int_equal(set_reserve_rule("rr-clo", clo, "", 500, 3, now + 1, msg, sizeof(msg)), PW_OK);
    assert_int_equal(set_reserve_rule("rr-bad", act, "USD", 10001, 3, now + 1, msg, sizeof(msg)),
                     PW_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "rule.basis_points"));
    assert_int_equal(set_reserve_rule("rr-bad2", act, "USD", 100, 0, now + 1, msg, sizeof(msg)),
                     PW_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "rule.hold_days"));
    assert_int_equal(set_reserve_rule("rr-bad3", act, "USD", 100, 3, now - 3600, msg, sizeof(msg)),
                     PW_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "rule.effective_time"));
    uv_sleep(1500);
    char json[256];
    snprintf(json, sizeof(json), "{\"merchantId\":\"%s\",\"currency\":\"USD\"}", clo);
    ProtobufCMessage *resp;
    assert_int_equal(call_on(ch, "/paywire.finance.v1.SettlementService/GetReserveRule",
                             &paywire__finance__v1__get_reserve_rule_request__descriptor,
                             &paywire__finance__v1__get_reserve_rule_response__descriptor, json,
                             &resp),
                     PW_OK);
    Paywire__Finance__V1__ReserveRule *r =
        ((Paywire__Finance__V1__GetReserveRuleResponse *)resp)->rule;
    assert_int_equal(r->basis_points, 500); /* the rule for every currency */
    assert_int_equal(r->hold_days, 3);
    assert_string_equal(r->currency, "");
    pw_protobuf_free(resp);
}

/* A day of captures, fees and a refund for three merchants (one active with a 10% reserve for
 * 3 days, one suspended, one closed with a 5% reserve), two finance-servers running every job:
 * at T+2 the cut-off batches the active merchant's net (gross − refunds − fees − reserve) and
 * the payout job pays it; the suspended merchant gets no batch; the closed one none while its
 * reserve is held. At T+5 the reserves are released: the active merchant's release is paid, and
 * the closed merchant's final balance, once. */
static void test_cutoff_reserve_and_merchant_states(void **state)
{
    (void)state;
    long long caps[][2] = {{10000, 320}, {2555, 104}, {999, 59}, {35, 31}};
    long long gross = 0, fees = 0, held = 0, holds = 1; /* the closed merchant's */
    char cap[40];
    for (int i = 0; i < 4; i++) {
        snprintf(cap, sizeof(cap), "cap_act%d", i);
        capture(cap, act, caps[i][0], caps[i][1]);
        gross += caps[i][0];
        fees += caps[i][1];
        long long h = half_even(caps[i][0] - caps[i][1], 1000);
        held += h;
        holds += h > 0; /* the last capture's net, 4, holds 0.4: rounded to none */
    }
    capture("cap_sus", sus, 5000, 150);
    capture("cap_clo", clo, 8000, 262);
    long long clo_net = 8000 - 262, clo_held = half_even(clo_net, 500);
    reserve_refund("ref_act", act, 700);
    /* Active merchants' states: set as compliance's approval would, then suspended, closed. */
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE merchants SET state = 'ACTIVE' WHERE id IN ('%s', '%s')",
             act, sus);
    pw_test_db_exec(mer_db, sql);
    merchant_transition("SuspendMerchant", sus);
    merchant_transition("CloseMerchant", clo);
    /* T+0, T+1: nothing available, no batch. */
    uv_sleep(2500);
    move_days(1);
    uv_sleep(2500);
    assert_int_equal(pw_test_db_scalar(fin_db, "SELECT count(*) FROM settlement_batches"), 0);
    /* T+2: available with the reserves held; the active merchant's batch is paid. */
    move_days(1);
    assert_int_equal(pw_test_db_wait_scalar(
                         fin_db, "SELECT count(*) FROM transfers WHERE kind = 'avail'", 6, 30000),
                     6);
    long long act_net = gross - fees - held - 700;
    wait_paid(act, act_net);
    assert_int_equal(balance_of(act, "merchant_reserved"), held);
    assert_int_equal(balance_of(clo, "merchant_reserved"), clo_held);
    long long sums[3];
    int batches = settled_batches(act, sums);
    assert_int_equal(sums[0], act_net);
    assert_int_equal(sums[1], held);
    assert_int_equal(sums[2], 700);
    assert_int_equal(balance_of(act, "merchant_available"), 0);
    /* Suspended: no batch, its funds stay available; closed: none while its reserve is held. */
    uv_sleep(2500);
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE merchant_id IN"
                                " ('%s', '%s')",
                                sus, clo),
                     0);
    assert_int_equal(balance_of(sus, "merchant_available"), 5000 - 150);
    assert_int_equal(balance_of(clo, "merchant_available"), clo_net - clo_held);
    assert_balanced();
    /* T+5: the reserves come back; the active merchant's release and the closed merchant's final
     * balance are paid, once. */
    move_days(3);
    assert_int_equal(
        pw_test_db_wait_scalar(fin_db, "SELECT count(*) FROM transfers WHERE kind = 'unreserve'",
                               holds, 30000),
        holds);
    wait_paid(act, act_net + held);
    wait_paid(clo, clo_net);
    assert_int_equal(settled_batches(clo, sums), 1);
    assert_int_equal(sums[0], clo_net);
    assert_int_equal(sums[1], 0); /* held and released within the one batch's lines */
    assert_true(settled_batches(act, sums) > batches);
    assert_int_equal(sums[0], act_net + held);
    assert_int_equal(sums[1], 0);
    const char *paid[] = {act, clo};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(balance_of(paid[i], "merchant_available"), 0);
        assert_int_equal(balance_of(paid[i], "merchant_reserved"), 0);
    }
    assert_int_equal(balance_of(sus, "merchant_available"), 5000 - 150);
    /* One batch per merchant and day, one payout per batch at the bank, all settled: clearing
     * is empty and our cash is down by exactly what was paid. */
    assert_int_equal(pw_test_db_scalar(fin_db, "SELECT count(*) FROM (SELECT 1 FROM"
                                               " settlement_batches GROUP BY merchant_id,"
                                               " settlement_date HAVING count(*) > 1) x"),
                     0);
    long long n_batches = pw_test_db_scalar(fin_db, "SELECT count(*) FROM settlement_batches");
    assert_int_equal(pw_test_db_scalar(bank_db, "SELECT count(*) FROM payouts"), n_batches);
    assert_int_equal(pw_test_db_scalar(bank_db, "SELECT count(*) FROM payouts WHERE requests > 1"),
                     0);
    assert_int_equal(clearing(), 0);
    assert_int_equal(cash(), -(act_net + held + clo_net));
    assert_balanced();
    print_message("cut-off: %lld batches, active net %lld + released %lld, closed %lld\n",
                  n_batches, act_net, held, clo_net);
}

/* ---- wallet payouts (USDC from chain-sim's treasury wallet) ---- */

static const char wallet[] = "0x2222222222222222222222222222222222222222";

static pw_status chain_call(const char *method, const ProtobufCMessageDescriptor *req_type,
                            const ProtobufCMessageDescriptor *resp_type, const char *json)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.simulators.v1.ChainService/%s", method);
    pw_channel *c = svc_process_channel(&chain, &loop);
    pw_status rv = call_on(c, path, req_type, resp_type, json, NULL);
    pw_channel_close(c, NULL, NULL);
    return rv;
}

/* A token (USDC, EURC…) for merchant's available account, against the custody partner's
 * receivable. */
static void fund_token(const char *token, const char *id, const char *merchant, long long amount)
{
    char json[2048];
    snprintf(json, sizeof(json),
             "{\"transfer\":{\"mode\":\"MODE_TEST\",\"id\":\"txf_adjust_%s\",\"kind\":\"adjust\","
             "\"partnerReference\":\"ref_%s\",\"entries\":["
             "{\"account\":{\"platform\":{\"kind\":\"ACCOUNT_KIND_PARTNER_RECEIVABLE\","
             "\"currency\":\"%s\",\"counterparty\":\"chain_sim\"}},\"amount\":{\"amountMinor\":"
             "\"%lld\",\"currency\":\"%s\"},\"side\":\"NORMAL_BALANCE_DEBIT\",\"purpose\":"
             "\"payment\"},{\"account\":{\"merchant\":{\"merchantId\":\"%s\",\"kind\":"
             "\"ACCOUNT_KIND_MERCHANT_AVAILABLE\",\"currency\":\"%s\"}},\"amount\":{"
             "\"amountMinor\":\"%lld\",\"currency\":\"%s\"},\"side\":\"NORMAL_BALANCE_CREDIT\","
             "\"purpose\":\"payment\"}]},\"balanceCheck\":\"BALANCE_CHECK_NONE\"}",
             id, id, token, amount, token, merchant, token, amount, token);
    assert_int_equal(call_on(ch, "/paywire.finance.v1.LedgerService/CreateTransfer",
                             &paywire__finance__v1__create_transfer_request__descriptor,
                             &paywire__finance__v1__create_transfer_response__descriptor, json,
                             NULL),
                     PW_OK);
}

static long long payable_usdc(const char *merchant)
{
    return fin_scalar("SELECT coalesce(sum(posted_credits - posted_debits - pending_debits), 0)"
                      " FROM accounts WHERE owner = '%s' AND kind = 'merchant_available'"
                      " AND currency = 'USDC'",
                      merchant);
}

static long long usdc_of(const char *kind, const char *sign)
{
    return fin_scalar("SELECT coalesce(sum(%s), 0) FROM accounts WHERE kind = '%s'"
                      " AND currency = 'USDC'",
                      sign, kind);
}

/* A USDC batch is paid to the merchant's wallet from the treasury once, SETTLED at 3
 * confirmations (payout_confirmations); a withdrawal a reorg drops FAILS the batch (the money
 * back to available), and so does one the treasury cannot pay (30 USDC in all); nothing is
 * sent twice, and the ledger balances throughout. */
static void test_payout_to_wallet(void **state)
{
    (void)state;
    char mer_w[40], stl[40], stl2[40], stl3[40], pyo[40], json[512];
    new_merchant("Whiskey", mer_w, sizeof(mer_w));
    add_wallet(mer_w, wallet);
    long long cash0 = usdc_of("platform_cash", "posted_debits - posted_credits");
    fund_token("USDC", "fund_w1", mer_w, 25000000);
    long long net = ready_batch_in(mer_w, "2026-12-01", "USDC", stl, sizeof(stl));
    assert_int_equal(net, 25000000);
    instruction_of(stl, pyo, sizeof(pyo));
    wait_state(stl, "IN_TRANSIT");
    /* One withdrawal, to the wallet, of the net; the batch carries its hash. */
    assert_int_equal(chain_scalar("SELECT count(*) FROM transfers WHERE key = '%s' AND"
                                  " to_address = '%s' AND amount_minor = 25000000 AND token ="
                                  " 'USDC' AND requests = 1",
                                  pyo, wallet),
                     1);
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches b JOIN payouts p ON"
                                " p.batch_id = b.id WHERE b.id = '%s' AND p.rail = 'CHAIN' AND"
                                " b.payout_reference = p.bank_reference AND"
                                " p.bank_reference ~ '^0x[0-9a-f]{64}$'",
                                stl),
                     1);
    /* Below the confirmations it stays in transit; mined to 3, it is SETTLED. */
    uv_sleep(2500);
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " state = 'IN_TRANSIT'",
                                stl),
                     1);
    assert_int_equal(
        chain_call("MineBlocks", &paywire__simulators__v1__mine_blocks_request__descriptor,
                   &paywire__simulators__v1__mine_blocks_response__descriptor, "{\"count\":2}"),
        PW_OK);
    wait_state(stl, "SETTLED");
    assert_int_equal(fin_scalar("SELECT count(*) FROM payouts WHERE batch_id = '%s' AND state ="
                                " 'CONFIRMED'",
                                stl),
                     1);
    assert_int_equal(payable_usdc(mer_w), 0);
    assert_int_equal(usdc_of("settlement_clearing", "posted_credits - posted_debits"), 0);
    assert_int_equal(usdc_of("platform_cash", "posted_debits - posted_credits"), cash0 - 25000000);
    /* It left from the treasury wallet's cash account, not the bank's. */
    assert_int_equal(fin_scalar("SELECT coalesce(sum(posted_debits - posted_credits), 0) FROM"
                                " accounts WHERE kind = 'platform_cash' AND currency = 'USDC'"
                                " AND owner = 'treasury'"),
                     cash0 - 25000000);
    assert_balanced();
    /* The next batch's withdrawal is dropped by a reorg before it is final: FAILED, the 4 USDC
     * back to available. */
    fund_token("USDC", "fund_w2", mer_w, 4000000);
    ready_batch_in(mer_w, "2026-12-02", "USDC", stl2, sizeof(stl2));
    instruction_of(stl2, pyo, sizeof(pyo));
    wait_state(stl2, "IN_TRANSIT");
    char hash[80];
    snprintf(json, sizeof(json), "{\"idempotencyKey\":\"%s\"}", pyo);
    ProtobufCMessage *got = NULL;
    pw_channel *cc = svc_process_channel(&chain, &loop);
    assert_int_equal(call_on(cc, "/paywire.simulators.v1.ChainService/GetTransfer",
                             &paywire__simulators__v1__get_transfer_request__descriptor,
                             &paywire__simulators__v1__get_transfer_response__descriptor, json,
                             &got),
                     PW_OK);
    pw_channel_close(cc, NULL, NULL);
    snprintf(hash, sizeof(hash), "%s",
             ((Paywire__Simulators__V1__GetTransferResponse *)got)->transfer->transaction_hash);
    pw_protobuf_free(got);
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " payout_reference = '%s'",
                                stl2, hash),
                     1);
    snprintf(json, sizeof(json), "{\"transactionHash\":\"%s\"}", hash);
    assert_int_equal(chain_call("Reorg", &paywire__simulators__v1__reorg_request__descriptor,
                                &paywire__simulators__v1__reorg_response__descriptor, json),
                     PW_OK);
    wait_state(stl2, "FAILED");
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " failure_reason = 'returned by the custody partner:"
                                " DROPPED_BY_REORG'",
                                stl2),
                     1);
    assert_int_equal(payable_usdc(mer_w), 4000000);
    assert_balanced();
    /* 4 + 2 USDC is more than the treasury's 5 left: refused, nothing sent, FAILED. */
    fund_token("USDC", "fund_w3", mer_w, 2000000);
    net = ready_batch_in(mer_w, "2026-12-03", "USDC", stl3, sizeof(stl3));
    assert_int_equal(net, 6000000);
    wait_state(stl3, "FAILED");
    assert_int_equal(fin_scalar("SELECT count(*) FROM settlement_batches WHERE id = '%s' AND"
                                " failure_reason = 'rejected by the custody partner:"
                                " INSUFFICIENT_FUNDS'",
                                stl3),
                     1);
    instruction_of(stl3, pyo, sizeof(pyo));
    assert_int_equal(chain_scalar("SELECT count(*) FROM transfers WHERE key = '%s'", pyo), 0);
    assert_int_equal(payable_usdc(mer_w), 6000000);
    assert_int_equal(usdc_of("settlement_clearing", "posted_credits - posted_debits"), 0);
    assert_int_equal(usdc_of("platform_cash", "posted_debits - posted_credits"), cash0 - 25000000);
    /* Later runs send nothing more: one withdrawal per batch. */
    uv_sleep(2500);
    assert_int_equal(chain_scalar("SELECT count(*) FROM transfers"), 2);
    assert_int_equal(chain_scalar("SELECT count(*) FROM transfers WHERE requests > 1"), 0);
    assert_balanced();
}

/* ---- the destination's screening ---- */

#define REVIEW(x) PAYWIRE__COMPLIANCE__V1__SCREENING_REVIEW_STATE__SCREENING_REVIEW_STATE_##x

/* The screening of destination, after at least one run of the job has screened it. */
static void screening_of(const char *destination, char *out, size_t cap)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM screenings WHERE subject_id = '%s'",
             destination);
    /* One screening however many runs asked: its key is the instruction's. */
    assert_int_equal(pw_test_db_scalar(comp_db, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT id FROM screenings WHERE subject_id = '%s'", destination);
    pw_test_db_text(comp_db, sql, out, cap);
    assert_true(strncmp(out, "scr_", 4) == 0);
}

/* reviewer's decision to clear screening, as compliance's console sends it; the review's state. */
static int clear_screening(const char *screening, const char *reviewer)
{
    char tok[1024], key[80];
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(pwreviewer_mint(idp_key, reviewer, now, now + 300, tok, sizeof(tok)), PW_OK);
    snprintf(key, sizeof(key), "clear-%s", screening);
    char *codes[] = {"different_entity"};
    Paywire__Compliance__V1__DecideScreeningRequest req =
        PAYWIRE__COMPLIANCE__V1__DECIDE_SCREENING_REQUEST__INIT;
    req.idempotency_key = key;
    req.screening_id = (char *)screening;
    req.decision = PAYWIRE__COMPLIANCE__V1__SCREENING_DECISION__SCREENING_DECISION_CLEAR;
    req.reason_codes = codes;
    req.n_reason_codes = 1;
    pw_channel *cc = svc_process_channel(&comp, &loop);
    reply r =
        compliance_call(cc, "/paywire.compliance.v1.ScreeningService/DecideScreening", &req.base,
                        &paywire__compliance__v1__decide_screening_response__descriptor, tok);
    pw_channel_close(cc, NULL, NULL);
    if (r.code != PW_OK) {
        fail_msg("DecideScreening %s: %s %s", screening, pw_status_str(r.code), r.message);
    }
    int st = ((Paywire__Compliance__V1__DecideScreeningResponse *)r.msg)->screening->review_state;
    reply_free(&r);
    return st;
}

/* A holder named like a listed person: the batch waits (nothing at the bank, READY, logged)
 * until a reviewer clears the match; then it is paid once. */
static void test_payout_destination_screened(void **state)
{
    (void)state;
    char mer_g[40], dst[40], stl[40], scr[40];
    new_merchant("Golf", mer_g, sizeof(mer_g));
    add_destination_held(mer_g, "Zebedee Oswin Quartermaine", "555000111", dst, sizeof(dst));
    fund("fund_g1", mer_g, 1200);
    long long clearing0 = clearing();
    assert_int_equal(ready_batch(mer_g, "2026-12-08", stl, sizeof(stl)), 1200);
    assert_not_sent(stl, "matches a sanctions list");
    assert_int_equal(fin_scalar("SELECT count(*) FROM payouts WHERE batch_id = '%s'", stl), 0);
    assert_int_equal(clearing(), clearing0 + 1200);
    screening_of(dst, scr, sizeof(scr));
    assert_int_equal(pw_test_db_scalar(comp_db, "SELECT count(*) FROM screenings WHERE outcome ="
                                                " 'POTENTIAL_MATCH' AND review_state = 'OPEN'"),
                     1);
    /* A false positive: one reviewer clears it, and the next run pays it, once. */
    assert_int_equal(clear_screening(scr, "reviewer-ana"), REVIEW(CLEARED));
    wait_state(stl, "SETTLED");
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl),
                     1);
    assert_int_equal(clearing(), clearing0);
    assert_balanced();
}

/* Compliance down: nothing is paid unscreened (fail closed); once it is back, paid once. */
static void test_payout_compliance_down_waits(void **state)
{
    (void)state;
    char mer_h[40], dst[40], stl[40], scr[40];
    new_merchant("Hotel", mer_h, sizeof(mer_h));
    add_destination(mer_h, "666777888", dst, sizeof(dst));
    fund("fund_h1", mer_h, 1300);
    svc_process_stop(&comp);
    ready_batch(mer_h, "2026-12-08", stl, sizeof(stl));
    assert_not_sent(stl, "(fail closed)");
    start_compliance();
    wait_state(stl, "SETTLED");
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl),
                     1);
    screening_of(dst, scr, sizeof(scr));
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM screenings WHERE id = '%s' AND outcome ="
             " 'CLEAR'",
             scr);
    assert_int_equal(pw_test_db_scalar(comp_db, sql), 1);
    assert_balanced();
}

/* A listed wallet is an exact MATCH: its batch is never paid while the match is open, and the
 * treasury sends nothing. */
static void test_payout_listed_wallet_waits(void **state)
{
    (void)state;
    char mer_i[40], stl[40];
    new_merchant("India", mer_i, sizeof(mer_i));
    add_wallet(mer_i, listed_wallet);
    fund_token("USDC", "fund_i1", mer_i, 1000000);
    ready_batch_in(mer_i, "2026-12-08", "USDC", stl, sizeof(stl));
    assert_not_sent(stl, "matches a sanctions list");
    assert_int_equal(
        chain_scalar("SELECT count(*) FROM transfers WHERE to_address = '%s'", listed_wallet), 0);
    assert_int_equal(pw_test_db_scalar(comp_db, "SELECT count(*) FROM screenings WHERE outcome ="
                                                " 'MATCH' AND subject_id LIKE 'dst_%'"),
                     1);
    /* Clearing a MATCH takes two reviewers: after the first, still nothing is sent. */
    char scr[40], sql[160];
    pw_test_db_text(comp_db,
                    "SELECT id FROM screenings WHERE outcome = 'MATCH' AND subject_id LIKE 'dst_%'",
                    scr, sizeof(scr));
    assert_int_equal(clear_screening(scr, "reviewer-ana"), REVIEW(AWAITING_SECOND_REVIEW));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM payouts WHERE batch_id = '%s'", stl);
    uv_sleep(3000);
    assert_int_equal(pw_test_db_scalar(fin_db, sql), 0);
    assert_int_equal(
        chain_scalar("SELECT count(*) FROM transfers WHERE to_address = '%s'", listed_wallet), 0);
    assert_balanced();
}

/* A batch in a currency no rail pays (EURC: the treasury pays USDC and USDT) waits READY, and
 * each run says why, instead of waiting unseen. */
static void test_payout_unpaid_currency_logged(void **state)
{
    (void)state;
    char mer_k[40], stl[40];
    new_merchant("Kilo", mer_k, sizeof(mer_k));
    fund_token("EURC", "fund_k1", mer_k, 3000000);
    assert_int_equal(ready_batch_in(mer_k, "2026-12-08", "EURC", stl, sizeof(stl)), 3000000);
    assert_not_sent(stl, "no payout rail pays EURC");
    assert_int_equal(fin_scalar("SELECT count(*) FROM payouts WHERE batch_id = '%s'", stl), 0);
    assert_balanced();
}

/* A destination screened CLEAR, then a new version of the list names its holder: the next batch
 * is screened afresh (the key has the list versions), so the earlier CLEAR is not replayed. */
static void test_payout_list_change_screens_again(void **state)
{
    (void)state;
    char mer_j[40], dst[40], stl[40], stl2[40];
    new_merchant("Juliet", mer_j, sizeof(mer_j));
    add_destination_held(mer_j, "Juliet Ravenscroft Okonkwo", "777888999", dst, sizeof(dst));
    fund("fund_j1", mer_j, 1100);
    ready_batch(mer_j, "2026-12-09", stl, sizeof(stl));
    wait_state(stl, "SETTLED");
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM screenings WHERE subject_id = '%s' AND outcome = 'CLEAR'", dst);
    assert_int_equal(pw_test_db_scalar(comp_db, sql), 1);
    upload_list_version("v2", "OKONKWO, Juliet Ravenscroft");
    fund("fund_j2", mer_j, 900);
    ready_batch(mer_j, "2026-12-10", stl2, sizeof(stl2));
    assert_not_sent(stl2, "matches a sanctions list");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM screenings WHERE subject_id = '%s'", dst);
    assert_int_equal(pw_test_db_scalar(comp_db, sql), 2);
    assert_int_equal(bank_scalar("SELECT count(*) FROM payouts WHERE end_to_end_id = '%s'", stl2),
                     0);
    assert_balanced();
}

int main(void)
{
    const struct CMUnitTest payouts[] = {
        cmocka_unit_test(test_payout_lost_answer_pays_once),
        cmocka_unit_test(test_payout_crash_in_flight_pays_once),
        cmocka_unit_test(test_payout_returned_paid_by_next_batch),
        cmocka_unit_test(test_payout_without_destination_waits),
        cmocka_unit_test(test_payout_suspended_merchant_waits),
        cmocka_unit_test(test_payout_to_wallet),
        cmocka_unit_test(test_payout_destination_screened),
        cmocka_unit_test(test_payout_compliance_down_waits),
        cmocka_unit_test(test_payout_listed_wallet_waits),
        cmocka_unit_test(test_payout_unpaid_currency_logged),
        cmocka_unit_test(test_payout_list_change_screens_again),
    };
    const struct CMUnitTest cutoff[] = {
        cmocka_unit_test(test_reserve_rules),
        cmocka_unit_test(test_cutoff_reserve_and_merchant_states),
    };
    int failed = cmocka_run_group_tests_name("payouts", payouts, payout_setup, stack_teardown);
    return failed + cmocka_run_group_tests_name("cutoff", cutoff, cutoff_setup, cutoff_teardown);
}
