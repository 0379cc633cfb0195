#ifndef PAYWIRE_INTEROP_COMMON_H
#define PAYWIRE_INTEROP_COMMON_H

/* Shared by the interop server and client: flags in gRPC's --name=value form. */
#include <paywire/paywire.h>
#include "src/proto/grpc/testing/empty.pb-c.h"
#include "src/proto/grpc/testing/messages.pb-c.h"
#include "src/proto/grpc/testing/test.pb-c.h"

/** The value of --name=value (or "--name" alone: "true"), or def. */
const char *pw_interop_flag(int argc, char **argv, const char *name, const char *def);
/** 1 when the flag's value is "true" or "1". */
int pw_interop_flag_bool(int argc, char **argv, const char *name);

/** Fills p with size zero bytes (allocated with pw_calloc; free p->body.data with pw_free). */
pw_status pw_interop_payload(Grpc__Testing__Payload *p, size_t size);

#endif
