/*
 * conn.c: one libpq connection on the loop. Connecting is PQconnectStartParams
 * + PQconnectPoll driven by a uv_poll_t on PQsocket (which may change while
 * libpq tries addresses, so the poll handle follows it). Once up, the
 * connection is in pipeline mode: every op is [Parse,] Bind/Execute, Sync, so
 * several ops may be on the wire and each one's results end at its own
 * PGRES_PIPELINE_SYNC; an error in one op never aborts another. Nothing here
 * blocks: sends are non-blocking (PQsetnonblocking) and flushed when the
 * socket is writable; PQcancel, which blocks, runs on the thread pool.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"

static void conn_on_poll(uv_poll_t *h, int status, int events);

static void conn_unref(pw__db_conn *conn)
{
    if (--conn->refs > 0) {
        return;
    }
    if (conn->cancel != NULL) {
        PQfreeCancel(conn->cancel);
    }
    if (conn->pg != NULL) {
        PQfinish(conn->pg);
    }
    pw_free(conn->prepared);
    pw_free(conn);
}

static void handle_closed(uv_handle_t *h)
{
    pw__db_conn *conn = h->data;
    if ((uv_handle_t *)conn->poll == h) {
        conn->poll = NULL;
    }
    if (h != (uv_handle_t *)&conn->connect_timer) {
        pw_free(h);
    }
    conn_unref(conn);
}

/* Watches fd for events; re-creates the poll handle when libpq moved to another socket. */
static void conn_watch(pw__db_conn *conn, int events)
{
    int fd = PQsocket(conn->pg);
    if (conn->poll != NULL && (fd != conn->fd || fd < 0)) {
        uv_close((uv_handle_t *)conn->poll, handle_closed);
        conn->poll = NULL;
    }
    if (fd < 0) {
        return;
    }
    if (conn->poll == NULL) {
        conn->poll = pw_malloc(sizeof(*conn->poll));
        if (conn->poll == NULL ||
            uv_poll_init_socket(pw__db_pool_loop(conn->pool), conn->poll, fd) != 0) {
            pw_free(conn->poll);
            conn->poll = NULL;
            return;
        }
        conn->poll->data = conn;
        conn->refs++;
        conn->fd = fd;
        conn->events = 0;
    }
    if (events != conn->events) {
        conn->events = events;
        uv_poll_start(conn->poll, events, conn_on_poll);
    }
}

static void conn_fail(pw__db_conn *conn, const char *why)
{
    if (conn->state == PW__DB_BROKEN) {
        return;
    }
    conn->state = PW__DB_BROKEN;
    /* Every op on the wire fails; the pool decides about the rest. */
    while (conn->head != NULL) {
        pw__db_op *op = conn->head;
        conn->head = op->next;
        conn->inflight--;
        op->conn = NULL;
        pw__db_op_complete(op, PW_UNAVAILABLE, why);
    }
    conn->tail = NULL;
    if (conn->poll != NULL) {
        uv_close((uv_handle_t *)conn->poll, handle_closed);
        conn->poll = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&conn->connect_timer)) {
        uv_close((uv_handle_t *)&conn->connect_timer, handle_closed);
    }
    pw__db_pool_conn_down(conn->pool, conn, why);
    conn_unref(conn); /* the pool's reference */
}

/* libpq's last error, one line, without the trailing newline. */
static const char *conn_error(pw__db_conn *conn, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", conn->pg ? PQerrorMessage(conn->pg) : "out of memory");
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        buf[--n] = '\0';
    }
    for (char *p = buf; *p; p++) {
        if (*p == '\n') {
            *p = ' ';
        }
    }
    return buf;
}

/* ---- connecting ---- */

