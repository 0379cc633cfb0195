/* The access log: one structured line per call, with no secret in it. */
#include <stdio.h>
#include <string.h>
#include <paywire/builtins.h>
#include <paywire/log.h>
#include "pw_test.h"

static char line[4096];
static int count;

static void capture(pw_log_level level, const char *module, const char *l, void *ud)
{
    (void)level;
    (void)ud;
    if (strcmp(module, "access") == 0) {
        snprintf(line, sizeof(line), "%s", l);
        count++;
    }
}

static void decline(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_finish(call, PW_FAILED_PRECONDITION, "card 4242424242424242 declined");
}

static void test_access_log_line_per_call_without_secrets(void **state)
{
    (void)state;
    pw_log_set_sink(capture, NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_method m = {.path = "/pay.v1.Payments/Charge", .kind = PW_METHOD_UNARY, .handler = decline};
    pw_server *s;
    pw_channel *ch;
    pw_test_serve(&loop, NULL, &m, 1, NULL, &s, &ch, NULL);
    assert_int_equal(pw_access_log_enable(s, "payments"), PW_OK);
    pw_metadata md = {0};
    pw_metadata_add_str(&md, "x-request-id", "req-42");
    pw_metadata_add_str(&md, "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    pw_metadata_add_str(&md, "authorization", "Bearer very-secret-token");
    pw_call_options o = {.metadata = &md};
    pw_test_call r = {0};
    assert_int_equal(
        pw_test_call_run(&loop, ch, "/pay.v1.Payments/Charge", &o, "4242424242424242", 16, &r),
        PW_FAILED_PRECONDITION);
    pw_test_call_reset(&r);
    pw_metadata_clear(&md);
    pw_test_shutdown(&loop, s, ch);
    pw_log_set_sink(NULL, NULL);

    assert_int_equal(count, 1);
    assert_non_null(strstr(line, "\"service\":\"payments\""));
    assert_non_null(strstr(line, "\"method\":\"/pay.v1.Payments/Charge\""));
    assert_non_null(strstr(line, "\"code\":\"FAILED_PRECONDITION\""));
    assert_non_null(strstr(line, "\"request_id\":\"req-42\""));
    assert_non_null(strstr(line, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""));
    assert_non_null(strstr(line, "\"bytes_in\":\"16\""));
    assert_null(strstr(line, "4242424242424242"));
    assert_null(strstr(line, "very-secret-token"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_log_line_per_call_without_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
