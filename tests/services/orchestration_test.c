/*
 * The orchestration service end to end: a real orchestration-server and a
 * real acquirer-sim, each on its own fresh database, one CA for both, called
 * through the generated messages over mTLS as an internal service
 * (spiffe://paywire/tests). What reached the partner is counted in the
 * simulator's own records (its `operations` table, one row per key with a
 * request count). Every transition of the core is driven, allowed and
 * refused; the refund race and the crash between the attempt commit and the
 * outcome are seeded where concurrent (PW_TEST_SEED repeats a run).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "pw_test_raw.h"
#include "svc_process.h"
#include "ofac.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/merchant/v1/merchant.pw.h"
#include "paywire/orchestration/v1/payments.pw.h"

typedef Paywire__Orchestration__V1__Payment Payment;

static char orch_db[512], sim_db[512], sim2_db[512], flaky_db[512], merchant_db[512],
    compliance_db[512];
static svc_process comp = {.name = "compliance",
                           .binary = PW_COMPLIANCE_SERVER,
                           .health_service = "paywire.compliance.v1.ScreeningService"};
static svc_process mer = {.name = "merchant",
                          .binary = PW_MERCHANT_SERVER,
                          .health_service = "paywire.merchant.v1.MerchantService"};
static svc_process sim = {.name = "acquirer",
                          .binary = PW_ACQUIRER_SIM,
                          .health_service = "paywire.simulators.v1.AcquirerService"};
/* A second acquirer: other latency, approves the card the first declines softly. */
static svc_process sim2 = {.name = "acquirer2",
                           .binary = PW_ACQUIRER_SIM,
                           .health_service = "paywire.simulators.v1.AcquirerService"};
/* An acquirer that refuses every request before recording it (the breaker's tests). */
static svc_process flaky = {.name = "acquirer_flaky",
                            .binary = PW_ACQUIRER_SIM,
                            .health_service = "paywire.simulators.v1.AcquirerService"};
static svc_process orch = {.name = "orchestration",
                           .binary = PW_ORCHESTRATION_SERVER,
                           .health_service = "paywire.orchestration.v1.PaymentService"};
static uv_loop_t loop;
static pw_channel *ch;
/* To orchestration without a client certificate: callers with API keys. */
static pw_channel *public_ch;
static const char *merchant = "mer_0000000000000000000000000M";

/* Starts orchestration with its connectors (NULL: the two acquirers), their deadline and
 * extra settings. */
static void start_orch_with(const char *connectors, int timeout_ms, const char *extra)
{
    char conf[1024], two[256];
    snprintf(two, sizeof(two), "acquirer_sim@localhost:%d/290/30,acquirer_sim2@localhost:%d/250/25",
             sim.port, sim2.port);
    snprintf(conf, sizeof(conf),
             "log_level = warning\nworkers = 2\nconnectors = %s\n"
             "connector_timeout_ms = %d\nrecovery_interval_ms = 100\nattempt_give_up_ms = 2000\n"
             "merchant_target = localhost:%d\ncompliance_target = localhost:%d\n%s",
             connectors != NULL ? connectors : two, timeout_ms, mer.port, comp.port, extra);
    svc_process_start(&orch, orch_db, conf);
    if (ch == NULL) {
        ch = svc_process_channel(&orch, &loop);
    }
    svc_process_wait_serving(&orch, ch);
}

static void start_orch(const char *extra)
{
    start_orch_with(NULL, 500, extra);
}

static void start_sim(svc_process *p, const char *db, const char *extra)
{
    /* Ports picked now, not at prepare: a port free then may be taken by the time the last
     * of seven processes starts, on a machine running other tests. */
    p->port = svc_process_free_port();
    p->admin_port = svc_process_free_port();
    char conf[512];
    snprintf(conf, sizeof(conf),
             "log_level = warning\nworkers = 1\n"
             "internal_identities = spiffe://paywire/tests,spiffe://paywire/orchestration\n%s",
             extra);
    svc_process_start(p, db, conf);
    pw_channel *sc = svc_process_channel(p, &loop);
    svc_process_wait_serving(p, sc);
    pw_channel_close(sc, NULL, NULL);
}

static void start_compliance(void)
{
    svc_process_start(
        &comp, compliance_db,
        "log_level = warning\nworkers = 1\nencryption_key = "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
        "internal_identities = spiffe://paywire/tests,spiffe://paywire/orchestration\n");
    pw_channel *cc = svc_process_channel(&comp, &loop);
    svc_process_wait_serving(&comp, cc);
    pw_channel_close(cc, NULL, NULL);
}

/* A one-entry sanctions list (a person's name, no country): a name like it is a REVIEW. */
static void upload_list(void)
{
    static char *names[] = {"QUARTERMAINE, Zebedee Oswin"};
    Paywire__Compliance__V1__SanctionsEntry e = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT;
    e.entry_id = "z1";
    e.names = names;
    e.n_names = 1;
    e.type = "individual";
    Paywire__Compliance__V1__SanctionsEntry *es[] = {&e};
    pw_channel *cc = svc_process_channel(&comp, &loop);
    char msg[256];
    int active = 0;
    assert_int_equal(ofac_upload(cc, "test-list", "v1", es, 1, 1, 0, &active, msg, sizeof(msg)),
                     PW_OK);
    assert_true(active);
    pw_channel_close(cc, NULL, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    pw_test_db_create("orch_test", orch_db, sizeof(orch_db));
    pw_test_db_create("orch_sim", sim_db, sizeof(sim_db));
    pw_test_db_create("orch_sim2", sim2_db, sizeof(sim2_db));
    pw_test_db_create("orch_flaky", flaky_db, sizeof(flaky_db));
    pw_test_db_create("orch_mer", merchant_db, sizeof(merchant_db));
    pw_test_db_create("orch_comp", compliance_db, sizeof(compliance_db));
    svc_process_migrate(compliance_db, PW_SOURCE_DIR "/services/compliance/migrations",
                        "paywire.migrate.compliance");
    svc_process_migrate(merchant_db, PW_SOURCE_DIR "/services/merchant/migrations",
                        "paywire.migrate.merchant");
    svc_process_migrate(orch_db, PW_SOURCE_DIR "/services/orchestration/migrations",
                        "paywire.migrate.orchestration");
    const char *sim_dbs[] = {sim_db, sim2_db, flaky_db};
    for (int i = 0; i < 3; i++) {
        svc_process_migrate(
            sim_dbs[i], PW_SOURCE_DIR "/services/orchestration/simulators/acquirer-sim/migrations",
            "paywire.migrate.acquirer_sim");
    }
    uv_loop_init(&loop);
    svc_process_prepare(&sim);
    svc_process_prepare(&sim2);
    svc_process_prepare(&flaky);
    svc_process_prepare(&orch);
    svc_process_prepare(&mer);
    svc_process_prepare(&comp);
    /* One CA for all, so each verifies the others. */
    char certs[256];
    snprintf(certs, sizeof(certs), "bash %s/scripts/certs %s acquirer2 acquirer_flaky >/dev/null",
             PW_SOURCE_DIR, sim.dir);
    assert_int_equal(system(certs), 0);
    const svc_process *others[] = {&orch, &mer, &comp, &sim2, &flaky};
    for (int i = 0; i < 5; i++) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "cp %s/*.crt %s/*.key %s/", sim.dir, sim.dir, others[i]->dir);
        assert_int_equal(system(cmd), 0);
    }
    start_compliance();
    upload_list();
    svc_process_start(
        &mer, merchant_db,
        "log_level = warning\nworkers = 1\nencryption_key = "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
        "internal_identities = spiffe://paywire/tests,spiffe://paywire/orchestration\n");
    pw_channel *mc = svc_process_channel(&mer, &loop);
    svc_process_wait_serving(&mer, mc);
    pw_channel_close(mc, NULL, NULL);
    start_sim(&sim, sim_db, "timeout_delay_ms = 1000\nhang_ms = 1000\n");
    start_sim(&sim2, sim2_db,
              "timeout_delay_ms = 1000\nhang_ms = 1000\nreference_prefix = sim2\n"
              "latency_min_ms = 1\nlatency_max_ms = 20\nseed = 2\n"
              "approve_cards = 4000000000000119\n");
    start_sim(&flaky, flaky_db, "failure_percent = 100\nreference_prefix = flaky\n");
    start_orch("");
    static pw_tls_config anonymous;
    static char ca[128];
    snprintf(ca, sizeof(ca), "%s/ca.crt", orch.dir);
    anonymous = (pw_tls_config){.ca_file = ca};
    char target[64];
    snprintf(target, sizeof(target), "localhost:%d", orch.port);
    pw_channel_options o = {.tls = &anonymous};
    assert_int_equal(pw_channel_new(&public_ch, &loop, target, &o), PW_OK);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(ch, NULL, NULL);
    pw_channel_close(public_ch, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&orch);
    svc_process_stop(&sim);
    svc_process_stop(&sim2);
    svc_process_stop(&flaky);
    svc_process_stop(&mer);
    svc_process_stop(&comp);
    svc_process_cleanup(&comp);
    svc_process_cleanup(&orch);
    svc_process_cleanup(&sim);
    svc_process_cleanup(&sim2);
    svc_process_cleanup(&flaky);
    svc_process_cleanup(&mer);
    return 0;
}

