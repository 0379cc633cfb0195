#ifndef PAYWIRE_TEST_KINDS_SERVICE_H
#define PAYWIRE_TEST_KINDS_SERVICE_H

/*
 * pwtest.v1.Kinds served through its generated handler table, shared by the
 * codegen round trip and the allocator test:
 *   Append        unary: the ledger (state OPEN) holding the request entry
 *   Replay        server streaming: n entries of 100, 200, ... USD
 *   Tally         client streaming: Count{n = entries * 1000000 + sum of units}
 *   Mirror        bidi: echoes each entry; OK at the client's half-close
 *   New, Delete   unary: Empty
 */
#include "pwtest/v1/kinds.pw.h"

/** The handlers; user_data is unused. */
extern const pwtest_v1_kinds_handlers pw_test_kinds_handlers;

/** Mirror calls that ended by on_cancel (an undecodable request, a reset...). */
extern int pw_test_kinds_mirror_cancels;

#endif
