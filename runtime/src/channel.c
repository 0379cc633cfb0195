/*
 * channel.c: a client's view of one target. The target's addresses become
 * subchannels (subchannel.c), built from a fixed list ("ipv4:a:p,b:p"), a
 * Unix path, or the resolver (uv_getaddrinfo on the loop: every address,
 * resolved again when all of them fail). Calls go to a READY subchannel chosen
 * by the policy: pick_first (the first that connects, addresses in order) or
 * round_robin (a connection to every address, calls in rotation). Without a
 * READY subchannel calls wait in `pending`, except that while every address
 * is in TRANSIENT_FAILURE they fail fast with UNAVAILABLE (unless
 * wait_for_ready).
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "client.h"
#include "net/addr.h"

static void channel_fail_pending(pw_channel *ch, int include_wait_for_ready, pw_status code);
static void channel_resolve(pw_channel *ch);

/* ---- randomness and retry throttling ---- */

uint32_t pw__channel_jitter_below(pw_channel *ch, uint32_t ms)
{
    /* xorshift64: per-channel state, no global RNG. */
    ch->rng ^= ch->rng << 13;
    ch->rng ^= ch->rng >> 7;
    ch->rng ^= ch->rng << 17;
    return ms == 0 ? 0 : (uint32_t)(ch->rng % ms);
}

int pw__channel_retry_allowed(pw_channel *ch)
{
    return ch->tokens > ch->max_tokens / 2;
}

void pw__channel_retry_record(pw_channel *ch, int success)
{
    if (success) {
        ch->tokens = ch->tokens + ch->token_ratio > ch->max_tokens ? ch->max_tokens
                                                                   : ch->tokens + ch->token_ratio;
    } else {
        ch->tokens = ch->tokens > 1000 ? ch->tokens - 1000 : 0;
    }
}

/* ---- subchannels ---- */

