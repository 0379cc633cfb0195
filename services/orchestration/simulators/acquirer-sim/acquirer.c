/*
 * acquirer.c: AcquirerService (acquirer.proto), a card acquirer as the tests
 * need one. Every operation is one row of `operations` under the caller's
 * idempotency key: a retry gets the first answer and bumps `requests`, so a
 * test can count what reached the partner. Test card numbers choose the
 * outcome (acquirer.proto); latency, failures before anything is recorded and
 * hangs come from the settings, drawn from a seeded generator. Capture, void
 * and refund are decided under a row lock of the authorization, so a partner
 * never captures twice or refunds more than it captured. Its settlement
 * reports are report.c's.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "acquirer.h"

typedef Paywire__Simulators__V1__Operation Operation;

const svc_setting acquirer_settings[] = {
    {"latency_min_ms", SVC_SETTING_INT, "0", 0, 60000, 0},
    {"latency_max_ms", SVC_SETTING_INT, "0", 0, 60000, 0},
    /* Requests answered UNAVAILABLE before anything is recorded. */
    {"failure_percent", SVC_SETTING_INT, "0", 0, 100, 0},
    /* Requests held for hang_ms, then UNAVAILABLE, nothing recorded. */
    {"hang_percent", SVC_SETTING_INT, "0", 0, 100, 0},
    {"hang_ms", SVC_SETTING_INT, "5000", 0, 60000, 0},
    /* Card 4000000000003001: recorded as approved, answered after this delay. */
    {"timeout_delay_ms", SVC_SETTING_INT, "3000", 0, 60000, 0},
    {"seed", SVC_SETTING_INT, "1", 0, INT64_MAX, 0},
    /* The references' prefix ("sim1_…"): two simulators in one stack differ by it. */
    {"reference_prefix", SVC_SETTING_TEXT, "sim1", 0, 0, 0},
    /* Cards approved here whatever acquirer.proto says: a second acquirer whose issuers
     * answer differently (a soft decline elsewhere approved here). */
    {"approve_cards", SVC_SETTING_TEXT, "", 0, 0, 0},
    /* Where WriteSettlementReport writes its files ("": no reports). Made when missing. */
    {"report_dir", SVC_SETTING_TEXT, "", 0, 0, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

pw_status acquirer_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    sim_behaviour *b = pw_calloc(1, sizeof(*b));
    b->latency_min_ms = svc_config_int(cfg, "latency_min_ms");
    b->latency_max_ms = svc_config_int(cfg, "latency_max_ms");
    b->failure_percent = svc_config_int(cfg, "failure_percent");
    b->hang_percent = svc_config_int(cfg, "hang_percent");
    b->hang_ms = svc_config_int(cfg, "hang_ms");
    b->timeout_delay_ms = svc_config_int(cfg, "timeout_delay_ms");
    b->seed = (uint64_t)svc_config_int(cfg, "seed");
    const char *prefix = svc_config_text(cfg, "reference_prefix");
    const char *approve = svc_config_text(cfg, "approve_cards");
    if (b->latency_max_ms < b->latency_min_ms || strlen(prefix) == 0 ||
        strlen(prefix) >= sizeof(b->prefix) - 1 || strlen(approve) >= sizeof(b->approve_cards)) {
        snprintf(err, err_len,
                 "latency_max_ms below latency_min_ms, reference_prefix not 1 to"
                 " 14 characters, or approve_cards above 255 characters");
        pw_free(b);
        return PW_INVALID_ARGUMENT;
    }
    snprintf(b->prefix, sizeof(b->prefix), "%s", prefix);
    snprintf(b->approve_cards, sizeof(b->approve_cards), "%s", approve);
    if (acquirer_report_dir_init(b, svc_config_text(cfg, "report_dir"), err, err_len) != PW_OK) {
        pw_free(b);
        return PW_INVALID_ARGUMENT;
    }
    PW_LOG(PW_LOG_NOTICE, "acquirer_sim", "seed %llu", (unsigned long long)b->seed);
    *state = b;
    return PW_OK;
}

void acquirer_teardown(void *state)
{
    pw_free(state);
}

/* A number in [0, n) from the seeded sequence (services/common's svc_draw). */
static uint64_t draw(sim_behaviour *b, uint64_t n)
{
    return svc_draw(b->seed, atomic_fetch_add(&b->draws, 1), n);
}

