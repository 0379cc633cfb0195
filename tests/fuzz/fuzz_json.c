/*
 * libFuzzer target: the proto3 JSON decoder (pw_json_decode) on a message
 * type with every field shape (pwtest.json.v1.All). Whatever decodes must
 * encode, and the encoding must decode and encode again to the same text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/json.h>
#include <protobuf-c/protobuf-c.h>
#include "pwtest/json/v1/all.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pw_buf encode_or_die(const ProtobufCMessage *m)
{
    pw_buf out = {0};
    char err[256];
    pw_status rv = pw_json_encode(m, NULL, &out, err, sizeof(err));
    /* Only values JSON cannot carry may fail (e.g. a Timestamp made from an out-of-range offset).
     */
    if (rv != PW_OK && rv != PW_INVALID_ARGUMENT) {
        abort();
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *type = &pwtest__json__v1__all__descriptor;
    ProtobufCMessage *m = NULL;
    char err[256];
    pw_json_options o = {.ignore_unknown = (size & 1) != 0};
    if (pw_json_decode(type, (const char *)data, size, &o, &m, err, sizeof(err)) != PW_OK) {
        if (m != NULL || err[0] == '\0') {
            abort(); /* a failure always explains itself and leaves nothing behind */
        }
        return 0;
    }
    pw_buf first = encode_or_die(m);
    pw_protobuf_free(m);
    if (first.len == 0) {
        pw_buf_reset(&first);
        return 0;
    }
    ProtobufCMessage *again = NULL;
    if (pw_json_decode(type, (const char *)first.data, first.len, NULL, &again, err, sizeof(err)) !=
        PW_OK) {
        fprintf(stderr, "fuzz_json: our output does not read back (%s): %.*s\n", err,
                (int)first.len, (const char *)first.data);
        abort();
    }
    pw_buf second = encode_or_die(again);
    pw_protobuf_free(again);
    if (second.len != first.len || memcmp(second.data, first.data, first.len) != 0) {
        fprintf(stderr, "fuzz_json: round trip changed the text: %.*s  =>  %.*s\n", (int)first.len,
                (const char *)first.data, (int)second.len, (const char *)second.data);
        abort();
    }
    pw_buf_reset(&first);
    pw_buf_reset(&second);
    return 0;
}
