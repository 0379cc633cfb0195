/*
 * The allocator hook (alloc.c) and the one ProtobufCAllocator over it: with a
 * counting allocator installed through pw_set_allocator, real calls of every
 * kind (served and called over loopback on one loop, through generated code,
 * async and blocking) allocate and free only through the hook. Every block
 * the hook handed out is given back to it, and it is never asked to free or
 * resize a pointer it did not allocate (which is what freeing a message with
 * protobuf-c's default allocator after unpacking it with ours would do).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kinds_service.h"
#include "pw_test.h"

/* ---- the counting allocator: live blocks in an open-addressing table ---- */

#define SLOTS     (1u << 16)
#define TOMBSTONE ((void *)(uintptr_t)1)

typedef struct counting {
    void *ptr[SLOTS];
    size_t size[SLOTS];
    size_t allocs;
    size_t frees;
    size_t live_bytes;
    /* free or realloc of a pointer the hook never handed out */
    size_t foreign;
} counting;

static counting *cnt;

static size_t slot_of(const void *p)
{
    return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) & (SLOTS - 1);
}

static size_t *find(const void *p)
{
    for (size_t i = slot_of(p), n = 0; n < SLOTS; i = (i + 1) & (SLOTS - 1), n++) {
        if (cnt->ptr[i] == p) {
            return &cnt->size[i];
        }
        if (cnt->ptr[i] == NULL) {
            return NULL;
        }
    }
    return NULL;
}

static void track(void *p, size_t size)
{
    for (size_t i = slot_of(p);; i = (i + 1) & (SLOTS - 1)) {
        if (cnt->ptr[i] == NULL || cnt->ptr[i] == TOMBSTONE) {
            cnt->ptr[i] = p;
            cnt->size[i] = size;
            cnt->live_bytes += size;
            return;
        }
    }
}

/* Forgets p; 0 when the hook never handed it out. */
static int untrack(void *p)
{
    size_t *size = find(p);
    if (size == NULL) {
        cnt->foreign++;
        return 0;
    }
    cnt->live_bytes -= *size;
    cnt->ptr[size - cnt->size] = TOMBSTONE;
    return 1;
}

static void *count_malloc(size_t size, void *ud)
{
    (void)ud;
    void *p = malloc(size);
    if (p != NULL) {
        track(p, size);
        cnt->allocs++;
    }
    return p;
}

static void *count_realloc(void *ptr, size_t size, void *ud)
{
    if (ptr == NULL) {
        return count_malloc(size, ud);
    }
    size_t *old = find(ptr);
    if (old == NULL) {
        cnt->foreign++;
        return realloc(ptr, size); /* libc's block: keep the test itself sound */
    }
    size_t old_size = *old;
    untrack(ptr);
    void *p = realloc(ptr, size);
    track(p != NULL ? p : ptr, p != NULL ? size : old_size);
    return p;
}

static void count_free(void *ptr, void *ud)
{
    (void)ud;
    untrack(ptr);
    cnt->frees++;
    free(ptr);
}

static int live(const void *p)
{
    return find(p) != NULL;
}

static void counting_install(void)
{
    cnt = calloc(1, sizeof(*cnt));
    assert_non_null(cnt);
    static const pw_allocator hook = {count_malloc, count_realloc, count_free, NULL};
    pw_set_allocator(&hook);
}

/* Restores libc's allocator and checks that every block went back to the hook. */
static void counting_check_and_remove(void)
{
    pw_set_allocator(NULL);
    assert_int_equal(cnt->foreign, 0);
    assert_int_equal(cnt->allocs, cnt->frees);
    assert_int_equal(cnt->live_bytes, 0);
    free(cnt);
    cnt = NULL;
}

/* ---- client ---- */

typedef struct outcome {
    int done;
    pw_status code;
    int messages;
} outcome;

static void on_append(const Pwtest__V1__Ledger *resp, const pw_result *r, void *ud)
{
    outcome *o = ud;
    assert_true(resp != NULL && live(resp));
    o->done = 1;
    o->code = r->code;
}

static void on_entry(pw_client_call *c, const Pwtest__V1__Ledger__Entry *e, void *ud)
{
    (void)c;
    assert_true(live(e));
    ((outcome *)ud)->messages++;
}

