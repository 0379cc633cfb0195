/*
 * migrate.c: the migration runner (blocking libpq: it runs at start-up,
 * before any loop, from a service's --migrate and from pwmigrate). Files
 * NNNN_description.sql apply in order, each in its own transaction,
 * recorded in schema_migrations with their SHA-256. A session advisory lock
 * serialises runners that start at once; an applied file that changed or
 * disappeared stops everything (migrations are never edited: a fix is a new
 * migration).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"

typedef struct migration {
    int version;
    char name[256];
    char sha256[65];
    char *sql;
} migration;

static int mig_cmp(const void *a, const void *b)
{
    return ((const migration *)a)->version - ((const migration *)b)->version;
}

/* NNNN_lower_snake.sql */
static int name_ok(const char *n, int *version)
{
    size_t len = strlen(n);
    if (len < 10 || strcmp(n + len - 4, ".sql") != 0 || n[4] != '_') {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        if (n[i] < '0' || n[i] > '9') {
            return 0;
        }
    }
    for (size_t i = 5; i < len - 4; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return 0;
        }
    }
    *version = atoi(n);
    return 1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? pw_malloc((size_t)n + 1) : NULL;
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        pw_free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

static void free_list(migration *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pw_free(m[i].sql);
    }
    pw_free(m);
}

static pw_status load_dir(const char *dir, migration **out, size_t *count, char *err, size_t cap)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, cap, "cannot read migrations folder %s", dir);
        return PW_INVALID_ARGUMENT;
    }
    migration *list = NULL;
    size_t n = 0;
    pw_status rv = PW_OK;
    struct dirent *e;
    while (rv == PW_OK && (e = readdir(d)) != NULL) {
        int version;
        if (e->d_name[0] == '.' || strstr(e->d_name, ".sql") == NULL) {
            continue;
        }
        if (!name_ok(e->d_name, &version)) {
            snprintf(err, cap, "migration file %s is not named NNNN_lower_snake_case.sql",
                     e->d_name);
            rv = PW_INVALID_ARGUMENT;
            break;
        }
        migration *grown = pw_realloc(list, (n + 1) * sizeof(*list));
        if (grown == NULL) {
            rv = PW_ERRNO(ENOMEM);
            break;
        }
        list = grown;
        migration *m = &list[n];
        memset(m, 0, sizeof(*m));
        m->version = version;
        snprintf(m->name, sizeof(m->name), "%s", e->d_name);
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t len = 0;
        m->sql = read_file(path, &len);
        n++;
        if (m->sql == NULL) {
            snprintf(err, cap, "cannot read %s", path);
            rv = PW_INVALID_ARGUMENT;
            break;
        }
        sha256_hex(m->sql, len, m->sha256);
    }
    closedir(d);
    if (rv == PW_OK && n > 0) {
        qsort(list, n, sizeof(*list), mig_cmp);
        for (size_t i = 1; i < n; i++) {
            if (list[i].version == list[i - 1].version) {
                snprintf(err, cap, "migrations %s and %s share version %04d", list[i - 1].name,
                         list[i].name, list[i].version);
                rv = PW_INVALID_ARGUMENT;
            }
        }
    }
    if (rv != PW_OK) {
        free_list(list, n);
        return rv;
    }
    *out = list;
    *count = n;
    return PW_OK;
}

/* Runs sql; PW_OK or PW_INTERNAL with the server's error in err (operator tooling: shown as is). */
static pw_status exec(PGconn *c, const char *sql, const char *what, char *err, size_t cap)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    pw_status rv = PW_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(r);
        snprintf(err, cap, "%s failed: %s", what, msg && msg[0] ? msg : PQerrorMessage(c));
        size_t n = strlen(err);
        while (n > 0 && err[n - 1] == '\n') {
            err[--n] = '\0';
        }
        rv = PQstatus(c) == CONNECTION_BAD ? PW_UNAVAILABLE : PW_INTERNAL;
    }
    PQclear(r);
    return rv;
}

