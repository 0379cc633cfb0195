/*
 * events_api.c: ListEvents (docs/design/orchestration.md, "Events"): a
 * merchant's events as webhooks deliver them, oldest first, by the paging
 * contract (api-conventions.md, Lists), so a merchant can catch up on what
 * a webhook missed. The order is the outbox's row id (the order events were
 * written in; published-sequence numbers do not exist yet, see "As built"),
 * which is also Event.sequence. Each event carries its object as it is now
 * (the payment, or the refund), not as it was at the event.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "orchestration.h"
#include "paywire/orchestration/v1/events.pw.h"

typedef Paywire__Orchestration__V1__Event Event;

static const pw_db_stmt event_by_id = {
    .name = "orch_events_after",
    .sql = "SELECT id FROM outbox WHERE event_id = $1 AND merchant_id = $2",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
/* $3: the types wanted, comma-separated ('' for all). Internal events are never listed. */
static const pw_db_stmt events_page = {
    .name = "orch_events_page",
    .sql = "SELECT e.id, e.event_id, e.type, e.payment_id, coalesce(e.payload->>'refund_id', '')"
           " AS refund_id, p.mode, (extract(epoch FROM e.create_time) * 1000000)::int8 AS create_us"
           " FROM outbox e JOIN payments p ON p.id = e.payment_id"
           " WHERE e.merchant_id = $1 AND e.id > $2"
           " AND ($3 = '' OR e.type = ANY (string_to_array($3, ',')))"
           " AND e.type NOT IN ('payment.held', 'payment.hold_released', 'deposit.confirmed')"
           " ORDER BY e.id LIMIT $4",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_INT8},
};

/* The types filter as one comma-separated text (checked field by field). */
static char *types_filter(svc_req *r, const Paywire__Orchestration__V1__ListEventsRequest *req)
{
    size_t cap = 1;
    for (size_t i = 0; i < req->n_types; i++) {
        cap += strlen(req->types[i]) + 1;
    }
    char *out = svc_alloc(r, cap);
    out[0] = '\0';
    for (size_t i = 0; i < req->n_types; i++) {
        const char *t = req->types[i];
        if (!svc_text_ok(t, 64) || strchr(t, '.') == NULL || strchr(t, ',') != NULL ||
            strchr(t, '|') != NULL) {
            char f[32];
            snprintf(f, sizeof(f), "types[%zu]", i);
            svc_violation(r, f, "an event type such as \"payment.captured\"");
        }
        strcat(out, i ? "," : "");
        strcat(out, t);
    }
    return out;
}

/* One row of the page, copied (reading an event's object waits, which ends the result's life). */
typedef struct listed {
    char *event_id, *type, *payment_id, *refund_id;
    int64_t id, create_us;
    int live;
} listed;

static listed listed_of(svc_row row)
{
    listed l = {
        .event_id = svc_text(row, "event_id"),
        .type = svc_text(row, "type"),
        .payment_id = svc_text(row, "payment_id"),
        .refund_id = svc_text(row, "refund_id"),
        .id = svc_int64(row, "id"),
        .create_us = svc_int64(row, "create_us"),
        .live = strcmp(svc_text(row, "mode"), "LIVE") == 0,
    };
    return l;
}

static Event *event_of(svc_req *r, const listed *l, const char *merchant_id)
{
    Event *e = svc_alloc(r, sizeof(*e));
    paywire__orchestration__v1__event__init(e);
    e->id = l->event_id;
    e->merchant_id = svc_strdup(r, merchant_id);
    e->type = l->type;
    e->sequence = l->id;
    e->create_time = svc_timestamp(r, l->create_us);
    e->mode = l->live ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    if (l->refund_id[0] != '\0') {
        e->object_case = PAYWIRE__ORCHESTRATION__V1__EVENT__OBJECT_REFUND;
        e->refund = orch_refund_read(r, l->refund_id);
    } else {
        e->object_case = PAYWIRE__ORCHESTRATION__V1__EVENT__OBJECT_PAYMENT;
        e->payment = orch_payment_read(r, l->payment_id);
    }
    return e;
}

