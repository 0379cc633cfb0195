/*
 * svc_outbox.c: the outbox publisher (svc_outbox.h). One batch at a time:
 * claim due rows with a lease, deliver each, mark each (published, retry at,
 * or dead), then the next batch — at once when the batch was full, else after
 * idle_ms. Published rows are marked together: one statement for every row
 * delivered since the last one was sent, at most one in flight (a commit per
 * row was ~9 commits per payment in orchestration, bench/stack). Everything
 * runs from database and delivery callbacks on the loop; the publisher frees
 * itself when stopped and nothing is in flight.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "svc_outbox.h"

enum { ST_CLAIM, ST_PUBLISHED, ST_RETRY, ST_DEAD, ST_COUNT };

struct svc_outbox {
    uv_loop_t *loop;
    pw_db_pool *pool;
    svc_outbox_options o;
    char *table;
    char *what;
    pw_db_stmt stmts[ST_COUNT];
    char names[ST_COUNT][96];
    char *sql[ST_COUNT];
    uv_timer_t timer;
    /* Deliveries and statements not ended yet; the batch is over when it reaches 0. */
    int in_flight;
    int batch_rows;
    int stopping;
    int timer_closed;
    uint64_t rng;
    int64_t published;
    int64_t retried;
    int64_t dead;
    /* Rows delivered whose published mark is not sent yet, and how many the mark in flight
     * covers (0: none in flight). Each holds its step of in_flight until marked. */
    int64_t *to_mark;
    int to_mark_n, to_mark_cap;
    int marking;
};

typedef struct item {
    svc_outbox *o;
    int64_t id;
    int64_t attempts;
} item;

/* ---- lifetime ---- */

static void outbox_free(svc_outbox *o)
{
    for (int i = 0; i < ST_COUNT; i++) {
        pw_free(o->sql[i]);
    }
    pw_free(o->table);
    pw_free(o->what);
    pw_free(o->to_mark);
    pw_free(o);
}

static void maybe_free(svc_outbox *o)
{
    if (o->stopping && o->timer_closed && o->in_flight == 0) {
        outbox_free(o);
    }
}

static void timer_closed(uv_handle_t *h)
{
    svc_outbox *o = h->data;
    o->timer_closed = 1;
    maybe_free(o);
}

void svc_outbox_stop(svc_outbox *o)
{
    if (o == NULL || o->stopping) {
        return;
    }
    o->stopping = 1;
    uv_close((uv_handle_t *)&o->timer, timer_closed);
}

void svc_outbox_counts(const svc_outbox *o, int64_t *published, int64_t *retried, int64_t *dead)
{
    *published = o->published;
    *retried = o->retried;
    *dead = o->dead;
}

/* ---- batches ---- */

static void on_tick(uv_timer_t *t);

/* One thing of the batch ended; when it was the last, the next batch is scheduled. */
static void step_done(svc_outbox *o)
{
    if (--o->in_flight > 0) {
        return;
    }
    if (o->stopping) {
        maybe_free(o);
        return;
    }
    uv_timer_start(&o->timer, on_tick, o->batch_rows == o->o.batch ? 0 : o->o.idle_ms, 0);
}

static void marked(pw_db_result *res, void *ud)
{
    item *it = ud;
    svc_outbox *o = it->o;
    if (pw_db_status(res) != PW_OK) {
        /* The lease runs out and the row is delivered again: the consumer de-duplicates. */
        PW_LOG(PW_LOG_WARNING, "outbox", "%s: cannot record the outcome of event %lld: %s", o->what,
               (long long)it->id, pw_db_message(res));
    }
    pw_free(it);
    step_done(o);
}

static int permanent(pw_status s)
{
    return s == PW_INVALID_ARGUMENT || s == PW_FAILED_PRECONDITION || s == PW_PERMISSION_DENIED ||
           s == PW_UNAUTHENTICATED || s == PW_NOT_FOUND || s == PW_OUT_OF_RANGE ||
           s == PW_UNIMPLEMENTED || s == PW_DATA_LOSS;
}

