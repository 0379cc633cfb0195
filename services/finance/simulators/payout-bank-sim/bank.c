/*
 * bank.c: PayoutBankService (payout_bank.proto), a payout bank as finance
 * needs one. Every payout is one row of `payouts` under our instruction id:
 * a retry gets the first answer and bumps `requests`, a retry with other
 * content is refused naming the field, so a test can count what reached
 * the bank and see that a retried payout pays once. A payout's fate is
 * decided when it is accepted (test accounts choose it, payout_bank.proto)
 * and becomes visible settle_delay_ms later; the statement is read from the
 * same rows, so it always agrees with the bank's records. Latency, failures
 * before anything is recorded and answers lost after recording come from the
 * settings, drawn from a seeded generator.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "bank.h"

typedef Paywire__Simulators__V1__Payout Payout;

#define STATEMENT_PAGE 500

/* The behaviour (settings), process-wide; only the draw counter changes. */
typedef struct bank_behaviour {
    int64_t latency_min_ms;
    int64_t latency_max_ms;
    int64_t failure_percent;
    int64_t lost_answer_percent;
    int64_t settle_delay_ms;
    int64_t charge_minor;
    uint64_t seed;
    _Atomic uint64_t draws;
} bank_behaviour;

const svc_setting bank_settings[] = {
    {"latency_min_ms", SVC_SETTING_INT, "0", 0, 60000, 0},
    {"latency_max_ms", SVC_SETTING_INT, "0", 0, 60000, 0},
    /* Submissions answered UNAVAILABLE before anything is recorded. */
    {"failure_percent", SVC_SETTING_INT, "0", 0, 100, 0},
    /* Submissions recorded, then answered UNAVAILABLE (the caller cannot tell). */
    {"lost_answer_percent", SVC_SETTING_INT, "0", 0, 100, 0},
    /* An accepted payout settles (or comes back) this long after acceptance. */
    {"settle_delay_ms", SVC_SETTING_INT, "2000", 0, 7 * 86400000LL, 0},
    /* The bank's charge per accepted payout, in the payout's minor units. */
    {"charge_minor", SVC_SETTING_INT, "25", 0, 1000000, 0},
    {"seed", SVC_SETTING_INT, "1", 0, INT64_MAX, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

pw_status bank_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    bank_behaviour *b = pw_calloc(1, sizeof(*b));
    if (b == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    b->latency_min_ms = svc_config_int(cfg, "latency_min_ms");
    b->latency_max_ms = svc_config_int(cfg, "latency_max_ms");
    b->failure_percent = svc_config_int(cfg, "failure_percent");
    b->lost_answer_percent = svc_config_int(cfg, "lost_answer_percent");
    b->settle_delay_ms = svc_config_int(cfg, "settle_delay_ms");
    b->charge_minor = svc_config_int(cfg, "charge_minor");
    b->seed = (uint64_t)svc_config_int(cfg, "seed");
    if (b->latency_max_ms < b->latency_min_ms) {
        snprintf(err, err_len, "latency_max_ms is below latency_min_ms");
        pw_free(b);
        return PW_INVALID_ARGUMENT;
    }
    PW_LOG(PW_LOG_NOTICE, "payout_bank_sim", "seed %llu", (unsigned long long)b->seed);
    *state = b;
    return PW_OK;
}

void bank_teardown(void *state)
{
    pw_free(state);
}

static uint64_t draw(bank_behaviour *b, uint64_t n)
{
    return svc_draw(b->seed, atomic_fetch_add(&b->draws, 1), n);
}

/* ---- rows ---- */

#define PAYOUT_COLUMNS                                                                        \
    "instruction_id, end_to_end_id, amount_minor, currency, creditor_name, creditor_account," \
    " CASE WHEN state = 'REJECTED' THEN 'REJECTED' WHEN final_time <= now() THEN final_state" \
    " ELSE 'ACCEPTED' END AS state_now, return_reason, bank_reference, charge_minor,"         \
    " accept_time, CASE WHEN final_time <= now() THEN final_time END AS final_time_now, requests"

/* A new instruction is recorded with its decided fate; a known one counts the retry. */
static const pw_db_stmt insert_payout = {
    .name = "bank_submit",
    .sql = "INSERT INTO payouts AS p (instruction_id, end_to_end_id, amount_minor, currency,"
           " creditor_name, creditor_account, state, final_state, return_reason, bank_reference,"
           " charge_minor, final_time) VALUES ($1, $2, $3, $4, $5, $6,"
           " CASE WHEN $7 = 'REJECTED' THEN 'REJECTED' ELSE 'ACCEPTED' END, $7, $8, $9,"
           " CASE WHEN $7 = 'REJECTED' THEN 0 ELSE $10 END,"
           " now() + CASE WHEN $7 = 'REJECTED' THEN interval '0' ELSE $11 * interval '1 ms' END)"
           " ON CONFLICT (instruction_id) DO UPDATE SET requests = p.requests + 1"
           " RETURNING " PAYOUT_COLUMNS,
    .nparams = 11,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT,
              PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_INT8},
};
static const pw_db_stmt select_payout = {
    .name = "bank_select",
    .sql = "SELECT " PAYOUT_COLUMNS " FROM payouts WHERE instruction_id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* One UTC day of our account: debits and charges when accepted, credits when returned. */
static const pw_db_stmt statement_lines = {
    .name = "bank_statement",
    .sql = "WITH day AS (SELECT ($1::date)::timestamp AT TIME ZONE 'UTC' AS start)"
           " SELECT * FROM ("
           " SELECT replace(bank_reference, 'bnk_', 'ent_') || '_d' AS entry_reference,"
           "  'DEBIT' AS kind, amount_minor, currency, end_to_end_id, bank_reference,"
           "  '' AS return_reason, accept_time AS booking_time FROM payouts, day"
           "  WHERE state = 'ACCEPTED' AND accept_time >= day.start"
           "  AND accept_time < day.start + interval '1 day'"
           " UNION ALL"
           " SELECT replace(bank_reference, 'bnk_', 'ent_') || '_c', 'CHARGE', charge_minor,"
           "  currency, end_to_end_id, bank_reference, '', accept_time FROM payouts, day"
           "  WHERE state = 'ACCEPTED' AND charge_minor > 0 AND accept_time >= day.start"
           "  AND accept_time < day.start + interval '1 day'"
           " UNION ALL"
           " SELECT replace(bank_reference, 'bnk_', 'ent_') || '_r', 'CREDIT', amount_minor,"
           "  currency, end_to_end_id, bank_reference, return_reason, final_time"
           "  FROM payouts, day WHERE final_state = 'RETURNED' AND final_time <= now()"
           "  AND final_time >= day.start AND final_time < day.start + interval '1 day'"
           " ) l ORDER BY booking_time, entry_reference",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

static const char *const state_names[] = {"", "ACCEPTED", "SETTLED", "REJECTED", "RETURNED"};
static const char *const kind_names[] = {"", "DEBIT", "CREDIT", "CHARGE"};

static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 1; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return 0;
}

static Payout *payout_from_row(svc_req *r, svc_row row)
{
    Payout *p = svc_alloc(r, sizeof(*p));
    paywire__simulators__v1__payout__init(p);
    p->instruction_id = svc_text(row, "instruction_id");
    p->end_to_end_id = svc_text(row, "end_to_end_id");
    p->state = (Paywire__Simulators__V1__PayoutState)name_index(state_names, 5,
                                                                svc_text(row, "state_now"));
    p->return_reason = svc_text(row, "return_reason");
    p->bank_reference = svc_text(row, "bank_reference");
    p->amount_minor = svc_int64(row, "amount_minor");
    p->currency = svc_text(row, "currency");
    p->charge_minor = svc_int64(row, "charge_minor");
    p->accept_time = svc_time(row, "accept_time");
    p->final_time = svc_time(row, "final_time_now");
    p->requests = (int32_t)svc_int64(row, "requests");
    return p;
}

/* ---- SubmitPayout ---- */

/* "<9-digit ABA routing number with its checksum>:<4 to 17 digits>". */
static int us_account_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon - s != 9) {
        return 0;
    }
    static const int weights[9] = {3, 7, 1, 3, 7, 1, 3, 7, 1};
    int sum = 0;
    for (int i = 0; i < 9; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        sum += weights[i] * (s[i] - '0');
    }
    size_t len = strlen(colon + 1);
    if (sum % 10 != 0 || len < 4 || len > 17) {
        return 0;
    }
    return strspn(colon + 1, "0123456789") == len;
}

