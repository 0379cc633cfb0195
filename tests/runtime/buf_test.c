#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/buf.h>
#include "pw_test.h"

static void test_buf_append_consume(void **state)
{
    (void)state;
    pw_buf b = {0};
    assert_int_equal(pw_buf_append(&b, "hello", 5), PW_OK);
    assert_int_equal(pw_buf_append(&b, " world", 6), PW_OK);
    assert_int_equal(pw_buf_pending(&b), 11);
    assert_memory_equal(b.data + b.off, "hello world", 11);
    pw_buf_consume(&b, 6);
    assert_int_equal(pw_buf_pending(&b), 5);
    assert_memory_equal(b.data + b.off, "world", 5);
    pw_buf_consume(&b, 100);
    assert_int_equal(pw_buf_pending(&b), 0);
    assert_int_equal(b.off, 0);
    pw_buf_reset(&b);
    assert_null(b.data);
}

static void test_buf_grows_past_initial_capacity(void **state)
{
    (void)state;
    pw_buf b = {0};
    uint8_t chunk[1000];
    for (size_t i = 0; i < sizeof(chunk); i++) {
        chunk[i] = (uint8_t)i;
    }
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pw_buf_append(&b, chunk, sizeof(chunk)), PW_OK);
    }
    assert_int_equal(pw_buf_pending(&b), 100000);
    assert_memory_equal(b.data + 99000, chunk, sizeof(chunk));
    pw_buf_reset(&b);
}

static int fail_after;
static void *failing_malloc(size_t size, void *ud)
{
    (void)ud;
    return fail_after-- > 0 ? malloc(size) : NULL;
}
static void *failing_realloc(void *p, size_t size, void *ud)
{
    (void)ud;
    return fail_after-- > 0 ? realloc(p, size) : NULL;
}
static void plain_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

static void test_buf_reports_enomem(void **state)
{
    (void)state;
    pw_allocator a = {failing_malloc, failing_realloc, plain_free, NULL};
    pw_set_allocator(&a);
    fail_after = 0;
    pw_buf b = {0};
    assert_int_equal(pw_buf_append(&b, "x", 1), PW_ERRNO(ENOMEM));
    assert_int_equal(pw_buf_pending(&b), 0);
    pw_set_allocator(NULL);
    pw_buf_reset(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_consume),
        cmocka_unit_test(test_buf_grows_past_initial_capacity),
        cmocka_unit_test(test_buf_reports_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