static uint64_t backoff_ms(svc_outbox *o, int64_t attempts)
{
    uint64_t d = o->o.backoff_initial_ms;
    for (int64_t i = 0; i < attempts && d < o->o.backoff_max_ms; i++) {
        d *= 2;
    }
    d = d < o->o.backoff_max_ms ? d : o->o.backoff_max_ms;
    o->rng ^= o->rng << 13;
    o->rng ^= o->rng >> 7;
    o->rng ^= o->rng << 17;
    return d + o->rng % (d / 2 + 1);
}

static void flush_published(svc_outbox *o);

/* The mark of k published rows ended: the next mark goes out before their steps end (the last
 * step may free o). */
static void published_marked(pw_db_result *res, void *ud)
{
    svc_outbox *o = ud;
    int k = o->marking;
    if (pw_db_status(res) != PW_OK) {
        /* Their leases run out and they are delivered again: the consumer de-duplicates. */
        PW_LOG(PW_LOG_WARNING, "outbox", "%s: cannot record %d event(s) as published: %s", o->what,
               k, pw_db_message(res));
    }
    o->marking = 0;
    flush_published(o);
    for (int i = 0; i < k; i++) {
        step_done(o);
    }
}

/* Sends one statement marking every row delivered since the last, unless one is in flight. */
static void flush_published(svc_outbox *o)
{
    if (o->marking > 0 || o->to_mark_n == 0) {
        return;
    }
    int k = o->to_mark_n;
    char *list = pw_malloc((size_t)k * 21 + 3);
    if (list != NULL) {
        size_t at = 0;
        list[at++] = '{';
        for (int i = 0; i < k; i++) {
            at += (size_t)sprintf(list + at, i ? ",%lld" : "%lld", (long long)o->to_mark[i]);
        }
        list[at++] = '}';
        list[at] = '\0';
    }
    o->to_mark_n = 0;
    pw_db_param p = pw_db_text(list);
    if (list != NULL &&
        pw_db_query(o->pool, NULL, &o->stmts[ST_PUBLISHED], &p, 1, published_marked, o) == PW_OK) {
        o->marking = k;
        pw_free(list);
        return;
    }
    pw_free(list);
    PW_LOG(PW_LOG_WARNING, "outbox", "%s: cannot record %d event(s) as published", o->what, k);
    for (int i = 0; i < k; i++) {
        step_done(o);
    }
}

