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
#include <libpq-fe.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
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
                            " 'finance_app') THEN CREATE ROLE finance_app; END IF; END $$;"
                            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT,"
                            " UPDATE, DELETE ON TABLES TO finance_app");
    char err[512];
    assert_int_equal(pw_db_migrate(db_url, PW_SOURCE_DIR "/services/finance/migrations",
                                   "paywire.migrate.finance", NULL, err, sizeof(err)),
                     PW_OK);
    svc_process_start(&proc, db_url, "log_level = warning\nworkers = 2\n");
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

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(ch, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&proc);
    svc_process_cleanup(&proc);
    return 0;
}

/* ---- the process ---- */

static void test_finance_serves_health_and_unimplemented_parts(void **state)
{
    (void)state;
    assert_int_equal(svc_process_health(ch, "paywire.finance.v1.LedgerService"), 1);
    /* Settlement is part 2 (its own issue): mounted, answering UNIMPLEMENTED. */
    Paywire__Finance__V1__GetSettlementBatchRequest req =
        PAYWIRE__FINANCE__V1__GET_SETTLEMENT_BATCH_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    pw_call_options o = {.timeout_ms = 5000};
    pw_status rv = pw_client_unary_blocking(
        ch, "/paywire.finance.v1.SettlementService/GetSettlementBatch", &o, &req.base,
        &paywire__finance__v1__get_settlement_batch_response__descriptor, &resp, NULL, NULL);
    assert_int_equal(rv, PW_UNIMPLEMENTED);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finance_serves_health_and_unimplemented_parts),
        cmocka_unit_test(test_ledger_trigger_refuses_unbalanced_sql),
        cmocka_unit_test(test_ledger_entries_are_immutable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
