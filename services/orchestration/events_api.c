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
