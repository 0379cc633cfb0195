/* Auth interceptors: rejected calls never reach the handler; denials are audited. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/auth.h>
#include <paywire/errors.h>
#include <paywire/log.h>
#include "pw_test.h"

static int handler_runs;
static char principal[128];
static char audit[4096];
static int audit_lines;

static void audit_sink(pw_log_level level, const char *module, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    if (strcmp(module, "audit") == 0) {
        audit_lines++;
        strncat(audit, line, sizeof(audit) - strlen(audit) - 1);
    }
}

static void charge(pw_call *call, void *ud)
{
    (void)ud;
    handler_runs++;
    const char *p = pw_auth_principal(call);
    snprintf(principal, sizeof(principal), "%s", p ? p : "");
    pw_call_send_bytes(call, pw_slice_make("ok", 2));
    pw_call_finish(call, PW_OK, NULL);
}

typedef struct fx {
    uv_loop_t loop;
    pw_server *server;
    pw_channel *ch;
} fx;

static void fx_start(fx *f, const pw_tls_config *stls, const pw_tls_config *ctls)
{
    uv_loop_init(&f->loop);
    assert_int_equal(pw_server_new(&f->server, &f->loop, NULL), PW_OK);
    pw_method m1 = {.path = "/pay.v1.Payments/Charge", .kind = PW_METHOD_UNARY, .handler = charge};
    pw_method m2 = {.path = "/pay.v1.Payments/Refund", .kind = PW_METHOD_UNARY, .handler = charge};
    pw_server_add_method(f->server, &m1);
    pw_server_add_method(f->server, &m2);
    int port;
    assert_int_equal(pw_server_listen(f->server, "127.0.0.1:0", stls, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel_options o = {.tls = ctls};
    assert_int_equal(pw_channel_new(&f->ch, &f->loop, target, &o), PW_OK);
}

static pw_status call_with(fx *f, const char *path, const char *bearer, pw_test_call *r)
{
    pw_metadata md = {0};
    if (bearer != NULL) {
        char v[256];
        snprintf(v, sizeof(v), "Bearer %s", bearer);
        pw_metadata_add_str(&md, "authorization", v);
    }
    pw_call_options o = {.metadata = &md};
    memset(r, 0, sizeof(*r));
    pw_status st = pw_test_call_run(&f->loop, f->ch, path, &o, "x", 1, r);
    pw_metadata_clear(&md);
    return st;
}

static void test_auth_api_keys(void **state)
{
    (void)state;
    audit[0] = '\0';
    audit_lines = 0;
    handler_runs = 0;
    pw_log_set_sink(audit_sink, NULL);
    fx f;
    fx_start(&f, NULL, NULL);
    pw_api_keys *keys;
    assert_int_equal(pw_api_keys_new(&keys), PW_OK);
    char writer[160], reader[160];
    assert_int_equal(pw_api_keys_create(keys, "sk_test_", "mer_A", "payments:read payments:write",
                                        writer, sizeof(writer)),
                     PW_OK);
    assert_int_equal(
        pw_api_keys_create(keys, "sk_test_", "mer_B", "payments:read", reader, sizeof(reader)),
        PW_OK);
    pw_api_keys_require(keys, "/pay.v1.Payments/Charge", "payments:write");
    assert_int_equal(pw_api_keys_enable(f.server, keys), PW_OK);
    assert_int_equal(pw_rate_limit_enable(f.server, 1, 3), PW_OK);

    pw_test_call r;
    assert_int_equal(call_with(&f, "/pay.v1.Payments/Charge", NULL, &r), PW_UNAUTHENTICATED);
    pw_test_call_reset(&r);
    assert_int_equal(handler_runs, 0);

    assert_int_equal(call_with(&f, "/pay.v1.Payments/Charge", writer, &r), PW_OK);
    assert_string_equal(principal, "mer_A");
    pw_test_call_reset(&r);

    assert_int_equal(call_with(&f, "/pay.v1.Payments/Charge", reader, &r), PW_PERMISSION_DENIED);
    assert_non_null(strstr(r.message, "lacks scope payments:write"));
    pw_test_call_reset(&r);
    assert_int_equal(call_with(&f, "/pay.v1.Payments/Refund", reader, &r), PW_OK);
    pw_test_call_reset(&r);

    char tampered[160];
    snprintf(tampered, sizeof(tampered), "%s", writer);
    tampered[strlen(tampered) - 1] = tampered[strlen(tampered) - 1] == 'a' ? 'b' : 'a';
    assert_int_equal(call_with(&f, "/pay.v1.Payments/Charge", tampered, &r), PW_UNAUTHENTICATED);
    pw_test_call_reset(&r);

    /* The writer key has used 1 of its 3-call burst (1/s): two more pass, the next is limited. */
    assert_int_equal(call_with(&f, "/pay.v1.Payments/Refund", writer, &r), PW_OK);
    pw_test_call_reset(&r);
    assert_int_equal(call_with(&f, "/pay.v1.Payments/Refund", writer, &r), PW_OK);
    pw_test_call_reset(&r);
    assert_int_equal(call_with(&f, "/pay.v1.Payments/Refund", writer, &r), PW_RESOURCE_EXHAUSTED);
    pw_error_details d = {0};
    assert_int_equal(pw_error_details_read(&r.trailing, &d), PW_OK);
    assert_true(d.retry_delay_ms > 0 && d.retry_delay_ms <= 1001);
    pw_error_details_clear(&d);
    pw_test_call_reset(&r);

    char id[64];
    snprintf(id, sizeof(id), "%.*s", (int)(strchr(writer, '.') - writer), writer);
    assert_int_equal(pw_api_keys_revoke(keys, id), PW_OK);
    assert_int_equal(call_with(&f, "/pay.v1.Payments/Charge", writer, &r), PW_UNAUTHENTICATED);
    pw_test_call_reset(&r);

    assert_int_equal(handler_runs, 4);
    assert_int_equal(audit_lines, 5);
    assert_non_null(strstr(audit, "\"event\":\"auth.denied\""));
    assert_null(strstr(audit, strchr(writer, '.') + 1)); /* no secret in the audit log */
    assert_null(strstr(audit, strchr(reader, '.') + 1));
    pw_log_set_sink(NULL, NULL);
    pw_test_shutdown(&f.loop, f.server, f.ch);
}

