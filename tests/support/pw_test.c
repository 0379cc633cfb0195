/*
 * pw_test.c: helpers every cmocka test uses: running a loop to completion and
 * checking that no handle leaked, and running it until a condition holds.
 */
#include <stdio.h>
#include "pw_test.h"

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "leaked handle: %s\n", uv_handle_type_name(uv_handle_get_type(h)));
}

void pw_test_loop_finish(uv_loop_t *loop, uint64_t max_ms)
{
    uint64_t start = uv_hrtime();
    while (uv_run(loop, UV_RUN_NOWAIT) != 0) {
        if ((uv_hrtime() - start) / 1000000 > max_ms) {
            uv_walk(loop, walk_close, NULL);
            fail_msg("loop still has active handles after %llu ms", (unsigned long long)max_ms);
        }
        uv_sleep(1);
    }
    int rv = uv_loop_close(loop);
    if (rv != 0) {
        uv_walk(loop, walk_close, NULL);
    }
    assert_int_equal(rv, 0);
}

void pw_test_run_until(uv_loop_t *loop, const int *flag, uint64_t max_ms)
{
    uint64_t start = uv_hrtime();
    while (!*flag && (uv_hrtime() - start) / 1000000 < max_ms) {
        uv_run(loop, UV_RUN_ONCE);
    }
    assert_true(*flag);
}

const char *pw_test_path(const char *rel)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%s", PW_TEST_DIR, rel);
    return path;
}

#include <string.h>

static void tc_on_headers(pw_client_call *c, const pw_metadata *md, void *ud)
{
    (void)c;
    pw_test_call *r = ud;
    r->headers++;
    pw_metadata_copy(&r->initial, md);
}

static void tc_on_message(pw_client_call *c, pw_slice msg, void *ud)
{
    pw_test_call *r = ud;
    r->messages++;
    r->last.len = r->last.off = 0;
    pw_buf_append(&r->last, msg.base, msg.len);
    if (r->cancel_after_messages > 0 && r->messages == r->cancel_after_messages) {
        pw_client_call_cancel(c);
    }
}

static void tc_on_done(pw_client_call *c, const pw_result *res, void *ud)
{
    (void)c;
    pw_test_call *r = ud;
    r->code = res->code;
    snprintf(r->message, sizeof(r->message), "%s", res->message);
    if (r->headers == 0) {
        pw_metadata_copy(&r->initial, res->initial_metadata);
    }
    pw_metadata_copy(&r->trailing, res->trailing_metadata);
    r->done = 1;
}

const pw_client_ops pw_test_call_ops = {
    .on_headers = tc_on_headers,
    .on_message = tc_on_message,
    .on_write_ready = NULL,
    .on_done = tc_on_done,
};

pw_status pw_test_call_start(pw_channel *ch, const char *path, const pw_call_options *opts,
                             const void *msg, size_t len, pw_test_call *r, pw_client_call **out)
{
    pw_client_call *c;
    pw_status rv = pw_client_call_start(&c, ch, path, opts, &pw_test_call_ops, r);
    if (rv != PW_OK) {
        return rv;
    }
    if (msg != NULL) {
        pw_client_call_send_bytes(c, pw_slice_make(msg, len));
    }
    pw_client_call_close_send(c);
    if (out != NULL) {
        *out = c;
    }
    return PW_OK;
}

pw_status pw_test_call_run(uv_loop_t *loop, pw_channel *ch, const char *path,
                           const pw_call_options *opts, const void *msg, size_t len,
                           pw_test_call *r)
{
    assert_int_equal(pw_test_call_start(ch, path, opts, msg, len, r, NULL), PW_OK);
    pw_test_run_until(loop, &r->done, 10000);
    return r->code;
}

void pw_test_call_reset(pw_test_call *r)
{
    pw_buf_reset(&r->last);
    pw_metadata_clear(&r->initial);
    pw_metadata_clear(&r->trailing);
    memset(r, 0, sizeof(*r));
}

void pw_test_serve(uv_loop_t *loop, const pw_server_options *so, const pw_method *methods, size_t n,
                   const pw_channel_options *co, pw_server **server_out, pw_channel **channel_out,
                   int *port_out)
{
    assert_int_equal(pw_server_new(server_out, loop, so), PW_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pw_server_add_method(*server_out, &methods[i]), PW_OK);
    }
    int port;
    assert_int_equal(pw_server_listen(*server_out, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    assert_int_equal(pw_channel_new(channel_out, loop, target, co), PW_OK);
    if (port_out != NULL) {
        *port_out = port;
    }
}

void pw_test_shutdown(uv_loop_t *loop, pw_server *server, pw_channel *ch)
{
    if (ch != NULL) {
        pw_channel_close(ch, NULL, NULL);
    }
    if (server != NULL) {
        pw_server_close(server, NULL, NULL);
    }
    pw_test_loop_finish(loop, 10000);
}
