/*
 * pool.c: the connections of one loop and the queue of queries waiting for
 * one. Connections open on demand up to max_connections. A query waits in
 * arrival order until a connection can take it (fewer than pipeline_depth
 * ops on it and no transaction pinned to it); a transaction's BEGIN waits for
 * an idle connection, which then stays pinned to it until COMMIT/ROLLBACK.
 *
 * When connecting fails, the pool is unavailable: waiting and new queries
 * fail at once with UNAVAILABLE (a caller retries; waiting for a database
 * that is down helps no one), and the pool tries again after a backoff
 * (100 ms doubling to 5 s, with jitter) without waiting for traffic, so
 * health can turn SERVING again on its own.
 *
 * Callbacks never run inside the function that queued their query: early
 * outcomes (pool unavailable, call already cancelled) are delivered from a
 * zero-delay timer.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"

struct pw_db_pool {
    uv_loop_t *loop;
    pw_db_options o;
    char *conninfo;
    pw__db_conn *conns;
    unsigned nconns;
    pw__db_op *wait_head;
    pw__db_op *wait_tail;
    /* Ops to complete on the next loop turn (status and reason kept in the op). */
    pw__db_op *late_head;
    pw__db_op *late_tail;
    uv_timer_t late_timer;
    uv_timer_t backoff_timer;
    uint32_t backoff_ms;
    int backing_off;
    int available;
    char last_error[256];
    int closing;
    int handles;
    pw_db_pool_close_cb close_cb;
    void *close_ud;
    uint64_t rng;
};

uv_loop_t *pw__db_pool_loop(const pw_db_pool *pool)
{
    return pool->loop;
}

const pw_db_options *pw__db_pool_options(const pw_db_pool *pool)
{
    return &pool->o;
}

/* ---- ops ---- */

/* Binary wire form of a bound value into out (at most 16 bytes); text types return 0. */
static size_t encode_binary(const pw_db_param *p, uint8_t *out)
{
    uint64_t v;
    switch (p->type) {
    case PW_DB_INT8:
    case PW_DB_TIMESTAMPTZ:
        /* timestamptz: microseconds since 2000-01-01 (PostgreSQL's epoch). */
        v = (uint64_t)(p->type == PW_DB_INT8 ? p->i64 : p->i64 - 946684800000000LL);
        for (int i = 0; i < 8; i++) {
            out[i] = (uint8_t)(v >> (56 - 8 * i));
        }
        return 8;
    case PW_DB_INT4:
        v = (uint32_t)(int32_t)p->i64;
        for (int i = 0; i < 4; i++) {
            out[i] = (uint8_t)(v >> (24 - 8 * i));
        }
        return 4;
    case PW_DB_BOOL:
        out[0] = p->i64 ? 1 : 0;
        return 1;
    case PW_DB_UUID:
        memcpy(out, p->ptr, 16);
        return 16;
    default:
        return 0;
    }
}

static int is_text_type(pw_db_type t)
{
    return t == PW_DB_TEXT || t == PW_DB_NUMERIC || t == PW_DB_JSONB;
}

pw__db_op *pw__db_op_new(pw_db_pool *pool, const pw_db_stmt *stmt, const char *sql,
                         const pw_db_param *params, int n, pw_db_result_cb cb, void *user_data)
{
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const pw_db_param *p = &params[i];
        if (p->is_null) {
            continue;
        }
        bytes += is_text_type(p->type) ? strlen(p->ptr) + 1 : p->type == PW_DB_BYTEA ? p->len : 16;
    }
    size_t header = sizeof(pw__db_op) + (size_t)n * (sizeof(char *) + 2 * sizeof(int));
    pw__db_op *op = pw_calloc(1, header + bytes + 1);
    if (op == NULL) {
        return NULL;
    }
    op->pool = pool;
    op->stmt = stmt;
    op->sql = sql;
    op->n = n;
    op->cb = cb;
    op->user_data = user_data;
    op->values = (const char **)(op + 1);
    op->lengths = (int *)(op->values + n);
    op->formats = op->lengths + n;
    uint8_t *data = (uint8_t *)(op->formats + n);
    for (int i = 0; i < n; i++) {
        const pw_db_param *p = &params[i];
        if (p->is_null) {
            op->values[i] = NULL;
            continue;
        }
        size_t len;
        if (is_text_type(p->type)) {
            len = strlen(p->ptr);
            memcpy(data, p->ptr, len + 1);
            op->formats[i] = 0;
        } else if (p->type == PW_DB_BYTEA) {
            len = p->len;
            if (len > 0) {
                memcpy(data, p->ptr, len);
            }
            op->formats[i] = 1;
        } else {
            len = encode_binary(p, data);
            op->formats[i] = 1;
        }
        op->values[i] = (const char *)data;
        op->lengths[i] = (int)len;
        data += len + (is_text_type(p->type) ? 1 : 0);
    }
    return op;
}

