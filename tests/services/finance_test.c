/*
 * The finance service end to end: a real finance-server process (this build,
 * under the sanitizers in CI) on a fresh database of the local PostgreSQL,
 * called through the generated C clients over mTLS as an internal service.
 * The schema's own guards (balanced transfers at commit, immutable entries)
 * are checked with hand-written SQL, as a bug in the service would write it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>
#include "pw_test_raw.h"
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/finance/v1/fees.pw.h"
#include "paywire/finance/v1/fx.pw.h"
#include "paywire/finance/v1/ledger.pw.h"
#include "paywire/finance/v1/settlement.pw.h"

static char db_url[512];
static svc_process proc = {
    .name = "finance",
    .binary = PW_FINANCE_SERVER,
    .health_service = "paywire.finance.v1.LedgerService",
};
static uv_loop_t loop;
static pw_channel *ch;

/* ---- SQL as a buggy writer would send it ---- */

/* Runs sql, which must fail; its message must contain want. */
static void sql_fails(const char *sql, const char *want)
{
    PGconn *c = PQconnectdb(db_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    const char *msg = PQresultErrorMessage(res);
    char got[512];
    snprintf(got, sizeof(got), "%s %s", PQresStatus(st), msg);
    int ok = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && strstr(msg, want) != NULL;
    PQclear(res);
    PQfinish(c);
    if (!ok) {
        fail_msg("%s: wanted an error containing \"%s\", got %s", sql, want, got);
    }
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    svc_process_prepare(&proc);
    pw_test_db_create("finance_test", db_url, sizeof(db_url));
    /* As scripts/pg service does: the app role gets DML on new tables by default, so the
     * migration's REVOKE on entries is what takes UPDATE and DELETE away. */
    pw_test_db_exec(db_url, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname ="
                            " 'finance_app') THEN CREATE ROLE finance_app LOGIN; END IF; END $$;"
                            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT,"
                            " UPDATE, DELETE ON TABLES TO finance_app");
    char err[512];
    assert_int_equal(pw_db_migrate(db_url, PW_SOURCE_DIR "/services/finance/migrations",
                                   "paywire.migrate.finance", NULL, err, sizeof(err)),
                     PW_OK);
    svc_process_start(&proc, db_url,
                      "log_level = warning\nworkers = 2\nledger_check_seconds = 1\n");
    uv_loop_init(&loop);
    ch = svc_process_channel(&proc, &loop);
    svc_process_wait_serving(&proc, ch);
    return 0;
}

static void closed(pw_channel *c, void *ud)
{
    (void)c;
    (void)ud;
}

static void closed_flag(pw_channel *c, void *ud)
{
    (void)c;
    *(int *)ud = 1;
}

static void close_conns(void);

static int group_teardown(void **state)
{
    (void)state;
    if (ch != NULL) {  /* NULL: the set-up failed before the server ran */
        close_conns(); /* a failed test leaves its connections open */
        pw_channel_close(ch, closed, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    svc_process_stop(&proc);
    svc_process_cleanup(&proc);
    return 0;
}

/* ---- the process ---- */

static void test_finance_serves_health_and_settlement(void **state)
{
    (void)state;
    assert_int_equal(svc_process_health(ch, "paywire.finance.v1.LedgerService"), 1);
    /* Settlement is built now (nothing UNIMPLEMENTED): an empty rule is refused naming it. */
    Paywire__Finance__V1__SetReserveRuleRequest req =
        PAYWIRE__FINANCE__V1__SET_RESERVE_RULE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    char *msg = NULL;
    pw_call_options o = {.timeout_ms = 5000};
    pw_status rv = pw_client_unary_blocking(
        ch, "/paywire.finance.v1.SettlementService/SetReserveRule", &o, &req.base,
        &paywire__finance__v1__set_reserve_rule_response__descriptor, &resp, &msg, NULL);
    assert_int_equal(rv, PW_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "rule"));
    pw_free(msg);
    pw_protobuf_free(resp);
}

/* ---- the schema's guards ---- */

static const char *seed_accounts =
    "INSERT INTO accounts (id, mode, kind, owner, currency, normal_balance) VALUES"
    " ('acc_0000000000000000000000000A', 'TEST', 'merchant_available', 'mer_x', 'USD', 'CREDIT'),"
    " ('acc_0000000000000000000000000B', 'TEST', 'platform_revenue', '', 'USD', 'CREDIT'),"
    " ('acc_0000000000000000000000000C', 'TEST', 'platform_revenue', '', 'EUR', 'CREDIT'),"
    " ('acc_0000000000000000000000000D', 'LIVE', 'platform_revenue', '', 'USD', 'CREDIT')"
    " ON CONFLICT DO NOTHING;"
    "INSERT INTO transfers (mode, id, kind, state, two_phase, balance_check, create_time,"
    " post_time) VALUES ('TEST', 'txf_adjust_sql1', 'adjust', 'POSTED', false, 'NONE', now(),"
    " now()) ON CONFLICT DO NOTHING";

/* A hand-written transfer txf_adjust_sql1: Dr account A 100 USD, then Cr `credit` (account,
 * amount, currency) unless credit is NULL; committed or refused by the trigger. */
static void sql_transfer(const char *credit, const char *refused_with)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "BEGIN; INSERT INTO entries (mode, transfer_id, account_id, side, amount_minor,"
             " currency, phase, balance_after_minor, time) VALUES ('TEST', 'txf_adjust_sql1',"
             " 'acc_0000000000000000000000000A', 'DEBIT', 100, 'USD', 'POSTED', -100, now())"
             "%s%s%s; COMMIT",
             credit ? ", ('TEST', 'txf_adjust_sql1', " : "", credit ? credit : "",
             credit ? ", 'POSTED', 100, now())" : "");
    if (refused_with != NULL) {
        sql_fails(sql, refused_with);
    } else {
        pw_test_db_exec(db_url, sql);
    }
}

static void test_ledger_trigger_refuses_unbalanced_sql(void **state)
{
    (void)state;
    pw_test_db_exec(db_url, seed_accounts);
    /* Debits 100, credits 99. */
    sql_transfer("'acc_0000000000000000000000000B', 'CREDIT', 99, 'USD'", "unbalanced");
    /* Balanced amounts, but across currencies (a leg in USD, a leg in EUR). */
    sql_transfer("'acc_0000000000000000000000000C', 'CREDIT', 100, 'EUR'", "unbalanced");
    /* An entry whose currency is not its account's. */
    sql_transfer("'acc_0000000000000000000000000C', 'CREDIT', 100, 'USD'", "unbalanced");
    /* An account of the other mode. */
    sql_transfer("'acc_0000000000000000000000000D', 'CREDIT', 100, 'USD'", "unbalanced");
    /* A single entry. */
    sql_transfer(NULL, "unbalanced");
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM entries"), 0);
    /* The balanced one commits: the trigger is not simply refusing everything. */
    sql_transfer("'acc_0000000000000000000000000B', 'CREDIT', 100, 'USD'", NULL);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM entries"), 2);
    /* Its counters, as a writer would have moved them (the later tests check them all). */
    pw_test_db_exec(db_url, "UPDATE accounts SET posted_debits = 100, version = 1 WHERE id ="
                            " 'acc_0000000000000000000000000A'; UPDATE accounts SET"
                            " posted_credits = 100, version = 1 WHERE id ="
                            " 'acc_0000000000000000000000000B'");
}

static void test_ledger_entries_are_immutable(void **state)
{
    (void)state;
    sql_fails("UPDATE entries SET amount_minor = amount_minor + 1", "immutable");
    sql_fails("DELETE FROM entries", "immutable");
    sql_fails("TRUNCATE entries CASCADE", "immutable");
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT has_table_privilege('finance_app',"
                                               " 'entries', 'UPDATE')::int"),
                     0);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT has_table_privilege('finance_app',"
                                               " 'entries', 'DELETE')::int"),
                     0);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT has_table_privilege('finance_app',"
                                               " 'entries', 'INSERT')::int"),
                     1);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT has_table_privilege('finance_app',"
                                               " 'accounts', 'UPDATE')::int"),
                     1);
}

/* Migration 0021: the members of net settlement lines are a record, inserted and never changed
 * (as recon_rows, 0019). */
static void test_recon_row_members_are_insert_only(void **state)
{
    (void)state;
    const char *want[][2] = {
        {"INSERT", "1"}, {"SELECT", "1"}, {"UPDATE", "0"}, {"DELETE", "0"}, {"TRUNCATE", "0"}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "SELECT has_table_privilege('finance_app', 'recon_row_members', '%s')::int",
                 want[i][0]);
        if (pw_test_db_scalar(db_url, sql) != atoi(want[i][1])) {
            fail_msg("finance_app %s on recon_row_members: want %s", want[i][0], want[i][1]);
        }
    }
}

/* ---- building requests ---- */

#define P(x)   Paywire__Finance__V1__##x
#define C(x)   PAYWIRE__FINANCE__V1__##x
#define LEDGER "/paywire.finance.v1.LedgerService/"
enum {
    K_PENDING = 1,
    K_AVAILABLE = 2,
    K_REVENUE = 4,
    K_RECEIVABLE = 5,
    K_CLEARING = 6,
    K_CASH = 9,
};
enum { TEST = 1, LIVE = 2 };
enum { NONE = 1, AVAILABLE = 2, FUNDS = 3 };

/* One entry: a merchant account (owner "mer_…"), a platform account, or an account id. */
typedef struct leg {
    int kind;
    const char *owner;
    const char *currency;
    int64_t amount;
    int credit;
    const char *account_id;
} leg;

#define MAX_LEGS 8

/* A CreateTransferRequest and everything it points to, without allocation. */
typedef struct xfer_msg {
    P(CreateTransferRequest) req;
    P(Transfer) t;
    P(Entry) e[MAX_LEGS];
    P(Entry) * ep[MAX_LEGS];
    P(AccountRef) ref[MAX_LEGS];
    P(MerchantAccount) m[MAX_LEGS];
    P(PlatformAccount) p[MAX_LEGS];
    Paywire__Common__V1__Money money[MAX_LEGS];
    char id[96];
    char kind[24];
} xfer_msg;

static int is_merchant(int kind)
{
    return kind >= K_PENDING && kind <= 3;
}

