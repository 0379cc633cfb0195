/* Structured logging: JSON lines, fields, per-module levels, redaction of secrets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/log.h>
#include "pw_test.h"

static char captured[8][2048];
static int lines;

static void capture(pw_log_level level, const char *module, const char *line, void *ud)
{
    (void)level;
    (void)module;
    (void)ud;
    if (lines < 8) {
        snprintf(captured[lines++], sizeof(captured[0]), "%s", line);
    }
}

static int setup(void **state)
{
    (void)state;
    lines = 0;
    pw_log_set_sink(capture, NULL);
    pw_log_set_level(PW_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pw_log_set_sink(NULL, NULL);
    pw_log_set_level(PW_LOG_INFO);
    return 0;
}

static void test_log_redacts_secrets(void **state)
{
    (void)state;
    char t1[] = "card 4111 1111 1111 1111 declined, order 1234567890123 kept";
    assert_int_equal(pw_log_redact(t1), 1);
    assert_null(strstr(t1, "4111"));
    assert_non_null(strstr(t1, "order 1234567890123 kept")); /* not a Luhn number */
    char t2[] = "Authorization: Bearer eyJhbGciOi.payload.sig and key sk_live_51HxYz9 ok";
    assert_int_equal(pw_log_redact(t2), 2);
    assert_null(strstr(t2, "eyJhbGciOi"));
    assert_null(strstr(t2, "51HxYz9"));
    char t3[] = "login password=hunter2&token=abc123 done";
    assert_int_equal(pw_log_redact(t3), 2);
    assert_null(strstr(t3, "hunter2"));
    assert_null(strstr(t3, "abc123"));
    assert_non_null(strstr(t3, "done"));
}

static void test_log_lines_are_json_with_fields_and_redacted(void **state)
{
    (void)state;
    pw_log_field f[] = {{"merchant", "mer_1"}, {"note", "pan 5555555555554444, \"quoted\""}};
    pw_log_fields(PW_LOG_INFO, "ledger", f, 2, "posted %d entries with sk_test_abcdef", 2);
    assert_int_equal(lines, 1);
    const char *l = captured[0];
    assert_non_null(strstr(l, "\"level\":\"info\""));
    assert_non_null(strstr(l, "\"module\":\"ledger\""));
    assert_non_null(strstr(l, "\"msg\":\"posted 2 entries with [REDACTED]\""));
    assert_non_null(strstr(l, "\"merchant\":\"mer_1\""));
    assert_non_null(strstr(l, "\\\"quoted\\\""));
    assert_null(strstr(l, "5555555555554444"));
    assert_null(strstr(l, "sk_test_abcdef"));
    assert_true(l[0] == '{' && l[strlen(l) - 1] == '}');
}

static void test_log_levels_per_module(void **state)
{
    (void)state;
    assert_int_equal(pw_log_set_module_level("chatty", PW_LOG_DEBUG), PW_OK);
    PW_LOG(PW_LOG_DEBUG, "chatty", "shown");
    PW_LOG(PW_LOG_DEBUG, "quiet", "hidden");
    assert_int_equal(pw_log_set_module_level("quiet", PW_LOG_ERR), PW_OK);
    PW_LOG(PW_LOG_WARNING, "quiet", "hidden too");
    PW_LOG(PW_LOG_ERR, "quiet", "errors still shown");
    assert_int_equal(lines, 2);
    assert_non_null(strstr(captured[0], "shown"));
    assert_non_null(strstr(captured[1], "errors still shown"));
}

/* Issue 13: the module table is bounded, and saying so is a status, not silence. */
static void test_log_module_levels_are_bounded(void **state)
{
    (void)state;
    assert_int_equal(pw_log_set_module_level(NULL, PW_LOG_INFO), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_log_set_module_level("a-module-name-of-thirty-two-bytes", PW_LOG_INFO),
                     PW_INVALID_ARGUMENT);
    pw_status rv = PW_OK;
    int set = 0;
    for (int i = 0; i < 40 && rv == PW_OK; i++) {
        char name[16];
        snprintf(name, sizeof(name), "m%d", i);
        rv = pw_log_set_module_level(name, PW_LOG_INFO);
        set += rv == PW_OK;
    }
    assert_int_equal(rv, PW_RESOURCE_EXHAUSTED);
    assert_true(set <= 32);
    assert_int_equal(pw_log_set_module_level("chatty", PW_LOG_INFO), PW_OK); /* known: updated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_redacts_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_lines_are_json_with_fields_and_redacted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_levels_per_module, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_module_levels_are_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
