/* access_log.c: one structured log line per call, as a server interceptor. */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/builtins.h>
#include <paywire/log.h>
#include <paywire/trace.h>

static void copy_value(const pw_metadata *md, const char *key, char *out, size_t n)
{
    const pw_metadata_entry *e = pw_metadata_get(md, key);
    size_t len = e != NULL ? (e->value_len < n - 1 ? e->value_len : n - 1) : 0;
    if (len > 0) {
        memcpy(out, e->value, len);
    }
    out[len] = '\0';
}

/* traceparent: version-traceid-parentid-flags; the trace id is the second field. */
static void trace_id(const pw_metadata *md, char *out, size_t n)
{
    char tp[128];
    copy_value(md, "traceparent", tp, sizeof(tp));
    const char *dash = strchr(tp, '-');
    out[0] = '\0';
    if (dash != NULL && strlen(dash + 1) >= 32) {
        snprintf(out, n, "%.32s", dash + 1);
    }
}

static void access_end(pw_call *call, const pw_call_stats *st, void *ud)
{
    const char *service = ud;
    const pw_metadata *md = pw_call_metadata(call);
    char request_id[128], trace[40], duration[32], in[24], out[24];
    copy_value(md, "x-request-id", request_id, sizeof(request_id));
    /* The tracer's id when one observes the call (it may have started the trace). */
    const char *tid = pw_trace_id(call);
    if (tid != NULL) {
        snprintf(trace, sizeof(trace), "%s", tid);
    } else {
        trace_id(md, trace, sizeof(trace));
    }
    snprintf(duration, sizeof(duration), "%.3f", (double)st->duration_ns / 1e6);
    snprintf(in, sizeof(in), "%llu", (unsigned long long)st->bytes_in);
    snprintf(out, sizeof(out), "%llu", (unsigned long long)st->bytes_out);
    const pw_log_field fields[] = {
        {"service", service},
        {"method", pw_call_method(call)},
        {"peer", pw_call_peer(call)->address},
        {"code", pw_status_str(st->code)},
        {"duration_ms", duration},
        {"request_id", request_id},
        {"trace_id", trace},
        {"bytes_in", in},
        {"bytes_out", out},
    };
    int bad = st->code == PW_INTERNAL || st->code == PW_UNKNOWN || st->code == PW_DATA_LOSS;
    pw_log_fields(bad ? PW_LOG_ERR : PW_LOG_INFO, "access", fields,
                  sizeof(fields) / sizeof(fields[0]), "%s %s", pw_call_method(call),
                  pw_status_str(st->code));
}

static void access_hook(pw_server *server, pw_server_event event, void *ud)
{
    (void)server;
    if (event == PW_SERVER_CLOSED) {
        pw_free(ud);
    }
}

pw_status pw_access_log_enable(pw_server *server, const char *service)
{
    char *name = pw_strdup(service ? service : "");
    if (name == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    /* The hook that frees name goes first, so a failed interceptor leaves nothing dangling. */
    pw_status rv = pw_server_add_hook(server, access_hook, name);
    if (rv != PW_OK) {
        pw_free(name);
        return rv;
    }
    pw_interceptor ic = {NULL, access_end, name};
    return pw_server_add_interceptor(server, &ic);
}
