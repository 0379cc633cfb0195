#ifndef PAYWIRE_DB_H
#define PAYWIRE_DB_H

/*
 * Async PostgreSQL on the loop (library paywire_db, over libpq): a pool of
 * non-blocking connections per loop, statements prepared lazily per
 * connection, parameters always bound (never formatted into SQL), the RPC's
 * deadline and cancellation reaching the server, transactions with retry on
 * serialization failure and deadlock, and SQLSTATEs mapped to gRPC statuses.
 * Design: docs/design/data-layer.md.
 *
 * Threading: a pool and everything it hands out belong to one loop's thread.
 */
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <paywire/call.h>
#include <paywire/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_db_pool pw_db_pool;
typedef struct pw_db_result pw_db_result;
typedef struct pw_db_tx pw_db_tx;

/** PostgreSQL types we bind and read. */
typedef enum pw_db_type {
    PW_DB_INT8 = 0,
    PW_DB_INT4,
    PW_DB_BOOL,
    PW_DB_TEXT,
    PW_DB_BYTEA,
    /** Microseconds since the Unix epoch. */
    PW_DB_TIMESTAMPTZ,
    /** 16 bytes. */
    PW_DB_UUID,
    /** Decimal text ("12.50"): never a float. */
    PW_DB_NUMERIC,
    PW_DB_JSONB,
} pw_db_type;

/** One bound parameter: build with the pw_db_* helpers below. Values are borrowed. */
typedef struct pw_db_param {
    pw_db_type type;
    int is_null;
    int64_t i64;
    const void *ptr;
    size_t len;
} pw_db_param;

static inline pw_db_param pw_db_int8(int64_t v)
{
    pw_db_param p = {PW_DB_INT8, 0, v, NULL, 0};
    return p;
}
static inline pw_db_param pw_db_int4(int32_t v)
{
    pw_db_param p = {PW_DB_INT4, 0, v, NULL, 0};
    return p;
}
static inline pw_db_param pw_db_bool(int v)
{
    pw_db_param p = {PW_DB_BOOL, 0, v != 0, NULL, 0};
    return p;
}
/** NUL-terminated text (NULL: SQL NULL). */
static inline pw_db_param pw_db_text(const char *s)
{
    pw_db_param p = {PW_DB_TEXT, s == NULL, 0, s, 0};
    return p;
}
static inline pw_db_param pw_db_bytea(const void *data, size_t len)
{
    pw_db_param p = {PW_DB_BYTEA, 0, 0, data, len};
    return p;
}
static inline pw_db_param pw_db_timestamptz(int64_t unix_us)
{
    pw_db_param p = {PW_DB_TIMESTAMPTZ, 0, unix_us, NULL, 0};
    return p;
}
static inline pw_db_param pw_db_uuid(const uint8_t uuid[16])
{
    pw_db_param p = {PW_DB_UUID, 0, 0, uuid, 16};
    return p;
}
static inline pw_db_param pw_db_jsonb(const char *json)
{
    pw_db_param p = {PW_DB_JSONB, json == NULL, 0, json, 0};
    return p;
}
static inline pw_db_param pw_db_null(pw_db_type type)
{
    pw_db_param p = {type, 1, 0, NULL, 0};
    return p;
}

/**
 * A statement, declared once in static storage and prepared lazily on each
 * connection the first time that connection runs it:
 *   static const pw_db_stmt get_merchant = {
 *       "merchant_get", "SELECT id, name FROM merchants WHERE id = $1", 1, {PW_DB_TEXT}};
 * name must be unique in the process. Results come back in binary: read
 * numeric columns as text by casting in SQL (amount::text).
 */
#define PW_DB_MAX_PARAMS 32
typedef struct pw_db_stmt {
    const char *name;
    const char *sql;
    int nparams;
    pw_db_type types[PW_DB_MAX_PARAMS];
} pw_db_stmt;

