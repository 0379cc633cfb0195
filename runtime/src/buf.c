/*
 * buf.c: growable byte buffer with a read offset. Writers append at len, readers
 * consume from off; storage is compacted lazily so appends stay amortised O(1).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/buf.h>

pw_status pw_buf_reserve(pw_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) {
        return PW_OK;
    }
    /* Reclaim consumed space first when it is enough. */
    if (b->off > 0 && b->cap - (b->len - b->off) >= extra) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        return PW_OK;
    }
    size_t need = b->len + extra;
    if (need < extra) {
        return PW_ERRNO(ENOMEM);
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = pw_realloc(b->data, cap);
    if (p == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    b->data = p;
    b->cap = cap;
    return PW_OK;
}

pw_status pw_buf_append(pw_buf *b, const void *data, size_t len)
{
    if (len == 0) {
        return PW_OK;
    }
    pw_status rv = pw_buf_reserve(b, len);
    if (rv != PW_OK) {
        return rv;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return PW_OK;
}

void pw_buf_consume(pw_buf *b, size_t n)
{
    size_t pending = b->len - b->off;
    b->off += n < pending ? n : pending;
    if (b->off == b->len) {
        b->off = 0;
        b->len = 0;
    }
}

void pw_buf_reset(pw_buf *b)
{
    pw_free(b->data);
    *b = (pw_buf){0};
}

pw_status pw_buf_printf(pw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return PW_INTERNAL;
    }
    pw_status rv = pw_buf_reserve(b, (size_t)n + 1);
    if (rv != PW_OK) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PW_OK;
}
