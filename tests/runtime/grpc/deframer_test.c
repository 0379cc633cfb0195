#include <string.h>
#include "grpc/deframer.h"
#include "grpc/wire.h"
#include "pw_test.h"

typedef struct got {
    int count;
    int compressed;
    size_t lens[8];
    uint8_t last[64];
} got;

static pw_status collect(void *ud, int compressed, pw_slice msg)
{
    got *g = ud;
    g->compressed |= compressed;
    g->lens[g->count++] = msg.len;
    if (msg.len <= sizeof(g->last)) {
        memcpy(g->last, msg.base, msg.len);
    }
    return PW_OK;
}

static size_t frame(uint8_t *out, const char *payload, size_t len)
{
    pw__frame_prefix(out, 0, (uint32_t)len);
    memcpy(out + 5, payload, len);
    return len + 5;
}

static void test_deframer_whole_and_split(void **state)
{
    (void)state;
    uint8_t wire[64];
    size_t n = frame(wire, "abc", 3);
    n += frame(wire + n, "", 0);
    n += frame(wire + n, "hello", 5);
    /* Every split point gives the same three messages. */
    for (size_t cut = 0; cut <= n; cut++) {
        pw__deframer d;
        got g = {0};
        pw__deframer_init(&d, 100);
        assert_int_equal(pw__deframer_feed(&d, wire, cut, collect, &g), PW_OK);
        assert_int_equal(pw__deframer_feed(&d, wire + cut, n - cut, collect, &g), PW_OK);
        assert_int_equal(g.count, 3);
        assert_int_equal(g.lens[0], 3);
        assert_int_equal(g.lens[1], 0);
        assert_int_equal(g.lens[2], 5);
        assert_memory_equal(g.last, "hello", 5);
        assert_int_equal(pw__deframer_pending(&d), 0);
        pw__deframer_free(&d);
    }
}

static void test_deframer_byte_by_byte(void **state)
{
    (void)state;
    uint8_t wire[64];
    size_t n = frame(wire, "payload", 7);
    pw__deframer d;
    got g = {0};
    pw__deframer_init(&d, 100);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pw__deframer_feed(&d, wire + i, 1, collect, &g), PW_OK);
    }
    assert_int_equal(g.count, 1);
    assert_memory_equal(g.last, "payload", 7);
    pw__deframer_free(&d);
}

static void test_deframer_rejects_oversized_before_buffering(void **state)
{
    (void)state;
    uint8_t prefix[5];
    pw__frame_prefix(prefix, 0, 0x7fffffff);
    pw__deframer d;
    got g = {0};
    pw__deframer_init(&d, 4 << 20);
    assert_int_equal(pw__deframer_feed(&d, prefix, 5, collect, &g), PW_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(d.err_text, "exceeds the limit"));
    assert_int_equal(g.count, 0);
    pw__deframer_free(&d);
}

static void test_deframer_truncated_and_bad_flag(void **state)
{
    (void)state;
    uint8_t wire[16];
    size_t n = frame(wire, "abcdef", 6);
    pw__deframer d;
    got g = {0};
    pw__deframer_init(&d, 100);
    assert_int_equal(pw__deframer_feed(&d, wire, n - 2, collect, &g), PW_OK);
    assert_int_equal(g.count, 0);
    assert_int_equal(pw__deframer_pending(&d), n - 2);
    pw__deframer_free(&d);

    wire[0] = 7;
    pw__deframer_init(&d, 100);
    assert_int_equal(pw__deframer_feed(&d, wire, n, collect, &g), PW_INTERNAL);
    assert_non_null(strstr(d.err_text, "flag"));
    pw__deframer_free(&d);
}

static void test_deframer_reports_compressed_flag(void **state)
{
    (void)state;
    uint8_t wire[16];
    size_t n = frame(wire, "z", 1);
    wire[0] = 1;
    pw__deframer d;
    got g = {0};
    pw__deframer_init(&d, 100);
    assert_int_equal(pw__deframer_feed(&d, wire, n, collect, &g), PW_OK);
    assert_int_equal(g.compressed, 1);
    pw__deframer_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deframer_whole_and_split),
        cmocka_unit_test(test_deframer_byte_by_byte),
        cmocka_unit_test(test_deframer_rejects_oversized_before_buffering),
        cmocka_unit_test(test_deframer_truncated_and_bad_flag),
        cmocka_unit_test(test_deframer_reports_compressed_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
