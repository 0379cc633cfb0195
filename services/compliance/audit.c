/*
 * audit.c: AuditService, the append-only, hash-chained audit log
 * (docs/design/compliance.md, Audit log). An append locks the chain head,
 * assigns the next sequence and the time, builds the RFC 8785 canonical
 * bytes (jcs.c), chains their hash to the previous one and stores both; the
 * reporter's event id makes a retry add nothing. VerifyChain recomputes every
 * hash from the stored bytes and checks that the bytes are the row's fields.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <uv.h>
#include <paywire/alloc.h>
#include "compliance.h"
#include "jcs.h"

#define P(x) Paywire__Compliance__V1__##x
#define EVENT_COLS                                                                           \
    "sequence, actor, action, subject_id, source, time, detail::text AS detail, canonical, " \
    "previous_hash, hash"
#define VERIFY_PAGE 1000
#define EXPORT_PAGE 200

static const pw_db_stmt lock_head = {
    "audit_lock_head", "SELECT sequence, hash FROM audit_head WHERE id = 1 FOR UPDATE", 0, {0}};
static const pw_db_stmt find_event = {"audit_find_event",
                                      "SELECT sequence, hash, request_sha256 FROM audit_events "
                                      "WHERE reporter = $1 AND event_key = $2",
                                      2,
                                      {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt insert_event = {
    "audit_insert_event",
    "INSERT INTO audit_events (sequence, actor, action, subject_id, source, time, detail, "
    "canonical, previous_hash, hash, reporter, event_key, request_sha256)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    13,
    {PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TIMESTAMPTZ, PW_DB_JSONB,
     PW_DB_BYTEA, PW_DB_BYTEA, PW_DB_BYTEA, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA}};
static const pw_db_stmt move_head = {"audit_move_head",
                                     "UPDATE audit_head SET sequence = $1, hash = $2 WHERE id = 1",
                                     2,
                                     {PW_DB_INT8, PW_DB_BYTEA}};
static const pw_db_stmt head_sequence = {
    "audit_head_sequence", "SELECT sequence FROM audit_head WHERE id = 1", 0, {0}};
static const pw_db_stmt hash_at = {
    "audit_hash_at", "SELECT hash FROM audit_events WHERE sequence = $1", 1, {PW_DB_INT8}};
static const pw_db_stmt verify_page = {"audit_verify_page",
                                       "SELECT " EVENT_COLS " FROM audit_events"
                                       " WHERE sequence >= $1 AND sequence <= $2"
                                       " ORDER BY sequence LIMIT 1000",
                                       2,
                                       {PW_DB_INT8, PW_DB_INT8}};
static const pw_db_stmt export_page = {"audit_export_page",
                                       "SELECT " EVENT_COLS " FROM audit_events"
                                       " WHERE sequence > $1 AND ($2::timestamptz IS NULL"
                                       " OR time <= $2) ORDER BY sequence LIMIT 200",
                                       2,
                                       {PW_DB_INT8, PW_DB_TIMESTAMPTZ}};
static const pw_db_stmt query_page = {
    "audit_query_page",
    "SELECT " EVENT_COLS " FROM audit_events WHERE sequence > $1"
    " AND ($2 = '' OR actor = $2) AND ($3 = '' OR subject_id = $3) AND ($4 = '' OR action = $4)"
    " AND ($5::timestamptz IS NULL OR time >= $5) AND ($6::timestamptz IS NULL OR time < $6)"
    " ORDER BY sequence LIMIT $7",
    7,
    {PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TIMESTAMPTZ, PW_DB_TIMESTAMPTZ,
     PW_DB_INT8}};

/* ---- appending ---- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The fingerprint of what an event id stands for: the reported fields and the canonical detail. */
static void fingerprint(const audit_entry *e, const char *detail, size_t len, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 32;
    const char *parts[] = {e->actor, e->action, e->subject_id, e->source};
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; ok && i < 4; i++) {
        ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
    }
    ok = ok && EVP_DigestUpdate(ctx, detail, len) && EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
    PW_ASSERT(ok);
}