#define CERTS "certs-auth-test"

static void test_auth_mtls_allow_list(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "bash %s/interop/make_certs.sh " CERTS, PW_TEST_DIR);
    assert_int_equal(system(cmd), 0);
    pw_tls_config stls = {.cert_file = CERTS "/server.pem",
                          .key_file = CERTS "/server.key",
                          .ca_file = CERTS "/ca.pem"};
    pw_tls_config with_cert = {.ca_file = CERTS "/ca.pem",
                               .server_name_override = "foo.test.google.fr",
                               .cert_file = CERTS "/client.pem",
                               .key_file = CERTS "/client.key"};
    pw_tls_config no_cert = {.ca_file = CERTS "/ca.pem",
                             .server_name_override = "foo.test.google.fr"};
    handler_runs = 0;
    for (int pass = 0; pass < 2; pass++) {
        fx f;
        fx_start(&f, &stls, pass == 0 ? &with_cert : &no_cert);
        pw_authz *a;
        assert_int_equal(pw_authz_new(&a), PW_OK);
        pw_authz_allow(a, "spiffe://paywire.test/interop-client", "/pay.v1.Payments/Refund");
        assert_int_equal(pw_authz_enable(f.server, a), PW_OK);
        pw_test_call r;
        if (pass == 0) {
            assert_int_equal(call_with(&f, "/pay.v1.Payments/Refund", NULL, &r), PW_OK);
            assert_string_equal(principal, "spiffe://paywire.test/interop-client");
            pw_test_call_reset(&r);
            assert_int_equal(call_with(&f, "/pay.v1.Payments/Charge", NULL, &r),
                             PW_PERMISSION_DENIED);
            assert_string_equal(r.message, "spiffe://paywire.test/interop-client may not call "
                                           "/pay.v1.Payments/Charge");
        } else {
            assert_int_equal(call_with(&f, "/pay.v1.Payments/Refund", NULL, &r),
                             PW_UNAUTHENTICATED);
        }
        pw_test_call_reset(&r);
        pw_test_shutdown(&f.loop, f.server, f.ch);
    }
    assert_int_equal(handler_runs, 1);
}

/* Token buckets by name: burst, then one per 1000/rate ms; callers do not share tokens. */
static void test_auth_rate_limiter(void **state)
{
    (void)state;
    pw_rate_limiter *l;
    assert_int_equal(pw_rate_limiter_new(&l, 0, 1), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_rate_limiter_new(&l, 4, 2), PW_OK);
    assert_int_equal(pw_rate_limiter_take(l, "mer_A", 1000), 0);
    assert_int_equal(pw_rate_limiter_take(l, "mer_A", 1000), 0);
    int64_t wait = pw_rate_limiter_take(l, "mer_A", 1000);
    assert_true(wait >= 250 && wait <= 251);
    assert_int_equal(pw_rate_limiter_take(l, "mer_B", 1000), 0); /* a bucket of its own */
    assert_true(pw_rate_limiter_take(l, "mer_A", 1100) > 0);
    assert_int_equal(pw_rate_limiter_take(l, "mer_A", 1000 + (uint64_t)wait), 0);
    /* Refill stops at the burst. */
    assert_int_equal(pw_rate_limiter_take(l, "mer_A", 100000), 0);
    assert_int_equal(pw_rate_limiter_take(l, "mer_A", 100000), 0);
    assert_true(pw_rate_limiter_take(l, "mer_A", 100000) > 0);
    pw_rate_limiter_free(l);
}

/* Issue 13: a _free for every _new; failures leave no half-made entries. */
static void test_auth_free_without_enable(void **state)
{
    (void)state;
    pw_authz *a;
    assert_int_equal(pw_authz_new(&a), PW_OK);
    assert_int_equal(pw_authz_allow(a, "spiffe://paywire/x", "*"), PW_OK);
    assert_int_equal(pw_authz_allow(a, NULL, "*"), PW_INVALID_ARGUMENT);
    pw_authz_free(a);
    pw_authz_free(NULL);

    pw_api_keys *k;
    assert_int_equal(pw_api_keys_new(&k), PW_OK);
    char key[128];
    assert_int_equal(pw_api_keys_create(k, "sk_test_", "mer_1", "read", key, sizeof(key)), PW_OK);
    assert_int_equal(pw_api_keys_require(k, "*", "read"), PW_OK);
    char small[16] = "untouched";
    assert_int_equal(pw_api_keys_create(k, "sk_test_", "mer_1", NULL, small, sizeof(small)),
                     PW_INVALID_ARGUMENT);
    assert_string_equal(small, ""); /* no key on failure */
    assert_int_equal(pw_api_keys_revoke(k, "sk_test_nosuch"), PW_NOT_FOUND);
    pw_api_keys_free(k); /* ASan reports anything left behind */
    pw_api_keys_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_api_keys),
        cmocka_unit_test(test_auth_rate_limiter),
        cmocka_unit_test(test_auth_mtls_allow_list),
        cmocka_unit_test(test_auth_free_without_enable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