/* ---- calls ---- */

static pw_status call(const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *type, ProtobufCMessage **resp)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.orchestration.v1.PaymentService/%s", method);
    pw_call_options o = {.timeout_ms = 10000};
    *resp = NULL;
    char *msg = NULL;
    pw_status rv = pw_client_unary_blocking(ch, path, &o, req, type, resp, &msg, NULL);
    if (rv != PW_OK && rv != PW_FAILED_PRECONDITION && msg != NULL) {
        print_message("%s: %s %s\n", method, pw_status_str(rv), msg);
    }
    pw_free(msg);
    return rv;
}

/* The payment of any response with it as field 1 (all but CreateRefund's). */
static Payment *payment_of(ProtobufCMessage *m)
{
    return ((Paywire__Orchestration__V1__GetPaymentResponse *)m)->payment;
}

static Paywire__Common__V1__Money *usd(Paywire__Common__V1__Money *m, int64_t minor)
{
    paywire__common__v1__money__init(m);
    m->amount_minor = minor;
    m->currency = "USD";
    return m;
}

/* The buyer beside the card: what compliance screens. */
typedef struct payer {
    const char *issuer_country;
    const char *cardholder_name;
} payer;

/* CreatePayment of amount with card and payer (may be NULL); *resp the answer. */
static pw_status create_by(const char *key, const char *card, const payer *who, int64_t amount,
                           int manual, int confirm, ProtobufCMessage **resp)
{
    char token[40];
    snprintf(token, sizeof(token), "tok_%s", card);
    Paywire__Orchestration__V1__CardMethod c = PAYWIRE__ORCHESTRATION__V1__CARD_METHOD__INIT;
    c.vault_token = token;
    c.brand = "visa";
    c.last4 = (char *)card + strlen(card) - 4;
    if (who != NULL) {
        c.issuer_country = (char *)who->issuer_country;
        c.cardholder_name = (char *)who->cardholder_name;
    }
    Paywire__Orchestration__V1__PaymentMethod pm = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__INIT;
    pm.method_case = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_CARD;
    pm.card = &c;
    Paywire__Common__V1__Money m;
    Paywire__Orchestration__V1__CreatePaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__CREATE_PAYMENT_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.merchant_id = (char *)merchant;
    req.amount = usd(&m, amount);
    req.method = &pm;
    req.capture_method = manual
                             ? PAYWIRE__ORCHESTRATION__V1__CAPTURE_METHOD__CAPTURE_METHOD_MANUAL
                             : PAYWIRE__ORCHESTRATION__V1__CAPTURE_METHOD__CAPTURE_METHOD_AUTOMATIC;
    req.confirm = confirm;
    return call("CreatePayment", &req.base,
                &paywire__orchestration__v1__create_payment_response__descriptor, resp);
}

static pw_status create(const char *key, const char *card, int64_t amount, int manual, int confirm,
                        ProtobufCMessage **resp)
{
    return create_by(key, card, NULL, amount, manual, confirm, resp);
}

/* ConfirmPayment, CapturePayment (amount 0: all) or CancelPayment of id. */
static pw_status act(const char *method, const char *key, const char *id, int64_t amount,
                     ProtobufCMessage **resp)
{
    Paywire__Common__V1__Money m;
    if (strcmp(method, "CapturePayment") == 0) {
        Paywire__Orchestration__V1__CapturePaymentRequest req =
            PAYWIRE__ORCHESTRATION__V1__CAPTURE_PAYMENT_REQUEST__INIT;
        req.idempotency_key = (char *)key;
        req.payment_id = (char *)id;
        req.amount = amount > 0 ? usd(&m, amount) : NULL;
        return call(method, &req.base,
                    &paywire__orchestration__v1__capture_payment_response__descriptor, resp);
    }
    /* ConfirmPaymentRequest and CancelPaymentRequest share fields 1 and 2. */
    Paywire__Orchestration__V1__ConfirmPaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__CONFIRM_PAYMENT_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.payment_id = (char *)id;
    return call(method, &req.base,
                &paywire__orchestration__v1__confirm_payment_response__descriptor, resp);
}

static Paywire__Orchestration__V1__CreateRefundRequest
refund_req(const char *key, const char *id, Paywire__Common__V1__Money *m, int64_t amount)
{
    Paywire__Orchestration__V1__CreateRefundRequest req =
        PAYWIRE__ORCHESTRATION__V1__CREATE_REFUND_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.payment_id = (char *)id;
    req.amount = usd(m, amount);
    return req;
}

static pw_status refund(const char *key, const char *id, int64_t amount, ProtobufCMessage **resp)
{
    Paywire__Common__V1__Money m;
    Paywire__Orchestration__V1__CreateRefundRequest req = refund_req(key, id, &m, amount);
    return call("CreateRefund", &req.base,
                &paywire__orchestration__v1__create_refund_response__descriptor, resp);
}

static Payment *get(const char *id, ProtobufCMessage **resp)
{
    Paywire__Orchestration__V1__GetPaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__GET_PAYMENT_REQUEST__INIT;
    req.payment_id = (char *)id;
    assert_int_equal(call("GetPayment", &req.base,
                          &paywire__orchestration__v1__get_payment_response__descriptor, resp),
                     PW_OK);
    return payment_of(*resp);
}

/* Creates a payment and brings it to AUTHORIZED (manual) or SUCCEEDED (automatic). */
static char *paid(const char *key, int64_t amount, int manual)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(create(key, "4242424242424242", amount, manual, 1, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     manual ? PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_AUTHORIZED
                            : PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    char *id = strdup(payment_of(m)->id);
    pw_protobuf_free(m);
    return id;
}

/* What the simulator recorded: a count over its operations (sql's WHERE part). */
static long long sim_count(const char *where)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM operations WHERE %s", where);
    return pw_test_db_scalar(sim_db, sql);
}

static long long sim_requests(const char *key)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT coalesce(sum(requests), 0) FROM operations WHERE key = '%s'",
             key);
    return pw_test_db_scalar(sim_db, sql);
}

/* A call that must end with want (a macro, so a failure names the line). */
#define expect_reason(call_, m_, want_) \
    do {                                \
        pw_status rv_ = (call_);        \
        assert_int_equal(rv_, (want_)); \
        pw_protobuf_free(m_);           \
        (m_) = NULL;                    \
    } while (0)

/* ---- the happy paths ---- */

