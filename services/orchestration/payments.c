/*
 * payments.c: PaymentService's core (docs/design/orchestration.md):
 * CreatePayment, ConfirmPayment, GetPayment, CapturePayment, CancelPayment,
 * CreateRefund. Every partner call follows the three steps of the design:
 *
 *   1. a transaction locks the payment (FOR UPDATE), checks its state and
 *      amounts counting what is still PENDING, writes the attempt or
 *      operation row PENDING with a lease, and commits;
 *   2. the acquirer is called outside any transaction, with the row's id as
 *      its idempotency key;
 *   3. the outcome is recorded on the row, conditional on its state, and the
 *      payment moved with its transition and event (record_* in the
 *      migration), in one statement.
 *
 * An ambiguous or failed partner call leaves the row open; recovery.c
 * completes it under the same key once the lease has expired.
 *
 * Idempotency: each mutation's (scope, key) is unique on the row it creates,
 * with the request's fingerprint; a retry answers with the payment as it now
 * is, a different request with the same key is IDEMPOTENCY_KEY_REUSED.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "orchestration.h"
#include "events.h"

typedef Paywire__Orchestration__V1__Payment Payment;
typedef Paywire__Common__V1__Money Money;

/* ---- statements ---- */

#define PAYMENT_COLUMNS                                                                        \
    "id, merchant_id, mode, amount_minor, currency, amount_captured_minor,"                    \
    " amount_refunded_minor, capture_method, state, failure_code, vault_token, card_brand,"    \
    " card_last4, issuer_country, cardholder_name, statement_descriptor, merchant_reference,"  \
    " return_url, method, chain, token, deposit_address, required_confirmations,"              \
    " (extract(epoch FROM capture_before_time) * 1000000)::int8 AS capture_before_us,"         \
    " capture_before_time IS NOT NULL AND capture_before_time < svc_now() AS capture_expired," \
    " (extract(epoch FROM create_time) * 1000000)::int8 AS create_us,"                         \
    " (extract(epoch FROM update_time) * 1000000)::int8 AS update_us"

static const pw_db_stmt select_payment = {
    .name = "orch_payment",
    .sql = "SELECT " PAYMENT_COLUMNS " FROM payments WHERE id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt lock_payment = {
    .name = "orch_payment_lock",
    .sql = "SELECT " PAYMENT_COLUMNS " FROM payments WHERE id = $1 FOR UPDATE",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt select_attempts = {
    .name = "orch_attempts",
    .sql = "SELECT id, connector, outcome, decline_code, soft_decline, partner_reference,"
           " kind, amount_received_minor, (extract(epoch FROM start_time) * 1000000)::int8 AS "
           "start_us,"
           " (extract(epoch FROM end_time) * 1000000)::int8 AS end_us"
           " FROM payment_attempts WHERE payment_id = $1 ORDER BY start_time, id",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt select_operations = {
    .name = "orch_operations",
    .sql = "SELECT id, kind, amount_minor, state, partner_reference, failure_code,"
           " (extract(epoch FROM start_time) * 1000000)::int8 AS start_us,"
           " (extract(epoch FROM end_time) * 1000000)::int8 AS end_us"
           " FROM payment_operations WHERE payment_id = $1 ORDER BY start_time, id",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt insert_payment = {
    .name = "orch_payment_insert",
    .sql = "INSERT INTO payments (id, merchant_id, mode, amount_minor, currency, capture_method,"
           " state, vault_token, card_brand, card_last4, issuer_country, statement_descriptor,"
           " merchant_reference, return_url, idem_scope, idem_key, request_sha256,"
           " cardholder_name)"
           " VALUES ($1, $2, $3, $4, $5, $6, 'REQUIRES_CONFIRMATION', $7, $8, $9, $10, $11, $12,"
           " $13, $14, $15, $16, $17) ON CONFLICT (idem_scope, idem_key) DO NOTHING",
    .nparams = 17,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT,
              PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT,
              PW_DB_TEXT, PW_DB_BYTEA, PW_DB_TEXT},
};
static const pw_db_stmt payment_by_key = {
    .name = "orch_payment_by_key",
    .sql = "SELECT id, request_sha256 FROM payments WHERE idem_scope = $1 AND idem_key = $2",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt payment_created = {
    .name = "orch_payment_created",
    .sql = "WITH t AS (INSERT INTO payment_transitions (payment_id, from_state, to_state,"
           " event_id) VALUES ($1, NULL, 'REQUIRES_CONFIRMATION', 'evt_' || substr($1, 5) || '_1'))"
           " INSERT INTO outbox (event_id, merchant_id, type, payment_id, payload)"
           " SELECT 'evt_' || substr(id, 5) || '_1', merchant_id, 'payment.created', id,"
           " jsonb_build_object('payment_id', id, 'to', state, 'amount_minor', amount_minor,"
           " 'currency', currency, 'mode', mode) FROM payments WHERE id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* A transition of a locked payment that involves no partner: its row, event and new state
 * (a move to FAILED takes its reason as the failure code). */
static const pw_db_stmt move_payment = {
    .name = "orch_payment_move",
    .sql = "WITH m AS (SELECT payment_moved(p, $2, $3, $4) FROM payments p WHERE p.id = $1)"
           " UPDATE payments SET state = $2, version = version + 1, update_time = now(),"
           " failure_code = CASE WHEN $2 = 'FAILED' THEN $3 ELSE failure_code END"
           " WHERE id = $1 AND (SELECT count(*) FROM m) = 1",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt set_screening = {
    .name = "orch_payment_screening",
    .sql = "UPDATE payments SET screening_id = $2 WHERE id = $1",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt insert_attempt = {
    .name = "orch_attempt_insert",
    .sql = "INSERT INTO payment_attempts (id, payment_id, connector, lease_owner, lease_until)"
           " VALUES ($1, $2, $5, $3, now() + $4 * interval '1 millisecond')",
    .nparams = 5,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT},
};
static const pw_db_stmt record_failover = {
    .name = "orch_record_failover",
    .sql = "SELECT record_failover($1, $2, $3, $4, $5, $6, $7, $8, $9) AS inserted",
    .nparams = 9,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BOOL, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT,
              PW_DB_TEXT, PW_DB_INT8},
};
static const pw_db_stmt authorization_of = {
    .name = "orch_authorization_of",
    .sql = "SELECT partner_reference, connector FROM payment_attempts WHERE payment_id = $1"
           " AND outcome = 'SUCCEEDED'",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt operation_by_key = {
    .name = "orch_operation_by_key",
    .sql = "SELECT payment_id, request_sha256 FROM payment_operations"
           " WHERE idem_scope = $1 AND idem_key = $2",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt open_operation = {
    .name = "orch_operation_open",
    .sql = "SELECT id FROM payment_operations WHERE payment_id = $1"
           " AND state IN ('PENDING', 'SUCCEEDED')",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt insert_operation = {
    .name = "orch_operation_insert",
    .sql = "INSERT INTO payment_operations (id, payment_id, kind, amount_minor, lease_owner,"
           " lease_until, idem_scope, idem_key, request_sha256)"
           " VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond', $7, $8, $9)",
    .nparams = 9,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT,
              PW_DB_TEXT, PW_DB_BYTEA},
};
static const pw_db_stmt refund_by_key = {
    .name = "orch_refund_by_key",
    .sql = "SELECT id, request_sha256 FROM refunds WHERE idem_scope = $1 AND idem_key = $2",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt refunds_counted = {
    .name = "orch_refunds_counted",
    .sql = "SELECT coalesce(sum(amount_minor), 0)::int8 AS counted FROM refunds"
           " WHERE payment_id = $1 AND state IN ('PENDING', 'SUCCEEDED')",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt insert_refund = {
    .name = "orch_refund_insert",
    .sql = "INSERT INTO refunds (id, payment_id, merchant_id, mode, amount_minor, currency, reason,"
           " lease_owner, lease_until, idem_scope, idem_key, request_sha256)"
           " SELECT $1, id, merchant_id, mode, $2, currency, $3, $4,"
           " now() + $5 * interval '1 millisecond', $6, $7, $8 FROM payments WHERE id = $9",
    .nparams = 9,
    .types = {PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT,
              PW_DB_BYTEA, PW_DB_TEXT},
};
static const pw_db_stmt select_refund = {
    .name = "orch_refund",
    .sql = "SELECT id, payment_id, merchant_id, mode, amount_minor, currency, state, reason,"
           " failure_code, partner_reference, reserved,"
           " (extract(epoch FROM create_time) * 1000000)::int8 AS create_us,"
           " (extract(epoch FROM update_time) * 1000000)::int8 AS update_us"
           " FROM refunds WHERE id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

const pw_db_stmt orch_record_authorization = {
    .name = "orch_record_authorization",
    .sql = "SELECT record_authorization($1, $2, $3, $4, $5) AS state",
    .nparams = 5,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BOOL, PW_DB_TEXT},
};
const pw_db_stmt orch_record_operation = {
    .name = "orch_record_operation",
    .sql = "SELECT record_operation($1, $2, $3, $4) AS state",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_BOOL, PW_DB_TEXT, PW_DB_TEXT},
};
const pw_db_stmt orch_record_refund = {
    .name = "orch_record_refund",
    .sql = "SELECT record_refund($1, $2, $3, $4) AS state",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_BOOL, PW_DB_TEXT, PW_DB_TEXT},
};

/* ---- the Payment message ---- */

static const char *const state_names[] = {
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_REQUIRES_CONFIRMATION] =
        "REQUIRES_CONFIRMATION",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_REQUIRES_ACTION] = "REQUIRES_ACTION",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_PROCESSING] = "PROCESSING",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_AUTHORIZED] = "AUTHORIZED",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED] = "SUCCEEDED",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_CANCELED] = "CANCELED",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_DECLINED] = "DECLINED",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_FAILED] = "FAILED",
    [PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_UNDER_REVIEW] = "UNDER_REVIEW",
};

