#ifndef PAYWIRE_INTERNAL_H
#define PAYWIRE_INTERNAL_H

/* Definitions shared by the server, call and channel modules. */
#include <nghttp2/nghttp2.h>
#include <paywire/paywire.h>
#include "list.h"
#include "tick.h"
#include "net/conn.h"
#include "h2/outq.h"
#include "grpc/deframer.h"
#include "chunks.h"
#include "context.h"

#define PW_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024)
#define PW_DEFAULT_HIGH_WATER  (64u * 1024)
#define PW_DEFAULT_MAX_STREAMS 256u
/* Stop pulling frames from nghttp2 once this much output waits for the socket. */
#define PW_CONN_OUTPUT_HIGH (64u * 1024)
#define PW_H2_WINDOW        (1u << 20)
#define PW_H2_CONN_WINDOW   (16u << 20)

typedef struct pw__method_table {
    pw_method **slots;
    size_t cap;
    size_t count;
} pw__method_table;

struct pw_server {
    uv_loop_t *loop;
    pw_server_options opts;
    pw__method_table methods;
    const pw_file_descriptor **files;
    size_t file_count;
    size_t file_cap;
    pw__list listeners;
    pw__list conns;
    size_t conn_count;
    pw__tick tick;
    uv_timer_t grace_timer;
    struct pw__hook {
        pw_server_hook_cb cb;
        void *user_data;
    } * hooks;
    size_t hook_count;
    pw_interceptor *interceptors;
    size_t interceptor_count;
    pw_json_codec json;
    int json_enabled;
    int shutting_down;
    int close_requested;
    int closing;
    int open_handles;
    /* The callbacks of pw_server_shutdown and pw_server_close: each runs once, in that order. */
    pw_server_close_cb shutdown_cb;
    void *shutdown_ud;
    pw_server_close_cb close_cb;
    void *close_ud;
};

typedef struct pw__sconn {
    pw__conn conn;
    pw__list link;
    pw_server *server;
    nghttp2_session *session;
    pw__task pump;
    pw__list calls;
    struct pw__h1 *h1;
    /* 1 while the socket or timer is open, plus one per call not yet released. */
    int refs;
    int ready_pending;
    /* Lifecycle (lifecycle.c): one timer watches every deadline below. */
    uv_timer_t timer;
    uint64_t accepted_at;
    uint64_t last_read_at;
    uint64_t idle_since;
    uint64_t drain_started_at;
    uint64_t ping_sent_at;
    uint64_t last_client_ping_at;
    int ping_strikes;
    unsigned h2_ready : 1;
    /* Serving HTTP/1.1 (http1.c) instead of HTTP/2: session is NULL. */
    unsigned http1 : 1;
    /* The first bytes were seen (cleartext: HTTP/2 or HTTP/1.1 decided). */
    unsigned proto_known : 1;
    unsigned draining : 1;
    unsigned final_goaway : 1;
    unsigned ping_outstanding : 1;
} pw__sconn;

struct pw_call {
    pw__list link;
    pw__sconn *sc;
    int32_t stream_id;
    const pw_method *method;
    char *path;
    pw_metadata md;
    pw_metadata initial;
    pw_metadata trailing;
    char *encoding;
    int64_t timeout_ms;
    size_t header_bytes;
    /* Request validation result: http_reject is an HTTP status (415, 405). */
    int http_reject;
    pw_status reject_code;
    char reject_msg[192];
    pw__deframer in;
    pw_buf request_bytes;
    int request_count;
    struct ProtobufCMessage *request;
    struct ProtobufCMessage **unpacked;
    size_t unpacked_count;
    pw__outq out;
    unsigned dispatched : 1;
    unsigned handler_started : 1;
    unsigned headers_sent : 1;
    unsigned finished : 1;
    unsigned status_queued : 1;
    unsigned stream_closed : 1;
    unsigned cancelled : 1;
    unsigned half_closed : 1;
    unsigned is_post : 1;
    unsigned is_get : 1;
    /* A Connect GET: the request came in the query string (connect.c). */
    unsigned connect_get : 1;
    unsigned content_type_seen : 1;
    /* A Connect-style JSON call (connect.c): body is JSON, response is one JSON body. */
    unsigned json : 1;
    pw_status final_code;
    char *final_msg;
    const pw_call_ops *ops;
    void *ops_ud;
    void *user_data;
    uv_timer_t *deadline_timer;
    uint64_t deadline;
    pw__list children;
    /* Library watchers of cancellation (pw_call_watch_start): a circular list head. */
    pw_call_watch watchers;
    pw_status cancel_why;
    pw__chunk *chunks;
    /* Compression: what the handler asked for, what the client accepts, and inflate space. */
    pw_compression compression;
    unsigned accepts_gzip : 1;
    unsigned compress_out : 1;
    unsigned request_compressed : 1;
    pw_buf inflated;
    /* Offloaded work in flight: the call is not freed before it returns. */
    int offloads;
    /* Interceptors whose on_start accepted the call (they get on_end). */
    size_t intercepted;
    pw_call_stats stats;
    uint64_t start_ns;
    pw__ctx context[8];
};

