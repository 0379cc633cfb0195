/*
 * result.c: query outcomes. Failures map to gRPC statuses by SQLSTATE
 * (docs/design/data-layer.md) with a message that names the constraint or
 * column but never repeats the server's text, which may quote row values;
 * that text goes to the log. Values come back in binary and are decoded by
 * the column's type.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/log.h>
#include "internal.h"

enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_JSON = 114,
    OID_BPCHAR = 1042,
    OID_VARCHAR = 1043,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_UUID = 2950,
    OID_JSONB = 3802,
};

static const char *field(const PGresult *pg, int code)
{
    const char *v = PQresultErrorField(pg, code);
    return v ? v : "";
}

static pw_status map_sqlstate(const char *st, pw_status cancel_cause)
{
    if (strcmp(st, "23505") == 0) {
        return PW_ALREADY_EXISTS;
    }
    if (strcmp(st, "23503") == 0) {
        return PW_FAILED_PRECONDITION;
    }
    if (strcmp(st, "23514") == 0 || strcmp(st, "23502") == 0 || strncmp(st, "22", 2) == 0) {
        return PW_INVALID_ARGUMENT;
    }
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0) {
        return PW_ABORTED;
    }
    if (strcmp(st, "57014") == 0) {
        /* Ours (deadline or cancel) or the statement_timeout backstop. */
        return cancel_cause != PW_OK ? cancel_cause : PW_DEADLINE_EXCEEDED;
    }
    if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
        strcmp(st, "57P03") == 0 || strcmp(st, "25006") == 0) {
        return PW_UNAVAILABLE;
    }
    if (strncmp(st, "53", 2) == 0) {
        return PW_RESOURCE_EXHAUSTED;
    }
    return PW_INTERNAL;
}

static void describe(pw_db_result *r, const PGresult *pg)
{
    const char *st = r->sqlstate;
    const char *table = field(pg, PG_DIAG_TABLE_NAME);
    const char *column = field(pg, PG_DIAG_COLUMN_NAME);
    switch (r->status) {
    case PW_ALREADY_EXISTS:
        snprintf(r->message, sizeof(r->message), "already exists (constraint %s)", r->constraint);
        break;
    case PW_FAILED_PRECONDITION:
        snprintf(r->message, sizeof(r->message),
                 "refers to a row that does not exist (constraint %s)", r->constraint);
        break;
    case PW_INVALID_ARGUMENT:
        if (strcmp(st, "23502") == 0) {
            snprintf(r->message, sizeof(r->message), "%s.%s must not be null", table, column);
        } else if (strcmp(st, "23514") == 0) {
            snprintf(r->message, sizeof(r->message), "violates check constraint %s", r->constraint);
        } else {
            snprintf(r->message, sizeof(r->message), "invalid value (SQLSTATE %s)", st);
        }
        break;
    case PW_ABORTED:
        snprintf(r->message, sizeof(r->message), "%s; retry the transaction",
                 strcmp(st, "40P01") == 0 ? "deadlock detected" : "serialization failure");
        break;
    case PW_DEADLINE_EXCEEDED:
        snprintf(r->message, sizeof(r->message), "query cancelled: deadline exceeded");
        break;
    case PW_CANCELLED:
        snprintf(r->message, sizeof(r->message), "query cancelled: the call was cancelled");
        break;
    case PW_UNAVAILABLE:
        snprintf(r->message, sizeof(r->message), "database unavailable (SQLSTATE %s)", st);
        break;
    case PW_RESOURCE_EXHAUSTED:
        snprintf(r->message, sizeof(r->message), "database out of resources (SQLSTATE %s)", st);
        break;
    default:
        snprintf(r->message, sizeof(r->message), "database error (SQLSTATE %s)", st);
        break;
    }
}

