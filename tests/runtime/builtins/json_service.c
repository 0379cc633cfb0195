/* json_service.c: the pwtest.Json test service (see json_service.h). */
#include <paywire/errors.h>
#include "json_service.h"
#include "pwtest/json/v1/all.pb-c.h"

static void echo(pw_call *call, void *ud)
{
    (void)ud;
    const pw_metadata_entry *e = pw_metadata_get(pw_call_metadata(call), "x-reply");
    if (e != NULL) {
        pw_call_add_initial_metadata(call, "x-reply", e->value, e->value_len);
        pw_call_add_trailing_metadata(call, "x-after", "done", 4);
    }
    pw_call_reply(call, pw_call_request(call));
}

static void reject(pw_call *call, void *ud)
{
    (void)ud;
    pw_error_details d = {0};
    pw_error_set_info(&d, "MERCHANT_SUSPENDED", "merchant.paywire");
    pw_error_add_violation(&d, "merchant.country", "must be ISO 3166-1 alpha-2");
    pw_call_finish_details(call, PW_FAILED_PRECONDITION, &d, "merchant \"mer_1\" is suspended");
    pw_error_details_clear(&d);
}

static void never_on_cancel(pw_call *call, pw_status why, void *ud)
{
    if (ud != NULL) {
        atomic_fetch_add((atomic_int *)ud, 1);
    }
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops never_ops = {.on_cancel = never_on_cancel};

static void never(pw_call *call, void *ud)
{
    pw_call_set_ops(call, &never_ops, ud);
}

static void silent(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_finish(call, PW_OK, NULL); /* OK without a message */
}

pw_status pw_test_json_service_add(pw_server *server, atomic_int *cancels)
{
    static const struct {
        const char *path;
        pw_method_kind kind;
        pw_handler_cb handler;
        pw_idempotency idempotency;
    } table[] = {
        {"/pwtest.Json/Echo", PW_METHOD_UNARY, echo, PW_IDEMPOTENCY_UNKNOWN},
        {"/pwtest.Json/Lookup", PW_METHOD_UNARY, echo, PW_IDEMPOTENCY_NO_SIDE_EFFECTS},
        {"/pwtest.Json/Reject", PW_METHOD_UNARY, reject, PW_IDEMPOTENCY_UNKNOWN},
        {"/pwtest.Json/Never", PW_METHOD_UNARY, never, PW_IDEMPOTENCY_UNKNOWN},
        {"/pwtest.Json/Silent", PW_METHOD_UNARY, silent, PW_IDEMPOTENCY_UNKNOWN},
        {"/pwtest.Json/Stream", PW_METHOD_SERVER_STREAMING, never, PW_IDEMPOTENCY_UNKNOWN},
        {"/pwtest.Json/Bidi", PW_METHOD_BIDI_STREAMING, never, PW_IDEMPOTENCY_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        pw_method m = {.path = table[i].path,
                       .kind = table[i].kind,
                       .request_type = &pwtest__json__v1__all__descriptor,
                       .response_type = &pwtest__json__v1__all__descriptor,
                       .handler = table[i].handler,
                       .user_data = cancels,
                       .idempotency_level = table[i].idempotency};
        pw_status rv = pw_server_add_method(server, &m);
        if (rv != PW_OK) {
            return rv;
        }
    }
    return PW_OK;
}
