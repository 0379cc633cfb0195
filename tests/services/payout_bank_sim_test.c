/*
 * The payout bank simulator end to end (payout_bank.proto): real
 * payout-bank-sim processes on a fresh database, called over mTLS. Finance's
 * payout job and reconciliation rely on its records, so they are checked
 * here first: one payout per instruction id whatever the retries, a retry
 * with other content refused naming the field, test accounts choosing the
 * fate, the statement agreeing with what was submitted, lost answers and
 * failures as a bank's API has them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <paywire/db.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/simulators/v1/payout_bank.pw.h"

typedef Paywire__Simulators__V1__Payout Payout;

#define SETTLE_MS 300
#define CHARGE    25

static char db_url[512];
static svc_process bank = {.name = "bank",
                           .binary = PW_PAYOUT_BANK_SIM,
                           .health_service = "paywire.simulators.v1.PayoutBankService"};
static svc_process lossy = {.name = "lossy",
                            .binary = PW_PAYOUT_BANK_SIM,
                            .health_service = "paywire.simulators.v1.PayoutBankService"};
static svc_process down = {.name = "down",
                           .binary = PW_PAYOUT_BANK_SIM,
                           .health_service = "paywire.simulators.v1.PayoutBankService"};
static uv_loop_t loop;
static pw_channel *ch, *lossy_ch, *down_ch;

/* What the tests submitted that the bank accepted: the statement must show exactly these. */
static struct {
    char end_to_end_id[40];
    int64_t amount;
    int returned;
} accepted[16];
static int n_accepted;

static void start(svc_process *p, pw_channel **out, const char *extra)
{
    svc_process_prepare(p);
    char conf[256];
    snprintf(conf, sizeof(conf),
             "log_level = warning\nworkers = 2\nsettle_delay_ms = %d\ncharge_minor = %d\n%s",
             SETTLE_MS, CHARGE, extra);
    svc_process_start(p, db_url, conf);
    *out = svc_process_channel(p, &loop);
    svc_process_wait_serving(p, *out);
}