void pw__db_result_init(pw_db_result *r, const PGresult *pg, pw_status cancel_cause)
{
    memset(r, 0, sizeof(*r));
    r->pg = pg;
    if (pg == NULL) {
        return; /* the caller fills status and message */
    }
    ExecStatusType st = PQresultStatus(pg);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        r->status = PW_OK;
        return;
    }
    snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", field(pg, PG_DIAG_SQLSTATE));
    snprintf(r->constraint, sizeof(r->constraint), "%s", field(pg, PG_DIAG_CONSTRAINT_NAME));
    if (st == PGRES_PIPELINE_ABORTED) {
        r->status = PW_UNAVAILABLE;
        snprintf(r->message, sizeof(r->message),
                 "not run: an earlier command on the connection failed; safe to retry");
        return;
    }
    if (r->sqlstate[0] == '\0') {
        r->status = PW_UNAVAILABLE;
        snprintf(r->message, sizeof(r->message), "database connection failed");
    } else {
        r->status = map_sqlstate(r->sqlstate, cancel_cause);
        describe(r, pg);
    }
    if (r->status == PW_INTERNAL) {
        /* The server's text stays in our log: it can quote values. */
        PW_LOG(PW_LOG_ERR, "db", "SQLSTATE %s: %s", r->sqlstate,
               field(pg, PG_DIAG_MESSAGE_PRIMARY));
    }
}

int pw__db_retryable(const pw_db_result *r)
{
    return strcmp(r->sqlstate, "40001") == 0 || strcmp(r->sqlstate, "40P01") == 0;
}

pw_status pw_db_status(const pw_db_result *r)
{
    return r->status;
}

const char *pw_db_message(const pw_db_result *r)
{
    return r->status == PW_OK ? "" : r->message;
}

const char *pw_db_sqlstate(const pw_db_result *r)
{
    return r->sqlstate;
}

const char *pw_db_constraint(const pw_db_result *r)
{
    return r->constraint;
}

int pw_db_rows(const pw_db_result *r)
{
    return r->pg && r->status == PW_OK ? PQntuples(r->pg) : 0;
}

int64_t pw_db_affected(const pw_db_result *r)
{
    const char *n = r->pg && r->status == PW_OK ? PQcmdTuples((PGresult *)r->pg) : "";
    return n[0] ? strtoll(n, NULL, 10) : 0;
}

int pw_db_columns(const pw_db_result *r)
{
    return r->pg && r->status == PW_OK ? PQnfields(r->pg) : 0;
}

const char *pw_db_column_name(const pw_db_result *r, int col)
{
    const char *name = col >= 0 && col < pw_db_columns(r) ? PQfname(r->pg, col) : NULL;
    return name ? name : "";
}

int pw_db_column(const pw_db_result *r, const char *name)
{
    /* PQfnumber would fold unquoted names to lower case; ours are matched exactly. */
    int n = r->pg && r->status == PW_OK ? PQnfields(r->pg) : 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(PQfname(r->pg, i), name) == 0) {
            return i;
        }
    }
    return -1;
}

int pw_db_is_null(const pw_db_result *r, int row, int col)
{
    return r->pg == NULL || row >= PQntuples(r->pg) || col >= PQnfields(r->pg) ||
           PQgetisnull(r->pg, row, col);
}