static pw_status channel_add_sub(pw_channel *ch, const struct sockaddr *addr, const char *label)
{
    for (size_t i = 0; i < ch->sub_count; i++) {
        if (strcmp(ch->subs[i]->label, label) == 0) {
            return PW_OK; /* already known */
        }
    }
    pw__subchan **subs = pw_realloc(ch->subs, (ch->sub_count + 1) * sizeof(*subs));
    if (subs == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    ch->subs = subs;
    pw__subchan *s = pw__subchan_new(ch, addr, label);
    if (s == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    ch->subs[ch->sub_count++] = s;
    return PW_OK;
}

/*
 * A connection with a free stream on a READY subchannel chosen by the policy.
 * When every READY connection is out of streams, opens another connection to
 * the chosen backend and returns NULL (the call waits for it).
 */
static pw__cconn *channel_pick(pw_channel *ch)
{
    size_t n = ch->sub_count;
    int rr = ch->opts.lb_policy == PW_LB_ROUND_ROBIN;
    size_t start = rr ? ch->rr_next : 0;
    pw__subchan *first_ready = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t idx = (start + i) % n;
        pw__subchan *s = ch->subs[idx];
        if (s->state != PW_CHAN_READY) {
            continue;
        }
        if (first_ready == NULL) {
            first_ready = s;
        }
        pw__cconn *cc = pw__subchan_room(s);
        if (cc != NULL) {
            if (rr) {
                ch->rr_next = idx + 1;
            }
            return cc;
        }
        if (!rr) {
            break; /* pick_first sticks to its backend */
        }
    }
    if (first_ready != NULL) {
        pw__subchan_open_extra(first_ready);
    }
    return NULL;
}

static int channel_all_failed(const pw_channel *ch)
{
    for (size_t i = 0; i < ch->sub_count; i++) {
        if (ch->subs[i]->state != PW_CHAN_TRANSIENT_FAILURE) {
            return 0;
        }
    }
    return ch->sub_count > 0;
}

/* Starts the connections the policy wants. */
static void channel_connect_needed(pw_channel *ch)
{
    if (ch->closing) {
        return;
    }
    if (ch->opts.lb_policy == PW_LB_ROUND_ROBIN) {
        for (size_t i = 0; i < ch->sub_count; i++) {
            pw__subchan_connect(ch->subs[i]); /* no-op unless IDLE */
        }
        return;
    }
    for (size_t i = 0; i < ch->sub_count; i++) {
        pw__chan_state st = ch->subs[i]->state;
        if (st == PW_CHAN_READY || st == PW_CHAN_CONNECTING) {
            return;
        }
    }
    /* pick_first: the first address that is not backing off. */
    for (size_t i = 0; i < ch->sub_count; i++) {
        if (ch->subs[i]->state == PW_CHAN_IDLE) {
            pw__subchan_connect(ch->subs[i]);
            return;
        }
    }
}

static void channel_submit_pending(pw_channel *ch)
{
    while (!pw__list_empty(&ch->pending)) {
        pw__cconn *cc = channel_pick(ch);
        if (cc == NULL) {
            return;
        }
        pw_client_call *call = PW_CONTAINER_OF(ch->pending.next, pw_client_call, link);
        pw__list_remove(&call->link);
        if (pw__client_call_submit(call, cc) == 0) {
            pw__cconn_schedule(cc);
        }
    }
}

/*
 * Failures of a multi-address target logged at debug only: at info once every
 * address failed (each once), never when another address connected.
 */
static void channel_log_failures(pw_channel *ch, int all_failed)
{
    for (size_t i = 0; i < ch->sub_count; i++) {
        pw__subchan *s = ch->subs[i];
        if (s->failure_unlogged && all_failed) {
            PW_LOG(PW_LOG_INFO, "channel", "%s", s->last_error);
        }
        s->failure_unlogged = 0;
    }
}

void pw__channel_sub_changed(pw_channel *ch, pw__subchan *s)
{
    if (ch->closing) {
        return;
    }
    switch (s->state) {
    case PW_CHAN_READY:
        channel_log_failures(ch, 0);
        channel_submit_pending(ch);
        break;
    case PW_CHAN_TRANSIENT_FAILURE:
        if (channel_all_failed(ch)) {
            channel_log_failures(ch, 1);
            channel_fail_pending(ch, 0, PW_UNAVAILABLE);
            if (!ch->fixed_list && ch->unix_path == NULL) {
                channel_resolve(ch); /* addresses may have changed */
            }
        } else if (!pw__list_empty(&ch->pending)) {
            channel_connect_needed(ch); /* pick_first moves to the next address */
        }
        break;
    case PW_CHAN_IDLE:
        /* Lost a connection or finished backing off. */
        if (!pw__list_empty(&ch->pending) || ch->opts.lb_policy == PW_LB_ROUND_ROBIN) {
            channel_connect_needed(ch);
        }
        break;
    case PW_CHAN_CONNECTING:
        break;
    }
}

/* ---- resolver ---- */

static void channel_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pw_channel *ch = req->data;
    pw_free(req);
    ch->resolving = NULL;
    ch->open_handles--;
    if (ch->closing) {
        uv_freeaddrinfo(res);
        pw__channel_maybe_finish(ch);
        return;
    }
    if (status != 0 || res == NULL) {
        snprintf(ch->last_error, sizeof(ch->last_error), "cannot resolve %s: %s", ch->host,
                 uv_strerror(status));
        PW_LOG(PW_LOG_INFO, "channel", "%s", ch->last_error);
        uv_freeaddrinfo(res);
        channel_fail_pending(ch, 0, PW_UNAVAILABLE);
        return;
    }
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        char ip[64] = "?", label[96];
        if (a->ai_family == AF_INET6) {
            uv_ip6_name((const struct sockaddr_in6 *)a->ai_addr, ip, sizeof(ip));
            snprintf(label, sizeof(label), "[%s]:%d", ip, ch->port);
        } else if (a->ai_family == AF_INET) {
            uv_ip4_name((const struct sockaddr_in *)a->ai_addr, ip, sizeof(ip));
            snprintf(label, sizeof(label), "%s:%d", ip, ch->port);
        } else {
            continue;
        }
        channel_add_sub(ch, a->ai_addr, label);
    }
    uv_freeaddrinfo(res);
    ch->resolved = 1;
    if (!pw__list_empty(&ch->pending)) {
        channel_connect_needed(ch);
    }
}

