/*
 * pw_test_raw.c: a server loop on its own thread, and a raw blocking HTTP/2
 * client on nghttp2 for sending malformed gRPC requests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nghttp2/nghttp2.h>
#include "pw_test.h"
#include "pw_test_raw.h"

/* ---- thread ---- */

static void thread_stop_cb(uv_async_t *a)
{
    pw_test_thread *t = a->data;
    uv_close((uv_handle_t *)&t->stop, NULL);
    t->teardown(t);
}

static void thread_main(void *arg)
{
    pw_test_thread *t = arg;
    uv_loop_init(&t->loop);
    uv_async_init(&t->loop, &t->stop, thread_stop_cb);
    t->stop.data = t;
    t->setup(t);
    uv_sem_post(&t->ready);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    t->loop_close_rv = uv_loop_close(&t->loop);
}

void pw_test_thread_start(pw_test_thread *t)
{
    uv_sem_init(&t->ready, 0);
    assert_int_equal(uv_thread_create(&t->tid, thread_main, t), 0);
    uv_sem_wait(&t->ready);
}

void pw_test_thread_stop(pw_test_thread *t)
{
    uv_async_send(&t->stop);
    uv_thread_join(&t->tid);
    uv_sem_destroy(&t->ready);
    assert_int_equal(t->loop_close_rv, 0);
}

/* ---- raw client ---- */

typedef struct raw {
    int fd;
    const uint8_t *body;
    size_t body_len;
    size_t body_off;
    int end_stream;
    int32_t stream_id;
    pw_test_raw_result *out;
} raw;

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static ssize_t raw_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)s;
    (void)flags;
    raw *r = ud;
    ssize_t n = send(r->fd, data, len, MSG_NOSIGNAL);
    return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static int raw_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *ud)
{
    (void)s;
    (void)f;
    (void)flags;
    raw *r = ud;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        r->out->http_status = atoi((const char *)value);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        r->out->grpc_status = atoi((const char *)value);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        snprintf(r->out->grpc_message, sizeof(r->out->grpc_message), "%.*s", (int)valuelen,
                 (const char *)value);
    } else if (namelen == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
        snprintf(r->out->grpc_encoding, sizeof(r->out->grpc_encoding), "%.*s", (int)valuelen,
                 (const char *)value);
    }
    return 0;
}

static int raw_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                       size_t len, void *ud)
{
    (void)s;
    (void)flags;
    (void)id;
    pw_test_raw_result *out = ((raw *)ud)->out;
    size_t room = sizeof(out->data) - out->data_kept;
    size_t n = len < room ? len : room;
    memcpy(out->data + out->data_kept, data, n);
    out->data_kept += n;
    out->data_bytes += len;
    return 0;
}

static int raw_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)s;
    (void)id;
    raw *r = ud;
    r->out->closed = 1;
    r->out->rst_code = code;
    r->out->reset = code != 0;
    return 0;
}

static ssize_t raw_body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                             uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)src;
    raw *r = ud;
    size_t n = r->body_len - r->body_off;
    if (n > len) {
        n = len;
    }
    memcpy(buf, r->body + r->body_off, n);
    r->body_off += n;
    if (r->body_off == r->body_len) {
        if (r->end_stream) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        } else if (n == 0) {
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

static nghttp2_session *raw_session(raw *r)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, raw_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, raw_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, raw_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_on_close);
    nghttp2_session *s;
    nghttp2_session_client_new(&s, cbs, r);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
    return s;
}

static int raw_run(int port, const char *const *headers, const void *body, size_t len,
                   int end_stream, int vanish, const pw_test_raw_reader *reader, int timeout_ms,
                   pw_test_raw_result *out);

int pw_test_raw_request(int port, const char *const *headers, const void *body, size_t len,
                        int end_stream, int vanish, int timeout_ms, pw_test_raw_result *out)
{
    return raw_run(port, headers, body, len, end_stream, vanish, NULL, timeout_ms, out);
}

int pw_test_raw_request_ex(int port, const char *const *headers, const void *body, size_t len,
                           int end_stream, const pw_test_raw_reader *reader, int timeout_ms,
                           pw_test_raw_result *out)
{
    return raw_run(port, headers, body, len, end_stream, 0, reader, timeout_ms, out);
}

