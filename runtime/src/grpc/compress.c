/*
 * compress.c: gzip for gRPC messages (PROTOCOL-HTTP2 "Compressed-Flag",
 * grpc-encoding). Inflation streams into a buffer and stops at the receive
 * limit, so a small compressed message cannot expand past it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include "grpc/compress.h"

int pw__encoding_parse(const char *name)
{
    if (name == NULL || strcmp(name, "identity") == 0) {
        return PW_COMPRESSION_NONE;
    }
    if (strcmp(name, "gzip") == 0) {
        return PW_COMPRESSION_GZIP;
    }
    return -1;
}

int pw__accept_has_gzip(const char *list, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == ',')) {
            i++;
        }
        size_t start = i;
        while (i < len && list[i] != ',' && list[i] != ' ') {
            i++;
        }
        if (i - start == 4 && strncasecmp(list + start, "gzip", 4) == 0) {
            return 1;
        }
    }
    return 0;
}

pw_status pw__gzip_inflate(pw_slice in, uint32_t max_out, pw_buf *out, char *err, size_t err_size)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    /* 15 + 16: a gzip wrapper, not zlib or raw deflate. */
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        snprintf(err, err_size, "cannot start gzip decoder");
        return PW_INTERNAL;
    }
    z.next_in = (Bytef *)(uintptr_t)in.base;
    z.avail_in = (uInt)in.len;
    size_t start = out->len;
    pw_status rv = PW_OK;
    for (;;) {
        size_t produced = out->len - start;
        if (produced >= (size_t)max_out + 1) {
            snprintf(err, err_size, "decompressed message exceeds the limit of %u bytes", max_out);
            rv = PW_RESOURCE_EXHAUSTED;
            break;
        }
        size_t room = (size_t)max_out + 1 - produced;
        size_t chunk = room < 65536 ? room : 65536;
        if (pw_buf_reserve(out, chunk) != PW_OK) {
            snprintf(err, err_size, "out of memory decompressing");
            rv = PW_RESOURCE_EXHAUSTED;
            break;
        }
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)chunk;
        int zr = inflate(&z, Z_NO_FLUSH);
        out->len += chunk - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (out->len - start > max_out) {
                snprintf(err, err_size, "decompressed message exceeds the limit of %u bytes",
                         max_out);
                rv = PW_RESOURCE_EXHAUSTED;
            }
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            snprintf(err, err_size, "corrupt gzip message: %s", z.msg ? z.msg : "inflate failed");
            rv = PW_INTERNAL;
            break;
        }
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            snprintf(err, err_size, "truncated gzip message");
            rv = PW_INTERNAL;
            break;
        }
    }
    inflateEnd(&z);
    if (rv != PW_OK) {
        out->len = start;
    }
    return rv;
}

pw_status pw__gzip_deflate(pw_slice in, pw_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        return PW_INTERNAL;
    }
    size_t bound = deflateBound(&z, (uLong)in.len);
    if (pw_buf_reserve(out, bound) != PW_OK) {
        deflateEnd(&z);
        return PW_ERRNO(ENOMEM);
    }
    z.next_in = (Bytef *)(uintptr_t)in.base;
    z.avail_in = (uInt)in.len;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt)bound;
    int zr = deflate(&z, Z_FINISH);
    out->len += bound - z.avail_out;
    deflateEnd(&z);
    return zr == Z_STREAM_END ? PW_OK : PW_INTERNAL;
}