SVC_HANDLER(list_events, Paywire__Orchestration__V1__ListEventsRequest)
{
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (req->after_event_id[0] != '\0' &&
        (strncmp(req->after_event_id, "evt_", 4) != 0 || !svc_text_ok(req->after_event_id, 64))) {
        svc_violation(r, "after_event_id", "an event id (\"evt_…\"), or empty");
    }
    char *types = types_filter(r, req);
    size_t flen = strlen(req->merchant_id) + strlen(req->after_event_id) + strlen(types) + 3;
    char *filter = svc_alloc(r, flen);
    snprintf(filter, flen, "%s|%s|%s", req->merchant_id, req->after_event_id, types);
    char position[32];
    svc_page_token_read(r, req->page_token, filter, position, sizeof(position));
    svc_check(r);
    svc_authenticate(r, "payments:read");
    svc_owns(r, req->merchant_id, "merchant");
    int64_t after = 0;
    if (position[0] != '\0') {
        sscanf(position, "%" SCNd64, &after);
    } else if (req->after_event_id[0] != '\0') {
        pw_db_param p[] = {pw_db_text(req->after_event_id), pw_db_text(req->merchant_id)};
        const pw_db_result *res = svc_query(r, &event_by_id, p, 2);
        if (pw_db_rows(res) != 1) {
            svc_fail_reason(r, PW_OUT_OF_RANGE, "CURSOR_EXPIRED",
                            "after_event_id %s is not an event of this merchant that is kept",
                            req->after_event_id);
        }
        after = svc_int64(svc_row_at(r, res, 0), "id");
    }
    int want = svc_page_size(req->page_size);
    pw_db_param p[] = {pw_db_text(req->merchant_id), pw_db_int8(after), pw_db_text(types),
                       pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &events_page, p, 4);
    int rows = pw_db_rows(res), n = rows > want ? want : rows;
    Paywire__Orchestration__V1__ListEventsResponse resp =
        PAYWIRE__ORCHESTRATION__V1__LIST_EVENTS_RESPONSE__INIT;
    resp.events = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.events));
    listed *page = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*page));
    for (int i = 0; i < n; i++) {
        page[i] = listed_of(svc_row_at(r, res, i));
    }
    for (int i = 0; i < n; i++) {
        resp.events[resp.n_events++] = event_of(r, &page[i], req->merchant_id);
    }
    if (rows > want) {
        char last[32];
        snprintf(last, sizeof(last), "%" PRId64, page[n - 1].id);
        resp.next_page_token = svc_page_token(r, last, filter);
    }
    svc_reply(r, &resp.base);
}

void orch_list_events_h(pw_call *call, const Paywire__Orchestration__V1__ListEventsRequest *req,
                        void *app)
{
    list_events_h(call, req, app);
}

/*
 * EventService's dead letters (docs/design/orchestration.md, "Outbox"): the
 * rows an outbox consumer refused for good (dead_time set by svc_outbox), per
 * consumer: "ledger" (outbox, to finance) and "compliance" (monitoring_events).
 * Operators only (internal callers). Re-driving clears dead_time so the
 * consumer delivers the row again (its receivers de-duplicate by event id);
 * retry_time records it. A row re-driven and not dead again is answered as it
 * is, so a repeated RetryDeadLetter changes nothing.
 */
#define DEAD_COLS                                                                           \
    "x.id, x.event_id, x.last_error, (extract(epoch FROM x.dead_time) * 1000000)::int8 AS " \
    "dead_us,"                                                                              \
    " coalesce((extract(epoch FROM x.retry_time) * 1000000)::int8, 0) AS retry_us"
#define DEAD_ROWS                                                                             \
    "SELECT 0 AS c, 'ledger' AS consumer, " DEAD_COLS ", x.dead_time IS NOT NULL AS dead"     \
    " FROM outbox x UNION ALL SELECT 1, 'compliance', " DEAD_COLS ", x.dead_time IS NOT NULL" \
    " FROM monitoring_events x"