static Paywire__Orchestration__V1__PaymentState state_of(const char *name)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (state_names[i] != NULL && strcmp(state_names[i], name) == 0) {
            return (Paywire__Orchestration__V1__PaymentState)i;
        }
    }
    return PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_UNSPECIFIED;
}

static Money *money(svc_req *r, int64_t minor, const char *currency)
{
    Money *m = svc_alloc(r, sizeof(*m));
    paywire__common__v1__money__init(m);
    m->amount_minor = minor;
    m->currency = svc_strdup(r, currency);
    return m;
}

static struct Google__Protobuf__Timestamp *time_of(svc_row row, const char *col)
{
    return svc_is_null(row, col) ? NULL : svc_timestamp(row.r, svc_int64(row, col));
}

static void add_attempts(svc_req *r, Payment *p)
{
    pw_db_param id = pw_db_text(p->id);
    const pw_db_result *res = svc_query(r, &select_attempts, &id, 1);
    p->n_attempts = (size_t)pw_db_rows(res);
    p->attempts = svc_alloc(r, sizeof(*p->attempts) * (p->n_attempts + 1));
    for (size_t i = 0; i < p->n_attempts; i++) {
        svc_row row = svc_row_at(r, res, (int)i);
        Paywire__Orchestration__V1__PaymentAttempt *a = svc_alloc(r, sizeof(*a));
        paywire__orchestration__v1__payment_attempt__init(a);
        a->id = svc_text(row, "id");
        a->connector = svc_text(row, "connector");
        a->outcome = svc_text(row, "outcome");
        a->decline_code = svc_text(row, "decline_code");
        a->soft_decline = svc_bool(row, "soft_decline");
        a->partner_reference = svc_text(row, "partner_reference");
        a->start_time = time_of(row, "start_us");
        a->end_time = time_of(row, "end_us");
        if (strcmp(svc_text(row, "kind"), "deposit") == 0) {
            a->amount_received =
                money(r, svc_int64(row, "amount_received_minor"), p->amount->currency);
        }
        p->attempts[i] = a;
    }
}

static void add_operations(svc_req *r, Payment *p)
{
    pw_db_param id = pw_db_text(p->id);
    const pw_db_result *res = svc_query(r, &select_operations, &id, 1);
    p->n_operations = (size_t)pw_db_rows(res);
    p->operations = svc_alloc(r, sizeof(*p->operations) * (p->n_operations + 1));
    for (size_t i = 0; i < p->n_operations; i++) {
        svc_row row = svc_row_at(r, res, (int)i);
        Paywire__Orchestration__V1__PaymentOperation *o = svc_alloc(r, sizeof(*o));
        paywire__orchestration__v1__payment_operation__init(o);
        o->id = svc_text(row, "id");
        o->kind =
            strcmp(svc_text(row, "kind"), "CAPTURE") == 0
                ? PAYWIRE__ORCHESTRATION__V1__PAYMENT_OPERATION_KIND__PAYMENT_OPERATION_KIND_CAPTURE
                : PAYWIRE__ORCHESTRATION__V1__PAYMENT_OPERATION_KIND__PAYMENT_OPERATION_KIND_VOID;
        o->amount = money(r, svc_int64(row, "amount_minor"), p->amount->currency);
        o->outcome = svc_text(row, "state");
        o->partner_reference = svc_text(row, "partner_reference");
        o->failure_code = svc_text(row, "failure_code");
        o->start_time = time_of(row, "start_us");
        o->end_time = time_of(row, "end_us");
        p->operations[i] = o;
    }
}