static int group_setup(void **state)
{
    (void)state;
    pw_test_db_create("payout_bank_sim_test", db_url, sizeof(db_url));
    char err[512];
    assert_int_equal(pw_db_migrate(db_url,
                                   PW_SOURCE_DIR
                                   "/services/finance/simulators/payout-bank-sim/migrations",
                                   "paywire.migrate.payout_bank_sim", NULL, err, sizeof(err)),
                     PW_OK);
    uv_loop_init(&loop);
    start(&bank, &ch, "");
    start(&lossy, &lossy_ch, "lost_answer_percent = 100\n");
    start(&down, &down_ch, "failure_percent = 100\n");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(ch, NULL, NULL);
    pw_channel_close(lossy_ch, NULL, NULL);
    pw_channel_close(down_ch, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process *all[] = {&bank, &lossy, &down};
    for (int i = 0; i < 3; i++) {
        svc_process_stop(all[i]);
        svc_process_cleanup(all[i]);
    }
    return 0;
}

static pw_status submit_on(pw_channel *c, const char *id, const char *e2e, int64_t amount,
                           const char *currency, const char *account, ProtobufCMessage **resp,
                           char *message, size_t cap)
{
    Paywire__Simulators__V1__SubmitPayoutRequest req =
        PAYWIRE__SIMULATORS__V1__SUBMIT_PAYOUT_REQUEST__INIT;
    req.instruction_id = (char *)id;
    req.end_to_end_id = (char *)e2e;
    req.amount_minor = amount;
    req.currency = (char *)currency;
    req.creditor_name = "Shop One GmbH";
    req.creditor_account = (char *)account;
    pw_call_options o = {.timeout_ms = 5000};
    char *m = NULL;
    *resp = NULL;
    pw_status rv = pw_client_unary_blocking(
        c, "/paywire.simulators.v1.PayoutBankService/SubmitPayout", &o, &req.base,
        &paywire__simulators__v1__submit_payout_response__descriptor, resp, &m, NULL);
    if (message != NULL) {
        snprintf(message, cap, "%s", m ? m : "");
    }
    pw_free(m);
    return rv;
}

static Payout *submit(const char *id, const char *e2e, int64_t amount, const char *currency,
                      const char *account, ProtobufCMessage **resp)
{
    assert_int_equal(submit_on(ch, id, e2e, amount, currency, account, resp, NULL, 0), PW_OK);
    return ((Paywire__Simulators__V1__SubmitPayoutResponse *)*resp)->payout;
}

static pw_status get_on(pw_channel *c, const char *id, ProtobufCMessage **resp)
{
    Paywire__Simulators__V1__GetPayoutRequest req =
        PAYWIRE__SIMULATORS__V1__GET_PAYOUT_REQUEST__INIT;
    req.instruction_id = (char *)id;
    pw_call_options o = {.timeout_ms = 5000};
    *resp = NULL;
    return pw_client_unary_blocking(
        c, "/paywire.simulators.v1.PayoutBankService/GetPayout", &o, &req.base,
        &paywire__simulators__v1__get_payout_response__descriptor, resp, NULL, NULL);
}

static Payout *payout_of(ProtobufCMessage *m)
{
    return ((Paywire__Simulators__V1__GetPayoutResponse *)m)->payout;
}

/* Polls GetPayout until the payout has left ACCEPTED (10 s at most); returns its state. */
static int final_state(const char *id)
{
    for (int i = 0; i < 500; i++) {
        ProtobufCMessage *m;
        assert_int_equal(get_on(ch, id, &m), PW_OK);
        int state = (int)payout_of(m)->state;
        int has_time = payout_of(m)->final_time != NULL;
        pw_protobuf_free(m);
        if (state != PAYWIRE__SIMULATORS__V1__PAYOUT_STATE__PAYOUT_STATE_ACCEPTED) {
            assert_true(has_time);
            return state;
        }
        assert_false(has_time);
        uv_sleep(20);
    }
    fail_msg("payout %s still ACCEPTED after 10 s", id);
    return -1;
}

static void remember(const char *e2e, int64_t amount, int returned)
{
    assert_true(n_accepted < 16);
    snprintf(accepted[n_accepted].end_to_end_id, 40, "%s", e2e);
    accepted[n_accepted].amount = amount;
    accepted[n_accepted].returned = returned;
    n_accepted++;
}

static void test_bank_one_payout_per_instruction(void **state)
{
    (void)state;
    ProtobufCMessage *a, *b, *c;
    Payout *first = submit("pyo_once", "stl_once", 76800, "EUR", "DE89370400440532013000", &a);
    assert_int_equal(first->state, PAYWIRE__SIMULATORS__V1__PAYOUT_STATE__PAYOUT_STATE_ACCEPTED);
    assert_int_equal(first->requests, 1);
    assert_int_equal(first->charge_minor, CHARGE);
    assert_non_null(first->accept_time);
    assert_null(first->final_time);
    /* The retry (another instance of ours, the same instruction) pays nothing more. */
    Payout *again = submit("pyo_once", "stl_once", 76800, "EUR", "DE89370400440532013000", &b);
    assert_string_equal(again->bank_reference, first->bank_reference);
    assert_int_equal(again->requests, 2);
    remember("stl_once", 76800, 0);
    /* Other content under the same instruction id: refused, the field named. */
    char message[256];
    assert_int_equal(submit_on(ch, "pyo_once", "stl_once", 76801, "EUR", "DE89370400440532013000",
                               &c, message, sizeof(message)),
                     PW_FAILED_PRECONDITION);
    assert_non_null(strstr(message, "amount_minor"));
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM payouts"
                                               " WHERE instruction_id = 'pyo_once'"),
                     1);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT amount_minor FROM payouts"
                                               " WHERE instruction_id = 'pyo_once'"),
                     76800);
    assert_int_equal(final_state("pyo_once"),
                     PAYWIRE__SIMULATORS__V1__PAYOUT_STATE__PAYOUT_STATE_SETTLED);
    pw_protobuf_free(a);
    pw_protobuf_free(b);
}

