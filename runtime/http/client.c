/*
 * client.c: outbound HTTP on the loop over libcurl's multi interface
 * (paywire/http.h).
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * to wake it (CURLMOPT_TIMERFUNCTION); we watch each socket with a uv_poll_t
 * and keep one uv_timer_t, and hand every event back with
 * curl_multi_socket_action. Finished transfers are collected with
 * curl_multi_info_read after each action. libcurl never blocks the loop and
 * never runs a callback of ours inside pw_http_send: it starts a transfer
 * from its timer, which fires on a later loop turn.
 *
 * Closing: transfers are taken off the multi handle at once, their callbacks
 * run (PW_CANCELLED) from the timer's close callback, then every socket watch
 * closes, and the client is freed after the last handle closed.
 */
#include <string.h>
#include <curl/curl.h>
#include <paywire/alloc.h>
#include <paywire/http.h>
#include <paywire/log.h>

#define DEFAULT_MAX_BODY   (1u << 20)
#define DEFAULT_TIMEOUT_MS 10000u
#define DEFAULT_CONNECT_MS 5000u

typedef struct xfer xfer;
typedef struct watch watch;

struct xfer {
    pw_http_client *client;
    CURL *easy;
    struct curl_slist *headers;
    uint8_t *body;
    uint8_t *resp;
    size_t resp_len;
    size_t resp_cap;
    int too_big;
    pw_http_done_cb cb;
    void *user_data;
    char what[160]; /* "POST https://host" for messages */
    char errbuf[CURL_ERROR_SIZE];
    xfer *next;
    xfer *prev;
};

struct watch {
    uv_poll_t poll;
    pw_http_client *client;
    curl_socket_t fd;
    watch *next;
    watch *prev;
};

struct pw_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    size_t max_body;
    size_t pending;
    xfer *xfers;
    watch *watches;
    int closing;
    int open_handles;
    pw_http_client_close_cb close_cb;
    void *close_ud;
};

static uv_once_t global_once = UV_ONCE_INIT;
static CURLcode global_rv = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rv = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- finishing ---- */

static void xfer_unlink(xfer *x)
{
    pw_http_client *c = x->client;
    if (x->prev != NULL) {
        x->prev->next = x->next;
    } else {
        c->xfers = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    }
    c->pending--;
}

static void xfer_free(xfer *x)
{
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    pw_free(x->body);
    pw_free(x->resp);
    pw_free(x);
}

static pw_status status_of(CURLcode rc, const xfer *x)
{
    switch (rc) {
    case CURLE_OK:
        return PW_OK;
    case CURLE_WRITE_ERROR:
        return x->too_big ? PW_RESOURCE_EXHAUSTED : PW_INTERNAL;
    case CURLE_OPERATION_TIMEDOUT:
        return PW_DEADLINE_EXCEEDED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return PW_UNAVAILABLE;
    default:
        return PW_INTERNAL;
    }
}

/* Runs x's callback with status (and what arrived), then frees x. */
static void xfer_done(xfer *x, pw_status status, const char *reason)
{
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    char error[CURL_ERROR_SIZE + 200];
    snprintf(error, sizeof(error), "%s: %s", x->what, reason);
    pw_http_response r = {
        .status = status,
        .http_status = code,
        .body = pw_slice_make(x->resp, x->resp_len),
        .error = status == PW_OK ? "" : error,
    };
    x->cb(x->client, &r, x->user_data);
    xfer_free(x);
}

static void collect(pw_http_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(c->multi, x->easy);
        xfer_unlink(x);
        const char *reason = x->too_big             ? "response body over the limit"
                             : x->errbuf[0] != '\0' ? x->errbuf
                                                    : curl_easy_strerror(rc);
        xfer_done(x, status_of(rc, x), reason);
    }
}

/* ---- libcurl's sockets and timer on the loop ---- */

static void watch_closed(uv_handle_t *h);