/* The chain head as a transaction holds it: locked, then moved once by every event it chains. */
typedef struct chain_head {
    int64_t sequence;
    uint8_t hash[32];
    int moved;
} chain_head;

/* In the transaction: locks the head, so appends are serialised with every other append. */
static void head_lock(svc_req *r, chain_head *h)
{
    svc_row head = svc_row_at(r, svc_tx_query(r, &lock_head, NULL, 0), 0);
    pw_slice ph = svc_bytes(head, "hash");
    if (ph.len != 32) {
        svc_abort(r, PW_INTERNAL, NULL, "the audit chain head is damaged");
    }
    h->sequence = svc_int64(head, "sequence");
    memcpy(h->hash, ph.base, 32);
    h->moved = 0;
}

/* Pipelines the head's new position, when events were chained. */
static void head_move(svc_req *r, const chain_head *h)
{
    if (h->moved) {
        pw_db_param p[] = {pw_db_int8(h->sequence), pw_db_bytea(h->hash, 32)};
        svc_tx_pipe(r, &move_head, p, 2);
    }
}

/*
 * Under the locked head h: appends e (detail: canonical bytes) once per (reporter, key), chained
 * after h, which moves on. Returns PW_OK with the event's sequence and hash (the earlier one's
 * for an event id appended before with the same content), or PW_FAILED_PRECONDITION when the
 * event id was appended with other content (nothing written).
 */
static pw_status chain_one(svc_req *r, chain_head *h, const char *reporter, const char *key,
                           const audit_entry *e, const char *detail, size_t detail_len,
                           int64_t *seq, uint8_t hash[32])
{
    uint8_t *fp = svc_alloc(r, 32);
    fingerprint(e, detail, detail_len, fp);
    pw_db_param k[] = {pw_db_text(reporter), pw_db_text(key)};
    const pw_db_result *found = svc_tx_query(r, &find_event, k, 2);
    if (pw_db_rows(found) == 1) {
        svc_row row = svc_row_at(r, found, 0);
        pw_slice sha = svc_bytes(row, "request_sha256");
        if (sha.len != 32 || memcmp(sha.base, fp, 32) != 0) {
            return PW_FAILED_PRECONDITION;
        }
        pw_slice hh = svc_bytes(row, "hash");
        memcpy(hash, hh.base, hh.len == 32 ? 32 : 0);
        *seq = svc_int64(row, "sequence");
        return PW_OK;
    }
    uint8_t *prev = svc_alloc(r, 32);
    memcpy(prev, h->hash, 32);
    jcs_event ev = {h->sequence + 1, e->actor, e->action, e->subject_id,
                    e->source,       now_us(), detail,    detail_len};
    pw_buf canon = {0};
    if (jcs_event_bytes(&ev, &canon) != PW_OK) {
        pw_buf_reset(&canon);
        svc_abort(r, PW_RESOURCE_EXHAUSTED, NULL, "out of memory");
    }
    char *bytes = svc_alloc(r, canon.len);
    size_t len = canon.len;
    memcpy(bytes, canon.data, len);
    pw_buf_reset(&canon);
    uint8_t *out = svc_alloc(r, 32);
    jcs_chain_hash(prev, bytes, len, out);
    pw_db_param p[] = {
        pw_db_int8(ev.sequence),   pw_db_text(e->actor),    pw_db_text(e->action),
        pw_db_text(e->subject_id), pw_db_text(e->source),   pw_db_timestamptz(ev.time_us),
        pw_db_jsonb(detail),       pw_db_bytea(bytes, len), pw_db_bytea(prev, 32),
        pw_db_bytea(out, 32),      pw_db_text(reporter),    pw_db_text(key),
        pw_db_bytea(fp, 32)};
    svc_tx_pipe(r, &insert_event, p, 13);
    h->sequence = ev.sequence;
    memcpy(h->hash, out, 32);
    h->moved = 1;
    memcpy(hash, out, 32);
    *seq = ev.sequence;
    return PW_OK;
}

