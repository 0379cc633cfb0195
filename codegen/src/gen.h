#ifndef PAYWIRE_CODEGEN_GEN_H
#define PAYWIRE_CODEGEN_GEN_H

/* Generation of NAME.pw.h / NAME.pw.c for one .proto file. */
#include <paywire/buf.h>
#include "google/protobuf/compiler/plugin.pb-c.h"

#define PWG_VERSION "0.1.0"

/**
 * Appends the header and source for file to h and c. Returns 0, or -1 with
 * *err set (pw_malloc'ed, naming the file, service and method) when the file
 * cannot be served.
 */
int pwg_generate(const Google__Protobuf__FileDescriptorProto *file, pw_buf *h, pw_buf *c,
                 char **err);

/** Runs the whole plugin request; returns the response to pack (free with pwg_response_free). */
Google__Protobuf__Compiler__CodeGeneratorResponse *
pwg_run(const Google__Protobuf__Compiler__CodeGeneratorRequest *req);
void pwg_response_free(Google__Protobuf__Compiler__CodeGeneratorResponse *resp);

#endif