/* Latency, then the configured failures and hangs (nothing is recorded for either). */
static void sim_arrive(svc_req *r)
{
    sim_behaviour *b = r->app->service;
    svc_sleep(r, b->latency_min_ms +
                     (int64_t)draw(b, (uint64_t)(b->latency_max_ms - b->latency_min_ms + 1)));
    if ((int64_t)draw(b, 100) < b->failure_percent) {
        svc_fail(r, PW_UNAVAILABLE, "simulated partner failure");
    }
    if ((int64_t)draw(b, 100) < b->hang_percent) {
        svc_sleep(r, b->hang_ms);
        svc_fail(r, PW_UNAVAILABLE, "simulated partner hang");
    }
}

/* ---- rows ---- */

#define OP_COLUMNS                                                                      \
    "key, kind, status, decline_code, soft_decline, reference, amount_minor, currency," \
    " authorization_reference, requests"

static const pw_db_stmt insert_op = {
    .name = "sim_insert",
    .sql = "INSERT INTO operations AS o (key, kind, status, decline_code, soft_decline, reference,"
           " amount_minor, currency, authorization_reference)"
           " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
           " ON CONFLICT (key) DO UPDATE SET requests = o.requests + 1 RETURNING " OP_COLUMNS,
    .nparams = 9,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BOOL, PW_DB_TEXT, PW_DB_INT8,
              PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt replay_op = {
    .name = "sim_replay",
    .sql = "UPDATE operations SET requests = requests + 1 WHERE key = $1 RETURNING " OP_COLUMNS,
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt select_op = {
    .name = "sim_select",
    .sql = "SELECT " OP_COLUMNS " FROM operations WHERE key = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* The authorization, locked, with what was done on it. */
static const pw_db_stmt lock_authorization = {
    .name = "sim_lock_auth",
    .sql = "SELECT a.status, a.amount_minor, a.currency,"
           " (SELECT coalesce(sum(c.amount_minor), 0) FROM operations c WHERE"
           "  c.authorization_reference = a.reference AND c.kind = 'CAPTURE' AND"
           "  c.status = 'APPROVED')::int8 AS captured,"
           " (SELECT count(*) FROM operations v WHERE v.authorization_reference = a.reference AND"
           "  v.kind = 'VOID' AND v.status = 'APPROVED') AS voids,"
           " (SELECT coalesce(sum(f.amount_minor), 0) FROM operations f WHERE"
           "  f.authorization_reference = a.reference AND f.kind = 'REFUND' AND"
           "  f.status = 'APPROVED')::int8 AS refunded"
           " FROM operations a WHERE a.reference = $1 AND a.kind = 'AUTHORIZATION'"
           " FOR UPDATE OF a",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

static const char *const kind_names[] = {"", "AUTHORIZATION", "CAPTURE", "VOID", "REFUND"};

static Operation *op_from_row(svc_req *r, svc_row row)
{
    Operation *op = svc_alloc(r, sizeof(*op));
    paywire__simulators__v1__operation__init(op);
    op->idempotency_key = svc_text(row, "key");
    const char *kind = svc_text(row, "kind");
    for (int k = 1; k <= 4; k++) {
        if (strcmp(kind, kind_names[k]) == 0) {
            op->kind = (Paywire__Simulators__V1__OperationKind)k;
        }
    }
    op->status = strcmp(svc_text(row, "status"), "APPROVED") == 0
                     ? PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED
                     : PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_DECLINED;
    op->decline_code = svc_text(row, "decline_code");
    op->soft_decline = svc_bool(row, "soft_decline");
    op->reference = svc_text(row, "reference");
    op->amount_minor = svc_int64(row, "amount_minor");
    op->currency = svc_text(row, "currency");
    op->authorization_reference = svc_text(row, "authorization_reference");
    op->requests = (int32_t)svc_int64(row, "requests");
    return op;
}

/* What is recorded for a new key: the decision and the request's fields. */
typedef struct sim_decision {
    const char *key;
    int kind;
    const char *decline_code; /* NULL: approved */
    int soft;
    int64_t amount_minor;
    const char *currency;
    const char *authorization_reference;
} sim_decision;

/* In a transaction: records d (or, for a key seen before, counts the retry) and returns the
 * stored operation. */
static Operation *record(svc_req *r, const sim_decision *d)
{
    const sim_behaviour *b = r->app->service;
    char reference[48];
    if (svc_new_id(b->prefix, reference, sizeof(reference)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create a reference");
    }
    pw_db_param p[] = {
        pw_db_text(d->key),
        pw_db_text(kind_names[d->kind]),
        pw_db_text(d->decline_code == NULL ? "APPROVED" : "DECLINED"),
        pw_db_text(d->decline_code == NULL ? "" : d->decline_code),
        pw_db_bool(d->soft),
        pw_db_text(reference),
        pw_db_int8(d->amount_minor),
        pw_db_text(d->currency),
        pw_db_text(d->authorization_reference),
    };
    const pw_db_result *res = svc_tx_query(r, &insert_op, p, 9);
    return op_from_row(r, svc_row_at(r, res, 0));
}

/* ---- Authorize ---- */

typedef struct authorize_args {
    const sim_decision *d;
    Operation **out;
} authorize_args;

/* The operation a key names must be the one asked again: a key used with another kind, amount
 * or currency is refused (IDEMPOTENCY_KEY_REUSED, rolled back: nothing counted), as a real
 * acquirer's idempotency does, instead of answering the first operation. */
static void same_operation(svc_req *r, const Operation *op, const sim_decision *d)
{
    svc_same_text(r, d->key, "kind", kind_names[op->kind], kind_names[d->kind]);
    if (d->kind != PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_VOID) {
        svc_same_int(r, d->key, "amount_minor", op->amount_minor, d->amount_minor);
    }
    if (d->kind == PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_AUTHORIZATION) {
        svc_same_text(r, d->key, "currency", op->currency, d->currency);
    } else {
        svc_same_text(r, d->key, "authorization_reference", op->authorization_reference,
                      d->authorization_reference);
    }
}

/* The authorization recorded, or its key's first one replayed (the same values only). */
static void authorize_tx(svc_req *r, const void *arg)
{
    const authorize_args *a = arg;
    *a->out = record(r, a->d);
    same_operation(r, *a->out, a->d);
    svc_tx_commit(r);
}

/* 1 when card is one of the comma-separated list. */
static int listed(const char *list, const char *card)
{
    size_t n = strlen(card);
    for (const char *p = list; *p != '\0'; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strncmp(p, card, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* The decision a test card number asks for (acquirer.proto, then approve_cards). */
static void card_decision(const sim_behaviour *b, const char *token, sim_decision *d, int *delayed,
                          int *hangs)
{
    const char *card = strncmp(token, "tok_", 4) == 0 ? token + 4 : token;
    if (listed(b->approve_cards, card)) {
        *delayed = *hangs = 0;
        return;
    }
    *delayed = strcmp(card, "4000000000003001") == 0;
    *hangs = strcmp(card, "4000000000003002") == 0;
    if (strcmp(card, "4000000000000002") == 0) {
        d->decline_code = "do_not_honor";
    } else if (strcmp(card, "4000000000009995") == 0) {
        d->decline_code = "insufficient_funds";
    } else if (strcmp(card, "4000000000000119") == 0) {
        d->decline_code = "processing_error";
        d->soft = 1;
    }
}

SVC_HANDLER(authorize, Paywire__Simulators__V1__AuthorizeRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_text_ok(req->vault_token, 64)) {
        svc_violation(r, "vault_token", "1 to 64 characters");
    }
    if (req->amount_minor <= 0) {
        svc_violation(r, "amount_minor", "above 0");
    }
    if (!svc_currency_ok(req->currency)) {
        svc_violation(r, "currency", "an ISO 4217 currency code");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    sim_arrive(r);
    const sim_behaviour *b = r->app->service;
    sim_decision d = {.key = req->idempotency_key,
                      .kind = PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_AUTHORIZATION,
                      .amount_minor = req->amount_minor,
                      .currency = req->currency,
                      .authorization_reference = ""};
    int delayed, hangs;
    card_decision(b, req->vault_token, &d, &delayed, &hangs);
    if (hangs) {
        svc_sleep(r, b->hang_ms);
        svc_fail(r, PW_UNAVAILABLE, "simulated partner hang");
    }
    Paywire__Simulators__V1__AuthorizeResponse resp =
        PAYWIRE__SIMULATORS__V1__AUTHORIZE_RESPONSE__INIT;
    authorize_args a = {.d = &d, .out = &resp.operation};
    svc_transaction(r, authorize_tx, &a);
    if (delayed) {
        /* Approved and recorded, answered too late: the caller's ambiguous timeout. */
        svc_sleep(r, b->timeout_delay_ms);
    }
    svc_reply(r, &resp.base);
}

/* ---- Capture, VoidAuthorization, Refund: decided under the authorization's lock ---- */

typedef struct follow_up {
    sim_decision d;
    Operation **out;
} follow_up;

static void follow_up_tx(svc_req *r, const void *arg)
{
    const follow_up *f = arg;
    sim_decision d = f->d;
    pw_db_param key = pw_db_text(d.key);
    const pw_db_result *seen = svc_tx_query(r, &replay_op, &key, 1);
    if (pw_db_rows(seen) == 1) {
        *f->out = op_from_row(r, svc_row_at(r, seen, 0));
        same_operation(r, *f->out, &f->d);
        svc_tx_commit(r);
        return;
    }
    pw_db_param ref = pw_db_text(d.authorization_reference);
    const pw_db_result *res = svc_tx_query(r, &lock_authorization, &ref, 1);
    if (pw_db_rows(res) == 0) {
        d.decline_code = "authorization_not_found";
        d.currency = "";
    } else {
        svc_row a = svc_row_at(r, res, 0);
        int64_t authorized = svc_int64(a, "amount_minor");
        int64_t captured = svc_int64(a, "captured");
        int64_t refunded = svc_int64(a, "refunded");
        int voided = svc_int64(a, "voids") > 0;
        d.currency = svc_text(a, "currency");
        if (strcmp(svc_text(a, "status"), "APPROVED") != 0) {
            d.decline_code = "authorization_not_found";
        } else if (d.kind == PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_REFUND) {
            if (captured == 0) {
                d.decline_code = "not_captured";
            } else if (refunded + d.amount_minor > captured) {
                d.decline_code = "amount_exceeds_captured";
            }
        } else if (voided) {
            d.decline_code = "authorization_voided";
        } else if (captured > 0) {
            d.decline_code = "already_captured";
        } else if (d.amount_minor > authorized) {
            d.decline_code = "amount_exceeds_authorized";
        } else if (d.kind == PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_VOID) {
            d.amount_minor = authorized;
        }
    }
    *f->out = record(r, &d);
    same_operation(r, *f->out, &d); /* a racing first request with the key won */
    svc_tx_commit(r);
}

/* Validates, then decides and records a follow-up operation of kind on an authorization. */
static Operation *follow_up_run(svc_req *r, int kind, const char *key, const char *authorization,
                                int64_t amount_minor)
{
    if (!svc_key_ok(key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_text_ok(authorization, 64)) {
        svc_violation(r, "authorization_reference", "1 to 64 characters");
    }
    if (kind != PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_VOID && amount_minor <= 0) {
        svc_violation(r, "amount_minor", "above 0");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    sim_arrive(r);
    Operation *op = NULL;
    follow_up f = {.d = {.key = key,
                         .kind = kind,
                         .amount_minor = amount_minor,
                         .authorization_reference = authorization},
                   .out = &op};
    svc_transaction(r, follow_up_tx, &f);
    return op;
}

SVC_HANDLER(capture, Paywire__Simulators__V1__CaptureRequest)
{
    Paywire__Simulators__V1__CaptureResponse resp = PAYWIRE__SIMULATORS__V1__CAPTURE_RESPONSE__INIT;
    resp.operation =
        follow_up_run(r, PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_CAPTURE,
                      req->idempotency_key, req->authorization_reference, req->amount_minor);
    svc_reply(r, &resp.base);
}

SVC_HANDLER(void_authorization, Paywire__Simulators__V1__VoidAuthorizationRequest)
{
    Paywire__Simulators__V1__VoidAuthorizationResponse resp =
        PAYWIRE__SIMULATORS__V1__VOID_AUTHORIZATION_RESPONSE__INIT;
    resp.operation = follow_up_run(r, PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_VOID,
                                   req->idempotency_key, req->authorization_reference, 0);
    svc_reply(r, &resp.base);
}

SVC_HANDLER(refund, Paywire__Simulators__V1__RefundRequest)
{
    Paywire__Simulators__V1__RefundResponse resp = PAYWIRE__SIMULATORS__V1__REFUND_RESPONSE__INIT;
    resp.operation =
        follow_up_run(r, PAYWIRE__SIMULATORS__V1__OPERATION_KIND__OPERATION_KIND_REFUND,
                      req->idempotency_key, req->authorization_reference, req->amount_minor);
    svc_reply(r, &resp.base);
}

/* ---- GetOperation ---- */

SVC_HANDLER(get_operation, Paywire__Simulators__V1__GetOperationRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param key = pw_db_text(req->idempotency_key);
    svc_row row = svc_one(r, svc_query(r, &select_op, &key, 1), "operation", req->idempotency_key);
    Paywire__Simulators__V1__GetOperationResponse resp =
        PAYWIRE__SIMULATORS__V1__GET_OPERATION_RESPONSE__INIT;
    resp.operation = op_from_row(r, row);
    svc_reply(r, &resp.base);
}

static const paywire_simulators_v1_acquirer_service_handlers handlers = {
    .authorize = authorize_h,
    .capture = capture_h,
    .void_authorization = void_authorization_h,
    .refund = refund_h,
    .get_operation = get_operation_h,
    .write_settlement_report = acquirer_write_settlement_report,
};

pw_status acquirer_register(pw_server *server, svc_app *app)
{
    return paywire_simulators_v1_acquirer_service_register(server, &handlers, app);
}
