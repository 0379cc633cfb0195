/*
 * status.c: names and wire mapping of pw_status. Positive values are gRPC codes
 * and go on the wire as they are; negative values are -errno or libuv results and
 * are mapped to a gRPC code at the RPC boundary.
 */
#include <errno.h>
#include <stdint.h>
#include <uv.h>
#include <paywire/status.h>

const char *pw_status_str(pw_status rv)
{
    switch (rv) {
#define PW_STATUS_NAME(name, code) \
    case code:                     \
        return #name;
        PW_STATUS_MAP(PW_STATUS_NAME)
#undef PW_STATUS_NAME
    default:
        break;
    }
    if (rv < 0) {
        /* libuv codes are -errno on Unix, plus its own UV_EOF / UV_EAI_* values. */
        return uv_strerror(rv);
    }
    return "UNKNOWN";
}

pw_status pw_status_to_wire(pw_status rv)
{
    if (rv >= 0) {
        return rv <= PW_STATUS_MAX ? rv : PW_UNKNOWN;
    }
    switch (-rv) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENOTCONN:
    case EPIPE:
    case ENOENT:
        return PW_UNAVAILABLE;
    case ETIMEDOUT:
        return PW_DEADLINE_EXCEEDED;
    case ENOMEM:
    case ENOBUFS:
        return PW_RESOURCE_EXHAUSTED;
    case ECANCELED:
        return PW_CANCELLED;
    default:
        break;
    }
    if (rv == UV_EOF) {
        return PW_UNAVAILABLE;
    }
    return PW_INTERNAL;
}

pw_status pw_status_parse(const char *text, size_t len, pw_status *out)
{
    if (len == 0 || len > 10) {
        return PW_INVALID_ARGUMENT;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return PW_INVALID_ARGUMENT;
        }
        v = v * 10 + (text[i] - '0');
    }
    if (v > INT32_MAX) {
        return PW_INVALID_ARGUMENT;
    }
    *out = (pw_status)v;
    return PW_OK;
}