/* In the transaction: e appended once per (reporter, key); a reused id with other content ends
 * the handler (rolled back). Returns its sequence. */
static int64_t append_once(svc_req *r, const char *reporter, const char *key, const audit_entry *e,
                           const char *detail, size_t detail_len, uint8_t hash[32])
{
    chain_head h;
    head_lock(r, &h);
    int64_t seq = 0;
    if (chain_one(r, &h, reporter, key, e, detail, detail_len, &seq, hash) != PW_OK) {
        svc_abort(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED",
                  "event id \"%s\" was already appended with different content", key);
    }
    head_move(r, &h);
    return seq;
}

int64_t audit_record(svc_req *r, const char *key, const audit_entry *e)
{
    pw_buf d = {0};
    const char *json = e->detail_json && e->detail_json[0] ? e->detail_json : "{}";
    if (jcs_canonicalize(json, strlen(json), 1, &d, NULL, 0) != PW_OK) {
        pw_buf_reset(&d);
        svc_abort(r, PW_INTERNAL, NULL, "audit detail of %s is not canonical JSON", e->action);
    }
    char *detail = svc_alloc(r, d.len + 1);
    memcpy(detail, d.data, d.len);
    size_t len = d.len;
    pw_buf_reset(&d);
    uint8_t hash[32];
    return append_once(r, COMPLIANCE_IDENTITY, key, e, detail, len, hash);
}

char *audit_detail(svc_req *r, const char *const *kv, int n)
{
    pw_buf b = {0};
    pw_status rv = pw_buf_append(&b, "{", 1);
    for (int i = 0; rv == PW_OK && i < n; i++) {
        rv = pw_buf_append(&b, i ? "," : "", i ? 1 : 0);
        if (rv == PW_OK) {
            rv = jcs_string(&b, kv[2 * i], strlen(kv[2 * i]));
        }
        if (rv == PW_OK) {
            rv = pw_buf_append(&b, ":", 1);
        }
        if (rv == PW_OK) {
            rv = jcs_string(&b, kv[2 * i + 1], strlen(kv[2 * i + 1]));
        }
    }
    if (rv == PW_OK) {
        rv = pw_buf_append(&b, "}", 1);
    }
    char *out = svc_alloc(r, b.len + 1);
    if (rv == PW_OK) {
        memcpy(out, b.data, b.len);
    }
    pw_buf_reset(&b);
    if (rv != PW_OK) {
        svc_abort(r, PW_RESOURCE_EXHAUSTED, NULL, "out of memory");
    }
    return out;
}

/* ---- AppendEvent ---- */

typedef struct append_args {
    const char *key;
    audit_entry e;
    /* The detail's canonical bytes, in call memory. */
    const char *detail;
    size_t detail_len;
} append_args;

/*
 * Batching (docs/design/compliance.md, Audit log): on each worker loop, an append that arrives
 * while another append's transaction is in flight waits in the loop's queue (its handler
 * suspended); when that transaction ends, the first waiting append leads the next one, which
 * chains every queued event under one head lock and commits once. One commit per batch instead
 * of per event is what lifts throughput when the queue is deep; alone, an append is a batch of
 * one. The leader resumes the others from the loop (a timer), each with its own outcome, or
 * with UNAVAILABLE when the batch could not commit (nothing of it was written).
 */
#define MAX_LOOPS 64
#define MAX_BATCH 200

typedef struct append_wait {
    svc_req *r;
    append_args a;
    char reporter[256];
    /* The outcome, set by the batch that chained it. */
    pw_status code;
    int64_t sequence;
    uint8_t hash[32];
    /* 1: resumed to lead the next batch. */
    int lead;
    struct append_wait *next;        /* in the queue, then in its batch */
    struct append_wait *resume_next; /* in the list a timer resumes */
} append_wait;