typedef struct pw_db_options {
    /** libpq connection string or URI (required). */
    const char *conninfo;
    /** Connections in this loop's pool (default 8). */
    unsigned max_connections;
    /** Connecting (TCP, TLS, auth) may take this long (default 5000 ms). */
    uint32_t connect_timeout_ms;
    /** Server-side backstop for queries without a deadline (default 30000 ms; 0 keeps the
     * server's). */
    uint32_t statement_timeout_ms;
    /** Reconnect backoff: first delay and cap (defaults 100 and 5000 ms), with jitter. */
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    /**
     * Queries sent on one connection before earlier ones finished (pipeline
     * mode; default 1). With more than 1, a query cancelled for its deadline
     * can take the queries pipelined behind it along (they fail with
     * UNAVAILABLE, safe to retry).
     */
    unsigned pipeline_depth;
    /** Told when the pool turns unavailable (0) or available again (1); may be NULL. */
    void (*on_available)(pw_db_pool *pool, int available, void *user_data);
    void *user_data;
} pw_db_options;

/** A query's outcome; valid only during the callback (the runtime frees it after). */
typedef void (*pw_db_result_cb)(pw_db_result *r, void *user_data);

/**
 * A pool on loop (o is copied, conninfo too). Connections open on demand.
 * Returns PW_OK with *out set; PW_INVALID_ARGUMENT (no conninfo) or
 * PW_ERRNO(ENOMEM), with *out set to NULL. Close it with pw_db_pool_close().
 */
PW_EXTERN pw_status pw_db_pool_new(pw_db_pool **out, uv_loop_t *loop, const pw_db_options *o);

typedef void (*pw_db_pool_close_cb)(pw_db_pool *pool, void *user_data);
/**
 * Closes every connection; queued and running queries complete with
 * PW_UNAVAILABLE ("pool closed"). cb (may be NULL) runs exactly once, on a
 * later loop turn, when every connection and timer is closed; the pool is
 * freed after it returns. Only the first call counts; NULL is a no-op.
 */
PW_EXTERN void pw_db_pool_close(pw_db_pool *pool, pw_db_pool_close_cb cb, void *user_data);
/** 1 while the pool can reach the database (or has not tried yet), 0 after connecting failed. */
PW_EXTERN int pw_db_pool_available(const pw_db_pool *pool);
/** Open connections, and those running a query now. */
PW_EXTERN void pw_db_pool_stats(const pw_db_pool *pool, unsigned *open, unsigned *busy);

/**
 * Runs stmt with params (n must equal stmt->nparams; values are copied before
 * return). call (may be NULL) bounds the wait and the query by its deadline
 * and cancels the query on the server when the call is cancelled. cb runs
 * exactly once, later, with the result. Returns PW_OK, or
 * PW_INVALID_ARGUMENT / PW_ERRNO(ENOMEM) (then cb never runs).
 */
PW_EXTERN pw_status pw_db_query(pw_db_pool *pool, pw_call *call, const pw_db_stmt *stmt,
                                const pw_db_param *params, int n, pw_db_result_cb cb,
                                void *user_data);

/* ---- results ---- */

/**
 * PW_OK, or the gRPC status the failure maps to (see docs/design/data-layer.md):
 * PW_ALREADY_EXISTS (23505), PW_FAILED_PRECONDITION (23503),
 * PW_INVALID_ARGUMENT (23502, 23514, class 22), PW_ABORTED (40001, 40P01),
 * PW_DEADLINE_EXCEEDED or PW_CANCELLED (57014, the call's deadline or
 * cancellation), PW_UNAVAILABLE (class 08, 57P01-03, 25006, a lost
 * connection, a closed pool), PW_RESOURCE_EXHAUSTED (class 53), PW_INTERNAL
 * (anything else).
 */
