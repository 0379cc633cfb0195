/*
 * recovery.c: the recovery job (design: "Recovery"), on worker 0. It claims
 * one row at a time whose lease expired — an attempt left PENDING or
 * TIMED_OUT, a capture or void, a refund — by taking the lease itself
 * (FOR UPDATE SKIP LOCKED: one instance owns a row), and resumes the same
 * row under the same key: an attempt is first asked for by its key
 * (GetOperation) and re-sent only when the partner has never seen it;
 * operations are re-sent, which the partner de-duplicates. Definite answers
 * are recorded by the statements the handlers use (record_*), so a late
 * handler and recovery cannot both move the payment. An automatic capture
 * queued by a recovered authorization is sent at once.
 *
 * Callback style on the loop (no call, so no fiber): claim → partner →
 * record → the next claim; idle: the next look after recovery_interval_ms.
 * Beside it, the capture window's expiry is a job of services/common's
 * scheduler (svc_sched: one instance runs it, on the business clock): every
 * recovery_interval_ms of business time it queues a void, due at once, for
 * each AUTHORIZED payment past capture_before_time, which the operation
 * stage above then sends.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "orchestration.h"
#include "svc_sched.h"

typedef enum rec_stage { REC_ATTEMPT, REC_OPERATION, REC_REFUND } rec_stage;

typedef struct recovery {
    svc_app *app;
    const orch_state *s;
    /* One channel per connector (orch_state.connectors' order). */
    pw_channel *ch[ORCH_MAX_CONNECTORS];
    uv_timer_t timer;
    int stopping;
    int busy;
    rec_stage stage;
    /* The claimed row. */
    char id[40], kind[16], token[80], currency[8], authorization[64], follow[40], connector[32];
    int64_t amount_minor;
    int64_t age_ms;    /* attempts: since the attempt started */
    int asked;         /* attempts: the status query was made */
    svc_sched *expiry; /* the capture window's job */
} recovery;

/* The capture window, the scheduler's job "capture_expiry": an AUTHORIZED payment past
 * capture_before_time (business time) with no capture or void open or done gets a void, due
 * at once, which the operation stage sends (design: "the expiry job at capture_before_time").
 * Its id counts the payment's operations, so a void that FAILED is followed by a new one; the
 * partial unique index keeps one open. 100 at a time: a full chunk runs the step again. */
static const pw_db_stmt queue_expiry_voids = {
    .name = "orch_queue_expiry_voids",
    .sql = "WITH ins AS (INSERT INTO payment_operations (id, payment_id, kind, amount_minor,"
           " lease_owner, lease_until) SELECT 'vod_exp' || (SELECT count(*) FROM"
           " payment_operations c WHERE c.payment_id = p.id) || '_' || substr(p.id, 5), p.id,"
           " 'VOID', p.amount_minor, 'capture_expiry', now() - interval '1 millisecond'"
           " FROM payments p WHERE p.state = 'AUTHORIZED' AND p.capture_before_time < svc_now()"
           " AND NOT EXISTS (SELECT 1 FROM payment_operations o WHERE o.payment_id = p.id"
           " AND o.state IN ('PENDING', 'SUCCEEDED')) LIMIT 100 ON CONFLICT DO NOTHING"
           " RETURNING 1) SELECT count(*) = 100 AS more FROM ins",
    .nparams = 0,
};
static const pw_db_stmt claim_attempt = {
    .name = "orch_claim_attempt",
    .sql = "UPDATE payment_attempts a SET lease_owner = $1,"
           " lease_until = now() + $2 * interval '1 millisecond' FROM payments p"
           " WHERE a.id = (SELECT id FROM payment_attempts WHERE outcome IN ('PENDING',"
           " 'TIMED_OUT') AND kind = 'authorization' AND lease_until < now()"
           " ORDER BY lease_until LIMIT 1"
           " FOR UPDATE SKIP LOCKED) AND p.id = a.payment_id"
           " RETURNING a.id, a.connector, p.vault_token, p.amount_minor, p.currency,"
           " (extract(epoch FROM now() - a.start_time) * 1000)::int8 AS age_ms",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_INT8},
};
/* $3: an operation to take now whatever its lease (the capture a recovered
 * authorization queued), or ''. */