static void test_bank_test_accounts_choose_the_fate(void **state)
{
    (void)state;
    ProtobufCMessage *a, *b, *c;
    Payout *rejected =
        submit("pyo_rejected", "stl_rejected", 500, "EUR", "DE67370400440532010001", &a);
    assert_int_equal(rejected->state, PAYWIRE__SIMULATORS__V1__PAYOUT_STATE__PAYOUT_STATE_REJECTED);
    assert_string_equal(rejected->return_reason, "AC01");
    assert_int_equal(rejected->charge_minor, 0);
    Payout *back = submit("pyo_returned", "stl_returned", 1200, "USD", "021000021:123450004", &b);
    assert_int_equal(back->state, PAYWIRE__SIMULATORS__V1__PAYOUT_STATE__PAYOUT_STATE_ACCEPTED);
    remember("stl_returned", 1200, 1);
    Payout *gbp = submit("pyo_gbp", "stl_gbp", 999, "GBP", "GB29NWBK60161331926819", &c);
    remember("stl_gbp", 999, 0);
    (void)gbp;
    assert_int_equal(final_state("pyo_returned"),
                     PAYWIRE__SIMULATORS__V1__PAYOUT_STATE__PAYOUT_STATE_RETURNED);
    assert_int_equal(final_state("pyo_gbp"),
                     PAYWIRE__SIMULATORS__V1__PAYOUT_STATE__PAYOUT_STATE_SETTLED);
    ProtobufCMessage *m;
    assert_int_equal(get_on(ch, "pyo_returned", &m), PW_OK);
    assert_string_equal(payout_of(m)->return_reason, "AC04");
    pw_protobuf_free(m);
    pw_protobuf_free(a);
    pw_protobuf_free(b);
    pw_protobuf_free(c);
}

static void test_bank_lost_answers_and_failures(void **state)
{
    (void)state;
    ProtobufCMessage *m;
    /* Recorded, then the answer is lost: a status query finds it, a retry pays nothing more. */
    assert_int_equal(submit_on(lossy_ch, "pyo_lost", "stl_lost", 4200, "EUR",
                               "DE89370400440532013000", &m, NULL, 0),
                     PW_UNAVAILABLE);
    assert_int_equal(get_on(ch, "pyo_lost", &m), PW_OK);
    assert_int_equal(payout_of(m)->requests, 1);
    pw_protobuf_free(m);
    assert_int_equal(submit_on(lossy_ch, "pyo_lost", "stl_lost", 4200, "EUR",
                               "DE89370400440532013000", &m, NULL, 0),
                     PW_UNAVAILABLE);
    Payout *p = submit("pyo_lost", "stl_lost", 4200, "EUR", "DE89370400440532013000", &m);
    assert_int_equal(p->requests, 3);
    pw_protobuf_free(m);
    remember("stl_lost", 4200, 0);
    /* Refused before anything is recorded: the bank has never heard of it. */
    assert_int_equal(submit_on(down_ch, "pyo_down", "stl_down", 100, "EUR",
                               "DE89370400440532013000", &m, NULL, 0),
                     PW_UNAVAILABLE);
    assert_int_equal(get_on(ch, "pyo_down", &m), PW_NOT_FOUND);
}

static void test_bank_refuses_bad_input(void **state)
{
    (void)state;
    struct {
        const char *id, *e2e;
        int64_t amount;
        const char *currency, *account, *field;
    } bad[] = {
        {"", "stl_x", 1, "EUR", "DE89370400440532013000", "instruction_id"},
        {"pyo_x", "stl_far_too_long_for_an_end_to_end_id_", 1, "EUR", "DE89370400440532013000",
         "end_to_end_id"},
        {"pyo_x", "stl_x", 0, "EUR", "DE89370400440532013000", "amount_minor"},
        {"pyo_x", "stl_x", 1, "JPY", "DE89370400440532013000", "currency"},
        {"pyo_x", "stl_x", 1, "EUR", "DE89370400440532013001", "creditor_account"},
        {"pyo_x", "stl_x", 1, "USD", "021000022:12345", "creditor_account"},
        {"pyo_x", "stl_x", 1, "USD", "DE89370400440532013000", "creditor_account"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ProtobufCMessage *m;
        char message[256];
        assert_int_equal(submit_on(ch, bad[i].id, bad[i].e2e, bad[i].amount, bad[i].currency,
                                   bad[i].account, &m, message, sizeof(message)),
                         PW_INVALID_ARGUMENT);
        if (strstr(message, bad[i].field) == NULL) {
            fail_msg("case %zu: \"%s\" does not name %s", i, message, bad[i].field);
        }
    }
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM payouts"
                                               " WHERE instruction_id = 'pyo_x'"),
                     0);
}

