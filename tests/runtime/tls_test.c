/* TLS and mutual TLS: handshakes, verification failures, peer identity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/paywire.h>
#include "pw_test.h"

#define CERTS "certs-tls-test"

typedef struct seen {
    int calls;
    pw_peer peer;
    char address[96];
    char subject[256];
    char sans[512];
} seen;

static seen last;

static void who(pw_call *call, void *ud)
{
    (void)ud;
    const pw_peer *p = pw_call_peer(call);
    last.calls++;
    last.peer = *p; /* the strings are borrowed: copy the ones checked later */
    snprintf(last.address, sizeof(last.address), "%s", p->address);
    snprintf(last.subject, sizeof(last.subject), "%s", p->subject ? p->subject : "");
    last.sans[0] = '\0';
    for (size_t i = 0; i < p->san_count; i++) {
        strncat(last.sans, p->sans[i], sizeof(last.sans) - strlen(last.sans) - 2);
        strcat(last.sans, " ");
    }
    pw_call_send_bytes(call, pw_slice_make("ok", 2));
    pw_call_finish(call, PW_OK, NULL);
}

static const pw_method who_method = {.path = "/test.Svc/Who",
                                     .kind = PW_METHOD_UNARY,
                                     .request_type = NULL,
                                     .response_type = NULL,
                                     .handler = who,
                                     .user_data = NULL};

static int make_certs(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/interop/make_certs.sh " CERTS, PW_TEST_DIR);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs one call over a TLS (or h2c, when stls is NULL) server and returns its status. */
static pw_status call_with(const pw_tls_config *stls, const pw_tls_config *ctls, char *message,
                           size_t message_size)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    assert_int_equal(pw_server_new(&server, &loop, NULL), PW_OK);
    pw_server_add_method(server, &who_method);
    int port;
    assert_int_equal(pw_server_listen(server, "127.0.0.1:0", stls, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel_options o = {.tls = ctls};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, &o), PW_OK);
    pw_test_call r = {0};
    pw_status st = pw_test_call_run(&loop, ch, "/test.Svc/Who", NULL, "", 0, &r);
    snprintf(message, message_size, "%s", r.message);
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, server, ch);
    return st;
}

static const pw_tls_config server_tls = {
    .cert_file = CERTS "/server.pem",
    .key_file = CERTS "/server.key",
};

static const pw_tls_config client_tls = {
    .ca_file = CERTS "/ca.pem",
    .server_name_override = "foo.test.google.fr",
};

static void test_tls_call_succeeds_and_peer_is_tls(void **state)
{
    (void)state;
    char msg[512];
    memset(&last, 0, sizeof(last));
    assert_int_equal(call_with(&server_tls, &client_tls, msg, sizeof(msg)), PW_OK);
    assert_int_equal(last.calls, 1);
    assert_int_equal(last.peer.tls, 1);
    assert_int_equal(last.peer.verified, 0);
    assert_non_null(strstr(last.address, "127.0.0.1:"));
}

static void test_tls_client_rejects_unknown_ca(void **state)
{
    (void)state;
    pw_tls_config rogue = {.cert_file = CERTS "/rogue.pem", .key_file = CERTS "/rogue.key"};
    char msg[512];
    assert_int_equal(call_with(&rogue, &client_tls, msg, sizeof(msg)), PW_UNAVAILABLE);
    assert_non_null(strstr(msg, "certificate verify failed"));
}

static void test_tls_client_rejects_wrong_name(void **state)
{
    (void)state;
    pw_tls_config wrong = client_tls;
    wrong.server_name_override = "payments.example.com";
    char msg[512];
    assert_int_equal(call_with(&server_tls, &wrong, msg, sizeof(msg)), PW_UNAVAILABLE);
    assert_non_null(strstr(msg, "hostname mismatch"));
}

static const pw_tls_config mtls_server = {
    .cert_file = CERTS "/server.pem",
    .key_file = CERTS "/server.key",
    .ca_file = CERTS "/ca.pem",
    .require_client_cert = 1,
};

static void test_tls_mutual_exposes_peer_identity(void **state)
{
    (void)state;
    pw_tls_config c = client_tls;
    c.cert_file = CERTS "/client.pem";
    c.key_file = CERTS "/client.key";
    char msg[512];
    memset(&last, 0, sizeof(last));
    assert_int_equal(call_with(&mtls_server, &c, msg, sizeof(msg)), PW_OK);
    assert_int_equal(last.peer.verified, 1);
    assert_non_null(strstr(last.subject, "CN=interop-client"));
    assert_non_null(strstr(last.sans, "URI:spiffe://paywire.test/interop-client"));
    assert_non_null(strstr(last.sans, "DNS:client.test"));
}

static void test_tls_mutual_refuses_client_without_cert(void **state)
{
    (void)state;
    char msg[512];
    memset(&last, 0, sizeof(last));
    assert_int_equal(call_with(&mtls_server, &client_tls, msg, sizeof(msg)), PW_UNAVAILABLE);
    assert_int_equal(last.calls, 0);
}

static void test_tls_mutual_refuses_cert_from_other_ca(void **state)
{
    (void)state;
    pw_tls_config c = client_tls;
    c.cert_file = CERTS "/rogue.pem";
    c.key_file = CERTS "/rogue.key";
    char msg[512];
    memset(&last, 0, sizeof(last));
    assert_int_equal(call_with(&mtls_server, &c, msg, sizeof(msg)), PW_UNAVAILABLE);
    assert_int_equal(last.calls, 0);
}

static void test_tls_plaintext_and_tls_mismatch_fail_cleanly(void **state)
{
    (void)state;
    char msg[512];
    assert_int_equal(call_with(&server_tls, NULL, msg, sizeof(msg)), PW_UNAVAILABLE);
    assert_int_equal(call_with(NULL, &client_tls, msg, sizeof(msg)), PW_UNAVAILABLE);
}

static void test_tls_bad_files_are_invalid_argument(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    assert_int_equal(pw_server_new(&server, &loop, NULL), PW_OK);
    pw_tls_config missing = {.cert_file = CERTS "/nope.pem", .key_file = CERTS "/server.key"};
    assert_int_equal(pw_server_listen(server, "127.0.0.1:0", &missing, NULL), PW_INVALID_ARGUMENT);
    pw_tls_config mismatched = {.cert_file = CERTS "/server.pem", .key_file = CERTS "/client.key"};
    assert_int_equal(pw_server_listen(server, "127.0.0.1:0", &mismatched, NULL),
                     PW_INVALID_ARGUMENT);
    pw_channel *ch;
    pw_tls_config bad_ca = {.ca_file = CERTS "/nope.pem"};
    pw_channel_options o = {.tls = &bad_ca};
    assert_int_equal(pw_channel_new(&ch, &loop, "127.0.0.1:1", &o), PW_INVALID_ARGUMENT);
    pw_test_shutdown(&loop, server, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_call_succeeds_and_peer_is_tls),
        cmocka_unit_test(test_tls_client_rejects_unknown_ca),
        cmocka_unit_test(test_tls_client_rejects_wrong_name),
        cmocka_unit_test(test_tls_mutual_exposes_peer_identity),
        cmocka_unit_test(test_tls_mutual_refuses_client_without_cert),
        cmocka_unit_test(test_tls_mutual_refuses_cert_from_other_ca),
        cmocka_unit_test(test_tls_plaintext_and_tls_mismatch_fail_cleanly),
        cmocka_unit_test(test_tls_bad_files_are_invalid_argument),
    };
    return cmocka_run_group_tests(tests, make_certs, NULL);
}
