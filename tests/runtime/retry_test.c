/* Client retries: policy, idempotency, replay of streamed requests, commit, throttling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/paywire.h>
#include "pw_test.h"

typedef struct fx {
    uv_loop_t loop;
    pw_server *server;
    pw_channel *ch;
    int attempts;
    int fail_first;
} fx;

/* Fails the first fail_first attempts with UNAVAILABLE, then answers. */
static void flaky(pw_call *call, void *ud)
{
    fx *f = ud;
    if (f->attempts++ < f->fail_first) {
        pw_call_finish(call, PW_UNAVAILABLE, "backend restarting");
        return;
    }
    pw_call_send_bytes(call, pw_slice_make("ok", 2));
    pw_call_finish(call, PW_OK, NULL);
}

/* Sends a response message, then fails: the call is committed. */
static void committed(pw_call *call, void *ud)
{
    fx *f = ud;
    f->attempts++;
    pw_call_send_bytes(call, pw_slice_make("partial", 7));
    pw_call_finish(call, PW_UNAVAILABLE, "failed after responding");
}

/* Client streaming: sums request sizes; the first attempt fails at half-close. */
typedef struct sum {
    size_t total;
} sum;

static void sum_on_message(pw_call *call, pw_slice msg, void *ud)
{
    (void)call;
    ((sum *)ud)->total += msg.len;
}

static void sum_on_half_close(pw_call *call, void *ud)
{
    sum *s = ud;
    fx *f = pw_call_get_method(call)->user_data;
    if (f->attempts++ == 0) {
        pw_call_finish(call, PW_UNAVAILABLE, "first attempt fails");
        return;
    }
    char text[16];
    snprintf(text, sizeof(text), "%zu", s->total);
    pw_call_send_bytes(call, pw_slice_make(text, strlen(text)));
    pw_call_finish(call, PW_OK, NULL);
}

static void sum_on_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)ud;
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops sum_ops = {
    .on_message = sum_on_message,
    .on_half_close = sum_on_half_close,
    .on_cancel = sum_on_cancel,
};

static void summer(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_set_ops(call, &sum_ops, pw_call_alloc(call, sizeof(sum)));
}

static fx *fx_new(const pw_retry_policy *policy, uint32_t max_tokens)
{
    fx *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    assert_int_equal(pw_server_new(&f->server, &f->loop, NULL), PW_OK);
    pw_method ms[] = {
        {.path = "/test.Svc/Flaky", .kind = PW_METHOD_UNARY, .handler = flaky, .user_data = f},
        {.path = "/test.Svc/Committed",
         .kind = PW_METHOD_UNARY,
         .handler = committed,
         .user_data = f},
        {.path = "/test.Svc/Sum",
         .kind = PW_METHOD_CLIENT_STREAMING,
         .handler = summer,
         .user_data = f},
    };
    for (size_t i = 0; i < 3; i++) {
        pw_server_add_method(f->server, &ms[i]);
    }
    int port;
    assert_int_equal(pw_server_listen(f->server, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel_options o = {.retry = policy, .retry_max_tokens = max_tokens};
    assert_int_equal(pw_channel_new(&f->ch, &f->loop, target, &o), PW_OK);
    return f;
}

static void fx_free(fx *f)
{
    pw_test_shutdown(&f->loop, f->server, f->ch);
    free(f);
}

static const pw_retry_policy policy = {
    .max_attempts = 3,
    .initial_backoff_ms = 10,
    .max_backoff_ms = 50,
};

static void test_retry_idempotent_call_survives_unavailable(void **state)
{
    (void)state;
    fx *f = fx_new(&policy, 0);
    f->fail_first = 1;
    pw_call_options opts = {.idempotency = PW_IDEMPOTENCY_IDEMPOTENT};
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Flaky", &opts, "x", 1, &r),
                     PW_OK);
    assert_memory_equal(r.last.data, "ok", 2);
    assert_int_equal(f->attempts, 2);
    pw_test_call_reset(&r);
    fx_free(f);
}

static void test_retry_non_idempotent_call_is_not_retried(void **state)
{
    (void)state;
    fx *f = fx_new(&policy, 0);
    f->fail_first = 1;
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Flaky", NULL, "x", 1, &r),
                     PW_UNAVAILABLE);
    assert_int_equal(f->attempts, 1);
    assert_string_equal(r.message, "backend restarting");
    pw_test_call_reset(&r);
    fx_free(f);
}

static void test_retry_stops_at_max_attempts(void **state)
{
    (void)state;
    fx *f = fx_new(&policy, 100);
    f->fail_first = 100;
    pw_call_options opts = {.idempotency = PW_IDEMPOTENCY_NO_SIDE_EFFECTS};
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Flaky", &opts, "x", 1, &r),
                     PW_UNAVAILABLE);
    assert_int_equal(f->attempts, 3);
    pw_test_call_reset(&r);
    fx_free(f);
}

static void test_retry_not_after_a_response_started(void **state)
{
    (void)state;
    fx *f = fx_new(&policy, 0);
    pw_call_options opts = {.idempotency = PW_IDEMPOTENCY_IDEMPOTENT};
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Committed", &opts, "x", 1, &r),
                     PW_UNAVAILABLE);
    assert_int_equal(f->attempts, 1);
    assert_int_equal(r.messages, 1);
    pw_test_call_reset(&r);
    fx_free(f);
}

static void test_retry_replays_streamed_requests(void **state)
{
    (void)state;
    fx *f = fx_new(&policy, 0);
    pw_call_options opts = {.idempotency = PW_IDEMPOTENCY_IDEMPOTENT};
    pw_test_call r = {0};
    pw_client_call *c;
    assert_int_equal(pw_client_call_start(&c, f->ch, "/test.Svc/Sum", &opts, &pw_test_call_ops, &r),
                     PW_OK);
    pw_client_call_send_bytes(c, pw_slice_make("a", 1));
    pw_client_call_send_bytes(c, pw_slice_make("bb", 2));
    pw_client_call_send_bytes(c, pw_slice_make("ccc", 3));
    pw_client_call_close_send(c);
    pw_test_run_until(&f->loop, &r.done, 5000);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(f->attempts, 2);
    assert_memory_equal(r.last.data, "6", 1); /* all three messages replayed */
    pw_test_call_reset(&r);
    fx_free(f);
}

static void test_retry_throttling_stops_retries(void **state)
{
    (void)state;
    /* Two tokens: the first failure leaves one, which is not more than half: no retry. */
    fx *f = fx_new(&policy, 2);
    f->fail_first = 100;
    pw_call_options opts = {.idempotency = PW_IDEMPOTENCY_IDEMPOTENT};
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Flaky", &opts, "x", 1, &r),
                     PW_UNAVAILABLE);
    assert_int_equal(f->attempts, 1);
    pw_test_call_reset(&r);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_idempotent_call_survives_unavailable),
        cmocka_unit_test(test_retry_non_idempotent_call_is_not_retried),
        cmocka_unit_test(test_retry_stops_at_max_attempts),
        cmocka_unit_test(test_retry_not_after_a_response_started),
        cmocka_unit_test(test_retry_replays_streamed_requests),
        cmocka_unit_test(test_retry_throttling_stops_retries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