PW_EXTERN pw_status pw_db_status(const pw_db_result *r);
/** A message safe to return to callers (names the constraint; never row values). */
PW_EXTERN const char *pw_db_message(const pw_db_result *r);
/** The SQLSTATE ("23505"), or "" when the failure did not come from the server. */
PW_EXTERN const char *pw_db_sqlstate(const pw_db_result *r);
/** The violated constraint's name, or "". */
PW_EXTERN const char *pw_db_constraint(const pw_db_result *r);
PW_EXTERN int pw_db_rows(const pw_db_result *r);
/** Rows an INSERT/UPDATE/DELETE touched. */
PW_EXTERN int64_t pw_db_affected(const pw_db_result *r);
/** The number of columns of a successful result (0 otherwise). */
PW_EXTERN int pw_db_columns(const pw_db_result *r);
/** Column col's name, borrowed like the result; "" when there is no such column. */
PW_EXTERN const char *pw_db_column_name(const pw_db_result *r, int col);
/** The index of the result column called name (exactly, as the query names it), or -1. */
PW_EXTERN int pw_db_column(const pw_db_result *r, const char *name);
PW_EXTERN int pw_db_is_null(const pw_db_result *r, int row, int col);
/*
 * Getters. Each returns PW_OK with the value in its out-parameters;
 * PW_NOT_FOUND (a NULL value, or no such row or column) or
 * PW_INVALID_ARGUMENT (the column's type does not fit: e.g. text read as
 * int), with the out-parameters left as they were (so a default set before
 * the call survives a NULL).
 */

/** An int8, int4 or int2 column. Returns PW_OK, PW_NOT_FOUND or PW_INVALID_ARGUMENT. */
PW_EXTERN pw_status pw_db_get_int64(const pw_db_result *r, int row, int col, int64_t *out);
/** A bool column (*out 0 or 1). Returns PW_OK, PW_NOT_FOUND or PW_INVALID_ARGUMENT. */
PW_EXTERN pw_status pw_db_get_bool(const pw_db_result *r, int row, int col, int *out);
/**
 * Text, varchar, json, jsonb or a numeric cast to text: NUL-terminated,
 * borrowed until the callback returns; *len (may be NULL) gets its length.
 * Returns PW_OK, PW_NOT_FOUND or PW_INVALID_ARGUMENT.
 */
PW_EXTERN pw_status pw_db_get_text(const pw_db_result *r, int row, int col, const char **out,
                                   size_t *len);
/**
 * A bytea column, borrowed until the callback returns. Returns PW_OK,
 * PW_NOT_FOUND or PW_INVALID_ARGUMENT.
 */
PW_EXTERN pw_status pw_db_get_bytea(const pw_db_result *r, int row, int col, const uint8_t **out,
                                    size_t *len);
/**
 * A timestamptz (or timestamp) column in microseconds since the Unix epoch.
 * Returns PW_OK, PW_NOT_FOUND or PW_INVALID_ARGUMENT.
 */
PW_EXTERN pw_status pw_db_get_timestamptz(const pw_db_result *r, int row, int col,
                                          int64_t *unix_us);
/** A uuid column's 16 bytes. Returns PW_OK, PW_NOT_FOUND or PW_INVALID_ARGUMENT. */
PW_EXTERN pw_status pw_db_get_uuid(const pw_db_result *r, int row, int col, uint8_t out[16]);

/* ---- transactions ---- */

typedef enum pw_db_isolation {
    PW_DB_READ_COMMITTED = 0,
    PW_DB_REPEATABLE_READ,
    PW_DB_SERIALIZABLE,
} pw_db_isolation;

/**
 * The body of a transaction: issues queries with pw_db_tx_query and ends with
 * pw_db_tx_commit or pw_db_tx_abort. It may run more than once (attempt 1,
 * 2, ...): after a serialization failure or deadlock the transaction is rolled
 * back and the body starts again, so it must keep no state across attempts
 * other than what it reads in the transaction.
 */
typedef void (*pw_db_tx_body)(pw_db_tx *tx, int attempt, void *user_data);
/** The transaction's end: PW_OK when committed, else why it was not. */
typedef void (*pw_db_tx_done)(pw_status status, const char *message, void *user_data);

/**
 * Runs body in a transaction on one connection, retrying up to max_attempts
 * (0: 5) on SQLSTATE 40001/40P01. call as in pw_db_query. Returns PW_OK, and
 * done runs exactly once, later; PW_INVALID_ARGUMENT (no body or done, an
 * unknown isolation) or PW_ERRNO(ENOMEM), and nothing runs.
 */