typedef struct audit_queue {
    uv_loop_t *loop;
    int busy;
    append_wait *head, *tail;
} audit_queue;

struct audit_queues {
    uv_mutex_t mu;
    audit_queue q[MAX_LOOPS];
};

pw_status audit_queues_new(audit_queues **out)
{
    audit_queues *a = pw_calloc(1, sizeof(*a));
    if (a == NULL || uv_mutex_init(&a->mu) != 0) {
        pw_free(a);
        return PW_ERRNO(ENOMEM);
    }
    *out = a;
    return PW_OK;
}

void audit_queues_free(audit_queues *a)
{
    if (a != NULL) {
        uv_mutex_destroy(&a->mu);
        pw_free(a);
    }
}

/* This loop's queue (only ever touched from its loop after the lookup). */
static audit_queue *queue_of(svc_req *r)
{
    compliance_state *st = r->app->service;
    uv_loop_t *loop = pw_call_loop(r->call);
    audit_queue *q = NULL;
    uv_mutex_lock(&st->queues->mu);
    for (int i = 0; i < MAX_LOOPS && q == NULL; i++) {
        if (st->queues->q[i].loop == loop || st->queues->q[i].loop == NULL) {
            q = &st->queues->q[i];
            q->loop = loop;
        }
    }
    uv_mutex_unlock(&st->queues->mu);
    PW_ASSERT(q != NULL); /* more worker loops than MAX_LOOPS */
    return q;
}

static void batch_tx(svc_req *r, const void *arg)
{
    append_wait *first = (append_wait *)arg;
    chain_head h;
    head_lock(r, &h);
    for (append_wait *w = first; w != NULL; w = w->next) {
        w->code = chain_one(r, &h, w->reporter, w->a.key, &w->a.e, w->a.detail, w->a.detail_len,
                            &w->sequence, w->hash);
    }
    head_move(r, &h);
    svc_tx_commit(r);
}

typedef struct handoff {
    audit_queue *q;
    append_wait *leader;
    int committed;
} handoff;

static void resume_closed(uv_handle_t *h)
{
    pw_free(h);
}

/* From the loop: resumes the batch's other appends and the next leader. */
static void resume_fired(uv_timer_t *t)
{
    append_wait *w = t->data;
    uv_close((uv_handle_t *)t, resume_closed);
    while (w != NULL) {
        append_wait *next = w->resume_next; /* w ends with its call once resumed */
        svc_resume(w->r);
        w = next;
    }
}

/* At the leader's end, whichever way: the others' outcomes, and the queue handed on. */
static void lead_end(svc_req *r, void *arg)
{
    handoff *ho = arg;
    append_wait *list = NULL, **tail = &list;
    for (append_wait *w = ho->leader->next; w != NULL; w = w->next) {
        if (!ho->committed) {
            w->code = PW_UNAVAILABLE;
        }
        *tail = w;
        tail = &w->resume_next;
    }
    audit_queue *q = ho->q;
    append_wait *lead = q->head;
    if (lead != NULL) {
        q->head = lead->next;
        q->tail = q->head ? q->tail : NULL;
        lead->next = NULL;
        lead->lead = 1;
        *tail = lead;
    } else {
        q->busy = 0;
    }
    if (list != NULL) {
        uv_timer_t *t = pw_calloc(1, sizeof(*t));
        PW_ASSERT(t != NULL); /* service binaries abort on out-of-memory first */
        uv_timer_init(pw_call_loop(r->call), t);
        t->data = list;
        uv_timer_start(t, resume_fired, 0, 0);
    }
}

/* Leads a batch: w and what waits in the queue now, in one transaction. */
static void lead(svc_req *r, audit_queue *q, append_wait *w)
{
    int n = 1;
    append_wait **tail = &w->next;
    while (q->head != NULL && n < MAX_BATCH) {
        append_wait *x = q->head;
        q->head = x->next;
        x->next = NULL;
        *tail = x;
        tail = &x->next;
        n++;
    }
    q->tail = q->head ? q->tail : NULL;
    handoff *ho = svc_alloc(r, sizeof(*ho));
    ho->q = q;
    ho->leader = w;
    svc_at_end(r, lead_end, ho);
    svc_transaction(r, batch_tx, w);
    ho->committed = 1;
}

