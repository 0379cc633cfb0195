/*
 * tx.c: transactions pinned to one connection, re-run on serialization
 * failure and deadlock. BEGIN waits in the pool for an idle connection,
 * which stays pinned until the transaction ends. Body queries go straight to
 * that connection. A result with SQLSTATE 40001/40P01 (from a query or from
 * COMMIT) never reaches the body: the transaction rolls back and, after a
 * short random pause, the body runs again with attempt + 1, up to
 * max_attempts, then done gets ABORTED. Results of an abandoned attempt are
 * dropped. done runs exactly once, from the loop (a timer), never inside
 * pw_db_tx_commit / _abort.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"

typedef enum tx_state {
    TX_BEGINNING,
    TX_RUNNING,
    TX_RESTARTING,
    TX_ENDING,
    TX_DONE,
} tx_state;

struct pw_db_tx {
    pw_db_pool *pool;
    pw_call *call;
    pw_call_watch watch;
    pw_db_isolation isolation;
    int max_attempts;
    int attempt;
    pw_db_tx_body body;
    pw_db_tx_done done;
    void *user_data;
    pw__db_conn *conn;
    pw__db_op *begin_op;
    tx_state state;
    int pending;
    int commit_sent;
    pw_status cancel_cause;
    pw_status end_status;
    char end_msg[320];
    uint64_t rng;
    uv_timer_t timer;
    /* done has run and the timer is closing: freed when it closes. */
    int finished;
};