static void xfer_build(xfer_msg *x, const char *id, int mode, int pending, int check,
                       const leg *legs, size_t n)
{
    memset(x, 0, sizeof(*x));
    paywire__finance__v1__create_transfer_request__init(&x->req);
    paywire__finance__v1__transfer__init(&x->t);
    snprintf(x->id, sizeof(x->id), "%s", id);
    const char *us = strchr(id + 4, '_');
    snprintf(x->kind, sizeof(x->kind), "%.*s", us ? (int)(us - id - 4) : 0, id + 4);
    x->t.id = x->id;
    x->t.kind = x->kind;
    x->t.mode = (Paywire__Common__V1__Mode)mode;
    for (size_t i = 0; i < n; i++) {
        paywire__finance__v1__entry__init(&x->e[i]);
        paywire__finance__v1__account_ref__init(&x->ref[i]);
        paywire__common__v1__money__init(&x->money[i]);
        x->money[i].amount_minor = legs[i].amount;
        x->money[i].currency = (char *)legs[i].currency;
        x->e[i].amount = &x->money[i];
        x->e[i].side = legs[i].credit ? C(NORMAL_BALANCE__NORMAL_BALANCE_CREDIT)
                                      : C(NORMAL_BALANCE__NORMAL_BALANCE_DEBIT);
        x->e[i].purpose = legs[i].credit ? "credit" : "debit";
        if (legs[i].account_id != NULL) {
            x->ref[i].ref_case = C(ACCOUNT_REF__REF_ACCOUNT_ID);
            x->ref[i].account_id = (char *)legs[i].account_id;
        } else if (is_merchant(legs[i].kind)) {
            paywire__finance__v1__merchant_account__init(&x->m[i]);
            x->m[i].kind = (P(AccountKind))legs[i].kind;
            x->m[i].merchant_id = (char *)legs[i].owner;
            x->m[i].currency = (char *)legs[i].currency;
            x->ref[i].ref_case = C(ACCOUNT_REF__REF_MERCHANT);
            x->ref[i].merchant = &x->m[i];
        } else {
            paywire__finance__v1__platform_account__init(&x->p[i]);
            x->p[i].kind = (P(AccountKind))legs[i].kind;
            x->p[i].counterparty = (char *)(legs[i].owner ? legs[i].owner : "");
            x->p[i].currency = (char *)legs[i].currency;
            x->ref[i].ref_case = C(ACCOUNT_REF__REF_PLATFORM);
            x->ref[i].platform = &x->p[i];
        }
        x->e[i].account = &x->ref[i];
        x->ep[i] = &x->e[i];
    }
    x->t.n_entries = n;
    x->t.entries = x->ep;
    x->req.transfer = &x->t;
    x->req.pending = pending;
    x->req.balance_check = (P(BalanceCheck))check;
}

/* A fresh merchant id, and fresh cause ids. */
static int serial;

static void new_merchant(char *out, size_t cap)
{
    snprintf(out, cap, "mer_%026d", ++serial);
}

static void new_id(char *out, size_t cap, const char *kind)
{
    snprintf(out, cap, "txf_%s_c%ld_%d", kind, (long)getpid(), ++serial);
}

/* ---- calls ---- */

typedef struct reply {
    pw_status code;
    char message[512];
    pw_error_details details;
    ProtobufCMessage *msg;
} reply;

/* One unary call of service (a path prefix: LEDGER, FEES, FX). */
static reply call_in(const char *service, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_type)
{
    char path[128];
    snprintf(path, sizeof(path), "%s%s", service, method);
    pw_call_options o = {.timeout_ms = 20000};
    reply r;
    memset(&r, 0, sizeof(r));
    char *msg = NULL;
    pw_metadata trailers = {0};
    r.code = pw_client_unary_blocking(ch, path, &o, req, resp_type, &r.msg, &msg, &trailers);
    snprintf(r.message, sizeof(r.message), "%s", msg ? msg : "");
    pw_free(msg);
    pw_error_details_read(&trailers, &r.details);
    pw_metadata_clear(&trailers);
    return r;
}

static reply call(const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_type)
{
    return call_in(LEDGER, method, req, resp_type);
}

static void reply_free(reply *r)
{
    pw_protobuf_free(r->msg);
    pw_error_details_clear(&r->details);
    r->msg = NULL;
}

/* The reply must have code, name field in a violation (field may be NULL) and carry reason. */
static void expect(reply *r, pw_status code, const char *field, const char *reason)
{
    int ok = r->code == code;
    int named = field == NULL;
    for (size_t i = 0; i < r->details.violation_count; i++) {
        named = named || strcmp(r->details.violations[i].field, field) == 0;
    }
    int why = reason == NULL || (r->details.reason && strcmp(r->details.reason, reason) == 0);
    char got[700];
    snprintf(got, sizeof(got), "%s \"%s\" (first field %s, reason %s)", pw_status_str(r->code),
             r->message, r->details.violation_count ? r->details.violations[0].field : "-",
             r->details.reason ? r->details.reason : "-");
    reply_free(r);
    if (!ok || !named || !why) {
        fail_msg("got %s; wanted %s naming %s, reason %s", got, pw_status_str(code),
                 field ? field : "-", reason ? reason : "-");
    }
}

static reply create(const char *id, int mode, int pending, int check, const leg *legs, size_t n)
{
    xfer_msg x;
    xfer_build(&x, id, mode, pending, check, legs, n);
    return call("CreateTransfer", &x.req.base,
                &paywire__finance__v1__create_transfer_response__descriptor);
}

/* Creates and expects OK; the transfer's state. */
static int create_ok(const char *id, int mode, int pending, int check, const leg *legs, size_t n)
{
    reply r = create(id, mode, pending, check, legs, n);
    if (r.code != PW_OK) {
        char m[512];
        snprintf(m, sizeof(m), "%s", r.message);
        reply_free(&r);
        fail_msg("CreateTransfer %s: %s", id, m);
    }
    int st = (int)((P(CreateTransferResponse) *)r.msg)->transfer->state;
    reply_free(&r);
    return st;
}

/* PostTransfer or VoidTransfer requests (their fields differ in number: mode is 3 and 2). */
typedef struct resolve_msg {
    P(PostTransferRequest) post;
    P(VoidTransferRequest) voids;
} resolve_msg;

static const ProtobufCMessage *resolve_req(resolve_msg *m, const char *method, const char *id,
                                           int mode)
{
    paywire__finance__v1__post_transfer_request__init(&m->post);
    paywire__finance__v1__void_transfer_request__init(&m->voids);
    m->post.transfer_id = m->voids.transfer_id = (char *)id;
    m->post.mode = m->voids.mode = (Paywire__Common__V1__Mode)mode;
    return strcmp(method, "PostTransfer") == 0 ? &m->post.base : &m->voids.base;
}

static reply resolve_ref(const char *method, const char *id, int mode, const char *partner_ref)
{
    resolve_msg m;
    /* Both responses carry the transfer as field 1: one descriptor reads either. */
    const ProtobufCMessage *req = resolve_req(&m, method, id, mode);
    m.post.partner_reference = (char *)partner_ref;
    return call(method, req, &paywire__finance__v1__post_transfer_response__descriptor);
}

static reply resolve(const char *method, const char *id, int mode)
{
    return resolve_ref(method, id, mode, "");
}

/* The posted balance of a merchant or platform account; -1 in pending_out when unknown. */
static int64_t balance(int mode, int kind, const char *owner, const char *currency,
                       int64_t *pending_debits)
{
    P(GetAccountRequest) req = PAYWIRE__FINANCE__V1__GET_ACCOUNT_REQUEST__INIT;
    P(AccountRef) ref = PAYWIRE__FINANCE__V1__ACCOUNT_REF__INIT;
    P(MerchantAccount) m = PAYWIRE__FINANCE__V1__MERCHANT_ACCOUNT__INIT;
    P(PlatformAccount) p = PAYWIRE__FINANCE__V1__PLATFORM_ACCOUNT__INIT;
    if (is_merchant(kind)) {
        m.kind = (P(AccountKind))kind;
        m.merchant_id = (char *)owner;
        m.currency = (char *)currency;
        ref.ref_case = C(ACCOUNT_REF__REF_MERCHANT);
        ref.merchant = &m;
    } else {
        p.kind = (P(AccountKind))kind;
        p.counterparty = (char *)(owner ? owner : "");
        p.currency = (char *)currency;
        ref.ref_case = C(ACCOUNT_REF__REF_PLATFORM);
        ref.platform = &p;
    }
    req.account = &ref;
    req.mode = (Paywire__Common__V1__Mode)mode;
    reply r =
        call("GetAccount", &req.base, &paywire__finance__v1__get_account_response__descriptor);
    if (r.code != PW_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", r.message);
        reply_free(&r);
        fail_msg("GetAccount: %s", msg);
    }
    P(Account) *a = ((P(GetAccountResponse) *)r.msg)->account;
    int64_t v = a->posted->amount_minor;
    if (pending_debits != NULL) {
        *pending_debits = a->pending_debits->amount_minor;
    }
    reply_free(&r);
    return v;
}

/* ---- invariants, checked in SQL after every ledger test ---- */

/* sql (a SELECT of offending rows) must return none; otherwise the first rows are shown. */
static void no_rows(const char *what, const char *sql)
{
    PGconn *conn = PQconnectdb(db_url);
    PGresult *res = PQexec(conn, sql);
    char shown[1024] = "";
    int rows = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;
    for (int i = 0; i < rows && i < 4; i++) {
        size_t len = strlen(shown);
        for (int k = 0; k < PQnfields(res) && len < sizeof(shown) - 40; k++) {
            len += (size_t)snprintf(shown + len, sizeof(shown) - len, "%s%s", k ? " " : "\n  ",
                                    PQgetvalue(res, i, k));
        }
    }
    char err[256];
    snprintf(err, sizeof(err), "%s", rows < 0 ? PQresultErrorMessage(res) : "");
    PQclear(res);
    PQfinish(conn);
    if (rows != 0) {
        fail_msg("%s: %d rows%s%s", what, rows, err, shown);
    }
}

/* Σ debits = Σ credits per (mode, currency), posted and pending; stored counters = entries;
 * balance_after of each account's last entry = its posted balance. */