static void conn_connect_step(pw__db_conn *conn)
{
    char err[256];
    PostgresPollingStatusType st = PQconnectPoll(conn->pg);
    switch (st) {
    case PGRES_POLLING_READING:
        conn_watch(conn, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        conn_watch(conn, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        break;
    default:
        conn_fail(conn, conn_error(conn, err, sizeof(err)));
        return;
    }
    uv_timer_stop(&conn->connect_timer);
    if (PQenterPipelineMode(conn->pg) != 1 || PQsetnonblocking(conn->pg, 1) != 0) {
        conn_fail(conn, conn_error(conn, err, sizeof(err)));
        return;
    }
    conn->cancel = PQgetCancel(conn->pg);
    conn->state = PW__DB_READY;
    conn_watch(conn, UV_READABLE);
    pw__db_pool_conn_up(conn->pool, conn);
}

static void conn_connect_timeout(uv_timer_t *t)
{
    pw__db_conn *conn = t->data;
    if (conn->state == PW__DB_CONNECTING) {
        char why[96];
        snprintf(why, sizeof(why), "connecting to the database took longer than %u ms",
                 pw__db_pool_options(conn->pool)->connect_timeout_ms);
        conn_fail(conn, why);
    }
}

pw__db_conn *pw__db_conn_open(pw_db_pool *pool)
{
    pw__db_conn *conn = pw_calloc(1, sizeof(*conn));
    if (conn == NULL) {
        return NULL;
    }
    conn->pool = pool;
    conn->fd = -1;
    conn->refs = 2; /* the pool's, and the connect timer's */
    conn->state = PW__DB_CONNECTING;
    uv_timer_init(pw__db_pool_loop(pool), &conn->connect_timer);
    conn->connect_timer.data = conn;
    return conn;
}

void pw__db_conn_start(pw__db_conn *conn)
{
    const pw_db_options *o = pw__db_pool_options(conn->pool);
    char options[64];
    snprintf(options, sizeof(options), "-c statement_timeout=%u", o->statement_timeout_ms);
    /* dbname is expanded as a connection string; the keywords after it override. */
    const char *keys[] = {"dbname", "application_name", "options", NULL};
    const char *values[] = {o->conninfo, "paywire", options, NULL};
    conn->pg = PQconnectStartParams(keys, values, 1);
    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        char err[256];
        conn_fail(conn, conn_error(conn, err, sizeof(err)));
        return;
    }
    uv_timer_start(&conn->connect_timer, conn_connect_timeout, o->connect_timeout_ms, 0);
    conn_connect_step(conn);
}

/* ---- running ---- */

static void conn_flush(pw__db_conn *conn)
{
    int rv = PQflush(conn->pg);
    if (rv < 0) {
        char err[256];
        conn_fail(conn, conn_error(conn, err, sizeof(err)));
        return;
    }
    conn_watch(conn, rv == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static int conn_is_prepared(const pw__db_conn *conn, const pw_db_stmt *stmt)
{
    for (size_t i = 0; i < conn->nprepared; i++) {
        if (conn->prepared[i] == stmt) {
            return 1;
        }
    }
    return 0;
}

static void conn_set_prepared(pw__db_conn *conn, const pw_db_stmt *stmt, int yes)
{
    for (size_t i = 0; i < conn->nprepared; i++) {
        if (conn->prepared[i] == stmt) {
            if (!yes) {
                conn->prepared[i] = conn->prepared[--conn->nprepared];
            }
            return;
        }
    }
    if (!yes) {
        return;
    }
    if (conn->nprepared == conn->capprepared) {
        size_t cap = conn->capprepared ? conn->capprepared * 2 : 16;
        const pw_db_stmt **p = pw_realloc(conn->prepared, cap * sizeof(*p));
        if (p == NULL) {
            return; /* it is prepared again next time: harmless */
        }
        conn->prepared = p;
        conn->capprepared = cap;
    }
    conn->prepared[conn->nprepared++] = stmt;
}

static const Oid type_oids[] = {
    [PW_DB_INT8] = 20,   [PW_DB_INT4] = 23,      [PW_DB_BOOL] = 16,
    [PW_DB_TEXT] = 25,   [PW_DB_BYTEA] = 17,     [PW_DB_TIMESTAMPTZ] = 1184,
    [PW_DB_UUID] = 2950, [PW_DB_NUMERIC] = 1700, [PW_DB_JSONB] = 3802,
};

void pw__db_conn_send(pw__db_conn *conn, pw__db_op *op)
{
    int ok;
    op->conn = conn;
    op->next = NULL;
    if (conn->tail != NULL) {
        conn->tail->next = op;
    } else {
        conn->head = op;
    }
    conn->tail = op;
    conn->inflight++;
    if (op->stmt != NULL) {
        ok = 1;
        if (!conn_is_prepared(conn, op->stmt)) {
            Oid oids[PW_DB_MAX_PARAMS];
            for (int i = 0; i < op->stmt->nparams; i++) {
                oids[i] = type_oids[op->stmt->types[i]];
            }
            ok = PQsendPrepare(conn->pg, op->stmt->name, op->stmt->sql, op->stmt->nparams, oids);
            op->prepare_sent = 1;
            /* Optimistic, so an op pipelined right behind does not prepare it twice. */
            conn_set_prepared(conn, op->stmt, 1);
        }
        ok = ok && PQsendQueryPrepared(conn->pg, op->stmt->name, op->n, op->values, op->lengths,
                                       op->formats, 1);
    } else {
        ok = PQsendQueryParams(conn->pg, op->sql, 0, NULL, NULL, NULL, NULL, 1);
    }
    if (!ok || PQpipelineSync(conn->pg) != 1) {
        char err[256];
        conn_fail(conn, conn_error(conn, err, sizeof(err)));
        return;
    }
    conn_flush(conn);
}

/* One result of the op at the head of the queue. */
static void conn_on_result(pw__db_conn *conn, PGresult *r)
{
    pw__db_op *op = conn->head;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        conn->head = op->next;
        if (conn->head == NULL) {
            conn->tail = NULL;
        }
        conn->inflight--;
        op->conn = NULL;
        pw__db_op_complete(op, PW_OK, NULL);
        return;
    }
    op->results_seen++;
    if (op->prepare_sent && op->results_seen == 1) {
        if (st == PGRES_COMMAND_OK) {
            PQclear(r);
        } else {
            conn_set_prepared(conn, op->stmt, 0);
            op->result = r; /* the Execute behind it reports PIPELINE_ABORTED */
        }
        return;
    }
    if (op->result == NULL) {
        op->result = r;
    } else {
        PQclear(r);
    }
}

static void conn_read(pw__db_conn *conn)
{
    char err[256];
    if (PQconsumeInput(conn->pg) != 1) {
        conn_fail(conn, conn_error(conn, err, sizeof(err)));
        return;
    }
    int nulls = 0;
    while (conn->state == PW__DB_READY && conn->head != NULL && !PQisBusy(conn->pg)) {
        PGresult *r = PQgetResult(conn->pg);
        if (r == NULL) {
            /* The end of one command's results; twice in a row: nothing more yet. */
            if (++nulls > 1) {
                break;
            }
            continue;
        }
        nulls = 0;
        conn_on_result(conn, r);
    }
    if (conn->state == PW__DB_READY && PQstatus(conn->pg) == CONNECTION_BAD) {
        conn_fail(conn, conn_error(conn, err, sizeof(err)));
        return;
    }
    if (conn->state == PW__DB_READY) {
        pw__db_pool_pump(conn->pool);
    }
}

/*
 * libuv reports POLLERR (a refused connect, a connection the server reset) as UV_EBADF and
 * stops the handle; "bad file descriptor" names neither. libpq reads the socket and says
 * what happened: the server's FATAL that arrived before the reset, or the socket's error;
 * while connecting, it tries the connection string's next address.
 */
static void conn_on_socket_error(pw__db_conn *conn, int status)
{
    conn->events = 0; /* so that conn_watch starts the stopped handle again */
    if (conn->state == PW__DB_CONNECTING) {
        conn_connect_step(conn);
        return;
    }
    if (conn->state != PW__DB_READY) {
        return;
    }
    conn->refs++; /* results may complete ops whose callbacks close the pool */
    conn_read(conn);
    if (conn->state == PW__DB_READY) {
        int err = 0;
        socklen_t len = sizeof(err);
        char why[128];
        if (getsockopt(PQsocket(conn->pg), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) {
            err = -status;
        }
        snprintf(why, sizeof(why), "database connection failed: %s", uv_strerror(-err));
        conn_fail(conn, why);
    }
    conn_unref(conn);
}

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
    pw__db_conn *conn = h->data;
    if (status < 0) {
        conn_on_socket_error(conn, status);
        return;
    }
    if (conn->state == PW__DB_CONNECTING) {
        conn_connect_step(conn);
        return;
    }
    if (conn->state != PW__DB_READY) {
        return;
    }
    conn->refs++; /* results may complete ops whose callbacks close the pool */
    if (events & UV_WRITABLE) {
        conn_flush(conn);
    }
    if ((events & UV_READABLE) && conn->state == PW__DB_READY) {
        conn_read(conn);
    }
    conn_unref(conn);
}

/* ---- cancel on the thread pool ---- */

typedef struct cancel_work {
    uv_work_t req;
    pw__db_conn *conn;
    int ok;
    char err[256];
} cancel_work;

static void cancel_run(uv_work_t *req)
{
    cancel_work *w = req->data;
    /* Blocks for a TCP connect and one message: never on the loop. */
    w->ok = PQcancel(w->conn->cancel, w->err, (int)sizeof(w->err));
}

static void cancel_done(uv_work_t *req, int status)
{
    cancel_work *w = req->data;
    if (status == 0 && !w->ok) {
        PW_LOG(PW_LOG_WARNING, "db", "cancel request failed: %s", w->err);
    }
    conn_unref(w->conn);
    pw_free(w);
}

void pw__db_conn_cancel(pw__db_conn *conn)
{
    if (conn->cancel == NULL || conn->state != PW__DB_READY) {
        return;
    }
    cancel_work *w = pw_calloc(1, sizeof(*w));
    if (w == NULL) {
        return;
    }
    w->req.data = w;
    w->conn = conn;
    conn->refs++;
    if (uv_queue_work(pw__db_pool_loop(conn->pool), &w->req, cancel_run, cancel_done) != 0) {
        conn->refs--;
        pw_free(w);
    }
}

void pw__db_conn_close(pw__db_conn *conn, const char *why)
{
    conn_fail(conn, why);
}
