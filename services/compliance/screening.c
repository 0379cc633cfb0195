/*
 * screening.c: ScreeningService.ScreenParty and GetScreening
 * (docs/design/compliance.md, Sanctions screening). The list check fails
 * closed: each call reads the active list versions in the transaction that
 * stores the screening (ScreenTransaction too), loads a version into memory (index.c) the first
 * time it sees it, and screens against exactly those versions; with no active list there is no
 * answer (UNAVAILABLE). The indexes are shared by every worker: a version is built once per process
 * and replaced when another one becomes active.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <paywire/alloc.h>
#include "compliance.h"
#include "index.h"
#include "jcs.h"

#define P(x)       Paywire__Compliance__V1__##x
#define OUTCOME(x) PAYWIRE__COMPLIANCE__V1__SCREENING_OUTCOME__SCREENING_OUTCOME_##x
#define MAX_LISTS  8
#define MAX_HITS   16
#define MAX_NAMES  20

/* ---- the process-wide cache of list indexes ---- */

typedef struct snapshot {
    char list[72];
    char version[72];
    sx_index *idx;
    atomic_int refs;
} snapshot;

struct compliance_lists {
    uv_mutex_t mu;
    snapshot *snaps[MAX_LISTS];
};

static void snapshot_unref(snapshot *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        sx_index_free(s->idx);
        pw_free(s);
    }
}

/* The snapshot of (list, version) with a reference, or NULL when it is not loaded. */
static snapshot *cache_get(compliance_lists *c, const char *list, const char *version)
{
    snapshot *found = NULL;
    uv_mutex_lock(&c->mu);
    for (int i = 0; i < MAX_LISTS; i++) {
        snapshot *s = c->snaps[i];
        if (s != NULL && strcmp(s->list, list) == 0 && strcmp(s->version, version) == 0) {
            atomic_fetch_add(&s->refs, 1);
            found = s;
            break;
        }
    }
    uv_mutex_unlock(&c->mu);
    return found;
}

/* Installs s (its reference passes to the cache), replacing the list's other version. */
static pw_status cache_put(compliance_lists *c, snapshot *s)
{
    snapshot *old = NULL;
    int placed = 0;
    uv_mutex_lock(&c->mu);
    for (int i = 0; i < MAX_LISTS && !placed; i++) {
        if (c->snaps[i] != NULL && strcmp(c->snaps[i]->list, s->list) == 0) {
            old = c->snaps[i];
            c->snaps[i] = s;
            placed = 1;
        }
    }
    for (int i = 0; i < MAX_LISTS && !placed; i++) {
        if (c->snaps[i] == NULL) {
            c->snaps[i] = s;
            placed = 1;
        }
    }
    uv_mutex_unlock(&c->mu);
    snapshot_unref(old);
    if (!placed) {
        snapshot_unref(s);
        return PW_RESOURCE_EXHAUSTED;
    }
    return PW_OK;
}

pw_status compliance_lists_new(compliance_lists **out)
{
    compliance_lists *c = pw_calloc(1, sizeof(*c));
    if (c == NULL || uv_mutex_init(&c->mu) != 0) {
        pw_free(c);
        return PW_ERRNO(ENOMEM);
    }
    *out = c;
    return PW_OK;
}

void compliance_lists_free(compliance_lists *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < MAX_LISTS; i++) {
        snapshot_unref(c->snaps[i]);
    }
    uv_mutex_destroy(&c->mu);
    pw_free(c);
}

/* ---- ScreenParty ---- */

static const pw_db_stmt active_lists = {
    "screen_active",
    "SELECT list, version FROM sanctions_lists WHERE active ORDER BY list",
    0,
    {0}};