static void check_ledger(void)
{
    no_rows("a currency's debits and credits differ",
            "SELECT mode, currency, sum(posted_debits), sum(posted_credits), sum(pending_debits),"
            " sum(pending_credits) FROM accounts GROUP BY mode, currency"
            " HAVING sum(posted_debits::numeric) <> sum(posted_credits)"
            " OR sum(pending_debits::numeric) <> sum(pending_credits)");
    no_rows("stored balances differ from the entries",
            "SELECT a.id, a.posted_debits, a.posted_credits, a.pending_debits, a.pending_credits,"
            " a.version, e.* FROM accounts a LEFT JOIN (SELECT account_id,"
            " sum(CASE WHEN side = 'DEBIT' AND phase IN ('POSTED', 'POST') THEN amount_minor"
            " ELSE 0 END) AS pd,"
            " sum(CASE WHEN side = 'CREDIT' AND phase IN ('POSTED', 'POST') THEN amount_minor"
            " ELSE 0 END) AS pc,"
            " sum(CASE WHEN side = 'DEBIT' THEN CASE phase WHEN 'PENDING' THEN amount_minor"
            " WHEN 'POST' THEN -amount_minor WHEN 'VOID' THEN -amount_minor ELSE 0 END"
            " ELSE 0 END) AS qd,"
            " sum(CASE WHEN side = 'CREDIT' THEN CASE phase WHEN 'PENDING' THEN amount_minor"
            " WHEN 'POST' THEN -amount_minor WHEN 'VOID' THEN -amount_minor ELSE 0 END"
            " ELSE 0 END) AS qc, count(*) AS n FROM entries GROUP BY account_id) e"
            " ON e.account_id = a.id WHERE a.posted_debits <> coalesce(e.pd, 0)"
            " OR a.posted_credits <> coalesce(e.pc, 0) OR a.pending_debits <> coalesce(e.qd, 0)"
            " OR a.pending_credits <> coalesce(e.qc, 0) OR a.version <> coalesce(e.n, 0)");
    no_rows("an account's last balance_after is not its balance",
            "SELECT a.id, l.balance_after_minor FROM accounts a JOIN LATERAL (SELECT"
            " balance_after_minor FROM entries WHERE account_id = a.id ORDER BY sequence DESC"
            " LIMIT 1) l ON true WHERE l.balance_after_minor <> CASE a.normal_balance WHEN"
            " 'CREDIT' THEN a.posted_credits - a.posted_debits ELSE a.posted_debits -"
            " a.posted_credits END");
}

/* ---- one-phase transfers, balances, entries ---- */

static void test_ledger_capture_balances_and_entries(void **state)
{
    (void)state;
    char mer[40], id[96];
    new_merchant(mer, sizeof(mer));
    new_id(id, sizeof(id), "capture");
    /* A capture of 10 000 with a fee of 320: one transfer (finance.md, transfer ids). */
    leg capture[] = {{K_RECEIVABLE, "acq_a", "USD", 10000, 0, NULL},
                     {K_PENDING, mer, "USD", 10000, 1, NULL},
                     {K_PENDING, mer, "USD", 320, 0, NULL},
                     {K_REVENUE, NULL, "USD", 320, 1, NULL}};
    assert_int_equal(create_ok(id, TEST, 0, NONE, capture, 4),
                     C(TRANSFER_STATE__TRANSFER_STATE_POSTED));
    assert_int_equal(balance(TEST, K_PENDING, mer, "USD", NULL), 9680);
    /* The same merchant in LIVE is another account. */
    P(GetAccountRequest) none = PAYWIRE__FINANCE__V1__GET_ACCOUNT_REQUEST__INIT;
    P(AccountRef) ref = PAYWIRE__FINANCE__V1__ACCOUNT_REF__INIT;
    P(MerchantAccount) m = PAYWIRE__FINANCE__V1__MERCHANT_ACCOUNT__INIT;
    m.kind = (P(AccountKind))K_PENDING;
    m.merchant_id = mer;
    m.currency = "USD";
    ref.ref_case = C(ACCOUNT_REF__REF_MERCHANT);
    ref.merchant = &m;
    none.account = &ref;
    none.mode = (Paywire__Common__V1__Mode)LIVE;
    reply r =
        call("GetAccount", &none.base, &paywire__finance__v1__get_account_response__descriptor);
    expect(&r, PW_NOT_FOUND, NULL, NULL);
    /* Its entries, one per page: a credit of 10 000 then a debit of 320, balance after each. */
    P(ListAccountEntriesRequest) lr = PAYWIRE__FINANCE__V1__LIST_ACCOUNT_ENTRIES_REQUEST__INIT;
    lr.account = &ref;
    lr.mode = (Paywire__Common__V1__Mode)TEST;
    lr.page_size = 1;
    int64_t amounts[2] = {0}, afters[2] = {0};
    char token[256] = "";
    for (int page = 0; page < 3; page++) {
        lr.page_token = token;
        r = call("ListAccountEntries", &lr.base,
                 &paywire__finance__v1__list_account_entries_response__descriptor);
        assert_int_equal(r.code, PW_OK);
        P(ListAccountEntriesResponse) *resp = (void *)r.msg;
        if (page < 2) {
            assert_int_equal(resp->n_entries, 1);
            amounts[page] = resp->entries[0]->amount->amount_minor;
            afters[page] = resp->entries[0]->balance_after->amount_minor;
            assert_string_equal(resp->entries[0]->transfer_id, id);
        } else {
            assert_int_equal(resp->n_entries, 0);
        }
        snprintf(token, sizeof(token), "%s", resp->next_page_token);
        reply_free(&r);
        if (token[0] == '\0') {
            break;
        }
    }
    /* Both entries applied in one transfer: balance_after is the transfer's result. */
    assert_int_equal(amounts[0] + amounts[1], 10320);
    assert_int_equal(afters[1], 9680);
    assert_int_equal(token[0], '\0');
    lr.page_token = "zz";
    r = call("ListAccountEntries", &lr.base,
             &paywire__finance__v1__list_account_entries_response__descriptor);
    expect(&r, PW_INVALID_ARGUMENT, "page_token", NULL);
    /* GetTransfer: the entries in order, by account id; LIVE does not know it. */
    P(GetTransferRequest) gt = PAYWIRE__FINANCE__V1__GET_TRANSFER_REQUEST__INIT;
    gt.transfer_id = id;
    gt.mode = (Paywire__Common__V1__Mode)TEST;
    r = call("GetTransfer", &gt.base, &paywire__finance__v1__get_transfer_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(Transfer) *t = ((P(GetTransferResponse) *)r.msg)->transfer;
    assert_int_equal(t->n_entries, 4);
    assert_int_equal(t->entries[3]->amount->amount_minor, 320);
    assert_string_equal(t->kind, "capture");
    reply_free(&r);
    gt.mode = (Paywire__Common__V1__Mode)LIVE;
    r = call("GetTransfer", &gt.base, &paywire__finance__v1__get_transfer_response__descriptor);
    expect(&r, PW_NOT_FOUND, NULL, NULL);
    check_ledger();
}

/* ---- two-phase ---- */

static void test_ledger_two_phase_post_and_void(void **state)
{
    (void)state;
    char mer[40], fund[96], ref1[96], ref2[96];
    new_merchant(mer, sizeof(mer));
    new_id(fund, sizeof(fund), "adjust");
    leg funding[] = {{K_CASH, "bank_a", "EUR", 5000, 0, NULL},
                     {K_AVAILABLE, mer, "EUR", 5000, 1, NULL}};
    create_ok(fund, TEST, 0, NONE, funding, 2);
    leg refund[] = {{K_AVAILABLE, mer, "EUR", 1200, 0, NULL},
                    {K_RECEIVABLE, "acq_a", "EUR", 1200, 1, NULL}};
    new_id(ref1, sizeof(ref1), "refund");
    assert_int_equal(create_ok(ref1, TEST, 1, FUNDS, refund, 2),
                     C(TRANSFER_STATE__TRANSFER_STATE_PENDING));
    int64_t pend = 0;
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "EUR", &pend), 5000);
    assert_int_equal(pend, 1200);
    /* The post carries the partner's reference of the refund (known only now). */
    reply r = resolve_ref("PostTransfer", ref1, TEST, "acq-refund-77");
    assert_int_equal(r.code, PW_OK);
    P(Transfer) *t = ((P(PostTransferResponse) *)r.msg)->transfer;
    assert_string_equal(t->partner_reference, "acq-refund-77");
    assert_int_equal(t->state, C(TRANSFER_STATE__TRANSFER_STATE_POSTED));
    int64_t posted_at = t->post_time->seconds * 1000000000 + t->post_time->nanos;
    reply_free(&r);
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "EUR", &pend), 3800);
    assert_int_equal(pend, 0);
    /* Posting again returns the first result, with its time. */
    r = resolve("PostTransfer", ref1, TEST);
    assert_int_equal(r.code, PW_OK);
    t = ((P(PostTransferResponse) *)r.msg)->transfer;
    assert_int_equal(t->post_time->seconds * 1000000000 + t->post_time->nanos, posted_at);
    reply_free(&r);
    r = resolve_ref("PostTransfer", ref1, TEST, "acq-refund-77");
    assert_int_equal(r.code, PW_OK);
    reply_free(&r);
    r = resolve_ref("PostTransfer", ref1, TEST, "acq-refund-78");
    expect(&r, PW_FAILED_PRECONDITION, "partner_reference", "TRANSFER_ID_REUSED");
    /* The create retried without a reference is still the same create. */
    create_ok(ref1, TEST, 1, FUNDS, refund, 2);
    r = resolve("VoidTransfer", ref1, TEST);
    expect(&r, PW_FAILED_PRECONDITION, NULL, "TRANSFER_POSTED");
    r = resolve("PostTransfer", ref1, LIVE);
    expect(&r, PW_NOT_FOUND, NULL, NULL);
    /* A second reservation, voided: the funds come back; posting it now is refused. */
    new_id(ref2, sizeof(ref2), "refund");
    create_ok(ref2, TEST, 1, FUNDS, refund, 2);
    r = resolve("VoidTransfer", ref2, TEST);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(VoidTransferResponse) *)r.msg)->transfer->state,
                     C(TRANSFER_STATE__TRANSFER_STATE_VOIDED));
    reply_free(&r);
    r = resolve("VoidTransfer", ref2, TEST);
    assert_int_equal(r.code, PW_OK);
    reply_free(&r);
    r = resolve("PostTransfer", ref2, TEST);
    expect(&r, PW_FAILED_PRECONDITION, NULL, "TRANSFER_VOIDED");
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "EUR", &pend), 3800);
    assert_int_equal(pend, 0);
    /* One-phase transfers are neither posted nor voided; unknown ids are NOT_FOUND. */
    r = resolve("PostTransfer", fund, TEST);
    expect(&r, PW_FAILED_PRECONDITION, NULL, "TRANSFER_NOT_TWO_PHASE");
    r = resolve("VoidTransfer", "txf_refund_nothing_here", TEST);
    expect(&r, PW_NOT_FOUND, NULL, NULL);
    r = resolve("VoidTransfer", "not-a-transfer", TEST);
    expect(&r, PW_INVALID_ARGUMENT, "transfer_id", NULL);
    r = resolve("VoidTransfer", ref2, 0);
    expect(&r, PW_INVALID_ARGUMENT, "mode", NULL);
    check_ledger();
}

