/*
 * ledger.c: the ledger consumer (docs/design/orchestration.md, "Events";
 * the transfers of docs/design/finance.md and payment-flow.md). The outbox's
 * events are delivered to finance in id order, each at least once:
 *
 *   payment.captured  CalculateFee at the capture's time, then
 *                     CreateTransfer txf_capture_<cap> (posted, NONE):
 *                     Dr partner_receivable(connector) C, Cr merchant_pending C,
 *                     Dr merchant_pending F, Cr platform_revenue F;
 *   refund.succeeded  the capture's transfer first (the same content, so a
 *                     replay when the capture's event was first), then
 *                     txf_refund_<ref> pending with MERCHANT_FUNDS unless the
 *                     refund was reserved at creation (Dr merchant_available R,
 *                     Cr partner_receivable R), then PostTransfer with the
 *                     partner's reference;
 *   refund.failed     VoidTransfer txf_refund_<ref> when it was reserved;
 *   anything else     nothing to book.
 *
 * Transfer ids are derived from the operation the event is about, and their
 * content only from rows that no longer change once the event exists (a
 * SUCCEEDED capture or refund), so a re-sent event books nothing twice:
 * finance answers the same transfer for the same id and content. Every fact
 * is read from the database at delivery, not from the event's payload. The
 * fee schedule in force at the capture's time is fixed an hour ahead
 * (finance.md, Fees), so every retry prices the capture the same.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "events.h"
#include "paywire/finance/v1/fees.pw.h"
#include "paywire/finance/v1/ledger.pw.h"

typedef Paywire__Finance__V1__Entry Entry;
typedef Paywire__Common__V1__Money Money;

struct ev_ledger {
    svc_app *app;
    pw_channel *finance;
    svc_outbox *outbox;
    int stopping;
    int channel_closed;
    int deliveries;
    /* The reserver: refunds left unreserved (finance was unavailable at CreateRefund). */
    uv_timer_t reserver;
    int reserver_closed;
    int reserving;
};

static void maybe_free(ev_ledger *l)
{
    if (l->channel_closed && l->reserver_closed && l->deliveries == 0) {
        pw_free(l);
    }
}

/* One event's delivery, on its own fiber. */
typedef struct delivery {
    ev_ledger *l;
    svc_outbox *outbox;
    void *token;
    ev_wait w;
    int64_t id;
    char type[40], payment_id[40];
} delivery;

/* What a capture's transfer is made of (copied out of the rows). */
typedef struct capture {
    char id[40], partner_reference[80], merchant_id[40], currency[8], connector[64], method[16];
    int live;
    int64_t amount_minor, end_us, fee_minor;
} capture;