/* Runs last: the statement of today must be exactly what the tests above had accepted. */
static void test_bank_statement_agrees_with_the_payouts(void **state)
{
    (void)state;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char today[16];
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);
    Paywire__Simulators__V1__GetStatementRequest req =
        PAYWIRE__SIMULATORS__V1__GET_STATEMENT_REQUEST__INIT;
    req.booking_date = today;
    pw_stream *s = NULL;
    assert_int_equal(
        paywire_simulators_v1_payout_bank_service_get_statement_start_blocking(ch, &req, NULL, &s),
        PW_OK);
    int debits[16] = {0}, charges[16] = {0}, credits[16] = {0};
    int lines = 0;
    for (;;) {
        Paywire__Simulators__V1__GetStatementResponse *page = NULL;
        assert_int_equal(
            paywire_simulators_v1_payout_bank_service_get_statement_stream_recv(s, &page), PW_OK);
        if (page == NULL) {
            break;
        }
        for (size_t j = 0; j < page->n_lines; j++) {
            Paywire__Simulators__V1__StatementLine *l = page->lines[j];
            lines++;
            int k = -1;
            for (int i = 0; i < n_accepted; i++) {
                if (strcmp(accepted[i].end_to_end_id, l->end_to_end_id) == 0) {
                    k = i;
                }
            }
            if (k < 0) {
                fail_msg("statement line %s for %s, which the bank did not accept",
                         l->entry_reference, l->end_to_end_id);
            }
            assert_true(strncmp(l->entry_reference, "ent_", 4) == 0);
            assert_non_null(l->booking_time);
            switch (l->kind) {
            case PAYWIRE__SIMULATORS__V1__STATEMENT_LINE_KIND__STATEMENT_LINE_KIND_DEBIT:
                assert_int_equal(l->amount_minor, accepted[k].amount);
                debits[k]++;
                break;
            case PAYWIRE__SIMULATORS__V1__STATEMENT_LINE_KIND__STATEMENT_LINE_KIND_CHARGE:
                assert_int_equal(l->amount_minor, CHARGE);
                charges[k]++;
                break;
            case PAYWIRE__SIMULATORS__V1__STATEMENT_LINE_KIND__STATEMENT_LINE_KIND_CREDIT:
                assert_int_equal(l->amount_minor, accepted[k].amount);
                assert_string_equal(l->return_reason, "AC04");
                credits[k]++;
                break;
            default:
                fail_msg("line %s has no kind", l->entry_reference);
            }
        }
        pw_protobuf_free(&page->base);
    }
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);
    /* Each accepted payout: one debit and one charge; the returned one also its credit. */
    for (int i = 0; i < n_accepted; i++) {
        assert_int_equal(debits[i], 1);
        assert_int_equal(charges[i], 1);
        assert_int_equal(credits[i], accepted[i].returned);
    }
    assert_int_equal(lines, 2 * n_accepted + 1);
    /* A day that does not exist, and one with nothing on it. */
    req.booking_date = "2026-02-30";
    assert_int_equal(
        paywire_simulators_v1_payout_bank_service_get_statement_start_blocking(ch, &req, NULL, &s),
        PW_OK);
    Paywire__Simulators__V1__GetStatementResponse *l = NULL;
    assert_int_equal(paywire_simulators_v1_payout_bank_service_get_statement_stream_recv(s, &l),
                     PW_OK);
    assert_null(l);
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_INVALID_ARGUMENT);
    pw_stream_free(s);
    req.booking_date = "2001-01-01";
    assert_int_equal(
        paywire_simulators_v1_payout_bank_service_get_statement_start_blocking(ch, &req, NULL, &s),
        PW_OK);
    assert_int_equal(paywire_simulators_v1_payout_bank_service_get_statement_stream_recv(s, &l),
                     PW_OK);
    assert_null(l);
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bank_one_payout_per_instruction),
        cmocka_unit_test(test_bank_test_accounts_choose_the_fate),
        cmocka_unit_test(test_bank_lost_answers_and_failures),
        cmocka_unit_test(test_bank_refuses_bad_input),
        cmocka_unit_test(test_bank_statement_agrees_with_the_payouts),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
