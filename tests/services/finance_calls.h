#ifndef PAYWIRE_TESTS_FINANCE_CALLS_H
#define PAYWIRE_TESTS_FINANCE_CALLS_H

/* Calls to finance-server that its end-to-end tests share (cmocka asserts on failure). */
#include <stdint.h>
#include <paywire/paywire.h>

/** The lines of TEST batch batch_id's StreamSettlementReport through ch: their sum; *n, how
 * many. */
int64_t finance_report_sum(pw_channel *ch, const char *batch_id, int *n);

#endif