/* ---- replays ---- */

static void test_ledger_transfer_id_replay(void **state)
{
    (void)state;
    char mer[40], id[96];
    new_merchant(mer, sizeof(mer));
    new_id(id, sizeof(id), "capture");
    leg legs[] = {{K_RECEIVABLE, "acq_b", "JPY", 700, 0, NULL},
                  {K_PENDING, mer, "JPY", 700, 1, NULL}};
    create_ok(id, TEST, 0, NONE, legs, 2);
    create_ok(id, TEST, 0, NONE, legs, 2);
    assert_int_equal(balance(TEST, K_PENDING, mer, "JPY", NULL), 700);
    legs[0].amount = legs[1].amount = 701;
    reply r = create(id, TEST, 0, NONE, legs, 2);
    expect(&r, PW_FAILED_PRECONDITION, "transfer.entries[0].amount", "TRANSFER_ID_REUSED");
    legs[0].amount = legs[1].amount = 700;
    r = create(id, TEST, 0, AVAILABLE, legs, 2);
    expect(&r, PW_FAILED_PRECONDITION, "balance_check", "TRANSFER_ID_REUSED");
    leg other[] = {{K_RECEIVABLE, "acq_c", "JPY", 700, 0, NULL},
                   {K_PENDING, mer, "JPY", 700, 1, NULL}};
    r = create(id, TEST, 0, NONE, other, 2);
    expect(&r, PW_FAILED_PRECONDITION, "transfer.entries[0].account", "TRANSFER_ID_REUSED");
    /* The same id in LIVE is another transfer. */
    create_ok(id, LIVE, 0, NONE, legs, 2);
    assert_int_equal(balance(TEST, K_PENDING, mer, "JPY", NULL), 700);
    assert_int_equal(balance(LIVE, K_PENDING, mer, "JPY", NULL), 700);
    check_ledger();
}

/* ---- bad input ---- */