static void on_poll(uv_poll_t *p, int status, int events)
{
    watch *w = p->data;
    pw_http_client *c = w->client;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    int running = 0;
    curl_multi_socket_action(c->multi, w->fd, flags, &running);
    collect(c);
}

static void watch_close(watch *w)
{
    pw_http_client *c = w->client;
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        c->watches = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
    uv_close((uv_handle_t *)&w->poll, watch_closed);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    pw_http_client *c = userp;
    watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            watch_close(w);
        }
        return 0;
    }
    if (w == NULL) {
        w = pw_calloc(1, sizeof(*w));
        if (w == NULL || uv_poll_init_socket(c->loop, &w->poll, fd) != 0) {
            pw_free(w);
            return -1; /* libcurl fails the transfer */
        }
        w->client = c;
        w->fd = fd;
        w->poll.data = w;
        w->next = c->watches;
        if (c->watches != NULL) {
            c->watches->prev = w;
        }
        c->watches = w;
        c->open_handles++;
        curl_multi_assign(c->multi, fd, w);
    }
    int events = 0;
    events |= (what & CURL_POLL_IN) ? UV_READABLE : 0;
    events |= (what & CURL_POLL_OUT) ? UV_WRITABLE : 0;
    uv_poll_start(&w->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    pw_http_client *c = t->data;
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(c);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    pw_http_client *c = userp;
    if (c->closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        /* 0 means "now": a later loop turn, so nothing runs inside pw_http_send. */
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- the client ---- */

pw_status pw_http_client_new(pw_http_client **out, uv_loop_t *loop,
                             const pw_http_client_options *options)
{
    *out = NULL;
    uv_once(&global_once, global_init);
    if (global_rv != CURLE_OK) {
        return PW_INTERNAL;
    }
    pw_http_client *c = pw_calloc(1, sizeof(*c));
    if (c == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        pw_free(c);
        return PW_ERRNO(ENOMEM);
    }
    c->loop = loop;
    c->max_body =
        options && options->max_response_bytes ? options->max_response_bytes : DEFAULT_MAX_BODY;
    long per_host = options && options->max_host_connections ? options->max_host_connections : 4;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    *out = c;
    return PW_OK;
}

size_t pw_http_client_pending(const pw_http_client *client)
{
    return client->pending;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    xfer *x = userp;
    size_t len = size * n;
    if (x->resp_len + len > x->client->max_body) {
        x->too_big = 1;
        return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (x->resp_len + len > x->resp_cap) {
        size_t cap = x->resp_cap ? x->resp_cap * 2 : 4096;
        while (cap < x->resp_len + len) {
            cap *= 2;
        }
        uint8_t *p = pw_realloc(x->resp, cap);
        if (p == NULL) {
            return 0;
        }
        x->resp = p;
        x->resp_cap = cap;
    }
    memcpy(x->resp + x->resp_len, data, len);
    x->resp_len += len;
    return len;
}

static int header_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strpbrk(s, "\r\n") == NULL;
}

/* The request's headers as libcurl wants them; NULL (and *rv) on failure. */
static pw_status build_headers(xfer *x, const pw_http_request *req)
{
    /* No "Expect: 100-continue" round trip before a body. */
    x->headers = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; x->headers != NULL && i < req->n_headers; i++) {
        const pw_http_header *h = &req->headers[i];
        if (!header_ok(h->name) || strchr(h->name, ':') != NULL ||
            (h->value != NULL && strpbrk(h->value, "\r\n") != NULL)) {
            return PW_INVALID_ARGUMENT;
        }
        char line[1024];
        int n = snprintf(line, sizeof(line), "%s: %s", h->name, h->value ? h->value : "");
        if (n < 0 || (size_t)n >= sizeof(line)) {
            return PW_INVALID_ARGUMENT;
        }
        struct curl_slist *l = curl_slist_append(x->headers, line);
        if (l == NULL) {
            return PW_ERRNO(ENOMEM);
        }
        x->headers = l;
    }
    return x->headers != NULL ? PW_OK : PW_ERRNO(ENOMEM);
}

static void set_what(xfer *x, const char *method, const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t n = strcspn(host, "/?#");
    size_t scheme = (size_t)(host - url);
    snprintf(x->what, sizeof(x->what), "%s %.*s%.*s", method, (int)scheme, url, (int)n, host);
}

static pw_status configure(xfer *x, const pw_http_request *req)
{
    const char *method = req->method ? req->method : req->body_len > 0 ? "POST" : "GET";
    uint32_t timeout = req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    uint32_t connect = req->connect_timeout_ms ? req->connect_timeout_ms : DEFAULT_CONNECT_MS;
    set_what(x, method, req->url);
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect < timeout ? connect : timeout));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (req->ca_file != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
    }
    if (req->cert_file != NULL) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, req->cert_file);
        curl_easy_setopt(e, CURLOPT_SSLKEY, req->key_file ? req->key_file : req->cert_file);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (req->body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        x->body = pw_malloc(req->body_len ? req->body_len : 1);
        if (x->body == NULL) {
            return PW_ERRNO(ENOMEM);
        }
        if (req->body_len > 0) {
            memcpy(x->body, req->body, req->body_len);
        }
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, (char *)x->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    return PW_OK;
}

