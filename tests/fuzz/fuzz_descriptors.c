/*
 * libFuzzer target: pwctl's run-time descriptors (clients/pwctl/dyn.c) built
 * from a FileDescriptorSet, as a reflection answer from any server would give
 * them. Whatever builds must be a layout protobuf-c and the JSON mapping can
 * use: each method's types unpack the input, encode as JSON, decode again and
 * pack, under ASan.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/json.h>
#include <protobuf-c/protobuf-c.h>
#include "dyn.h"
#include "google/protobuf/descriptor.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const ProtobufCMessageDescriptor *type, const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(type, pw_protobuf_allocator(), size, data);
    if (m == NULL) {
        return;
    }
    pw_buf json = {0};
    char err[256];
    if (pw_json_encode(m, NULL, &json, err, sizeof(err)) == PW_OK) {
        ProtobufCMessage *again = NULL;
        if (pw_json_decode(type, (const char *)json.data, json.len, NULL, &again, err,
                           sizeof(err)) == PW_OK) {
            size_t n = protobuf_c_message_get_packed_size(again);
            uint8_t *out = malloc(n ? n : 1);
            if (out == NULL || protobuf_c_message_pack(again, out) != n) {
                fprintf(stderr, "fuzz_descriptors: %s packs short\n", type->name);
                abort();
            }
            free(out);
            pw_protobuf_free(again);
        }
    }
    pw_buf_reset(&json);
    pw_protobuf_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Google__Protobuf__FileDescriptorSet *set =
        google__protobuf__file_descriptor_set__unpack(pw_protobuf_allocator(), size, data);
    if (set == NULL) {
        return 0;
    }
    dyn_pool *pool = dyn_new();
    for (size_t i = 0; i < set->n_file; i++) {
        size_t n = google__protobuf__file_descriptor_proto__get_packed_size(set->file[i]);
        uint8_t *buf = malloc(n ? n : 1);
        google__protobuf__file_descriptor_proto__pack(set->file[i], buf);
        (void)dyn_add_file(pool, buf, n);
        free(buf);
    }
    char err[256];
    if (dyn_build(pool, err, sizeof(err)) == PW_OK) {
        const dyn_method *m;
        for (size_t i = 0; (m = dyn_method_at(pool, i)) != NULL; i++) {
            exercise(m->input, data, size);
            exercise(m->output, data, size);
        }
    }
    dyn_free(pool);
    google__protobuf__file_descriptor_set__free_unpacked(set, pw_protobuf_allocator());
    return 0;
}
