/*
 * protoc-gen-paywire: reads a CodeGeneratorRequest on stdin, writes a
 * CodeGeneratorResponse on stdout. Problems are reported in the response's
 * error field (protoc prints it), never by crashing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <paywire/alloc.h>
#include <paywire/buf.h>
#include "gen.h"

static int write_response(const Google__Protobuf__Compiler__CodeGeneratorResponse *r)
{
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *out = malloc(len ? len : 1);
    if (out == NULL) {
        return 1;
    }
    protobuf_c_message_pack(&r->base, out);
    int ok = fwrite(out, 1, len, stdout) == len && fflush(stdout) == 0;
    free(out);
    return ok ? 0 : 1;
}

int main(void)
{
    pw_buf in = {0};
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (pw_buf_append(&in, chunk, n) != PW_OK) {
            fprintf(stderr, "protoc-gen-paywire: out of memory reading the request\n");
            return 1;
        }
    }
    Google__Protobuf__Compiler__CodeGeneratorRequest *req =
        google__protobuf__compiler__code_generator_request__unpack(pw_protobuf_allocator(), in.len,
                                                                   in.data);
    pw_buf_reset(&in);
    if (req == NULL) {
        Google__Protobuf__Compiler__CodeGeneratorResponse r =
            GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
        r.error = (char *)"protoc-gen-paywire: stdin is not a valid CodeGeneratorRequest "
                          "(run the plugin through protoc)";
        return write_response(&r);
    }
    Google__Protobuf__Compiler__CodeGeneratorResponse *resp = pwg_run(req);
    int rv = write_response(resp);
    pwg_response_free(resp);
    google__protobuf__compiler__code_generator_request__free_unpacked(req, pw_protobuf_allocator());
    return rv;
}
