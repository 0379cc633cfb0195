/*
 * libFuzzer target: the gRPC message deframer. The first two bytes choose the
 * chunk size and the message limit; the rest is fed in chunks, as DATA
 * frames would deliver it. Every delivered message must lie inside the limit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "grpc/deframer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pw_status check(void *ud, int compressed, pw_slice msg)
{
    const pw__deframer *d = ud;
    if (msg.len > d->max_len || compressed < 0 || compressed > 1) {
        abort();
    }
    /* Touch every byte so ASan sees reads past the buffer. */
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < msg.len; i++) {
        sum ^= msg.base[i];
    }
    (void)sum;
    return PW_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t chunk = (size_t)data[0] + 1;
    uint32_t max_len = (uint32_t)data[1] * 64;
    data += 2;
    size -= 2;
    pw__deframer d;
    pw__deframer_init(&d, max_len);
    while (size > 0) {
        size_t n = size < chunk ? size : chunk;
        if (pw__deframer_feed(&d, data, n, check, &d) != PW_OK) {
            break;
        }
        data += n;
        size -= n;
    }
    (void)pw__deframer_pending(&d);
    pw__deframer_free(&d);
    return 0;
}