static void answer(svc_req *r, const append_wait *w)
{
    if (w->code == PW_FAILED_PRECONDITION) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED",
                        "event id \"%s\" was already appended with different content", w->a.key);
    }
    if (w->code != PW_OK) {
        svc_fail(r, w->code,
                 "the batch this append was in could not be committed; retry with "
                 "the same event id");
    }
    P(AppendEventResponse) resp = PAYWIRE__COMPLIANCE__V1__APPEND_EVENT_RESPONSE__INIT;
    char hex[65];
    jcs_hex(w->hash, hex);
    resp.sequence = w->sequence;
    resp.hash = svc_strdup(r, hex);
    svc_reply(r, &resp.base);
}

/* Appends a's event: alone, or in the loop's next batch when one is in flight. */
static void append_batched(svc_req *r, const append_args *a)
{
    append_wait *w = svc_alloc(r, sizeof(*w));
    w->r = r;
    w->a = *a;
    snprintf(w->reporter, sizeof(w->reporter), "%s", r->caller.identity);
    audit_queue *q = queue_of(r);
    if (q->busy) {
        if (q->tail != NULL) {
            q->tail->next = w;
        } else {
            q->head = w;
        }
        q->tail = w;
        svc_suspend(r);
        if (!w->lead) {
            answer(r, w);
            return;
        }
    } else {
        q->busy = 1;
    }
    lead(r, q, w);
    answer(r, w);
}

static void check_text(svc_req *r, const char *field, const char *s, size_t max)
{
    if (!svc_text_ok(s, max) || !jcs_utf8_ok(s, strlen(s))) {
        svc_violation(r, field, "required: 1 to 256 characters of UTF-8 text");
    }
}

SVC_HANDLER(append_event, P(AppendEventRequest))
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key",
                      "required: the reporter's own event id, 1-128 printable ASCII characters");
    }
    const P(AuditEvent) *e = req->event;
    if (e == NULL) {
        svc_violation(r, "event", "required");
        svc_check(r);
        return;
    }
    check_text(r, "event.actor", e->actor, 256);
    check_text(r, "event.action", e->action, 256);
    check_text(r, "event.subject_id", e->subject_id, 256);
    check_text(r, "event.source", e->source, 256);
    const char *json = e->detail_json[0] ? e->detail_json : "{}";
    pw_buf detail = {0};
    char why[160] = "";
    pw_status rv = jcs_canonicalize(json, strlen(json), 1, &detail, why, sizeof(why));
    append_args a = {.key = req->idempotency_key,
                     .e = {e->actor, e->action, e->subject_id, e->source, NULL}};
    if (rv == PW_OK) {
        char *copy = svc_alloc(r, detail.len + 1); /* zeroed: NUL-terminated */
        memcpy(copy, detail.data, detail.len);
        a.detail = copy;
        a.detail_len = detail.len;
    } else {
        char msg[256];
        snprintf(msg, sizeof(msg), "a JSON object (I-JSON, integers within +-(2^53 - 1) only): %s",
                 why);
        svc_violation(r, "event.detail_json", svc_strdup(r, msg));
    }
    pw_buf_reset(&detail);
    svc_check(r);
    svc_authenticate(r, NULL);
    append_batched(r, &a);
}

/* ---- reading events ---- */

