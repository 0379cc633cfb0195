/*
 * The acquirer simulator end to end (acquirer.proto): a real acquirer-sim
 * process on a fresh database, called over mTLS. Its records are what
 * orchestration's tests count partner requests by, so they are checked here
 * first: one row per key, retries counted, test cards deciding the outcome,
 * hangs and late answers recorded (or not) as a partner would.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/db.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/simulators/v1/acquirer.pw.h"

typedef Paywire__Simulators__V1__Operation Operation;

static char db_url[512];
static svc_process sim = {.name = "acquirer",
                          .binary = PW_ACQUIRER_SIM,
                          .health_service = "paywire.simulators.v1.AcquirerService"};
static uv_loop_t loop;
static pw_channel *ch;

static int group_setup(void **state)
{
    (void)state;
    svc_process_prepare(&sim);
    pw_test_db_create("acquirer_sim_test", db_url, sizeof(db_url));
    char err[512];
    assert_int_equal(pw_db_migrate(db_url,
                                   PW_SOURCE_DIR
                                   "/services/orchestration/simulators/acquirer-sim/migrations",
                                   "paywire.migrate.acquirer_sim", NULL, err, sizeof(err)),
                     PW_OK);
    svc_process_start(&sim, db_url,
                      "log_level = warning\nworkers = 2\nhang_ms = 300\ntimeout_delay_ms = 400\n");
    uv_loop_init(&loop);
    ch = svc_process_channel(&sim, &loop);
    svc_process_wait_serving(&sim, ch);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(ch, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&sim);
    svc_process_cleanup(&sim);
    return 0;
}

/* Calls method with req; returns the status, *op the operation (free *resp after). */
static pw_status call(const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *type, int timeout_ms,
                      ProtobufCMessage **resp)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.simulators.v1.AcquirerService/%s", method);
    pw_call_options o = {.timeout_ms = timeout_ms};
    *resp = NULL;
    return pw_client_unary_blocking(ch, path, &o, req, type, resp, NULL, NULL);
}

/* The operation of any of the simulator's responses (all have it as field 1). */
static Operation *op_of(ProtobufCMessage *m)
{
    return ((Paywire__Simulators__V1__AuthorizeResponse *)m)->operation;
}

static pw_status authorize(const char *key, const char *card, int64_t amount, int timeout_ms,
                           ProtobufCMessage **resp)
{
    char token[40];
    snprintf(token, sizeof(token), "tok_%s", card);
    Paywire__Simulators__V1__AuthorizeRequest req =
        PAYWIRE__SIMULATORS__V1__AUTHORIZE_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.vault_token = token;
    req.amount_minor = amount;
    req.currency = "USD";
    return call("Authorize", &req.base, &paywire__simulators__v1__authorize_response__descriptor,
                timeout_ms, resp);
}

static pw_status follow_up(const char *method, const char *key, const char *auth, int64_t amount,
                           ProtobufCMessage **resp)
{
    /* Capture, Refund and VoidAuthorization requests share fields 1-3 (void has no 3). */
    Paywire__Simulators__V1__RefundRequest req = PAYWIRE__SIMULATORS__V1__REFUND_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.authorization_reference = (char *)auth;
    req.amount_minor = amount;
    return call(method, &req.base, &paywire__simulators__v1__refund_response__descriptor, 5000,
                resp);
}

static pw_status get_operation(const char *key, ProtobufCMessage **resp)
{
    Paywire__Simulators__V1__GetOperationRequest req =
        PAYWIRE__SIMULATORS__V1__GET_OPERATION_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    return call("GetOperation", &req.base,
                &paywire__simulators__v1__get_operation_response__descriptor, 5000, resp);
}

static void test_acquirer_sim_authorize_once_per_key(void **state)
{
    (void)state;
    ProtobufCMessage *a = NULL, *b = NULL;
    assert_int_equal(authorize("att_once", "4242424242424242", 1000, 5000, &a), PW_OK);
    assert_int_equal(op_of(a)->status,
                     PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED);
    assert_int_equal(op_of(a)->requests, 1);
    /* The retry gets the first answer and is counted. */
    assert_int_equal(authorize("att_once", "4242424242424242", 1000, 5000, &b), PW_OK);
    assert_string_equal(op_of(b)->reference, op_of(a)->reference);
    assert_int_equal(op_of(b)->requests, 2);
    pw_protobuf_free(b);
    /* The key with another amount, or as a capture, is refused and counts nothing. */
    assert_int_equal(authorize("att_once", "4242424242424242", 5, 5000, &b),
                     PW_FAILED_PRECONDITION);
    pw_protobuf_free(b);
    assert_int_equal(follow_up("Capture", "att_once", op_of(a)->reference, 1000, &b),
                     PW_FAILED_PRECONDITION);
    pw_protobuf_free(b);
    assert_int_equal(get_operation("att_once", &b), PW_OK);
    assert_int_equal(op_of(b)->requests, 2);
    assert_int_equal(op_of(b)->amount_minor, 1000);
    pw_protobuf_free(b);
    pw_protobuf_free(a);
}