static void test_orchestration_automatic_capture(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    assert_int_equal(create("auto-1", "4242424242424242", 10000, 0, 1, &m), PW_OK);
    Payment *p = payment_of(m);
    assert_int_equal(p->state, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    assert_int_equal(p->amount_captured->amount_minor, 10000);
    assert_int_equal(p->n_attempts, 1);
    assert_string_equal(p->attempts[0]->outcome, "SUCCEEDED");
    assert_int_equal(p->n_operations, 1);
    assert_string_equal(p->operations[0]->outcome, "SUCCEEDED");
    /* One key per partner operation, each sent once. */
    assert_int_equal(sim_requests(p->attempts[0]->id), 1);
    assert_int_equal(sim_requests(p->operations[0]->id), 1);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT (string_agg(coalesce(from_state, '-') || '>' || to_state, ',' ORDER BY id)"
             " = '->REQUIRES_CONFIRMATION,REQUIRES_CONFIRMATION>PROCESSING,PROCESSING>AUTHORIZED,"
             "AUTHORIZED>SUCCEEDED')::int FROM payment_transitions WHERE payment_id = '%s'",
             p->id);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM outbox WHERE payment_id = '%s'", p->id);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 4);
    /* The same request with the same key: the same payment, nothing sent again. */
    ProtobufCMessage *again = NULL;
    assert_int_equal(create("auto-1", "4242424242424242", 10000, 0, 1, &again), PW_OK);
    assert_string_equal(payment_of(again)->id, p->id);
    assert_int_equal(sim_requests(p->attempts[0]->id), 1);
    pw_protobuf_free(again);
    /* The same key, another request. */
    expect_reason(create("auto-1", "4242424242424242", 999, 0, 1, &again), again,
                  PW_FAILED_PRECONDITION);
    pw_protobuf_free(m);
}

static void test_orchestration_declines_are_ok_answers(void **state)
{
    (void)state;
    /* Hard declines (soft ones fail over: test_routing_soft_decline_fails_over). */
    const char *cards[] = {"4000000000000002", "4000000000009995"};
    const char *codes[] = {"do_not_honor", "insufficient_funds"};
    for (int i = 0; i < 2; i++) {
        char key[32];
        snprintf(key, sizeof(key), "decline-%d", i);
        ProtobufCMessage *m = NULL;
        assert_int_equal(create(key, cards[i], 500, 0, 1, &m), PW_OK);
        assert_int_equal(payment_of(m)->state,
                         PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_DECLINED);
        assert_string_equal(payment_of(m)->failure_code, codes[i]);
        /* A hard decline stops: no other connector is tried. */
        assert_int_equal(payment_of(m)->n_attempts, 1);
        /* DECLINED is terminal. */
        ProtobufCMessage *x = NULL;
        expect_reason(act("ConfirmPayment", "c", payment_of(m)->id, 0, &x), x,
                      PW_FAILED_PRECONDITION);
        expect_reason(act("CapturePayment", key, payment_of(m)->id, 0, &x), x,
                      PW_FAILED_PRECONDITION);
        expect_reason(act("CancelPayment", key, payment_of(m)->id, 0, &x), x,
                      PW_FAILED_PRECONDITION);
        pw_protobuf_free(m);
    }
}

/* ---- every transition of the core, allowed and refused ---- */

static void test_orchestration_manual_capture_and_refunds(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL, *x = NULL;
    assert_int_equal(create("manual-1", "4242424242424242", 10000, 1, 0, &m), PW_OK);
    char *id = strdup(payment_of(m)->id);
    assert_int_equal(
        payment_of(m)->state,
        PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_REQUIRES_CONFIRMATION);
    pw_protobuf_free(m);
    /* REQUIRES_CONFIRMATION: no capture, no refund. */
    expect_reason(act("CapturePayment", "cap-early", id, 0, &x), x, PW_FAILED_PRECONDITION);
    expect_reason(refund("ref-early", id, 100, &x), x, PW_FAILED_PRECONDITION);
    /* → PROCESSING → AUTHORIZED (manual: not captured). */
    assert_int_equal(act("ConfirmPayment", "conf-1", id, 0, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_AUTHORIZED);
    assert_non_null(payment_of(m)->capture_before_time);
    pw_protobuf_free(m);
    expect_reason(act("ConfirmPayment", "conf-2", id, 0, &x), x, PW_FAILED_PRECONDITION);
    expect_reason(refund("ref-auth", id, 100, &x), x, PW_FAILED_PRECONDITION);
    /* Above the authorization: refused, nothing sent. */
    expect_reason(act("CapturePayment", "cap-big", id, 20000, &x), x, PW_FAILED_PRECONDITION);
    /* A partial capture: SUCCEEDED with 40.00 captured. */
    assert_int_equal(act("CapturePayment", "cap-1", id, 4000, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    assert_int_equal(payment_of(m)->amount_captured->amount_minor, 4000);
    pw_protobuf_free(m);
    /* Its retry is the same answer; a second capture and a cancel are refused. */
    assert_int_equal(act("CapturePayment", "cap-1", id, 4000, &m), PW_OK);
    assert_int_equal(payment_of(m)->n_operations, 1);
    pw_protobuf_free(m);
    expect_reason(act("CapturePayment", "cap-2", id, 0, &x), x, PW_FAILED_PRECONDITION);
    expect_reason(act("CancelPayment", "cancel-late", id, 0, &x), x, PW_FAILED_PRECONDITION);
    /* Refunds up to what was captured. */
    expect_reason(refund("ref-big", id, 4001, &x), x, PW_FAILED_PRECONDITION);
    assert_int_equal(refund("ref-1", id, 1500, &m), PW_OK);
    assert_int_equal(((Paywire__Orchestration__V1__CreateRefundResponse *)m)->refund->state,
                     PAYWIRE__ORCHESTRATION__V1__REFUND_STATE__REFUND_STATE_SUCCEEDED);
    pw_protobuf_free(m);
    assert_int_equal(refund("ref-2", id, 2500, &m), PW_OK);
    pw_protobuf_free(m);
    expect_reason(refund("ref-3", id, 1, &x), x, PW_FAILED_PRECONDITION);
    assert_int_equal(get(id, &m)->amount_refunded->amount_minor, 4000);
    pw_protobuf_free(m);
    assert_int_equal(sim_count("kind = 'REFUND' AND status = 'APPROVED'"), 2);
    free(id);
}

static void test_orchestration_cancel(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL, *x = NULL;
    /* REQUIRES_CONFIRMATION → CANCELED, no partner involved. */
    assert_int_equal(create("cancel-1", "4242424242424242", 700, 1, 0, &m), PW_OK);
    char *id = strdup(payment_of(m)->id);
    pw_protobuf_free(m);
    assert_int_equal(act("CancelPayment", "cancel-1", id, 0, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_CANCELED);
    pw_protobuf_free(m);
    expect_reason(act("ConfirmPayment", "conf-c", id, 0, &x), x, PW_FAILED_PRECONDITION);
    free(id);
    /* AUTHORIZED → CANCELED: the authorization is voided at the partner. */
    id = paid("cancel-2", 800, 1);
    assert_int_equal(act("CancelPayment", "cancel-2", id, 0, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_CANCELED);
    assert_int_equal(payment_of(m)->n_operations, 1);
    assert_int_equal(sim_requests(payment_of(m)->operations[0]->id), 1);
    pw_protobuf_free(m);
    expect_reason(act("CapturePayment", "cap-c", id, 0, &x), x, PW_FAILED_PRECONDITION);
    expect_reason(refund("ref-c", id, 1, &x), x, PW_FAILED_PRECONDITION);
    free(id);
}

static void test_orchestration_rejects_bad_input(void **state)
{
    (void)state;
    ProtobufCMessage *x = NULL;
    expect_reason(create("", "4242424242424242", 100, 0, 0, &x), x, PW_INVALID_ARGUMENT);
    expect_reason(create("bad-1", "4242424242424242", 0, 0, 0, &x), x, PW_INVALID_ARGUMENT);
    expect_reason(act("ConfirmPayment", "k", "pay_nope", 0, &x), x, PW_INVALID_ARGUMENT);
    expect_reason(act("ConfirmPayment", "k", "pay_00000000000000000000000000", 0, &x), x,
                  PW_NOT_FOUND);
}

/* ---- the refund race (hyperswitch #13182) ---- */

typedef struct race {
    int ok, refused, other;
    int pending;
} race;

static void raced(const ProtobufCMessage *resp, const pw_result *result, void (*typed)(void),
                  void *ud)
{
    (void)resp;
    (void)typed;
    race *rc = ud;
    if (result->code == PW_OK) {
        rc->ok++;
    } else if (result->code == PW_FAILED_PRECONDITION) {
        rc->refused++;
    } else {
        print_message("CreateRefund: %s %s\n", pw_status_str(result->code),
                      result->message ? result->message : "");
        rc->other++;
    }
    rc->pending--;
}

static unsigned test_seed(const char *name)
{
    const char *env = getenv("PW_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    print_message("%s: seed %u (PW_TEST_SEED=%u to repeat)\n", name, seed, seed);
    srand(seed);
    return seed;
}

static void test_orchestration_concurrent_refunds(void **state)
{
    (void)state;
    test_seed("test_orchestration_concurrent_refunds");
    char *id = paid("race-1", 10000, 0);
    enum { N = 20 };
    char keys[N][32];
    Paywire__Common__V1__Money money[N];
    Paywire__Orchestration__V1__CreateRefundRequest reqs[N];
    int order[N];
    for (int i = 0; i < N; i++) {
        order[i] = i;
    }
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    race rc = {0};
    pw_call_options o = {.timeout_ms = 10000};
    /* Open every database connection of the worker first (concurrent reads), so the
     * refunds' transactions really run side by side instead of queueing for a connection. */
    Paywire__Orchestration__V1__GetPaymentRequest warm =
        PAYWIRE__ORCHESTRATION__V1__GET_PAYMENT_REQUEST__INIT;
    warm.payment_id = id;
    race w = {0};
    for (int i = 0; i < 32; i++) {
        w.pending++;
        assert_int_equal(
            pw_client_unary(
                ch, "/paywire.orchestration.v1.PaymentService/GetPayment", &o, &warm.base,
                &paywire__orchestration__v1__get_payment_response__descriptor, raced, NULL, &w),
            PW_OK);
    }
    while (w.pending > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(w.ok, 32);
    for (int n = 0; n < N; n++) {
        int i = order[n];
        snprintf(keys[i], sizeof(keys[i]), "race-ref-%d", i);
        reqs[i] = refund_req(keys[i], id, &money[i], 6000);
        rc.pending++;
        assert_int_equal(
            pw_client_unary(
                ch, "/paywire.orchestration.v1.PaymentService/CreateRefund", &o, &reqs[i].base,
                &paywire__orchestration__v1__create_refund_response__descriptor, raced, NULL, &rc),
            PW_OK);
    }
    while (rc.pending > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(rc.ok, 1);
    assert_int_equal(rc.refused, N - 1);
    assert_int_equal(rc.other, 0);
    ProtobufCMessage *m = NULL;
    assert_int_equal(get(id, &m)->amount_refunded->amount_minor, 6000);
    char where[256];
    snprintf(where, sizeof(where), "kind = 'REFUND' AND authorization_reference = '%s'",
             payment_of(m)->attempts[0]->partner_reference);
    assert_int_equal(sim_count(where), 1);
    pw_protobuf_free(m);
    free(id);
}

/* Sends the n requests at once (in a seeded order) and counts the outcomes. */
static race concurrently(const char *method, ProtobufCMessage **reqs, int n,
                         const ProtobufCMessageDescriptor *type)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.orchestration.v1.PaymentService/%s", method);
    race rc = {0};
    pw_call_options o = {.timeout_ms = 10000};
    int order[32];
    for (int i = 0; i < n; i++) {
        order[i] = i;
    }
    for (int i = n - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < n; i++) {
        rc.pending++;
        assert_int_equal(pw_client_unary(ch, path, &o, reqs[order[i]], type, raced, NULL, &rc),
                         PW_OK);
    }
    while (rc.pending > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    return rc;
}

static void test_orchestration_concurrent_captures(void **state)
{
    (void)state;
    test_seed("test_orchestration_concurrent_captures");
    char *id = paid("cap-race", 5000, 1);
    enum { N = 10 };
    char keys[N][32];
    Paywire__Orchestration__V1__CapturePaymentRequest reqs[N];
    ProtobufCMessage *msgs[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "cap-race-%d", i);
        reqs[i] = (Paywire__Orchestration__V1__CapturePaymentRequest)
            PAYWIRE__ORCHESTRATION__V1__CAPTURE_PAYMENT_REQUEST__INIT;
        reqs[i].idempotency_key = keys[i];
        reqs[i].payment_id = id;
        msgs[i] = &reqs[i].base;
    }
    race rc = concurrently("CapturePayment", msgs, N,
                           &paywire__orchestration__v1__capture_payment_response__descriptor);
    assert_int_equal(rc.ok, 1);
    assert_int_equal(rc.refused, N - 1);
    ProtobufCMessage *m = NULL;
    Payment *p = get(id, &m);
    assert_int_equal(p->state, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    char where[256];
    snprintf(where, sizeof(where), "kind = 'CAPTURE' AND authorization_reference = '%s'",
             p->attempts[0]->partner_reference);
    assert_int_equal(sim_count(where), 1);
    pw_protobuf_free(m);
    free(id);
}

static void test_orchestration_same_key_ten_clients(void **state)
{
    (void)state;
    test_seed("test_orchestration_same_key_ten_clients");
    enum { N = 10 };
    Paywire__Orchestration__V1__CardMethod c = PAYWIRE__ORCHESTRATION__V1__CARD_METHOD__INIT;
    c.vault_token = "tok_4242424242424242";
    Paywire__Orchestration__V1__PaymentMethod pm = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__INIT;
    pm.method_case = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_CARD;
    pm.card = &c;
    Paywire__Common__V1__Money money;
    Paywire__Orchestration__V1__CreatePaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__CREATE_PAYMENT_REQUEST__INIT;
    req.idempotency_key = "same-key-10";
    req.merchant_id = (char *)merchant;
    req.amount = usd(&money, 4321);
    req.method = &pm;
    req.confirm = 1;
    ProtobufCMessage *msgs[N];
    for (int i = 0; i < N; i++) {
        msgs[i] = &req.base;
    }
    race rc = concurrently("CreatePayment", msgs, N,
                           &paywire__orchestration__v1__create_payment_response__descriptor);
    assert_int_equal(rc.ok, N);
    assert_int_equal(pw_test_db_scalar(orch_db, "SELECT count(*) FROM payments WHERE idem_key ="
                                                " 'same-key-10'"),
                     1);
    assert_int_equal(pw_test_db_wait_scalar(orch_db,
                                            "SELECT count(*) FROM payments WHERE idem_key ="
                                            " 'same-key-10' AND state = 'SUCCEEDED'",
                                            1, 10000),
                     1);
    assert_int_equal(sim_count("kind = 'AUTHORIZATION' AND amount_minor = 4321"), 1);
}

/* ---- ambiguous answers and crashes: recovery completes the same attempt ---- */

static Payment *wait_state(const char *id, int want, ProtobufCMessage **m)
{
    for (int i = 0; i < 400; i++) {
        Payment *p = get(id, m);
        if ((int)p->state == want) {
            return p;
        }
        pw_protobuf_free(*m);
        uv_sleep(50);
    }
    fail_msg("payment %s did not reach state %d", id, want);
    return NULL;
}

static void test_orchestration_accept_then_timeout(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    /* The acquirer approves, then answers after our deadline. The same acquirer is asked for
     * the attempt before any other is tried: found approved, so no failover, one
     * authorization across both acquirers' records. */
    assert_int_equal(create("late-1", "4000000000003001", 900, 0, 1, &m), PW_OK);
    Payment *p = payment_of(m);
    assert_int_equal(p->state, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    assert_int_equal(p->n_attempts, 1);
    assert_string_equal(p->attempts[0]->connector, "acquirer_sim");
    assert_int_equal(sim_requests(p->attempts[0]->id), 1);
    assert_int_equal(sim_requests(p->operations[0]->id), 1);
    assert_int_equal(sim_count("kind = 'AUTHORIZATION' AND amount_minor = 900"), 1);
    assert_int_equal(pw_test_db_scalar(sim2_db, "SELECT count(*) FROM operations WHERE"
                                                " amount_minor = 900"),
                     0);
    pw_protobuf_free(m);
}

static void test_orchestration_hanging_acquirer(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    /* The acquirer holds the request past our deadline and never records it. */
    assert_int_equal(create("hang-1", "4000000000003002", 777, 0, 1, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_PROCESSING);
    char *id = strdup(payment_of(m)->id);
    pw_protobuf_free(m);
    /* Recovery asks by the key: never seen, for longer than attempt_give_up_ms: FAILED. */
    Payment *p =
        wait_state(id, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_FAILED, &m);
    assert_string_equal(p->failure_code, "no_connector_available");
    assert_string_equal(p->attempts[0]->outcome, "FAILED");
    assert_int_equal(sim_count("amount_minor = 777"), 0);
    pw_protobuf_free(m);
    free(id);
}

static void test_orchestration_crash_after_partner_answer(void **state)
{
    (void)state;
    test_seed("test_orchestration_crash_after_partner_answer");
    /* A process that dies (kill -9) once the acquirer answered, before step 3. */
    svc_process_stop(&orch);
    start_orch("fault_point = after_authorize\n");
    char key[32];
    snprintf(key, sizeof(key), "crash-%d", rand());
    ProtobufCMessage *m = NULL;
    pw_status rv = create(key, "4242424242424242", 1234, 0, 1, &m);
    assert_int_not_equal(rv, PW_OK);
    int status = 0;
    assert_int_equal(waitpid(orch.pid, &status, 0), orch.pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    orch.pid = 0;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM payment_attempts a JOIN payments p ON p.id = a.payment_id"
             " WHERE p.idem_key = '%s' AND a.outcome = 'PENDING' AND p.state = 'PROCESSING'",
             key);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 1);
    /* Restarted: recovery claims the attempt when its lease ends and completes it once. */
    start_orch("");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM payments WHERE idem_key = '%s' AND state = 'SUCCEEDED'", key);
    assert_int_equal(pw_test_db_wait_scalar(orch_db, sql, 1, 20000), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM payment_transitions t JOIN payments p ON p.id = t.payment_id"
             " WHERE p.idem_key = '%s' AND t.to_state IN ('AUTHORIZED', 'SUCCEEDED')",
             key);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 2);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM payment_attempts a JOIN payments p ON p.id = a.payment_id"
             " WHERE p.idem_key = '%s'",
             key);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 1);
    /* One authorization and one capture at the partner, each received once. */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM operations WHERE amount_minor = 1234 AND requests = 1");
    assert_int_equal(pw_test_db_scalar(sim_db, sql), 2);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM operations WHERE amount_minor = 1234");
    assert_int_equal(pw_test_db_scalar(sim_db, sql), 2);
}

/* ---- compliance's ScreenTransaction before any connector ---- */

/* 1 when the payment's transitions, as "from>to:reason,..." in order, are want. */
static int transitions_are(const char *id, const char *want)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT (string_agg(coalesce(from_state, '-') || '>' || to_state || ':' || reason,"
             " ',' ORDER BY id) = '%s')::int FROM payment_transitions WHERE payment_id = '%s'",
             want, id);
    return (int)pw_test_db_scalar(orch_db, sql);
}

static void test_orchestration_blocked_by_compliance(void **state)
{
    (void)state;
    /* An issuer under comprehensive sanctions: BLOCK. */
    const payer iran = {.issuer_country = "IR", .cardholder_name = "Ada Lovelace"};
    ProtobufCMessage *m = NULL, *x = NULL;
    assert_int_equal(create_by("blocked-1", "4242424242424242", &iran, 3131, 0, 1, &m), PW_OK);
    Payment *p = payment_of(m);
    assert_int_equal(p->state, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_FAILED);
    assert_string_equal(p->failure_code, "blocked_by_compliance");
    assert_int_equal(p->n_attempts, 0);
    /* Nothing reached the acquirer for it. */
    assert_int_equal(sim_count("amount_minor = 3131"), 0);
    assert_int_equal(transitions_are(p->id, "->REQUIRES_CONFIRMATION:,"
                                            "REQUIRES_CONFIRMATION>FAILED:blocked_by_compliance"),
                     1);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM payments WHERE id = '%s' AND screening_id LIKE 'scr_%%'", p->id);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM outbox WHERE payment_id = '%s' AND type = 'payment.failed'",
             p->id);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 1);
    /* FAILED is terminal; the retry of the create answers the same. */
    expect_reason(act("ConfirmPayment", "blocked-1b", p->id, 0, &x), x, PW_FAILED_PRECONDITION);
    assert_int_equal(create_by("blocked-1", "4242424242424242", &iran, 3131, 0, 1, &x), PW_OK);
    assert_int_equal(payment_of(x)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_FAILED);
    pw_protobuf_free(x);
    assert_int_equal(sim_count("amount_minor = 3131"), 0);
    /* An allowed payer of the same kind passes. */
    const payer ok = {.issuer_country = "DE", .cardholder_name = "Ada Lovelace"};
    assert_int_equal(create_by("allowed-1", "4242424242424242", &ok, 3132, 0, 1, &x), PW_OK);
    assert_int_equal(payment_of(x)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    pw_protobuf_free(x);
    pw_protobuf_free(m);
    expect_reason(create_by("bad-country", "4242424242424242",
                            &(payer){.issuer_country = "Iran", .cardholder_name = ""}, 1, 0, 1, &x),
                  x, PW_INVALID_ARGUMENT);
}

static void test_orchestration_review_waits(void **state)
{
    (void)state;
    /* A name close to a listed one: REVIEW, the payment waits UNDER_REVIEW, no connector. */
    const payer near = {.issuer_country = "GB", .cardholder_name = "Zebedee Quartermaine"};
    ProtobufCMessage *m = NULL;
    assert_int_equal(create_by("review-1", "4242424242424242", &near, 4141, 0, 1, &m), PW_OK);
    Payment *p = payment_of(m);
    assert_int_equal(p->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_UNDER_REVIEW);
    assert_int_equal(p->n_attempts, 0);
    assert_string_equal(p->method->card->cardholder_name, "Zebedee Quartermaine");
    assert_int_equal(sim_count("amount_minor = 4141"), 0);
    char *id = strdup(p->id);
    pw_protobuf_free(m);
    /* Cancellable while it waits. */
    assert_int_equal(act("CancelPayment", "review-cancel", id, 0, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_CANCELED);
    pw_protobuf_free(m);
    assert_int_equal(transitions_are(id, "->REQUIRES_CONFIRMATION:,"
                                         "REQUIRES_CONFIRMATION>UNDER_REVIEW:screening_review,"
                                         "UNDER_REVIEW>CANCELED:requested"),
                     1);
    assert_int_equal(sim_count("amount_minor = 4141"), 0);
    free(id);
}

static pw_status decide(const char *key, const char *id, int action, ProtobufCMessage **m)
{
    Paywire__Orchestration__V1__ApplyComplianceDecisionRequest req =
        PAYWIRE__ORCHESTRATION__V1__APPLY_COMPLIANCE_DECISION_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.payment_id = (char *)id;
    req.action = (Paywire__Orchestration__V1__ComplianceAction)action;
    return call("ApplyComplianceDecision", &req.base,
                &paywire__orchestration__v1__apply_compliance_decision_response__descriptor, m);
}

static void test_orchestration_review_decided(void **state)
{
    (void)state;
    const payer near = {.issuer_country = "GB", .cardholder_name = "Zebedee Quartermaine"};
    ProtobufCMessage *m = NULL, *x = NULL;
    /* ALLOW: routed by recovery (no buyer waits), authorized and captured once. */
    assert_int_equal(create_by("review-2", "4242424242424242", &near, 4242, 0, 1, &m), PW_OK);
    char *id = strdup(payment_of(m)->id);
    pw_protobuf_free(m);
    assert_int_equal(decide("dec-1", id,
                            PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_ALLOW,
                            &m),
                     PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_PROCESSING);
    pw_protobuf_free(m);
    Payment *p =
        wait_state(id, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED, &m);
    assert_int_equal(p->n_attempts, 1);
    assert_int_equal(sim_requests(p->attempts[0]->id), 1);
    pw_protobuf_free(m);
    assert_int_equal(sim_count("kind = 'AUTHORIZATION' AND amount_minor = 4242"), 1);
    /* A later decision changes nothing. */
    assert_int_equal(decide("dec-2", id,
                            PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_BLOCK,
                            &m),
                     PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    pw_protobuf_free(m);
    free(id);
    /* BLOCK: FAILED, nothing sent. */
    assert_int_equal(create_by("review-3", "4242424242424242", &near, 4343, 0, 1, &m), PW_OK);
    id = strdup(payment_of(m)->id);
    pw_protobuf_free(m);
    assert_int_equal(decide("dec-3", id,
                            PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_BLOCK,
                            &m),
                     PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_FAILED);
    assert_string_equal(payment_of(m)->failure_code, "blocked_by_compliance");
    pw_protobuf_free(m);
    uv_sleep(300);
    assert_int_equal(sim_count("amount_minor = 4343"), 0);
    expect_reason(decide("dec-4", "pay_00000000000000000000000000",
                         PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_ALLOW,
                         &x),
                  x, PW_NOT_FOUND);
    expect_reason(decide("dec-5", id,
                         PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_HOLD, &x),
                  x, PW_INVALID_ARGUMENT);
    free(id);
}

static void test_orchestration_compliance_unavailable(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL, *x = NULL;
    assert_int_equal(create("unscreened-1", "4242424242424242", 5151, 0, 0, &m), PW_OK);
    char *id = strdup(payment_of(m)->id);
    pw_protobuf_free(m);
    svc_process_stop(&comp);
    /* Fail closed (the default): UNAVAILABLE, the payment waits, nothing is sent. */
    expect_reason(act("ConfirmPayment", "unscreened-c1", id, 0, &x), x, PW_UNAVAILABLE);
    assert_int_equal(
        get(id, &m)->state,
        PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_REQUIRES_CONFIRMATION);
    pw_protobuf_free(m);
    assert_int_equal(sim_count("amount_minor = 5151"), 0);
    /* Fail open: routed unscreened, and its transition says so. */
    svc_process_stop(&orch);
    start_orch("compliance_unavailable = open\n");
    assert_int_equal(act("ConfirmPayment", "unscreened-c2", id, 0, &m), PW_OK);
    assert_int_equal(payment_of(m)->state,
                     PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    pw_protobuf_free(m);
    assert_int_equal(sim_count("amount_minor = 5151 AND kind = 'AUTHORIZATION'"), 1);
    assert_int_equal(transitions_are(id, "->REQUIRES_CONFIRMATION:,"
                                         "REQUIRES_CONFIRMATION>PROCESSING:not_screened,"
                                         "PROCESSING>AUTHORIZED:,AUTHORIZED>SUCCEEDED:"),
                     1);
    free(id);
    /* Back as the other tests expect it. */
    svc_process_stop(&orch);
    start_compliance();
    start_orch("");
}

/* ---- the capture window ---- */

static void test_orchestration_capture_window_expires(void **state)
{
    (void)state;
    /* A manual authorization whose window has passed (as if 7 days went by): refused for
     * capture, and voided at the acquirer by the job, once. */
    char *id = paid("window-1", 8888, 1);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE payments SET capture_before_time = now() - interval '1 second'"
             " WHERE id = '%s'",
             id);
    pw_test_db_exec(orch_db, sql);
    ProtobufCMessage *m = NULL;
    Payment *p =
        wait_state(id, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_CANCELED, &m);
    assert_int_equal(p->n_operations, 1);
    assert_int_equal(
        p->operations[0]->kind,
        PAYWIRE__ORCHESTRATION__V1__PAYMENT_OPERATION_KIND__PAYMENT_OPERATION_KIND_VOID);
    assert_string_equal(p->operations[0]->outcome, "SUCCEEDED");
    assert_int_equal(strncmp(p->operations[0]->id, "vod_exp", 7), 0);
    assert_int_equal(sim_requests(p->operations[0]->id), 1);
    char where[256];
    snprintf(where, sizeof(where),
             "kind = 'VOID' AND status = 'APPROVED' AND authorization_reference = '%s'",
             p->attempts[0]->partner_reference);
    assert_int_equal(sim_count(where), 1);
    pw_protobuf_free(m);
    ProtobufCMessage *x = NULL;
    expect_reason(act("CapturePayment", "window-cap", id, 0, &x), x, PW_FAILED_PRECONDITION);
    /* A later round queues nothing more. */
    uv_sleep(300);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM payment_operations WHERE payment_id = '%s'",
             id);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 1);
    free(id);
}

/* The window is business time (svc_now) and its expiry a job of the common scheduler: an
 * authorization six days old on the moved clock is still capturable; at seven days and a
 * minute the job voids it, once. */
static void test_orchestration_capture_window_on_the_clock(void **state)
{
    (void)state;
    char *id = paid("window-clock", 7777, 1);
    pw_test_db_exec(orch_db, "UPDATE svc_clock SET offset_ms = 6 * 86400000");
    uv_sleep(1500);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM payments WHERE id = '%s' AND state ="
             " 'AUTHORIZED'",
             id);
    assert_int_equal(pw_test_db_scalar(orch_db, sql), 1);
    pw_test_db_exec(orch_db, "UPDATE svc_clock SET offset_ms = 7 * 86400000 + 60000");
    ProtobufCMessage *m = NULL;
    Payment *p =
        wait_state(id, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_CANCELED, &m);
    assert_int_equal(p->n_operations, 1);
    assert_int_equal(strncmp(p->operations[0]->id, "vod_exp", 7), 0);
    assert_int_equal(sim_requests(p->operations[0]->id), 1);
    pw_protobuf_free(m);
    pw_test_db_exec(orch_db, "UPDATE svc_clock SET offset_ms = 0");
    assert_true(pw_test_db_scalar(orch_db, "SELECT runs FROM svc_jobs WHERE name ="
                                           " 'capture_expiry'") >= 2);
    free(id);
}

/* ---- routing: failover, rules, splits, breakers ---- */

static long long sim2_count(const char *where)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM operations WHERE %s", where);
    return pw_test_db_scalar(sim2_db, sql);
}

static void test_routing_soft_decline_fails_over(void **state)
{
    (void)state;
    /* A soft decline at the first acquirer: the second is tried, and approves. */
    ProtobufCMessage *m = NULL;
    assert_int_equal(create("soft-1", "4000000000000119", 6161, 0, 1, &m), PW_OK);
    char *id = strdup(payment_of(m)->id);
    pw_protobuf_free(m);
    /* (A capture that outlives the deadline on a loaded machine is completed by recovery.) */
    Payment *p =
        wait_state(id, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED, &m);
    assert_int_equal(p->n_attempts, 2);
    assert_string_equal(p->attempts[0]->connector, "acquirer_sim");
    assert_string_equal(p->attempts[0]->outcome, "DECLINED");
    assert_string_equal(p->attempts[0]->decline_code, "processing_error");
    assert_true(p->attempts[0]->soft_decline);
    assert_string_equal(p->attempts[1]->connector, "acquirer_sim2");
    assert_string_equal(p->attempts[1]->outcome, "SUCCEEDED");
    assert_int_equal(strncmp(p->attempts[1]->partner_reference, "sim2_", 5), 0);
    /* The capture and a refund go to the acquirer that authorized. */
    assert_int_equal(sim2_count("amount_minor = 6161 AND status = 'APPROVED'"), 2);
    assert_int_equal(sim_count("amount_minor = 6161 AND status = 'DECLINED'"), 1);
    pw_protobuf_free(m);
    assert_int_equal(refund("soft-ref", id, 1000, &m), PW_OK);
    pw_protobuf_free(m);
    assert_int_equal(sim2_count("kind = 'REFUND' AND amount_minor = 1000 AND status = 'APPROVED'"),
                     1);
    free(id);
}

/* Calls RoutingService's method. */
static pw_status routing(const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *type, ProtobufCMessage **resp)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.orchestration.v1.RoutingService/%s", method);
    pw_call_options o = {.timeout_ms = 10000};
    *resp = NULL;
    char *msg = NULL;
    pw_status rv = pw_client_unary_blocking(ch, path, &o, req, type, resp, &msg, NULL);
    if (rv != PW_OK && msg != NULL) {
        print_message("%s: %s %s\n", method, pw_status_str(rv), msg);
    }
    pw_free(msg);
    return rv;
}

static pw_status set_rules(const char *key, Paywire__Orchestration__V1__RoutingRule **rules,
                           size_t n, int64_t expected, int64_t *version)
{
    Paywire__Orchestration__V1__SetRoutingRulesRequest req =
        PAYWIRE__ORCHESTRATION__V1__SET_ROUTING_RULES_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.rules = rules;
    req.n_rules = n;
    req.expected_version = expected;
    ProtobufCMessage *m = NULL;
    pw_status rv = routing("SetRoutingRules", &req.base,
                           &paywire__orchestration__v1__set_routing_rules_response__descriptor, &m);
    if (rv == PW_OK && version != NULL) {
        *version = ((Paywire__Orchestration__V1__SetRoutingRulesResponse *)m)->version;
    }
    pw_protobuf_free(m);
    return rv;
}

/* The first attempt's connector of a new confirmed payment of amount. */
static char *first_connector(const char *key, int64_t amount, char *id_out)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(create(key, "4242424242424242", amount, 0, 1, &m), PW_OK);
    char id[40];
    snprintf(id, sizeof(id), "%s", payment_of(m)->id);
    pw_protobuf_free(m);
    Payment *p =
        wait_state(id, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED, &m);
    char *c = strdup(p->attempts[0]->connector);
    if (id_out != NULL) {
        strcpy(id_out, p->id);
    }
    pw_protobuf_free(m);
    return c;
}

/* The split's point as the design documents it: FNV-1a of the payment id, mod 100. */
static unsigned fnv_point(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *q = (const unsigned char *)id; *q; q++) {
        h = (h ^ *q) * 16777619u;
    }
    return h % 100;
}

static void test_routing_rules_split_and_cost(void **state)
{
    (void)state;
    char *both[] = {"acquirer_sim", "acquirer_sim2"}, *second[] = {"acquirer_sim2"};
    char *unknown[] = {"acquirer_nope"};
    uint32_t split[] = {70, 30}, bad_split[] = {70, 20};
    Paywire__Orchestration__V1__RoutingRule big = PAYWIRE__ORCHESTRATION__V1__ROUTING_RULE__INIT,
                                            cheap = PAYWIRE__ORCHESTRATION__V1__ROUTING_RULE__INIT,
                                            rest = PAYWIRE__ORCHESTRATION__V1__ROUTING_RULE__INIT;
    big.currency = "USD";
    big.min_amount_minor = 90000;
    big.connectors = second;
    big.n_connectors = 1;
    cheap.min_amount_minor = 80000;
    cheap.max_amount_minor = 89999;
    cheap.connectors = both;
    cheap.n_connectors = 2;
    cheap.cheapest_first = 1;
    rest.method = "card";
    rest.connectors = both;
    rest.n_connectors = 2;
    rest.split_percent = split;
    rest.n_split_percent = 2;
    Paywire__Orchestration__V1__RoutingRule *rules[] = {&big, &cheap, &rest};
    /* Refused: a connector that is not configured, a split that is not 100, a stale version. */
    big.connectors = unknown;
    assert_int_equal(set_rules("rules-bad-1", rules, 3, 0, NULL), PW_INVALID_ARGUMENT);
    big.connectors = second;
    rest.split_percent = bad_split;
    assert_int_equal(set_rules("rules-bad-2", rules, 3, 0, NULL), PW_INVALID_ARGUMENT);
    rest.split_percent = split;
    assert_int_equal(set_rules("rules-bad-3", rules, 3, 7, NULL), PW_ABORTED);
    int64_t v = 0;
    assert_int_equal(set_rules("rules-1", rules, 3, 0, &v), PW_OK);
    assert_int_equal(v, 1);
    /* The same key again is the same answer, not a second version. */
    assert_int_equal(set_rules("rules-1", rules, 3, 0, &v), PW_OK);
    assert_int_equal(v, 1);
    Paywire__Orchestration__V1__GetRoutingRulesRequest g =
        PAYWIRE__ORCHESTRATION__V1__GET_ROUTING_RULES_REQUEST__INIT;
    ProtobufCMessage *m = NULL;
    assert_int_equal(routing("GetRoutingRules", &g.base,
                             &paywire__orchestration__v1__get_routing_rules_response__descriptor,
                             &m),
                     PW_OK);
    Paywire__Orchestration__V1__GetRoutingRulesResponse *got = (void *)m;
    assert_int_equal(got->version, 1);
    assert_int_equal(got->n_rules, 3);
    assert_int_equal(got->rules[2]->n_split_percent, 2);
    assert_int_equal(got->rules[2]->split_percent[0], 70);
    assert_string_equal(got->rules[1]->connectors[1], "acquirer_sim2");
    assert_true(got->rules[1]->cheapest_first);
    pw_protobuf_free(m);
    /* The first matching rule: big amounts to the second acquirer only. */
    char *c = first_connector("route-big", 95000, NULL);
    assert_string_equal(c, "acquirer_sim2");
    free(c);
    /* cheapest_first: the second acquirer costs less (250 bps + 25 against 290 + 30). */
    c = first_connector("route-cheap", 85000, NULL);
    assert_string_equal(c, "acquirer_sim2");
    free(c);
    /* The split: each payment's first connector is the one its id's hash picks (70/30). */
    int firsts[2] = {0, 0};
    for (int i = 0; i < 30; i++) {
        char key[32], id[40];
        snprintf(key, sizeof(key), "route-split-%d", i);
        c = first_connector(key, 200 + i, id);
        const char *want = fnv_point(id) < 70 ? "acquirer_sim" : "acquirer_sim2";
        assert_string_equal(c, want);
        firsts[strcmp(c, "acquirer_sim2") == 0]++;
        free(c);
    }
    print_message("split: %d to acquirer_sim, %d to acquirer_sim2\n", firsts[0], firsts[1]);
    assert_true(firsts[0] > 0 && firsts[1] > 0);
    /* Back to no rules (every connector in configuration order) for the other tests. */
    assert_int_equal(set_rules("rules-2", NULL, 0, 1, &v), PW_OK);
    c = first_connector("route-none", 95000, NULL);
    assert_string_equal(c, "acquirer_sim");
    free(c);
}

static Paywire__Orchestration__V1__Connector *connector_named(ProtobufCMessage **m,
                                                              const char *name)
{
    Paywire__Orchestration__V1__ListConnectorsRequest req =
        PAYWIRE__ORCHESTRATION__V1__LIST_CONNECTORS_REQUEST__INIT;
    assert_int_equal(routing("ListConnectors", &req.base,
                             &paywire__orchestration__v1__list_connectors_response__descriptor, m),
                     PW_OK);
    Paywire__Orchestration__V1__ListConnectorsResponse *l = (void *)*m;
    for (size_t i = 0; i < l->n_connectors; i++) {
        if (strcmp(l->connectors[i]->name, name) == 0) {
            return l->connectors[i];
        }
    }
    fail_msg("no connector %s", name);
    return NULL;
}

/* The gauge name's value as orchestration's /metrics shows it once it is want, polled for up to
 * 5 s (the workers publish the breakers every second and at each call); -1: absent. */
static int orch_metric(const char *name, int want)
{
    static char text[1 << 17];
    int v = -1;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(pw_test_http(orch.admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
                                      1, text, sizeof(text)),
                         1);
        char key[128];
        snprintf(key, sizeof(key), "\n%s ", name);
        const char *line = strstr(text, key);
        v = line != NULL ? atoi(line + strlen(key)) : -1;
        if (v == want) {
            break;
        }
        uv_sleep(100);
    }
    return v;
}