/* The raw binary value, or PW_NOT_FOUND. */
static pw_status raw(const pw_db_result *r, int row, int col, const uint8_t **v, int *len, Oid *t)
{
    if (r->pg == NULL || row < 0 || col < 0 || row >= PQntuples(r->pg) || col >= PQnfields(r->pg) ||
        PQgetisnull(r->pg, row, col)) {
        return PW_NOT_FOUND;
    }
    *v = (const uint8_t *)PQgetvalue(r->pg, row, col);
    *len = PQgetlength(r->pg, row, col);
    *t = PQftype(r->pg, col);
    return PW_OK;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/*
 * The value at (row, col) when its column type is one of types (0-terminated)
 * and, when want_len > 0, its length is want_len. PW_NOT_FOUND for NULL or
 * out of range, PW_INVALID_ARGUMENT for another type.
 */
static pw_status typed(const pw_db_result *r, int row, int col, const Oid *types, int want_len,
                       const uint8_t **v, int *len, Oid *t)
{
    pw_status rv = raw(r, row, col, v, len, t);
    if (rv != PW_OK) {
        return rv;
    }
    for (; *types != 0; types++) {
        if (*types == *t) {
            return want_len > 0 && *len != want_len ? PW_INVALID_ARGUMENT : PW_OK;
        }
    }
    return PW_INVALID_ARGUMENT;
}

pw_status pw_db_get_int64(const pw_db_result *r, int row, int col, int64_t *out)
{
    static const Oid types[] = {OID_INT8, OID_INT4, OID_INT2, 0};
    const uint8_t *v;
    int len;
    Oid t;
    pw_status rv = typed(r, row, col, types, 0, &v, &len, &t);
    if (rv != PW_OK) {
        return rv;
    }
    if (len != (t == OID_INT8 ? 8 : t == OID_INT4 ? 4 : 2)) {
        return PW_INVALID_ARGUMENT;
    }
    uint64_t u = be(v, len);
    *out = len == 8 ? (int64_t)u : len == 4 ? (int32_t)(uint32_t)u : (int16_t)(uint16_t)u;
    return PW_OK;
}

pw_status pw_db_get_bool(const pw_db_result *r, int row, int col, int *out)
{
    static const Oid types[] = {OID_BOOL, 0};
    const uint8_t *v;
    int len;
    Oid t;
    pw_status rv = typed(r, row, col, types, 1, &v, &len, &t);
    if (rv == PW_OK) {
        *out = v[0] != 0;
    }
    return rv;
}

pw_status pw_db_get_text(const pw_db_result *r, int row, int col, const char **out, size_t *len)
{
    static const Oid types[] = {OID_TEXT, OID_VARCHAR, OID_BPCHAR, OID_JSON, OID_JSONB, 0};
    const uint8_t *v;
    int n;
    Oid t;
    pw_status rv = typed(r, row, col, types, 0, &v, &n, &t);
    if (rv != PW_OK) {
        return rv;
    }
    if (t == OID_JSONB) {
        if (n < 1 || v[0] != 1) {
            return PW_INVALID_ARGUMENT;
        }
        v++; /* binary jsonb: a version byte, then the text */
        n--;
    }
    *out = (const char *)v; /* libpq NUL-terminates every value */
    if (len != NULL) {
        *len = (size_t)n;
    }
    return PW_OK;
}

pw_status pw_db_get_bytea(const pw_db_result *r, int row, int col, const uint8_t **out, size_t *len)
{
    static const Oid types[] = {OID_BYTEA, 0};
    const uint8_t *v;
    int n;
    Oid t;
    pw_status rv = typed(r, row, col, types, 0, &v, &n, &t);
    if (rv == PW_OK) {
        *out = v;
        *len = (size_t)n;
    }
    return rv;
}

pw_status pw_db_get_timestamptz(const pw_db_result *r, int row, int col, int64_t *unix_us)
{
    static const Oid types[] = {OID_TIMESTAMPTZ, OID_TIMESTAMP, 0};
    const uint8_t *v;
    int n;
    Oid t;
    pw_status rv = typed(r, row, col, types, 8, &v, &n, &t);
    if (rv == PW_OK) {
        *unix_us = (int64_t)be(v, 8) + 946684800000000LL;
    }
    return rv;
}

pw_status pw_db_get_uuid(const pw_db_result *r, int row, int col, uint8_t out[16])
{
    static const Oid types[] = {OID_UUID, 0};
    const uint8_t *v;
    int n;
    Oid t;
    pw_status rv = typed(r, row, col, types, 16, &v, &n, &t);
    if (rv == PW_OK) {
        memcpy(out, v, 16);
    }
    return rv;
}