void pw__db_op_free(pw__db_op *op)
{
    if (op->call != NULL) {
        pw_call_watch_stop(&op->watch);
    }
    PQclear(op->result);
    pw_free(op);
}

void pw__db_op_complete(pw__db_op *op, pw_status status, const char *why)
{
    pw_db_result r;
    pw__db_result_init(&r, op->result, op->cancel_cause);
    if (op->result == NULL) {
        r.status = op->cancel_cause != PW_OK ? op->cancel_cause : status;
        if (r.status == PW_OK) {
            r.status = PW_INTERNAL;
        }
        snprintf(r.message, sizeof(r.message), "%s",
                 why                                ? why
                 : r.status == PW_DEADLINE_EXCEEDED ? "deadline exceeded"
                                                    : "cancelled");
    }
    if (op->call != NULL) {
        pw_call_watch_stop(&op->watch);
        op->call = NULL;
    }
    if (op->tx != NULL) {
        pw__db_tx_on_result(op, &r);
    } else {
        op->cb(&r, op->user_data);
    }
    pw__db_op_free(op);
}

/* ---- deferred outcomes ---- */

static void late_fired(uv_timer_t *t)
{
    pw_db_pool *pool = t->data;
    pw__db_op *list = pool->late_head;
    pool->late_head = pool->late_tail = NULL;
    while (list != NULL) {
        pw__db_op *op = list;
        list = op->next;
        pw__db_op_complete(op, op->early_status, op->early_why);
    }
}

static void complete_later(pw_db_pool *pool, pw__db_op *op, pw_status status, const char *why)
{
    op->early_status = status;
    snprintf(op->early_why, sizeof(op->early_why), "%s", why);
    op->next = NULL;
    if (pool->late_tail != NULL) {
        pool->late_tail->next = op;
    } else {
        pool->late_head = op;
    }
    pool->late_tail = op;
    uv_timer_start(&pool->late_timer, late_fired, 0, 0);
}

/* ---- waiting ---- */

static void wait_remove(pw_db_pool *pool, pw__db_op *op)
{
    pw__db_op **pp = &pool->wait_head;
    pw__db_op *prev = NULL;
    while (*pp != NULL && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == op) {
        *pp = op->next;
        if (pool->wait_tail == op) {
            pool->wait_tail = prev;
        }
        op->next = NULL;
    }
}

static int wait_contains(const pw_db_pool *pool, const pw__db_op *op)
{
    for (const pw__db_op *w = pool->wait_head; w != NULL; w = w->next) {
        if (w == op) {
            return 1;
        }
    }
    return 0;
}

int pw__db_pool_withdraw(pw_db_pool *pool, pw__db_op *op)
{
    if (!wait_contains(pool, op)) {
        return 0;
    }
    wait_remove(pool, op);
    return 1;
}

/* The call's deadline passed or it was cancelled. */
static void op_call_cancelled(pw_call_watch *w, pw_status why)
{
    pw__db_op *op = w->user_data;
    pw_db_pool *pool = op->pool;
    op->call = NULL;
    op->cancel_cause = why == PW_DEADLINE_EXCEEDED ? PW_DEADLINE_EXCEEDED : PW_CANCELLED;
    if (wait_contains(pool, op)) {
        /* Never reached the database. */
        wait_remove(pool, op);
        complete_later(pool, op, op->cancel_cause,
                       why == PW_DEADLINE_EXCEEDED
                           ? "deadline exceeded while waiting for a database connection"
                           : "call cancelled while waiting for a database connection");
    } else if (op->conn != NULL) {
        pw__db_conn_cancel(op->conn);
    }
}

static void fail_waiters(pw_db_pool *pool, const char *why)
{
    while (pool->wait_head != NULL) {
        pw__db_op *op = pool->wait_head;
        pool->wait_head = op->next;
        op->next = NULL;
        complete_later(pool, op, PW_UNAVAILABLE, why);
    }
    pool->wait_tail = NULL;
}

void pw__db_pool_submit(pw_db_pool *pool, pw__db_op *op)
{
    if (op->call != NULL) {
        op->watch.cb = op_call_cancelled;
        op->watch.user_data = op;
        pw_status rv = pw_call_watch_start(op->call, &op->watch);
        if (rv != PW_OK) {
            op->call = NULL;
            op->cancel_cause = rv;
            complete_later(pool, op, rv,
                           rv == PW_DEADLINE_EXCEEDED ? "deadline exceeded before the query"
                                                      : "call cancelled before the query");
            return;
        }
    }
    if (pool->closing) {
        complete_later(pool, op, PW_UNAVAILABLE, "database pool closed");
        return;
    }
    if (!pool->available && pool->backing_off) {
        char why[300];
        snprintf(why, sizeof(why), "database unavailable: %s", pool->last_error);
        complete_later(pool, op, PW_UNAVAILABLE, why);
        return;
    }
    op->next = NULL;
    if (pool->wait_tail != NULL) {
        pool->wait_tail->next = op;
    } else {
        pool->wait_head = op;
    }
    pool->wait_tail = op;
    pw__db_pool_pump(pool);
}