static void test_routing_breaker_opens(void **state)
{
    (void)state;
    /* The first connector refuses everything before recording it: each payment fails over,
     * until its breaker opens after 3 failures; then it is skipped; after the cool-down a
     * trial request goes to it again, fails, and opens it again. */
    char connectors[256];
    snprintf(connectors, sizeof(connectors),
             "acquirer_flaky@localhost:%d/100/10,acquirer_sim@localhost:%d/290/30", flaky.port,
             sim.port);
    svc_process_stop(&orch);
    /* A generous deadline: each failure must be confirmed by the status query in time (a
     * query that times out is ambiguous and fails nothing over). */
    start_orch_with(connectors, 5000, "breaker_min_requests = 3\nbreaker_open_ms = 1500\n");
    ProtobufCMessage *m = NULL;
    Paywire__Orchestration__V1__Connector *c = connector_named(&m, "acquirer_flaky");
    assert_int_equal(c->circuit, PAYWIRE__ORCHESTRATION__V1__CIRCUIT_STATE__CIRCUIT_STATE_CLOSED);
    assert_int_equal(c->cost_bps, 100);
    pw_protobuf_free(m);
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "breaker-%d", i);
        assert_int_equal(create(key, "4242424242424242", 7000 + i, 0, 1, &m), PW_OK);
        Payment *p = payment_of(m);
        assert_int_equal(p->state,
                         PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
        assert_int_equal(p->n_attempts, 2);
        assert_string_equal(p->attempts[0]->connector, "acquirer_flaky");
        assert_string_equal(p->attempts[0]->outcome, "FAILED");
        assert_string_equal(p->attempts[1]->connector, "acquirer_sim");
        pw_protobuf_free(m);
    }
    c = connector_named(&m, "acquirer_flaky");
    assert_int_equal(c->circuit, PAYWIRE__ORCHESTRATION__V1__CIRCUIT_STATE__CIRCUIT_STATE_OPEN);
    assert_int_equal(c->success_rate_bps, 0);
    pw_protobuf_free(m);
    c = connector_named(&m, "acquirer_sim");
    assert_int_equal(c->circuit, PAYWIRE__ORCHESTRATION__V1__CIRCUIT_STATE__CIRCUIT_STATE_CLOSED);
    assert_int_equal(c->success_rate_bps, 10000);
    pw_protobuf_free(m);
    /* /metrics says the same: 1 open, 0 closed, and the success rates. */
    assert_int_equal(orch_metric("orchestration_connector_breaker_state_acquirer_flaky", 1), 1);
    assert_int_equal(orch_metric("orchestration_connector_success_rate_bps_acquirer_flaky", 0), 0);
    assert_int_equal(orch_metric("orchestration_connector_breaker_state_acquirer_sim", 0), 0);
    assert_int_equal(orch_metric("orchestration_connector_success_rate_bps_acquirer_sim", 10000),
                     10000);
    /* OPEN: skipped, one attempt. */
    assert_int_equal(create("breaker-open", "4242424242424242", 7100, 0, 1, &m), PW_OK);
    assert_int_equal(payment_of(m)->n_attempts, 1);
    assert_string_equal(payment_of(m)->attempts[0]->connector, "acquirer_sim");
    pw_protobuf_free(m);
    /* After the cool-down: HALF_OPEN, a trial, which fails: OPEN again. */
    uv_sleep(1600);
    c = connector_named(&m, "acquirer_flaky");
    assert_int_equal(c->circuit,
                     PAYWIRE__ORCHESTRATION__V1__CIRCUIT_STATE__CIRCUIT_STATE_HALF_OPEN);
    pw_protobuf_free(m);
    assert_int_equal(orch_metric("orchestration_connector_breaker_state_acquirer_flaky", 2), 2);
    assert_int_equal(create("breaker-trial", "4242424242424242", 7200, 0, 1, &m), PW_OK);
    assert_int_equal(payment_of(m)->n_attempts, 2);
    assert_string_equal(payment_of(m)->attempts[0]->connector, "acquirer_flaky");
    pw_protobuf_free(m);
    c = connector_named(&m, "acquirer_flaky");
    assert_int_equal(c->circuit, PAYWIRE__ORCHESTRATION__V1__CIRCUIT_STATE__CIRCUIT_STATE_OPEN);
    pw_protobuf_free(m);
    assert_int_equal(orch_metric("orchestration_connector_breaker_state_acquirer_flaky", 1), 1);
    /* Nothing was ever recorded by the refusing acquirer. */
    assert_int_equal(pw_test_db_scalar(flaky_db, "SELECT count(*) FROM operations"), 0);
    svc_process_stop(&orch);
    start_orch("");
}