#define DEAD_EVENT                                                                             \
    "SELECT d.*, e.id AS seq, e.merchant_id, e.type, e.payment_id,"                            \
    " coalesce(e.payload->>'refund_id', '') AS refund_id, p.mode,"                             \
    " (extract(epoch FROM e.create_time) * 1000000)::int8 AS create_us FROM (" DEAD_ROWS ") d" \
    " JOIN outbox e ON e.event_id = d.event_id JOIN payments p ON p.id = e.payment_id"

/* $1 consumer ('' for all), ($2, $3) the last (consumer index, id) sent, $4 rows. */
static const pw_db_stmt dead_page = {
    .name = "orch_dead_letters_page",
    .sql =
        DEAD_EVENT " WHERE d.dead AND ($1 = '' OR d.consumer = $1)"
                   " AND (d.c > $2 OR (d.c = $2 AND d.id < $3)) ORDER BY d.c, d.id DESC LIMIT $4",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_INT8, PW_DB_INT8, PW_DB_INT8},
};
static const pw_db_stmt dead_one = {
    .name = "orch_dead_letter",
    .sql = DEAD_EVENT " WHERE d.consumer = $1 AND d.event_id = $2"
                      " AND (d.dead OR d.retry_us <> 0)",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt redrive_ledger = {
    .name = "orch_dead_letter_redrive_ledger",
    .sql = "UPDATE outbox SET dead_time = NULL, lease_until = NULL, attempts = 0,"
           " retry_time = now() WHERE event_id = $1 AND dead_time IS NOT NULL",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt redrive_compliance = {
    .name = "orch_dead_letter_redrive_compliance",
    .sql = "UPDATE monitoring_events SET dead_time = NULL, lease_until = NULL, attempts = 0,"
           " retry_time = now() WHERE event_id = $1 AND dead_time IS NOT NULL",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

/* The gRPC code of svc_outbox's last_error ("NAME: message"), 2 (UNKNOWN) if unnamed. */
static int32_t error_code(const char *last_error)
{
    for (int c = 0; c <= 16; c++) {
        const char *name = pw_status_str((pw_status)c);
        size_t n = strlen(name);
        if (strncmp(last_error, name, n) == 0 && last_error[n] == ':') {
            return c;
        }
    }
    return PW_UNKNOWN;
}

/* A dead letter from its row, its event still to read (event_of waits, which ends the row's life).
 */
typedef struct dead_row {
    Paywire__Orchestration__V1__DeadLetter *d;
    listed l;
    char *merchant_id;
    int64_t c, id;
} dead_row;

static dead_row dead_row_of(svc_req *r, svc_row row)
{
    dead_row out = {.d = svc_alloc(r, sizeof(*out.d))};
    Paywire__Orchestration__V1__DeadLetter *d = out.d;
    paywire__orchestration__v1__dead_letter__init(d);
    d->consumer = svc_text(row, "consumer");
    char *error = svc_text(row, "last_error");
    d->code = error_code(error);
    char *colon = strstr(error, ": ");
    d->message = colon != NULL ? colon + 2 : error;
    if (svc_bool(row, "dead")) {
        d->dead_time = svc_timestamp(r, svc_int64(row, "dead_us"));
    }
    int64_t retry_us = svc_int64(row, "retry_us");
    d->retry_time = retry_us != 0 ? svc_timestamp(r, retry_us) : NULL;
    out.l = listed_of(row);
    out.l.id = svc_int64(row, "seq");
    out.merchant_id = svc_text(row, "merchant_id");
    out.c = svc_int64(row, "c");
    out.id = svc_int64(row, "id");
    return out;
}

static Paywire__Orchestration__V1__DeadLetter *dead_letter_of(svc_req *r, dead_row *row)
{
    row->d->event = event_of(r, &row->l, row->merchant_id);
    return row->d;
}

static int consumer_ok(const char *c)
{
    return strcmp(c, "ledger") == 0 || strcmp(c, "compliance") == 0;
}

SVC_HANDLER(list_dead_letters, Paywire__Orchestration__V1__ListDeadLettersRequest)
{
    if (req->consumer[0] != '\0' && !consumer_ok(req->consumer)) {
        svc_violation(r, "consumer", "\"ledger\", \"compliance\", or empty for every consumer");
    }
    char position[48];
    svc_page_token_read(r, req->page_token, req->consumer, position, sizeof(position));
    svc_check(r);
    svc_authenticate(r, "events:admin");
    int64_t c = 0, id = INT64_MAX;
    if (position[0] != '\0') {
        sscanf(position, "%" SCNd64 ":%" SCNd64, &c, &id);
    }
    int want = svc_page_size(req->page_size);
    pw_db_param p[] = {pw_db_text(req->consumer), pw_db_int8(c), pw_db_int8(id),
                       pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &dead_page, p, 4);
    int rows = pw_db_rows(res), n = rows > want ? want : rows;
    Paywire__Orchestration__V1__ListDeadLettersResponse resp =
        PAYWIRE__ORCHESTRATION__V1__LIST_DEAD_LETTERS_RESPONSE__INIT;
    resp.dead_letters = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.dead_letters));
    dead_row *page = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*page));
    for (int i = 0; i < n; i++) {
        page[i] = dead_row_of(r, svc_row_at(r, res, i));
    }
    for (int i = 0; i < n; i++) {
        resp.dead_letters[resp.n_dead_letters++] = dead_letter_of(r, &page[i]);
    }
    if (rows > want) {
        char last[48];
        snprintf(last, sizeof(last), "%" PRId64 ":%" PRId64, page[n - 1].c, page[n - 1].id);
        resp.next_page_token = svc_page_token(r, last, req->consumer);
    }
    svc_reply(r, &resp.base);
}