static void on_done(pw_client_call *c, const pw_result *r, void *ud)
{
    (void)c;
    outcome *o = ud;
    o->done = 1;
    o->code = r->code;
}

static const pwtest_v1_kinds_replay_client_ops replay_client = {.on_message = on_entry,
                                                                .on_done = on_done};
static const pwtest_v1_kinds_mirror_client_ops mirror_client = {.on_message = on_entry,
                                                                .on_done = on_done};

static void call_every_kind(uv_loop_t *loop, pw_channel *ch)
{
    Pwtest__Common__V1__Money money = PWTEST__COMMON__V1__MONEY__INIT;
    money.currency = (char *)"EUR";
    money.minor_units = 42;
    Pwtest__V1__Ledger__Entry e = PWTEST__V1__LEDGER__ENTRY__INIT;
    e.amount = &money;

    outcome o = {0};
    assert_int_equal(pwtest_v1_kinds_append(ch, &e, NULL, on_append, &o), PW_OK);
    pw_test_run_until(loop, &o.done, 5000);
    assert_int_equal(o.code, PW_OK);

    Pwtest__V1__Ledger *ledger = NULL;
    char *msg = NULL;
    assert_int_equal(pwtest_v1_kinds_append_blocking(ch, &e, NULL, &ledger, &msg), PW_OK);
    assert_true(live(ledger) && live(ledger->entries[0]->amount->currency));
    pw_protobuf_free(&ledger->base);
    pw_free(msg);

    Pwtest__V1__Count n = PWTEST__V1__COUNT__INIT;
    n.n = 4;
    o = (outcome){0};
    assert_int_equal(pwtest_v1_kinds_replay_start(ch, &n, NULL, &replay_client, &o, NULL), PW_OK);
    pw_test_run_until(loop, &o.done, 5000);
    assert_int_equal(o.code, PW_OK);
    assert_int_equal(o.messages, 4);

    pw_stream *s;
    assert_int_equal(pwtest_v1_kinds_replay_start_blocking(ch, &n, NULL, &s), PW_OK);
    Pwtest__V1__Ledger__Entry *got;
    int count = 0;
    while (pwtest_v1_kinds_replay_stream_recv(s, &got) == PW_OK && got != NULL) {
        assert_true(live(got));
        pw_protobuf_free(&got->base);
        count++;
    }
    assert_int_equal(count, 4);
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);

    o = (outcome){0};
    pw_client_call *call;
    assert_int_equal(pwtest_v1_kinds_mirror_start(ch, NULL, &mirror_client, &o, &call), PW_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pwtest_v1_kinds_mirror_call_send(call, &e), PW_OK);
    }
    pw_client_call_close_send(call);
    pw_test_run_until(loop, &o.done, 5000);
    assert_int_equal(o.code, PW_OK);
    assert_int_equal(o.messages, 3);
}

static void test_alloc_served_calls_free_through_the_hook(void **state)
{
    (void)state;
    counting_install();
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    assert_int_equal(pw_server_new(&server, &loop, NULL), PW_OK);
    assert_int_equal(pwtest_v1_kinds_register(server, &pw_test_kinds_handlers, NULL), PW_OK);
    int port;
    assert_int_equal(pw_server_listen(server, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);

    call_every_kind(&loop, ch);
    assert_true(cnt->allocs > 100); /* the hook really served the calls */
    pw_test_shutdown(&loop, server, ch);
    counting_check_and_remove();
}

static void test_alloc_protobuf_allocator_is_the_hook(void **state)
{
    (void)state;
    counting_install();
    const uint8_t wire[] = {0x08, 0x07}; /* Count{n: 7} */
    Pwtest__V1__Count *c = pwtest__v1__count__unpack(pw_protobuf_allocator(), sizeof(wire), wire);
    assert_non_null(c);
    assert_int_equal(c->n, 7);
    assert_true(live(c));
    pw_protobuf_free(&c->base);
    pw_protobuf_free(NULL);
    assert_int_equal(cnt->allocs, 1);
    counting_check_and_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_protobuf_allocator_is_the_hook),
        cmocka_unit_test(test_alloc_served_calls_free_through_the_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
