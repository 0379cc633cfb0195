#ifndef PAYWIRE_DB_INTERNAL_H
#define PAYWIRE_DB_INTERNAL_H

/* Shared by the pool (pool.c), connections (conn.c), results (result.c) and transactions (tx.c). */
#include <libpq-fe.h>
#include <paywire/db.h>

typedef struct pw__db_op pw__db_op;
typedef struct pw__db_conn pw__db_conn;

/* One command on the wire: a prepared statement, or fixed SQL (BEGIN, COMMIT...). */
struct pw__db_op {
    pw__db_op *next;
    pw_db_pool *pool;
    const pw_db_stmt *stmt;
    const char *sql;
    /* Bound values: one allocation holding pointers, lengths, formats and bytes. */
    int n;
    const char **values;
    int *lengths;
    int *formats;
    pw_db_result_cb cb;
    void *user_data;
    /* Deadline and cancellation of the call this query serves. */
    pw_call *call;
    pw_call_watch watch;
    pw_status cancel_cause;
    /* Part of a transaction (sent on its pinned connection); attempt it belongs to. */
    pw_db_tx *tx;
    int attempt;
    /* On the wire. */
    pw__db_conn *conn;
    PGresult *result;
    int results_seen;
    /* An outcome decided before the op reached the database (delivered on the next turn). */
    pw_status early_status;
    char early_why[320];
    unsigned prepare_sent : 1;
    /* Opens a transaction: the connection it runs on is pinned to tx. */
    unsigned begins_tx : 1;
    /* For transactions: a body query, BEGIN, COMMIT or ROLLBACK. */
    unsigned kind : 2;
};

typedef enum pw__db_conn_state {
    PW__DB_CONNECTING,
    PW__DB_READY,
    PW__DB_BROKEN,
} pw__db_conn_state;

struct pw__db_conn {
    pw__db_conn *next;
    pw_db_pool *pool;
    PGconn *pg;
    PGcancel *cancel;
    uv_poll_t *poll;
    int fd;
    int events;
    uv_timer_t connect_timer;
    pw__db_conn_state state;
    /* Sent and waiting for results, oldest first. */
    pw__db_op *head;
    pw__db_op *tail;
    unsigned inflight;
    pw_db_tx *pinned;
    const pw_db_stmt **prepared;
    size_t nprepared;
    size_t capprepared;
    /* Handles and thread-pool cancels still open; freed at 0. */
    int refs;
};

struct pw_db_result {
    pw_status status;
    const PGresult *pg;
    char message[320];
    char sqlstate[6];
    char constraint[64];
};

/* pool.c */
uv_loop_t *pw__db_pool_loop(const pw_db_pool *pool);
const pw_db_options *pw__db_pool_options(const pw_db_pool *pool);
/* An op ready to send (params copied); NULL on ENOMEM. */
pw__db_op *pw__db_op_new(pw_db_pool *pool, const pw_db_stmt *stmt, const char *sql,
                         const pw_db_param *params, int n, pw_db_result_cb cb, void *user_data);
void pw__db_op_free(pw__db_op *op);
/* Queues op for the next free connection (begins_tx ops wait for an idle one). */
void pw__db_pool_submit(pw_db_pool *pool, pw__db_op *op);
/* A connection became ready, idle or unpinned: give it work. */
void pw__db_pool_pump(pw_db_pool *pool);
/* conn.c reports connect outcomes and losses. */
void pw__db_pool_conn_up(pw_db_pool *pool, pw__db_conn *conn);
void pw__db_pool_conn_down(pw_db_pool *pool, pw__db_conn *conn, const char *why);
/* Checks a statement's parameters: PW_OK or PW_INVALID_ARGUMENT. */
pw_status pw__db_check_params(const pw_db_stmt *stmt, const pw_db_param *params, int n);
/* Calls op's callback with its result (or with status/why when it never ran), then frees it. */
void pw__db_op_complete(pw__db_op *op, pw_status status, const char *why);

/* conn.c */
/* A connection object (not yet connecting): the pool lists it, then starts it. */
pw__db_conn *pw__db_conn_open(pw_db_pool *pool);
/* Starts connecting; failures (even immediate ones) go through pw__db_pool_conn_down. */
void pw__db_conn_start(pw__db_conn *conn);
void pw__db_conn_send(pw__db_conn *conn, pw__db_op *op);
/* Asks the server to cancel what conn runs now (PQcancel on the thread pool). */
void pw__db_conn_cancel(pw__db_conn *conn);
void pw__db_conn_close(pw__db_conn *conn, const char *why);

/* result.c */
void pw__db_result_init(pw_db_result *r, const PGresult *pg, pw_status cancel_cause);
/* 1 for SQLSTATE 40001 / 40P01: the transaction may succeed if run again. */
int pw__db_retryable(const pw_db_result *r);

/* Removes op from the wait queue; 1 when it was waiting there. */
int pw__db_pool_withdraw(pw_db_pool *pool, pw__db_op *op);

/* tx.c */
enum { PW__DB_OP_QUERY = 0, PW__DB_OP_BEGIN, PW__DB_OP_COMMIT, PW__DB_OP_ROLLBACK };
/* A transaction op's result: the transaction decides what happens next. */
void pw__db_tx_on_result(pw__db_op *op, pw_db_result *r);
/* The pool pinned conn to tx (its BEGIN is being sent there). */
void pw__db_tx_pinned(pw_db_tx *tx, pw__db_conn *conn);
/* The pinned connection broke. */
void pw__db_tx_conn_lost(pw_db_tx *tx);

#endif
