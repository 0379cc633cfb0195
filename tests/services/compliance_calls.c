/* compliance_calls.c: calls to a compliance-server in the tests (compliance_calls.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <paywire/alloc.h>
#include <paywire/db.h>
#include "pw_test_db.h"
#include "compliance_calls.h"

reply compliance_call(pw_channel *ch, const char *path, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_type, const char *token)
{
    pw_metadata md = {0};
    if (token != NULL) {
        assert_int_equal(pw_metadata_add_str(&md, "paywire-reviewer-token", token), PW_OK);
    }
    pw_call_options o = {.timeout_ms = 30000, .metadata = &md};
    reply r = {0};
    char *msg = NULL;
    pw_metadata trailers = {0};
    r.code = pw_client_unary_blocking(ch, path, &o, req, resp_type, &r.msg, &msg, &trailers);
    snprintf(r.message, sizeof(r.message), "%s", msg ? msg : "");
    pw_free(msg);
    pw_error_details_read(&trailers, &r.details);
    pw_metadata_clear(&trailers);
    pw_metadata_clear(&md);
    return r;
}

void compliance_db_prepare(const char *prefix, char *url, size_t cap)
{
    pw_test_db_exec(pw_test_db_admin_url(),
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                    "'compliance_app') THEN CREATE ROLE compliance_app LOGIN; END IF; END $$");
    pw_test_db_create(prefix, url, cap);
    char err[512];
    if (pw_db_migrate(url, PW_SOURCE_DIR "/services/compliance/migrations",
                      "paywire.migrate.compliance", NULL, err, sizeof(err)) != PW_OK) {
        fail_msg("migrations: %s", err);
    }
}

void reply_free(reply *r)
{
    pw_protobuf_free(r->msg);
    pw_error_details_clear(&r->details);
    r->msg = NULL;
}

int has_violation(const reply *r, const char *field)
{
    for (size_t i = 0; i < r->details.violation_count; i++) {
        if (strcmp(r->details.violations[i].field, field) == 0) {
            return 1;
        }
    }
    return 0;
}