/* server.c: ignores SIGPIPE when it is at its default (a vanished peer must not kill us). */
void pw__ignore_sigpipe(void);

/* server.c */
void pw__sconn_schedule(pw__sconn *sc);
void pw__sconn_pump(pw__sconn *sc);
void pw__sconn_release(pw__sconn *sc);
const pw_method *pw__server_find(const pw_server *s, const char *path);
int pw__server_has_service(const pw_server *s, const char *path);

/* lifecycle.c: connection timers, keepalive, PING policing, draining. */
void pw__sconn_lifecycle_start(pw__sconn *sc);
void pw__sconn_lifecycle_stop(pw__sconn *sc, uv_close_cb closed);
void pw__sconn_on_ping(pw__sconn *sc, const nghttp2_frame *frame);
void pw__sconn_on_stream_frame_sent(pw__sconn *sc);
void pw__sconn_drain(pw__sconn *sc);
/** Re-arms the lifecycle timer if deadline (loop ms) is earlier than the armed one. */
void pw__sconn_lifecycle_kick(pw__sconn *sc, uint64_t deadline);
void pw__sconn_on_h2_ready(pw__sconn *sc);
void pw__sconn_on_idle(pw__sconn *sc);

/* call.c */
pw_call *pw__call_new(pw__sconn *sc, int32_t stream_id);
void pw__call_on_header(pw_call *call, const uint8_t *name, size_t name_len, const uint8_t *value,
                        size_t value_len);
void pw__call_on_headers_done(pw_call *call);
void pw__call_on_data(pw_call *call, const uint8_t *data, size_t len);
void pw__call_on_half_close(pw_call *call);
void pw__call_on_stream_close(pw_call *call, uint32_t error_code);
void pw__call_fire_ready(pw_call *call);
int pw__call_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                       size_t length, nghttp2_data_source *source, void *user_data);
ssize_t pw__call_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data);

/* connect.c: Connect-style JSON calls. */
int pw__connect_content_type(const uint8_t *value, size_t len);
/** The HTTP status Connect gives a gRPC code. */
int pw__connect_http_status(pw_status code);
/** Submits the whole response of a JSON call (status queued): HTTP/2 or HTTP/1.1. */
void pw__connect_respond(pw_call *call);
/**
 * A GET whose path has a query: a Connect GET ("?encoding=json&message=..."
 * [&base64=1][&connect=v1][&compression=identity]). Cuts the query off the
 * path, puts the message in the request body and makes the call a JSON one.
 * Returns 0, or the HTTP status to refuse with (reason in call->reject_msg).
 */
int pw__connect_get(pw_call *call);

/* http1.c: HTTP/1.1 on a server connection (JSON calls only). */
/** 1 when the first bytes of a cleartext connection are not the HTTP/2 preface. */
int pw__http1_detect(const uint8_t *data, size_t len);
pw_status pw__http1_start(pw__sconn *sc);
pw_status pw__http1_feed(pw__sconn *sc, const uint8_t *data, size_t len);
/** Finishes a written response: closes its call, resumes parsing or closes the connection. */
void pw__http1_pump(pw__sconn *sc);
/** Writes a JSON call's response (headers from nva, body from call->out). */
void pw__http1_respond(pw_call *call, const nghttp2_nv *nv, size_t n);
void pw__http1_free(pw__sconn *sc);
/** When the head of the request being read began, or 0. */
uint64_t pw__http1_head_started_at(const pw__sconn *sc);
/** The head took longer than the handshake timeout: 408 and close. */
void pw__http1_head_timeout(pw__sconn *sc);

/* channel.c: children of a server call (deadline and cancellation propagation). */
void pw__client_call_parent_cancelled(pw__list *children);
void pw__client_call_parent_gone(pw__list *children);

#endif