/* An AuditEvent from a row with the EVENT_COLS columns, in call memory. */
static P(AuditEvent) * event_from_row(svc_row row)
{
    P(AuditEvent) *e = svc_alloc(row.r, sizeof(*e));
    paywire__compliance__v1__audit_event__init(e);
    e->sequence = svc_int64(row, "sequence");
    e->actor = svc_text(row, "actor");
    e->action = svc_text(row, "action");
    e->subject_id = svc_text(row, "subject_id");
    e->source = svc_text(row, "source");
    e->time = svc_time(row, "time");
    e->detail_json = svc_text(row, "detail");
    char hex[65];
    pw_slice h = svc_bytes(row, "hash");
    pw_slice ph = svc_bytes(row, "previous_hash");
    if (h.len == 32) {
        jcs_hex(h.base, hex);
        e->hash = svc_strdup(row.r, hex);
    }
    if (ph.len == 32) {
        jcs_hex(ph.base, hex);
        e->previous_hash = svc_strdup(row.r, hex);
    }
    pw_slice c = svc_bytes(row, "canonical");
    uint8_t *copy = svc_alloc(row.r, c.len);
    memcpy(copy, c.base, c.len);
    e->canonical.data = copy;
    e->canonical.len = c.len;
    return e;
}

static int64_t ts_us(const struct Google__Protobuf__Timestamp *t)
{
    return t->seconds * 1000000 + t->nanos / 1000;
}

/* The filters of a QueryEvents request as text, for its page tokens. */
static char *query_filters(svc_req *r, const P(QueryEventsRequest) * q)
{
    char f[1024];
    snprintf(f, sizeof(f), "%s\n%s\n%s\n%lld\n%lld", q->actor, q->subject_id, q->action,
             q->start_time ? (long long)ts_us(q->start_time) : -1LL,
             q->end_time ? (long long)ts_us(q->end_time) : -1LL);
    return svc_strdup(r, f);
}

int64_t page_after(svc_req *r, const char *token, const char *filters)
{
    char pos[32] = "";
    char *end = NULL;
    if (!svc_page_token_read(r, token, filters, pos, sizeof(pos))) {
        return 0;
    }
    long long after = strtoll(pos, &end, 10);
    if (pos[0] && (end == NULL || *end != '\0' || after < 0)) {
        svc_violation(r, "page_token", "not a token of this list");
        return 0;
    }
    return after;
}

char *page_token(svc_req *r, int64_t last, const char *filters)
{
    char pos[32];
    snprintf(pos, sizeof(pos), "%lld", (long long)last);
    return svc_page_token(r, pos, filters);
}

int page_size(svc_req *r, int32_t size)
{
    if (size < 0) {
        svc_violation(r, "page_size", "0 (the default, 50) to 500");
    }
    return svc_page_size(size < 0 ? 0 : size);
}

SVC_HANDLER(query_events, P(QueryEventsRequest))
{
    char *filters = query_filters(r, req);
    int64_t after = page_after(r, req->page_token, filters);
    int want = page_size(r, req->page_size);
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {
        pw_db_int8(after),
        pw_db_text(req->actor),
        pw_db_text(req->subject_id),
        pw_db_text(req->action),
        req->start_time ? pw_db_timestamptz(ts_us(req->start_time)) : pw_db_null(PW_DB_TIMESTAMPTZ),
        req->end_time ? pw_db_timestamptz(ts_us(req->end_time)) : pw_db_null(PW_DB_TIMESTAMPTZ),
        pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &query_page, p, 7);
    int n = pw_db_rows(res);
    P(QueryEventsResponse) resp = PAYWIRE__COMPLIANCE__V1__QUERY_EVENTS_RESPONSE__INIT;
    int shown = n > want ? want : n;
    resp.events = svc_alloc(r, sizeof(*resp.events) * (size_t)(shown ? shown : 1));
    for (int i = 0; i < shown; i++) {
        resp.events[i] = event_from_row(svc_row_at(r, res, i));
    }
    resp.n_events = (size_t)shown;
    if (n > want) {
        resp.next_page_token = page_token(r, resp.events[shown - 1]->sequence, filters);
    }
    svc_reply(r, &resp.base);
}

