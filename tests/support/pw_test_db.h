#ifndef PAYWIRE_TEST_DB_H
#define PAYWIRE_TEST_DB_H

/*
 * Test databases on the local PostgreSQL cluster (scripts/pg; ctest starts it
 * through the `pg` fixture). Each test binary gets its own fresh database, so
 * binaries run in parallel.
 */
#include <stddef.h>

/** The cluster's admin URL: $PW_TEST_PG_URL, else scripts/pg's default (127.0.0.1:15432). */
const char *pw_test_db_admin_url(void);

/**
 * Creates database <prefix>_<pid> (dropped at exit) and writes its URL into
 * out. Fails the test when the cluster is not reachable.
 */
void pw_test_db_create(const char *prefix, char *out, size_t cap);

/** Runs SQL on the database at url (blocking; test set-up and checks only). Fails on error. */
void pw_test_db_exec(const char *url, const char *sql);

/** The first column of the first row of sql's result as an integer (-1 when no row). */
long long pw_test_db_scalar(const char *url, const char *sql);

/** The first column of the first row of sql's result copied into out ("" when no row). */
void pw_test_db_text(const char *url, const char *sql, char *out, size_t cap);

/**
 * Polls pw_test_db_scalar every 20 ms until it returns want or timeout_ms has
 * passed; returns the last value (for work a service finishes after it answers).
 */
long long pw_test_db_wait_scalar(const char *url, const char *sql, long long want, int timeout_ms);

/** Restarts the cluster (scripts/pg restart), blocking until it accepts connections. */
void pw_test_db_restart(void);

#endif