static void test_acquirer_sim_test_cards(void **state)
{
    (void)state;
    struct {
        const char *card, *code;
        int soft;
    } cases[] = {{"4000000000000002", "do_not_honor", 0},
                 {"4000000000009995", "insufficient_funds", 0},
                 {"4000000000000119", "processing_error", 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char key[32];
        snprintf(key, sizeof(key), "att_card%zu", i);
        ProtobufCMessage *m = NULL;
        assert_int_equal(authorize(key, cases[i].card, 100, 5000, &m), PW_OK);
        assert_int_equal(op_of(m)->status,
                         PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_DECLINED);
        assert_string_equal(op_of(m)->decline_code, cases[i].code);
        assert_int_equal(op_of(m)->soft_decline, cases[i].soft);
        pw_protobuf_free(m);
    }
}

static void test_acquirer_sim_hang_records_nothing(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    pw_status rv = authorize("att_hang", "4000000000003002", 100, 5000, &m);
    assert_int_equal(rv, PW_UNAVAILABLE);
    assert_int_equal(get_operation("att_hang", &m), PW_NOT_FOUND);
}

static void test_acquirer_sim_accept_then_timeout(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    assert_int_equal(authorize("att_late", "4000000000003001", 100, 150, &m), PW_DEADLINE_EXCEEDED);
    /* Approved all the same: the status query by our key says so. */
    assert_int_equal(get_operation("att_late", &m), PW_OK);
    assert_int_equal(op_of(m)->status,
                     PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED);
    assert_int_equal(op_of(m)->requests, 1);
    pw_protobuf_free(m);
    uv_sleep(400); /* let the late answer go before the next test */
}

static void test_acquirer_sim_capture_refund_limits(void **state)
{
    (void)state;
    ProtobufCMessage *a = NULL, *m = NULL;
    assert_int_equal(authorize("att_cap", "4242424242424242", 10000, 5000, &a), PW_OK);
    const char *auth = op_of(a)->reference;
    assert_int_equal(follow_up("Capture", "cap_1", auth, 20000, &m), PW_OK);
    assert_string_equal(op_of(m)->decline_code, "amount_exceeds_authorized");
    pw_protobuf_free(m);
    assert_int_equal(follow_up("Capture", "cap_2", auth, 10000, &m), PW_OK);
    assert_int_equal(op_of(m)->status,
                     PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED);
    pw_protobuf_free(m);
    assert_int_equal(follow_up("Capture", "cap_3", auth, 100, &m), PW_OK);
    assert_string_equal(op_of(m)->decline_code, "already_captured");
    pw_protobuf_free(m);
    assert_int_equal(follow_up("VoidAuthorization", "vod_1", auth, 0, &m), PW_OK);
    assert_string_equal(op_of(m)->decline_code, "already_captured");
    pw_protobuf_free(m);
    assert_int_equal(follow_up("Refund", "ref_1", auth, 6000, &m), PW_OK);
    assert_int_equal(op_of(m)->status,
                     PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED);
    pw_protobuf_free(m);
    assert_int_equal(follow_up("Refund", "ref_2", auth, 6000, &m), PW_OK);
    assert_string_equal(op_of(m)->decline_code, "amount_exceeds_captured");
    pw_protobuf_free(m);
    /* A retry of the first refund is the first answer, not a second refund. */
    assert_int_equal(follow_up("Refund", "ref_1", auth, 6000, &m), PW_OK);
    assert_int_equal(op_of(m)->status,
                     PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED);
    assert_int_equal(op_of(m)->requests, 2);
    pw_protobuf_free(m);
    /* Its key with another amount is refused, not answered with the first refund. */
    assert_int_equal(follow_up("Refund", "ref_1", auth, 5000, &m), PW_FAILED_PRECONDITION);
    pw_protobuf_free(m);
    assert_int_equal(follow_up("Refund", "ref_3", "sim1_nothing", 1, &m), PW_OK);
    assert_string_equal(op_of(m)->decline_code, "authorization_not_found");
    pw_protobuf_free(m);
    pw_protobuf_free(a);
}

static void test_acquirer_sim_rejects_bad_input(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    assert_int_equal(authorize("", "4242424242424242", 100, 5000, &m), PW_INVALID_ARGUMENT);
    assert_int_equal(authorize("att_bad", "4242424242424242", 0, 5000, &m), PW_INVALID_ARGUMENT);
}

/* Without report_dir the simulator writes no report, and says which setting is missing. */
static void test_acquirer_sim_no_report_dir(void **state)
{
    (void)state;
    Paywire__Simulators__V1__WriteSettlementReportRequest req =
        PAYWIRE__SIMULATORS__V1__WRITE_SETTLEMENT_REPORT_REQUEST__INIT;
    req.date = "2026-12-01";
    req.report_id = "acq-2026-12-01";
    ProtobufCMessage *m = NULL;
    char *msg = NULL;
    pw_call_options o = {.timeout_ms = 5000};
    assert_int_equal(
        pw_client_unary_blocking(
            ch, "/paywire.simulators.v1.AcquirerService/WriteSettlementReport", &o, &req.base,
            &paywire__simulators__v1__write_settlement_report_response__descriptor, &m, &msg, NULL),
        PW_FAILED_PRECONDITION);
    assert_non_null(strstr(msg, "report_dir"));
    pw_free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquirer_sim_authorize_once_per_key),
        cmocka_unit_test(test_acquirer_sim_test_cards),
        cmocka_unit_test(test_acquirer_sim_hang_records_nothing),
        cmocka_unit_test(test_acquirer_sim_accept_then_timeout),
        cmocka_unit_test(test_acquirer_sim_capture_refund_limits),
        cmocka_unit_test(test_acquirer_sim_rejects_bad_input),
        cmocka_unit_test(test_acquirer_sim_no_report_dir),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
