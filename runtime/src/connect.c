/*
 * connect.c: unary calls with JSON bodies, as the Connect protocol's unary
 * form defines them (POST /pkg.Svc/Method, content-type application/json,
 * optional connect-timeout-ms), so curl can call any unary method. The call
 * machinery is the gRPC one (call.c): same lookup, interceptors, deadline and
 * handler; only the body codec and the response shape differ. The response
 * is buffered and sent at once when the status is known: HTTP 200 with the
 * JSON message, or the Connect error status with
 * {"code":"invalid_argument","message":"...","details":[...]}. Response
 * metadata goes in headers, trailing metadata in "trailer-" headers.
 *
 * Methods marked idempotency_level = NO_SIDE_EFFECTS also answer Connect's
 * GET form, the request in the query string, so a read is a plain URL.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <paywire/alloc.h>
#include "internal.h"
#include "h2/nva.h"

int pw__connect_content_type(const uint8_t *v, size_t len)
{
    static const char base[] = "application/json";
    size_t n = sizeof(base) - 1;
    if (len < n || strncasecmp((const char *)v, base, n) != 0) {
        return 0;
    }
    return len == n || v[n] == ';' || v[n] == ' ';
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes a query value ('+' is a space) onto out; -1 on a bad escape or no memory. */
static int url_decode(const char *s, size_t n, pw_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (pw_buf_append(out, &c, 1) != PW_OK) {
            return -1;
        }
    }
    return 0;
}

static int get_refuse(pw_call *call, int http_status, const char *why)
{
    snprintf(call->reject_msg, sizeof(call->reject_msg), "%s", why);
    return http_status;
}

int pw__connect_get(pw_call *call)
{
    char *q = strchr(call->path, '?');
    *q++ = '\0';
    pw_buf message = {0}, value = {0};
    int have_message = 0, have_json = 0, base64 = 0, status = 0;
    while (*q != '\0' && status == 0) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t klen = eq ? (size_t)(eq - q) : n;
        const char *v = eq ? eq + 1 : q + n;
        pw_buf_reset(&value);
        if (url_decode(v, (size_t)(q + n - v), &value) != 0) {
            status =
                get_refuse(call, 400, "Connect GET: a query value is not valid percent-encoding");
        } else if (klen == 7 && memcmp(q, "message", 7) == 0) {
            have_message = 1;
            pw_buf_reset(&message);
            pw_buf_append(&message, pw_buf_head(&value), pw_buf_pending(&value));
        } else if (klen == 8 && memcmp(q, "encoding", 8) == 0) {
            have_json = pw_buf_pending(&value) == 4 && memcmp(pw_buf_head(&value), "json", 4) == 0;
            if (!have_json) {
                status = get_refuse(call, 415, "Connect GET: this server takes encoding=json");
            }
        } else if (klen == 6 && memcmp(q, "base64", 6) == 0) {
            base64 = pw_buf_pending(&value) == 1 && *pw_buf_head(&value) == '1';
        } else if (klen == 11 && memcmp(q, "compression", 11) == 0 &&
                   !(pw_buf_pending(&value) == 8 &&
                     memcmp(pw_buf_head(&value), "identity", 8) == 0)) {
            status = get_refuse(call, 415, "Connect GET: compressed messages are not supported");
        }
        q += n + (q[n] == '&');
    }
    if (status == 0 && (!have_json || !have_message)) {
        status = get_refuse(call, 405,
                            "GET needs the Connect form ?encoding=json&message=<JSON>; or POST "
                            "the JSON to /package.Service/Method");
    }
    if (status == 0 && !call->sc->server->json_enabled) {
        status = get_refuse(call, 415, "JSON is not enabled on this server");
    }
    pw_buf_reset(&call->request_bytes);
    if (status == 0 && base64) {
        size_t cap = pw_buf_pending(&message) / 4 * 3 + 3;
        if (pw_buf_reserve(&call->request_bytes, cap) != PW_OK ||
            pw_base64_decode((const char *)pw_buf_head(&message), pw_buf_pending(&message),
                             call->request_bytes.data, &call->request_bytes.len) != PW_OK) {
            status = get_refuse(call, 400, "Connect GET: message is not valid base64");
        }
    } else if (status == 0) {
        pw_buf_append(&call->request_bytes, pw_buf_head(&message), pw_buf_pending(&message));
    }
    pw_buf_reset(&message);
    pw_buf_reset(&value);
    if (status == 0 && pw_buf_pending(&call->request_bytes) > call->in.max_len) {
        status = get_refuse(call, 413, "Connect GET: message larger than the limit");
    }
    if (status == 0) {
        call->connect_get = 1;
        call->json = 1;
        call->is_post = 1;
        call->content_type_seen = 1;
    }
    return status;
}

