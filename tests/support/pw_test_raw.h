#ifndef PAYWIRE_TEST_RAW_H
#define PAYWIRE_TEST_RAW_H

/*
 * Test helpers for malformed-input tests: a loop on its own thread (for a
 * server under test) and a blocking raw HTTP/2 client built on nghttp2, which
 * can send what no well-behaved gRPC client would.
 */
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pw_test_thread pw_test_thread;
typedef void (*pw_test_thread_cb)(pw_test_thread *t);

struct pw_test_thread {
    uv_thread_t tid;
    uv_loop_t loop;
    uv_async_t stop;
    uv_sem_t ready;
    pw_test_thread_cb setup;    /* runs on the thread before its loop */
    pw_test_thread_cb teardown; /* runs on the thread when stopped; close everything */
    void *user_data;
    int loop_close_rv;
};

/** Starts the thread; returns once setup has run. */
void pw_test_thread_start(pw_test_thread *t);
/** Runs teardown on the thread, joins it and asserts its loop closed clean. */
void pw_test_thread_stop(pw_test_thread *t);

typedef struct pw_test_raw_result {
    int http_status;
    int grpc_status; /* -1 when absent */
    char grpc_message[512];
    int reset;
    uint32_t rst_code;
    size_t data_bytes;
    int closed;             /* the stream ended (END_STREAM or RST) */
    char grpc_encoding[32]; /* "" when absent */
    /* The first bytes of the response DATA, as they came on the wire. */
    uint8_t data[16384];
    size_t data_kept;
} pw_test_raw_result;

/**
 * One request on a new connection to 127.0.0.1:port. headers: NULL-terminated
 * name, value, name, value, ... list (pseudo-headers first). body is sent as
 * DATA; with end_stream the stream is half-closed after it, otherwise it stays
 * open. Waits up to timeout_ms for the stream to end. If vanish, closes the
 * socket right after sending instead of waiting. Returns 0, -1 on socket error.
 */
int pw_test_raw_request(int port, const char *const *headers, const void *body, size_t len,
                        int end_stream, int vanish, int timeout_ms, pw_test_raw_result *out);

/** How a slow reader behaves: wait before the first read, then sleep per MiB read. */
typedef struct pw_test_raw_reader {
    int pause_ms;
    int delay_us_per_mib;
} pw_test_raw_reader;

/** pw_test_raw_request with a slow reader (reader may be NULL). */
int pw_test_raw_request_ex(int port, const char *const *headers, const void *body, size_t len,
                           int end_stream, const pw_test_raw_reader *reader, int timeout_ms,
                           pw_test_raw_result *out);

/** Headers of a valid gRPC request to path (static storage, not thread-safe). */
const char *const *pw_test_raw_grpc_headers(const char *path, const char *extra_name,
                                            const char *extra_value);

/** Sends bytes on a new connection and reads until the peer closes; returns 1 if it closed. */
int pw_test_raw_bytes(int port, const void *data, size_t len, int timeout_ms);
/** pw_test_raw_bytes that also keeps up to cap received bytes in got (*got_len set). */
int pw_test_raw_exchange(int port, const void *data, size_t len, int timeout_ms, uint8_t *got,
                         size_t cap, size_t *got_len);
/** Opens a TCP connection to 127.0.0.1:port and returns the fd (-1 on error). */
int pw_test_raw_connect(int port);
/** The HTTP/2 client preface followed by an empty SETTINGS frame (len bytes). */
const uint8_t *pw_test_raw_preface(size_t *len);

/**
 * Sends request (raw HTTP/1.1 bytes) to 127.0.0.1:port and reads until
 * `responses` complete responses (headers plus Content-Length bytes) have
 * arrived or 3 s pass without data; out gets the text, NUL-terminated.
 * Returns the number of complete responses read.
 */
int pw_test_http(int port, const char *request, int responses, char *out, size_t cap);

#endif