/* The creditor account's last four characters, which choose a test account's fate. */
static const char *fate(const char *account, const char **reason)
{
    size_t len = strlen(account);
    const char *tail = len >= 4 ? account + len - 4 : account;
    if (strcmp(tail, "0001") == 0) {
        *reason = "AC01";
        return "REJECTED";
    }
    if (strcmp(tail, "0004") == 0) {
        *reason = "AC04";
        return "RETURNED";
    }
    *reason = "";
    return "SETTLED";
}

static void check_submission(svc_req *r, const Paywire__Simulators__V1__SubmitPayoutRequest *req)
{
    if (!svc_key_ok(req->instruction_id)) {
        svc_violation(r, "instruction_id", "1 to 128 printable characters");
    }
    if (!svc_text_ok(req->end_to_end_id, 35)) {
        svc_violation(r, "end_to_end_id", "1 to 35 characters (ISO 20022 EndToEndId)");
    }
    if (req->amount_minor <= 0) {
        svc_violation(r, "amount_minor", "above 0");
    }
    int usd = strcmp(req->currency, "USD") == 0;
    if (!usd && strcmp(req->currency, "EUR") != 0 && strcmp(req->currency, "GBP") != 0) {
        svc_violation(r, "currency", "the bank pays EUR, GBP and USD");
    }
    if (!svc_text_ok(req->creditor_name, 140)) {
        svc_violation(r, "creditor_name", "1 to 140 characters");
    }
    if (usd ? !us_account_ok(req->creditor_account) : !svc_iban_ok(req->creditor_account)) {
        svc_violation(r, "creditor_account",
                      usd ? "\"<9-digit ABA routing number>:<4 to 17 digits>\" for USD"
                          : "a valid IBAN for EUR and GBP");
    }
    svc_check(r);
}

