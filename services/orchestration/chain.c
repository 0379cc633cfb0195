/*
 * chain.c: on-chain payments (design: "On-chain payments"). A payment whose
 * method is on-chain is paid by a token transfer to a deposit address the
 * custody partner (chain-sim, chain.proto) allocates for its attempt:
 *
 *   confirm  1. the confirm's transaction writes the deposit attempt
 *               (att_…, kind 'deposit', PENDING, leased) and commits;
 *            2. CreateDepositAddress with the attempt's id as the key,
 *               outside any transaction;
 *            3. record_deposit_address: the address on the attempt and the
 *               payment, REQUIRES_ACTION with a deposit next_action.
 *   watcher  on worker 0, each open deposit attempt whose lease ended (the
 *            lease is the next poll): an address never recorded is asked
 *            for again (step 2 under the same key); otherwise the address's
 *            transfers are read from the chain and recorded as deposits
 *            (record_chain_transfers), each wallet not yet screened for the
 *            payment goes to compliance's ScreenTransaction at
 *            FUNDS_RECEIVED, and chain_evaluate moves the payment by what
 *            is counted: PROCESSING once the ALLOWed deposits seen reach the
 *            amount, SUCCEEDED (an internal capture, booked by the ledger
 *            consumer as any capture) once they are final, back to
 *            REQUIRES_ACTION when a reorg drops them below it, FAILED
 *            blocked_by_compliance for a BLOCKed wallet.
 *
 * The watcher is callbacks on the loop (no call, so no fiber), one attempt at
 * a time: claim → chain → record → screen → evaluate → the next claim; idle:
 * the next look after chain_poll_interval_ms. Compliance unavailable: the
 * deposit does not count yet and its wallet is screened on a later poll.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "orchestration.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/simulators/v1/chain.pw.h"

typedef Paywire__Orchestration__V1__Payment Payment;
typedef Paywire__Common__V1__Money Money;

#define CHAIN_PATH(m) "/paywire.simulators.v1.ChainService/" m
#define SCREEN_PATH   "/paywire.compliance.v1.ScreeningService/ScreenTransaction"
/* Transfers read per poll at the most (the JSON handed to record_chain_transfers). */
#define CHAIN_MAX_TRANSFERS 64

/* ---- statements ---- */

