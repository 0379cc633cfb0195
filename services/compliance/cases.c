/*
 * cases.c: VerificationService, the KYB/KYC cases (docs/design/compliance.md,
 * Verification cases). CreateCase stores the parties sealed (AES-256-GCM,
 * encryption_key), gives each owner a "per_…" id and a linked KYC case, and
 * screens every party in the same transaction (failing closed: no active list,
 * no case). DecideCase locks the case row, so two reviewers deciding at once
 * are serialised: REJECT, and APPROVE of a case whose screenings had any
 * match, take a FIRST decision (AWAITING_SECOND_REVIEW) and a SECOND by
 * another verified reviewer; agreeing completes the case, disagreeing returns
 * it to OPEN with both recorded. KYB APPROVE needs every linked KYC case
 * APPROVED, and no APPROVE passes an open or confirmed MATCH. Each decision is
 * appended to the audit chain in its own transaction (audit_record).
 */
#include <stdio.h>
#include <string.h>
#include "compliance.h"
#include "jcs.h"

#define P(x)        Paywire__Compliance__V1__##x
#define KIND(x)     PAYWIRE__COMPLIANCE__V1__CASE_KIND__CASE_KIND_##x
#define STATE(x)    PAYWIRE__COMPLIANCE__V1__CASE_STATE__CASE_STATE_##x
#define DECISION(x) PAYWIRE__COMPLIANCE__V1__DECISION__DECISION_##x
#define MAX_OWNERS  20
#define MAX_DOCS    20
#define MAX_CODES   10

static const char *const kinds[] = {"", "KYB", "KYC", "INVESTIGATION"};
static const char *const states[] = {"",         "OPEN",     "NEEDS_INFORMATION",
                                     "APPROVED", "REJECTED", "AWAITING_SECOND_REVIEW"};
static const char *const decisions[] = {"", "APPROVE", "REJECT", "REQUEST_INFORMATION"};
static const char *const stages[] = {"", "FIRST", "SECOND"};

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 1; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            return i;
        }
    }
    return 0;
}

#define CASE_COLS                                                                                \
    "c.seq, c.id, c.kind, c.state, c.subject_id, c.merchant_id,"                                 \
    " COALESCE(c.parent_case_id, '') AS parent_case_id, c.create_time, c.update_time,"           \
    " COALESCE((SELECT string_agg(screening_id, ',' ORDER BY screening_id) FROM case_screenings" \
    " s WHERE s.case_id = c.id), '') AS screenings,"                                             \
    " COALESCE((SELECT string_agg(k.id, ',' ORDER BY k.seq) FROM cases k"                        \
    " WHERE k.parent_case_id = c.id), '') AS linked"

static const pw_db_stmt case_rows = {"case_rows",
                                     "SELECT " CASE_COLS " FROM cases c"
                                     " WHERE c.id = ANY(string_to_array($1, ',')) ORDER BY c.seq",
                                     1,
                                     {PW_DB_TEXT}};
