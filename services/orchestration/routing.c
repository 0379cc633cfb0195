/*
 * routing.c: which connectors a payment tries, in which order (design:
 * "Routing and failover"), and RoutingService's ListConnectors,
 * SetRoutingRules and GetRoutingRules.
 *
 * Connectors are configured (`connectors`); routing rules are rows of the
 * database, a version at a time (routing_rule_versions, routing_rules), so
 * every instance routes by the same rules and a change is one commit. The
 * confirm's transaction matches the payment against the newest version in
 * SQL (first rule by position whose set conditions all hold). A rule's
 * split ("70,30") picks the first connector by FNV-1a of the payment id mod
 * 100 over the cumulative percentages; the others follow as fallbacks, so a
 * retried confirm of one payment routes the same way. Breakers (breaker.c)
 * leave out the connectors that are OPEN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "orchestration.h"

typedef Paywire__Orchestration__V1__RoutingRule RoutingRule;

/* ---- configuration ---- */

static pw_status connector_parse(orch_connector *c, const char *item, size_t len)
{
    char buf[320];
    if (len == 0 || len >= sizeof(buf)) {
        return PW_INVALID_ARGUMENT;
    }
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *at = strchr(buf, '@');
    if (at == NULL || at == buf || (size_t)(at - buf) >= sizeof(c->name)) {
        return PW_INVALID_ARGUMENT;
    }
    *at = '\0';
    char *cost = strchr(at + 1, '/');
    unsigned bps = 0;
    long long fixed = 0;
    if (cost != NULL) {
        char extra;
        if (sscanf(cost, "/%u/%lld%c", &bps, &fixed, &extra) != 2 || bps > 10000 || fixed < 0) {
            return PW_INVALID_ARGUMENT;
        }
        *cost = '\0';
    }
    if (at[1] == '\0' || strlen(at + 1) >= sizeof(c->target)) {
        return PW_INVALID_ARGUMENT;
    }
    memcpy(c->name, buf, (size_t)(at - buf) + 1);
    memcpy(c->target, at + 1, strlen(at + 1) + 1);
    c->cost_bps = bps;
    c->cost_fixed_minor = fixed;
    return PW_OK;
}

pw_status orch_connectors_parse(orch_state *s, const char *spec, char *err, size_t err_len)
{
    s->n_connectors = 0;
    while (spec != NULL && *spec != '\0') {
        while (*spec == ' ' || *spec == ',') {
            spec++;
        }
        size_t len = strcspn(spec, ", ");
        if (len == 0) {
            break;
        }
        if (s->n_connectors == ORCH_MAX_CONNECTORS ||
            connector_parse(&s->connectors[s->n_connectors], spec, len) != PW_OK ||
            orch_connector_find(s, s->connectors[s->n_connectors].name) >= 0) {
            snprintf(err, err_len,
                     "connectors: at most %d distinct \"name@host:port/cost_bps/cost_fixed\"",
                     ORCH_MAX_CONNECTORS);
            return PW_INVALID_ARGUMENT;
        }
        s->n_connectors++;
        spec += len;
    }
    return PW_OK;
}

