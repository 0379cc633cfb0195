/*
 * reviews.c: ScreeningService.DecideScreening, the review of a screening with
 * matches (docs/design/compliance.md, Screening reviews). OPEN, then CLEARED
 * (a false positive) or CONFIRMED. Clearing a MATCH takes two verified
 * reviewers (the first decision waits in AWAITING_SECOND_REVIEW; the same
 * reviewer again is refused); clearing a POTENTIAL_MATCH or confirming
 * anything takes one. The screening row is locked, so concurrent reviews are
 * serialised, and each decision is appended to the audit chain in the same
 * transaction.
 */
#include <stdio.h>
#include <string.h>
#include "compliance.h"

#define P(x)        Paywire__Compliance__V1__##x
#define DECISION(x) PAYWIRE__COMPLIANCE__V1__SCREENING_DECISION__SCREENING_DECISION_##x
#define REVIEW(x)   PAYWIRE__COMPLIANCE__V1__SCREENING_REVIEW_STATE__SCREENING_REVIEW_STATE_##x

static const pw_db_stmt lock_screening = {
    "review_lock",
    "SELECT outcome, review_state FROM screenings WHERE id = $1 FOR UPDATE",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt last_review = {
    "review_last",
    "SELECT position, decision, reviewer FROM screening_decisions"
    " WHERE screening_id = $1 ORDER BY position DESC LIMIT 1",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt insert_review = {
    "review_insert",
    "INSERT INTO screening_decisions (screening_id, position, decision, reason_codes, note,"
    " reviewer, stage) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    7,
    {PW_DB_TEXT, PW_DB_INT4, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt set_review = {"review_set",
                                      "UPDATE screenings SET review_state = $2 WHERE id = $1",
                                      2,
                                      {PW_DB_TEXT, PW_DB_TEXT}};

static const char *const names[] = {"", "CLEAR", "CONFIRM"};
static const char *const review_names[] = {
    "", "NOT_REQUIRED", "OPEN", "AWAITING_SECOND_REVIEW", "CLEARED", "CONFIRMED"};

typedef struct review_args {
    const P(DecideScreeningRequest) * req;
    const char *reviewer;
} review_args;

static void review_tx(svc_req *r, const void *arg)
{
    const review_args *a = arg;
    const P(DecideScreeningRequest) *req = a->req;
    pw_db_param id = pw_db_text(req->screening_id);
    svc_row s =
        svc_one(r, svc_tx_query(r, &lock_screening, &id, 1), "screening", req->screening_id);
    int state = screening_review_state(svc_text(s, "review_state"));
    int match = strcmp(svc_text(s, "outcome"), "MATCH") == 0;
    if (state == REVIEW(NOT_REQUIRED)) {
        svc_abort(r, PW_FAILED_PRECONDITION, "NOTHING_TO_REVIEW",
                  "screening %s found no match: there is nothing to review", req->screening_id);
    }
    if (state == REVIEW(CLEARED) || state == REVIEW(CONFIRMED)) {
        svc_abort(r, PW_FAILED_PRECONDITION, "REVIEW_CLOSED",
                  "screening %s is %s: decided for good", req->screening_id, review_names[state]);
    }
    const pw_db_result *last = svc_tx_query(r, &last_review, &id, 1);
    int position = pw_db_rows(last) ? (int)svc_int64(svc_row_at(r, last, 0), "position") + 1 : 1;
    const char *stage = "";
    int next;
    if (state == REVIEW(AWAITING_SECOND_REVIEW)) {
        char *by = svc_text(svc_row_at(r, last, 0), "reviewer");
        if (strcmp(by, a->reviewer) == 0) {
            svc_abort(r, PW_FAILED_PRECONDITION, "SECOND_REVIEWER_REQUIRED",
                      "four-eyes rule: clearing the MATCH of screening %s, decided by %s, needs a "
                      "second, different reviewer",
                      req->screening_id, by);
        }
        stage = "SECOND";
        next = req->decision == DECISION(CLEAR) ? REVIEW(CLEARED) : REVIEW(CONFIRMED);
    } else if (req->decision == DECISION(CLEAR) && match) {
        stage = "FIRST";
        next = REVIEW(AWAITING_SECOND_REVIEW);
    } else {
        next = req->decision == DECISION(CLEAR) ? REVIEW(CLEARED) : REVIEW(CONFIRMED);
    }
    char *codes = reason_codes_join(r, req->reason_codes, req->n_reason_codes);
    pw_db_param d[] = {id,
                       pw_db_int4(position),
                       pw_db_text(names[req->decision]),
                       pw_db_text(codes),
                       pw_db_text(req->note),
                       pw_db_text(a->reviewer),
                       pw_db_text(stage)};
    svc_tx_pipe(r, &insert_review, d, 7);
    pw_db_param u[] = {id, pw_db_text(review_names[next])};
    svc_tx_pipe(r, &set_review, u, 2);
    const char *kv[] = {"decision", names[req->decision], "stage",   stage,
                        "state",    review_names[next],   "reasons", codes,
                        "reviewer", a->reviewer};
    char key[96], actor[256];
    snprintf(key, sizeof(key), "screening/%s/decision/%d", req->screening_id, position);
    snprintf(actor, sizeof(actor), "reviewer:%s", a->reviewer);
    audit_entry e = {actor, "screening.decided", req->screening_id, "compliance",
                     audit_detail(r, kv, 5)};
    audit_record(r, key, &e);
    P(DecideScreeningResponse) resp = PAYWIRE__COMPLIANCE__V1__DECIDE_SCREENING_RESPONSE__INIT;
    resp.screening = screening_load(r, 1, req->screening_id);
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(decide_screening, P(DecideScreeningRequest))
{
    if (!svc_id_ok(req->screening_id, "scr")) {
        svc_violation(r, "screening_id", "a screening id: \"scr_\" and 26 characters");
    }
    if (req->decision != DECISION(CLEAR) && req->decision != DECISION(CONFIRM)) {
        svc_violation(r, "decision", "SCREENING_DECISION_CLEAR or SCREENING_DECISION_CONFIRM");
    }
    reason_codes_check(r, "reason_codes", req->reason_codes, req->n_reason_codes,
                       SCREENING_REASON_CODES);
    if (req->note[0] && !svc_text_ok(req->note, 2000)) {
        svc_violation(r, "note", "up to 2000 characters of text");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    review_args a = {req, reviewer_identify(r)};
    /* Scoped by the verified reviewer, as DecideCase's keys are. */
    char method[256];
    snprintf(method, sizeof(method), "DecideScreening:%s", a.reviewer);
    svc_idempotent(r, svc_strdup(r, method), req->idempotency_key,
                   &paywire__compliance__v1__decide_screening_response__descriptor, review_tx, &a);
}

void reviews_handlers_init(paywire_compliance_v1_screening_service_handlers *h)
{
    h->decide_screening = decide_screening_h;
}
