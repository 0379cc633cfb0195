#include <string.h>
#include "net/addr.h"
#include "pw_test.h"

static void test_addr_parses_v4_v6_and_names(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(pw__parse_host_port("127.0.0.1:50051", host, sizeof(host), &port), PW_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 50051);
    assert_int_equal(pw__parse_host_port("[::1]:0", host, sizeof(host), &port), PW_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(pw__parse_host_port("ledger.internal:443", host, sizeof(host), &port), PW_OK);
    assert_string_equal(host, "ledger.internal");
}

static void test_addr_rejects_malformed(void **state)
{
    (void)state;
    char host[8];
    int port;
    assert_int_equal(pw__parse_host_port("noport", host, sizeof(host), &port), PW_INVALID_ARGUMENT);
    assert_int_equal(pw__parse_host_port("h:", host, sizeof(host), &port), PW_INVALID_ARGUMENT);
    assert_int_equal(pw__parse_host_port("h:65536", host, sizeof(host), &port),
                     PW_INVALID_ARGUMENT);
    assert_int_equal(pw__parse_host_port("h:-1", host, sizeof(host), &port), PW_INVALID_ARGUMENT);
    assert_int_equal(pw__parse_host_port("h:80x", host, sizeof(host), &port), PW_INVALID_ARGUMENT);
    assert_int_equal(pw__parse_host_port("[::1:80", host, sizeof(host), &port),
                     PW_INVALID_ARGUMENT);
    assert_int_equal(pw__parse_host_port("much-too-long-host:80", host, sizeof(host), &port),
                     PW_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parses_v4_v6_and_names),
        cmocka_unit_test(test_addr_rejects_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