/* Queues a delivered row's published mark (its item freed, its step held until marked). */
static void queue_published(svc_outbox *o, item *it)
{
    if (o->to_mark_n == o->to_mark_cap) {
        int cap = o->to_mark_cap ? 2 * o->to_mark_cap : o->o.batch;
        int64_t *grown = pw_realloc(o->to_mark, (size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            /* Not marked: its lease runs out and it is delivered again. */
            pw_free(it);
            step_done(o);
            return;
        }
        o->to_mark = grown;
        o->to_mark_cap = cap;
    }
    o->to_mark[o->to_mark_n++] = it->id;
    pw_free(it);
    flush_published(o);
}

static void mark(svc_outbox *o, item *it, int which, const pw_db_param *p, int n)
{
    if (pw_db_query(o->pool, NULL, &o->stmts[which], p, n, marked, it) != PW_OK) {
        pw_free(it);
        step_done(o);
    }
}

void svc_outbox_delivered(svc_outbox *o, void *token, pw_status status, const char *message)
{
    item *it = token;
    char error[400];
    snprintf(error, sizeof(error), "%s: %s", pw_status_str(status), message ? message : "");
    if (status == PW_OK) {
        o->published++;
        queue_published(o, it);
    } else if (permanent(status)) {
        o->dead++;
        PW_LOG(PW_LOG_ERR, "outbox", "%s: event %lld refused for good, dead-lettered: %s", o->what,
               (long long)it->id, error);
        pw_db_param p[] = {pw_db_int8(it->id), pw_db_text(error)};
        mark(o, it, ST_DEAD, p, 2);
    } else {
        o->retried++;
        uint64_t wait = backoff_ms(o, it->attempts);
        if (it->attempts % 10 == 0) {
            PW_LOG(PW_LOG_WARNING, "outbox",
                   "%s: event %lld not delivered (attempt %lld): %s; "
                   "again in %llu ms",
                   o->what, (long long)it->id, (long long)it->attempts + 1, error,
                   (unsigned long long)wait);
        }
        pw_db_param p[] = {pw_db_int8(it->id), pw_db_text(error), pw_db_int8((int64_t)wait)};
        mark(o, it, ST_RETRY, p, 3);
    }
}

typedef struct ordered {
    int row;
    int64_t id;
} ordered;

static int by_id(const void *a, const void *b)
{
    const ordered *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static void claimed(pw_db_result *res, void *ud)
{
    svc_outbox *o = ud;
    int n = pw_db_status(res) == PW_OK ? pw_db_rows(res) : 0;
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "outbox", "%s: cannot claim events: %s", o->what,
               pw_db_message(res));
    }
    if (o->stopping) {
        /* Stopped while claiming: the owner (deliver's user_data) may be gone already. The
         * claimed rows stay leased until the lease runs out, then a publisher takes them. */
        n = 0;
    }
    o->batch_rows = n;
    int id_col = pw_db_column(res, "id"), att_col = pw_db_column(res, "attempts");
    ordered *order = pw_calloc((size_t)(n ? n : 1), sizeof(*order));
    for (int i = 0; order != NULL && i < n; i++) {
        order[i].row = i;
        pw_db_get_int64(res, i, id_col, &order[i].id);
    }
    if (order != NULL) {
        qsort(order, (size_t)n, sizeof(*order), by_id);
    }
    /* The claim counts as one step; each delivery and its mark as another. */
    for (int i = 0; order != NULL && i < n; i++) {
        item *it = pw_calloc(1, sizeof(*it));
        if (it == NULL) {
            break; /* its lease runs out; a later batch takes it */
        }
        it->o = o;
        it->id = order[i].id;
        pw_db_get_int64(res, order[i].row, att_col, &it->attempts);
        o->in_flight++;
        o->o.deliver(o, res, order[i].row, it, o->o.user_data);
    }
    pw_free(order);
    step_done(o);
}

static void on_tick(uv_timer_t *t)
{
    svc_outbox *o = t->data;
    if (o->stopping || o->in_flight > 0) {
        return;
    }
    pw_db_param p[] = {pw_db_int8((int64_t)o->o.lease_ms), pw_db_int8(o->o.batch)};
    if (pw_db_query(o->pool, NULL, &o->stmts[ST_CLAIM], p, 2, claimed, o) == PW_OK) {
        o->in_flight = 1;
    } else {
        uv_timer_start(&o->timer, on_tick, o->o.idle_ms, 0);
    }
}

/* ---- start ---- */

static int identifier_ok(const char *s)
{
    if (s == NULL || !(isalpha((unsigned char)s[0]) || s[0] == '_') || strlen(s) > 60) {
        return 0;
    }
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_') {
            return 0;
        }
    }
    return 1;
}

