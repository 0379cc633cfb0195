#ifndef PAYWIRE_GRPC_DEFRAMER_H
#define PAYWIRE_GRPC_DEFRAMER_H

/*
 * The gRPC message deframer: turns DATA bytes into length-prefixed messages
 * (1 byte compressed flag, 4 bytes big-endian length, payload).
 */
#include <stdint.h>
#include <paywire/buf.h>
#include <paywire/status.h>

/**
 * Receives one message. compressed is the flag bit. Return PW_OK to go on, any
 * other status to stop feeding (it is returned from pw__deframer_feed).
 */
typedef pw_status (*pw__deframer_msg_cb)(void *user_data, int compressed, pw_slice msg);

typedef struct pw__deframer {
    pw_buf buf;
    uint32_t max_len;
    /** Set when feed fails: a human-readable reason (static or in err_text). */
    char err_text[128];
} pw__deframer;

void pw__deframer_init(pw__deframer *d, uint32_t max_len);
/**
 * Feeds bytes; calls cb for each complete message, without copying when a
 * message lies whole inside data. Returns PW_OK; PW_RESOURCE_EXHAUSTED when a
 * length prefix exceeds max_len; PW_INTERNAL for a flag byte other than 0 or 1;
 * PW_ERRNO(ENOMEM); or the status cb returned. After an error the deframer
 * must not be fed again. err_text says what went wrong.
 */
pw_status pw__deframer_feed(pw__deframer *d, const uint8_t *data, size_t len,
                            pw__deframer_msg_cb cb, void *user_data);
/** Bytes of an unfinished message held (non-zero at end of stream = truncated). */
size_t pw__deframer_pending(const pw__deframer *d);
void pw__deframer_free(pw__deframer *d);

#endif