static void test_ledger_bad_input_names_fields(void **state)
{
    (void)state;
    char mer[40], id[96];
    new_merchant(mer, sizeof(mer));
    new_id(id, sizeof(id), "adjust");
    long long before = pw_test_db_scalar(db_url, "SELECT count(*) FROM entries");
    leg unbalanced[] = {{K_CASH, "bank_a", "USD", 100, 0, NULL},
                        {K_AVAILABLE, mer, "USD", 99, 1, NULL}};
    reply r = create(id, TEST, 0, NONE, unbalanced, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries", NULL);
    leg currencies[] = {{K_CASH, "bank_a", "USD", 100, 0, NULL},
                        {K_AVAILABLE, mer, "EUR", 100, 1, NULL}};
    r = create(id, TEST, 0, NONE, currencies, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries", NULL);
    leg zero[] = {{K_CASH, "bank_a", "USD", 0, 0, NULL}, {K_AVAILABLE, mer, "USD", 0, 1, NULL}};
    r = create(id, TEST, 0, NONE, zero, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[0].amount", NULL);
    leg negative[] = {{K_CASH, "bank_a", "USD", 5, 0, NULL},
                      {K_AVAILABLE, mer, "USD", -5, 1, NULL}};
    r = create(id, TEST, 0, NONE, negative, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[1].amount", NULL);
    leg unknown_kind[] = {{99, NULL, "USD", 5, 0, NULL}, {K_AVAILABLE, mer, "USD", 5, 1, NULL}};
    r = create(id, TEST, 0, NONE, unknown_kind, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[0].account.platform.kind", NULL);
    leg no_partner[] = {{K_RECEIVABLE, NULL, "USD", 5, 0, NULL},
                        {K_AVAILABLE, mer, "USD", 5, 1, NULL}};
    r = create(id, TEST, 0, NONE, no_partner, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[0].account.platform.counterparty", NULL);
    leg ok[] = {{K_CASH, "bank_a", "USD", 5, 0, NULL}, {K_AVAILABLE, mer, "USD", 5, 1, NULL}};
    r = create(id, 0, 0, NONE, ok, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.mode", NULL);
    r = create(id, TEST, 0, 0, ok, 2);
    expect(&r, PW_INVALID_ARGUMENT, "balance_check", NULL);
    r = create("txf_Bad_kind", TEST, 0, NONE, ok, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.id", NULL);
    r = create(id, TEST, 0, NONE, ok, 1);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries", NULL);
    /* Pending money is never payable: a pending transfer may not credit a merchant. */
    r = create(id, TEST, 1, NONE, ok, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[1].side", NULL);
    /* Accounts named by id: unknown, and of the other mode. */
    leg by_id[] = {{K_CASH, "bank_a", "USD", 5, 0, NULL},
                   {0, NULL, "USD", 5, 1, "acc_00000000000000000000000000"}};
    r = create(id, TEST, 0, NONE, by_id, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[1].account.account_id", NULL);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM entries"), before);
    char live_acc[64], sql[256];
    create_ok(id, LIVE, 0, NONE, ok, 2);
    snprintf(sql, sizeof(sql), "SELECT id FROM accounts WHERE mode = 'LIVE' AND owner = '%s'", mer);
    PGconn *c = PQconnectdb(db_url);
    PGresult *res = PQexec(c, sql);
    snprintf(live_acc, sizeof(live_acc), "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    PQfinish(c);
    by_id[1].account_id = live_acc;
    r = create(id, TEST, 0, NONE, by_id, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[1].account.account_id", NULL);
    /* A currency that is not the account's. */
    by_id[0].currency = by_id[1].currency = "EUR";
    r = create(id, LIVE, 0, NONE, by_id, 2);
    expect(&r, PW_INVALID_ARGUMENT, "transfer.entries[1].amount.currency", NULL);
    check_ledger();
}

/* ---- races ---- */

typedef struct outcome {
    int done;
    pw_status code;
    char reason[48];
    char message[200];
    int state;
    int64_t time_ns;
} outcome;

static void unary_done(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                       void *ud)
{
    (void)typed;
    outcome *o = ud;
    o->code = res->code;
    snprintf(o->message, sizeof(o->message), "%s", res->message);
    pw_error_details d;
    memset(&d, 0, sizeof(d));
    if (res->trailing_metadata != NULL &&
        pw_error_details_read(res->trailing_metadata, &d) == PW_OK) {
        snprintf(o->reason, sizeof(o->reason), "%s", d.reason ? d.reason : "");
    }
    pw_error_details_clear(&d);
    if (resp != NULL) {
        /* Every ledger write answers a message whose field 1 is the transfer. */
        const P(Transfer) *t = ((const P(CreateTransferResponse) *)resp)->transfer;
        o->state = t ? (int)t->state : 0;
        const Google__Protobuf__Timestamp *ts = t && t->post_time ? t->post_time
                                                : t               ? t->void_time
                                                                  : NULL;
        o->time_ns = ts ? ts->seconds * 1000000000 + ts->nanos : 0;
    }
    o->done = 1;
}

#define CONNS 8
static pw_channel *conns[CONNS];

static void open_conns(void)
{
    for (int i = 0; i < CONNS; i++) {
        conns[i] = svc_process_channel(&proc, &loop);
    }
}

static void close_conns(void)
{
    for (int i = 0; i < CONNS; i++) {
        int done = 0;
        if (conns[i] != NULL) {
            pw_channel_close(conns[i], closed_flag, &done);
            pw_test_run_until(&loop, &done, 5000);
            conns[i] = NULL;
        }
    }
}

static void start_call(int i, const char *method, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *type, outcome *o)
{
    char path[128];
    snprintf(path, sizeof(path), LEDGER "%s", method);
    pw_call_options opt = {.timeout_ms = 30000, .wait_for_ready = 1};
    memset(o, 0, sizeof(*o));
    assert_int_equal(pw_client_unary(conns[i % CONNS], path, &opt, req, type, unary_done, NULL, o),
                     PW_OK);
}

static void wait_all(outcome *o, int n)
{
    for (int i = 0; i < n; i++) {
        pw_test_run_until(&loop, &o[i].done, 30000);
        assert_true(o[i].done);
    }
}

/* 50 concurrent debits of 1 000 from 5 000: exactly 5 apply, one-phase and two-phase. */
static void race_debits(int pending)
{
    enum { N = 50 };
    char mer[40], fund[96];
    new_merchant(mer, sizeof(mer));
    new_id(fund, sizeof(fund), "adjust");
    leg funding[] = {{K_CASH, "bank_a", "USD", 5000, 0, NULL},
                     {K_AVAILABLE, mer, "USD", 5000, 1, NULL}};
    create_ok(fund, TEST, 0, NONE, funding, 2);
    static xfer_msg x[N];
    static outcome o[N];
    leg debit[] = {
        {K_AVAILABLE, mer, "USD", 1000, 0, NULL},
        {pending ? K_RECEIVABLE : K_CLEARING, pending ? "acq_a" : NULL, "USD", 1000, 1, NULL}};
    for (int i = 0; i < N; i++) {
        char id[96];
        new_id(id, sizeof(id), pending ? "refund" : "payout");
        xfer_build(&x[i], id, TEST, pending, pending ? FUNDS : AVAILABLE, debit, 2);
    }
    for (int i = 0; i < N; i++) {
        start_call(i, "CreateTransfer", &x[i].req.base,
                   &paywire__finance__v1__create_transfer_response__descriptor, &o[i]);
    }
    wait_all(o, N);
    int ok = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        ok += o[i].code == PW_OK;
        refused +=
            o[i].code == PW_FAILED_PRECONDITION && strcmp(o[i].reason, "INSUFFICIENT_FUNDS") == 0;
    }
    assert_int_equal(ok, 5);
    assert_int_equal(refused, N - 5);
    int64_t pend = 0;
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "USD", &pend), pending ? 5000 : 0);
    assert_int_equal(pend, pending ? 5000 : 0);
    check_ledger();
}

static void test_ledger_race_50_debits_of_1000_from_5000(void **state)
{
    (void)state;
    open_conns();
    race_debits(0);
    race_debits(1);
    close_conns();
}

/* Two posts, or a post and a void, of one pending transfer at once: one state change. */
static void test_ledger_race_post_against_void(void **state)
{
    (void)state;
    open_conns();
    char mer[40], fund[96];
    new_merchant(mer, sizeof(mer));
    new_id(fund, sizeof(fund), "adjust");
    leg funding[] = {{K_CASH, "bank_a", "GBP", 100000, 0, NULL},
                     {K_AVAILABLE, mer, "GBP", 100000, 1, NULL}};
    create_ok(fund, TEST, 0, NONE, funding, 2);
    leg refund[] = {{K_AVAILABLE, mer, "GBP", 100, 0, NULL},
                    {K_RECEIVABLE, "acq_a", "GBP", 100, 1, NULL}};
    int posts_won = 0, voids_won = 0;
    for (int round = 0; round < 20; round++) {
        char id[96];
        new_id(id, sizeof(id), "refund");
        create_ok(id, TEST, 1, FUNDS, refund, 2);
        outcome o[3];
        resolve_msg req[3];
        /* Odd rounds: post, post, void; even: void, post, post; each on its own connection. */
        const char *m[3] = {round % 2 ? "PostTransfer" : "VoidTransfer", "PostTransfer",
                            round % 2 ? "VoidTransfer" : "PostTransfer"};
        for (int i = 0; i < 3; i++) {
            start_call(round * 3 + i, m[i], resolve_req(&req[i], m[i], id, TEST),
                       &paywire__finance__v1__post_transfer_response__descriptor, &o[i]);
        }
        wait_all(o, 3);
        int posted = 0, voided = 0, refused = 0;
        int64_t post_time = 0;
        for (int i = 0; i < 3; i++) {
            int is_post = strcmp(m[i], "PostTransfer") == 0;
            if (o[i].code == PW_OK) {
                posted += is_post;
                voided += !is_post;
                if (is_post) {
                    assert_true(post_time == 0 || post_time == o[i].time_ns);
                    post_time = o[i].time_ns;
                }
            } else {
                assert_int_equal(o[i].code, PW_FAILED_PRECONDITION);
                refused++;
            }
        }
        /* Either both posts answer the one post (same time) and the void is refused, or the
         * void won and both posts are refused. */
        assert_true((posted == 2 && voided == 0 && refused == 1) ||
                    (posted == 0 && voided == 1 && refused == 2));
        posts_won += posted > 0;
        voids_won += voided > 0;
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM entries WHERE transfer_id = '%s' AND phase IN ('POST',"
                 " 'VOID')",
                 id);
        assert_int_equal(pw_test_db_scalar(db_url, sql), 2);
    }
    print_message("post/void races: posts won %d, voids won %d\n", posts_won, voids_won);
    int64_t pend = 0;
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "GBP", &pend), 100000 - 100 * posts_won);
    assert_int_equal(pend, 0);
    check_ledger();
    close_conns();
}

/* 100 concurrent transfers credit one hot account: its balance is the exact sum. */
static void test_ledger_race_100_into_hot_account(void **state)
{
    (void)state;
    open_conns();
    enum { N = 100 };
    int64_t before = 0;
    /* The revenue account may not exist yet (NOT_FOUND): then 0. */
    if (pw_test_db_scalar(db_url, "SELECT count(*) FROM accounts WHERE mode = 'TEST' AND kind ="
                                  " 'platform_revenue' AND currency = 'CHF'") == 1) {
        before = balance(TEST, K_REVENUE, NULL, "CHF", NULL);
    }
    static xfer_msg x[N];
    static outcome o[N];
    int64_t sum = 0;
    for (int i = 0; i < N; i++) {
        char mer[40], id[96];
        new_merchant(mer, sizeof(mer));
        new_id(id, sizeof(id), "capture");
        leg fee[] = {{K_PENDING, mer, "CHF", i + 1, 0, NULL},
                     {K_REVENUE, NULL, "CHF", i + 1, 1, NULL}};
        sum += i + 1;
        xfer_build(&x[i], id, TEST, 0, NONE, fee, 2);
        /* The builder keeps pointers to owner strings: keep each merchant id alive. */
        static char owners[N][40];
        snprintf(owners[i], sizeof(owners[i]), "%s", mer);
        x[i].m[0].merchant_id = owners[i];
    }
    for (int i = 0; i < N; i++) {
        start_call(i, "CreateTransfer", &x[i].req.base,
                   &paywire__finance__v1__create_transfer_response__descriptor, &o[i]);
    }
    wait_all(o, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].code, PW_OK);
    }
    assert_int_equal(balance(TEST, K_REVENUE, NULL, "CHF", NULL), before + sum);
    /* Batching: rows written by one transaction share their xmin; 100 transfers arriving at
     * once take far fewer than 100 transactions. */
    long long txs = pw_test_db_scalar(
        db_url, "SELECT count(DISTINCT t.xmin::text) FROM transfers t WHERE t.mode = 'TEST' AND"
                " EXISTS (SELECT 1 FROM entries e WHERE e.mode = t.mode AND e.transfer_id = t.id"
                " AND e.currency = 'CHF')");
    print_message("100 concurrent transfers into one account: %lld transactions\n", txs);
    assert_true(txs < N / 2);
    check_ledger();
    close_conns();
}

/* ---- the seeded property test ---- */

enum { PM = 4, PC = 3, WAVES = 50, WAVE = 48, MAX_MADE = WAVES * WAVE };
static const char *const prop_cur[PC] = {"JPY", "USD", "USDC"}; /* exponents 0, 2, 6 */
static char prop_mer[PM][40];

/* A transfer the test created, as it sent it: replayed and reused later. */
typedef struct made {
    char id[96];
    leg legs[4];
    size_t n;
    int pending, check;
    /* 1 pending, 2 posted, 3 voided (as the test saw it). */
    int state;
} made;

static made prop_made[MAX_MADE];
static int prop_n;

/* The model: counters of every merchant account and of the partner's receivable. */
typedef struct model_acct {
    int64_t pd, pc, qd, qc;
} model_acct;
static model_acct model[PM + 1][PC][2];

static model_acct *model_of(const leg *l)
{
    int c = 0, m = PM;
    while (strcmp(prop_cur[c], l->currency) != 0) {
        c++;
    }
    for (int i = 0; i < PM; i++) {
        if (l->owner && strcmp(l->owner, prop_mer[i]) == 0) {
            m = i;
        }
    }
    return &model[m][c][m == PM ? 0 : l->kind == K_AVAILABLE];
}

/* Applies a transfer's legs to the model: phase 0 create, 1 post, 2 void. */
static void model_apply(const made *t, int phase)
{
    for (size_t i = 0; i < t->n; i++) {
        const leg *l = &t->legs[i];
        if (l->kind != K_PENDING && l->kind != K_AVAILABLE && l->kind != K_RECEIVABLE) {
            continue; /* shared platform accounts: covered by check_ledger */
        }
        model_acct *a = model_of(l);
        int64_t *posted = l->credit ? &a->pc : &a->pd, *pend = l->credit ? &a->qc : &a->qd;
        if (phase == 0) {
            *(t->pending ? pend : posted) += l->amount;
        } else {
            *pend -= l->amount;
            *posted += phase == 1 ? l->amount : 0;
        }
    }
}

static unsigned long long rng;

static uint32_t next_rand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

/* One random transfer into m (not sent). */
static void random_transfer(made *m)
{
    memset(m, 0, sizeof(*m));
    int ci = (int)(next_rand() % PC);
    const char *mer = prop_mer[next_rand() % PM], *cur = prop_cur[ci];
    int64_t x = 1 + next_rand() % 5000;
    int what = (int)(next_rand() % 5);
    new_id(m->id, sizeof(m->id), what == 3 ? "refund" : what == 4 ? "fx" : "adjust");
    leg capture[] = {{K_RECEIVABLE, "prop_acq", cur, x, 0, NULL},
                     {K_PENDING, mer, cur, x, 1, NULL}};
    leg avail[] = {{K_PENDING, mer, cur, x, 0, NULL}, {K_AVAILABLE, mer, cur, x, 1, NULL}};
    leg payout[] = {{K_AVAILABLE, mer, cur, x, 0, NULL}, {K_CLEARING, NULL, cur, x, 1, NULL}};
    const char *to = prop_cur[(ci + 1 + (int)(next_rand() % (PC - 1))) % PC];
    int64_t y = 1 + next_rand() % 5000;
    leg fx[] = {{K_AVAILABLE, mer, cur, x, 0, NULL},
                {8, NULL, cur, x, 1, NULL},
                {8, NULL, to, y, 0, NULL},
                {K_AVAILABLE, mer, to, y, 1, NULL}};
    const leg *src[] = {capture, avail, payout, payout, fx};
    /* Every merchant debit is checked against the merchant's funds, so pending + available
     * never goes below zero (AVAILABLE alone allows it: the race test covers that check). */
    static const int checks[] = {NONE, FUNDS, FUNDS, FUNDS, FUNDS};
    m->n = what == 4 ? 4 : 2;
    memcpy(m->legs, src[what], m->n * sizeof(leg));
    if (what == 3) {
        m->legs[1] = (leg){K_RECEIVABLE, "prop_acq", cur, x, 1, NULL};
    }
    m->pending = what == 3;
    m->check = checks[what];
}

typedef struct prop_op {
    /* 0 create, 1 retry, 2 reused id, 3 post, 4 void, 5 unbalanced. */
    int kind;
    made t;
    int target;
    xfer_msg x;
    resolve_msg rm;
    outcome o;
} prop_op;

static void prop_wave(prop_op *ops)
{
    for (int i = 0; i < WAVE; i++) {
        prop_op *op = &ops[i];
        int dice = (int)(next_rand() % 20);
        op->kind = dice < 11   ? 0
                   : dice < 13 ? 1
                   : dice < 14 ? 2
                   : dice < 16 ? 3
                   : dice < 18 ? 4
                               : 5;
        if (op->kind >= 1 && op->kind <= 4 && prop_n == 0) {
            op->kind = 0;
        }
        if (op->kind == 3 || op->kind == 4) {
            op->target = (int)(next_rand() % (unsigned)prop_n);
            const char *m = op->kind == 3 ? "PostTransfer" : "VoidTransfer";
            start_call(i, m, resolve_req(&op->rm, m, prop_made[op->target].id, LIVE),
                       &paywire__finance__v1__post_transfer_response__descriptor, &op->o);
            continue;
        }
        if (op->kind == 1 || op->kind == 2) {
            op->target = (int)(next_rand() % (unsigned)prop_n);
            op->t = prop_made[op->target];
            if (op->kind == 2) {
                op->t.legs[0].amount++;
                op->t.legs[1].amount++;
            }
        } else {
            random_transfer(&op->t);
            if (op->kind == 5) {
                op->t.legs[0].amount++;
            }
        }
        xfer_build(&op->x, op->t.id, LIVE, op->t.pending, op->t.check, op->t.legs, op->t.n);
        start_call(i, "CreateTransfer", &op->x.req.base,
                   &paywire__finance__v1__create_transfer_response__descriptor, &op->o);
    }
    for (int i = 0; i < WAVE; i++) {
        pw_test_run_until(&loop, &ops[i].o.done, 30000);
        assert_true(ops[i].o.done);
    }
}

/* Each outcome against the rules, and the model moved by what applied. */
static void prop_check_wave(prop_op *ops)
{
    int posted[WAVE] = {0}, voided[WAVE] = {0};
    for (int i = 0; i < WAVE; i++) {
        prop_op *op = &ops[i];
        pw_status code = op->o.code;
        switch (op->kind) {
        case 0:
            assert_true(code == PW_OK || (code == PW_FAILED_PRECONDITION &&
                                          strcmp(op->o.reason, "INSUFFICIENT_FUNDS") == 0));
            if (code == PW_OK) {
                op->t.state = op->t.pending ? 1 : 2;
                prop_made[prop_n++] = op->t;
                model_apply(&op->t, 0);
            }
            break;
        case 1: /* the first result: applied, in the state it has moved to since */
            if (code != PW_OK) {
                fail_msg("retry of %s: %s %s", op->t.id, pw_status_str(code), op->o.message);
            }
            break;
        case 2:
            assert_int_equal(code, PW_FAILED_PRECONDITION);
            assert_string_equal(op->o.reason, "TRANSFER_ID_REUSED");
            break;
        case 5:
            assert_int_equal(code, PW_INVALID_ARGUMENT);
            break;
        default: {
            made *t = &prop_made[op->target];
            int post = op->kind == 3;
            if (!t->pending) {
                assert_int_equal(code, PW_FAILED_PRECONDITION);
                assert_string_equal(op->o.reason, "TRANSFER_NOT_TWO_PHASE");
            } else if (code == PW_OK) {
                assert_int_equal(op->o.state, post ? 2 : 3);
                (post ? posted : voided)[i] = 1;
            } else {
                assert_int_equal(code, PW_FAILED_PRECONDITION);
            }
        }
        }
    }
    /* Posts and voids that answered OK: one state per transfer, moved once. */
    for (int i = 0; i < WAVE; i++) {
        if (!posted[i] && !voided[i]) {
            continue;
        }
        made *t = &prop_made[ops[i].target];
        int to = posted[i] ? 2 : 3;
        assert_true(t->state == 1 || t->state == to);
        if (t->state == 1) {
            t->state = to;
            model_apply(t, to == 2 ? 1 : 2);
        }
    }
}

/* Every modelled account's stored counters equal the model's; no merchant below zero. */
static void prop_check_model(void)
{
    PGconn *conn = PQconnectdb(db_url);
    for (int m = 0; m <= PM; m++) {
        for (int c = 0; c < PC; c++) {
            for (int k = 0; k < (m == PM ? 1 : 2); k++) {
                char sql[400];
                snprintf(sql, sizeof(sql),
                         "SELECT posted_debits, posted_credits, pending_debits, pending_credits"
                         " FROM accounts WHERE mode = 'LIVE' AND kind = '%s' AND owner = '%s'"
                         " AND currency = '%s'",
                         m == PM ? "partner_receivable"
                         : k     ? "merchant_available"
                                 : "merchant_pending",
                         m == PM ? "prop_acq" : prop_mer[m], prop_cur[c]);
                PGresult *res = PQexec(conn, sql);
                int64_t v[4] = {0};
                for (int f = 0; f < 4 && PQntuples(res) == 1; f++) {
                    v[f] = strtoll(PQgetvalue(res, 0, f), NULL, 10);
                }
                PQclear(res);
                const model_acct *a = &model[m][c][k];
                if (v[0] != a->pd || v[1] != a->pc || v[2] != a->qd || v[3] != a->qc) {
                    PQfinish(conn);
                    fail_msg(
                        "account %d/%s/%d: stored %lld %lld %lld %lld, model %lld %lld %lld %lld",
                        m, prop_cur[c], k, (long long)v[0], (long long)v[1], (long long)v[2],
                        (long long)v[3], (long long)a->pd, (long long)a->pc, (long long)a->qd,
                        (long long)a->qc);
                }
            }
            if (m < PM) {
                const model_acct *p = &model[m][c][0], *v = &model[m][c][1];
                /* Merchant debits always ran a balance check: funds never below zero. */
                assert_true(p->pc - p->pd - p->qd + v->pc - v->pd - v->qd >= 0);
            }
        }
    }
    PQfinish(conn);
}

static void test_ledger_seeded_property(void **state)
{
    (void)state;
    const char *env = getenv("PW_TEST_SEED");
    unsigned long long seed = env ? strtoull(env, NULL, 10) : (unsigned long long)time(NULL);
    print_message("test_ledger_seeded_property: PW_TEST_SEED=%llu\n", seed);
    rng = seed;
    for (int i = 0; i < PM; i++) {
        snprintf(prop_mer[i], sizeof(prop_mer[i]), "mer_9%025llu",
                 (seed % 1000000) * 10 + (unsigned)i);
    }
    memset(model, 0, sizeof(model));
    prop_n = 0;
    open_conns();
    static prop_op ops[WAVE];
    for (int w = 0; w < WAVES; w++) {
        memset(ops, 0, sizeof(ops));
        prop_wave(ops);
        prop_check_wave(ops);
        prop_check_model();
        check_ledger();
    }
    print_message("test_ledger_seeded_property: %d operations, %d transfers applied (seed %llu)\n",
                  WAVES * WAVE, prop_n, seed);
    close_conns();
}

/* ---- ExportEntries ---- */

/* Streams LIVE entries after `after`; returns how many came, checking order and chunk sizes;
 * *last gets the last sequence, and the reader pauses `pause_ms` after each chunk. */
static long long export_live(int64_t after, int64_t *last, int pause_ms, int *chunks)
{
    P(ExportEntriesRequest) req = PAYWIRE__FINANCE__V1__EXPORT_ENTRIES_REQUEST__INIT;
    req.mode = (Paywire__Common__V1__Mode)LIVE;
    req.after_sequence = after;
    pw_call_options o = {.timeout_ms = 60000};
    pw_stream *s = NULL;
    assert_int_equal(
        paywire_finance_v1_ledger_service_export_entries_start_blocking(ch, &req, &o, &s), PW_OK);
    long long n = 0;
    int64_t prev = after;
    *chunks = 0;
    for (;;) {
        P(ExportEntriesResponse) *m = NULL;
        assert_int_equal(paywire_finance_v1_ledger_service_export_entries_stream_recv(s, &m),
                         PW_OK);
        if (m == NULL) {
            break;
        }
        assert_true(m->n_entries >= 1 && m->n_entries <= 1000);
        for (size_t i = 0; i < m->n_entries; i++) {
            assert_true(m->entries[i]->sequence > prev);
            assert_int_equal(m->entries[i]->mode, LIVE);
            prev = m->entries[i]->sequence;
        }
        n += (long long)m->n_entries;
        (*chunks)++;
        pw_protobuf_free(&m->base);
        if (pause_ms > 0) {
            uv_sleep((unsigned)pause_ms);
        }
    }
    const char *msg = NULL;
    assert_int_equal(pw_stream_finish(s, &msg, NULL), PW_OK);
    pw_stream_free(s);
    *last = prev;
    return n;
}

static void test_ledger_export_entries_in_order_resumable(void **state)
{
    (void)state;
    /* The property test left thousands of LIVE entries. */
    long long want = pw_test_db_scalar(db_url, "SELECT count(*) FROM entries WHERE mode = 'LIVE'");
    assert_true(want > 1000);
    int64_t last = 0;
    int chunks = 0;
    assert_int_equal(export_live(0, &last, 0, &chunks), want);
    assert_int_equal(chunks, (int)((want + 999) / 1000));
    /* Resumed after the 1500th: the rest, exactly; a slow reader gets every chunk too. */
    char sql[160];
    snprintf(
        sql, sizeof(sql),
        "SELECT sequence FROM entries WHERE mode = 'LIVE' ORDER BY sequence OFFSET 1499 LIMIT 1");
    long long mid = pw_test_db_scalar(db_url, sql);
    assert_int_equal(export_live(mid, &last, 50, &chunks), want - 1500);
    assert_int_equal(export_live(last, &last, 0, &chunks), 0);
    assert_int_equal(chunks, 0);
    P(ExportEntriesRequest) bad = PAYWIRE__FINANCE__V1__EXPORT_ENTRIES_REQUEST__INIT;
    pw_call_options o = {.timeout_ms = 5000};
    pw_stream *s = NULL;
    assert_int_equal(
        paywire_finance_v1_ledger_service_export_entries_start_blocking(ch, &bad, &o, &s), PW_OK);
    P(ExportEntriesResponse) *m = NULL;
    paywire_finance_v1_ledger_service_export_entries_stream_recv(s, &m);
    assert_null(m);
    const char *msg = NULL;
    assert_int_equal(pw_stream_finish(s, &msg, NULL), PW_INVALID_ARGUMENT);
    pw_stream_free(s);
}

/* Commits the transaction left open on a connection, a while after the export started. */
static void commit_later(void *arg)
{
    uv_sleep(300);
    PQclear(PQexec(arg, "COMMIT"));
}

/* Sequences are drawn at insert and visible at commit: a transaction holding a lower sequence
 * open while a higher one commits must not be skipped. The export waits for it (its horizon), so
 * what it returns, resumed after any sequence, misses nothing committed later. */
static void test_ledger_export_waits_for_lower_sequences(void **state)
{
    (void)state;
    PGconn *held = PQconnectdb(db_url);
    assert_int_equal(PQstatus(held), CONNECTION_OK);
    PGresult *res = PQexec(
        held,
        "BEGIN; INSERT INTO accounts (id, mode, kind, owner, currency, normal_balance,"
        " posted_debits, posted_credits, version) VALUES ('acc_0000000000000000000000000E',"
        " 'LIVE', 'platform_cash', 'bank_held', 'USD', 'DEBIT', 7, 0, 1),"
        " ('acc_0000000000000000000000000F', 'LIVE', 'merchant_available', 'mer_held', 'USD',"
        " 'CREDIT', 0, 7, 1); INSERT INTO transfers (mode, id, kind, state, two_phase,"
        " balance_check, create_time, post_time) VALUES ('LIVE', 'txf_adjust_held1', 'adjust',"
        " 'POSTED', false, 'NONE', now(), now()); INSERT INTO entries (mode, transfer_id,"
        " account_id, side, amount_minor, currency, phase, balance_after_minor, time) VALUES"
        " ('LIVE', 'txf_adjust_held1', 'acc_0000000000000000000000000E', 'DEBIT', 7, 'USD',"
        " 'POSTED', 7, now()), ('LIVE', 'txf_adjust_held1', 'acc_0000000000000000000000000F',"
        " 'CREDIT', 7, 'USD', 'POSTED', 7, now()) RETURNING sequence");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int64_t low = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    /* A later transfer commits first: its sequences are above the held ones. */
    char mer[40], id[96];
    new_merchant(mer, sizeof(mer));
    new_id(id, sizeof(id), "adjust");
    leg legs[] = {{K_CASH, "bank_a", "USD", 3, 0, NULL}, {K_AVAILABLE, mer, "USD", 3, 1, NULL}};
    reply r = create(id, LIVE, 0, NONE, legs, 2);
    assert_int_equal(r.code, PW_OK);
    reply_free(&r);
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, commit_later, held), 0);
    int64_t last = 0;
    int chunks = 0;
    long long n = export_live(low - 1, &last, 0, &chunks);
    uv_thread_join(&t);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM entries WHERE mode = 'LIVE' AND sequence >= %lld",
             (long long)low);
    print_message("held sequence %lld: the export returned %lld entries from it on\n",
                  (long long)low, n);
    assert_int_equal(n, pw_test_db_scalar(db_url, sql));
    assert_true(n >= 4);
    PQfinish(held);
}