static const pw_db_stmt claim_operation = {
    .name = "orch_claim_operation",
    .sql = "UPDATE payment_operations o SET lease_owner = $1,"
           " lease_until = now() + $2 * interval '1 millisecond' FROM payment_attempts a"
           " WHERE o.id = (SELECT id FROM payment_operations WHERE state = 'PENDING' AND"
           " (lease_until < now() OR id = $3) ORDER BY id = $3 DESC, lease_until LIMIT 1"
           " FOR UPDATE SKIP LOCKED) AND a.payment_id = o.payment_id AND a.outcome = 'SUCCEEDED'"
           " RETURNING o.id, o.kind, o.amount_minor, a.partner_reference, a.connector",
    .nparams = 3,
    .types = {PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT},
};
static const pw_db_stmt claim_refund = {
    .name = "orch_claim_refund",
    .sql = "UPDATE refunds f SET lease_owner = $1,"
           " lease_until = now() + $2 * interval '1 millisecond' FROM payment_attempts a"
           " WHERE f.id = (SELECT id FROM refunds WHERE state = 'PENDING' AND lease_until < now()"
           " ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED) AND a.payment_id = f.payment_id"
           " AND a.outcome = 'SUCCEEDED'"
           " RETURNING f.id, f.amount_minor, a.partner_reference, a.connector",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_INT8},
};
/* With finance: only refunds whose funds are reserved go to the partner (ledger.c reserves the
 * others first). */
static const pw_db_stmt claim_reserved_refund = {
    .name = "orch_claim_reserved_refund",
    .sql = "UPDATE refunds f SET lease_owner = $1,"
           " lease_until = now() + $2 * interval '1 millisecond' FROM payment_attempts a"
           " WHERE f.id = (SELECT id FROM refunds WHERE state = 'PENDING' AND reserved"
           " AND lease_until < now() ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED)"
           " AND a.payment_id = f.payment_id AND a.outcome = 'SUCCEEDED'"
           " RETURNING f.id, f.amount_minor, a.partner_reference, a.connector",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_INT8},
};

static void run(recovery *j);
static void claim(recovery *j);
static void timer_fired(uv_timer_t *t);
static void shut(recovery *j);

static void copy_text(const pw_db_result *res, const char *col, char *out, size_t cap)
{
    const char *s = "";
    size_t len = 0;
    if (pw_db_get_text(res, 0, pw_db_column(res, col), &s, &len) != PW_OK) {
        s = "";
        len = 0;
    }
    snprintf(out, cap, "%.*s", (int)len, s);
}

static int64_t lease_ms(const recovery *j)
{
    return 2 * j->s->connector_timeout_ms + 5000;
}

/* Done with a row: look for the next one at once. */
static void next(recovery *j)
{
    j->busy = 0;
    if (j->stopping) {
        shut(j);
    } else {
        uv_timer_start(&j->timer, timer_fired, 0, 0);
    }
}

static void idle(recovery *j)
{
    j->busy = 0;
    j->follow[0] = '\0';
    if (j->stopping) {
        shut(j);
    } else {
        uv_timer_start(&j->timer, timer_fired, (uint64_t)j->s->recovery_interval_ms, 0);
    }
}

static void recorded(pw_db_result *res, void *ud)
{
    recovery *j = ud;
    if (j->stopping) {
        shut(j);
        return;
    }
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_ERR, "orchestration", "recovery: recording %s failed: %s", j->id,
               pw_db_message(res));
        idle(j);
        return;
    }
    char state[32];
    copy_text(res, "state", state, sizeof(state));
    PW_LOG(PW_LOG_NOTICE, "orchestration", "recovery: %s recorded, payment %s", j->id, state);
    if (j->stage == REC_ATTEMPT && strcmp(state, "AUTHORIZED") == 0) {
        /* An automatic capture was queued as cap_<the attempt's suffix>: send it now. */
        snprintf(j->follow, sizeof(j->follow), "cap_%s", j->id + 4);
    }
    next(j);
}