static const pw_db_stmt capture_of = {
    .name = "orch_ledger_capture",
    .sql = "SELECT o.id, o.amount_minor, o.partner_reference,"
           " (extract(epoch FROM o.end_time) * 1000000)::int8 AS end_us,"
           " p.merchant_id, p.mode, p.currency, a.connector, p.method"
           " FROM payment_operations o JOIN payments p ON p.id = o.payment_id"
           " JOIN payment_attempts a ON a.payment_id = p.id AND a.outcome = 'SUCCEEDED'"
           " WHERE o.payment_id = $1 AND o.kind = 'CAPTURE' AND o.state = 'SUCCEEDED'",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt refund_of = {
    .name = "orch_ledger_refund",
    .sql = "SELECT f.id, f.amount_minor, f.partner_reference, f.reserved FROM outbox e"
           " JOIN refunds f ON f.id = e.payload->>'refund_id' WHERE e.id = $1",
    .nparams = 1,
    .types = {PW_DB_INT8},
};

static const pw_db_stmt refund_by_id = {
    .name = "orch_ledger_refund_by_id",
    .sql = "SELECT id, amount_minor, partner_reference, reserved, payment_id FROM refunds"
           " WHERE id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

/* A call to finance from a delivery; none once stopping (the channel is closing). */
static pw_status call_finance(delivery *d, const char *path, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *type)
{
    if (d->l->stopping) {
        snprintf(d->w.message, sizeof(d->w.message), "stopping");
        return PW_CANCELLED;
    }
    return ev_call(&d->w, d->l->finance, path, req, type);
}

/* ---- building a transfer ---- */

/* Up to four entries and what they point at, on the delivery's stack. */
typedef struct entries {
    Entry e[4];
    Entry *p[4];
    Paywire__Finance__V1__AccountRef ref[4];
    Paywire__Finance__V1__MerchantAccount m[4];
    Paywire__Finance__V1__PlatformAccount pl[4];
    Money amount[4];
    size_t n;
} entries;

/* Adds an entry on kind: a merchant account (merchant set) or a platform one (counterparty). */
static void add(entries *t, int kind, const char *merchant, const char *counterparty, int debit,
                int64_t minor, const char *currency, const char *purpose)
{
    size_t i = t->n++;
    paywire__finance__v1__entry__init(&t->e[i]);
    paywire__finance__v1__account_ref__init(&t->ref[i]);
    paywire__common__v1__money__init(&t->amount[i]);
    if (merchant != NULL) {
        paywire__finance__v1__merchant_account__init(&t->m[i]);
        t->m[i].merchant_id = (char *)merchant;
        t->m[i].kind = (Paywire__Finance__V1__AccountKind)kind;
        t->m[i].currency = (char *)currency;
        t->ref[i].ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT;
        t->ref[i].merchant = &t->m[i];
    } else {
        paywire__finance__v1__platform_account__init(&t->pl[i]);
        t->pl[i].kind = (Paywire__Finance__V1__AccountKind)kind;
        t->pl[i].currency = (char *)currency;
        t->pl[i].counterparty = (char *)(counterparty != NULL ? counterparty : "");
        t->ref[i].ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_PLATFORM;
        t->ref[i].platform = &t->pl[i];
    }
    t->amount[i].amount_minor = minor;
    t->amount[i].currency = (char *)currency;
    t->e[i].account = &t->ref[i];
    t->e[i].amount = &t->amount[i];
    t->e[i].side = debit ? PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT
                         : PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT;
    t->e[i].purpose = (char *)purpose;
    t->p[i] = &t->e[i];
}

static Paywire__Common__V1__Mode mode_of(int live)
{
    return live ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
}

/* CreateTransfer of id (kind, reference) with t's entries. */
static pw_status create_transfer(delivery *d, const char *id, const char *kind,
                                 const char *reference, const char *partner_reference, int live,
                                 entries *t, int pending, int check)
{
    Paywire__Finance__V1__Transfer tr = PAYWIRE__FINANCE__V1__TRANSFER__INIT;
    tr.id = (char *)id;
    tr.kind = (char *)kind;
    tr.reference = (char *)reference;
    tr.partner_reference = (char *)partner_reference;
    tr.mode = mode_of(live);
    tr.n_entries = t->n;
    tr.entries = t->p;
    Paywire__Finance__V1__CreateTransferRequest req =
        PAYWIRE__FINANCE__V1__CREATE_TRANSFER_REQUEST__INIT;
    req.transfer = &tr;
    req.pending = pending;
    req.balance_check = (Paywire__Finance__V1__BalanceCheck)check;
    return call_finance(d, "/paywire.finance.v1.LedgerService/CreateTransfer", &req.base,
                        &paywire__finance__v1__create_transfer_response__descriptor);
}

/* ---- the capture ---- */

/* The payment's succeeded capture into c; PW_NOT_FOUND when it has none. */
static pw_status read_capture(delivery *d, capture *c)
{
    pw_db_param p = pw_db_text(d->payment_id);
    const pw_db_result *res = ev_query(&d->w, d->l->app->pool, &capture_of, &p, 1);
    if (res == NULL || d->w.code != PW_OK) {
        return PW_UNAVAILABLE; /* the database: retried */
    }
    if (pw_db_rows(res) != 1) {
        snprintf(d->w.message, sizeof(d->w.message), "payment %s has no succeeded capture",
                 d->payment_id);
        return PW_NOT_FOUND;
    }
    snprintf(c->id, sizeof(c->id), "%s", ev_text(res, 0, "id"));
    snprintf(c->partner_reference, sizeof(c->partner_reference), "%s",
             ev_text(res, 0, "partner_reference"));
    snprintf(c->merchant_id, sizeof(c->merchant_id), "%s", ev_text(res, 0, "merchant_id"));
    snprintf(c->currency, sizeof(c->currency), "%s", ev_text(res, 0, "currency"));
    snprintf(c->connector, sizeof(c->connector), "%s", ev_text(res, 0, "connector"));
    snprintf(c->method, sizeof(c->method), "%s", ev_text(res, 0, "method"));
    c->live = strcmp(ev_text(res, 0, "mode"), "LIVE") == 0;
    c->amount_minor = ev_int64(res, 0, "amount_minor");
    c->end_us = ev_int64(res, 0, "end_us");
    return PW_OK;
}

static pw_status price_capture(delivery *d, capture *c)
{
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    at.seconds = c->end_us / 1000000;
    at.nanos = (int32_t)(c->end_us % 1000000) * 1000;
    Money amount = PAYWIRE__COMMON__V1__MONEY__INIT;
    amount.amount_minor = c->amount_minor;
    amount.currency = c->currency;
    Paywire__Finance__V1__CalculateFeeRequest req =
        PAYWIRE__FINANCE__V1__CALCULATE_FEE_REQUEST__INIT;
    req.merchant_id = c->merchant_id;
    req.method = c->method; /* "card" or "on_chain": the fee schedule's method */
    req.amount = &amount;
    req.at_time = &at;
    pw_status rv = call_finance(d, "/paywire.finance.v1.FeeService/CalculateFee", &req.base,
                                &paywire__finance__v1__calculate_fee_response__descriptor);
    if (rv == PW_OK) {
        const Paywire__Finance__V1__CalculateFeeResponse *resp = (const void *)d->w.response;
        c->fee_minor = resp->fee != NULL ? resp->fee->amount_minor : 0;
    } else if (rv == PW_NOT_FOUND || rv == PW_FAILED_PRECONDITION) {
        /* No schedule in force, or none of its rules fits (NO_FEE_RULE): a configuration to fix,
         * never a reason to drop the capture (a dead letter would leave the ledger short of it
         * and of every refund after it). Retried with backoff until the schedule is fixed. */
        PW_LOG(PW_LOG_ERR, "ledger",
               "capture %s of %s cannot be priced (%s): fix the fee schedule; retrying", c->id,
               c->merchant_id, d->w.message);
        rv = PW_UNAVAILABLE;
    }
    return rv;
}

/* txf_capture_<cap>: the capture and its fee in one posted transfer. */
static pw_status book_capture(delivery *d, capture *c)
{
    pw_status rv = read_capture(d, c);
    if (rv == PW_OK) {
        rv = price_capture(d, c);
    }
    if (rv != PW_OK) {
        return rv;
    }
    entries t = {.n = 0};
    add(&t, PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_RECEIVABLE, NULL, c->connector,
        1, c->amount_minor, c->currency, "payment");
    add(&t, PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_PENDING, c->merchant_id, NULL,
        0, c->amount_minor, c->currency, "payment");
    if (c->fee_minor > 0) {
        add(&t, PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_PENDING, c->merchant_id,
            NULL, 1, c->fee_minor, c->currency, "fee");
        add(&t, PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PLATFORM_REVENUE, NULL, NULL, 0,
            c->fee_minor, c->currency, "fee");
    }
    char id[64];
    snprintf(id, sizeof(id), "txf_capture_%s", c->id);
    return create_transfer(d, id, "capture", c->id, c->partner_reference, c->live, &t, 0,
                           PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_NONE);
}

/* ---- refunds ---- */

typedef struct refund {
    char id[40], partner_reference[64];
    int64_t amount_minor;
    int reserved;
} refund;

static pw_status read_refund(delivery *d, refund *f)
{
    pw_db_param p = pw_db_int8(d->id);
    const pw_db_result *res = ev_query(&d->w, d->l->app->pool, &refund_of, &p, 1);
    if (res == NULL || d->w.code != PW_OK) {
        return PW_UNAVAILABLE;
    }
    if (pw_db_rows(res) != 1) {
        snprintf(d->w.message, sizeof(d->w.message), "event %lld names no refund",
                 (long long)d->id);
        return PW_NOT_FOUND;
    }
    snprintf(f->id, sizeof(f->id), "%s", ev_text(res, 0, "id"));
    snprintf(f->partner_reference, sizeof(f->partner_reference), "%s",
             ev_text(res, 0, "partner_reference"));
    f->amount_minor = ev_int64(res, 0, "amount_minor");
    pw_db_get_bool(res, 0, pw_db_column(res, "reserved"), &f->reserved);
    return PW_OK;
}

static pw_status settle_refund(delivery *d, const char *path, const refund *f, int live, int post)
{
    char id[64];
    snprintf(id, sizeof(id), "txf_refund_%s", f->id);
    if (post) {
        Paywire__Finance__V1__PostTransferRequest req =
            PAYWIRE__FINANCE__V1__POST_TRANSFER_REQUEST__INIT;
        req.transfer_id = id;
        req.mode = mode_of(live);
        req.partner_reference = (char *)f->partner_reference;
        return call_finance(d, path, &req.base,
                            &paywire__finance__v1__post_transfer_response__descriptor);
    }
    Paywire__Finance__V1__VoidTransferRequest req =
        PAYWIRE__FINANCE__V1__VOID_TRANSFER_REQUEST__INIT;
    req.transfer_id = id;
    req.mode = mode_of(live);
    return call_finance(d, path, &req.base,
                        &paywire__finance__v1__void_transfer_response__descriptor);
}

/* txf_refund_<ref> pending with MERCHANT_FUNDS: what CreateRefund's step 2 reserves. */
static pw_status reserve(delivery *d, const refund *f, const capture *c)
{
    entries t = {.n = 0};
    add(&t, PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_AVAILABLE, c->merchant_id,
        NULL, 1, f->amount_minor, c->currency, "refund");
    add(&t, PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_RECEIVABLE, NULL, c->connector,
        0, f->amount_minor, c->currency, "refund");
    char id[64];
    snprintf(id, sizeof(id), "txf_refund_%s", f->id);
    return create_transfer(d, id, "refund", f->id, "", c->live, &t, 1,
                           PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_MERCHANT_FUNDS);
}

/*
 * refund.succeeded: the capture, the reservation (unless CreateRefund made
 * it), the post. Each step is a replay when an earlier delivery made it.
 */
static pw_status book_refund(delivery *d)
{
    refund f;
    capture c;
    pw_status rv = read_refund(d, &f);
    if (rv == PW_OK) {
        rv = book_capture(d, &c);
    }
    if (rv == PW_OK && !f.reserved) {
        rv = reserve(d, &f, &c);
    }
    if (rv == PW_OK) {
        rv = settle_refund(d, "/paywire.finance.v1.LedgerService/PostTransfer", &f, c.live, 1);
    }
    return rv;
}

/* refund.failed: only a reservation is undone; a refund never reserved booked nothing. */
static pw_status void_refund(delivery *d)
{
    refund f;
    capture c;
    pw_status rv = read_refund(d, &f);
    if (rv != PW_OK || !f.reserved) {
        return rv;
    }
    rv = read_capture(d, &c);
    if (rv == PW_OK) {
        rv = settle_refund(d, "/paywire.finance.v1.LedgerService/VoidTransfer", &f, c.live, 0);
    }
    return rv;
}

/* ---- CreateRefund's step 2 ---- */

/* Step 2 with l's finance channel (no call once l is stopping). */
static pw_status reserve_with(ev_ledger *l, svc_fiber *fiber, const char *refund_id, char *message,
                              size_t cap)
{
    delivery d = {.l = l, .w = {.fiber = fiber}};
    pw_db_param p = pw_db_text(refund_id);
    const pw_db_result *res = ev_query(&d.w, l->app->pool, &refund_by_id, &p, 1);
    pw_status rv = PW_UNAVAILABLE;
    refund f = {.amount_minor = 0};
    if (res != NULL && d.w.code == PW_OK && pw_db_rows(res) == 1) {
        snprintf(f.id, sizeof(f.id), "%s", ev_text(res, 0, "id"));
        snprintf(d.payment_id, sizeof(d.payment_id), "%s", ev_text(res, 0, "payment_id"));
        f.amount_minor = ev_int64(res, 0, "amount_minor");
        capture c;
        rv = book_capture(&d, &c);
        if (rv == PW_OK) {
            rv = reserve(&d, &f, &c);
        }
    }
    snprintf(message, cap, "%s", d.w.message);
    return rv;
}

pw_status ev_reserve_refund(svc_app *app, svc_fiber *fiber, pw_channel *finance,
                            const char *refund_id, char *message, size_t cap)
{
    ev_ledger l = {.app = app, .finance = finance};
    return reserve_with(&l, fiber, refund_id, message, cap);
}

/* ---- delivery ---- */

static void deliver_on_fiber(svc_fiber *fiber, void *arg)
{
    delivery *d = arg;
    d->w.fiber = fiber;
    d->w.message[0] = '\0';
    pw_status rv = PW_OK;
    if (strcmp(d->type, "payment.captured") == 0) {
        capture c;
        rv = book_capture(d, &c);
    } else if (strcmp(d->type, "refund.succeeded") == 0) {
        rv = book_refund(d);
    } else if (strcmp(d->type, "refund.failed") == 0) {
        rv = void_refund(d);
    }
    if (d->l->stopping && rv != PW_OK) {
        rv = PW_CANCELLED; /* the channel closed under us: delivered again later */
    }
    svc_outbox_delivered(d->outbox, d->token, rv, d->w.message);
    ev_ledger *l = d->l;
    pw_free(d);
    l->deliveries--;
    maybe_free(l);
}

static void deliver(svc_outbox *o, const pw_db_result *res, int row, void *token, void *ud)
{
    ev_ledger *l = ud;
    delivery *d = pw_calloc(1, sizeof(*d));
    d->l = l;
    d->outbox = o;
    d->token = token;
    d->id = ev_int64(res, row, "id");
    snprintf(d->type, sizeof(d->type), "%s", ev_text(res, row, "type"));
    snprintf(d->payment_id, sizeof(d->payment_id), "%s", ev_text(res, row, "payment_id"));
    l->deliveries++;
    if (svc_fiber_spawn(l->app->fibers, deliver_on_fiber, d) != PW_OK) {
        l->deliveries--;
        pw_free(d);
        svc_outbox_delivered(o, token, PW_RESOURCE_EXHAUSTED, "no fiber for the delivery");
    }
}

/* ---- the reserver ---- */

static const pw_db_stmt claim_unreserved = {
    .name = "orch_ledger_claim_unreserved",
    .sql = "UPDATE refunds SET lease_owner = $1, lease_until = now() + interval '30 seconds'"
           " WHERE id = (SELECT id FROM refunds WHERE state = 'PENDING' AND NOT reserved"
           " AND lease_until < now() ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED)"
           " RETURNING id",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* Reserved: its lease ends now, so recovery sends it to the partner at once. */
static const pw_db_stmt mark_reserved = {
    .name = "orch_ledger_mark_reserved",
    .sql = "UPDATE refunds SET reserved = true, lease_until = now(), update_time = now()"
           " WHERE id = $1 AND state = 'PENDING'",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

/* Claims unreserved refunds whose lease ended, one at a time, and makes step 2 for each. */
static void reserve_on_fiber(svc_fiber *fiber, void *arg)
{
    ev_ledger *l = arg;
    const orch_state *s = l->app->service;
    ev_wait w = {.fiber = fiber};
    while (!l->stopping) {
        pw_db_param me = pw_db_text(s->instance);
        const pw_db_result *res = ev_query(&w, l->app->pool, &claim_unreserved, &me, 1);
        if (res == NULL || w.code != PW_OK || pw_db_rows(res) != 1) {
            break;
        }
        char id[40], why[300];
        snprintf(id, sizeof(id), "%s", ev_text(res, 0, "id"));
        pw_status rv = reserve_with(l, fiber, id, why, sizeof(why));
        pw_db_param p[] = {pw_db_text(id), pw_db_bool(0), pw_db_text(""),
                           pw_db_text("insufficient_funds")};
        if (rv == PW_OK) {
            ev_query(&w, l->app->pool, &mark_reserved, p, 1);
        } else if (rv == PW_FAILED_PRECONDITION) {
            PW_LOG(PW_LOG_NOTICE, "orchestration", "refund %s refused by finance: %s", id, why);
            ev_query(&w, l->app->pool, &orch_record_refund, p, 4);
        } else {
            break; /* finance still unavailable: its lease ends, the next tick tries again */
        }
    }
    l->reserving = 0;
    l->deliveries--;
    maybe_free(l);
}

static void reserver_tick(uv_timer_t *t)
{
    ev_ledger *l = t->data;
    if (l->stopping || l->reserving) {
        return;
    }
    l->reserving = 1;
    l->deliveries++;
    if (svc_fiber_spawn(l->app->fibers, reserve_on_fiber, l) != PW_OK) {
        l->reserving = 0;
        l->deliveries--;
    }
}

static void reserver_closed(uv_handle_t *h)
{
    ev_ledger *l = h->data;
    l->reserver_closed = 1;
    maybe_free(l);
}

pw_status ev_ledger_start(ev_ledger **out, svc_app *app, uv_loop_t *loop, const char *target)
{
    *out = NULL;
    ev_ledger *l = pw_calloc(1, sizeof(*l));
    l->app = app;
    /* Order does not matter: a refund books its capture itself before its own transfers. */
    svc_outbox_options oo = {
        .table = "outbox",
        .what = "ledger events to finance",
        /* A batch waits for its slowest delivery (a capture's two calls to finance): at 50 the
         * consumer fell behind the payments (bench/payments, docs/performance.md). */
        .batch = 200,
        .deliver = deliver,
        .user_data = l,
        .idle_ms = 200,
        .backoff_initial_ms = 1000,
        .backoff_max_ms = 300000,
    };
    pw_status rv = ev_consumer_start(app, loop, target, &oo, &l->finance, &l->outbox);
    if (rv != PW_OK) {
        pw_free(l);
        return rv;
    }
    const orch_state *s = app->service;
    uv_timer_init(loop, &l->reserver);
    l->reserver.data = l;
    uv_timer_start(&l->reserver, reserver_tick, (uint64_t)s->recovery_interval_ms,
                   (uint64_t)s->recovery_interval_ms);
    *out = l;
    return PW_OK;
}

static void finance_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    ev_ledger *l = ud;
    l->channel_closed = 1;
    maybe_free(l);
}

void ev_ledger_stop(ev_ledger *l)
{
    if (l == NULL) {
        return;
    }
    l->stopping = 1;
    svc_outbox_stop(l->outbox);
    uv_close((uv_handle_t *)&l->reserver, reserver_closed);
    /* Calls in flight end CANCELLED; their fibers report and end before the channel is freed. */
    pw_channel_close(l->finance, finance_closed, l);
}
