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