PW_EXTERN pw_status pw_db_tx_run(pw_db_pool *pool, pw_call *call, pw_db_isolation isolation,
                                 int max_attempts, pw_db_tx_body body, pw_db_tx_done done,
                                 void *user_data);
/**
 * A query inside the transaction. Its callback sees only outcomes the body
 * must handle: serialization failures and deadlocks restart the body instead.
 * Returns PW_OK (cb runs exactly once, later) or, and then cb never runs:
 * PW_INVALID_ARGUMENT (as pw_db_query); PW_CANCELLED or PW_DEADLINE_EXCEEDED
 * once the call the transaction runs for was; PW_FAILED_PRECONDITION after
 * commit or abort; PW_UNAVAILABLE when its connection is gone;
 * PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_db_tx_query(pw_db_tx *tx, const pw_db_stmt *stmt, const pw_db_param *params,
                                   int n, pw_db_result_cb cb, void *user_data);
/** Commits; done gets the outcome (a failed COMMIT may also restart the body). */
PW_EXTERN void pw_db_tx_commit(pw_db_tx *tx);
/** Rolls back; done gets status and message (status must not be PW_OK). */
PW_EXTERN void pw_db_tx_abort(pw_db_tx *tx, pw_status status, const char *message);

/* ---- notifications (LISTEN / NOTIFY) ---- */

typedef struct pw_db_listener pw_db_listener;

/**
 * A notification on channel with its payload (both valid during the call),
 * or payload NULL each time the LISTEN is (again) in place after connecting:
 * notifications sent while it was not may be lost, so re-read what is
 * watched. Runs on the listener's loop.
 */
typedef void (*pw_db_notify_cb)(pw_db_listener *l, const char *channel, const char *payload,
                                void *user_data);

/**
 * LISTENs on channel over a connection of its own to conninfo (copied),
 * reconnecting by itself after a loss. cb runs from later loop turns, never
 * inside this call, until pw_db_listener_close. Returns PW_OK with *out set;
 * PW_INVALID_ARGUMENT (no conninfo, cb or channel, a channel over 63 bytes)
 * or PW_ERRNO(ENOMEM) with *out NULL.
 */
PW_EXTERN pw_status pw_db_listener_new(pw_db_listener **out, uv_loop_t *loop, const char *conninfo,
                                       const char *channel, pw_db_notify_cb cb, void *user_data);
typedef void (*pw_db_listener_close_cb)(pw_db_listener *l, void *user_data);
/**
 * Stops at once (the notify cb never runs again, even from inside it) and
 * frees the listener once its handles closed. close_cb (may be NULL) runs
 * exactly once, on a later loop turn; the listener is freed after it
 * returns. Only the first call counts; NULL is a no-op.
 */
PW_EXTERN void pw_db_listener_close(pw_db_listener *l, pw_db_listener_close_cb close_cb,
                                    void *user_data);

/* ---- migrations (blocking: start-up only, before the loop runs) ---- */

/**
 * Applies dir's NNNN_description.sql files not yet applied to the database
 * at conninfo, in order, each in its own transaction, under an advisory lock
 * named by lock_name (two instances starting at once serialise), recording
 * each with its SHA-256 in schema_migrations. Refuses (PW_FAILED_PRECONDITION)
 * when an applied migration's file changed or disappeared. *applied (may be
 * NULL) gets how many ran, on failure too (the ones committed before it); err
 * (err_len bytes, may be NULL) gets "" on success. Returns PW_OK, PW_UNAVAILABLE (cannot connect),
 * PW_FAILED_PRECONDITION, PW_INVALID_ARGUMENT (bad file name, unreadable
 * folder), PW_INTERNAL (a migration failed: err names it and the server's
 * error).
 */
PW_EXTERN pw_status pw_db_migrate(const char *conninfo, const char *dir, const char *lock_name,
                                  int *applied, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