static const pw_db_stmt list_body = {
    "screen_body",
    "SELECT body FROM sanctions_lists WHERE list = $1 AND version = $2",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt insert_screening = {
    "screen_insert",
    "INSERT INTO screenings (id, subject_id, outcome, party, response, list_versions,"
    " review_state, payment_id, stage, verdict) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    10,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA, PW_DB_BYTEA, PW_DB_TEXT, PW_DB_TEXT,
     PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt select_screening = {
    "screen_get",
    "SELECT id, subject_id, outcome, response, list_versions, review_state, create_time,"
    " payment_id, stage, verdict FROM screenings WHERE id = $1",
    1,
    {PW_DB_TEXT}};

static const char *outcome_name(int o)
{
    return o == OUTCOME(MATCH)             ? "MATCH"
           : o == OUTCOME(POTENTIAL_MATCH) ? "POTENTIAL_MATCH"
                                           : "CLEAR";
}

static int outcome_from(const char *s)
{
    return strcmp(s, "MATCH") == 0             ? OUTCOME(MATCH)
           : strcmp(s, "POTENTIAL_MATCH") == 0 ? OUTCOME(POTENTIAL_MATCH)
                                               : OUTCOME(CLEAR);
}

/* Loads (list, version) into the cache: its stored bytes, unpacked and indexed. */
static void load_version(svc_req *r, compliance_lists *c, const char *list, const char *version)
{
    pw_db_param p[] = {pw_db_text(list), pw_db_text(version)};
    svc_row row = svc_one(r, svc_tx_query(r, &list_body, p, 2), "sanctions list", version);
    pw_slice body = svc_bytes(row, "body");
    ProtobufCMessage *m = protobuf_c_message_unpack(
        &paywire__compliance__v1__upload_sanctions_list_request__descriptor,
        pw_protobuf_allocator(), body.len, body.base);
    if (m == NULL) {
        svc_abort(r, PW_DATA_LOSS, NULL, "%s version %s cannot be read", list, version);
    }
    snapshot *s = pw_calloc(1, sizeof(*s));
    sx_index *idx = NULL;
    if (s == NULL || sx_index_new(&idx, (P(UploadSanctionsListRequest) *)m) != PW_OK) {
        pw_free(s);
        svc_abort(r, PW_RESOURCE_EXHAUSTED, NULL, "cannot index %s %s", list, version);
    }
    snprintf(s->list, sizeof(s->list), "%s", list);
    snprintf(s->version, sizeof(s->version), "%s", version);
    s->idx = idx;
    atomic_init(&s->refs, 1);
    if (cache_put(c, s) != PW_OK) {
        svc_abort(r, PW_RESOURCE_EXHAUSTED, NULL, "too many sanctions lists are active");
    }
    PW_LOG(PW_LOG_NOTICE, "compliance", "sanctions list %s %s in memory: %zu names", list, version,
           sx_index_name_count(idx));
}

static P(ScreeningMatch) * match_of(svc_req *r, const char *list, const char *version,
                                    const char *entry, const char *value, const char *field,
                                    unsigned score)
{
    P(ScreeningMatch) *m = svc_alloc(r, sizeof(*m));
    paywire__compliance__v1__screening_match__init(m);
    m->list = svc_strdup(r, list);
    m->list_version = svc_strdup(r, version);
    m->entry_id = svc_strdup(r, entry);
    m->matched_value = svc_strdup(r, value);
    m->field = svc_strdup(r, field);
    m->score = score;
    return m;
}

int compliance_in_csv(const char *csv, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = csv; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, item, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/*
 * In the transaction: screens party against every active list version (loading what is not in
 * memory yet) and the comprehensive-sanctions countries. Fills resp's matches and outcome, and
 * used with the versions consulted. Fails closed: no active list, no answer.
 */
static void screen_core(svc_req *r, const P(Party) * party, P(ScreenPartyResponse) * resp,
                        char *used, size_t used_cap)
{
    compliance_state *st = r->app->service;
    const pw_db_result *act = svc_tx_query(r, &active_lists, NULL, 0);
    int nl = pw_db_rows(act);
    if (nl == 0) {
        svc_abort(r, PW_UNAVAILABLE, "NO_ACTIVE_LIST",
                  "no sanctions list is active: nothing can be screened (load one with "
                  "pwsanctions)");
    }
    nl = nl > MAX_LISTS ? MAX_LISTS : nl;
    char *lists[MAX_LISTS], *versions[MAX_LISTS];
    for (int i = 0; i < nl; i++) {
        lists[i] = svc_text(svc_row_at(r, act, i), "list");
        versions[i] = svc_text(svc_row_at(r, act, i), "version");
    }
    /* Load what is not in memory yet (waits), then screen with no wait in between. */
    for (int i = 0; i < nl; i++) {
        snapshot *s = cache_get(st->lists, lists[i], versions[i]);
        if (s == NULL) {
            load_version(r, st->lists, lists[i], versions[i]);
        }
        snapshot_unref(s);
    }
    resp->matches = svc_alloc(r, sizeof(*resp->matches) * (MAX_HITS * MAX_LISTS + 8));
    int outcome = OUTCOME(CLEAR);
    used[0] = '\0';
    for (int i = 0; i < nl; i++) {
        snapshot *s = cache_get(st->lists, lists[i], versions[i]);
        if (s == NULL) {
            svc_abort(r, PW_ABORTED, NULL, "a sanctions list changed during the screening; retry");
        }
        sx_hit hits[MAX_HITS];
        int o;
        int n = sx_index_screen(s->idx, party, &st->thresholds, 0, hits, MAX_HITS, &o);
        for (int k = 0; k < n; k++) {
            const P(SanctionsEntry) *e = sx_index_list(s->idx)->entries[hits[k].entry];
            resp->matches[resp->n_matches++] =
                match_of(r, lists[i], versions[i], e->entry_id, hits[k].matched, hits[k].field,
                         hits[k].score);
        }
        outcome = o > outcome ? o : outcome;
        snapshot_unref(s);
        size_t u = strlen(used);
        snprintf(used + u, used_cap - u, "%s%s@%s", u ? "," : "", lists[i], versions[i]);
    }
    /* Countries under comprehensive sanctions: a MATCH whatever the names. */
    for (size_t i = 0; i < party->n_countries && resp->n_matches < MAX_HITS * MAX_LISTS; i++) {
        if (compliance_in_csv(st->comprehensive, party->countries[i])) {
            resp->matches[resp->n_matches++] =
                match_of(r, "comprehensive-sanctions", "config", party->countries[i],
                         party->countries[i], "country", 1000);
            outcome = OUTCOME(MATCH);
        }
    }
    resp->outcome = outcome;
}

/* The screening row (pipelined): what was screened, the answer, the versions used. */
static void store_screening(svc_req *r, const char *id, const char *subject, const P(Party) * party,
                            const P(ScreenPartyResponse) * resp, const char *used,
                            const char *payment, const char *stage, const char *verdict)
{
    size_t plen = protobuf_c_message_get_packed_size(&party->base);
    uint8_t *packed_party = svc_alloc(r, plen);
    protobuf_c_message_pack(&party->base, packed_party);
    size_t rlen = protobuf_c_message_get_packed_size(&resp->base);
    uint8_t *packed = svc_alloc(r, rlen);
    protobuf_c_message_pack(&resp->base, packed);
    int review = resp->outcome != OUTCOME(CLEAR);
    pw_db_param p[] = {pw_db_text(id),
                       pw_db_text(subject),
                       pw_db_text(outcome_name(resp->outcome)),
                       pw_db_bytea(packed_party, plen),
                       pw_db_bytea(packed, rlen),
                       pw_db_text(used),
                       pw_db_text(review ? "OPEN" : "NOT_REQUIRED"),
                       pw_db_text(payment),
                       pw_db_text(stage),
                       pw_db_text(verdict)};
    svc_tx_pipe(r, &insert_screening, p, 10);
}

static char *new_screening_id(svc_req *r)
{
    char id[40];
    if (svc_new_id("scr", id, sizeof(id)) != PW_OK) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create an id");
    }
    return svc_strdup(r, id);
}

void screening_run(svc_req *r, const P(Party) * party, const char *subject,
                   P(ScreenPartyResponse) * resp)
{
    paywire__compliance__v1__screen_party_response__init(resp);
    char used[MAX_LISTS * 150];
    screen_core(r, party, resp, used, sizeof(used));
    resp->screening_id = new_screening_id(r);
    store_screening(r, resp->screening_id, subject, party, resp, used, "", "", "");
}

static void screen_tx(svc_req *r, const void *arg)
{
    const P(ScreenPartyRequest) *req = arg;
    P(ScreenPartyResponse) resp;
    screening_run(r, req->party, req->subject_id, &resp);
    svc_commit(r, &resp.base, NULL);
}

/* ---- ScreenTransaction ---- */

#define VERDICT(x) PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_##x
#define STAGE(x)   PAYWIRE__COMPLIANCE__V1__SCREENING_STAGE__SCREENING_STAGE_##x

static void transaction_tx(svc_req *r, const void *arg)
{
    const P(ScreenTransactionRequest) *req = arg;
    /* The payer as known, with the deposit's source wallet and the issuer's country. */
    P(Party) *party = svc_alloc(r, sizeof(*party));
    paywire__compliance__v1__party__init(party);
    if (req->payer != NULL) {
        *party = *req->payer;
    }
    party->wallets = svc_alloc(r, sizeof(*party->wallets) * (party->n_wallets + 1));
    if (req->payer != NULL && req->payer->n_wallets > 0) {
        memcpy(party->wallets, req->payer->wallets, sizeof(*party->wallets) * party->n_wallets);
    }
    if (req->source_wallet != NULL && req->source_wallet->address[0]) {
        party->wallets[party->n_wallets++] = req->source_wallet;
    }
    party->countries = svc_alloc(r, sizeof(char *) * (party->n_countries + 1));
    if (req->payer != NULL && req->payer->n_countries > 0) {
        memcpy(party->countries, req->payer->countries, sizeof(char *) * party->n_countries);
    }
    if (req->payer_country[0]) {
        party->countries[party->n_countries++] = req->payer_country;
    }
    P(ScreenPartyResponse) found = PAYWIRE__COMPLIANCE__V1__SCREEN_PARTY_RESPONSE__INIT;
    char used[MAX_LISTS * 150];
    screen_core(r, party, &found, used, sizeof(used));
    P(ScreenTransactionResponse) resp = PAYWIRE__COMPLIANCE__V1__SCREEN_TRANSACTION_RESPONSE__INIT;
    resp.matches = found.matches;
    resp.n_matches = found.n_matches;
    resp.reasons = svc_alloc(r, sizeof(char *) * (4 + MONITORING_MAX_RULES));
    int wallet = 0, country = 0, name = 0;
    for (size_t i = 0; i < found.n_matches; i++) {
        const char *f = found.matches[i]->field;
        wallet |= strcmp(f, "wallet") == 0;
        country |= strcmp(f, "country") == 0;
        name |= strcmp(f, "name") == 0;
    }
    if (wallet) {
        resp.reasons[resp.n_reasons++] = "wallet_on_sanctions_list";
    }
    if (country) {
        resp.reasons[resp.n_reasons++] = "sanctioned_country";
    }
    if (name) {
        resp.reasons[resp.n_reasons++] =
            found.outcome == OUTCOME(MATCH) ? "name_on_sanctions_list" : "possible_name_match";
    }
    resp.verdict = found.outcome == OUTCOME(MATCH)             ? VERDICT(BLOCK)
                   : found.outcome == OUTCOME(POTENTIAL_MATCH) ? VERDICT(REVIEW)
                                                               : VERDICT(ALLOW);
    found.screening_id = resp.screening_id = new_screening_id(r);
    /* The monitoring rules that decide at once (thresholds, countries): alerts, maybe a hold. */
    monitoring_screen(r, req, resp.screening_id, &resp);
    static const char *const verdicts[] = {"", "ALLOW", "REVIEW", "BLOCK"};
    store_screening(r, resp.screening_id, req->merchant_id, party, &found, used, req->payment_id,
                    req->stage == STAGE(FUNDS_RECEIVED) ? "FUNDS_RECEIVED" : "CONFIRM",
                    verdicts[resp.verdict]);
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(screen_transaction, P(ScreenTransactionRequest))
{
    if (!svc_text_ok(req->payment_id, 64)) {
        svc_violation(r, "payment_id", "required: the payment screened");
    }
    if (req->stage != STAGE(CONFIRM) && req->stage != STAGE(FUNDS_RECEIVED)) {
        svc_violation(r, "stage", "SCREENING_STAGE_CONFIRM or SCREENING_STAGE_FUNDS_RECEIVED");
    }
    if (req->stage == STAGE(FUNDS_RECEIVED) &&
        (req->source_wallet == NULL || !svc_text_ok(req->source_wallet->address, 128))) {
        svc_violation(r, "source_wallet", "required at FUNDS_RECEIVED: the deposit's wallet");
    }
    if (req->payer_country[0] && !svc_country_ok(req->payer_country)) {
        svc_violation(r, "payer_country", "an ISO 3166-1 alpha-2 code");
    }
    if (req->payer != NULL) {
        for (size_t i = 0; i < req->payer->n_names; i++) {
            if (!svc_text_ok(req->payer->names[i], 512)) {
                svc_violation(r, "payer.names", "1 to 512 characters each");
            }
        }
        if (req->payer->n_names > MAX_NAMES) {
            svc_violation(r, "payer.names", "at most 20 names");
        }
        for (size_t i = 0; i < req->payer->n_countries; i++) {
            if (!svc_country_ok(req->payer->countries[i])) {
                svc_violation(r, "payer.countries", "ISO 3166-1 alpha-2 codes");
            }
        }
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "ScreenTransaction", req->idempotency_key,
                   &paywire__compliance__v1__screen_transaction_response__descriptor,
                   transaction_tx, req);
}

static int dob_ok(const char *s)
{
    if (s[0] == '\0') {
        return 1;
    }
    int y, m, d;
    char extra;
    return strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) == 3 && y > 1800 &&
           m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

SVC_HANDLER(screen_party, P(ScreenPartyRequest))
{
    const P(Party) *p = req->party;
    if (p == NULL) {
        svc_violation(r, "party", "required");
        svc_check(r);
        return;
    }
    if (p->n_names > MAX_NAMES) {
        svc_violation(r, "party.names", "at most 20 names");
    }
    for (size_t i = 0; i < p->n_names; i++) {
        if (!svc_text_ok(p->names[i], 512)) {
            svc_violation(r, "party.names", "1 to 512 characters each");
        }
    }
    for (size_t i = 0; i < p->n_countries; i++) {
        if (!svc_country_ok(p->countries[i])) {
            svc_violation(r, "party.countries", "ISO 3166-1 alpha-2 codes");
        }
    }
    for (size_t i = 0; i < p->n_wallets; i++) {
        if (!svc_text_ok(p->wallets[i]->address, 128)) {
            svc_violation(r, "party.wallets", "an address of 1 to 128 characters");
        }
    }
    for (size_t i = 0; i < p->n_digital_currency_addresses; i++) {
        if (!svc_text_ok(p->digital_currency_addresses[i]->address, 128)) {
            svc_violation(r, "party.digital_currency_addresses",
                          "an address of 1 to 128 characters");
        }
    }
    if (!dob_ok(p->date_of_birth)) {
        svc_violation(r, "party.date_of_birth", "YYYY-MM-DD");
    }
    if (p->n_names + p->n_wallets + p->n_digital_currency_addresses + p->n_countries == 0) {
        svc_violation(r, "party", "a name, a wallet, an address or a country to screen");
    }
    if (req->subject_id[0] && !svc_text_ok(req->subject_id, 64)) {
        svc_violation(r, "subject_id", "up to 64 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "ScreenParty", req->idempotency_key,
                   &paywire__compliance__v1__screen_party_response__descriptor, screen_tx, req);
}

static const pw_db_stmt screening_decision_rows = {
    "screen_decision_rows",
    "SELECT reviewer, decision, stage, reason_codes, time FROM screening_decisions"
    " WHERE screening_id = $1 ORDER BY position",
    1,
    {PW_DB_TEXT}};

P(Screening) * screening_load(svc_req *r, int in_tx, const char *id)
{
    pw_db_param p = pw_db_text(id);
    const pw_db_result *res =
        in_tx ? svc_tx_query(r, &select_screening, &p, 1) : svc_query(r, &select_screening, &p, 1);
    svc_row row = svc_one(r, res, "screening", id);
    P(Screening) *s = svc_alloc(r, sizeof(*s));
    paywire__compliance__v1__screening__init(s);
    s->id = svc_text(row, "id");
    s->subject_id = svc_text(row, "subject_id");
    s->outcome = outcome_from(svc_text(row, "outcome"));
    s->create_time = svc_time(row, "create_time");
    s->payment_id = svc_text(row, "payment_id");
    const char *stage = svc_text(row, "stage"), *verdict = svc_text(row, "verdict");
    s->stage = strcmp(stage, "CONFIRM") == 0          ? STAGE(CONFIRM)
               : strcmp(stage, "FUNDS_RECEIVED") == 0 ? STAGE(FUNDS_RECEIVED)
                                                      : 0;
    s->verdict = strcmp(verdict, "ALLOW") == 0    ? VERDICT(ALLOW)
                 : strcmp(verdict, "REVIEW") == 0 ? VERDICT(REVIEW)
                 : strcmp(verdict, "BLOCK") == 0  ? VERDICT(BLOCK)
                                                  : 0;
    s->review_state = screening_review_state(svc_text(row, "review_state"));
    pw_slice packed = svc_bytes(row, "response");
    uint8_t *copy = svc_alloc(r, packed.len);
    memcpy(copy, packed.base, packed.len);
    char *used = svc_text(row, "list_versions");
    ProtobufCMessage *m = NULL;
    if (pw_call_unpack(r->call, pw_slice_make(copy, packed.len),
                       &paywire__compliance__v1__screen_party_response__descriptor, &m) != PW_OK) {
        svc_fail(r, PW_DATA_LOSS, "screening %s cannot be read", id);
    }
    P(ScreenPartyResponse) *resp = (P(ScreenPartyResponse) *)m;
    s->matches = resp->matches;
    s->n_matches = resp->n_matches;
    size_t n = 0;
    s->list_versions = svc_alloc(r, sizeof(char *) * (strlen(used) / 2 + 2));
    for (char *save = NULL, *t = strtok_r(used, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        s->list_versions[n++] = t;
    }
    s->n_list_versions = n;
    /* The reviewers' decisions as audited: "<reviewer> <decision> <time>". */
    const pw_db_result *d = in_tx ? svc_tx_query(r, &screening_decision_rows, &p, 1)
                                  : svc_query(r, &screening_decision_rows, &p, 1);
    s->decisions = svc_alloc(r, sizeof(char *) * (size_t)(pw_db_rows(d) + 1));
    for (int i = 0; i < pw_db_rows(d); i++) {
        svc_row dr = svc_row_at(r, d, i);
        int64_t us = 0;
        pw_db_get_timestamptz(d, i, pw_db_column(d, "time"), &us);
        char when[32], line[512];
        jcs_rfc3339(us, when);
        snprintf(line, sizeof(line), "%s %s %s", svc_text(dr, "reviewer"), svc_text(dr, "decision"),
                 when);
        s->decisions[s->n_decisions++] = svc_strdup(r, line);
    }
    return s;
}

int screening_review_state(const char *name)
{
    static const char *const states[] = {
        "", "NOT_REQUIRED", "OPEN", "AWAITING_SECOND_REVIEW", "CLEARED", "CONFIRMED"};
    for (int i = 1; i < 6; i++) {
        if (strcmp(name, states[i]) == 0) {
            return i;
        }
    }
    return 0;
}

SVC_HANDLER(get_screening, P(GetScreeningRequest))
{
    if (!svc_id_ok(req->screening_id, "scr")) {
        svc_violation(r, "screening_id", "a screening id: \"scr_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    P(GetScreeningResponse) out = PAYWIRE__COMPLIANCE__V1__GET_SCREENING_RESPONSE__INIT;
    out.screening = screening_load(r, 0, req->screening_id);
    svc_reply(r, &out.base);
}

void screening_handlers_init(paywire_compliance_v1_screening_service_handlers *h)
{
    h->screen_party = screen_party_h;
    h->get_screening = get_screening_h;
    h->screen_transaction = screen_transaction_h;
}