static const pw_db_stmt set_on_chain = {
    .name = "orch_chain_set_method",
    .sql = "UPDATE payments SET method = 'on_chain', chain = $2, token = $3,"
           " required_confirmations = $4, vault_token = '' WHERE id = $1",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_INT4, PW_DB_TEXT, PW_DB_INT4},
};
static const pw_db_stmt open_deposit_attempt = {
    .name = "orch_chain_open_attempt",
    .sql = "SELECT id FROM payment_attempts WHERE payment_id = $1 AND kind = 'deposit'"
           " AND outcome = 'PENDING'",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt insert_deposit_attempt = {
    .name = "orch_chain_insert_attempt",
    .sql = "INSERT INTO payment_attempts (id, payment_id, connector, kind, lease_owner,"
           " lease_until) VALUES ($1, $2, 'chain_sim', 'deposit', $3,"
           " now() + $4 * interval '1 millisecond')",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8},
};
static const pw_db_stmt record_address = {
    .name = "orch_chain_record_address",
    .sql = "SELECT record_deposit_address($1, $2) AS state",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt select_deposits = {
    .name = "orch_chain_deposits",
    .sql = "SELECT d.id, d.transaction_hash, d.log_index, d.from_address, d.amount_minor,"
           " d.confirmations, d.state, (extract(epoch FROM d.seen_time) * 1000000)::int8 AS seen_us"
           " FROM deposits d WHERE d.payment_id = $1 ORDER BY d.seen_time, d.id",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* What the deposit next_action and amount_unapplied need: the counted deposits seen and
 * final (wallet ALLOWed), the expiry, and the attempt's received amount. */
static const pw_db_stmt select_counted = {
    .name = "orch_chain_counted",
    .sql = "SELECT coalesce(sum(d.amount_minor) FILTER (WHERE d.state IN ('SEEN', 'FINAL')),"
           " 0)::int8 AS seen, coalesce(sum(d.amount_minor) FILTER (WHERE d.state = 'FINAL'),"
           " 0)::int8 AS final,"
           " (SELECT (extract(epoch FROM action_expire_time) * 1000000)::int8 FROM payments"
           "  WHERE id = $1) AS expire_us"
           " FROM deposits d JOIN wallet_screenings w ON w.payment_id = d.payment_id"
           " AND w.chain = d.chain AND w.wallet = d.from_address AND w.verdict = 'ALLOW'"
           " WHERE d.payment_id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt claim_deposit_attempt = {
    .name = "orch_chain_claim",
    .sql = "UPDATE payment_attempts a SET lease_owner = $1,"
           " lease_until = now() + $2 * interval '1 millisecond' FROM payments p"
           " WHERE a.id = (SELECT t.id FROM payment_attempts t WHERE t.kind = 'deposit'"
           " AND t.outcome = 'PENDING' AND t.lease_until < now() AND EXISTS (SELECT 1 FROM"
           " payments q WHERE q.id = t.payment_id AND q.state IN ('REQUIRES_CONFIRMATION',"
           " 'REQUIRES_ACTION', 'PROCESSING', 'UNDER_REVIEW')) ORDER BY t.lease_until LIMIT 1"
           " FOR UPDATE OF t SKIP LOCKED) AND p.id = a.payment_id"
           " RETURNING a.id, a.partner_reference AS address, p.id AS payment_id, p.chain,"
           " p.token, p.state, p.merchant_id, p.mode, p.amount_minor, p.currency",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_INT8},
};
/* Deposit attempts of payments that ended another way (cancelled before an address was
 * recorded, say) are closed, so the watcher stops polling them. */
static const pw_db_stmt close_ended = {
    .name = "orch_chain_close_ended",
    .sql =
        "UPDATE payment_attempts a SET outcome = 'FAILED', decline_code = 'payment_ended',"
        " end_time = now() FROM payments p WHERE a.kind = 'deposit' AND a.outcome = 'PENDING'"
        " AND p.id = a.payment_id AND p.state IN ('SUCCEEDED', 'CANCELED', 'DECLINED', 'FAILED')",
    .nparams = 0,
};
/* The transfers ($2: a JSON array, in the chain's order) recorded as deposits. */
static const pw_db_stmt record_transfers = {
    .name = "orch_chain_record_transfers",
    .sql = "SELECT coalesce(sum(record_chain_transfer($1, t.hash, t.log_index, t.from_address,"
           " t.amount, t.confirmations, t.included)), 0)::int8 AS n FROM jsonb_to_recordset($2) AS"
           " t(hash text, log_index int, from_address text, amount int8, confirmations int,"
           " included boolean)",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_JSONB},
};
static const pw_db_stmt unscreened_wallet = {
    .name = "orch_chain_unscreened",
    .sql = "SELECT coalesce((SELECT d.from_address FROM deposits d WHERE d.payment_id = $1"
           " AND d.state <> 'REORGED' AND NOT EXISTS (SELECT 1 FROM wallet_screenings w"
           " WHERE w.payment_id = d.payment_id AND w.chain = d.chain"
           " AND w.wallet = d.from_address) AND d.from_address <> $2"
           " ORDER BY d.seen_time, d.id LIMIT 1), '') AS wallet",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt store_screening = {
    .name = "orch_chain_store_screening",
    .sql = "INSERT INTO wallet_screenings (payment_id, chain, wallet, verdict, screening_id)"
           " SELECT $1, chain, $2, $3, $4 FROM payments WHERE id = $1 ON CONFLICT DO NOTHING",
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt evaluate = {
    .name = "orch_chain_evaluate",
    .sql = "SELECT chain_evaluate($1) AS state",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

/* ---- CreatePayment, ConfirmPayment, the Payment message ---- */

void orch_chain_check(svc_req *r, const Paywire__Orchestration__V1__CreatePaymentRequest *req)
{
    const orch_state *s = r->app->service;
    const Paywire__Orchestration__V1__OnChainMethod *m = req->method->on_chain;
    if ((int)m->chain != s->chain) {
        svc_violation(r, "method.on_chain.chain", "the chain the custody partner watches");
    }
    if (strcmp(m->token, "USDC") != 0 && strcmp(m->token, "USDT") != 0) {
        svc_violation(r, "method.on_chain.token", "\"USDC\" or \"USDT\"");
    } else if (req->amount != NULL && strcmp(req->amount->currency, m->token) != 0) {
        svc_violation(r, "amount.currency", "the token (amounts in its minor units)");
    }
    if (m->deposit_address[0] != '\0') {
        svc_violation(r, "method.on_chain.deposit_address", "empty: set by the server");
    }
    if (m->required_confirmations != 0) {
        svc_violation(r, "method.on_chain.required_confirmations",
                      "0: the server's (setting chain_confirmations)");
    }
}

void orch_chain_created(svc_req *r, const char *payment_id,
                        const Paywire__Orchestration__V1__OnChainMethod *m)
{
    const orch_state *s = r->app->service;
    pw_db_param p[] = {pw_db_text(payment_id), pw_db_int4((int32_t)m->chain), pw_db_text(m->token),
                       pw_db_int4((int32_t)s->chain_confirmations)};
    svc_tx_pipe(r, &set_on_chain, p, 4);
}

void orch_chain_attempt(svc_req *r, const char *payment_id, char *att_id, size_t cap)
{
    const orch_state *s = r->app->service;
    pw_db_param pid = pw_db_text(payment_id);
    const pw_db_result *open = svc_tx_query(r, &open_deposit_attempt, &pid, 1);
    if (pw_db_rows(open) == 1) {
        /* A retried confirm whose address was never recorded: the same attempt, same key. */
        snprintf(att_id, cap, "%s", svc_text(svc_row_at(r, open, 0), "id"));
        return;
    }
    if (svc_new_id("att", att_id, cap) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    pw_db_param p[] = {pw_db_text(att_id), pid, pw_db_text(s->instance),
                       pw_db_int8(2 * s->connector_timeout_ms + 5000)};
    svc_tx_pipe(r, &insert_deposit_attempt, p, 4);
}

void orch_chain_allocate(svc_req *r, const char *att_id, int chain, const char *token)
{
    const orch_state *s = r->app->service;
    Paywire__Simulators__V1__CreateDepositAddressRequest req =
        PAYWIRE__SIMULATORS__V1__CREATE_DEPOSIT_ADDRESS_REQUEST__INIT;
    req.idempotency_key = (char *)att_id;
    req.chain = (Paywire__Common__V1__Chain)chain;
    req.token = (char *)token;
    orch_link link;
    pw_channel *ch = orch_link_take(r, s->chain_target, &link);
    svc_answer a = {.code = PW_UNAVAILABLE, .message = "no channel to the custody partner"};
    if (ch != NULL) {
        a = svc_call(r, ch, CHAIN_PATH("CreateDepositAddress"), &req.base,
                     &paywire__simulators__v1__create_deposit_address_response__descriptor,
                     s->connector_timeout_ms);
        orch_link_give(&link);
    }
    if (a.code != PW_OK) {
        /* The attempt stays open: the watcher asks again under the same key. */
        PW_LOG(PW_LOG_WARNING, "orchestration",
               "deposit address for %s: %s (%s); the watcher"
               " retries",
               att_id, pw_status_str(a.code), a.message);
        return;
    }
    const Paywire__Simulators__V1__CreateDepositAddressResponse *resp = (const void *)a.response;
    pw_db_param p[] = {pw_db_text(att_id), pw_db_text(resp->deposit_address->address->address)};
    svc_query(r, &record_address, p, 2);
}

static Paywire__Common__V1__ChainAddress *chain_address(svc_req *r, int chain, const char *address)
{
    Paywire__Common__V1__ChainAddress *a = svc_alloc(r, sizeof(*a));
    paywire__common__v1__chain_address__init(a);
    a->chain = (Paywire__Common__V1__Chain)chain;
    a->address = svc_strdup(r, address);
    return a;
}

static Money *token_money(svc_req *r, int64_t minor, const char *token)
{
    Money *m = svc_alloc(r, sizeof(*m));
    paywire__common__v1__money__init(m);
    m->amount_minor = minor;
    m->currency = svc_strdup(r, token);
    return m;
}

static void add_deposits(svc_req *r, Payment *p, int chain, const char *token)
{
    static const Paywire__Orchestration__V1__DepositState states[] = {
        PAYWIRE__ORCHESTRATION__V1__DEPOSIT_STATE__DEPOSIT_STATE_SEEN,
        PAYWIRE__ORCHESTRATION__V1__DEPOSIT_STATE__DEPOSIT_STATE_FINAL,
        PAYWIRE__ORCHESTRATION__V1__DEPOSIT_STATE__DEPOSIT_STATE_REORGED};
    static const char *const names[] = {"SEEN", "FINAL", "REORGED"};
    pw_db_param id = pw_db_text(p->id);
    const pw_db_result *res = svc_query(r, &select_deposits, &id, 1);
    p->n_deposits = (size_t)pw_db_rows(res);
    p->deposits = svc_alloc(r, sizeof(*p->deposits) * (p->n_deposits + 1));
    for (size_t i = 0; i < p->n_deposits; i++) {
        svc_row row = svc_row_at(r, res, (int)i);
        Paywire__Orchestration__V1__Deposit *d = svc_alloc(r, sizeof(*d));
        paywire__orchestration__v1__deposit__init(d);
        d->id = svc_text(row, "id");
        d->transaction_hash = svc_text(row, "transaction_hash");
        d->log_index = (uint32_t)svc_int64(row, "log_index");
        d->from_address = chain_address(r, chain, svc_text(row, "from_address"));
        d->amount = token_money(r, svc_int64(row, "amount_minor"), token);
        d->confirmations = (uint32_t)svc_int64(row, "confirmations");
        const char *state = svc_text(row, "state");
        for (size_t k = 0; k < 3; k++) {
            if (strcmp(state, names[k]) == 0) {
                d->state = states[k];
            }
        }
        d->seen_time = svc_timestamp(r, svc_int64(row, "seen_us"));
        p->deposits[i] = d;
    }
}

void orch_chain_read(svc_req *r, Payment *p, svc_row row)
{
    int chain = (int)svc_int64(row, "chain");
    const char *token = svc_text(row, "token");
    Paywire__Orchestration__V1__OnChainMethod *m = svc_alloc(r, sizeof(*m));
    paywire__orchestration__v1__on_chain_method__init(m);
    m->chain = (Paywire__Common__V1__Chain)chain;
    m->token = svc_strdup(r, token);
    m->deposit_address = svc_text(row, "deposit_address");
    m->required_confirmations = (uint32_t)svc_int64(row, "required_confirmations");
    p->method->method_case = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_ON_CHAIN;
    p->method->on_chain = m;
    add_deposits(r, p, chain, token);
    pw_db_param id = pw_db_text(p->id);
    svc_row c = svc_row_at(r, svc_query(r, &select_counted, &id, 1), 0);
    int64_t seen = svc_int64(c, "seen"), final = svc_int64(c, "final");
    int64_t captured = p->amount_captured->amount_minor;
    p->amount_unapplied = token_money(r, final > captured ? final - captured : 0, token);
    if (!svc_is_null(c, "expire_us")) {
        p->action_expire_time = svc_timestamp(r, svc_int64(c, "expire_us"));
    }
    if (p->state != PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_REQUIRES_ACTION) {
        return;
    }
    Paywire__Orchestration__V1__DepositAction *d = svc_alloc(r, sizeof(*d));
    paywire__orchestration__v1__deposit_action__init(d);
    d->address = chain_address(r, chain, m->deposit_address);
    d->token = m->token;
    int64_t amount = p->amount->amount_minor;
    d->amount = token_money(r, seen < amount ? amount - seen : 0, token);
    d->expire_time = p->action_expire_time;
    p->next_action = svc_alloc(r, sizeof(*p->next_action));
    paywire__orchestration__v1__next_action__init(p->next_action);
    p->next_action->action_case = PAYWIRE__ORCHESTRATION__V1__NEXT_ACTION__ACTION_DEPOSIT;
    p->next_action->deposit = d;
}

/* ---- the watcher ---- */

typedef struct chain_watch {
    svc_app *app;
    const orch_state *s;
    pw_channel *chain_ch, *compliance_ch;
    uv_timer_t timer;
    int stopping, busy;
    /* The claimed attempt and its payment. */
    char att_id[40], address[64], payment_id[40], token[8], state[32], merchant_id[40];
    char mode[8], wallet[64];
    int chain;
    int64_t amount_minor;
} chain_watch;

static void watch_claim(chain_watch *w);
static void watch_timer_fired(uv_timer_t *t);

static void copy_col(const pw_db_result *res, const char *col, char *out, size_t cap)
{
    const char *v = "";
    size_t len = 0;
    if (pw_db_get_text(res, 0, pw_db_column(res, col), &v, &len) != PW_OK) {
        v = "";
        len = 0;
    }
    snprintf(out, cap, "%.*s", (int)len, v);
}

static void watch_closed(uv_handle_t *h)
{
    chain_watch *w = h->data;
    pw_channel_close(w->chain_ch, NULL, NULL);
    if (w->compliance_ch != NULL) {
        pw_channel_close(w->compliance_ch, NULL, NULL);
    }
    pw_free(w);
}

static void watch_shut(chain_watch *w)
{
    if (!uv_is_closing((uv_handle_t *)&w->timer)) {
        uv_close((uv_handle_t *)&w->timer, watch_closed);
    }
}

/* Done with an attempt (next 0: nothing was claimed, wait a poll interval). */
static void watch_next(chain_watch *w, int next)
{
    w->busy = 0;
    if (w->stopping) {
        watch_shut(w);
        return;
    }
    uv_timer_start(&w->timer, watch_timer_fired, next ? 0 : (uint64_t)w->s->chain_poll_interval_ms,
                   0);
}

/* 1 when the callback should stop here (stopping, or a failed statement logged). */
static int watch_db_failed(chain_watch *w, pw_db_result *res, const char *what)
{
    if (w->stopping) {
        watch_shut(w);
        return 1;
    }
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_ERR, "orchestration", "chain watcher: %s of %s failed: %s", what, w->att_id,
               pw_db_message(res));
        watch_next(w, 0);
        return 1;
    }
    return 0;
}

/* A call's answer: 0 OK; 1 stopping (shut here); 2 failed (logged, the caller goes on). */
static int watch_answer(chain_watch *w, const pw_result *result, const char *what)
{
    if (w->stopping) {
        watch_shut(w);
        return 1;
    }
    if (result->code != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "orchestration", "chain watcher: %s of %s: %s (%s)", what, w->att_id,
               pw_status_str(result->code), result->message);
        return 2;
    }
    return 0;
}

static void evaluated(pw_db_result *res, void *ud)
{
    chain_watch *w = ud;
    if (watch_db_failed(w, res, "evaluation")) {
        return;
    }
    char state[32];
    copy_col(res, "state", state, sizeof(state));
    if (strcmp(state, w->state) != 0) {
        PW_LOG(PW_LOG_NOTICE, "orchestration", "chain watcher: %s %s -> %s", w->payment_id,
               w->state, state);
    }
    watch_next(w, 1);
}

static void watch_evaluate(chain_watch *w)
{
    pw_db_param p = pw_db_text(w->payment_id);
    if (pw_db_query(w->app->pool, NULL, &evaluate, &p, 1, evaluated, w) != PW_OK) {
        watch_next(w, 0);
    }
}

static void watch_screen(chain_watch *w);

/* A wallet's verdict stored: the next wallet not yet screened (or the evaluation). */
static void next_wallet(pw_db_result *res, void *ud)
{
    chain_watch *w = ud;
    if (watch_db_failed(w, res, "screening")) {
        return;
    }
    copy_col(res, "wallet", w->wallet, sizeof(w->wallet));
    if (w->wallet[0] == '\0') {
        watch_evaluate(w);
    } else {
        watch_screen(w);
    }
}

static void stored(pw_db_result *res, void *ud)
{
    chain_watch *w = ud;
    if (watch_db_failed(w, res, "screening")) {
        return;
    }
    /* The next, leaving out the one just stored (its row may not be visible yet elsewhere). */
    pw_db_param p[] = {pw_db_text(w->payment_id), pw_db_text(w->wallet)};
    if (pw_db_query(w->app->pool, NULL, &unscreened_wallet, p, 2, next_wallet, w) != PW_OK) {
        watch_next(w, 0);
    }
}

static void store_verdict(chain_watch *w, const char *verdict, const char *screening_id)
{
    pw_db_param p[] = {pw_db_text(w->payment_id), pw_db_text(w->wallet), pw_db_text(verdict),
                       pw_db_text(screening_id)};
    if (pw_db_query(w->app->pool, NULL, &store_screening, p, 4, stored, w) != PW_OK) {
        watch_next(w, 0);
    }
}

static void screened(const ProtobufCMessage *msg, const pw_result *result, void (*typed)(void),
                     void *ud)
{
    (void)typed;
    chain_watch *w = ud;
    int failed = watch_answer(w, result, "screening a wallet");
    if (failed == 2) {
        watch_evaluate(w); /* fail closed: the deposit does not count; a later poll screens */
    }
    if (failed) {
        return;
    }
    const Paywire__Compliance__V1__ScreenTransactionResponse *v = (const void *)msg;
    const char *verdict =
        v->verdict == PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_ALLOW
            ? "ALLOW"
        : v->verdict == PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_BLOCK
            ? "BLOCK"
            : "REVIEW";
    PW_LOG(PW_LOG_NOTICE, "orchestration", "chain watcher: wallet %s of %s: %s (%s)", w->wallet,
           w->payment_id, verdict, v->screening_id);
    store_verdict(w, verdict, v->screening_id);
}

/* ScreenTransaction at FUNDS_RECEIVED for w->wallet, or ALLOW unscreened without compliance. */
static void watch_screen(chain_watch *w)
{
    if (w->compliance_ch == NULL) {
        store_verdict(w, "ALLOW", ""); /* no compliance configured: not screened (README) */
        return;
    }
    char key[160];
    snprintf(key, sizeof(key), "%s:FUNDS_RECEIVED:%d:%s", w->payment_id, w->chain, w->wallet);
    Paywire__Common__V1__Money amount = PAYWIRE__COMMON__V1__MONEY__INIT;
    amount.amount_minor = w->amount_minor;
    amount.currency = w->token;
    Paywire__Common__V1__ChainAddress wallet = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    wallet.chain = (Paywire__Common__V1__Chain)w->chain;
    wallet.address = w->wallet;
    Paywire__Compliance__V1__ScreenTransactionRequest req =
        PAYWIRE__COMPLIANCE__V1__SCREEN_TRANSACTION_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = w->merchant_id;
    req.payment_id = w->payment_id;
    req.amount = &amount;
    req.source_wallet = &wallet;
    req.stage = PAYWIRE__COMPLIANCE__V1__SCREENING_STAGE__SCREENING_STAGE_FUNDS_RECEIVED;
    req.mode = strcmp(w->mode, "LIVE") == 0 ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE
                                            : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    pw_call_options o = {.timeout_ms = w->s->compliance_timeout_ms};
    if (pw_client_unary(w->compliance_ch, SCREEN_PATH, &o, &req.base,
                        &paywire__compliance__v1__screen_transaction_response__descriptor, screened,
                        NULL, w) != PW_OK) {
        watch_evaluate(w);
    }
}

static void transfers_recorded(pw_db_result *res, void *ud)
{
    chain_watch *w = ud;
    if (watch_db_failed(w, res, "recording transfers")) {
        return;
    }
    pw_db_param p[] = {pw_db_text(w->payment_id), pw_db_text("")};
    if (pw_db_query(w->app->pool, NULL, &unscreened_wallet, p, 2, next_wallet, w) != PW_OK) {
        watch_next(w, 0);
    }
}

/* 1 when s is 0x and n lower-case hex digits (what may go into the JSON unescaped). */
static int hex_ok(const char *s, size_t n)
{
    if (s == NULL || strlen(s) != n + 2 || strncmp(s, "0x", 2) != 0) {
        return 0;
    }
    for (size_t i = 2; i < n + 2; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* The address's transfers of the payment's token as a JSON array for record_chain_transfers. */
static char *transfers_json(chain_watch *w,
                            const Paywire__Simulators__V1__GetDepositAddressResponse *resp)
{
    size_t cap = 64 + CHAIN_MAX_TRANSFERS * 256, len = 0;
    char *json = pw_malloc(cap);
    if (json == NULL) {
        return NULL;
    }
    len += (size_t)snprintf(json, cap, "[");
    size_t n = resp->n_transfers < CHAIN_MAX_TRANSFERS ? resp->n_transfers : CHAIN_MAX_TRANSFERS;
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        const Paywire__Simulators__V1__Transfer *t = resp->transfers[i];
        if (strcmp(t->token, w->token) != 0 || t->from_address == NULL ||
            !hex_ok(t->transaction_hash, 64) || !hex_ok(t->from_address->address, 40) ||
            t->amount_minor <= 0) {
            continue; /* another token, or nothing a deposit can be made of */
        }
        len += (size_t)snprintf(
            json + len, cap - len,
            "%s{\"hash\":\"%s\",\"log_index\":%u,\"from_address\":\"%s\",\"amount\":%lld,"
            "\"confirmations\":%u,\"included\":%s}",
            first ? "" : ",", t->transaction_hash, t->log_index, t->from_address->address,
            (long long)t->amount_minor, t->confirmations,
            t->state == PAYWIRE__SIMULATORS__V1__TRANSFER_STATE__TRANSFER_STATE_INCLUDED ? "true"
                                                                                         : "false");
        first = 0;
    }
    snprintf(json + len, cap - len, "]");
    return json;
}

static void chain_read(const ProtobufCMessage *msg, const pw_result *result, void (*typed)(void),
                       void *ud)
{
    (void)typed;
    chain_watch *w = ud;
    int failed = watch_answer(w, result, "reading the address");
    if (failed == 2) {
        watch_next(w, 1);
    }
    if (failed) {
        return;
    }
    char *json = transfers_json(w, (const void *)msg);
    pw_db_param p[] = {pw_db_text(w->payment_id), pw_db_jsonb(json)};
    pw_status rv = json == NULL ? PW_ERRNO(ENOMEM)
                                : pw_db_query(w->app->pool, NULL, &record_transfers, p, 2,
                                              transfers_recorded, w);
    pw_free(json);
    if (rv != PW_OK) {
        watch_next(w, 0);
    }
}

static void address_recorded(pw_db_result *res, void *ud)
{
    chain_watch *w = ud;
    if (!watch_db_failed(w, res, "recording the address")) {
        watch_next(w, 1);
    }
}

static void address_allocated(const ProtobufCMessage *msg, const pw_result *result,
                              void (*typed)(void), void *ud)
{
    (void)typed;
    chain_watch *w = ud;
    int failed = watch_answer(w, result, "allocating the address");
    if (failed == 2) {
        watch_next(w, 1);
    }
    if (failed) {
        return;
    }
    const Paywire__Simulators__V1__CreateDepositAddressResponse *resp = (const void *)msg;
    pw_db_param p[] = {pw_db_text(w->att_id), pw_db_text(resp->deposit_address->address->address)};
    if (pw_db_query(w->app->pool, NULL, &record_address, p, 2, address_recorded, w) != PW_OK) {
        watch_next(w, 0);
    }
}

/* The claimed attempt: its address asked for again, or its transfers read. */
static void watch_poll(chain_watch *w)
{
    pw_call_options o = {.timeout_ms = w->s->connector_timeout_ms};
    pw_status rv;
    if (w->address[0] == '\0') {
        Paywire__Simulators__V1__CreateDepositAddressRequest req =
            PAYWIRE__SIMULATORS__V1__CREATE_DEPOSIT_ADDRESS_REQUEST__INIT;
        req.idempotency_key = w->att_id;
        req.chain = (Paywire__Common__V1__Chain)w->chain;
        req.token = w->token;
        rv = pw_client_unary(w->chain_ch, CHAIN_PATH("CreateDepositAddress"), &o, &req.base,
                             &paywire__simulators__v1__create_deposit_address_response__descriptor,
                             address_allocated, NULL, w);
    } else {
        Paywire__Simulators__V1__GetDepositAddressRequest req =
            PAYWIRE__SIMULATORS__V1__GET_DEPOSIT_ADDRESS_REQUEST__INIT;
        req.address = w->address;
        rv = pw_client_unary(w->chain_ch, CHAIN_PATH("GetDepositAddress"), &o, &req.base,
                             &paywire__simulators__v1__get_deposit_address_response__descriptor,
                             chain_read, NULL, w);
    }
    if (rv != PW_OK) {
        watch_next(w, 0);
    }
}

static void ended_closed(pw_db_result *res, void *ud)
{
    chain_watch *w = ud;
    if (!watch_db_failed(w, res, "closing ended attempts")) {
        watch_next(w, 0);
    }
}

static void claimed(pw_db_result *res, void *ud)
{
    chain_watch *w = ud;
    if (watch_db_failed(w, res, "claim")) {
        return;
    }
    if (pw_db_rows(res) == 0) {
        /* Nothing due: close what ended elsewhere, then wait a poll interval. */
        if (pw_db_query(w->app->pool, NULL, &close_ended, NULL, 0, ended_closed, w) != PW_OK) {
            watch_next(w, 0);
        }
        return;
    }
    copy_col(res, "id", w->att_id, sizeof(w->att_id));
    copy_col(res, "address", w->address, sizeof(w->address));
    copy_col(res, "payment_id", w->payment_id, sizeof(w->payment_id));
    copy_col(res, "token", w->token, sizeof(w->token));
    copy_col(res, "state", w->state, sizeof(w->state));
    copy_col(res, "merchant_id", w->merchant_id, sizeof(w->merchant_id));
    copy_col(res, "mode", w->mode, sizeof(w->mode));
    int64_t chain = 0;
    pw_db_get_int64(res, 0, pw_db_column(res, "chain"), &chain);
    w->chain = (int)chain;
    pw_db_get_int64(res, 0, pw_db_column(res, "amount_minor"), &w->amount_minor);
    watch_poll(w);
}

static void watch_claim(chain_watch *w)
{
    pw_db_param p[] = {pw_db_text(w->s->instance), pw_db_int8(w->s->chain_poll_interval_ms)};
    if (pw_db_query(w->app->pool, NULL, &claim_deposit_attempt, p, 2, claimed, w) != PW_OK) {
        watch_next(w, 0);
    }
}

static void watch_timer_fired(uv_timer_t *t)
{
    chain_watch *w = t->data;
    if (w->stopping || w->busy) {
        return;
    }
    w->busy = 1;
    watch_claim(w);
}

pw_status orch_chain_watch_start(svc_app *app, uv_loop_t *loop, void **out)
{
    const orch_state *s = app->service;
    chain_watch *w = pw_calloc(1, sizeof(*w));
    if (w == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    w->app = app;
    w->s = s;
    pw_status rv = orch_channel(s, s->chain_target, loop, &w->chain_ch);
    if (rv == PW_OK && s->compliance_target[0] != '\0') {
        rv = orch_channel(s, s->compliance_target, loop, &w->compliance_ch);
        if (rv != PW_OK) {
            pw_channel_close(w->chain_ch, NULL, NULL);
        }
    }
    if (rv != PW_OK) {
        pw_free(w);
        return rv;
    }
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, watch_timer_fired, (uint64_t)s->chain_poll_interval_ms, 0);
    *out = w;
    return PW_OK;
}

void orch_chain_watch_stop(void *watch)
{
    chain_watch *w = watch;
    if (w == NULL) {
        return;
    }
    w->stopping = 1;
    if (!w->busy) {
        watch_shut(w);
    }
}
