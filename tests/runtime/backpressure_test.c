/*
 * Back-pressure: a server-streaming handler producing 1 GiB to a client that
 * starts reading late and then reads slowly. The handler sends while
 * pw_call_writable() and resumes on on_write_ready; the server thread's live
 * heap (measured through the allocator hook) must stay bounded.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/paywire.h>
#include "grpc/wire.h"
#include "pw_test.h"
#include "pw_test_raw.h"

#define MSG_SIZE  (64 * 1024)
#define MSG_COUNT (16 * 1024) /* 16384 x 64 KiB = 1 GiB */
#define BOUND     (8u << 20)  /* asserted ceiling for the server's live heap */

/* ---- counting allocator: live bytes allocated on the server thread ---- */

static _Thread_local int counted_thread;
static atomic_size_t live, peak;

typedef struct hdr {
    size_t size;
    size_t counted;
} hdr;

static void note(size_t add, size_t sub)
{
    size_t now = atomic_fetch_add(&live, add) + add;
    atomic_fetch_sub(&live, sub);
    now -= sub;
    size_t p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now)) {
    }
}

static void *count_malloc(size_t size, void *ud)
{
    (void)ud;
    hdr *h = malloc(sizeof(hdr) + size);
    if (h == NULL) {
        return NULL;
    }
    h->size = size;
    h->counted = (size_t)counted_thread;
    if (h->counted) {
        note(size, 0);
    }
    return h + 1;
}

static void count_free(void *ptr, void *ud)
{
    (void)ud;
    hdr *h = (hdr *)ptr - 1;
    if (h->counted) {
        note(0, h->size);
    }
    free(h);
}

static void *count_realloc(void *ptr, size_t size, void *ud)
{
    if (ptr == NULL) {
        return count_malloc(size, ud);
    }
    hdr *old = (hdr *)ptr - 1;
    size_t old_size = old->size, was_counted = old->counted;
    hdr *h = realloc(old, sizeof(hdr) + size);
    if (h == NULL) {
        return NULL;
    }
    h->size = size;
    if (was_counted) {
        note(size, old_size);
    }
    return h + 1;
}

/* ---- the flooding handler ---- */

typedef struct flood {
    uint8_t *payload;
    int sent;
    int write_waits;
} flood;

static flood state;

static void flood_pump(pw_call *call)
{
    while (state.sent < MSG_COUNT) {
        if (!pw_call_writable(call)) {
            state.write_waits++;
            return; /* on_write_ready resumes */
        }
        pw_status rv = pw_call_send_bytes(call, pw_slice_make(state.payload, MSG_SIZE));
        if (rv != PW_OK) {
            pw_call_finish(call, rv, "send failed");
            state.sent = MSG_COUNT + 1;
            return;
        }
        state.sent++;
    }
    if (state.sent == MSG_COUNT) {
        state.sent++;
        pw_call_finish(call, PW_OK, NULL);
    }
}

static void flood_ready(pw_call *call, void *ud)
{
    (void)ud;
    flood_pump(call);
}

static void flood_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)ud;
    state.sent = MSG_COUNT + 1;
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops flood_ops = {.on_write_ready = flood_ready, .on_cancel = flood_cancel};

static void flood_start(pw_call *call, void *ud)
{
    pw_call_set_ops(call, &flood_ops, ud);
    flood_pump(call);
}

static const pw_method flood_method = {.path = "/test.Svc/Flood",
                                       .kind = PW_METHOD_SERVER_STREAMING,
                                       .request_type = NULL,
                                       .response_type = NULL,
                                       .handler = flood_start,
                                       .user_data = NULL};

typedef struct srv {
    pw_test_thread thread;
    pw_server *server;
    int port;
} srv;

static void srv_setup(pw_test_thread *t)
{
    counted_thread = 1;
    srv *s = t->user_data;
    assert_int_equal(pw_server_new(&s->server, &t->loop, NULL), PW_OK);
    pw_server_add_method(s->server, &flood_method);
    assert_int_equal(pw_server_listen(s->server, "127.0.0.1:0", NULL, &s->port), PW_OK);
}

static void srv_teardown(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_server_close(s->server, NULL, NULL);
}

static void test_backpressure_1gib_to_slow_reader_stays_bounded(void **st)
{
    (void)st;
    pw_allocator a = {count_malloc, count_realloc, count_free, NULL};
    pw_set_allocator(&a);
    state.payload = calloc(1, MSG_SIZE);
    srv s = {.thread = {.setup = srv_setup, .teardown = srv_teardown}};
    s.thread.user_data = &s;
    pw_test_thread_start(&s.thread);

    uint8_t req[5];
    pw__frame_prefix(req, 0, 0);
    pw_test_raw_reader slow = {.pause_ms = 500, .delay_us_per_mib = 500};
    pw_test_raw_result r;
    uint64_t t0 = uv_hrtime();
    pw_test_raw_request_ex(s.port, pw_test_raw_grpc_headers("/test.Svc/Flood", NULL, NULL), req, 5,
                           1, &slow, 600000, &r);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    pw_test_thread_stop(&s.thread);
    pw_set_allocator(NULL);
    free(state.payload);

    size_t want = (size_t)MSG_COUNT * (MSG_SIZE + 5);
    printf("backpressure: streamed %zu bytes in %.1f s to a slow reader; server peak live heap "
           "%zu bytes (%.2f MiB); handler paused %d times\n",
           r.data_bytes, secs, (size_t)atomic_load(&peak), (double)atomic_load(&peak) / (1 << 20),
           state.write_waits);
    assert_int_equal(r.grpc_status, 0);
    assert_int_equal(r.data_bytes, want);
    assert_true(state.write_waits > 0);
    assert_true(atomic_load(&peak) < BOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure_1gib_to_slow_reader_stays_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
