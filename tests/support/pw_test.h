#ifndef PAYWIRE_TEST_H
#define PAYWIRE_TEST_H

/* Shared helpers for paywire's cmocka tests. Include after cmocka's prerequisites. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <uv.h>

/**
 * Runs loop until it has no active handles (bounded by max_ms of wall time as a
 * guard), then closes it and asserts uv_loop_close() returns 0, so a leaked
 * handle fails the test.
 */
void pw_test_loop_finish(uv_loop_t *loop, uint64_t max_ms);

/** Runs loop until *flag becomes non-zero or max_ms pass; asserts the flag was set. */
void pw_test_run_until(uv_loop_t *loop, const int *flag, uint64_t max_ms);

/** Absolute path of a test data file under tests/ (static buffer). */
const char *pw_test_path(const char *rel);

#endif