static void channel_resolve(pw_channel *ch)
{
    if (ch->resolving != NULL || ch->closing) {
        return;
    }
    if (ch->unix_path != NULL) {
        channel_add_sub(ch, NULL, ch->authority);
        ch->resolved = 1;
        channel_connect_needed(ch);
        return;
    }
    uv_getaddrinfo_t *req = pw_malloc(sizeof(*req));
    if (req == NULL) {
        channel_fail_pending(ch, 0, PW_UNAVAILABLE);
        return;
    }
    req->data = ch;
    char port[16];
    snprintf(port, sizeof(port), "%d", ch->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rv = uv_getaddrinfo(ch->loop, req, channel_resolved, ch->host, port, &hints);
    if (rv != 0) {
        pw_free(req);
        snprintf(ch->last_error, sizeof(ch->last_error), "cannot resolve %s: %s", ch->host,
                 uv_strerror(rv));
        channel_fail_pending(ch, 0, PW_UNAVAILABLE);
        return;
    }
    ch->resolving = req;
    ch->open_handles++;
}

/* ---- calls ---- */

/* A new call (or a retry): send now, queue, or fail fast (never from inside start). */
void pw__channel_call_ready(pw_channel *ch, pw_client_call *call)
{
    pw__cconn *cc = ch->resolved ? channel_pick(ch) : NULL;
    if (cc != NULL) {
        if (pw__client_call_submit(call, cc) == 0) {
            pw__cconn_schedule(cc);
        }
        return;
    }
    pw__list_push(&ch->pending, &call->link);
    if (!ch->resolved) {
        channel_resolve(ch);
        return;
    }
    if (channel_all_failed(ch) && !call->wait_for_ready) {
        channel_fail_pending(ch, 0, PW_UNAVAILABLE);
        return;
    }
    channel_connect_needed(ch);
}

static void channel_drain_task(pw__task *t)
{
    pw_channel *ch = PW_CONTAINER_OF(t, pw_channel, drain);
    if (!ch->closing) {
        channel_submit_pending(ch);
    }
}

void pw__channel_kick_pending(pw_channel *ch)
{
    if (!ch->closing) {
        pw__tick_push(&ch->tick, &ch->drain);
    }
}

static void channel_fail_pending(pw_channel *ch, int include_wait_for_ready, pw_status code)
{
    pw__list keep;
    pw__list_init(&keep);
    while (!pw__list_empty(&ch->pending)) {
        pw_client_call *call = PW_CONTAINER_OF(ch->pending.next, pw_client_call, link);
        pw__list_remove(&call->link);
        if (call->wait_for_ready && !include_wait_for_ready) {
            pw__list_push(&keep, &call->link);
            continue;
        }
        pw__client_call_complete(call, code, "%s",
                                 code == PW_CANCELLED ? "channel closed" : ch->last_error);
    }
    while (!pw__list_empty(&keep)) {
        pw__list *n = keep.next;
        pw__list_remove(n);
        pw__list_push(&ch->pending, n);
    }
}

/* ---- targets ---- */

/*
 * "ipv4:a:p,b:p" or "ipv6:[a]:p,[b]:p": a fixed list of addresses. With
 * create == 0 it only validates (pw_channel_new creates subchannels last, once
 * nothing else can fail).
 */
static pw_status channel_parse_list(pw_channel *ch, const char *list, int create)
{
    char *copy = pw_strdup(list);
    if (copy == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pw_status rv = PW_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item != NULL && rv == PW_OK;
         item = strtok_r(NULL, ",", &save)) {
        char host[128];
        int port;
        struct sockaddr_storage ss;
        if (pw__parse_host_port(item, host, sizeof(host), &port) != PW_OK || port == 0 ||
            (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
             uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
            rv = PW_INVALID_ARGUMENT;
            break;
        }
        rv = create ? channel_add_sub(ch, (const struct sockaddr *)&ss, item) : PW_OK;
    }
    pw_free(copy);
    if (rv == PW_OK && create && ch->sub_count == 0) {
        rv = PW_INVALID_ARGUMENT;
    }
    ch->fixed_list = 1;
    ch->resolved = create;
    return rv;
}

static pw_status channel_parse_target(pw_channel *ch, const char *target)
{
    if (strncmp(target, "unix:", 5) == 0) {
        ch->unix_path = pw_strdup(target + 5);
        ch->authority = pw_strdup("localhost");
        return ch->unix_path && ch->authority ? PW_OK : PW_ERRNO(ENOMEM);
    }
    if (strncmp(target, "ipv4:", 5) == 0 || strncmp(target, "ipv6:", 5) == 0) {
        ch->authority = pw_strdup("localhost");
        return ch->authority ? channel_parse_list(ch, target + 5, 0) : PW_ERRNO(ENOMEM);
    }
    if (strncmp(target, "dns:///", 7) == 0) {
        target += 7;
    }
    char host[256];
    int port;
    if (pw__parse_host_port(target, host, sizeof(host), &port) != PW_OK || host[0] == '\0' ||
        port == 0) {
        return PW_INVALID_ARGUMENT;
    }
    ch->host = pw_strdup(host);
    ch->port = port;
    ch->authority = pw_strdup(target);
    return ch->host && ch->authority ? PW_OK : PW_ERRNO(ENOMEM);
}

/* ---- lifetime ---- */

static void channel_free(pw_channel *ch)
{
    if (ch->ssl_ctx != NULL) {
        SSL_CTX_free(ch->ssl_ctx);
    }
    for (size_t i = 0; i < ch->sub_count; i++) {
        pw_free(ch->subs[i]);
    }
    pw_free(ch->subs);
    pw_free(ch->interceptors);
    pw_free(ch->host);
    pw_free(ch->unix_path);
    pw_free(ch->authority);
    pw_free(ch->sni);
    pw_free(ch);
}

pw_status pw_channel_new(pw_channel **out, uv_loop_t *loop, const char *target,
                         const pw_channel_options *opts)
{
    *out = NULL;
    pw_channel *ch = pw_calloc(1, sizeof(*ch));
    if (ch == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pw__ignore_sigpipe();
    ch->loop = loop;
    if (opts != NULL) {
        ch->opts = *opts;
    }
    pw_channel_options *o = &ch->opts;
    o->max_recv_message_size =
        o->max_recv_message_size ? o->max_recv_message_size : PW_DEFAULT_MAX_MESSAGE;
    o->backoff_initial_ms = o->backoff_initial_ms ? o->backoff_initial_ms : 1000;
    o->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 120000;
    o->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 20000;
    o->keepalive_timeout_ms = o->keepalive_timeout_ms ? o->keepalive_timeout_ms : 20000;
    ch->rng = uv_hrtime() | 1;
    if (opts != NULL && opts->retry != NULL) {
        pw_retry_policy *r = &ch->retry;
        *r = *opts->retry;
        r->max_attempts = r->max_attempts ? (r->max_attempts > 5 ? 5 : r->max_attempts) : 3;
        r->initial_backoff_ms = r->initial_backoff_ms ? r->initial_backoff_ms : 100;
        r->max_backoff_ms = r->max_backoff_ms ? r->max_backoff_ms : 5000;
        r->backoff_multiplier_pct = r->backoff_multiplier_pct ? r->backoff_multiplier_pct : 200;
        r->retryable_codes = r->retryable_codes ? r->retryable_codes : 1u << PW_UNAVAILABLE;
        ch->has_retry = 1;
    }
    o->retry = NULL;
    o->retry_buffer_size = o->retry_buffer_size ? o->retry_buffer_size : 256 * 1024;
    ch->max_tokens = 1000 * (o->retry_max_tokens ? o->retry_max_tokens : 10);
    ch->token_ratio = 10 * (o->retry_token_ratio_pct ? o->retry_token_ratio_pct : 10);
    ch->tokens = ch->max_tokens;
    pw__list_init(&ch->pending);
    pw_status rv = channel_parse_target(ch, target);
    if (rv == PW_OK && opts != NULL && opts->authority != NULL) {
        pw_free(ch->authority);
        ch->authority = pw_strdup(opts->authority);
    }
    if (rv == PW_OK && opts != NULL && opts->tls != NULL) {
        char err[256];
        rv = pw__tls_client_ctx(opts->tls, &ch->ssl_ctx, err, sizeof(err));
        if (rv != PW_OK) {
            PW_LOG(PW_LOG_ERR, "channel", "%s: %s", target, err);
        }
        const char *name = opts->tls->server_name_override ? opts->tls->server_name_override
                                                           : (ch->host ? ch->host : "localhost");
        ch->sni = pw_strdup(name);
    }
    ch->opts.tls = NULL;
    ch->opts.authority = NULL;
    if (rv != PW_OK) {
        channel_free(ch);
        return rv;
    }
    pw__tick_init(&ch->tick, loop, ch);
    pw__task_init(&ch->drain, channel_drain_task);
    if (ch->fixed_list) {
        /* Validated above: now the subchannels (with their timers) can exist. */
        rv = channel_parse_list(ch, target + 5, 1);
        if (rv != PW_OK) {
            pw_channel_close(ch, NULL, NULL);
            return rv;
        }
    }
    *out = ch;
    return PW_OK;
}

pw_status pw_channel_add_interceptor(pw_channel *ch, const pw_client_interceptor *ic)
{
    pw_client_interceptor *a =
        pw_realloc(ch->interceptors, (ch->interceptor_count + 1) * sizeof(*a));
    if (a == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    ch->interceptors = a;
    ch->interceptors[ch->interceptor_count++] = *ic;
    return PW_OK;
}

uv_loop_t *pw_channel_loop(const pw_channel *ch)
{
    return ch->loop;
}

static void channel_tick_closed(uv_handle_t *h)
{
    pw_channel *ch = h->data;
    pw__tick_drain(&ch->tick);
    if (ch->close_cb != NULL) {
        ch->close_cb(ch, ch->close_ud);
    }
    channel_free(ch);
}

/* Frees the channel once its subchannels, resolver and connections are closed. */
void pw__channel_maybe_finish(pw_channel *ch)
{
    if (ch->closing == 1 && ch->open_handles == 0) {
        ch->closing = 2;
        ch->tick.idle.data = ch;
        uv_close((uv_handle_t *)&ch->tick.idle, channel_tick_closed);
    }
}

void pw_channel_close(pw_channel *ch, pw_channel_close_cb cb, void *ud)
{
    if (ch == NULL || ch->closing) {
        return;
    }
    ch->closing = 1;
    ch->close_cb = cb;
    ch->close_ud = ud;
    pw__task_cancel(&ch->drain);
    channel_fail_pending(ch, 1, PW_CANCELLED);
    if (ch->resolving != NULL) {
        uv_cancel((uv_req_t *)ch->resolving);
    }
    for (size_t i = 0; i < ch->sub_count; i++) {
        pw__subchan_close(ch->subs[i]);
    }
    pw__channel_maybe_finish(ch);
}