int orch_connector_find(const orch_state *s, const char *name)
{
    for (int i = 0; i < s->n_connectors; i++) {
        if (strcmp(s->connectors[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- choosing ---- */

static const pw_db_stmt matching_rule = {
    .name = "orch_matching_rule",
    .sql = "SELECT connectors, split, cheapest_first FROM routing_rules"
           " WHERE version = (SELECT max(version) FROM routing_rule_versions)"
           " AND method IN ('', 'card') AND currency IN ('', $1)"
           " AND issuer_country IN ('', $2) AND (min_amount_minor = 0 OR $3 >= min_amount_minor)"
           " AND (max_amount_minor = 0 OR $3 <= max_amount_minor) ORDER BY position LIMIT 1",
    .nparams = 3,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8},
};

uint32_t orch_split_point(const char *payment_id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)payment_id; *p; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h % 100;
}

static int64_t cost_of(const orch_connector *c, int64_t amount_minor)
{
    return amount_minor / 10000 * c->cost_bps + amount_minor % 10000 * c->cost_bps / 10000 +
           c->cost_fixed_minor;
}

/* The comma-separated names of a rule into indexes (names unknown now are skipped). */
static void route_of_names(const orch_state *s, const char *names, orch_route *out)
{
    out->n = 0;
    while (*names != '\0' && out->n < ORCH_MAX_CONNECTORS) {
        size_t len = strcspn(names, ",");
        char name[32];
        snprintf(name, sizeof(name), "%.*s", (int)(len < 31 ? len : 31), names);
        int idx = orch_connector_find(s, name);
        if (idx >= 0) {
            out->idx[out->n++] = idx;
        }
        names += len + (names[len] == ',');
    }
}

/* Moves the connector the split picks (cumulative percentages in list order) to the front. */
static void apply_split(orch_route *route, const char *split, const char *payment_id)
{
    uint32_t point = orch_split_point(payment_id), sum = 0;
    for (int i = 0; i < route->n && *split != '\0'; i++) {
        sum += (uint32_t)strtoul(split, (char **)&split, 10);
        split += *split == ',';
        if (point < sum) {
            int pick = route->idx[i];
            memmove(&route->idx[1], &route->idx[0], sizeof(int) * (size_t)i);
            route->idx[0] = pick;
            return;
        }
    }
}

void orch_route_payment(svc_req *r, const char *payment_id, const char *currency,
                        const char *issuer_country, int64_t amount_minor, orch_route *out)
{
    const orch_state *s = r->app->service;
    pw_db_param p[] = {pw_db_text(currency), pw_db_text(issuer_country), pw_db_int8(amount_minor)};
    const pw_db_result *res = svc_tx_query(r, &matching_rule, p, 3);
    orch_route all = {.n = s->n_connectors};
    for (int i = 0; i < s->n_connectors; i++) {
        all.idx[i] = i;
    }
    if (pw_db_rows(res) == 1) {
        svc_row rule = svc_row_at(r, res, 0);
        route_of_names(s, svc_text(rule, "connectors"), &all);
        if (svc_bool(rule, "cheapest_first")) {
            /* Insertion sort: stable, so equal costs keep the rule's order. */
            for (int i = 1; i < all.n; i++) {
                int k = all.idx[i], j = i - 1;
                while (j >= 0 && cost_of(&s->connectors[all.idx[j]], amount_minor) >
                                     cost_of(&s->connectors[k], amount_minor)) {
                    all.idx[j + 1] = all.idx[j];
                    j--;
                }
                all.idx[j + 1] = k;
            }
        }
        apply_split(&all, svc_text(rule, "split"), payment_id);
    }
    uint64_t now = orch_now_ms();
    out->n = 0;
    for (int i = 0; i < all.n; i++) {
        if (orch_breaker_allow(s->breakers, all.idx[i], now)) {
            out->idx[out->n++] = all.idx[i];
        }
    }
}

/* ---- RoutingService ---- */

static const pw_db_stmt current_version = {
    .name = "orch_rules_version",
    .sql = "SELECT coalesce(max(version), 0)::int8 AS version FROM routing_rule_versions",
    .nparams = 0,
};
static const pw_db_stmt lock_versions = {
    .name = "orch_rules_lock",
    /* One writer of the rules at a time (a LOCK TABLE cannot be a prepared statement). */
    .sql = "SELECT pg_advisory_xact_lock(hashtext('orchestration.routing_rules'))",
    .nparams = 0,
};
static const pw_db_stmt insert_version = {
    .name = "orch_rules_insert_version",
    .sql = "INSERT INTO routing_rule_versions (version) VALUES ($1)",
    .nparams = 1,
    .types = {PW_DB_INT8},
};
static const pw_db_stmt insert_rule = {
    .name = "orch_rules_insert",
    .sql = "INSERT INTO routing_rules (version, position, method, currency, issuer_country,"
           " min_amount_minor, max_amount_minor, connectors, split, cheapest_first)"
           " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    .nparams = 10,
    .types = {PW_DB_INT8, PW_DB_INT4, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_INT8,
              PW_DB_TEXT, PW_DB_TEXT, PW_DB_BOOL},
};
static const pw_db_stmt select_rules = {
    .name = "orch_rules_select",
    .sql = "SELECT method, currency, issuer_country, min_amount_minor, max_amount_minor,"
           " connectors, split, cheapest_first FROM routing_rules"
           " WHERE version = $1 ORDER BY position",
    .nparams = 1,
    .types = {PW_DB_INT8},
};

/* Splits "a,b" into call memory (n strings). */
static char **split_list(svc_req *r, const char *csv, size_t *n)
{
    size_t cap = 1;
    for (const char *p = csv; *p; p++) {
        cap += *p == ',';
    }
    char **out = svc_alloc(r, sizeof(char *) * cap);
    *n = 0;
    while (*csv != '\0') {
        size_t len = strcspn(csv, ",");
        char *item = svc_alloc(r, len + 1);
        memcpy(item, csv, len);
        item[len] = '\0';
        out[(*n)++] = item;
        csv += len + (csv[len] == ',');
    }
    return out;
}

static void check_rule(svc_req *r, const orch_state *s, const RoutingRule *rule, size_t i)
{
    char f[64];
    if (rule->method[0] && strcmp(rule->method, "card") != 0) {
        snprintf(f, sizeof(f), "rules[%zu].method", i);
        svc_violation(r, svc_strdup(r, f), "\"card\" or empty (bank and on-chain: not routed)");
    }
    if (rule->currency[0] && !svc_currency_ok(rule->currency)) {
        snprintf(f, sizeof(f), "rules[%zu].currency", i);
        svc_violation(r, svc_strdup(r, f), "an ISO 4217 currency code or empty");
    }
    if (rule->issuer_country[0] && !svc_country_ok(rule->issuer_country)) {
        snprintf(f, sizeof(f), "rules[%zu].issuer_country", i);
        svc_violation(r, svc_strdup(r, f), "an ISO 3166-1 alpha-2 code or empty");
    }
    if (rule->min_amount_minor < 0 || rule->max_amount_minor < 0 ||
        (rule->max_amount_minor > 0 && rule->max_amount_minor < rule->min_amount_minor)) {
        snprintf(f, sizeof(f), "rules[%zu].max_amount_minor", i);
        svc_violation(r, svc_strdup(r, f), "0 (unbounded) or at least min_amount_minor, both >= 0");
    }
    snprintf(f, sizeof(f), "rules[%zu].connectors", i);
    if (rule->n_connectors == 0 || rule->n_connectors > ORCH_MAX_CONNECTORS) {
        svc_violation(r, svc_strdup(r, f), "1 to 8 configured connectors (ListConnectors)");
    }
    for (size_t k = 0; k < rule->n_connectors; k++) {
        if (orch_connector_find(s, rule->connectors[k]) < 0) {
            svc_violation(r, svc_strdup(r, f), "only configured connectors (ListConnectors)");
        }
    }
    uint32_t sum = 0;
    for (size_t k = 0; k < rule->n_split_percent; k++) {
        sum += rule->split_percent[k];
    }
    if (rule->n_split_percent > 0 && (rule->n_split_percent != rule->n_connectors || sum != 100)) {
        snprintf(f, sizeof(f), "rules[%zu].split_percent", i);
        svc_violation(r, svc_strdup(r, f), "empty, or one percentage per connector summing to 100");
    }
}

/* "a,b" of n strings, in call memory. */
static char *join(svc_req *r, char *const *items, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++) {
        len += strlen(items[i]) + 1;
    }
    char *out = svc_alloc(r, len);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(out, i ? "," : "");
        strcat(out, items[i]);
    }
    return out;
}

static char *join_split(svc_req *r, const uint32_t *pct, size_t n)
{
    char *out = svc_alloc(r, n * 5 + 1);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(out + used, n * 5 + 1 - used, "%s%u", i ? "," : "", pct[i]);
    }
    return out;
}