/* A retry must repeat the first submission: the first field that differs, or NULL. */
static const char *differing_field(svc_row row,
                                   const Paywire__Simulators__V1__SubmitPayoutRequest *req)
{
    if (strcmp(svc_text(row, "end_to_end_id"), req->end_to_end_id) != 0) {
        return "end_to_end_id";
    }
    if (svc_int64(row, "amount_minor") != req->amount_minor) {
        return "amount_minor";
    }
    if (strcmp(svc_text(row, "currency"), req->currency) != 0) {
        return "currency";
    }
    if (strcmp(svc_text(row, "creditor_name"), req->creditor_name) != 0) {
        return "creditor_name";
    }
    if (strcmp(svc_text(row, "creditor_account"), req->creditor_account) != 0) {
        return "creditor_account";
    }
    return NULL;
}

SVC_HANDLER(submit_payout, Paywire__Simulators__V1__SubmitPayoutRequest)
{
    check_submission(r, req);
    svc_authenticate(r, NULL);
    bank_behaviour *b = r->app->service;
    svc_sleep(r, b->latency_min_ms +
                     (int64_t)draw(b, (uint64_t)(b->latency_max_ms - b->latency_min_ms + 1)));
    if ((int64_t)draw(b, 100) < b->failure_percent) {
        svc_fail(r, PW_UNAVAILABLE, "simulated bank failure (nothing recorded)");
    }
    char reference[48];
    if (svc_new_id("bnk", reference, sizeof(reference)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create a reference");
    }
    const char *reason;
    const char *final_state = fate(req->creditor_account, &reason);
    pw_db_param p[] = {
        pw_db_text(req->instruction_id), pw_db_text(req->end_to_end_id),
        pw_db_int8(req->amount_minor),   pw_db_text(req->currency),
        pw_db_text(req->creditor_name),  pw_db_text(req->creditor_account),
        pw_db_text(final_state),         pw_db_text(reason),
        pw_db_text(reference),           pw_db_int8(b->charge_minor),
        pw_db_int8(b->settle_delay_ms),
    };
    svc_row row = svc_row_at(r, svc_query(r, &insert_payout, p, 11), 0);
    const char *field = differing_field(row, req);
    if (field != NULL) {
        svc_violation(r, field, "differs from the first submission of this instruction_id");
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "INSTRUCTION_ID_REUSED",
                        "instruction %s was submitted with another %s", req->instruction_id, field);
    }
    if ((int64_t)draw(b, 100) < b->lost_answer_percent) {
        svc_fail(r, PW_UNAVAILABLE, "simulated lost answer (the payout was recorded)");
    }
    Paywire__Simulators__V1__SubmitPayoutResponse resp =
        PAYWIRE__SIMULATORS__V1__SUBMIT_PAYOUT_RESPONSE__INIT;
    resp.payout = payout_from_row(r, row);
    svc_reply(r, &resp.base);
}