int pw__connect_http_status(pw_status code)
{
    switch (code) {
    case PW_OK:
        return 200;
    case PW_CANCELLED:
        return 499;
    case PW_INVALID_ARGUMENT:
    case PW_FAILED_PRECONDITION:
    case PW_OUT_OF_RANGE:
        return 400;
    case PW_DEADLINE_EXCEEDED:
        return 504;
    case PW_NOT_FOUND:
        return 404;
    case PW_ALREADY_EXISTS:
    case PW_ABORTED:
        return 409;
    case PW_PERMISSION_DENIED:
        return 403;
    case PW_RESOURCE_EXHAUSTED:
        return 429;
    case PW_UNIMPLEMENTED:
        return 501;
    case PW_UNAVAILABLE:
        return 503;
    case PW_UNAUTHENTICATED:
        return 401;
    default:
        return 500;
    }
}

/* When the codec cannot produce the error body: a minimal one of our own. */
static void connect_fallback_error(pw_call *call)
{
    pw_buf_printf(&call->out.buf,
                  "{\"code\":\"internal\",\"message\":\"cannot encode the error\"}");
}

void pw__connect_respond(pw_call *call)
{
    const pw_server *s = call->sc->server;
    pw__outq *q = &call->out;
    if (call->final_code == PW_OK && pw_buf_pending(&q->buf) == 0) {
        call->final_code = PW_INTERNAL;
        pw_free(call->final_msg);
        call->final_msg = pw_strdup("the handler finished without a response message");
    }
    int ok = call->final_code == PW_OK;
    if (!ok) {
        pw_buf_consume(&q->buf, pw_buf_pending(&q->buf));
        if (s == NULL || !s->json_enabled ||
            s->json.encode_error(call->final_code, call->final_msg ? call->final_msg : "",
                                 &call->trailing, &q->buf, s->json.user_data) != PW_OK) {
            pw_buf_consume(&q->buf, pw_buf_pending(&q->buf));
            connect_fallback_error(call);
        }
    }
    char status[8];
    snprintf(status, sizeof(status), "%d", pw__connect_http_status(call->final_code));
    pw__nva b = {0};
    pw__nva_add_str(&b, ":status", status);
    pw__nva_add_str(&b, "content-type", "application/json");
    pw__nva_add_metadata(&b, &call->initial);
    /* On errors the details travel in the body. */
    pw__nva_add_metadata_as(&b, &call->trailing, "trailer-", ok ? NULL : "grpc-status-details-bin");
    nghttp2_nv *nv = pw__nva_finish(&b);
    call->headers_sent = 1;
    if (nv == NULL) {
        pw__nva_free(&b);
        return;
    }
    if (call->sc->http1) {
        pw__http1_respond(call, nv, b.n);
    } else {
        nghttp2_data_provider prd = {.source.ptr = call, .read_callback = pw__call_data_read};
        nghttp2_submit_response(call->sc->session, call->stream_id, nv, b.n, &prd);
        pw__sconn_schedule(call->sc);
    }
    pw__nva_free(&b);
}