/* ---- fees ---- */

#define FEES "/paywire.finance.v1.FeeService/"

static reply fee_call(const char *method, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *type)
{
    return call_in(FEES, method, req, type);
}

static P(FeeRule) rule(const char *method, const char *currency, uint32_t bps, int64_t fixed,
                       int64_t min, int64_t max)
{
    P(FeeRule) f = PAYWIRE__FINANCE__V1__FEE_RULE__INIT;
    f.method = (char *)method;
    f.currency = (char *)currency;
    f.basis_points = bps;
    f.fixed_minor = fixed;
    f.min_minor = min;
    f.max_minor = max;
    return f;
}

static reply set_schedule(const char *key, const char *merchant, P(FeeRule) * rules, size_t n,
                          int64_t effective_s)
{
    P(FeeRule) * ptr[8];
    for (size_t i = 0; i < n; i++) {
        ptr[i] = &rules[i];
    }
    Google__Protobuf__Timestamp eff = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    eff.seconds = effective_s;
    P(FeeSchedule) s = PAYWIRE__FINANCE__V1__FEE_SCHEDULE__INIT;
    s.merchant_id = (char *)merchant;
    s.rules = ptr;
    s.n_rules = n;
    s.effective_time = &eff;
    P(SetFeeScheduleRequest) req = PAYWIRE__FINANCE__V1__SET_FEE_SCHEDULE_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.schedule = &s;
    return fee_call("SetFeeSchedule", &req.base,
                    &paywire__finance__v1__set_fee_schedule_response__descriptor);
}

