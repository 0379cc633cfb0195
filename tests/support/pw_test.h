#ifndef PAYWIRE_TEST_H
#define PAYWIRE_TEST_H

/* Shared helpers for paywire's cmocka tests. Include after cmocka's prerequisites. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <uv.h>

/**
 * Runs loop until it has no active handles (bounded by max_ms of wall time as a
 * guard), then closes it and asserts uv_loop_close() returns 0, so a leaked
 * handle fails the test.
 */
void pw_test_loop_finish(uv_loop_t *loop, uint64_t max_ms);

/** Runs loop until *flag becomes non-zero or max_ms pass; asserts the flag was set. */
void pw_test_run_until(uv_loop_t *loop, const int *flag, uint64_t max_ms);

/** Absolute path of a test data file under tests/ (static buffer). */
const char *pw_test_path(const char *rel);

#endif

#include <paywire/paywire.h>

/** Records everything a client call reports; use with pw_test_call_ops. */
typedef struct pw_test_call {
    int done;
    pw_status code;
    char message[512];
    int headers;
    int messages;
    pw_buf last;
    pw_metadata initial;
    pw_metadata trailing;
    int cancel_after_messages; /* >0: cancel the call after this many messages */
} pw_test_call;

extern const pw_client_ops pw_test_call_ops;

/** Starts a call that sends msg (unless NULL) then half-closes; results land in *r. */
pw_status pw_test_call_start(pw_channel *ch, const char *path, const pw_call_options *opts,
                             const void *msg, size_t len, pw_test_call *r, pw_client_call **out);
/** Starts the call and runs loop until it is done (max 10 s). Returns the status. */
pw_status pw_test_call_run(uv_loop_t *loop, pw_channel *ch, const char *path,
                           const pw_call_options *opts, const void *msg, size_t len,
                           pw_test_call *r);
void pw_test_call_reset(pw_test_call *r);

/**
 * A server on loop (options may be NULL) with n methods, listening on
 * 127.0.0.1:0, and a channel to it (channel options may be NULL). Asserts
 * every step. *port_out (may be NULL) receives the port.
 */
void pw_test_serve(uv_loop_t *loop, const pw_server_options *so, const pw_method *methods, size_t n,
                   const pw_channel_options *co, pw_server **server_out, pw_channel **channel_out,
                   int *port_out);

/** Closes the server and channel (either may be NULL) and checks the loop ends clean. */
void pw_test_shutdown(uv_loop_t *loop, pw_server *server, pw_channel *ch);
