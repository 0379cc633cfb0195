#ifndef PAYWIRE_CLIENT_H
#define PAYWIRE_CLIENT_H

/* Client-side definitions shared by channel.c and client_call.c. */
#include "internal.h"

typedef enum pw__chan_state {
    PW_CHAN_IDLE,
    PW_CHAN_CONNECTING,
    PW_CHAN_READY,
    PW_CHAN_TRANSIENT_FAILURE,
} pw__chan_state;

typedef struct pw__subchan pw__subchan;

typedef struct pw__cconn {
    pw__conn conn;
    pw_channel *ch;
    pw__subchan *sub;
    nghttp2_session *session;
    pw__task pump;
    pw__list calls;
    int refs;
    int ready;
    int ready_pending;
    int ping_outstanding;
    /* Calls on this connection; more than the peer's MAX_CONCURRENT_STREAMS opens another. */
    int active;
    /* An overflow connection of its subchannel (not the primary). */
    int extra;
    pw__list link;
    /* Why connecting failed (TLS verification, refused...), for the calls' status message. */
    char fail_reason[300];
} pw__cconn;

/* One address of the target: its own connection, state and backoff. */
struct pw__subchan {
    pw_channel *ch;
    struct sockaddr_storage addr;
    char label[96];
    pw__chan_state state;
    pw__cconn *conn;
    /* Overflow connections, opened when every connection is out of streams. */
    pw__list extras;
    int extra_count;
    uv_timer_t timer;
    uint32_t backoff_ms;
    char last_error[300];
    /* last_error was logged at debug only: another address might still connect. */
    int failure_unlogged;
};

struct pw_channel {
    uv_loop_t *loop;
    char *host;
    int port;
    char *unix_path;
    char *authority;
    char *sni;
    SSL_CTX *ssl_ctx;
    pw_channel_options opts;
    /* Addresses: subchannels, built by the resolver or from a fixed list. */
    pw__subchan **subs;
    size_t sub_count;
    size_t rr_next;
    int resolved;
    int fixed_list;
    uv_getaddrinfo_t *resolving;
    uint64_t rng;
    pw__list pending;
    pw__tick tick;
    pw__task drain;
    char last_error[300];
    pw_client_interceptor *interceptors;
    size_t interceptor_count;
    pw_retry_policy retry;
    int has_retry;
    /* Retry throttling, in thousandths of a token. */
    uint32_t tokens;
    uint32_t max_tokens;
    uint32_t token_ratio;
    int closing;
    int open_handles;
    pw_channel_close_cb close_cb;
    void *close_ud;
};

struct pw_client_call {
    pw__list link;
    pw__list parent_link;
    pw_channel *ch;
    pw__cconn *cc;
    int32_t stream_id;
    char *path;
    pw_metadata md;
    uint64_t deadline;
    uv_timer_t *timer;
    int wait_for_ready;
    const pw_client_ops *ops;
    void *ud;
    pw__outq out;
    pw__deframer in;
    pw_metadata initial;
    pw_metadata trailing;
    int http_status;
    pw_status status;
    char *message;
    unsigned send_closed : 1;
    unsigned have_status : 1;
    unsigned headers_seen : 1;
    unsigned bad_content_type : 1;
    unsigned done : 1;
    unsigned in_trailers : 1;
    unsigned compress_out : 1;
    unsigned response_gzip : 1;
    /* The message being delivered to on_message arrived compressed. */
    unsigned message_compressed : 1;
    /* Retries: a response arrived (or replay overflowed), so no further attempt. */
    unsigned committed : 1;
    unsigned refused : 1;
    pw_idempotency idempotency;
    uint32_t attempts;
    uint32_t backoff_ms;
    pw_buf replay;
    uv_timer_t *retry_timer;
    pw_buf inflated;
    size_t intercepted;
    pw_call_stats stats;
    uint64_t start_ns;
    pw_call *parent;
    pw__ctx context[4];
    pw__task done_task;
};

/* subchannel.c */
void pw__cconn_schedule(pw__cconn *cc);
void pw__cconn_release(pw__cconn *cc);
pw__subchan *pw__subchan_new(pw_channel *ch, const struct sockaddr *addr, const char *label);
void pw__subchan_connect(pw__subchan *s);
void pw__subchan_on_failed(pw__subchan *s, const char *why);
void pw__subchan_on_lost(pw__subchan *s);
void pw__subchan_close(pw__subchan *s);
/** A READY connection of s with a free stream, or NULL. */
pw__cconn *pw__subchan_room(pw__subchan *s);
/** Opens another connection to s's address (capped), for calls beyond the streams limit. */
void pw__subchan_open_extra(pw__subchan *s);

/* channel.c */
void pw__channel_call_ready(pw_channel *ch, pw_client_call *call);
void pw__channel_sub_changed(pw_channel *ch, pw__subchan *s);
void pw__channel_maybe_finish(pw_channel *ch);
/** Calls are waiting and a stream may have freed up: submit them on the next turn. */
void pw__channel_kick_pending(pw_channel *ch);

/* channel.c: retry throttling and jitter. */
int pw__channel_retry_allowed(pw_channel *ch);
void pw__channel_retry_record(pw_channel *ch, int success);
uint32_t pw__channel_jitter_below(pw_channel *ch, uint32_t ms);

/* client_call.c */
int pw__client_call_submit(pw_client_call *call, pw__cconn *cc);
void pw__client_call_complete(pw_client_call *call, pw_status code, const char *fmt, ...)
    PW_PRINTF(3, 4);
/** A server-side outcome of one attempt: retried when the policy allows, else completes. */
void pw__client_call_attempt_failed(pw_client_call *call, pw_status code, const char *fmt, ...)
    PW_PRINTF(3, 4);
void pw__client_call_fire_ready(pw_client_call *call);
int pw__client_call_send_data(nghttp2_session *session, nghttp2_frame *frame,
                              const uint8_t *framehd, size_t length, nghttp2_data_source *source,
                              void *user_data);
void pw__client_call_on_header(pw_client_call *call, const nghttp2_frame *frame,
                               const uint8_t *name, size_t namelen, const uint8_t *value,
                               size_t valuelen);
void pw__client_call_on_headers_done(pw_client_call *call, const nghttp2_frame *frame);
void pw__client_call_on_data(pw_client_call *call, const uint8_t *data, size_t len);
void pw__client_call_on_stream_close(pw_client_call *call, uint32_t error_code);

#endif