/* The ready connection that should take op next, or NULL. */
static pw__db_conn *pick_conn(pw_db_pool *pool, const pw__db_op *op)
{
    pw__db_conn *best = NULL;
    for (pw__db_conn *c = pool->conns; c != NULL; c = c->next) {
        if (c->state != PW__DB_READY || c->pinned != NULL) {
            continue;
        }
        if (op->begins_tx ? c->inflight > 0 : c->inflight >= pool->o.pipeline_depth) {
            continue;
        }
        if (best == NULL || c->inflight < best->inflight) {
            best = c;
        }
    }
    return best;
}

static void pool_open_conn(pw_db_pool *pool)
{
    pw__db_conn *c = pw__db_conn_open(pool);
    if (c != NULL) {
        c->next = pool->conns;
        pool->conns = c;
        pool->nconns++;
        pw__db_conn_start(c);
    }
}

void pw__db_pool_pump(pw_db_pool *pool)
{
    while (pool->wait_head != NULL && !pool->closing) {
        pw__db_op *op = pool->wait_head;
        pw__db_conn *c = pick_conn(pool, op);
        if (c == NULL) {
            unsigned connecting = 0;
            for (pw__db_conn *x = pool->conns; x != NULL; x = x->next) {
                connecting += x->state == PW__DB_CONNECTING;
            }
            /* One more connection per waiter beyond those already coming up. */
            if (pool->nconns < pool->o.max_connections && !pool->backing_off && connecting == 0) {
                pool_open_conn(pool);
            }
            return;
        }
        pool->wait_head = op->next;
        if (pool->wait_head == NULL) {
            pool->wait_tail = NULL;
        }
        if (op->begins_tx) {
            c->pinned = op->tx;
            pw__db_tx_pinned(op->tx, c);
        }
        pw__db_conn_send(c, op);
    }
}

static void set_available(pw_db_pool *pool, int available)
{
    if (pool->available == available) {
        return;
    }
    pool->available = available;
    PW_LOG(available ? PW_LOG_NOTICE : PW_LOG_WARNING, "db", "database %s%s%s",
           available ? "available again" : "unavailable: ", available ? "" : pool->last_error, "");
    if (pool->o.on_available != NULL) {
        pool->o.on_available(pool, available, pool->o.user_data);
    }
}

void pw__db_pool_conn_up(pw_db_pool *pool, pw__db_conn *conn)
{
    (void)conn;
    pool->backoff_ms = 0;
    set_available(pool, 1);
    pw__db_pool_pump(pool);
}

static uint32_t jitter(pw_db_pool *pool, uint32_t ms)
{
    pool->rng = pool->rng * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t r = (uint32_t)(pool->rng >> 33);
    return ms / 2 + (ms ? r % (ms / 2 + 1) : 0);
}

static void backoff_fired(uv_timer_t *t)
{
    pw_db_pool *pool = t->data;
    pool->backing_off = 0;
    if (pool->closing) {
        return;
    }
    /* Probe on our own, so the pool (and health) recover without traffic. */
    if (pool->nconns == 0) {
        pool_open_conn(pool);
    }
    pw__db_pool_pump(pool);
}

void pw__db_pool_conn_down(pw_db_pool *pool, pw__db_conn *conn, const char *why)
{
    pw__db_conn **pp = &pool->conns;
    while (*pp != NULL && *pp != conn) {
        pp = &(*pp)->next;
    }
    if (*pp == conn) {
        *pp = conn->next;
        pool->nconns--;
    }
    if (conn->pinned != NULL) {
        pw_db_tx *tx = conn->pinned;
        conn->pinned = NULL;
        pw__db_tx_conn_lost(tx);
    }
    if (pool->closing) {
        return;
    }
    PW_LOG(PW_LOG_WARNING, "db", "database connection lost or refused: %s", why);
    snprintf(pool->last_error, sizeof(pool->last_error), "%s", why);
    /* Other connections still up: a single loss is not an outage. */
    for (pw__db_conn *c = pool->conns; c != NULL; c = c->next) {
        if (c->state == PW__DB_READY) {
            pw__db_pool_pump(pool);
            return;
        }
    }
    set_available(pool, 0);
    char msg[300];
    snprintf(msg, sizeof(msg), "database unavailable: %s", why);
    fail_waiters(pool, msg);
    pool->backoff_ms = pool->backoff_ms == 0                           ? pool->o.backoff_initial_ms
                       : pool->backoff_ms * 2 > pool->o.backoff_max_ms ? pool->o.backoff_max_ms
                                                                       : pool->backoff_ms * 2;
    pool->backing_off = 1;
    uv_timer_start(&pool->backoff_timer, backoff_fired, jitter(pool, pool->backoff_ms), 0);
}