static const pw_db_stmt decision_rows = {
    "case_decision_rows",
    "SELECT case_id, decision, reason_codes, note, reviewer, stage, time FROM case_decisions"
    " WHERE case_id = ANY(string_to_array($1, ',')) ORDER BY case_id, position",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt document_rows = {
    "case_document_rows",
    "SELECT case_id, kind, document_id, sha256 FROM case_documents"
    " WHERE case_id = ANY(string_to_array($1, ',')) ORDER BY case_id, position",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt insert_case = {
    "case_insert",
    "INSERT INTO cases (id, kind, state, subject_id, merchant_id, parent_case_id, role,"
    " ownership_basis_points, party_sealed) VALUES ($1, $2, 'OPEN', $3, $4, NULLIF($5, ''), $6,"
    " $7, $8)",
    8,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT4,
     PW_DB_BYTEA}};
static const pw_db_stmt insert_document = {
    "case_insert_document",
    "INSERT INTO case_documents (case_id, position, kind, document_id, sha256)"
    " VALUES ($1, $2, $3, $4, $5)",
    5,
    {PW_DB_TEXT, PW_DB_INT4, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt insert_link = {
    "case_insert_link",
    "INSERT INTO case_screenings (case_id, screening_id) VALUES ($1, $2)",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt open_kyb = {
    "case_open_kyb",
    "SELECT id FROM cases WHERE merchant_id = $1 AND kind = 'KYB' AND state <> 'REJECTED'",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt lock_case = {
    "case_lock",
    "SELECT id, kind, state, merchant_id FROM cases WHERE id = $1 FOR UPDATE",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt last_decision = {"case_last_decision",
                                         "SELECT position, decision, reviewer FROM case_decisions"
                                         " WHERE case_id = $1 ORDER BY position DESC LIMIT 1",
                                         1,
                                         {PW_DB_TEXT}};
/* The screenings of the case and of its linked KYC cases. */
static const pw_db_stmt case_screening_states = {
    "case_screening_states",
    "SELECT count(*) FILTER (WHERE s.outcome <> 'CLEAR') AS had_match,"
    " count(*) FILTER (WHERE s.outcome = 'MATCH' AND s.review_state IN ('OPEN',"
    " 'AWAITING_SECOND_REVIEW')) AS open_match,"
    " count(*) FILTER (WHERE s.review_state = 'CONFIRMED') AS confirmed"
    " FROM case_screenings cs JOIN screenings s ON s.id = cs.screening_id"
    " WHERE cs.case_id = $1 OR cs.case_id IN (SELECT id FROM cases WHERE parent_case_id = $1)",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt unapproved_linked = {
    "case_unapproved_linked",
    "SELECT COALESCE(string_agg(id, ',' ORDER BY seq), '') AS ids FROM cases"
    " WHERE parent_case_id = $1 AND state <> 'APPROVED'",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt insert_decision = {
    "case_insert_decision",
    "INSERT INTO case_decisions (case_id, position, decision, reason_codes, note, reviewer, stage)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)",
    7,
    {PW_DB_TEXT, PW_DB_INT4, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt set_state = {
    "case_set_state",
    "UPDATE cases SET state = $2, update_time = now() WHERE id = $1",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
/* An approval by two reviewers resolves the case's POTENTIAL_MATCH screenings as false positives.
 */
static const pw_db_stmt clear_potential = {
    "case_clear_potential",
    "UPDATE screenings SET review_state = 'CLEARED' WHERE review_state = 'OPEN'"
    " AND outcome = 'POTENTIAL_MATCH' AND id IN (SELECT screening_id FROM case_screenings"
    " WHERE case_id = $1)",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt list_page = {
    "case_list_page",
    "SELECT COALESCE(string_agg(id, ',' ORDER BY seq), '') AS ids, count(*) AS n,"
    " COALESCE((array_agg(seq ORDER BY seq))[$5], 0) AS cursor FROM (SELECT id, seq FROM cases"
    " WHERE seq > $1 AND ($2 = '' OR state = $2) AND ($3 = '' OR merchant_id = $3)"
    " ORDER BY seq LIMIT $4) page",
    5,
    {PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_INT4}};

/* ---- reading cases ---- */

static const pw_db_result *run(svc_req *r, int in_tx, const pw_db_stmt *s, const pw_db_param *p,
                               int n)
{
    return in_tx ? svc_tx_query(r, s, p, n) : svc_query(r, s, p, n);
}

static char **split(svc_req *r, char *csv, size_t *n)
{
    char **out = svc_alloc(r, sizeof(char *) * (strlen(csv) / 2 + 1));
    *n = 0;
    for (char *save = NULL, *t = strtok_r(csv, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        out[(*n)++] = t;
    }
    return out;
}

static P(VerificationCase) * case_from_row(svc_row row)
{
    P(VerificationCase) *c = svc_alloc(row.r, sizeof(*c));
    paywire__compliance__v1__verification_case__init(c);
    c->id = svc_text(row, "id");
    c->kind = index_of(kinds, 4, svc_text(row, "kind"));
    c->state = index_of(states, 6, svc_text(row, "state"));
    c->subject_id = svc_text(row, "subject_id");
    c->merchant_id = svc_text(row, "merchant_id");
    c->parent_case_id = svc_text(row, "parent_case_id");
    c->create_time = svc_time(row, "create_time");
    c->update_time = svc_time(row, "update_time");
    c->screening_ids = split(row.r, svc_text(row, "screenings"), &c->n_screening_ids);
    c->linked_case_ids = split(row.r, svc_text(row, "linked"), &c->n_linked_case_ids);
    return c;
}

static P(VerificationCase) * find(P(VerificationCase) * *cs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cs[i]->id, id) == 0) {
            return cs[i];
        }
    }
    return NULL;
}

/* The decisions of the cases (oldest first) from the rows of decision_rows. */
static void attach_decisions(svc_req *r, const pw_db_result *res, P(VerificationCase) * *cs,
                             size_t n)
{
    int rows = pw_db_rows(res);
    for (size_t i = 0; i < n; i++) {
        cs[i]->decisions = svc_alloc(r, sizeof(*cs[i]->decisions) * (size_t)(rows + 1));
    }
    for (int i = 0; i < rows; i++) {
        svc_row row = svc_row_at(r, res, i);
        P(VerificationCase) *c = find(cs, n, svc_text(row, "case_id"));
        P(CaseDecision) *d = svc_alloc(r, sizeof(*d));
        paywire__compliance__v1__case_decision__init(d);
        d->decision = index_of(decisions, 4, svc_text(row, "decision"));
        d->reason_codes = split(r, svc_text(row, "reason_codes"), &d->n_reason_codes);
        d->note = svc_text(row, "note");
        d->reviewer = svc_text(row, "reviewer");
        d->time = svc_time(row, "time");
        d->stage = index_of(stages, 3, svc_text(row, "stage"));
        c->decisions[c->n_decisions++] = d;
    }
}

static void attach_documents(svc_req *r, const pw_db_result *res, P(VerificationCase) * *cs,
                             size_t n)
{
    int rows = pw_db_rows(res);
    for (size_t i = 0; i < n; i++) {
        cs[i]->documents = svc_alloc(r, sizeof(*cs[i]->documents) * (size_t)(rows + 1));
    }
    for (int i = 0; i < rows; i++) {
        svc_row row = svc_row_at(r, res, i);
        P(VerificationCase) *c = find(cs, n, svc_text(row, "case_id"));
        P(DocumentRef) *d = svc_alloc(r, sizeof(*d));
        paywire__compliance__v1__document_ref__init(d);
        d->kind = svc_text(row, "kind");
        d->document_id = svc_text(row, "document_id");
        d->sha256 = svc_text(row, "sha256");
        c->documents[c->n_documents++] = d;
    }
}

/* The cases of the comma-separated ids (in creation order), in call memory. */
static P(VerificationCase) * *load_cases(svc_req *r, int in_tx, const char *ids, size_t *n)
{
    pw_db_param p = pw_db_text(ids);
    const pw_db_result *res = run(r, in_tx, &case_rows, &p, 1);
    int rows = pw_db_rows(res);
    P(VerificationCase) **cs = svc_alloc(r, sizeof(*cs) * (size_t)(rows + 1));
    for (int i = 0; i < rows; i++) {
        cs[i] = case_from_row(svc_row_at(r, res, i));
    }
    *n = (size_t)rows;
    attach_decisions(r, run(r, in_tx, &decision_rows, &p, 1), cs, *n);
    attach_documents(r, run(r, in_tx, &document_rows, &p, 1), cs, *n);
    return cs;
}

static P(VerificationCase) * load_case(svc_req *r, int in_tx, const char *id)
{
    size_t n;
    P(VerificationCase) **cs = load_cases(r, in_tx, id, &n);
    if (n != 1) {
        svc_fail(r, PW_NOT_FOUND, "case %s not found", id);
    }
    return cs[0];
}

/* ---- CreateCase ---- */

static char *new_id(svc_req *r, const char *prefix)
{
    char id[40];
    if (svc_new_id(prefix, id, sizeof(id)) != PW_OK) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create an id");
    }
    return svc_strdup(r, id);
}

/* The party packed and sealed, in call memory. */
static pw_db_param sealed_party(svc_req *r, const P(Party) * party)
{
    size_t len = protobuf_c_message_get_packed_size(&party->base);
    uint8_t *packed = svc_alloc(r, len + 1);
    protobuf_c_message_pack(&party->base, packed);
    uint8_t *sealed = svc_alloc(r, len + 28);
    if (svc_seal_bytes(r->app->sealer, packed, len, sealed, len + 28) != PW_OK) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot seal the party");
    }
    memset(packed, 0, len);
    return pw_db_bytea(sealed, len + 28);
}

typedef struct new_case {
    const char *id;
    const char *kind;
    const char *subject;
    const char *merchant;
    const char *parent;
    const char *role;
    int32_t basis_points;
    const P(Party) * party;
} new_case;

/* Screens the case's party and stores the case linked to its screening; returns the screening. */
static char *store_case(svc_req *r, const new_case *c)
{
    P(ScreenPartyResponse) screened;
    screening_run(r, c->party, c->subject, &screened);
    pw_db_param p[] = {pw_db_text(c->id),           pw_db_text(c->kind),
                       pw_db_text(c->subject),      pw_db_text(c->merchant),
                       pw_db_text(c->parent),       pw_db_text(c->role),
                       pw_db_int4(c->basis_points), sealed_party(r, c->party)};
    svc_tx_pipe(r, &insert_case, p, 8);
    pw_db_param l[] = {pw_db_text(c->id), pw_db_text(screened.screening_id)};
    svc_tx_pipe(r, &insert_link, l, 2);
    return screened.screening_id;
}

static void create_tx(svc_req *r, const void *arg)
{
    const P(CreateCaseRequest) *req = arg;
    int kyb = req->kind == KIND(KYB);
    const char *merchant = kyb && !req->merchant_id[0] ? req->subject_id : req->merchant_id;
    if (kyb) {
        pw_db_param m = pw_db_text(merchant);
        const pw_db_result *open = svc_tx_query(r, &open_kyb, &m, 1);
        if (pw_db_rows(open) > 0) {
            svc_abort(r, PW_ALREADY_EXISTS, "CASE_EXISTS", "merchant %s already has KYB case %s",
                      merchant, svc_text(svc_row_at(r, open, 0), "id"));
        }
    }
    new_case top = {new_id(r, "case"),
                    kinds[req->kind],
                    kyb ? req->subject_id : new_id(r, "per"),
                    merchant,
                    "",
                    "",
                    0,
                    req->party};
    store_case(r, &top);
    for (size_t i = 0; i < req->n_documents; i++) {
        const P(DocumentRef) *d = req->documents[i];
        pw_db_param p[] = {pw_db_text(top.id), pw_db_int4((int32_t)i + 1), pw_db_text(d->kind),
                           pw_db_text(d->document_id), pw_db_text(d->sha256)};
        svc_tx_pipe(r, &insert_document, p, 5);
    }
    for (size_t i = 0; i < req->n_beneficial_owners; i++) {
        const P(BeneficialOwner) *o = req->beneficial_owners[i];
        new_case kyc = {new_id(r, "case"),
                        "KYC",
                        new_id(r, "per"),
                        merchant,
                        top.id,
                        o->role,
                        (int32_t)o->ownership_basis_points,
                        o->person};
        store_case(r, &kyc);
    }
    char owners[16];
    snprintf(owners, sizeof(owners), "%zu", req->n_beneficial_owners);
    const char *kv[] = {"kind",     top.kind, "subject", top.subject,
                        "merchant", merchant, "owners",  owners};
    char key[80];
    snprintf(key, sizeof(key), "case/%s/opened", top.id);
    audit_entry e = {r->caller.identity, "case.opened", top.id, "compliance",
                     audit_detail(r, kv, 4)};
    audit_record(r, key, &e);
    P(CreateCaseResponse) resp = PAYWIRE__COMPLIANCE__V1__CREATE_CASE_RESPONSE__INIT;
    resp.case_ = load_case(r, 1, top.id);
    svc_commit(r, &resp.base, NULL);
}

char *cases_open_investigation(svc_req *r, const char *merchant, const char *subject)
{
    P(Party) none = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    char *id = new_id(r, "case");
    pw_db_param p[] = {pw_db_text(id),      pw_db_text("INVESTIGATION"),
                       pw_db_text(subject), pw_db_text(merchant),
                       pw_db_text(""),      pw_db_text(""),
                       pw_db_int4(0),       sealed_party(r, &none)};
    svc_tx_pipe(r, &insert_case, p, 8);
    return id;
}

static int sha256_hex_ok(const char *s)
{
    if (strlen(s) != 64) {
        return 0;
    }
    for (const char *p = s; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* Violations of one party to verify, under field ("party", "beneficial_owners[0].person"). */
static void check_party(svc_req *r, const char *field, const P(Party) * p, int person)
{
    char f[96];
    if (p == NULL || p->n_names == 0) {
        snprintf(f, sizeof(f), "%s.names", field);
        svc_violation(r, svc_strdup(r, f), "required: the legal name first, then other names");
        return;
    }
    for (size_t i = 0; i < p->n_names; i++) {
        if (!svc_text_ok(p->names[i], 512) || p->n_names > 20) {
            snprintf(f, sizeof(f), "%s.names", field);
            svc_violation(r, svc_strdup(r, f), "1 to 20 names of 1 to 512 characters");
            break;
        }
    }
    for (size_t i = 0; i < p->n_countries; i++) {
        if (!svc_country_ok(p->countries[i])) {
            snprintf(f, sizeof(f), "%s.countries", field);
            svc_violation(r, svc_strdup(r, f), "ISO 3166-1 alpha-2 codes");
            break;
        }
    }
    int y, m, d;
    char extra;
    if (p->date_of_birth[0] &&
        (strlen(p->date_of_birth) != 10 ||
         sscanf(p->date_of_birth, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || m < 1 || m > 12 ||
         d < 1 || d > 31)) {
        snprintf(f, sizeof(f), "%s.date_of_birth", field);
        svc_violation(r, svc_strdup(r, f), "YYYY-MM-DD");
    }
    int want = person ? PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_PERSON
                      : PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_ORGANIZATION;
    if (p->kind != 0 && (int)p->kind != want) {
        snprintf(f, sizeof(f), "%s.kind", field);
        svc_violation(r, svc_strdup(r, f),
                      person ? "PARTY_KIND_PERSON (or unset)"
                             : "PARTY_KIND_ORGANIZATION (or unset)");
    }
}

static void check_create(svc_req *r, const P(CreateCaseRequest) * req)
{
    int kyb = req->kind == KIND(KYB);
    if (!kyb && req->kind != KIND(KYC)) {
        svc_violation(r, "kind",
                      "CASE_KIND_KYB or CASE_KIND_KYC (investigations are opened by monitoring)");
    }
    if (kyb && !svc_id_ok(req->subject_id, "mer")) {
        svc_violation(r, "subject_id", "KYB: the merchant id (\"mer_\" and 26 characters)");
    }
    if (req->kind == KIND(KYC) && req->subject_id[0]) {
        svc_violation(r, "subject_id", "KYC: empty (compliance assigns the person's \"per_\" id)");
    }
    if (req->merchant_id[0] && (!svc_id_ok(req->merchant_id, "mer") ||
                                (kyb && strcmp(req->merchant_id, req->subject_id) != 0))) {
        svc_violation(r, "merchant_id", "empty, or the merchant id (for KYB, the subject_id)");
    }
    check_party(r, "party", req->party, !kyb);
    if (req->n_beneficial_owners > 0 && !kyb) {
        svc_violation(r, "beneficial_owners", "KYB only");
    }
    if (req->n_beneficial_owners > MAX_OWNERS) {
        svc_violation(r, "beneficial_owners", "at most 20");
    }
    for (size_t i = 0; i < req->n_beneficial_owners && i < MAX_OWNERS; i++) {
        const P(BeneficialOwner) *o = req->beneficial_owners[i];
        char f[64];
        snprintf(f, sizeof(f), "beneficial_owners[%zu].person", i);
        check_party(r, svc_strdup(r, f), o->person, 1);
        if (strcmp(o->role, "owner") != 0 && strcmp(o->role, "director") != 0 &&
            strcmp(o->role, "controller") != 0) {
            snprintf(f, sizeof(f), "beneficial_owners[%zu].role", i);
            svc_violation(r, svc_strdup(r, f), "\"owner\", \"director\" or \"controller\"");
        }
        if (o->ownership_basis_points > 10000) {
            snprintf(f, sizeof(f), "beneficial_owners[%zu].ownership_basis_points", i);
            svc_violation(r, svc_strdup(r, f), "0 to 10000 (2500 = 25%)");
        }
    }
    for (size_t i = 0; i < req->n_documents && i <= MAX_DOCS; i++) {
        const P(DocumentRef) *d = req->documents[i];
        char f[64];
        snprintf(f, sizeof(f), "documents[%zu]", i);
        if (i == MAX_DOCS || !svc_text_ok(d->kind, 64) || !svc_text_ok(d->document_id, 128) ||
            !sha256_hex_ok(d->sha256)) {
            svc_violation(r, svc_strdup(r, f),
                          "at most 20, each with kind, document_id and sha256 (64 lower-case hex)");
        }
    }
}

SVC_HANDLER(create_case, P(CreateCaseRequest))
{
    check_create(r, req);
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "CreateCase", req->idempotency_key,
                   &paywire__compliance__v1__create_case_response__descriptor, create_tx, req);
}

/* ---- GetCase, ListCases ---- */

SVC_HANDLER(get_case, P(GetCaseRequest))
{
    if (!svc_id_ok(req->case_id, "case")) {
        svc_violation(r, "case_id", "a case id: \"case_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    P(GetCaseResponse) resp = PAYWIRE__COMPLIANCE__V1__GET_CASE_RESPONSE__INIT;
    resp.case_ = load_case(r, 0, req->case_id);
    svc_reply(r, &resp.base);
}

SVC_HANDLER(list_cases, P(ListCasesRequest))
{
    char filters[128];
    snprintf(filters, sizeof(filters), "cases\n%d\n%s", (int)req->state, req->merchant_id);
    int64_t after = page_after(r, req->page_token, filters);
    int want = page_size(r, req->page_size);
    if (req->state < 0 || req->state > STATE(AWAITING_SECOND_REVIEW)) {
        svc_violation(r, "state", "a CaseState");
    }
    if (req->merchant_id[0] && !svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_int8(after), pw_db_text(req->state ? states[req->state] : ""),
                       pw_db_text(req->merchant_id), pw_db_int8(want + 1), pw_db_int4(want)};
    svc_row page = svc_row_at(r, svc_query(r, &list_page, p, 5), 0);
    char *ids = svc_text(page, "ids");
    int64_t n = svc_int64(page, "n");
    /* The cursor: the seq of the last case shown (one more was read to know there is a next). */
    int64_t cursor = svc_int64(page, "cursor");
    P(ListCasesResponse) resp = PAYWIRE__COMPLIANCE__V1__LIST_CASES_RESPONSE__INIT;
    resp.cases = load_cases(r, 0, ids, &resp.n_cases);
    if (n > want) {
        resp.n_cases = (size_t)want;
        resp.next_page_token = page_token(r, cursor, filters);
    }
    svc_reply(r, &resp.base);
}

/* ---- DecideCase ---- */

typedef struct decide_args {
    const P(DecideCaseRequest) * req;
    const char *reviewer;
} decide_args;

/*
 * An APPROVE of case c (locked) is possible: for KYB every linked KYC case is APPROVED; no
 * screening of it (or of its KYC cases) is an open or confirmed MATCH. Returns 1 when any of them
 * had a match (then the approval needs two reviewers). Aborts otherwise.
 */
static int check_approvable(svc_req *r, const char *id, int kyb)
{
    pw_db_param p = pw_db_text(id);
    if (kyb) {
        char *open = svc_text(svc_row_at(r, svc_tx_query(r, &unapproved_linked, &p, 1), 0), "ids");
        if (open[0]) {
            svc_abort(r, PW_FAILED_PRECONDITION, "KYC_INCOMPLETE",
                      "KYB case %s cannot be approved before its KYC cases are: %s are not "
                      "APPROVED",
                      id, open);
        }
    }
    svc_row s = svc_row_at(r, svc_tx_query(r, &case_screening_states, &p, 1), 0);
    if (svc_int64(s, "confirmed") > 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "SCREENING_UNRESOLVED",
                  "case %s has a CONFIRMED sanctions match: REJECT is the only decision", id);
    }
    if (svc_int64(s, "open_match") > 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "SCREENING_UNRESOLVED",
                  "case %s has a sanctions MATCH not yet reviewed: clear it with DecideScreening "
                  "(two reviewers) or REJECT",
                  id);
    }
    return svc_int64(s, "had_match") > 0;
}

static void decide_tx(svc_req *r, const void *arg)
{
    const decide_args *a = arg;
    const P(DecideCaseRequest) *req = a->req;
    pw_db_param id = pw_db_text(req->case_id);
    svc_row c = svc_one(r, svc_tx_query(r, &lock_case, &id, 1), "case", req->case_id);
    int state = index_of(states, 6, svc_text(c, "state"));
    int kyb = strcmp(svc_text(c, "kind"), "KYB") == 0;
    char *merchant = svc_text(c, "merchant_id");
    if (state == STATE(APPROVED) || state == STATE(REJECTED)) {
        svc_abort(r, PW_FAILED_PRECONDITION, "CASE_CLOSED", "case %s is %s: decided for good",
                  req->case_id, states[state]);
    }
    int had_match = req->decision == DECISION(APPROVE) ? check_approvable(r, req->case_id, kyb) : 0;
    int two =
        req->decision == DECISION(REJECT) || (req->decision == DECISION(APPROVE) && had_match);
    const pw_db_result *last = svc_tx_query(r, &last_decision, &id, 1);
    int position = pw_db_rows(last) ? (int)svc_int64(svc_row_at(r, last, 0), "position") + 1 : 1;
    const char *stage = "";
    int next;
    if (state == STATE(AWAITING_SECOND_REVIEW)) {
        svc_row first = svc_row_at(r, last, 0);
        char *by = svc_text(first, "reviewer");
        int pending = index_of(decisions, 4, svc_text(first, "decision"));
        if (strcmp(by, a->reviewer) == 0) {
            svc_abort(r, PW_FAILED_PRECONDITION, "SECOND_REVIEWER_REQUIRED",
                      "four-eyes rule: the %s of case %s by %s needs a second, different "
                      "reviewer",
                      decisions[pending], req->case_id, by);
        }
        stage = "SECOND";
        next = (int)req->decision != pending  ? STATE(OPEN)
               : pending == DECISION(APPROVE) ? STATE(APPROVED)
                                              : STATE(REJECTED);
    } else if (two) {
        stage = "FIRST";
        next = STATE(AWAITING_SECOND_REVIEW);
    } else {
        next = req->decision == DECISION(APPROVE) ? STATE(APPROVED) : STATE(NEEDS_INFORMATION);
    }
    char *codes = reason_codes_join(r, req->reason_codes, req->n_reason_codes);
    pw_db_param d[] = {id,
                       pw_db_int4(position),
                       pw_db_text(decisions[req->decision]),
                       pw_db_text(codes),
                       pw_db_text(req->note),
                       pw_db_text(a->reviewer),
                       pw_db_text(stage)};
    svc_tx_pipe(r, &insert_decision, d, 7);
    pw_db_param s[] = {id, pw_db_text(states[next])};
    svc_tx_pipe(r, &set_state, s, 2);
    if (next == STATE(APPROVED)) {
        svc_tx_pipe(r, &clear_potential, &id, 1);
    }
    const char *kv[] = {"decision", decisions[req->decision],
                        "stage",    stage,
                        "state",    states[next],
                        "reasons",  codes,
                        "reviewer", a->reviewer,
                        "merchant", merchant};
    char key[96];
    snprintf(key, sizeof(key), "case/%s/decision/%d", req->case_id, position);
    char actor[256];
    snprintf(actor, sizeof(actor), "reviewer:%s", a->reviewer);
    audit_entry e = {actor, "case.decided", req->case_id, "compliance", audit_detail(r, kv, 6)};
    audit_record(r, key, &e);
    P(DecideCaseResponse) resp = PAYWIRE__COMPLIANCE__V1__DECIDE_CASE_RESPONSE__INIT;
    resp.case_ = load_case(r, 1, req->case_id);
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(decide_case, P(DecideCaseRequest))
{
    if (!svc_id_ok(req->case_id, "case")) {
        svc_violation(r, "case_id", "a case id: \"case_\" and 26 characters");
    }
    if (req->decision < DECISION(APPROVE) || req->decision > DECISION(REQUEST_INFORMATION)) {
        svc_violation(r, "decision",
                      "DECISION_APPROVE, DECISION_REJECT or DECISION_REQUEST_INFORMATION");
    }
    reason_codes_check(r, "reason_codes", req->reason_codes, req->n_reason_codes,
                       CASE_REASON_CODES);
    if (req->note[0] && !svc_text_ok(req->note, 2000)) {
        svc_violation(r, "note", "up to 2000 characters of text");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    decide_args a = {req, reviewer_identify(r)};
    /* Keys are scoped by the verified reviewer: two reviewers' equal keys are two decisions. */
    char method[256];
    snprintf(method, sizeof(method), "DecideCase:%s", a.reviewer);
    svc_idempotent(r, svc_strdup(r, method), req->idempotency_key,
                   &paywire__compliance__v1__decide_case_response__descriptor, decide_tx, &a);
}

/* ---- reason codes (DecideScreening's too) ---- */

void reason_codes_check(svc_req *r, const char *field, char *const *codes, size_t n,
                        const char *list)
{
    char msg[400];
    snprintf(msg, sizeof(msg), "1 to %d codes from: %s", MAX_CODES, list);
    int bad = n == 0 || n > MAX_CODES;
    for (size_t i = 0; i < n && !bad; i++) {
        bad = !compliance_in_csv(list, codes[i]) || codes[i][0] == '\0';
    }
    if (bad) {
        svc_violation(r, field, svc_strdup(r, msg));
    }
}

char *reason_codes_join(svc_req *r, char *const *codes, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        len += strlen(codes[i]) + 1;
    }
    char *out = svc_alloc(r, len);
    for (size_t i = 0; i < n; i++) {
        strcat(out, i ? "," : "");
        strcat(out, codes[i]);
    }
    return out;
}

void cases_handlers_init(paywire_compliance_v1_verification_service_handlers *h)
{
    h->create_case = create_case_h;
    h->get_case = get_case_h;
    h->list_cases = list_cases_h;
    h->decide_case = decide_case_h;
}