static void record(recovery *j, const conn_result *c)
{
    int ok = strcmp(c->outcome, "SUCCEEDED") == 0;
    const pw_db_stmt *stmt = j->stage == REC_ATTEMPT     ? &orch_record_authorization
                             : j->stage == REC_OPERATION ? &orch_record_operation
                                                         : &orch_record_refund;
    pw_status rv;
    if (j->stage == REC_ATTEMPT) {
        pw_db_param p[] = {pw_db_text(j->id), pw_db_text(c->outcome), pw_db_text(c->decline_code),
                           pw_db_bool(c->soft), pw_db_text(c->reference)};
        rv = pw_db_query(j->app->pool, NULL, stmt, p, 5, recorded, j);
    } else {
        pw_db_param p[] = {pw_db_text(j->id), pw_db_bool(ok), pw_db_text(c->reference),
                           pw_db_text(c->decline_code)};
        rv = pw_db_query(j->app->pool, NULL, stmt, p, 4, recorded, j);
    }
    if (rv != PW_OK) {
        idle(j);
    }
}

static void send_request(recovery *j);

static void answered(const conn_result *c, void *ud)
{
    recovery *j = ud;
    if (j->stopping) {
        shut(j);
        return;
    }
    if (j->stage == REC_ATTEMPT && !j->asked) {
        j->asked = 1;
        if (strcmp(c->outcome, "NOT_FOUND") == 0 && j->age_ms >= j->s->attempt_give_up_ms) {
            /* Never seen by the partner for this long: no request of it is still on its
             * way, so it failed (and the payment with it: recovery does not fail over). */
            conn_result failed = {.outcome = "FAILED"};
            record(j, &failed);
            return;
        }
        if (strcmp(c->outcome, "NOT_FOUND") == 0) {
            /* The partner never saw it: the identical request, under the same key. */
            send_request(j);
            return;
        }
    }
    /* A record is definite; an UNAVAILABLE ("FAILED") is not, whether the status query or the
     * re-sent request got it: the partner may have the attempt (an acquirer restarting
     * after it approved). An attempt fails only above: no record for attempt_give_up_ms. */
    int definite = strcmp(c->outcome, "SUCCEEDED") == 0 || strcmp(c->outcome, "DECLINED") == 0;
    if (!definite) {
        /* Still unknown: the lease runs out and a later round asks again. */
        PW_LOG(PW_LOG_WARNING, "orchestration", "recovery: %s still %s", j->id, c->outcome);
        idle(j);
        return;
    }
    record(j, c);
}

static void send_request(recovery *j)
{
    conn_request req = {.key = j->id,
                        .vault_token = j->token,
                        .currency = j->currency,
                        .amount_minor = j->amount_minor,
                        .authorization_reference = j->authorization};
    if (j->stage == REC_ATTEMPT) {
        req.method = j->asked ? "Authorize" : "GetOperation";
    } else if (j->stage == REC_REFUND) {
        req.method = "Refund";
    } else {
        req.method = strcmp(j->kind, "CAPTURE") == 0 ? "Capture" : "VoidAuthorization";
    }
    int idx = orch_connector_find(j->s, j->connector);
    if (idx < 0) {
        PW_LOG(PW_LOG_ERR, "orchestration", "recovery: %s is at connector %s, not configured",
               j->id, j->connector);
        idle(j);
        return;
    }
    if (conn_send(j->s, j->ch[idx], &req, answered, j) != PW_OK) {
        idle(j);
    }
}