/* ---- merchants' API keys through merchant's ResolveApiKey ---- */

/* A merchant (PENDING_REVIEW: test keys work) and a test key with scopes; the secret into out. */
static void merchant_key(const char *name, const char **scopes, size_t n, char *merchant_id,
                         char *secret)
{
    pw_channel *mc = svc_process_channel(&mer, &loop);
    static char *currencies[] = {"USD"};
    Paywire__Common__V1__PostalAddress addr = PAYWIRE__COMMON__V1__POSTAL_ADDRESS__INIT;
    addr.country = "DE";
    Paywire__Merchant__V1__LegalEntity le = PAYWIRE__MERCHANT__V1__LEGAL_ENTITY__INIT;
    le.legal_name = "Test GmbH";
    le.entity_type = PAYWIRE__MERCHANT__V1__ENTITY_TYPE__ENTITY_TYPE_COMPANY;
    le.tax_id = "DE123456789";
    le.registered_address = &addr;
    Paywire__Merchant__V1__Merchant m = PAYWIRE__MERCHANT__V1__MERCHANT__INIT;
    m.display_name = (char *)name;
    m.legal_entity = &le;
    m.country = "DE";
    m.merchant_category_code = "5942";
    m.n_currencies = 1;
    m.currencies = currencies;
    Paywire__Merchant__V1__CreateMerchantRequest cm =
        PAYWIRE__MERCHANT__V1__CREATE_MERCHANT_REQUEST__INIT;
    cm.idempotency_key = (char *)name;
    cm.merchant = &m;
    pw_call_options o = {.timeout_ms = 10000};
    ProtobufCMessage *resp = NULL;
    assert_int_equal(pw_client_unary_blocking(
                         mc, "/paywire.merchant.v1.MerchantService/CreateMerchant", &o, &cm.base,
                         &paywire__merchant__v1__create_merchant_response__descriptor, &resp, NULL,
                         NULL),
                     PW_OK);
    strcpy(merchant_id, ((Paywire__Merchant__V1__CreateMerchantResponse *)resp)->merchant->id);
    pw_protobuf_free(resp);
    Paywire__Merchant__V1__CreateApiKeyRequest ck =
        PAYWIRE__MERCHANT__V1__CREATE_API_KEY_REQUEST__INIT;
    ck.idempotency_key = (char *)name;
    ck.merchant_id = merchant_id;
    ck.mode = PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_TEST;
    ck.n_scopes = n;
    ck.scopes = (char **)scopes;
    assert_int_equal(pw_client_unary_blocking(
                         mc, "/paywire.merchant.v1.MerchantService/CreateApiKey", &o, &ck.base,
                         &paywire__merchant__v1__create_api_key_response__descriptor, &resp, NULL,
                         NULL),
                     PW_OK);
    strcpy(secret, ((Paywire__Merchant__V1__CreateApiKeyResponse *)resp)->secret);
    pw_protobuf_free(resp);
    pw_channel_close(mc, NULL, NULL);
}