pw_status pw_http_send(pw_http_client *client, const pw_http_request *req, pw_http_done_cb cb,
                       void *user_data)
{
    if (req == NULL || req->url == NULL || cb == NULL ||
        (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0)) {
        return PW_INVALID_ARGUMENT;
    }
    if (client->closing) {
        return PW_FAILED_PRECONDITION;
    }
    xfer *x = pw_calloc(1, sizeof(*x));
    if (x == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    x->client = client;
    x->cb = cb;
    x->user_data = user_data;
    x->easy = curl_easy_init();
    pw_status rv = x->easy == NULL ? PW_ERRNO(ENOMEM) : build_headers(x, req);
    if (rv == PW_OK) {
        rv = configure(x, req);
    }
    if (rv == PW_OK && curl_multi_add_handle(client->multi, x->easy) != CURLM_OK) {
        rv = PW_INTERNAL;
    }
    if (rv != PW_OK) {
        xfer_free(x);
        return rv;
    }
    x->next = client->xfers;
    if (client->xfers != NULL) {
        client->xfers->prev = x;
    }
    client->xfers = x;
    client->pending++;
    return PW_OK;
}

/* ---- closing ---- */

static void client_release(pw_http_client *c)
{
    if (--c->open_handles > 0) {
        return;
    }
    if (c->close_cb != NULL) {
        c->close_cb(c, c->close_ud);
    }
    pw_free(c);
}

static void watch_closed(uv_handle_t *h)
{
    watch *w = h->data;
    pw_http_client *c = w->client;
    pw_free(w);
    client_release(c);
}

/* The timer is closed: a later loop turn than pw_http_client_close. */
static void timer_closed(uv_handle_t *h)
{
    pw_http_client *c = h->data;
    while (c->xfers != NULL) {
        xfer *x = c->xfers;
        xfer_unlink(x);
        xfer_done(x, PW_CANCELLED, "the HTTP client was closed");
    }
    curl_multi_cleanup(c->multi);
    while (c->watches != NULL) {
        watch_close(c->watches);
    }
    client_release(c);
}

void pw_http_client_close(pw_http_client *client, pw_http_client_close_cb cb, void *user_data)
{
    if (client == NULL || client->closing) {
        return;
    }
    client->closing = 1;
    client->close_cb = cb;
    client->close_ud = user_data;
    for (xfer *x = client->xfers; x != NULL; x = x->next) {
        curl_multi_remove_handle(client->multi, x->easy);
    }
    uv_close((uv_handle_t *)&client->timer, timer_closed);
}
