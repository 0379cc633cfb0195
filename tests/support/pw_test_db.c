/* Test databases on the local cluster: one per test binary, dropped at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "pw_test.h"
#include "pw_test_db.h"

static char created[128];

const char *pw_test_db_admin_url(void)
{
    const char *url = getenv("PW_TEST_PG_URL");
    return url && url[0] ? url : "postgresql://postgres@127.0.0.1:15432/postgres";
}

/* The admin URL with its database name replaced by db. */
static void url_for(const char *db, char *out, size_t cap)
{
    const char *admin = pw_test_db_admin_url();
    const char *slash = strrchr(admin, '/');
    snprintf(out, cap, "%.*s/%s", (int)(slash - admin), admin, db);
}

/* Runs sql on a fresh connection; fails the test unless it succeeds. The caller PQclears. */
static PGresult *run(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot connect to %s: %s (is the local cluster up? bash scripts/pg start)", url,
                 PQerrorMessage(c));
    }
    PGresult *r = PQexec(c, sql);
    PQfinish(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    }
    return r;
}

void pw_test_db_exec(const char *url, const char *sql)
{
    PQclear(run(url, sql));
}

long long pw_test_db_scalar(const char *url, const char *sql)
{
    PGresult *r = run(url, sql);
    long long v = PQntuples(r) > 0 ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

void pw_test_db_text(const char *url, const char *sql, char *out, size_t cap)
{
    PGresult *r = run(url, sql);
    snprintf(out, cap, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

long long pw_test_db_wait_scalar(const char *url, const char *sql, long long want, int timeout_ms)
{
    long long v = pw_test_db_scalar(url, sql);
    for (int waited = 0; v != want && waited < timeout_ms; waited += 20) {
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
        v = pw_test_db_scalar(url, sql);
    }
    return v;
}

static void drop_created(void)
{
    if (created[0] == '\0') {
        return;
    }
    PGconn *c = PQconnectdb(pw_test_db_admin_url());
    if (PQstatus(c) == CONNECTION_OK) {
        char sql[256];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", created);
        PQclear(PQexec(c, sql));
    }
    PQfinish(c);
}

void pw_test_db_create(const char *prefix, char *out, size_t cap)
{
    snprintf(created, sizeof(created), "%s_%ld", prefix, (long)getpid());
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", created);
    pw_test_db_exec(pw_test_db_admin_url(), sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", created);
    pw_test_db_exec(pw_test_db_admin_url(), sql);
    atexit(drop_created);
    url_for(created, out, cap);
}

void pw_test_db_restart(void)
{
    const char *script = getenv("PW_TEST_PG_SCRIPT");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s restart >/dev/null 2>&1",
             script && script[0] ? script : "scripts/pg");
    if (system(cmd) != 0) {
        fail_msg("%s failed", cmd);
    }
}
