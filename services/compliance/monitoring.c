/*
 * monitoring.c: MonitoringService, transaction monitoring
 * (docs/design/compliance.md, Monitoring). A rule set is versioned: SetRules
 * stores a new version when expected_version is the one in force, and the
 * highest version is the one evaluated. Payments reach monitoring through
 * RecordPayments (the entry point of the event stream's consumer), each
 * counted once (payment_facts) and evaluated against every rule: velocity per
 * merchant or payer over a window (counted in PostgreSQL), a single-payment
 * threshold, a high-risk payer country. ScreenTransaction applies the
 * synchronous rules (threshold, country) through monitoring_screen. A hit is
 * an alert, one per (rule version, rule, triggering payment), so a payment
 * screened at confirm and recorded later raises it once. ResolveAlert
 * dismisses it or escalates it into an INVESTIGATION case.
 */
#include <stdio.h>
#include <string.h>
#include "compliance.h"

#define P(x)       Paywire__Compliance__V1__##x
#define ALERT(x)   PAYWIRE__COMPLIANCE__V1__ALERT_STATE__ALERT_STATE_##x
#define COND(x)    PAYWIRE__COMPLIANCE__V1__RULE__CONDITION_##x
#define MAX_RULES  MONITORING_MAX_RULES
#define MAX_FACTS  500
#define MAX_WINDOW (31LL * 86400)

static const char *const alert_states[] = {"", "OPEN", "DISMISSED", "ESCALATED"};

static const pw_db_stmt current_rules = {
    "mon_rules", "SELECT version, rules FROM rule_sets ORDER BY version DESC LIMIT 1", 0, {0}};
static const pw_db_stmt lock_rules = {
    "mon_lock_rules", "SELECT pg_advisory_xact_lock(hashtext('rule_sets'))", 0, {0}};
static const pw_db_stmt insert_rules = {"mon_insert_rules",
                                        "INSERT INTO rule_sets (version, rules) VALUES ($1, $2)",
                                        2,
                                        {PW_DB_INT8, PW_DB_BYTEA}};
static const pw_db_stmt insert_fact = {
    "mon_insert_fact",
    "INSERT INTO payment_facts (payment_id, merchant_id, payer_key, amount_minor, currency,"
    " payer_country, time) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (payment_id) DO NOTHING"
    " RETURNING payment_id",
    7,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TIMESTAMPTZ}};
/* The window ending at the payment, by merchant ($1 = 'merchant') or by payer. */
static const pw_db_stmt window_counts = {
    "mon_window",
    "SELECT count(*) AS n,"
    " COALESCE(sum(amount_minor) FILTER (WHERE currency = $5), 0)::bigint AS total,"
    " COALESCE(string_agg(payment_id, ',' ORDER BY time, payment_id), '') AS ids"
    " FROM (SELECT payment_id, amount_minor, currency, time FROM payment_facts"
    " WHERE CASE WHEN $1 = 'merchant' THEN merchant_id = $2 ELSE payer_key = $2 END"
    " AND time > $3 AND time <= $4 ORDER BY time DESC LIMIT 1000) w",
    5,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TIMESTAMPTZ, PW_DB_TIMESTAMPTZ, PW_DB_TEXT}};