static int raw_run(int port, const char *const *headers, const void *body, size_t len,
                   int end_stream, int vanish, const pw_test_raw_reader *reader, int timeout_ms,
                   pw_test_raw_result *out)
{
    memset(out, 0, sizeof(*out));
    out->grpc_status = -1;
    raw r = {.fd = raw_connect(port),
             .body = body,
             .body_len = len,
             .end_stream = end_stream,
             .out = out};
    if (r.fd < 0) {
        return -1;
    }
    nghttp2_session *s = raw_session(&r);
    nghttp2_nv nv[32];
    size_t n = 0;
    for (; headers[2 * n] != NULL && n < 32; n++) {
        nv[n] = (nghttp2_nv){(uint8_t *)(uintptr_t)headers[2 * n],
                             (uint8_t *)(uintptr_t)headers[2 * n + 1], strlen(headers[2 * n]),
                             strlen(headers[2 * n + 1]), NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_data_provider prd = {.read_callback = raw_body_read};
    int has_body = body != NULL || !end_stream;
    r.stream_id = nghttp2_submit_request(s, NULL, nv, n, has_body ? &prd : NULL, NULL);
    nghttp2_session_send(s);
    if (vanish) {
        nghttp2_session_del(s);
        close(r.fd);
        return 0;
    }
    uint64_t start = uv_hrtime();
    if (reader != NULL && reader->pause_ms > 0) {
        uv_sleep((unsigned)reader->pause_ms);
    }
    size_t next_mib = 1 << 20;
    while (!out->closed && (uv_hrtime() - start) / 1000000 < (uint64_t)timeout_ms) {
        if (reader != NULL && out->data_bytes >= next_mib) {
            next_mib += 1 << 20;
            usleep((useconds_t)reader->delay_us_per_mib);
        }
        struct pollfd p = {.fd = r.fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) {
            continue;
        }
        uint8_t buf[16384];
        ssize_t got = recv(r.fd, buf, sizeof(buf), 0);
        if (got <= 0) {
            break;
        }
        if (nghttp2_session_mem_recv(s, buf, (size_t)got) < 0) {
            break;
        }
        nghttp2_session_send(s);
    }
    nghttp2_session_del(s);
    close(r.fd);
    return 0;
}

const char *const *pw_test_raw_grpc_headers(const char *path, const char *extra_name,
                                            const char *extra_value)
{
    static const char *h[16];
    size_t i = 0;
    h[i++] = ":method";
    h[i++] = "POST";
    h[i++] = ":scheme";
    h[i++] = "http";
    h[i++] = ":path";
    h[i++] = path;
    h[i++] = ":authority";
    h[i++] = "localhost";
    h[i++] = "te";
    h[i++] = "trailers";
    if (extra_name == NULL || strcmp(extra_name, "content-type") != 0) {
        h[i++] = "content-type";
        h[i++] = "application/grpc";
    }
    if (extra_name != NULL) {
        h[i++] = extra_name;
        h[i++] = extra_value;
    }
    h[i++] = NULL;
    h[i] = NULL;
    return h;
}

int pw_test_raw_exchange(int port, const void *data, size_t len, int timeout_ms, uint8_t *got,
                         size_t cap, size_t *got_len)
{
    int fd = raw_connect(port);
    if (got_len != NULL) {
        *got_len = 0;
    }
    if (fd < 0) {
        return 0;
    }
    if (len > 0) {
        send(fd, data, len, MSG_NOSIGNAL);
    }
    int closed = 0;
    uint64_t start = uv_hrtime();
    while ((uv_hrtime() - start) / 1000000 < (uint64_t)timeout_ms) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) {
            continue;
        }
        uint8_t buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            closed = 1;
            break;
        }
        if (got != NULL && got_len != NULL) {
            size_t take = (size_t)n < cap - *got_len ? (size_t)n : cap - *got_len;
            memcpy(got + *got_len, buf, take);
            *got_len += take;
        }
    }
    close(fd);
    return closed;
}

int pw_test_raw_bytes(int port, const void *data, size_t len, int timeout_ms)
{
    return pw_test_raw_exchange(port, data, len, timeout_ms, NULL, 0, NULL);
}

int pw_test_raw_connect(int port)
{
    return raw_connect(port);
}

const uint8_t *pw_test_raw_preface(size_t *len)
{
    static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                     "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    *len = sizeof(preface) - 1;
    return preface;
}

int pw_test_http(int port, const char *request, int responses, char *out, size_t cap)
{
    int fd = pw_test_raw_connect(port);
    send(fd, request, strlen(request), 0);
    size_t len = 0;
    int seen = 0;
    while (seen < responses && len < cap - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) <= 0) {
            break;
        }
        ssize_t n = recv(fd, out + len, cap - 1 - len, 0);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        out[len] = '\0';
        /* Count complete responses: header end plus Content-Length bytes. */
        seen = 0;
        const char *p2 = out;
        while ((p2 = strstr(p2, "Content-Length: ")) != NULL) {
            size_t body = strtoul(p2 + 16, NULL, 10);
            const char *end = strstr(p2, "\r\n\r\n");
            if (end == NULL || (size_t)(out + len - (end + 4)) < body) {
                break;
            }
            seen++;
            p2 = end + 4 + body;
        }
    }
    close(fd);
    return seen;
}