static const char *const begin_sql[] = {
    [PW_DB_READ_COMMITTED] = "BEGIN ISOLATION LEVEL READ COMMITTED",
    [PW_DB_REPEATABLE_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
    [PW_DB_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
};

static void tx_closed(uv_handle_t *h)
{
    pw_free(h->data);
}

static void tx_unpin(pw_db_tx *tx)
{
    if (tx->conn != NULL) {
        if (tx->conn->pinned == tx) {
            tx->conn->pinned = NULL;
        }
        tx->conn = NULL;
        pw__db_pool_pump(tx->pool);
    }
}

/* Runs done (from the timer) once everything the transaction sent has come back. */
static void tx_done_fired(uv_timer_t *t)
{
    pw_db_tx *tx = t->data;
    if (tx->finished || tx->pending > 0) {
        return;
    }
    tx->finished = 1;
    tx_unpin(tx);
    if (tx->call != NULL) {
        pw_call_watch_stop(&tx->watch);
        tx->call = NULL;
    }
    tx->done(tx->end_status, tx->end_status == PW_OK ? "" : tx->end_msg, tx->user_data);
    uv_close((uv_handle_t *)&tx->timer, tx_closed);
}

static void tx_finish(pw_db_tx *tx, pw_status status, const char *msg)
{
    if (tx->state == TX_DONE) {
        return;
    }
    tx->state = TX_DONE;
    tx->end_status = status;
    if (msg != tx->end_msg) {
        snprintf(tx->end_msg, sizeof(tx->end_msg), "%s", msg ? msg : "");
    }
    uv_timer_start(&tx->timer, tx_done_fired, 0, 0);
}

/* Sends fixed SQL of a kind on the pinned connection (or finishes when it broke). */
static void tx_send(pw_db_tx *tx, const char *sql, unsigned kind)
{
    if (tx->conn == NULL || tx->conn->state != PW__DB_READY) {
        tx_finish(tx, PW_UNAVAILABLE, "database connection lost; the transaction did not commit");
        return;
    }
    pw__db_op *op = pw__db_op_new(tx->pool, NULL, sql, NULL, 0, NULL, NULL);
    if (op == NULL) {
        tx_finish(tx, PW_ERRNO(ENOMEM), "out of memory");
        return;
    }
    op->tx = tx;
    op->kind = kind & 3u;
    op->attempt = tx->attempt;
    tx->pending++;
    pw__db_conn_send(tx->conn, op);
}

static void tx_begin(pw_db_tx *tx)
{
    tx->state = TX_BEGINNING;
    if (tx->conn != NULL) {
        /* A new attempt keeps its connection. */
        tx_send(tx, begin_sql[tx->isolation], PW__DB_OP_BEGIN);
        return;
    }
    pw__db_op *op = pw__db_op_new(tx->pool, NULL, begin_sql[tx->isolation], NULL, 0, NULL, NULL);
    if (op == NULL) {
        tx_finish(tx, PW_ERRNO(ENOMEM), "out of memory");
        return;
    }
    op->tx = tx;
    op->kind = PW__DB_OP_BEGIN;
    op->begins_tx = 1;
    op->attempt = tx->attempt;
    tx->pending++;
    tx->begin_op = op;
    pw__db_pool_submit(tx->pool, op);
}

static void tx_retry_fired(uv_timer_t *t)
{
    pw_db_tx *tx = t->data;
    if (tx->state == TX_RESTARTING) {
        tx_begin(tx);
    }
}

/* Serialization failure or deadlock: roll back, then run the body again. */
static void tx_restart(pw_db_tx *tx, const pw_db_result *r)
{
    if (tx->attempt >= tx->max_attempts) {
        char msg[320];
        snprintf(msg, sizeof(msg), "transaction gave up after %d attempts: %s", tx->attempt,
                 pw_db_message(r));
        tx->state = TX_ENDING;
        tx->end_status = PW_ABORTED;
        snprintf(tx->end_msg, sizeof(tx->end_msg), "%s", msg);
        tx_send(tx, "ROLLBACK", PW__DB_OP_ROLLBACK);
        return;
    }
    PW_LOG(PW_LOG_INFO, "db", "transaction attempt %d: %s; running it again", tx->attempt,
           pw_db_message(r));
    tx->state = TX_RESTARTING;
    tx_send(tx, "ROLLBACK", PW__DB_OP_ROLLBACK);
}

void pw__db_tx_pinned(pw_db_tx *tx, pw__db_conn *conn)
{
    tx->conn = conn;
    tx->begin_op = NULL;
}

static void on_begin(pw_db_tx *tx, const pw_db_result *r)
{
    tx->begin_op = NULL;
    if (r->status != PW_OK) {
        tx_finish(tx, r->status, pw_db_message(r));
        return;
    }
    tx->state = TX_RUNNING;
    tx->body(tx, tx->attempt, tx->user_data);
}

static void on_commit(pw_db_tx *tx, const pw__db_op *op, const pw_db_result *r)
{
    if (r->status == PW_OK) {
        /* COMMIT of a transaction that had failed answers ROLLBACK. */
        if (strcmp(PQcmdStatus(op->result), "ROLLBACK") == 0) {
            tx_finish(tx, PW_ABORTED,
                      "the transaction was rolled back: a statement in it had failed");
        } else {
            tx_finish(tx, PW_OK, NULL);
        }
    } else if (pw__db_retryable(r)) {
        tx_restart(tx, r);
    } else if (r->status == PW_UNAVAILABLE && r->sqlstate[0] == '\0') {
        tx_finish(tx, PW_UNAVAILABLE,
                  "database connection lost during COMMIT: the transaction may or may not have "
                  "committed; retry with the same idempotency key");
    } else {
        tx_finish(tx, r->status, pw_db_message(r));
    }
}

static void on_rollback(pw_db_tx *tx)
{
    if (tx->state == TX_RESTARTING) {
        tx->attempt++;
        tx->rng = tx->rng * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t pause = (tx->rng >> 33) % (uint64_t)(5 * tx->attempt + 1);
        uv_timer_start(&tx->timer, tx_retry_fired, pause, 0);
    } else if (tx->state == TX_ENDING) {
        tx_finish(tx, tx->end_status, tx->end_msg);
    }
}

void pw__db_tx_on_result(pw__db_op *op, pw_db_result *r)
{
    pw_db_tx *tx = op->tx;
    tx->pending--;
    if (tx->cancel_cause != PW_OK && r->status == PW_DEADLINE_EXCEEDED &&
        strcmp(r->sqlstate, "57014") == 0) {
        r->status = tx->cancel_cause;
    }
    switch (op->kind) {
    case PW__DB_OP_BEGIN:
        on_begin(tx, r);
        break;
    case PW__DB_OP_COMMIT:
        on_commit(tx, op, r);
        break;
    case PW__DB_OP_ROLLBACK:
        on_rollback(tx);
        break;
    default:
        if (op->attempt != tx->attempt || tx->state != TX_RUNNING) {
            break; /* an abandoned attempt's, or after the body ended */
        }
        if (pw__db_retryable(r)) {
            tx_restart(tx, r);
        } else {
            op->cb(r, op->user_data);
        }
        break;
    }
    if (tx->state == TX_DONE && tx->pending == 0 && !tx->finished) {
        uv_timer_start(&tx->timer, tx_done_fired, 0, 0);
    }
}

void pw__db_tx_conn_lost(pw_db_tx *tx)
{
    tx->conn = NULL;
    tx_finish(tx, PW_UNAVAILABLE,
              tx->commit_sent ? "database connection lost during COMMIT: the transaction may or "
                                "may not have committed; retry with the same idempotency key"
                              : "database connection lost; the transaction did not commit");
}

static void tx_call_cancelled(pw_call_watch *w, pw_status why)
{
    pw_db_tx *tx = w->user_data;
    tx->call = NULL;
    tx->cancel_cause = why == PW_DEADLINE_EXCEEDED ? PW_DEADLINE_EXCEEDED : PW_CANCELLED;
    const char *msg =
        tx->cancel_cause == PW_DEADLINE_EXCEEDED ? "deadline exceeded" : "call cancelled";
    if (tx->begin_op != NULL && pw__db_pool_withdraw(tx->pool, tx->begin_op)) {
        /* Still waiting for a connection: it never started. */
        pw__db_op *op = tx->begin_op;
        tx->begin_op = NULL;
        tx->pending--;
        op->tx = NULL;
        pw__db_op_free(op);
        tx_finish(tx, tx->cancel_cause, msg);
        return;
    }
    if (tx->conn != NULL && tx->conn->inflight > 0) {
        pw__db_conn_cancel(tx->conn);
    }
    if (tx->state == TX_RESTARTING) {
        tx->state = TX_ENDING;
        tx->end_status = tx->cancel_cause;
        snprintf(tx->end_msg, sizeof(tx->end_msg), "%s", msg);
    }
}

pw_status pw_db_tx_run(pw_db_pool *pool, pw_call *call, pw_db_isolation isolation, int max_attempts,
                       pw_db_tx_body body, pw_db_tx_done done, void *user_data)
{
    if (body == NULL || done == NULL || (unsigned)isolation > PW_DB_SERIALIZABLE) {
        return PW_INVALID_ARGUMENT;
    }
    pw_db_tx *tx = pw_calloc(1, sizeof(*tx));
    if (tx == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    tx->pool = pool;
    tx->isolation = isolation;
    tx->max_attempts = max_attempts > 0 ? max_attempts : 5;
    tx->attempt = 1;
    tx->body = body;
    tx->done = done;
    tx->user_data = user_data;
    tx->rng = (uint64_t)(uintptr_t)tx ^ uv_hrtime();
    uv_timer_init(pw__db_pool_loop(pool), &tx->timer);
    tx->timer.data = tx;
    if (call != NULL) {
        tx->call = call;
        tx->watch.cb = tx_call_cancelled;
        tx->watch.user_data = tx;
        pw_status rv = pw_call_watch_start(call, &tx->watch);
        if (rv != PW_OK) {
            tx->call = NULL;
            tx_finish(tx, rv, rv == PW_DEADLINE_EXCEEDED ? "deadline exceeded" : "call cancelled");
            return PW_OK;
        }
    }
    tx_begin(tx);
    return PW_OK;
}

pw_status pw_db_tx_query(pw_db_tx *tx, const pw_db_stmt *stmt, const pw_db_param *params, int n,
                         pw_db_result_cb cb, void *user_data)
{
    pw_status rv = pw__db_check_params(stmt, params, n);
    if (rv != PW_OK || cb == NULL) {
        return rv != PW_OK ? rv : PW_INVALID_ARGUMENT;
    }
    if (tx->cancel_cause != PW_OK) {
        return tx->cancel_cause;
    }
    if (tx->state != TX_RUNNING) {
        return PW_FAILED_PRECONDITION;
    }
    if (tx->conn == NULL || tx->conn->state != PW__DB_READY) {
        return PW_UNAVAILABLE;
    }
    pw__db_op *op = pw__db_op_new(tx->pool, stmt, NULL, params, n, cb, user_data);
    if (op == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    op->tx = tx;
    op->kind = PW__DB_OP_QUERY;
    op->attempt = tx->attempt;
    tx->pending++;
    pw__db_conn_send(tx->conn, op);
    return PW_OK;
}

void pw_db_tx_commit(pw_db_tx *tx)
{
    if (tx->state != TX_RUNNING) {
        return;
    }
    tx->state = TX_ENDING;
    tx->commit_sent = 1;
    tx_send(tx, "COMMIT", PW__DB_OP_COMMIT);
}

void pw_db_tx_abort(pw_db_tx *tx, pw_status status, const char *message)
{
    if (tx->state != TX_RUNNING) {
        return;
    }
    tx->state = TX_ENDING;
    tx->end_status = status == PW_OK ? PW_ABORTED : status;
    snprintf(tx->end_msg, sizeof(tx->end_msg), "%s", message ? message : "");
    tx_send(tx, "ROLLBACK", PW__DB_OP_ROLLBACK);
}