static void set_rules_tx(svc_req *r, const void *arg)
{
    const Paywire__Orchestration__V1__SetRoutingRulesRequest *req = arg;
    svc_tx_query(r, &lock_versions, NULL, 0);
    int64_t version =
        svc_int64(svc_row_at(r, svc_tx_query(r, &current_version, NULL, 0), 0), "version");
    if (version != req->expected_version) {
        svc_abort(r, PW_ABORTED, "ROUTING_RULES_CHANGED",
                  "the rules are at version %lld, not expected_version; read them again",
                  (long long)version);
    }
    pw_db_param v = pw_db_int8(version + 1);
    svc_tx_pipe(r, &insert_version, &v, 1);
    for (size_t i = 0; i < req->n_rules; i++) {
        const RoutingRule *rule = req->rules[i];
        pw_db_param p[] = {v,
                           pw_db_int4((int32_t)i),
                           pw_db_text(rule->method),
                           pw_db_text(rule->currency),
                           pw_db_text(rule->issuer_country),
                           pw_db_int8(rule->min_amount_minor),
                           pw_db_int8(rule->max_amount_minor),
                           pw_db_text(join(r, rule->connectors, rule->n_connectors)),
                           pw_db_text(join_split(r, rule->split_percent, rule->n_split_percent)),
                           pw_db_bool(rule->cheapest_first)};
        svc_tx_pipe(r, &insert_rule, p, 10);
    }
    Paywire__Orchestration__V1__SetRoutingRulesResponse resp =
        PAYWIRE__ORCHESTRATION__V1__SET_ROUTING_RULES_RESPONSE__INIT;
    resp.version = version + 1;
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(set_routing_rules, Paywire__Orchestration__V1__SetRoutingRulesRequest)
{
    const orch_state *s = r->app->service;
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (req->n_rules > 100) {
        svc_violation(r, "rules", "at most 100 rules");
    }
    for (size_t i = 0; i < req->n_rules && i < 100; i++) {
        check_rule(r, s, req->rules[i], i);
    }
    svc_check(r);
    svc_authenticate(r, NULL); /* operators and services only (internal identities) */
    if (!r->caller.internal) {
        svc_fail(r, PW_PERMISSION_DENIED, "routing rules are set by operators");
    }
    svc_idempotent(r, "SetRoutingRules", req->idempotency_key,
                   &paywire__orchestration__v1__set_routing_rules_response__descriptor,
                   set_rules_tx, req);
}

SVC_HANDLER(get_routing_rules, Paywire__Orchestration__V1__GetRoutingRulesRequest)
{
    (void)req;
    svc_authenticate(r, NULL);
    if (!r->caller.internal) {
        svc_fail(r, PW_PERMISSION_DENIED, "routing rules are read by operators");
    }
    Paywire__Orchestration__V1__GetRoutingRulesResponse resp =
        PAYWIRE__ORCHESTRATION__V1__GET_ROUTING_RULES_RESPONSE__INIT;
    resp.version = svc_int64(svc_row_at(r, svc_query(r, &current_version, NULL, 0), 0), "version");
    pw_db_param v = pw_db_int8(resp.version);
    const pw_db_result *res = svc_query(r, &select_rules, &v, 1);
    resp.n_rules = (size_t)pw_db_rows(res);
    resp.rules = svc_alloc(r, sizeof(*resp.rules) * (resp.n_rules + 1));
    for (size_t i = 0; i < resp.n_rules; i++) {
        svc_row row = svc_row_at(r, res, (int)i);
        RoutingRule *rule = svc_alloc(r, sizeof(*rule));
        paywire__orchestration__v1__routing_rule__init(rule);
        rule->method = svc_text(row, "method");
        rule->currency = svc_text(row, "currency");
        rule->issuer_country = svc_text(row, "issuer_country");
        rule->min_amount_minor = svc_int64(row, "min_amount_minor");
        rule->max_amount_minor = svc_int64(row, "max_amount_minor");
        rule->cheapest_first = svc_bool(row, "cheapest_first");
        rule->connectors = split_list(r, svc_text(row, "connectors"), &rule->n_connectors);
        size_t n = 0;
        char **pct = split_list(r, svc_text(row, "split"), &n);
        rule->split_percent = svc_alloc(r, sizeof(uint32_t) * (n + 1));
        for (size_t k = 0; k < n; k++) {
            rule->split_percent[k] = (uint32_t)strtoul(pct[k], NULL, 10);
        }
        rule->n_split_percent = n;
        resp.rules[i] = rule;
    }
    svc_reply(r, &resp.base);
}

SVC_HANDLER(list_connectors, Paywire__Orchestration__V1__ListConnectorsRequest)
{
    (void)req;
    svc_authenticate(r, NULL);
    if (!r->caller.internal) {
        svc_fail(r, PW_PERMISSION_DENIED, "connectors are listed for operators");
    }
    const orch_state *s = r->app->service;
    Paywire__Orchestration__V1__ListConnectorsResponse resp =
        PAYWIRE__ORCHESTRATION__V1__LIST_CONNECTORS_RESPONSE__INIT;
    resp.connectors = svc_alloc(r, sizeof(*resp.connectors) * (size_t)(s->n_connectors + 1));
    static char *methods[] = {"card"};
    uint64_t now = orch_now_ms();
    for (int i = 0; i < s->n_connectors; i++) {
        Paywire__Orchestration__V1__Connector *c = svc_alloc(r, sizeof(*c));
        paywire__orchestration__v1__connector__init(c);
        c->name = (char *)s->connectors[i].name;
        c->n_methods = 1;
        c->methods = methods;
        c->cost_bps = s->connectors[i].cost_bps;
        c->cost_fixed_minor = s->connectors[i].cost_fixed_minor;
        orch_breaker_stats st;
        orch_breaker_view(s->breakers, i, now, &st);
        c->circuit = (Paywire__Orchestration__V1__CircuitState)st.state;
        c->success_rate_bps = st.success_rate_bps;
        c->p99_latency_ms = st.p99_latency_ms;
        resp.connectors[resp.n_connectors++] = c;
    }
    svc_reply(r, &resp.base);
}

static const paywire_orchestration_v1_routing_service_handlers routing_handlers = {
    .list_connectors = list_connectors_h,
    .set_routing_rules = set_routing_rules_h,
    .get_routing_rules = get_routing_rules_h,
};

pw_status orch_register_routing(pw_server *server, svc_app *app)
{
    return paywire_orchestration_v1_routing_service_register(server, &routing_handlers, app);
}