/* GetPayment or CreatePayment (of 100 for merchant_id) with an API key. */
static pw_status as_merchant(const char *secret, const char *method, const char *arg,
                             ProtobufCMessage **resp)
{
    char bearer[160];
    snprintf(bearer, sizeof(bearer), "Bearer %s", secret);
    pw_metadata md = {0};
    pw_metadata_add_str(&md, "authorization", bearer);
    pw_call_options o = {.timeout_ms = 10000, .metadata = &md};
    char path[128];
    snprintf(path, sizeof(path), "/paywire.orchestration.v1.PaymentService/%s", method);
    *resp = NULL;
    pw_status rv;
    if (strcmp(method, "GetPayment") == 0) {
        Paywire__Orchestration__V1__GetPaymentRequest req =
            PAYWIRE__ORCHESTRATION__V1__GET_PAYMENT_REQUEST__INIT;
        req.payment_id = (char *)arg;
        rv = pw_client_unary_blocking(public_ch, path, &o, &req.base,
                                      &paywire__orchestration__v1__get_payment_response__descriptor,
                                      resp, NULL, NULL);
    } else {
        Paywire__Orchestration__V1__CardMethod c = PAYWIRE__ORCHESTRATION__V1__CARD_METHOD__INIT;
        c.vault_token = "tok_4242424242424242";
        Paywire__Orchestration__V1__PaymentMethod pm =
            PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__INIT;
        pm.method_case = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_CARD;
        pm.card = &c;
        Paywire__Common__V1__Money m;
        Paywire__Orchestration__V1__CreatePaymentRequest req =
            PAYWIRE__ORCHESTRATION__V1__CREATE_PAYMENT_REQUEST__INIT;
        req.idempotency_key = "merchant-key-1";
        req.merchant_id = (char *)arg;
        req.amount = usd(&m, 100);
        req.method = &pm;
        req.confirm = 1;
        rv = pw_client_unary_blocking(
            public_ch, path, &o, &req.base,
            &paywire__orchestration__v1__create_payment_response__descriptor, resp, NULL, NULL);
    }
    pw_metadata_clear(&md);
    return rv;
}

