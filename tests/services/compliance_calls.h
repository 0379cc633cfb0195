#ifndef PAYWIRE_TESTS_COMPLIANCE_CALLS_H
#define PAYWIRE_TESTS_COMPLIANCE_CALLS_H

/*
 * Calls to a compliance-server in the end-to-end tests (compliance_test.c,
 * compliance_monitoring_test.c): one blocking unary call with its status,
 * message and error details, optionally as a reviewer (the
 * paywire-reviewer-token metadata).
 */
#include <protobuf-c/protobuf-c.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>

typedef struct reply {
    pw_status code;
    char message[512];
    pw_error_details details;
    ProtobufCMessage *msg;
} reply;

/** One unary call on ch: path "/pkg.Service/Method", with the reviewer token (may be NULL). */
reply compliance_call(pw_channel *ch, const char *path, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_type, const char *token);
/**
 * A fresh database for a compliance-server of this test (prefix: its name), with the service's
 * role (so the migrations' grants are those of the stack) and the migrations applied; its URL
 * into url.
 */
void compliance_db_prepare(const char *prefix, char *url, size_t cap);
/** Frees what the reply holds. */
void reply_free(reply *r);
/** 1 when the reply has a BadRequest violation for field. */
int has_violation(const reply *r, const char *field);

#endif