static reply calculate(const char *merchant, const char *method, int64_t amount,
                       const char *currency, int64_t at_s)
{
    Paywire__Common__V1__Money m = PAYWIRE__COMMON__V1__MONEY__INIT;
    m.amount_minor = amount;
    m.currency = (char *)currency;
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    at.seconds = at_s;
    P(CalculateFeeRequest) req = PAYWIRE__FINANCE__V1__CALCULATE_FEE_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    req.method = (char *)method;
    req.amount = &m;
    req.at_time = &at;
    return fee_call("CalculateFee", &req.base,
                    &paywire__finance__v1__calculate_fee_response__descriptor);
}

static int64_t fee_of(const char *merchant, const char *method, int64_t amount,
                      const char *currency, int64_t at_s)
{
    reply r = calculate(merchant, method, amount, currency, at_s);
    if (r.code != PW_OK) {
        char m[512];
        snprintf(m, sizeof(m), "%s", r.message);
        reply_free(&r);
        fail_msg("CalculateFee %s %s %lld %s: %s", merchant, method, (long long)amount, currency,
                 m);
    }
    int64_t fee = ((P(CalculateFeeResponse) *)r.msg)->fee->amount_minor;
    reply_free(&r);
    return fee;
}

static void test_fees_schedules_most_specific_rule(void **state)
{
    (void)state;
    char a[40], b[40];
    new_merchant(a, sizeof(a));
    new_merchant(b, sizeof(b));
    int64_t now = (int64_t)time(NULL), eff = now + 3600 + 2;
    /* Refused: effective in less than the lead time; a currency-less rule with a fixed part. */
    P(FeeRule) one[] = {rule("", "", 290, 0, 0, 0)};
    reply r = set_schedule("fees-early", "", one, 1, now + 60);
    expect(&r, PW_INVALID_ARGUMENT, "schedule.effective_time", NULL);
    P(FeeRule) fixed_any[] = {rule("card", "", 290, 30, 0, 0)};
    r = set_schedule("fees-fixed", "", fixed_any, 1, eff);
    expect(&r, PW_INVALID_ARGUMENT, "schedule.rules[0].fixed_minor", NULL);
    r = set_schedule("", "", one, 1, eff);
    expect(&r, PW_INVALID_ARGUMENT, "idempotency_key", NULL);
    r = calculate(b, "card", 1000, "USD", now + 2 * 3600);
    expect(&r, PW_INVALID_ARGUMENT, "at_time", NULL);
    /* The default, and merchant a's own. */
    P(FeeRule)
    def[] = {rule("", "", 290, 0, 0, 0), rule("card", "USD", 290, 30, 0, 0),
             rule("card", "", 250, 0, 0, 0), rule("", "USD", 200, 0, 10, 0)};
    r = set_schedule("fees-default", "", def, 4, eff);
    assert_int_equal(r.code, PW_OK);
    char id[64];
    snprintf(id, sizeof(id), "%s", ((P(SetFeeScheduleResponse) *)r.msg)->schedule->id);
    reply_free(&r);
    r = set_schedule("fees-default", "", def, 4, eff);
    assert_int_equal(r.code, PW_OK);
    assert_string_equal(((P(SetFeeScheduleResponse) *)r.msg)->schedule->id, id);
    reply_free(&r);
    P(FeeRule) own[] = {rule("card", "EUR", 100, 0, 0, 0)};
    r = set_schedule("fees-a", a, own, 1, eff);
    assert_int_equal(r.code, PW_OK);
    reply_free(&r);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM audit_outbox WHERE action ="
                                               " 'fees.schedule_set'"),
                     2);
    /* Before it takes effect there is none; once the lead time has passed, it applies. */
    r = calculate(b, "card", 1000, "USD", now);
    expect(&r, PW_NOT_FOUND, NULL, NULL);
    while ((int64_t)time(NULL) + 3600 < eff) {
        uv_sleep(200);
    }
    assert_int_equal(fee_of(b, "card", 1000, "USD", eff), 59); /* card + USD: 29 + 30 */
    assert_int_equal(fee_of(b, "card", 1000, "EUR", eff), 25); /* card */
    assert_int_equal(fee_of(b, "bank", 100, "USD", eff), 10);  /* USD: 2, at least 10 */
    assert_int_equal(fee_of(b, "bank", 1000, "JPY", eff), 29); /* any */
    assert_int_equal(fee_of(b, "bank", 150, "JPY", eff), 4);   /* 4.35 → 4 */
    assert_int_equal(fee_of(a, "card", 1000, "EUR", eff), 10); /* a's own schedule */
    r = calculate(a, "card", 1000, "USD", eff);
    expect(&r, PW_FAILED_PRECONDITION, NULL, "NO_FEE_RULE");
    /* amount × bps beyond int64, exact in 128 bits (the overflow cases: finance_money_test). */
    assert_int_equal(fee_of(b, "card", INT64_MAX, "USD", eff), 267477789068788528LL);
}

/* ---- FX ---- */

#define FX "/paywire.finance.v1.FxService/"

static reply quote(const char *key, const char *merchant, const char *from, const char *to,
                   uint32_t lock)
{
    P(CreateQuoteRequest) req = PAYWIRE__FINANCE__V1__CREATE_QUOTE_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.merchant_id = (char *)merchant;
    req.from_currency = (char *)from;
    req.to_currency = (char *)to;
    req.lock_seconds = lock;
    req.mode = (Paywire__Common__V1__Mode)TEST;
    return call_in(FX, "CreateQuote", &req.base,
                   &paywire__finance__v1__create_quote_response__descriptor);
}

static reply convert(const char *key, const char *quote_id, int64_t amount, const char *currency)
{
    Paywire__Common__V1__Money m = PAYWIRE__COMMON__V1__MONEY__INIT;
    m.amount_minor = amount;
    m.currency = (char *)currency;
    P(ConvertRequest) req = PAYWIRE__FINANCE__V1__CONVERT_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.quote_id = (char *)quote_id;
    req.amount = &m;
    req.mode = (Paywire__Common__V1__Mode)TEST;
    return call_in(FX, "Convert", &req.base, &paywire__finance__v1__convert_response__descriptor);
}

static void quote_id(reply *r, char *out, size_t cap)
{
    assert_int_equal(r->code, PW_OK);
    snprintf(out, cap, "%s", ((P(CreateQuoteResponse) *)r->msg)->quote->id);
    reply_free(r);
}