/* ---- public ---- */

pw_status pw_db_pool_new(pw_db_pool **out, uv_loop_t *loop, const pw_db_options *o)
{
    *out = NULL;
    if (o == NULL || o->conninfo == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    pw_db_pool *pool = pw_calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pool->loop = loop;
    pool->o = *o;
    pool->conninfo = pw_strdup(o->conninfo);
    if (pool->conninfo == NULL) {
        pw_free(pool);
        return PW_ERRNO(ENOMEM);
    }
    pool->o.conninfo = pool->conninfo;
#define DEF(f, v)         \
    if (pool->o.f == 0) { \
        pool->o.f = v;    \
    }
    DEF(max_connections, 8);
    DEF(connect_timeout_ms, 5000);
    DEF(backoff_initial_ms, 100);
    DEF(backoff_max_ms, 5000);
    DEF(pipeline_depth, 1);
#undef DEF
    if (o->statement_timeout_ms == 0) {
        pool->o.statement_timeout_ms = 30000;
    }
    pool->available = 1;
    pool->rng = (uint64_t)(uintptr_t)pool ^ uv_hrtime();
    uv_timer_init(loop, &pool->late_timer);
    uv_timer_init(loop, &pool->backoff_timer);
    pool->late_timer.data = pool->backoff_timer.data = pool;
    pool->handles = 2;
    *out = pool;
    return PW_OK;
}

static void pool_handle_closed(uv_handle_t *h)
{
    pw_db_pool *pool = h->data;
    if (--pool->handles > 0) {
        return;
    }
    if (pool->close_cb != NULL) {
        pool->close_cb(pool, pool->close_ud);
    }
    pw_free(pool->conninfo);
    pw_free(pool);
}

void pw_db_pool_close(pw_db_pool *pool, pw_db_pool_close_cb cb, void *user_data)
{
    if (pool == NULL || pool->closing) {
        return;
    }
    pool->closing = 1;
    pool->close_cb = cb;
    pool->close_ud = user_data;
    while (pool->conns != NULL) {
        pw__db_conn_close(pool->conns, "database pool closed");
    }
    fail_waiters(pool, "database pool closed");
    /* Deferred outcomes still run before the timers close. */
    late_fired(&pool->late_timer);
    uv_close((uv_handle_t *)&pool->late_timer, pool_handle_closed);
    uv_close((uv_handle_t *)&pool->backoff_timer, pool_handle_closed);
}

int pw_db_pool_available(const pw_db_pool *pool)
{
    return pool->available;
}

void pw_db_pool_stats(const pw_db_pool *pool, unsigned *open, unsigned *busy)
{
    unsigned o = 0, b = 0;
    for (const pw__db_conn *c = pool->conns; c != NULL; c = c->next) {
        o += c->state == PW__DB_READY;
        b += c->state == PW__DB_READY && (c->inflight > 0 || c->pinned != NULL);
    }
    if (open != NULL) {
        *open = o;
    }
    if (busy != NULL) {
        *busy = b;
    }
}

pw_status pw__db_check_params(const pw_db_stmt *stmt, const pw_db_param *params, int n)
{
    if (stmt == NULL || stmt->name == NULL || stmt->sql == NULL || n != stmt->nparams || n < 0 ||
        n > PW_DB_MAX_PARAMS || (n > 0 && params == NULL)) {
        return PW_INVALID_ARGUMENT;
    }
    for (int i = 0; i < n; i++) {
        if (params[i].type != stmt->types[i] && !params[i].is_null) {
            return PW_INVALID_ARGUMENT;
        }
        if (!params[i].is_null && params[i].ptr == NULL &&
            (is_text_type(params[i].type) || params[i].type == PW_DB_UUID ||
             (params[i].type == PW_DB_BYTEA && params[i].len > 0))) {
            return PW_INVALID_ARGUMENT;
        }
    }
    return PW_OK;
}

pw_status pw_db_query(pw_db_pool *pool, pw_call *call, const pw_db_stmt *stmt,
                      const pw_db_param *params, int n, pw_db_result_cb cb, void *user_data)
{
    pw_status rv = pw__db_check_params(stmt, params, n);
    if (rv != PW_OK || cb == NULL) {
        return rv != PW_OK ? rv : PW_INVALID_ARGUMENT;
    }
    pw__db_op *op = pw__db_op_new(pool, stmt, NULL, params, n, cb, user_data);
    if (op == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    op->call = call;
    pw__db_pool_submit(pool, op);
    return PW_OK;
}