/* The payment as stored, with its attempts and operations (outside a transaction). */
static Payment *payment_read(svc_req *r, const char *payment_id)
{
    pw_db_param id = pw_db_text(payment_id);
    svc_row row = svc_one(r, svc_query(r, &select_payment, &id, 1), "payment", payment_id);
    Payment *p = svc_alloc(r, sizeof(*p));
    paywire__orchestration__v1__payment__init(p);
    p->id = svc_text(row, "id");
    p->merchant_id = svc_text(row, "merchant_id");
    const char *currency = svc_text(row, "currency");
    p->amount = money(r, svc_int64(row, "amount_minor"), currency);
    p->amount_captured = money(r, svc_int64(row, "amount_captured_minor"), currency);
    p->amount_refunded = money(r, svc_int64(row, "amount_refunded_minor"), currency);
    p->amount_disputed = money(r, 0, currency);
    p->capture_method = strcmp(svc_text(row, "capture_method"), "MANUAL") == 0
                            ? PAYWIRE__ORCHESTRATION__V1__CAPTURE_METHOD__CAPTURE_METHOD_MANUAL
                            : PAYWIRE__ORCHESTRATION__V1__CAPTURE_METHOD__CAPTURE_METHOD_AUTOMATIC;
    p->state = state_of(svc_text(row, "state"));
    p->failure_code = svc_text(row, "failure_code");
    p->mode = strcmp(svc_text(row, "mode"), "LIVE") == 0 ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE
                                                         : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    Paywire__Orchestration__V1__CardMethod *card = svc_alloc(r, sizeof(*card));
    paywire__orchestration__v1__card_method__init(card);
    card->vault_token = svc_text(row, "vault_token");
    card->brand = svc_text(row, "card_brand");
    card->last4 = svc_text(row, "card_last4");
    card->issuer_country = svc_text(row, "issuer_country");
    card->cardholder_name = svc_text(row, "cardholder_name");
    p->method = svc_alloc(r, sizeof(*p->method));
    paywire__orchestration__v1__payment_method__init(p->method);
    p->method->method_case = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_CARD;
    p->method->card = card;
    p->statement_descriptor = svc_text(row, "statement_descriptor");
    p->merchant_reference = svc_text(row, "merchant_reference");
    p->return_url = svc_text(row, "return_url");
    p->create_time = time_of(row, "create_us");
    p->update_time = time_of(row, "update_us");
    p->capture_before_time = time_of(row, "capture_before_us");
    if (strcmp(svc_text(row, "method"), "on_chain") == 0) {
        orch_chain_read(r, p, row); /* before the next query: row is read first */
    }
    add_attempts(r, p);
    add_operations(r, p);
    return p;
}

/* ---- idempotency on the rows ---- */

/* The caller's idempotency scope, as svc_idempotent makes it. */
static const char *scope_of(svc_req *r)
{
    char *s = svc_alloc(r, 300);
    if (r->caller.internal) {
        snprintf(s, 300, "svc:%s", r->caller.identity);
    } else {
        snprintf(s, 300, "mer:%s", r->caller.merchant_id);
    }
    return s;
}

/* The request's fingerprint (its idempotency key left out), or ends the handler. */
static uint8_t *fingerprint_of(svc_req *r, const ProtobufCMessage *request)
{
    uint8_t *fp = svc_alloc(r, 32);
    if (svc_fingerprint(request, "idempotency_key", fp) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot fingerprint the request");
    }
    return fp;
}

/* A row found by its key: the same request (1), or ends the handler with IDEMPOTENCY_KEY_REUSED. */
static void same_request(svc_req *r, svc_row row, const uint8_t *fp)
{
    pw_slice stored = svc_bytes(row, "request_sha256");
    if (stored.len != 32 || memcmp(stored.base, fp, 32) != 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED",
                  "this idempotency key was used for a different request");
    }
}

/* Ends with INVALID_STATE_TRANSITION from the locked payment's state. */
static _Noreturn void refused(svc_req *r, const char *from, const char *to)
{
    svc_abort(r, PW_FAILED_PRECONDITION, "INVALID_STATE_TRANSITION",
              "a payment in %s cannot move to %s", from, to);
}

static int64_t lease_ms(svc_req *r)
{
    const orch_state *s = r->app->service;
    return 2 * s->connector_timeout_ms + 5000;
}

/* ---- CreatePayment ---- */

typedef struct confirm_args {
    const char *payment_id;
    int retry_ok;
    /* Compliance's verdict (screened before the transaction) and its screening. */
    orch_verdict verdict;
    char screening_id[64];
    /* Out: the attempt to send ("" when there is none), the connectors to try in order (the
     * attempt goes to the first), and what the authorization needs. */
    char att_id[40];
    orch_route route;
    char *vault_token, *currency;
    int64_t amount_minor;
    int automatic;
    /* Set when create_tx confirmed the payment it stored, in its own transaction. */
    int confirmed;
    /* On-chain: the attempt is a deposit (att_id), its address asked for after the commit. */
    int on_chain, chain;
    char *token;
} confirm_args;

static void confirm_route(svc_req *r, confirm_args *a, const char *issuer_country);

typedef struct create_args {
    const Paywire__Orchestration__V1__CreatePaymentRequest *req;
    const char *scope;
    const uint8_t *fp;
    char *payment_id;
    /* Not NULL: confirm a payment this call stores in the same transaction (no screening). */
    confirm_args *confirm;
} create_args;