static void test_fx_convert_books_spread(void **state)
{
    (void)state;
    /* 151.25 JPY per USD; 0.4105 BHD per EUR. */
    P(Rate) usdjpy = PAYWIRE__FINANCE__V1__RATE__INIT, eurbhd = PAYWIRE__FINANCE__V1__RATE__INIT;
    Google__Protobuf__Timestamp asof = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    asof.seconds = (int64_t)time(NULL) - 10;
    usdjpy.base_currency = "USD";
    usdjpy.quote_currency = "JPY";
    usdjpy.mantissa = 15125;
    usdjpy.scale = 2;
    usdjpy.source = "test";
    usdjpy.as_of_time = &asof;
    eurbhd = usdjpy;
    eurbhd.base_currency = "EUR";
    eurbhd.quote_currency = "BHD";
    eurbhd.mantissa = 4105;
    eurbhd.scale = 4;
    P(Rate) * rates[] = {&usdjpy, &eurbhd};
    P(PublishRatesRequest) pub = PAYWIRE__FINANCE__V1__PUBLISH_RATES_REQUEST__INIT;
    pub.idempotency_key = "rates-1";
    pub.rates = rates;
    pub.n_rates = 2;
    reply r = call_in(FX, "PublishRates", &pub.base,
                      &paywire__finance__v1__publish_rates_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    reply_free(&r);
    char mer[40], fund[96], q1[64], q2[64], q3[64];
    new_merchant(mer, sizeof(mer));
    new_id(fund, sizeof(fund), "adjust");
    leg funding[] = {{K_CASH, "bank_a", "USD", 10000, 0, NULL},
                     {K_AVAILABLE, mer, "USD", 10000, 1, NULL}};
    create_ok(fund, TEST, 0, NONE, funding, 2);
    r = quote("q-over", mer, "USD", "JPY", 301);
    expect(&r, PW_INVALID_ARGUMENT, "lock_seconds", NULL);
    r = quote("q-1", mer, "USD", "JPY", 300);
    quote_id(&r, q1, sizeof(q1));
    /* 10.00 USD: mid 1512.5 → 1512 (half-even); offered 151.25 × 0.995 = 150.49375 → 1504.9375
     * → 1505; FX revenue 7, in the same transfer. */
    r = convert("c-1", q1, 1000, "USD");
    assert_int_equal(r.code, PW_OK);
    P(ConvertResponse) *c = (void *)r.msg;
    assert_int_equal(c->converted->amount_minor, 1505);
    assert_int_equal(c->mid_amount->amount_minor, 1512);
    assert_int_equal(c->spread->amount_minor, 7);
    char txf[96];
    snprintf(txf, sizeof(txf), "%s", c->transfer_id);
    reply_free(&r);
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "USD", NULL), 9000);
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "JPY", NULL), 1505);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM entries WHERE transfer_id = '%s' AND currency = 'JPY'", txf);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 3);
    /* The same key replays; another key on the used quote is QUOTE_USED. */
    r = convert("c-1", q1, 1000, "USD");
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(ConvertResponse) *)r.msg)->converted->amount_minor, 1505);
    reply_free(&r);
    r = convert("c-2", q1, 2000, "USD");
    expect(&r, PW_FAILED_PRECONDITION, NULL, "QUOTE_USED");
    assert_int_equal(balance(TEST, K_AVAILABLE, mer, "USD", NULL), 9000);
    /* More than available: refused, nothing moves. */
    r = quote("q-2", mer, "USD", "JPY", 60);
    quote_id(&r, q2, sizeof(q2));
    r = convert("c-3", q2, 9001, "USD");
    expect(&r, PW_FAILED_PRECONDITION, NULL, "INSUFFICIENT_FUNDS");
    r = convert("c-4", q2, 100, "EUR");
    expect(&r, PW_INVALID_ARGUMENT, "amount.currency", NULL);
    /* An expired quote. */
    r = quote("q-3", mer, "USD", "JPY", 1);
    quote_id(&r, q3, sizeof(q3));
    uv_sleep(1200);
    r = convert("c-5", q3, 100, "USD");
    expect(&r, PW_FAILED_PRECONDITION, NULL, "QUOTE_EXPIRED");
    r = quote("q-4", mer, "USD", "CHF", 30);
    expect(&r, PW_NOT_FOUND, NULL, NULL);
    /* ListCurrencies: exponents 0, 2, 3 and 6. */
    P(ListCurrenciesRequest) lc = PAYWIRE__FINANCE__V1__LIST_CURRENCIES_REQUEST__INIT;
    r = call_in(FX, "ListCurrencies", &lc.base,
                &paywire__finance__v1__list_currencies_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(ListCurrenciesResponse) *cur = (void *)r.msg;
    int seen = 0;
    for (size_t i = 0; i < cur->n_currencies; i++) {
        const char *code = cur->currencies[i]->code;
        uint32_t e = cur->currencies[i]->exponent;
        seen += (strcmp(code, "JPY") == 0 && e == 0) + (strcmp(code, "USD") == 0 && e == 2) +
                (strcmp(code, "BHD") == 0 && e == 3) + (strcmp(code, "USDC") == 0 && e == 6);
    }
    assert_int_equal(seen, 4);
    reply_free(&r);
    check_ledger();
}

/* ---- the self-check ---- */

static void log_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s/finance.log", proc.dir);
}

/* The server log's length now: later searches start there. */
static long log_size(void)
{
    char path[128];
    log_path(path, sizeof(path));
    FILE *f = fopen(path, "r");
    long n = 0;
    if (f != NULL && fseek(f, 0, SEEK_END) == 0) {
        n = ftell(f);
    }
    if (f != NULL) {
        fclose(f);
    }
    return n;
}

/* Whether the server's log, after offset since, has a line containing want (and and_also);
 * polls up to 10 s. */
static int log_has(long since, const char *want, const char *and_also)
{
    char path[128];
    log_path(path, sizeof(path));
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(path, "r");
        char line[2048];
        int found = 0;
        if (f != NULL) {
            fseek(f, since, SEEK_SET);
        }
        while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
            found = strstr(line, want) != NULL && (and_also == NULL || strstr(line, and_also));
        }
        if (f != NULL) {
            fclose(f);
        }
        if (found) {
            return 1;
        }
        uv_sleep(50);
    }
    return 0;
}

/* A stored balance changed behind the service's back is an error line naming the account and
 * its currency, within a period of the check; put back, the lines stop. */
/* ledger_selfcheck_differences as the admin listener's /metrics shows it (-1: absent). */
static int selfcheck_metric_now(void)
{
    static char text[1 << 17];
    assert_int_equal(pw_test_http(proc.admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 1,
                                  text, sizeof(text)),
                     1);
    const char *line = strstr(text, "\nledger_selfcheck_differences ");
    return line ? atoi(line + strlen("\nledger_selfcheck_differences ")) : -1;
}

/* The metric once it shows want (a job run that read the ledger before a change may set it just
 * after a CheckLedger call; the job runs every second), or what it shows after 20 s. */
static int selfcheck_metric(int want)
{
    int v = selfcheck_metric_now();
    for (int i = 0; i < 200 && v != want; i++) {
        uv_sleep(100);
        v = selfcheck_metric_now();
    }
    return v;
}

static void test_ledger_self_check_reports_differences(void **state)
{
    (void)state;
    check_ledger();
    PGconn *conn = PQconnectdb(db_url);
    PGresult *res = PQexec(conn, "SELECT id FROM accounts WHERE version > 0 ORDER BY id LIMIT 1");
    char id[64];
    snprintf(id, sizeof(id), "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    PQfinish(conn);
    assert_true(id[0] != '\0');
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE accounts SET posted_credits = posted_credits + 1 WHERE id ="
             " '%s'",
             id);
    long since = log_size();
    pw_test_db_exec(db_url, sql);
    int account = log_has(since, "ledger self-check: account", id);
    int currency = log_has(since, "ledger self-check: currency", NULL);
    /* On demand too (CheckLedger, as pwctl calls it): the answer names both, and the metric
     * counts them. */
    P(CheckLedgerRequest) creq = PAYWIRE__FINANCE__V1__CHECK_LEDGER_REQUEST__INIT;
    reply r =
        call("CheckLedger", &creq.base, &paywire__finance__v1__check_ledger_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    const P(CheckLedgerResponse) *cr = (const P(CheckLedgerResponse) *)r.msg;
    int named = 0, summed = 0;
    for (size_t i = 0; i < cr->n_differences; i++) {
        named |= strstr(cr->differences[i]->subject, id) != NULL;
        summed |= strncmp(cr->differences[i]->subject, "currency ", 9) == 0;
    }
    assert_int_equal(cr->n_differences, 2);
    reply_free(&r);
    assert_true(named && summed);
    assert_int_equal(selfcheck_metric(2), 2);
    snprintf(sql, sizeof(sql),
             "UPDATE accounts SET posted_credits = posted_credits - 1 WHERE id ="
             " '%s'",
             id);
    pw_test_db_exec(db_url, sql);
    assert_true(account);
    assert_true(currency);
    check_ledger();
    r = call("CheckLedger", &creq.base, &paywire__finance__v1__check_ledger_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((const P(CheckLedgerResponse) *)r.msg)->n_differences, 0);
    reply_free(&r);
    assert_int_equal(selfcheck_metric(0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finance_serves_health_and_settlement),
        cmocka_unit_test(test_ledger_trigger_refuses_unbalanced_sql),
        cmocka_unit_test(test_ledger_entries_are_immutable),
        cmocka_unit_test(test_recon_row_members_are_insert_only),
        cmocka_unit_test(test_ledger_capture_balances_and_entries),
        cmocka_unit_test(test_ledger_two_phase_post_and_void),
        cmocka_unit_test(test_ledger_transfer_id_replay),
        cmocka_unit_test(test_ledger_bad_input_names_fields),
        cmocka_unit_test(test_ledger_race_50_debits_of_1000_from_5000),
        cmocka_unit_test(test_ledger_race_post_against_void),
        cmocka_unit_test(test_ledger_race_100_into_hot_account),
        cmocka_unit_test(test_ledger_seeded_property),
        cmocka_unit_test(test_ledger_export_entries_in_order_resumable),
        cmocka_unit_test(test_ledger_export_waits_for_lower_sequences),
        cmocka_unit_test(test_fees_schedules_most_specific_rule),
        cmocka_unit_test(test_fx_convert_books_spread),
        cmocka_unit_test(test_ledger_self_check_reports_differences),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
