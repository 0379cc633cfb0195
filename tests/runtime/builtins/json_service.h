#ifndef PAYWIRE_TEST_JSON_SERVICE_H
#define PAYWIRE_TEST_JSON_SERVICE_H

/*
 * pwtest.Json: a test service on pwtest.json.v1.All, shared by the JSON over
 * HTTP tests and the whole-server fuzz target.
 *   Echo    unary: replies with the request; an "x-reply" header comes back
 *           as initial metadata, with trailer "x-after: done"
 *   Lookup  like Echo, marked idempotency_level = NO_SIDE_EFFECTS (Connect GET)
 *   Reject  unary: FAILED_PRECONDITION with ErrorInfo and a field violation
 *   Never   unary: answers only when cancelled (deadline, reset, lost peer)
 *   Silent  unary: OK without a message
 *   Stream  server streaming, Bidi bidi streaming: like Never
 */
#include <stdatomic.h>
#include <paywire/paywire.h>

/**
 * Adds the methods to server. cancels (may be NULL) counts calls that ended
 * by cancellation; it must outlive the server. Returns pw_server_add_method's
 * first failure, else PW_OK.
 */
pw_status pw_test_json_service_add(pw_server *server, atomic_int *cancels);

#endif