static pw_status check_applied(PGconn *c, const migration *files, size_t n, int *done_versions,
                               char *err, size_t cap)
{
    PGresult *r = PQexec(c, "SELECT version, name, sha256 FROM schema_migrations ORDER BY version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, cap, "cannot read schema_migrations: %s", PQresultErrorMessage(r));
        PQclear(r);
        return PW_INTERNAL;
    }
    pw_status rv = PW_OK;
    for (int row = 0; row < PQntuples(r) && rv == PW_OK; row++) {
        int version = atoi(PQgetvalue(r, row, 0));
        const char *name = PQgetvalue(r, row, 1);
        const char *sum = PQgetvalue(r, row, 2);
        size_t i = 0;
        while (i < n && files[i].version != version) {
            i++;
        }
        if (i == n) {
            snprintf(err, cap, "applied migration %s is missing from the migrations folder", name);
            rv = PW_FAILED_PRECONDITION;
        } else if (strcmp(files[i].sha256, sum) != 0) {
            snprintf(err, cap,
                     "migration %s was edited after it was applied (applied sha256 %.12s..., "
                     "file now %.12s...); add a new migration instead",
                     files[i].name, sum, files[i].sha256);
            rv = PW_FAILED_PRECONDITION;
        } else {
            done_versions[i] = 1;
        }
    }
    PQclear(r);
    return rv;
}

static pw_status apply_one(PGconn *c, const migration *m, char *err, size_t cap)
{
    char what[300];
    snprintf(what, sizeof(what), "migration %s", m->name);
    pw_status rv = exec(c, "BEGIN", what, err, cap);
    if (rv == PW_OK) {
        rv = exec(c, m->sql, what, err, cap);
    }
    if (rv == PW_OK) {
        char version[16];
        snprintf(version, sizeof(version), "%d", m->version);
        const char *values[] = {version, m->name, m->sha256};
        PGresult *r = PQexecParams(
            c, "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)", 3, NULL,
            values, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(err, cap, "recording %s failed: %s", m->name, PQresultErrorMessage(r));
            rv = PW_INTERNAL;
        }
        PQclear(r);
    }
    if (rv == PW_OK) {
        rv = exec(c, "COMMIT", what, err, cap);
    } else {
        char ignored[64];
        exec(c, "ROLLBACK", what, ignored, sizeof(ignored));
    }
    return rv;
}

pw_status pw_db_migrate(const char *conninfo, const char *dir, const char *lock_name, int *applied,
                        char *err, size_t err_len)
{
    char scratch[8];
    if (err == NULL || err_len == 0) {
        err = scratch;
        err_len = sizeof(scratch);
    }
    err[0] = '\0';
    if (applied != NULL) {
        *applied = 0;
    }
    migration *files = NULL;
    size_t n = 0;
    pw_status rv = load_dir(dir, &files, &n, err, err_len);
    if (rv != PW_OK) {
        return rv;
    }
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, err_len, "cannot connect to the database: %s", PQerrorMessage(c));
        PQfinish(c);
        free_list(files, n);
        return PW_UNAVAILABLE;
    }
    int *done = pw_calloc(n + 1, sizeof(*done));
    const char *lock_values[] = {lock_name};
    PGresult *lr = PQexecParams(c, "SELECT pg_advisory_lock(hashtext($1))", 1, NULL, lock_values,
                                NULL, NULL, 0);
    if (done == NULL || PQresultStatus(lr) != PGRES_TUPLES_OK) {
        snprintf(err, err_len, "cannot take the migration lock: %s", PQerrorMessage(c));
        rv = PW_UNAVAILABLE;
    }
    PQclear(lr);
    if (rv == PW_OK) {
        rv = exec(c, "SET client_min_messages = warning", "setup", err, err_len);
    }
    if (rv == PW_OK) {
        rv = exec(c,
                  "CREATE TABLE IF NOT EXISTS schema_migrations ("
                  " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
                  " applied_at timestamptz NOT NULL DEFAULT now())",
                  "creating schema_migrations", err, err_len);
    }
    if (rv == PW_OK) {
        rv = check_applied(c, files, n, done, err, err_len);
    }
    for (size_t i = 0; i < n && rv == PW_OK; i++) {
        if (done[i]) {
            continue;
        }
        rv = apply_one(c, &files[i], err, err_len);
        if (rv == PW_OK) {
            PW_LOG(PW_LOG_NOTICE, "migrate", "applied %s", files[i].name);
            if (applied != NULL) {
                (*applied)++;
            }
        }
    }
    PQfinish(c); /* ends the session: the advisory lock goes with it */
    pw_free(done);
    free_list(files, n);
    return rv;
}