/* ---- GetPayout ---- */

SVC_HANDLER(get_payout, Paywire__Simulators__V1__GetPayoutRequest)
{
    if (!svc_key_ok(req->instruction_id)) {
        svc_violation(r, "instruction_id", "1 to 128 printable characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param id = pw_db_text(req->instruction_id);
    svc_row row = svc_one(r, svc_query(r, &select_payout, &id, 1), "payout", req->instruction_id);
    Paywire__Simulators__V1__GetPayoutResponse resp =
        PAYWIRE__SIMULATORS__V1__GET_PAYOUT_RESPONSE__INIT;
    resp.payout = payout_from_row(r, row);
    svc_reply(r, &resp.base);
}

/* ---- GetStatement ---- */

SVC_HANDLER(get_statement, Paywire__Simulators__V1__GetStatementRequest)
{
    if (!svc_date_ok(req->booking_date)) {
        svc_violation(r, "booking_date", "a date as YYYY-MM-DD (UTC)");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param day = pw_db_text(req->booking_date);
    const pw_db_result *res = svc_query(r, &statement_lines, &day, 1);
    /* Built first: the result is gone at the first wait for the reader. */
    int n = pw_db_rows(res);
    Paywire__Simulators__V1__StatementLine *lines = svc_alloc(r, sizeof(*lines) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        svc_row row = svc_row_at(r, res, i);
        Paywire__Simulators__V1__StatementLine *line = &lines[i];
        paywire__simulators__v1__statement_line__init(line);
        line->entry_reference = svc_text(row, "entry_reference");
        line->kind = (Paywire__Simulators__V1__StatementLineKind)name_index(kind_names, 4,
                                                                            svc_text(row, "kind"));
        line->amount_minor = svc_int64(row, "amount_minor");
        line->currency = svc_text(row, "currency");
        line->end_to_end_id = svc_text(row, "end_to_end_id");
        line->bank_reference = svc_text(row, "bank_reference");
        line->return_reason = svc_text(row, "return_reason");
        line->booking_time = svc_time(row, "booking_time");
    }
    Paywire__Simulators__V1__StatementLine **ptrs = svc_alloc(r, sizeof(*ptrs) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        ptrs[i] = &lines[i];
    }
    for (int i = 0; i < n; i += STATEMENT_PAGE) {
        Paywire__Simulators__V1__GetStatementResponse page =
            PAYWIRE__SIMULATORS__V1__GET_STATEMENT_RESPONSE__INIT;
        page.lines = ptrs + i;
        page.n_lines = (size_t)(n - i < STATEMENT_PAGE ? n - i : STATEMENT_PAGE);
        svc_wait_writable(r);
        svc_reply(r, &page.base);
    }
    svc_stream_end(r);
}

static const paywire_simulators_v1_payout_bank_service_handlers handlers = {
    .submit_payout = submit_payout_h,
    .get_payout = get_payout_h,
    .get_statement = get_statement_h,
};

pw_status bank_register(pw_server *server, svc_app *app)
{
    return paywire_simulators_v1_payout_bank_service_register(server, &handlers, app);
}