static void test_orchestration_api_keys(void **state)
{
    (void)state;
    const char *rw[] = {"payments:write", "payments:read"};
    const char *ro[] = {"payments:read"};
    char m1[40], k1[100], m2[40], k2[100];
    merchant_key("shop-one", rw, 2, m1, k1);
    merchant_key("shop-two", ro, 1, m2, k2);
    ProtobufCMessage *m = NULL;
    /* Its own merchant: served, in TEST mode. */
    assert_int_equal(as_merchant(k1, "CreatePayment", m1, &m), PW_OK);
    Payment *p = payment_of(m);
    assert_int_equal(p->state, PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED);
    assert_int_equal(p->mode, PAYWIRE__COMMON__V1__MODE__MODE_TEST);
    char *id = strdup(p->id);
    pw_protobuf_free(m);
    /* Another merchant's: not found, either way round; a missing scope; a bad key. */
    expect_reason(as_merchant(k1, "CreatePayment", m2, &m), m, PW_NOT_FOUND);
    expect_reason(as_merchant(k2, "GetPayment", id, &m), m, PW_NOT_FOUND);
    expect_reason(as_merchant(k2, "CreatePayment", m2, &m), m, PW_PERMISSION_DENIED);
    expect_reason(as_merchant("sk_test_nope", "GetPayment", id, &m), m, PW_UNAUTHENTICATED);
    /* The merchant service gone: a cached key still works, a new one fails closed. */
    svc_process_stop(&mer);
    assert_int_equal(as_merchant(k1, "GetPayment", id, &m), PW_OK);
    pw_protobuf_free(m);
    expect_reason(as_merchant("sk_test_uncached", "GetPayment", id, &m), m, PW_UNAVAILABLE);
    free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orchestration_automatic_capture),
        cmocka_unit_test(test_orchestration_declines_are_ok_answers),
        cmocka_unit_test(test_orchestration_manual_capture_and_refunds),
        cmocka_unit_test(test_orchestration_cancel),
        cmocka_unit_test(test_orchestration_rejects_bad_input),
        cmocka_unit_test(test_orchestration_concurrent_refunds),
        cmocka_unit_test(test_orchestration_concurrent_captures),
        cmocka_unit_test(test_orchestration_same_key_ten_clients),
        cmocka_unit_test(test_orchestration_accept_then_timeout),
        cmocka_unit_test(test_orchestration_hanging_acquirer),
        cmocka_unit_test(test_orchestration_blocked_by_compliance),
        cmocka_unit_test(test_orchestration_review_waits),
        cmocka_unit_test(test_orchestration_review_decided),
        cmocka_unit_test(test_orchestration_compliance_unavailable),
        cmocka_unit_test(test_orchestration_capture_window_expires),
        cmocka_unit_test(test_orchestration_capture_window_on_the_clock),
        cmocka_unit_test(test_routing_soft_decline_fails_over),
        cmocka_unit_test(test_routing_rules_split_and_cost),
        cmocka_unit_test(test_routing_breaker_opens),
        cmocka_unit_test(test_orchestration_crash_after_partner_answer),
        cmocka_unit_test(test_orchestration_api_keys),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