static const pw_db_stmt insert_alert = {
    "mon_insert_alert",
    "WITH new AS (INSERT INTO alerts (id, rule_name, rule_version, merchant_id, payment_id,"
    " payment_ids, state, screening_id) VALUES ($1, $2, $3, $4, $5, $6, 'OPEN', $7)"
    " ON CONFLICT (rule_version, rule_name, payment_id) DO NOTHING RETURNING id)"
    " SELECT id FROM new UNION ALL SELECT id FROM alerts WHERE rule_version = $3"
    " AND rule_name = $2 AND payment_id = $5",
    7,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
#define ALERT_COLS                                                                         \
    "id, rule_name, rule_version, merchant_id, payment_ids, state, case_id, screening_id," \
    " create_time, seq"
static const pw_db_stmt lock_alert = {"mon_lock_alert",
                                      "SELECT " ALERT_COLS " FROM alerts WHERE id = $1 FOR UPDATE",
                                      1,
                                      {PW_DB_TEXT}};
static const pw_db_stmt close_alert = {
    "mon_resolve_alert",
    "UPDATE alerts SET state = $2, case_id = $3, note = $4 WHERE id = $1 RETURNING " ALERT_COLS,
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt alert_page = {"mon_alert_page",
                                      "SELECT " ALERT_COLS
                                      " FROM alerts WHERE seq > $1 AND ($2 = '' OR state = $2)"
                                      " AND ($3 = '' OR merchant_id = $3) ORDER BY seq LIMIT $4",
                                      4,
                                      {PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};

/* ---- the rule set ---- */

/* The rule set in force (version 0 and no rules when none was set), in call memory. */
static P(GetRulesResponse) * rules_in_force(svc_req *r, int in_tx)
{
    const pw_db_result *res =
        in_tx ? svc_tx_query(r, &current_rules, NULL, 0) : svc_query(r, &current_rules, NULL, 0);
    P(GetRulesResponse) *rs = svc_alloc(r, sizeof(*rs));
    paywire__compliance__v1__get_rules_response__init(rs);
    if (pw_db_rows(res) == 0) {
        return rs;
    }
    pw_slice b = svc_bytes(svc_row_at(r, res, 0), "rules");
    uint8_t *copy = svc_alloc(r, b.len + 1);
    memcpy(copy, b.base, b.len);
    ProtobufCMessage *m = NULL;
    if (pw_call_unpack(r->call, pw_slice_make(copy, b.len),
                       &paywire__compliance__v1__get_rules_response__descriptor, &m) != PW_OK) {
        svc_fail(r, PW_DATA_LOSS, "the monitoring rule set cannot be read");
    }
    return (P(GetRulesResponse) *)m;
}

static void set_rules_tx(svc_req *r, const void *arg)
{
    const P(SetRulesRequest) *req = arg;
    /* One writer of versions at a time: the check and the insert are serialised. */
    svc_tx_query(r, &lock_rules, NULL, 0);
    P(GetRulesResponse) *now = rules_in_force(r, 1);
    if (req->expected_version != now->version) {
        svc_abort(r, PW_ABORTED, "RULES_VERSION_MISMATCH",
                  "expected_version %lld is not the version in force (%lld): read it with "
                  "GetRules and retry",
                  (long long)req->expected_version, (long long)now->version);
    }
    P(GetRulesResponse) next = PAYWIRE__COMPLIANCE__V1__GET_RULES_RESPONSE__INIT;
    next.version = now->version + 1;
    next.rules = req->rules;
    next.n_rules = req->n_rules;
    size_t len = protobuf_c_message_get_packed_size(&next.base);
    uint8_t *packed = svc_alloc(r, len + 1);
    protobuf_c_message_pack(&next.base, packed);
    pw_db_param p[] = {pw_db_int8(next.version), pw_db_bytea(packed, len)};
    svc_tx_pipe(r, &insert_rules, p, 2);
    char v[24], n[24], key[64];
    snprintf(v, sizeof(v), "%lld", (long long)next.version);
    snprintf(n, sizeof(n), "%zu", req->n_rules);
    snprintf(key, sizeof(key), "rules/%lld", (long long)next.version);
    const char *kv[] = {"version", v, "rules", n};
    audit_entry e = {r->caller.identity, "monitoring_rules.set", key, "compliance",
                     audit_detail(r, kv, 2)};
    audit_record(r, key, &e);
    P(SetRulesResponse) resp = PAYWIRE__COMPLIANCE__V1__SET_RULES_RESPONSE__INIT;
    resp.version = next.version;
    svc_commit(r, &resp.base, NULL);
}

static int money_ok(const Paywire__Common__V1__Money *m)
{
    return m != NULL && m->amount_minor > 0 && svc_currency_ok(m->currency);
}

/* Violations of rule i, under "rules[i]". */
static void check_rule(svc_req *r, const P(SetRulesRequest) * req, size_t i)
{
    const P(Rule) *rule = req->rules[i];
    char f[64];
    snprintf(f, sizeof(f), "rules[%zu].name", i);
    int dup = 0;
    for (size_t k = 0; k < i; k++) {
        dup |= strcmp(req->rules[k]->name, rule->name) == 0;
    }
    if (!svc_text_ok(rule->name, 64) || dup) {
        svc_violation(r, svc_strdup(r, f), "1 to 64 characters, unique in the set");
    }
    snprintf(f, sizeof(f), "rules[%zu]", i);
    if (rule->condition_case == COND(VELOCITY)) {
        const P(VelocityRule) *v = rule->velocity;
        int per = strcmp(v->per, "merchant") == 0 || strcmp(v->per, "payer") == 0;
        int64_t w = v->window ? v->window->seconds : 0;
        if (!per || w < 1 || w > MAX_WINDOW || (v->max_count < 1 && !money_ok(v->max_amount))) {
            svc_violation(r, svc_strdup(r, f),
                          "velocity: per \"merchant\" or \"payer\", a window of 1 s to 31 days, "
                          "and max_count >= 1 or a positive max_amount");
        }
    } else if (rule->condition_case == COND(THRESHOLD)) {
        if (!money_ok(rule->threshold->amount)) {
            svc_violation(r, svc_strdup(r, f), "threshold: a positive amount with its currency");
        }
    } else if (rule->condition_case == COND(HIGH_RISK_COUNTRY)) {
        int ok = rule->high_risk_country->n_countries > 0;
        for (size_t k = 0; k < rule->high_risk_country->n_countries; k++) {
            ok &= svc_country_ok(rule->high_risk_country->countries[k]);
        }
        if (!ok) {
            svc_violation(r, svc_strdup(r, f),
                          "high_risk_country: one or more ISO 3166-1 alpha-2 codes");
        }
    } else {
        svc_violation(r, svc_strdup(r, f), "a condition: velocity, threshold or high_risk_country");
    }
}

SVC_HANDLER(set_rules, P(SetRulesRequest))
{
    if (req->n_rules > MAX_RULES) {
        svc_violation(r, "rules", "at most 50");
    }
    for (size_t i = 0; i < req->n_rules && i < MAX_RULES; i++) {
        check_rule(r, req, i);
    }
    if (req->expected_version < 0) {
        svc_violation(r, "expected_version", "the version in force (0 before the first set)");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "SetRules", req->idempotency_key,
                   &paywire__compliance__v1__set_rules_response__descriptor, set_rules_tx, req);
}

SVC_HANDLER(get_rules, P(GetRulesRequest))
{
    (void)req;
    svc_authenticate(r, NULL);
    svc_reply(r, &rules_in_force(r, 0)->base);
}

/* ---- evaluating payments ---- */

static char *new_id(svc_req *r, const char *prefix)
{
    char id[40];
    if (svc_new_id(prefix, id, sizeof(id)) != PW_OK) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create an id");
    }
    return svc_strdup(r, id);
}

/* In the transaction: the alert of (rule version, rule, payment), raised once; returns its id. */
static char *raise_alert(svc_req *r, const P(GetRulesResponse) * rs, const P(Rule) * rule,
                         const P(PaymentFact) * f, const char *payments, const char *screening)
{
    pw_db_param p[] = {pw_db_text(new_id(r, "alt")), pw_db_text(rule->name),
                       pw_db_int8(rs->version),      pw_db_text(f->merchant_id),
                       pw_db_text(f->payment_id),    pw_db_text(payments),
                       pw_db_text(screening)};
    return svc_text(svc_row_at(r, svc_tx_query(r, &insert_alert, p, 7), 0), "id");
}

/* 1 when the synchronous rule (threshold, country) holds for the payment. */
static int sync_hit(const P(Rule) * rule, const P(PaymentFact) * f)
{
    if (rule->condition_case == COND(THRESHOLD)) {
        const Paywire__Common__V1__Money *t = rule->threshold->amount;
        return f->amount != NULL && strcmp(f->amount->currency, t->currency) == 0 &&
               f->amount->amount_minor >= t->amount_minor;
    }
    if (rule->condition_case == COND(HIGH_RISK_COUNTRY)) {
        for (size_t k = 0; k < rule->high_risk_country->n_countries; k++) {
            if (f->payer_country[0] &&
                strcmp(rule->high_risk_country->countries[k], f->payer_country) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

static int64_t us_of(const struct Google__Protobuf__Timestamp *t)
{
    return t->seconds * 1000000 + t->nanos / 1000;
}

/* The payments of a velocity hit for the fact (comma-separated), or NULL when it is no hit. */
static char *velocity_hit(svc_req *r, const P(VelocityRule) * v, const P(PaymentFact) * f)
{
    int payer = strcmp(v->per, "payer") == 0;
    if (payer && f->payer_key[0] == '\0') {
        return NULL;
    }
    int64_t end = us_of(f->time);
    const char *cur = v->max_amount ? v->max_amount->currency : f->amount->currency;
    pw_db_param p[] = {pw_db_text(v->per), pw_db_text(payer ? f->payer_key : f->merchant_id),
                       pw_db_timestamptz(end - v->window->seconds * 1000000),
                       pw_db_timestamptz(end), pw_db_text(cur)};
    svc_row w = svc_row_at(r, svc_tx_query(r, &window_counts, p, 5), 0);
    int over = (v->max_count > 0 && svc_int64(w, "n") > v->max_count) ||
               (money_ok(v->max_amount) && svc_int64(w, "total") > v->max_amount->amount_minor);
    return over ? svc_text(w, "ids") : NULL;
}

/* In the transaction: counts f once and raises its alerts into ids (n updated). */
static void record_fact(svc_req *r, const P(GetRulesResponse) * rs, const P(PaymentFact) * f,
                        char **ids, size_t *n)
{
    pw_db_param p[] = {pw_db_text(f->payment_id),        pw_db_text(f->merchant_id),
                       pw_db_text(f->payer_key),         pw_db_int8(f->amount->amount_minor),
                       pw_db_text(f->amount->currency),  pw_db_text(f->payer_country),
                       pw_db_timestamptz(us_of(f->time))};
    svc_tx_query(r, &insert_fact, p, 7);
    /* A payment recorded again is evaluated again: its alerts exist and are answered as they
     * are (the window is the same, ending at the payment's own time). */
    for (size_t i = 0; i < rs->n_rules; i++) {
        const P(Rule) *rule = rs->rules[i];
        char *hit = rule->condition_case == COND(VELOCITY) ? velocity_hit(r, rule->velocity, f)
                    : sync_hit(rule, f)                    ? f->payment_id
                                                           : NULL;
        if (hit != NULL) {
            ids[(*n)++] = raise_alert(r, rs, rule, f, hit, "");
        }
    }
}

static void record_tx(svc_req *r, const void *arg)
{
    const P(RecordPaymentsRequest) *req = arg;
    P(GetRulesResponse) *rs = rules_in_force(r, 1);
    P(RecordPaymentsResponse) resp = PAYWIRE__COMPLIANCE__V1__RECORD_PAYMENTS_RESPONSE__INIT;
    resp.alert_ids = svc_alloc(r, sizeof(char *) * (req->n_payments * rs->n_rules + 1));
    for (size_t i = 0; i < req->n_payments; i++) {
        record_fact(r, rs, req->payments[i], resp.alert_ids, &resp.n_alert_ids);
    }
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(record_payments, P(RecordPaymentsRequest))
{
    if (req->n_payments == 0 || req->n_payments > MAX_FACTS) {
        svc_violation(r, "payments", "1 to 500 payments");
    }
    for (size_t i = 0; i < req->n_payments && i < MAX_FACTS; i++) {
        const P(PaymentFact) *f = req->payments[i];
        char field[48];
        snprintf(field, sizeof(field), "payments[%zu]", i);
        if (!svc_text_ok(f->payment_id, 64) || !svc_text_ok(f->merchant_id, 64) ||
            f->amount == NULL || f->amount->amount_minor < 0 ||
            !svc_currency_ok(f->amount->currency) || f->time == NULL ||
            (f->payer_country[0] && !svc_country_ok(f->payer_country)) ||
            (f->payer_key[0] && !svc_text_ok(f->payer_key, 128))) {
            svc_violation(r, svc_strdup(r, field),
                          "payment_id, merchant_id, amount (minor units >= 0, a currency) and "
                          "time; payer_country an ISO 3166-1 alpha-2 code when set");
        }
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_transaction(r, record_tx, req);
}

void monitoring_screen(svc_req *r, const P(ScreenTransactionRequest) * req, const char *screening,
                       P(ScreenTransactionResponse) * resp)
{
    P(GetRulesResponse) *rs = rules_in_force(r, 1);
    P(PaymentFact) f = PAYWIRE__COMPLIANCE__V1__PAYMENT_FACT__INIT;
    f.payment_id = req->payment_id;
    f.merchant_id = req->merchant_id;
    f.amount = req->amount;
    f.payer_country = req->payer_country;
    for (size_t i = 0; i < rs->n_rules; i++) {
        const P(Rule) *rule = rs->rules[i];
        if (rule->condition_case == COND(VELOCITY) || !sync_hit(rule, &f)) {
            continue;
        }
        resp->reasons[resp->n_reasons++] =
            rule->condition_case == COND(THRESHOLD) ? "threshold_exceeded" : "high_risk_country";
        char *id =
            raise_alert(r, rs, rule, &f, f.payment_id, rule->hold_for_review ? screening : "");
        if (!resp->alert_id[0] || rule->hold_for_review) {
            resp->alert_id = id;
        }
        if (rule->hold_for_review &&
            resp->verdict ==
                PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_ALLOW) {
            resp->verdict =
                PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_REVIEW;
        }
    }
}

/* ---- alerts ---- */

static P(Alert) * alert_from_row(svc_row row)
{
    P(Alert) *a = svc_alloc(row.r, sizeof(*a));
    paywire__compliance__v1__alert__init(a);
    a->id = svc_text(row, "id");
    a->rule_name = svc_text(row, "rule_name");
    a->rule_version = svc_int64(row, "rule_version");
    a->merchant_id = svc_text(row, "merchant_id");
    char *ids = svc_text(row, "payment_ids");
    a->payment_ids = svc_alloc(row.r, sizeof(char *) * (strlen(ids) / 2 + 1));
    for (char *save = NULL, *t = strtok_r(ids, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        a->payment_ids[a->n_payment_ids++] = t;
    }
    const char *st = svc_text(row, "state");
    for (int i = 1; i < 4; i++) {
        if (strcmp(st, alert_states[i]) == 0) {
            a->state = i;
        }
    }
    a->case_id = svc_text(row, "case_id");
    a->screening_id = svc_text(row, "screening_id");
    a->create_time = svc_time(row, "create_time");
    return a;
}

SVC_HANDLER(list_alerts, P(ListAlertsRequest))
{
    char filters[128];
    snprintf(filters, sizeof(filters), "alerts\n%d\n%s", (int)req->state, req->merchant_id);
    int64_t after = page_after(r, req->page_token, filters);
    int want = page_size(r, req->page_size);
    if (req->state < 0 || req->state > ALERT(ESCALATED)) {
        svc_violation(r, "state", "an AlertState");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_int8(after), pw_db_text(req->state ? alert_states[req->state] : ""),
                       pw_db_text(req->merchant_id), pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &alert_page, p, 4);
    int n = pw_db_rows(res), shown = n > want ? want : n;
    P(ListAlertsResponse) resp = PAYWIRE__COMPLIANCE__V1__LIST_ALERTS_RESPONSE__INIT;
    resp.alerts = svc_alloc(r, sizeof(*resp.alerts) * (size_t)(shown + 1));
    for (int i = 0; i < shown; i++) {
        resp.alerts[resp.n_alerts++] = alert_from_row(svc_row_at(r, res, i));
    }
    if (n > want) {
        int64_t last = svc_int64(svc_row_at(r, res, shown - 1), "seq");
        resp.next_page_token = page_token(r, last, filters);
    }
    svc_reply(r, &resp.base);
}

static void resolve_tx(svc_req *r, const void *arg)
{
    const P(ResolveAlertRequest) *req = arg;
    pw_db_param id = pw_db_text(req->alert_id);
    svc_row a = svc_one(r, svc_tx_query(r, &lock_alert, &id, 1), "alert", req->alert_id);
    char *state = svc_text(a, "state");
    if (strcmp(state, "OPEN") != 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "ALERT_CLOSED", "alert %s is %s: resolved for good",
                  req->alert_id, state);
    }
    char *merchant = svc_text(a, "merchant_id");
    const char *case_id = req->escalate ? cases_open_investigation(r, merchant, req->alert_id) : "";
    const char *next = req->escalate ? "ESCALATED" : "DISMISSED";
    pw_db_param u[] = {id, pw_db_text(next), pw_db_text(case_id), pw_db_text(req->note)};
    /* Read before the next wait (the audit append), which ends the result's life. */
    P(Alert) *alert = alert_from_row(svc_row_at(r, svc_tx_query(r, &close_alert, u, 4), 0));
    const char *kv[] = {"state", next, "case", case_id, "merchant", merchant};
    char key[80];
    snprintf(key, sizeof(key), "alert/%s/resolved", req->alert_id);
    audit_entry e = {r->caller.identity, "alert.resolved", req->alert_id, "compliance",
                     audit_detail(r, kv, 3)};
    audit_record(r, key, &e);
    P(ResolveAlertResponse) resp = PAYWIRE__COMPLIANCE__V1__RESOLVE_ALERT_RESPONSE__INIT;
    resp.alert = alert;
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(resolve_alert, P(ResolveAlertRequest))
{
    if (!svc_id_ok(req->alert_id, "alt")) {
        svc_violation(r, "alert_id", "an alert id: \"alt_\" and 26 characters");
    }
    if (req->note[0] && !svc_text_ok(req->note, 2000)) {
        svc_violation(r, "note", "up to 2000 characters of text");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "ResolveAlert", req->idempotency_key,
                   &paywire__compliance__v1__resolve_alert_response__descriptor, resolve_tx, req);
}

void monitoring_handlers_init(paywire_compliance_v1_monitoring_service_handlers *h)
{
    h->set_rules = set_rules_h;
    h->get_rules = get_rules_h;
    h->list_alerts = list_alerts_h;
    h->resolve_alert = resolve_alert_h;
    h->record_payments = record_payments_h;
}