static void claimed(pw_db_result *res, void *ud)
{
    recovery *j = ud;
    if (j->stopping) {
        shut(j);
        return;
    }
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "orchestration", "recovery: claim failed: %s", pw_db_message(res));
        idle(j);
        return;
    }
    if (pw_db_rows(res) == 0) {
        if (j->stage == REC_REFUND) {
            idle(j);
            return;
        }
        j->stage = j->stage == REC_ATTEMPT ? REC_OPERATION : REC_REFUND;
        claim(j);
        return;
    }
    copy_text(res, "id", j->id, sizeof(j->id));
    copy_text(res, "connector", j->connector, sizeof(j->connector));
    pw_db_get_int64(res, 0, pw_db_column(res, "amount_minor"), &j->amount_minor);
    if (j->stage == REC_ATTEMPT) {
        copy_text(res, "vault_token", j->token, sizeof(j->token));
        copy_text(res, "currency", j->currency, sizeof(j->currency));
        pw_db_get_int64(res, 0, pw_db_column(res, "age_ms"), &j->age_ms);
    } else {
        copy_text(res, "partner_reference", j->authorization, sizeof(j->authorization));
        if (j->stage == REC_OPERATION) {
            copy_text(res, "kind", j->kind, sizeof(j->kind));
        }
    }
    j->follow[0] = '\0';
    j->asked = 0;
    PW_LOG(PW_LOG_NOTICE, "orchestration", "recovery: resuming %s", j->id);
    send_request(j);
}

static void claim(recovery *j)
{
    pw_db_param p[] = {pw_db_text(j->s->instance), pw_db_int8(lease_ms(j)), pw_db_text(j->follow)};
    const pw_db_stmt *stmt = j->stage == REC_ATTEMPT     ? &claim_attempt
                             : j->stage == REC_OPERATION ? &claim_operation
                             : j->s->finance_target[0]   ? &claim_reserved_refund
                                                         : &claim_refund;
    if (pw_db_query(j->app->pool, NULL, stmt, p, stmt->nparams, claimed, j) != PW_OK) {
        idle(j);
    }
}

static void run(recovery *j)
{
    if (j->stopping || j->busy) {
        return;
    }
    j->busy = 1;
    j->stage = j->follow[0] != '\0' ? REC_OPERATION : REC_ATTEMPT;
    claim(j);
}

static void timer_fired(uv_timer_t *t)
{
    run(t->data);
}

pw_status orch_start_jobs(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    (void)cfg;
    recovery *j = pw_calloc(1, sizeof(*j));
    j->app = app;
    j->s = app->service;
    for (int i = 0; i < j->s->n_connectors; i++) {
        pw_status rv = orch_channel(j->s, j->s->connectors[i].target, loop, &j->ch[i]);
        if (rv != PW_OK) {
            for (int k = 0; k < i; k++) {
                pw_channel_close(j->ch[k], NULL, NULL);
            }
            pw_free(j);
            return rv;
        }
    }
    const svc_job expiry = {.name = "capture_expiry",
                            .interval_ms = j->s->recovery_interval_ms,
                            .step = &queue_expiry_voids};
    svc_sched_options o = {
        .tick_ms =
            (uint64_t)(j->s->recovery_interval_ms < 1000 ? j->s->recovery_interval_ms : 1000)};
    pw_status rv = svc_sched_start(&j->expiry, loop, app->pool, &expiry, 1, &o);
    if (rv != PW_OK) {
        for (int k = 0; k < j->s->n_connectors; k++) {
            pw_channel_close(j->ch[k], NULL, NULL);
        }
        pw_free(j);
        return rv;
    }
    uv_timer_init(loop, &j->timer);
    j->timer.data = j;
    uv_timer_start(&j->timer, timer_fired, (uint64_t)j->s->recovery_interval_ms, 0);
    *jobs = j;
    return PW_OK;
}

static void timer_closed(uv_handle_t *h)
{
    recovery *j = h->data;
    for (int i = 0; i < j->s->n_connectors; i++) {
        pw_channel_close(j->ch[i], NULL, NULL);
    }
    pw_free(j);
}

/* Frees the job once nothing of it is in flight (from stop, or the callback that ended last). */
static void shut(recovery *j)
{
    if (!uv_is_closing((uv_handle_t *)&j->timer)) {
        uv_close((uv_handle_t *)&j->timer, timer_closed);
    }
}

void orch_stop_jobs(void *jobs)
{
    recovery *j = jobs;
    if (j == NULL) {
        return;
    }
    j->stopping = 1;
    svc_sched_stop(j->expiry);
    j->expiry = NULL;
    if (!j->busy) {
        shut(j);
    }
}