/*
 * One row checked against the chain: its sequence is the one expected, its
 * previous hash the prior event's, its hash that of the stored bytes, and the
 * stored bytes are the canonical form of its columns. 1 when it holds.
 */
static int row_verifies(const pw_db_result *res, int i, int64_t want, const uint8_t prev[32])
{
    int64_t seq = 0, t = 0;
    const char *actor, *action, *subject, *source, *detail;
    size_t l;
    const uint8_t *canon, *ph, *h;
    size_t canon_len, ph_len, h_len;
    if (pw_db_get_int64(res, i, 0, &seq) != PW_OK || seq != want ||
        pw_db_get_text(res, i, 1, &actor, &l) != PW_OK ||
        pw_db_get_text(res, i, 2, &action, &l) != PW_OK ||
        pw_db_get_text(res, i, 3, &subject, &l) != PW_OK ||
        pw_db_get_text(res, i, 4, &source, &l) != PW_OK ||
        pw_db_get_timestamptz(res, i, 5, &t) != PW_OK ||
        pw_db_get_text(res, i, 6, &detail, &l) != PW_OK ||
        pw_db_get_bytea(res, i, 7, &canon, &canon_len) != PW_OK ||
        pw_db_get_bytea(res, i, 8, &ph, &ph_len) != PW_OK ||
        pw_db_get_bytea(res, i, 9, &h, &h_len) != PW_OK || ph_len != 32 || h_len != 32 ||
        memcmp(ph, prev, 32) != 0) {
        return 0;
    }
    uint8_t again[32];
    jcs_chain_hash(prev, canon, canon_len, again);
    if (memcmp(again, h, 32) != 0) {
        return 0;
    }
    pw_buf d = {0}, c = {0};
    int ok = jcs_canonicalize(detail, l, 1, &d, NULL, 0) == PW_OK;
    jcs_event ev = {seq, actor, action, subject, source, t, (const char *)d.data, d.len};
    ok = ok && jcs_event_bytes(&ev, &c) == PW_OK && c.len == canon_len &&
         memcmp(c.data, canon, canon_len) == 0;
    pw_buf_reset(&d);
    pw_buf_reset(&c);
    return ok;
}