SVC_HANDLER(retry_dead_letter, Paywire__Orchestration__V1__RetryDeadLetterRequest)
{
    if (!consumer_ok(req->consumer)) {
        svc_violation(r, "consumer", "\"ledger\" or \"compliance\"");
    }
    if (strncmp(req->event_id, "evt_", 4) != 0 || !svc_text_ok(req->event_id, 64)) {
        svc_violation(r, "event_id", "an event id (\"evt_…\")");
    }
    svc_check(r);
    svc_authenticate(r, "events:admin");
    pw_db_param id = pw_db_text(req->event_id);
    const pw_db_stmt *redrive =
        strcmp(req->consumer, "ledger") == 0 ? &redrive_ledger : &redrive_compliance;
    svc_query(r, redrive, &id, 1);
    pw_db_param p[] = {pw_db_text(req->consumer), id};
    const pw_db_result *res = svc_query(r, &dead_one, p, 2);
    if (pw_db_rows(res) != 1) {
        svc_fail(r, PW_NOT_FOUND, "event_id %s is not a dead letter of consumer %s", req->event_id,
                 req->consumer);
    }
    dead_row row = dead_row_of(r, svc_row_at(r, res, 0));
    PW_LOG(PW_LOG_NOTICE, "events", "dead letter %s of %s re-driven by %s", req->event_id,
           req->consumer, r->caller.identity);
    Paywire__Orchestration__V1__RetryDeadLetterResponse resp =
        PAYWIRE__ORCHESTRATION__V1__RETRY_DEAD_LETTER_RESPONSE__INIT;
    resp.dead_letter = dead_letter_of(r, &row);
    svc_reply(r, &resp.base);
}

static const paywire_orchestration_v1_event_service_handlers event_handlers = {
    .list_dead_letters = list_dead_letters_h,
    .retry_dead_letter = retry_dead_letter_h,
};

pw_status orch_register_events(pw_server *server, svc_app *app)
{
    return paywire_orchestration_v1_event_service_register(server, &event_handlers, app);
}