/* sql with every "{t}" replaced by the table name, in new memory. */
static char *with_table(const char *sql, const char *table)
{
    size_t n = 0, tl = strlen(table);
    for (const char *p = sql; (p = strstr(p, "{t}")) != NULL; p += 3) {
        n++;
    }
    char *out = pw_malloc(strlen(sql) + n * tl + 1);
    if (out == NULL) {
        return NULL;
    }
    char *w = out;
    for (const char *p = sql; *p;) {
        if (strncmp(p, "{t}", 3) == 0) {
            memcpy(w, table, tl);
            w += tl;
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return out;
}

static pw_status make_stmt(svc_outbox *o, int which, const char *kind, const char *sql, int n,
                           const pw_db_type *types)
{
    o->sql[which] = with_table(sql, o->table);
    if (o->sql[which] == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    snprintf(o->names[which], sizeof(o->names[which]), "svc_outbox_%s_%s", kind, o->table);
    pw_db_stmt *s = &o->stmts[which];
    s->name = o->names[which];
    s->sql = o->sql[which];
    s->nparams = n;
    memcpy(s->types, types, (size_t)n * sizeof(*types));
    return PW_OK;
}

static pw_status make_stmts(svc_outbox *o)
{
    static const pw_db_type claim_t[] = {PW_DB_INT8, PW_DB_INT8};
    static const pw_db_type ids_t[] = {PW_DB_TEXT};
    static const pw_db_type dead_t[] = {PW_DB_INT8, PW_DB_TEXT};
    static const pw_db_type retry_t[] = {PW_DB_INT8, PW_DB_TEXT, PW_DB_INT8};
    pw_status rv = make_stmt(
        o, ST_CLAIM, "claim",
        "UPDATE {t} SET lease_until = now() + $1 * interval '1 millisecond'"
        " WHERE id IN (SELECT id FROM {t} WHERE published_time IS NULL AND dead_time IS NULL"
        " AND (lease_until IS NULL OR lease_until < now()) ORDER BY id LIMIT $2"
        " FOR UPDATE SKIP LOCKED) RETURNING *",
        2, claim_t);
    if (rv == PW_OK) {
        rv = make_stmt(o, ST_PUBLISHED, "published",
                       "UPDATE {t} SET published_time = now(), lease_until = NULL"
                       " WHERE id = ANY ($1::int8[])",
                       1, ids_t);
    }
    if (rv == PW_OK) {
        rv = make_stmt(o, ST_RETRY, "retry",
                       "UPDATE {t} SET attempts = attempts + 1, last_error = $2,"
                       " lease_until = now() + $3 * interval '1 millisecond' WHERE id = $1",
                       3, retry_t);
    }
    if (rv == PW_OK) {
        rv = make_stmt(o, ST_DEAD, "dead",
                       "UPDATE {t} SET attempts = attempts + 1, dead_time = now(), last_error = $2,"
                       " lease_until = NULL WHERE id = $1",
                       2, dead_t);
    }
    return rv;
}

pw_status svc_outbox_start(svc_outbox **out, uv_loop_t *loop, pw_db_pool *pool,
                           const svc_outbox_options *opts)
{
    *out = NULL;
    if (opts == NULL || opts->deliver == NULL || !identifier_ok(opts->table)) {
        return PW_INVALID_ARGUMENT;
    }
    svc_outbox *o = pw_calloc(1, sizeof(*o));
    if (o == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    o->loop = loop;
    o->pool = pool;
    o->o = *opts;
    o->o.batch = opts->batch > 0 ? opts->batch : 50;
    o->o.idle_ms = opts->idle_ms ? opts->idle_ms : 500;
    o->o.backoff_initial_ms = opts->backoff_initial_ms ? opts->backoff_initial_ms : 500;
    o->o.backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : 60000;
    o->o.lease_ms = opts->lease_ms ? opts->lease_ms : 30000;
    o->table = pw_strdup(opts->table);
    o->what = pw_strdup(opts->what ? opts->what : opts->table);
    o->rng = uv_hrtime() | 1;
    if (o->table == NULL || o->what == NULL || make_stmts(o) != PW_OK) {
        outbox_free(o);
        return PW_ERRNO(ENOMEM);
    }
    uv_timer_init(loop, &o->timer);
    o->timer.data = o;
    uv_timer_start(&o->timer, on_tick, 0, 0);
    *out = o;
    return PW_OK;
}