SVC_HANDLER(verify_chain, P(VerifyChainRequest))
{
    if (req->from_sequence < 0) {
        svc_violation(r, "from_sequence", "0 (the first) or a sequence");
    }
    if (req->to_sequence < 0 || (req->to_sequence != 0 && req->to_sequence < req->from_sequence)) {
        svc_violation(r, "to_sequence", "0 (the last) or a sequence not before from_sequence");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    int64_t from = req->from_sequence ? req->from_sequence : 1;
    int64_t last = svc_int64(svc_row_at(r, svc_query(r, &head_sequence, NULL, 0), 0), "sequence");
    int64_t to = req->to_sequence ? req->to_sequence : last;
    if (to > last) {
        to = last;
    }
    uint8_t prev[32] = {0};
    P(VerifyChainResponse) resp = PAYWIRE__COMPLIANCE__V1__VERIFY_CHAIN_RESPONSE__INIT;
    int64_t next = from;
    if (from > 1 && from <= to) {
        pw_db_param p = pw_db_int8(from - 1);
        const pw_db_result *res = svc_query(r, &hash_at, &p, 1);
        const uint8_t *h;
        size_t len;
        if (pw_db_rows(res) != 1 || pw_db_get_bytea(res, 0, 0, &h, &len) != PW_OK || len != 32) {
            resp.first_broken_sequence = from - 1;
            next = to + 1;
        } else {
            memcpy(prev, h, 32);
        }
    }
    while (next <= to && resp.first_broken_sequence == 0) {
        pw_db_param p[] = {pw_db_int8(next), pw_db_int8(to)};
        const pw_db_result *res = svc_query(r, &verify_page, p, 2);
        int n = pw_db_rows(res);
        if (n == 0) {
            resp.first_broken_sequence = next; /* missing rows: a gap */
            break;
        }
        for (int i = 0; i < n; i++) {
            if (!row_verifies(res, i, next, prev)) {
                resp.first_broken_sequence = next;
                break;
            }
            const uint8_t *h;
            size_t len;
            pw_db_get_bytea(res, i, 9, &h, &len);
            memcpy(prev, h, 32);
            resp.events_checked++;
            next++;
        }
    }
    resp.intact = resp.first_broken_sequence == 0;
    svc_reply(r, &resp.base);
}

SVC_HANDLER(export_events, P(ExportEventsRequest))
{
    if (req->after_sequence < 0) {
        svc_violation(r, "after_sequence", "0 (from the first) or a sequence");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    int64_t after = req->after_sequence;
    /* One page's messages, reused: their strings are borrowed from the result until the next
     * wait, and pw_call_send copies. */
    P(AuditEvent) *ev = svc_alloc(r, sizeof(*ev) * EXPORT_PAGE);
    P(AuditEvent) **evp = svc_alloc(r, sizeof(*evp) * EXPORT_PAGE);
    struct Google__Protobuf__Timestamp *ts = svc_alloc(r, sizeof(*ts) * EXPORT_PAGE);
    char(*hex)[2][65] = svc_alloc(r, sizeof(*hex) * EXPORT_PAGE);
    for (;;) {
        pw_db_param p[] = {pw_db_int8(after), req->end_time
                                                  ? pw_db_timestamptz(ts_us(req->end_time))
                                                  : pw_db_null(PW_DB_TIMESTAMPTZ)};
        const pw_db_result *res = svc_query(r, &export_page, p, 2);
        int n = pw_db_rows(res);
        if (n == 0) {
            break;
        }
        for (int i = 0; i < n; i++) {
            paywire__compliance__v1__audit_event__init(&ev[i]);
            google__protobuf__timestamp__init(&ts[i]);
            const char *s;
            size_t l;
            const uint8_t *b;
            int64_t t = 0;
            pw_db_get_int64(res, i, 0, &ev[i].sequence);
            char **text[] = {&ev[i].actor, &ev[i].action, &ev[i].subject_id, &ev[i].source};
            for (int c = 0; c < 4; c++) {
                if (pw_db_get_text(res, i, 1 + c, &s, &l) == PW_OK) {
                    *text[c] = (char *)s;
                }
            }
            pw_db_get_timestamptz(res, i, 5, &t);
            ts[i].seconds = t / 1000000;
            ts[i].nanos = (int32_t)(t % 1000000) * 1000;
            ev[i].time = &ts[i];
            if (pw_db_get_text(res, i, 6, &s, &l) == PW_OK) {
                ev[i].detail_json = (char *)s;
            }
            if (pw_db_get_bytea(res, i, 7, &b, &l) == PW_OK) {
                ev[i].canonical.data = (uint8_t *)b;
                ev[i].canonical.len = l;
            }
            for (int c = 0; c < 2; c++) {
                hex[i][c][0] = '\0';
                if (pw_db_get_bytea(res, i, 9 - c, &b, &l) == PW_OK && l == 32) {
                    jcs_hex(b, hex[i][c]);
                }
            }
            ev[i].hash = hex[i][0];
            ev[i].previous_hash = hex[i][1];
            evp[i] = &ev[i];
        }
        P(ExportEventsResponse) page = PAYWIRE__COMPLIANCE__V1__EXPORT_EVENTS_RESPONSE__INIT;
        page.events = evp;
        page.n_events = (size_t)n;
        after = ev[n - 1].sequence;
        svc_wait_writable(r);
        svc_reply(r, &page.base);
        if (n < EXPORT_PAGE) {
            break;
        }
    }
    svc_stream_end(r); /* an empty export is a stream of no messages */
}

void audit_handlers_init(paywire_compliance_v1_audit_service_handlers *h)
{
    h->append_event = append_event_h;
    h->query_events = query_events_h;
    h->verify_chain = verify_chain_h;
    h->export_events = export_events_h;
}