static void create_tx(svc_req *r, const void *arg)
{
    const create_args *a = arg;
    const Paywire__Orchestration__V1__CreatePaymentRequest *req = a->req;
    if (a->confirm != NULL) {
        a->confirm->att_id[0] = '\0';
        a->confirm->confirmed = 0;
    }
    /* On-chain: no card (its columns stay empty); the method's own columns come below. */
    Paywire__Orchestration__V1__CardMethod none = PAYWIRE__ORCHESTRATION__V1__CARD_METHOD__INIT;
    int on_chain =
        req->method->method_case == PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_ON_CHAIN;
    const Paywire__Orchestration__V1__CardMethod *card = on_chain ? &none : req->method->card;
    char id[40];
    if (svc_new_id("pay", id, sizeof(id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    pw_db_param p[] = {
        pw_db_text(id),
        pw_db_text(req->merchant_id),
        pw_db_text(r->caller.internal || strcmp(r->caller.mode, "LIVE") != 0 ? "TEST" : "LIVE"),
        pw_db_int8(req->amount->amount_minor),
        pw_db_text(req->amount->currency),
        pw_db_text(req->capture_method ==
                           PAYWIRE__ORCHESTRATION__V1__CAPTURE_METHOD__CAPTURE_METHOD_MANUAL
                       ? "MANUAL"
                       : "AUTOMATIC"),
        pw_db_text(card->vault_token),
        pw_db_text(card->brand),
        pw_db_text(card->last4),
        pw_db_text(card->issuer_country),
        pw_db_text(req->statement_descriptor),
        pw_db_text(req->merchant_reference),
        pw_db_text(req->return_url),
        pw_db_text(a->scope),
        pw_db_text(req->idempotency_key),
        pw_db_bytea(a->fp, 32),
        pw_db_text(card->cardholder_name),
    };
    if (pw_db_affected(svc_tx_query(r, &insert_payment, p, 17)) == 1) {
        pw_db_param pid = pw_db_text(id);
        svc_tx_pipe(r, &payment_created, &pid, 1);
        if (on_chain) {
            orch_chain_created(r, id, req->method->on_chain);
        }
        snprintf(a->payment_id, 40, "%s", id);
        if (a->confirm != NULL) {
            /* Its PROCESSING and its attempt commit with it: the attempt is still committed
             * before the connector is called, one commit sooner. */
            confirm_args *c = a->confirm;
            c->vault_token = card->vault_token;
            c->currency = req->amount->currency;
            c->amount_minor = req->amount->amount_minor;
            c->automatic = req->capture_method !=
                           PAYWIRE__ORCHESTRATION__V1__CAPTURE_METHOD__CAPTURE_METHOD_MANUAL;
            confirm_route(r, c, card->issuer_country);
            c->confirmed = 1;
        }
    } else {
        pw_db_param k[] = {pw_db_text(a->scope), pw_db_text(req->idempotency_key)};
        svc_row row = svc_row_at(r, svc_tx_query(r, &payment_by_key, k, 2), 0);
        same_request(r, row, a->fp);
        snprintf(a->payment_id, 40, "%s", svc_text(row, "id"));
    }
    svc_tx_commit(r);
}

static void check_money(svc_req *r, const Money *m, const char *field, int required)
{
    char f[64];
    if (m == NULL) {
        if (required) {
            svc_violation(r, field, "required");
        }
        return;
    }
    if (m->amount_minor <= 0) {
        snprintf(f, sizeof(f), "%s.amount_minor", field);
        svc_violation(r, svc_strdup(r, f), "above 0");
    }
    if (!svc_currency_ok(m->currency)) {
        snprintf(f, sizeof(f), "%s.currency", field);
        svc_violation(r, svc_strdup(r, f), "an ISO 4217 currency code");
    }
}

static Payment *confirm(svc_req *r, const char *payment_id, int retry_ok);
static Payment *confirm_send(svc_req *r, confirm_args *a);

SVC_HANDLER(create_payment, Paywire__Orchestration__V1__CreatePaymentRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    check_money(r, req->amount, "amount", 1);
    if (req->method != NULL &&
        req->method->method_case == PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_ON_CHAIN) {
        orch_chain_check(r, req);
    } else if (req->method == NULL || req->method->method_case !=
                                          PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_CARD) {
        svc_violation(r, "method", "a card or on-chain (bank methods are not served yet)");
    } else if (!svc_text_ok(req->method->card->vault_token, 64) ||
               strncmp(req->method->card->vault_token, "tok_", 4) != 0) {
        svc_violation(r, "method.card.vault_token", "\"tok_\" and up to 60 characters");
    } else {
        const Paywire__Orchestration__V1__CardMethod *card = req->method->card;
        if (card->issuer_country[0] != '\0' && !svc_country_ok(card->issuer_country)) {
            svc_violation(r, "method.card.issuer_country", "an ISO 3166-1 alpha-2 code");
        }
        if (strlen(card->cardholder_name) > 200) {
            svc_violation(r, "method.card.cardholder_name", "at most 200 characters");
        }
    }
    if (strlen(req->statement_descriptor) > 22) {
        svc_violation(r, "statement_descriptor", "at most 22 characters");
    }
    if (strlen(req->merchant_reference) > 200) {
        svc_violation(r, "merchant_reference", "at most 200 characters");
    }
    if (req->n_metadata > 0) {
        svc_violation(r, "metadata", "not stored yet: leave it empty");
    }
    svc_check(r);
    svc_authenticate(r, "payments:write");
    svc_owns(r, req->merchant_id, "merchant");
    if (!r->caller.internal && strcmp(r->caller.mode, "LIVE") == 0 &&
        strcmp(r->caller.merchant_state, "ACTIVE") != 0) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "MERCHANT_NOT_ACTIVE",
                        "live payments need an ACTIVE merchant");
    }
    char payment_id[40];
    const orch_state *s = r->app->service;
    confirm_args c = {.payment_id = payment_id, .retry_ok = 1, .verdict = ORCH_VERDICT_ALLOW};
    create_args a = {.req = req,
                     .scope = scope_of(r),
                     .fp = fingerprint_of(r, &req->base),
                     .payment_id = payment_id};
    /* With compliance, the payment is stored before it is screened (screening's key is its
     * id), and a retry with the same key finds it and confirms it. Without, nothing comes
     * between: a card payment is stored and confirmed in one transaction. */
    if (req->confirm && s->compliance_target[0] == '\0' &&
        req->method->method_case == PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_CARD) {
        a.confirm = &c;
    }
    svc_transaction(r, create_tx, &a);
    Paywire__Orchestration__V1__CreatePaymentResponse resp =
        PAYWIRE__ORCHESTRATION__V1__CREATE_PAYMENT_RESPONSE__INIT;
    resp.payment = c.confirmed    ? confirm_send(r, &c)
                   : req->confirm ? confirm(r, payment_id, 1)
                                  : payment_read(r, payment_id);
    svc_reply(r, &resp.base);
}

static void confirm_tx(svc_req *r, const void *arg)
{
    confirm_args *a = (confirm_args *)arg;
    a->att_id[0] = '\0';
    a->on_chain = 0;
    pw_db_param pid = pw_db_text(a->payment_id);
    svc_row p = svc_one(r, svc_tx_query(r, &lock_payment, &pid, 1), "payment", a->payment_id);
    svc_owns(r, svc_text(p, "merchant_id"), "payment");
    const char *state = svc_text(p, "state");
    if (strcmp(state, "REQUIRES_CONFIRMATION") != 0) {
        if (a->retry_ok) {
            svc_tx_commit(r); /* a retry of a create that was confirmed: answer as it is */
            return;
        }
        refused(r, state, "PROCESSING");
    }
    if (a->verdict == ORCH_VERDICT_NONE) {
        /* It was REQUIRES_CONFIRMATION only once screening had looked: screen again. */
        svc_abort(r, PW_ABORTED, NULL, "the payment changed while it was screened; retry");
    }
    if (a->screening_id[0] != '\0') {
        pw_db_param sc[] = {pid, pw_db_text(a->screening_id)};
        svc_tx_pipe(r, &set_screening, sc, 2);
    }
    if (a->verdict == ORCH_VERDICT_BLOCK || a->verdict == ORCH_VERDICT_REVIEW) {
        /* No attempt: a blocked payment never reaches a connector, a reviewed one waits. */
        int block = a->verdict == ORCH_VERDICT_BLOCK;
        pw_db_param m[] = {pid, pw_db_text(block ? "FAILED" : "UNDER_REVIEW"),
                           pw_db_text(block ? "blocked_by_compliance" : "screening_review"),
                           pw_db_text(block ? "payment.failed" : "payment.under_review")};
        svc_tx_pipe(r, &move_payment, m, 4);
        svc_tx_commit(r);
        return;
    }
    if (strcmp(svc_text(p, "method"), "on_chain") == 0) {
        /* No route, no PROCESSING yet: the deposit attempt, then the address (chain.c). */
        a->on_chain = 1;
        a->chain = (int)svc_int64(p, "chain");
        a->token = svc_text(p, "token");
        orch_chain_attempt(r, a->payment_id, a->att_id, sizeof(a->att_id));
        svc_tx_commit(r);
        return;
    }
    a->vault_token = svc_text(p, "vault_token");
    a->currency = svc_text(p, "currency");
    a->amount_minor = svc_int64(p, "amount_minor");
    a->automatic = strcmp(svc_text(p, "capture_method"), "AUTOMATIC") == 0;
    confirm_route(r, a, svc_text(p, "issuer_country"));
    svc_tx_commit(r);
}

/*
 * A card payment's route, in the caller's transaction (the payment locked, or inserted by
 * it): PROCESSING with its transition and event and the attempt to the first connector
 * (into a->att_id), or FAILED when every connector's circuit is open.
 */
static void confirm_route(svc_req *r, confirm_args *a, const char *issuer_country)
{
    pw_db_param pid = pw_db_text(a->payment_id);
    const char *reason = a->verdict == ORCH_VERDICT_UNSCREENED ? "not_screened" : "";
    orch_route_payment(r, a->payment_id, a->currency, issuer_country, a->amount_minor, &a->route);
    if (a->route.n == 0) {
        /* Every connector's circuit is open: nothing is sent (design: error table). */
        pw_db_param m[] = {pid, pw_db_text("FAILED"), pw_db_text("no_connector_available"),
                           pw_db_text("payment.failed")};
        svc_tx_pipe(r, &move_payment, m, 4);
        return;
    }
    if (svc_new_id("att", a->att_id, sizeof(a->att_id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    pw_db_param m[] = {pid, pw_db_text("PROCESSING"), pw_db_text(reason),
                       pw_db_text("payment.processing")};
    svc_tx_pipe(r, &move_payment, m, 4);
    const orch_state *s = r->app->service;
    pw_db_param ins[] = {pw_db_text(a->att_id), pid, pw_db_text(s->instance),
                         pw_db_int8(lease_ms(r)), pw_db_text(s->connectors[a->route.idx[0]].name)};
    svc_tx_pipe(r, &insert_attempt, ins, 5);
}

/* Kills the process at the configured fault point (tests: a crash between steps 2 and 3). */
static void fault(svc_req *r, const char *point)
{
    const orch_state *s = r->app->service;
    if (strcmp(s->fault, point) == 0) {
        kill(getpid(), SIGKILL);
    }
}

/* Step 3 of a capture or void: records a definite answer; anything else stays for recovery. */
static void record_follow_up(svc_req *r, const char *op_id, const conn_result *c)
{
    int ok = strcmp(c->outcome, "SUCCEEDED") == 0;
    if (!ok && strcmp(c->outcome, "DECLINED") != 0) {
        return;
    }
    pw_db_param p[] = {pw_db_text(op_id), pw_db_bool(ok), pw_db_text(c->reference),
                       pw_db_text(c->decline_code)};
    svc_query(r, &orch_record_operation, p, 4);
    fault(r, "after_capture_commit"); /* the outcome and its event committed, none published */
}

/*
 * Step 2 of one attempt at one connector. An UNAVAILABLE is checked by the key before it
 * counts as FAILED (a connection lost after the request was written looks the same); a
 * timeout asks the same connector for the attempt before anything else is tried, so an
 * authorization it made is found, and only a definite "never seen" lets another connector
 * be tried. Still unknown: TIMED_OUT, for recovery.
 */
static void authorize(svc_req *r, const char *connector, const confirm_args *a, conn_result *c)
{
    conn_request req = {.method = "Authorize",
                        .key = a->att_id,
                        .vault_token = a->vault_token,
                        .currency = a->currency,
                        .amount_minor = a->amount_minor};
    conn_call(r, connector, &req, c);
    int failed = strcmp(c->outcome, "FAILED") == 0;
    if (!failed && strcmp(c->outcome, "TIMED_OUT") != 0) {
        return;
    }
    conn_request ask = {.method = "GetOperation", .key = a->att_id};
    conn_result q;
    conn_call(r, connector, &ask, &q);
    if (strcmp(q.outcome, "SUCCEEDED") == 0 || strcmp(q.outcome, "DECLINED") == 0) {
        *c = q;
    } else if (failed && strcmp(q.outcome, "NOT_FOUND") != 0) {
        *c = (conn_result){.outcome = "TIMED_OUT"}; /* it could not say: ambiguous */
    }
}

/*
 * Failover: a soft decline or a definite failure with another connector left records this
 * attempt and opens the next one (record_failover), into a->att_id. 0 when there is no
 * next attempt (the outcome is final, or someone else recorded the attempt first).
 */
static int fail_over(svc_req *r, confirm_args *a, int tried, const conn_result *c, int *recorded)
{
    const orch_state *s = r->app->service;
    int soft = strcmp(c->outcome, "DECLINED") == 0 && c->soft;
    *recorded = 0;
    if (tried + 1 >= a->route.n || (!soft && strcmp(c->outcome, "FAILED") != 0)) {
        return 0;
    }
    char next[40];
    if (svc_new_id("att", next, sizeof(next)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    pw_db_param p[] = {pw_db_text(a->att_id),
                       pw_db_text(c->outcome),
                       pw_db_text(c->decline_code),
                       pw_db_bool(c->soft),
                       pw_db_text(c->reference),
                       pw_db_text(next),
                       pw_db_text(s->connectors[a->route.idx[tried + 1]].name),
                       pw_db_text(s->instance),
                       pw_db_int8(lease_ms(r))};
    svc_row row = svc_row_at(r, svc_query(r, &record_failover, p, 9), 0);
    *recorded = 1;
    if (!svc_bool(row, "inserted")) {
        return 0;
    }
    snprintf(a->att_id, sizeof(a->att_id), "%s", next);
    return 1;
}

static Payment *confirm(svc_req *r, const char *payment_id, int retry_ok)
{
    confirm_args a = {.payment_id = payment_id, .retry_ok = retry_ok};
    /* Screened after the payment is stored and before its attempt exists (design). */
    a.verdict = orch_screen_confirm(r, payment_id, a.screening_id, sizeof(a.screening_id));
    svc_transaction(r, confirm_tx, &a);
    return confirm_send(r, &a);
}

/* Steps 2 and 3 of the attempt the confirm committed (if any), then the automatic capture. */
static Payment *confirm_send(svc_req *r, confirm_args *a)
{
    const orch_state *s = r->app->service;
    if (a->on_chain && a->att_id[0] != '\0') {
        orch_chain_allocate(r, a->att_id, a->chain, a->token);
    }
    if (a->on_chain || a->att_id[0] == '\0') {
        return payment_read(r, a->payment_id);
    }
    conn_result c;
    int tried = 0, recorded = 0;
    const char *connector;
    do {
        connector = s->connectors[a->route.idx[tried]].name;
        authorize(r, connector, a, &c);
    } while (fail_over(r, a, tried++, &c, &recorded));
    if (recorded) {
        return payment_read(r, a->payment_id); /* recorded elsewhere first: answer as stored */
    }
    fault(r, "after_authorize");
    pw_db_param p[] = {pw_db_text(a->att_id), pw_db_text(c.outcome), pw_db_text(c.decline_code),
                       pw_db_bool(c.soft), pw_db_text(c.reference)};
    svc_row row = svc_row_at(r, svc_query(r, &orch_record_authorization, p, 5), 0);
    if (strcmp(svc_text(row, "state"), "AUTHORIZED") == 0 && a->automatic) {
        /* record_authorization queued cap_<the attempt's suffix>, PENDING, for us. */
        char cap[40];
        snprintf(cap, sizeof(cap), "cap_%.35s", a->att_id + 4);
        conn_request capture = {.method = "Capture",
                                .key = cap,
                                .authorization_reference = c.reference,
                                .amount_minor = a->amount_minor};
        conn_result cc;
        conn_call(r, connector, &capture, &cc);
        record_follow_up(r, cap, &cc);
    }
    return payment_read(r, a->payment_id);
}

SVC_HANDLER(confirm_payment, Paywire__Orchestration__V1__ConfirmPaymentRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(req->payment_id, "pay")) {
        svc_violation(r, "payment_id", "a payment id: \"pay_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, "payments:write");
    Paywire__Orchestration__V1__ConfirmPaymentResponse resp =
        PAYWIRE__ORCHESTRATION__V1__CONFIRM_PAYMENT_RESPONSE__INIT;
    resp.payment = confirm(r, req->payment_id, 0);
    svc_reply(r, &resp.base);
}

/* ---- GetPayment ---- */

SVC_HANDLER(get_payment, Paywire__Orchestration__V1__GetPaymentRequest)
{
    if (!svc_id_ok(req->payment_id, "pay")) {
        svc_violation(r, "payment_id", "a payment id: \"pay_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, "payments:read");
    Paywire__Orchestration__V1__GetPaymentResponse resp =
        PAYWIRE__ORCHESTRATION__V1__GET_PAYMENT_RESPONSE__INIT;
    resp.payment = payment_read(r, req->payment_id);
    svc_owns(r, resp.payment->merchant_id, "payment");
    svc_reply(r, &resp.base);
}

/* ---- CapturePayment and CancelPayment: one capture or void per payment ---- */

typedef struct operation_args {
    const char *payment_id;
    const char *key;
    const char *kind; /* CAPTURE or VOID; CancelPayment before authorization: none */
    const Money *amount;
    const char *scope;
    const uint8_t *fp;
    /* Out: the operation to send ("" when there is none) and what it needs. */
    char op_id[40];
    char *authorization, *connector;
    int64_t amount_minor;
} operation_args;

static void operation_tx(svc_req *r, const void *arg)
{
    operation_args *a = (operation_args *)arg;
    int capture = strcmp(a->kind, "CAPTURE") == 0;
    a->op_id[0] = '\0';
    pw_db_param k[] = {pw_db_text(a->scope), pw_db_text(a->key)};
    const pw_db_result *seen = svc_tx_query(r, &operation_by_key, k, 2);
    if (pw_db_rows(seen) == 1) {
        same_request(r, svc_row_at(r, seen, 0), a->fp);
        svc_tx_commit(r); /* a retry: answered with the payment as it is now */
        return;
    }
    pw_db_param pid = pw_db_text(a->payment_id);
    svc_row p = svc_one(r, svc_tx_query(r, &lock_payment, &pid, 1), "payment", a->payment_id);
    svc_owns(r, svc_text(p, "merchant_id"), "payment");
    const char *state = svc_text(p, "state");
    if (!capture &&
        (strcmp(state, "REQUIRES_CONFIRMATION") == 0 || strcmp(state, "UNDER_REVIEW") == 0)) {
        /* Nothing at a partner yet: cancelled at once. */
        pw_db_param m[] = {pid, pw_db_text("CANCELED"), pw_db_text("requested"),
                           pw_db_text("payment.canceled")};
        svc_tx_query(r, &move_payment, m, 4);
        svc_tx_commit(r);
        return;
    }
    if (strcmp(state, "AUTHORIZED") != 0) {
        refused(r, state, capture ? "SUCCEEDED" : "CANCELED");
    }
    if (capture && svc_bool(p, "capture_expired")) {
        svc_abort(r, PW_FAILED_PRECONDITION, "CAPTURE_WINDOW_EXPIRED",
                  "the authorization can no longer be captured");
    }
    int64_t authorized = svc_int64(p, "amount_minor");
    a->amount_minor = a->amount != NULL ? a->amount->amount_minor : authorized;
    if (capture && a->amount != NULL &&
        (a->amount_minor > authorized || strcmp(a->amount->currency, svc_text(p, "currency")))) {
        svc_abort(r, PW_FAILED_PRECONDITION, "AMOUNT_EXCEEDS_AUTHORIZED",
                  "at most the authorized amount, in the payment's currency");
    }
    if (pw_db_rows(svc_tx_query(r, &open_operation, &pid, 1)) > 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "OPERATION_IN_PROGRESS",
                  "a capture or void of this payment is already under way or done");
    }
    svc_row auth =
        svc_one(r, svc_tx_query(r, &authorization_of, &pid, 1), "authorization", a->payment_id);
    a->authorization = svc_text(auth, "partner_reference");
    a->connector = svc_text(auth, "connector");
    if (svc_new_id(capture ? "cap" : "vod", a->op_id, sizeof(a->op_id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    const orch_state *s = r->app->service;
    pw_db_param ins[] = {pw_db_text(a->op_id),    pid,
                         pw_db_text(a->kind),     pw_db_int8(a->amount_minor),
                         pw_db_text(s->instance), pw_db_int8(lease_ms(r)),
                         pw_db_text(a->scope),    pw_db_text(a->key),
                         pw_db_bytea(a->fp, 32)};
    svc_tx_pipe(r, &insert_operation, ins, 9);
    svc_tx_commit(r);
}

static Payment *operate(svc_req *r, operation_args *a)
{
    a->scope = scope_of(r);
    svc_transaction(r, operation_tx, a);
    if (a->op_id[0] != '\0') {
        int capture = strcmp(a->kind, "CAPTURE") == 0;
        conn_request req = {.method = capture ? "Capture" : "VoidAuthorization",
                            .key = a->op_id,
                            .authorization_reference = a->authorization,
                            .amount_minor = a->amount_minor};
        conn_result c;
        conn_call(r, a->connector, &req, &c);
        record_follow_up(r, a->op_id, &c);
    }
    return payment_read(r, a->payment_id);
}

SVC_HANDLER(capture_payment, Paywire__Orchestration__V1__CapturePaymentRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(req->payment_id, "pay")) {
        svc_violation(r, "payment_id", "a payment id: \"pay_\" and 26 characters");
    }
    check_money(r, req->amount, "amount", 0);
    svc_check(r);
    svc_authenticate(r, "payments:write");
    operation_args a = {.payment_id = req->payment_id,
                        .key = req->idempotency_key,
                        .kind = "CAPTURE",
                        .amount = req->amount,
                        .fp = fingerprint_of(r, &req->base)};
    Paywire__Orchestration__V1__CapturePaymentResponse resp =
        PAYWIRE__ORCHESTRATION__V1__CAPTURE_PAYMENT_RESPONSE__INIT;
    resp.payment = operate(r, &a);
    svc_reply(r, &resp.base);
}

SVC_HANDLER(cancel_payment, Paywire__Orchestration__V1__CancelPaymentRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(req->payment_id, "pay")) {
        svc_violation(r, "payment_id", "a payment id: \"pay_\" and 26 characters");
    }
    if (strlen(req->reason) > 100) {
        svc_violation(r, "reason", "at most 100 characters");
    }
    svc_check(r);
    svc_authenticate(r, "payments:write");
    operation_args a = {.payment_id = req->payment_id,
                        .key = req->idempotency_key,
                        .kind = "VOID",
                        .fp = fingerprint_of(r, &req->base)};
    Paywire__Orchestration__V1__CancelPaymentResponse resp =
        PAYWIRE__ORCHESTRATION__V1__CANCEL_PAYMENT_RESPONSE__INIT;
    resp.payment = operate(r, &a);
    svc_reply(r, &resp.base);
}

/* ---- CreateRefund: checked under the payment's lock, counting pending refunds ---- */

typedef struct refund_args {
    const Paywire__Orchestration__V1__CreateRefundRequest *req;
    const char *scope;
    const uint8_t *fp;
    /* Out: the refund; send is 1 when this call created it. */
    char refund_id[40];
    int send;
    char *authorization, *connector;
    int64_t amount_minor;
} refund_args;

static void refund_tx(svc_req *r, const void *arg)
{
    refund_args *a = (refund_args *)arg;
    const Paywire__Orchestration__V1__CreateRefundRequest *req = a->req;
    a->send = 0;
    pw_db_param k[] = {pw_db_text(a->scope), pw_db_text(req->idempotency_key)};
    const pw_db_result *seen = svc_tx_query(r, &refund_by_key, k, 2);
    if (pw_db_rows(seen) == 1) {
        svc_row row = svc_row_at(r, seen, 0);
        same_request(r, row, a->fp);
        snprintf(a->refund_id, sizeof(a->refund_id), "%s", svc_text(row, "id"));
        svc_tx_commit(r);
        return;
    }
    pw_db_param pid = pw_db_text(req->payment_id);
    svc_row p = svc_one(r, svc_tx_query(r, &lock_payment, &pid, 1), "payment", req->payment_id);
    svc_owns(r, svc_text(p, "merchant_id"), "payment");
    const char *state = svc_text(p, "state");
    if (strcmp(state, "SUCCEEDED") != 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "INVALID_STATE_TRANSITION",
                  "a payment in %s cannot be refunded", state);
    }
    /* Read before the next wait, which ends the row's life. */
    int64_t captured = svc_int64(p, "amount_captured_minor");
    const char *currency = svc_text(p, "currency");
    svc_row counted = svc_row_at(r, svc_tx_query(r, &refunds_counted, &pid, 1), 0);
    int64_t left = captured - svc_int64(counted, "counted");
    a->amount_minor = req->amount != NULL ? req->amount->amount_minor : left;
    if (req->amount != NULL && strcmp(req->amount->currency, currency) != 0) {
        svc_abort(r, PW_INVALID_ARGUMENT, NULL, "amount.currency is not the payment's");
    }
    if (a->amount_minor <= 0 || a->amount_minor > left) {
        svc_abort(r, PW_FAILED_PRECONDITION, "AMOUNT_EXCEEDS_CAPTURED",
                  "at most what is captured and not refunded or being refunded");
    }
    svc_row auth =
        svc_one(r, svc_tx_query(r, &authorization_of, &pid, 1), "authorization", req->payment_id);
    a->authorization = svc_text(auth, "partner_reference");
    a->connector = svc_text(auth, "connector");
    if (svc_new_id("ref", a->refund_id, sizeof(a->refund_id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    const orch_state *s = r->app->service;
    pw_db_param ins[] = {
        pw_db_text(a->refund_id),         pw_db_int8(a->amount_minor), pw_db_text(req->reason),
        pw_db_text(s->instance),          pw_db_int8(lease_ms(r)),     pw_db_text(a->scope),
        pw_db_text(req->idempotency_key), pw_db_bytea(a->fp, 32),      pid};
    svc_tx_pipe(r, &insert_refund, ins, 9);
    a->send = 1;
    svc_tx_commit(r);
}

static const pw_db_stmt refund_reserved = {
    .name = "orch_refund_reserved",
    .sql = "UPDATE refunds SET reserved = true, update_time = now() WHERE id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

/*
 * Step 2 (events.h, ev_reserve_refund): 1 when the partner may be called.
 * Without finance_target nothing is reserved (the partner is called at
 * once). Short funds: the refund is FAILED insufficient_funds. Finance
 * unavailable: it stays PENDING unreserved for ledger.c's reserver, and
 * recovery sends only reserved refunds.
 */
static int reserve_refund(svc_req *r, const char *refund_id)
{
    const orch_state *s = r->app->service;
    if (s->finance_target[0] == '\0') {
        return 1;
    }
    char why[300] = "";
    orch_link link;
    pw_channel *finance = orch_link_take(r, s->finance_target, &link);
    pw_status rv = PW_UNAVAILABLE;
    if (finance != NULL) {
        rv = ev_reserve_refund(r->app, r->fiber, finance, refund_id, why, sizeof(why));
        orch_link_give(&link);
    }
    pw_db_param id = pw_db_text(refund_id);
    if (rv == PW_OK) {
        svc_query(r, &refund_reserved, &id, 1);
        return 1;
    }
    if (rv == PW_FAILED_PRECONDITION) {
        pw_db_param p[] = {id, pw_db_bool(0), pw_db_text(""), pw_db_text("insufficient_funds")};
        svc_query(r, &orch_record_refund, p, 4);
    }
    return 0;
}

static Paywire__Orchestration__V1__Refund *refund_read(svc_req *r, const char *id)
{
    pw_db_param p = pw_db_text(id);
    svc_row row = svc_one(r, svc_query(r, &select_refund, &p, 1), "refund", id);
    Paywire__Orchestration__V1__Refund *f = svc_alloc(r, sizeof(*f));
    paywire__orchestration__v1__refund__init(f);
    f->id = svc_text(row, "id");
    f->payment_id = svc_text(row, "payment_id");
    f->merchant_id = svc_text(row, "merchant_id");
    f->amount = money(r, svc_int64(row, "amount_minor"), svc_text(row, "currency"));
    const char *state = svc_text(row, "state");
    f->state = strcmp(state, "SUCCEEDED") == 0
                   ? PAYWIRE__ORCHESTRATION__V1__REFUND_STATE__REFUND_STATE_SUCCEEDED
               : strcmp(state, "FAILED") == 0
                   ? PAYWIRE__ORCHESTRATION__V1__REFUND_STATE__REFUND_STATE_FAILED
                   : PAYWIRE__ORCHESTRATION__V1__REFUND_STATE__REFUND_STATE_PENDING;
    f->reason = svc_text(row, "reason");
    f->failure_code = svc_text(row, "failure_code");
    f->partner_reference = svc_text(row, "partner_reference");
    f->reserved = svc_bool(row, "reserved");
    f->mode = strcmp(svc_text(row, "mode"), "LIVE") == 0 ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE
                                                         : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    f->source = PAYWIRE__ORCHESTRATION__V1__REFUND_SOURCE__REFUND_SOURCE_PAYMENT;
    f->create_time = time_of(row, "create_us");
    f->update_time = time_of(row, "update_us");
    return f;
}

SVC_HANDLER(create_refund, Paywire__Orchestration__V1__CreateRefundRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(req->payment_id, "pay")) {
        svc_violation(r, "payment_id", "a payment id: \"pay_\" and 26 characters");
    }
    check_money(r, req->amount, "amount", 0);
    if (strlen(req->reason) > 100) {
        svc_violation(r, "reason", "at most 100 characters");
    }
    svc_check(r);
    svc_authenticate(r, "refunds:write");
    refund_args a = {.req = req, .scope = scope_of(r), .fp = fingerprint_of(r, &req->base)};
    svc_transaction(r, refund_tx, &a);
    if (a.send && reserve_refund(r, a.refund_id)) {
        conn_request fr = {.method = "Refund",
                           .key = a.refund_id,
                           .authorization_reference = a.authorization,
                           .amount_minor = a.amount_minor};
        conn_result c;
        conn_call(r, a.connector, &fr, &c);
        int ok = strcmp(c.outcome, "SUCCEEDED") == 0;
        if (ok || strcmp(c.outcome, "DECLINED") == 0) {
            pw_db_param p[] = {pw_db_text(a.refund_id), pw_db_bool(ok), pw_db_text(c.reference),
                               pw_db_text(c.decline_code)};
            svc_query(r, &orch_record_refund, p, 4);
        }
    }
    Paywire__Orchestration__V1__CreateRefundResponse resp =
        PAYWIRE__ORCHESTRATION__V1__CREATE_REFUND_RESPONSE__INIT;
    resp.refund = refund_read(r, a.refund_id);
    svc_reply(r, &resp.base);
}

/* ---- ApplyComplianceDecision: a reviewed payment released or failed ---- */

typedef struct decision_args {
    const Paywire__Orchestration__V1__ApplyComplianceDecisionRequest *req;
} decision_args;

/*
 * UNDER_REVIEW only: BLOCK fails it (blocked_by_compliance); ALLOW routes it as a confirm
 * would and leaves the attempt due at once, for recovery to send (the buyer is gone, no
 * call waits for it). Any other state is answered as it is (a repeated or late decision
 * changes nothing): the state is the decision's idempotency.
 */
static void decision_tx(svc_req *r, const void *arg)
{
    const decision_args *a = arg;
    pw_db_param pid = pw_db_text(a->req->payment_id);
    svc_row p = svc_one(r, svc_tx_query(r, &lock_payment, &pid, 1), "payment", a->req->payment_id);
    if (strcmp(svc_text(p, "state"), "UNDER_REVIEW") != 0) {
        svc_tx_commit(r);
        return;
    }
    int block =
        a->req->action == PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_BLOCK;
    orch_route route = {0};
    if (!block) {
        orch_route_payment(r, a->req->payment_id, svc_text(p, "currency"),
                           svc_text(p, "issuer_country"), svc_int64(p, "amount_minor"), &route);
    }
    if (block || route.n == 0) {
        pw_db_param m[] = {pid, pw_db_text("FAILED"),
                           pw_db_text(block ? "blocked_by_compliance" : "no_connector_available"),
                           pw_db_text("payment.failed")};
        svc_tx_pipe(r, &move_payment, m, 4);
        svc_tx_commit(r);
        return;
    }
    char att[40];
    if (svc_new_id("att", att, sizeof(att)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    pw_db_param m[] = {pid, pw_db_text("PROCESSING"), pw_db_text("compliance_allowed"),
                       pw_db_text("payment.processing")};
    svc_tx_pipe(r, &move_payment, m, 4);
    const orch_state *s = r->app->service;
    pw_db_param ins[] = {pw_db_text(att), pid, pw_db_text(s->instance), pw_db_int8(-1),
                         pw_db_text(s->connectors[route.idx[0]].name)};
    svc_tx_pipe(r, &insert_attempt, ins, 5);
    svc_tx_commit(r);
}

SVC_HANDLER(apply_compliance_decision, Paywire__Orchestration__V1__ApplyComplianceDecisionRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(req->payment_id, "pay")) {
        svc_violation(r, "payment_id", "a payment id: \"pay_\" and 26 characters");
    }
    if (req->action != PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_ALLOW &&
        req->action != PAYWIRE__ORCHESTRATION__V1__COMPLIANCE_ACTION__COMPLIANCE_ACTION_BLOCK) {
        svc_violation(r, "action", "COMPLIANCE_ACTION_ALLOW or _BLOCK (holds are not served yet)");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    if (!r->caller.internal) {
        svc_fail(r, PW_PERMISSION_DENIED, "compliance decisions come from compliance");
    }
    decision_args a = {.req = req};
    svc_transaction(r, decision_tx, &a);
    Paywire__Orchestration__V1__ApplyComplianceDecisionResponse resp =
        PAYWIRE__ORCHESTRATION__V1__APPLY_COMPLIANCE_DECISION_RESPONSE__INIT;
    resp.payment = payment_read(r, req->payment_id);
    svc_reply(r, &resp.base);
}

static const paywire_orchestration_v1_payment_service_handlers handlers = {
    .create_payment = create_payment_h,
    .confirm_payment = confirm_payment_h,
    .get_payment = get_payment_h,
    .capture_payment = capture_payment_h,
    .cancel_payment = cancel_payment_h,
    .create_refund = create_refund_h,
    .list_events = orch_list_events_h,
    .watch_payment = orch_watch_payment_h,
    .apply_compliance_decision = apply_compliance_decision_h,
};

/* For the other files of the service (events_api.c). */
Payment *orch_payment_read(svc_req *r, const char *payment_id)
{
    return payment_read(r, payment_id);
}

Paywire__Orchestration__V1__Refund *orch_refund_read(svc_req *r, const char *refund_id)
{
    return refund_read(r, refund_id);
}

pw_status orch_register(pw_server *server, svc_app *app)
{
    pw_status rv = paywire_orchestration_v1_payment_service_register(server, &handlers, app);
    rv = rv != PW_OK ? rv : orch_register_events(server, app);
    return rv != PW_OK ? rv : orch_register_routing(server, app);
}
