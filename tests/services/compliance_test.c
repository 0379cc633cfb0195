/*
 * The compliance service end to end: a real compliance-server process (this
 * build, under the sanitizers in CI) on a fresh database of the local
 * PostgreSQL, called over mTLS as spiffe://paywire/tests. The invariants of
 * docs/design/compliance.md (Invariants and how tests prove them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "jcs.h"
#include "svc_process.h"
#include <sys/stat.h>
#include "ofac.h"
#include "paywire/compliance/v1/audit.pw.h"
#include "paywire/compliance/v1/screening.pw.h"

#define AUDIT     "/paywire.compliance.v1.AuditService/"
#define SCREENING "/paywire.compliance.v1.ScreeningService/"
#define P(x)      Paywire__Compliance__V1__##x

static ofac_list *ofac;
static svc_process srv = {.name = "compliance",
                          .binary = PW_COMPLIANCE_SERVER,
                          .health_service = "paywire.compliance.v1.ScreeningService"};
static char db_url[512];
static uv_loop_t loop;
static pw_channel *ch;

static int group_setup(void **state)
{
    (void)state;
    /* The service's role, so the migration's grants are those of the stack (cluster-wide). */
    pw_test_db_exec(pw_test_db_admin_url(),
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                    "'compliance_app') THEN CREATE ROLE compliance_app LOGIN; END IF; END $$");
    pw_test_db_create("compliance_test", db_url, sizeof(db_url));
    char err[512];
    if (pw_db_migrate(db_url, PW_SOURCE_DIR "/services/compliance/migrations",
                      "paywire.migrate.compliance", NULL, err, sizeof(err)) != PW_OK) {
        fail_msg("migrations: %s", err);
    }
    svc_process_prepare(&srv);
    svc_process_start(&srv, db_url, "log_level = warning\nworkers = 2\n");
    uv_loop_init(&loop);
    ch = svc_process_channel(&srv, &loop);
    svc_process_wait_serving(&srv, ch);
    return 0;
}

static void set_flag(pw_channel *c, void *ud)
{
    (void)c;
    *(int *)ud = 1;
}

static void close_channel(pw_channel *c)
{
    int done = 0;
    pw_channel_close(c, set_flag, &done);
    pw_test_run_until(&loop, &done, 5000);
}

static int group_teardown(void **state)
{
    (void)state;
    close_channel(ch);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&srv);
    svc_process_cleanup(&srv);
    ofac_list_free(ofac);
    return 0;
}

/* ---- calls ---- */

typedef struct reply {
    pw_status code;
    char message[512];
    pw_error_details details;
    ProtobufCMessage *msg;
} reply;

/* One unary call on ch: path "/pkg.Service/Method". */
static reply call(const char *path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_type)
{
    pw_call_options o = {.timeout_ms = 30000};
    reply r = {0};
    char *msg = NULL;
    pw_metadata trailers = {0};
    r.code = pw_client_unary_blocking(ch, path, &o, req, resp_type, &r.msg, &msg, &trailers);
    snprintf(r.message, sizeof(r.message), "%s", msg ? msg : "");
    pw_free(msg);
    pw_error_details_read(&trailers, &r.details);
    pw_metadata_clear(&trailers);
    return r;
}

static void reply_free(reply *r)
{
    pw_protobuf_free(r->msg);
    pw_error_details_clear(&r->details);
    r->msg = NULL;
}

static int has_violation(const reply *r, const char *field)
{
    for (size_t i = 0; i < r->details.violation_count; i++) {
        if (strcmp(r->details.violations[i].field, field) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- audit ---- */

static P(AppendEventResponse) *
    append(const char *key, const char *subject, const char *detail, reply *r)
{
    P(AuditEvent) e = PAYWIRE__COMPLIANCE__V1__AUDIT_EVENT__INIT;
    e.actor = "spiffe://paywire/merchant";
    e.action = "merchant.updated";
    e.subject_id = (char *)subject;
    e.source = "merchant";
    e.detail_json = (char *)detail;
    P(AppendEventRequest) req = PAYWIRE__COMPLIANCE__V1__APPEND_EVENT_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.event = &e;
    *r = call(AUDIT "AppendEvent", &req.base,
              &paywire__compliance__v1__append_event_response__descriptor);
    return r->code == PW_OK ? (P(AppendEventResponse) *)r->msg : NULL;
}

static int64_t append_ok(const char *key, const char *subject, const char *detail)
{
    reply r;
    P(AppendEventResponse) *resp = append(key, subject, detail, &r);
    if (resp == NULL) {
        fail_msg("AppendEvent %s: %s %s", key, pw_status_str(r.code), r.message);
    }
    assert_int_equal(strlen(resp->hash), 64);
    int64_t seq = resp->sequence;
    reply_free(&r);
    return seq;
}

static P(VerifyChainResponse) verify(int64_t from, int64_t to)
{
    P(VerifyChainRequest) req = PAYWIRE__COMPLIANCE__V1__VERIFY_CHAIN_REQUEST__INIT;
    req.from_sequence = from;
    req.to_sequence = to;
    reply r = call(AUDIT "VerifyChain", &req.base,
                   &paywire__compliance__v1__verify_chain_response__descriptor);
    if (r.code != PW_OK) {
        fail_msg("VerifyChain: %s %s", pw_status_str(r.code), r.message);
    }
    P(VerifyChainResponse) out = *(P(VerifyChainResponse) *)r.msg;
    reply_free(&r);
    return out;
}

static long long head(void)
{
    return pw_test_db_scalar(db_url, "SELECT sequence FROM audit_head");
}

static void test_audit_append_idempotent(void **state)
{
    (void)state;
    int64_t a = append_ok("idem-1", "mer_idem", "{\"to\":\"ACTIVE\",\"from\":\"PENDING_REVIEW\"}");
    /* The same event id with the same event (keys reordered, other whitespace): the same
     * sequence, nothing added. */
    int64_t b =
        append_ok("idem-1", "mer_idem", "{ \"from\": \"PENDING_REVIEW\", \"to\": \"ACTIVE\" }");
    assert_int_equal(a, b);
    assert_int_equal(head(), a);
    /* The same event id with another event: refused. */
    reply r;
    assert_null(append("idem-1", "mer_idem", "{\"to\":\"SUSPENDED\"}", &r));
    assert_int_equal(r.code, PW_FAILED_PRECONDITION);
    assert_non_null(r.details.reason);
    assert_string_equal(r.details.reason, "IDEMPOTENCY_KEY_REUSED");
    reply_free(&r);
    /* Floats, exponents and non-objects never reach the chain. */
    const char *bad[] = {"{\"amount\":1.5}",  "{\"amount\":1e3}",         "[1,2]",
                         "{\"a\":1,\"a\":2}", "{\"n\":9007199254740993}", "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char key[32];
        snprintf(key, sizeof(key), "bad-%zu", i);
        assert_null(append(key, "mer_idem", bad[i], &r));
        assert_int_equal(r.code, PW_INVALID_ARGUMENT);
        assert_true(has_violation(&r, "event.detail_json"));
        reply_free(&r);
    }
    /* Missing fields are named. */
    P(AuditEvent) e = PAYWIRE__COMPLIANCE__V1__AUDIT_EVENT__INIT;
    P(AppendEventRequest) req = PAYWIRE__COMPLIANCE__V1__APPEND_EVENT_REQUEST__INIT;
    req.event = &e;
    r = call(AUDIT "AppendEvent", &req.base,
             &paywire__compliance__v1__append_event_response__descriptor);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "idempotency_key"));
    assert_true(has_violation(&r, "event.actor"));
    assert_true(has_violation(&r, "event.source"));
    reply_free(&r);
    assert_int_equal(head(), a);
}

/* Runs sql as user on the test database; returns the SQLSTATE of its failure ("" on success). */
static void exec_as(const char *user, const char *sql, char state_out[6])
{
    char url[600];
    const char *at = strchr(db_url, '@');
    snprintf(url, sizeof(url), "postgresql://%s%s", user, at);
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("connect as %s: %s", user, PQerrorMessage(c));
    }
    PGresult *res = PQexec(c, sql);
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(state_out, 6, "%s", st ? st : "");
    PQclear(res);
    PQfinish(c);
}

static void test_audit_append_only(void **state)
{
    (void)state;
    append_ok("ao-1", "mer_ao", "{\"n\":1}");
    const char *stmts[] = {"UPDATE audit_events SET actor = 'x' WHERE sequence = 1",
                           "DELETE FROM audit_events WHERE sequence = 1", "TRUNCATE audit_events"};
    char st[6];
    for (int i = 0; i < 3; i++) {
        /* The service's role has no such privilege... */
        exec_as("compliance_app", stmts[i], st);
        assert_string_equal(st, "42501");
        /* ...and the trigger refuses the owner too. */
        exec_as("postgres", stmts[i], st);
        assert_string_equal(st, "42501");
    }
    exec_as("compliance_app", "SELECT count(*) FROM audit_events", st);
    assert_string_equal(st, "");
    P(VerifyChainResponse) v = verify(0, 0);
    assert_true(v.intact);
    assert_int_equal(v.events_checked, head());
}

static void tamper(const char *set, long long seq)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;"
             " UPDATE audit_events SET %s WHERE sequence = %lld;"
             " ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only",
             set, seq);
    pw_test_db_exec(db_url, sql); /* as the table owner */
}

static void test_audit_chain_tamper(void **state)
{
    (void)state;
    int64_t first = 0;
    for (int i = 0; i < 12; i++) {
        char key[32], detail[64];
        snprintf(key, sizeof(key), "tamper-%d", i);
        snprintf(detail, sizeof(detail), "{\"i\":%d,\"note\":\"row %d\"}", i, i);
        int64_t s = append_ok(key, "mer_tamper", detail);
        first = first ? first : s;
    }
    long long last = head();
    P(VerifyChainResponse) v = verify(0, 0);
    assert_true(v.intact);
    assert_int_equal(v.first_broken_sequence, 0);
    assert_int_equal(v.events_checked, last);

    /* Each kind of rewrite, one at a time, is found at its row and only there. */
    long long k = first + 5;
    char sql[1024];
    const char *rewrites[] = {
        "detail = '{\"i\": 99, \"note\": \"row 5\"}'",
        "actor = 'spiffe://paywire/someone-else'",
        "time = time + interval '1 second'",
        "canonical = convert_to(replace(convert_from(canonical, 'UTF8'), 'row 5', 'row 6'), "
        "'UTF8')",
        "hash = sha256(previous_hash || canonical || '\\x00'::bytea)",
    };
    const char *undo[] = {
        "detail = '{\"i\": 5, \"note\": \"row 5\"}'",
        "actor = 'spiffe://paywire/merchant'",
        "time = time - interval '1 second'",
        "canonical = convert_to(replace(convert_from(canonical, 'UTF8'), 'row 6', 'row 5'), "
        "'UTF8')",
        "hash = sha256(previous_hash || canonical)",
    };
    for (size_t i = 0; i < sizeof(rewrites) / sizeof(rewrites[0]); i++) {
        tamper(rewrites[i], k);
        v = verify(0, 0);
        if (v.intact || v.first_broken_sequence != k) {
            fail_msg("rewrite %s: intact %d, first broken %lld (wanted %lld)", rewrites[i],
                     v.intact, (long long)v.first_broken_sequence, k);
        }
        assert_int_equal(v.events_checked, k - 1);
        /* A range before it is intact; a range starting after it too (its link is to the
         * stored hash, which only the last rewrite changed). */
        assert_true(verify(1, k - 1).intact);
        v = verify(k + 1, 0);
        if (i == 4) {
            assert_false(v.intact);
            assert_int_equal(v.first_broken_sequence, k + 1);
        } else {
            assert_true(v.intact);
        }
        tamper(undo[i], k);
        v = verify(0, 0);
        if (!v.intact) {
            fail_msg("undo %s: first broken %lld", undo[i], (long long)v.first_broken_sequence);
        }
    }
    /* A deleted row is a gap, named by its sequence. */
    snprintf(sql, sizeof(sql),
             "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;"
             " CREATE TABLE kept AS SELECT * FROM audit_events WHERE sequence = %lld;"
             " DELETE FROM audit_events WHERE sequence = %lld;"
             " ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only",
             k, k);
    pw_test_db_exec(db_url, sql);
    v = verify(0, 0);
    assert_false(v.intact);
    assert_int_equal(v.first_broken_sequence, k);
    v = verify(k + 1, last);
    assert_false(v.intact); /* its link to the missing row cannot be checked */
    assert_int_equal(v.first_broken_sequence, k);
    /* Put back, the chain verifies again. */
    pw_test_db_exec(db_url, "INSERT INTO audit_events SELECT * FROM kept; DROP TABLE kept");
    v = verify(0, 0);
    assert_true(v.intact);
    assert_int_equal(v.events_checked, last);
}

typedef struct pending {
    const char *key;
    int dup_of;
    int done;
    pw_status code;
    int64_t sequence;
    P(AuditEvent) e;
    P(AppendEventRequest) req;
    char detail[64];
} pending;

static void appended(const P(AppendEventResponse) * resp, const pw_result *res, void *ud)
{
    pending *p = ud;
    p->code = res->code;
    p->sequence = resp ? resp->sequence : 0;
    p->done = 1;
}

static void test_audit_concurrent_appends(void **state)
{
    (void)state;
    enum { N = 240, UNIQUE = 200, CONNS = 4 };
    const char *seed_env = getenv("PW_TEST_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    print_message("test_audit_concurrent_appends: seed %u (PW_TEST_SEED=%u to repeat)\n", seed,
                  seed);
    srand(seed);
    long long before = pw_test_db_scalar(db_url, "SELECT count(*) FROM audit_events");
    static pending p[N];
    static char keys[UNIQUE][32];
    memset(p, 0, sizeof(p));
    for (int i = 0; i < N; i++) {
        int u = i < UNIQUE ? i : rand() % UNIQUE; /* the rest repeat an event id */
        if (i < UNIQUE) {
            snprintf(keys[i], sizeof(keys[i]), "conc-%u-%d", seed, i);
        }
        p[i].key = keys[u];
        p[i].dup_of = u;
        snprintf(p[i].detail, sizeof(p[i].detail), "{\"i\":%d}", u);
    }
    /* A seeded order: duplicates may race their original. */
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        pending t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    pw_channel *chs[CONNS];
    for (int i = 0; i < CONNS; i++) {
        chs[i] = svc_process_channel(&srv, &loop);
    }
    pw_call_options o = {.timeout_ms = 60000, .wait_for_ready = 1};
    for (int i = 0; i < N; i++) {
        paywire__compliance__v1__audit_event__init(&p[i].e);
        p[i].e.actor = "spiffe://paywire/finance";
        p[i].e.action = "fee_schedule.changed";
        p[i].e.subject_id = "fee_concurrent";
        p[i].e.source = "finance";
        p[i].e.detail_json = p[i].detail;
        paywire__compliance__v1__append_event_request__init(&p[i].req);
        p[i].req.idempotency_key = (char *)p[i].key;
        p[i].req.event = &p[i].e;
        assert_int_equal(paywire_compliance_v1_audit_service_append_event(chs[i % CONNS], &p[i].req,
                                                                          &o, appended, &p[i]),
                         PW_OK);
    }
    for (int i = 0; i < N; i++) {
        pw_test_run_until(&loop, &p[i].done, 60000);
        if (p[i].code != PW_OK) {
            fail_msg("append %s: %s", p[i].key, pw_status_str(p[i].code));
        }
    }
    /* Every duplicate got its original's sequence. */
    static int64_t seq_of[UNIQUE];
    memset(seq_of, 0, sizeof(seq_of));
    for (int i = 0; i < N; i++) {
        int u = p[i].dup_of;
        if (seq_of[u] == 0) {
            seq_of[u] = p[i].sequence;
        }
        assert_int_equal(seq_of[u], p[i].sequence);
    }
    /* No gaps: 1..count; no forks: each previous hash is the prior event's hash. */
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM audit_events"),
                     before + UNIQUE);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT max(sequence) FROM audit_events"),
                     before + UNIQUE);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT min(sequence) FROM audit_events"), 1);
    assert_int_equal(pw_test_db_scalar(db_url,
                                       "SELECT count(*) FROM audit_events a JOIN audit_events b"
                                       " ON b.sequence = a.sequence + 1"
                                       " WHERE b.previous_hash <> a.hash"),
                     0);
    assert_int_equal(head(), before + UNIQUE);
    P(VerifyChainResponse) v = verify(0, 0);
    assert_true(v.intact);
    for (int i = 0; i < CONNS; i++) {
        close_channel(chs[i]);
    }
}

/* Recomputes the exported chain as a third party would: SHA-256 over the stored bytes. */
static void test_audit_export_verifiable(void **state)
{
    (void)state;
    long long last = head();
    P(ExportEventsRequest) req = PAYWIRE__COMPLIANCE__V1__EXPORT_EVENTS_REQUEST__INIT;
    pw_stream *s = NULL;
    assert_int_equal(
        paywire_compliance_v1_audit_service_export_events_start_blocking(ch, &req, NULL, &s),
        PW_OK);
    uint8_t prev[32] = {0};
    int64_t want = 1;
    int messages = 0;
    for (;;) {
        P(ExportEventsResponse) *page = NULL;
        assert_int_equal(paywire_compliance_v1_audit_service_export_events_stream_recv(s, &page),
                         PW_OK);
        if (page == NULL) {
            break;
        }
        messages++;
        for (size_t i = 0; i < page->n_events; i++) {
            P(AuditEvent) *e = page->events[i];
            assert_int_equal(e->sequence, want);
            uint8_t h[32];
            char hex[65];
            jcs_chain_hash(prev, e->canonical.data, e->canonical.len, h);
            jcs_hex(h, hex);
            assert_string_equal(hex, e->hash);
            jcs_hex(prev, hex);
            assert_string_equal(hex, e->previous_hash);
            /* The bytes are the event's fields. */
            char seq[32];
            snprintf(seq, sizeof(seq), "\"sequence\":\"%lld\"", (long long)e->sequence);
            assert_non_null(memmem(e->canonical.data, e->canonical.len, seq, strlen(seq)));
            memcpy(prev, h, 32);
            want++;
        }
        pw_protobuf_free(&page->base);
    }
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);
    assert_int_equal(want - 1, last);
    assert_true(messages >= 2); /* several pages: it streams */

    /* After a sequence: only what follows. */
    req.after_sequence = last - 3;
    assert_int_equal(
        paywire_compliance_v1_audit_service_export_events_start_blocking(ch, &req, NULL, &s),
        PW_OK);
    P(ExportEventsResponse) *page = NULL;
    assert_int_equal(paywire_compliance_v1_audit_service_export_events_stream_recv(s, &page),
                     PW_OK);
    assert_non_null(page);
    assert_int_equal(page->n_events, 3);
    assert_int_equal(page->events[0]->sequence, last - 2);
    pw_protobuf_free(&page->base);
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);
}

static void test_audit_query_pages(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        char key[32];
        snprintf(key, sizeof(key), "query-%d", i);
        append_ok(key, "mer_query", "{}");
    }
    P(QueryEventsRequest) req = PAYWIRE__COMPLIANCE__V1__QUERY_EVENTS_REQUEST__INIT;
    req.subject_id = "mer_query";
    req.page_size = 2;
    int seen = 0, pages = 0;
    char token[128] = "";
    do {
        req.page_token = token;
        reply r = call(AUDIT "QueryEvents", &req.base,
                       &paywire__compliance__v1__query_events_response__descriptor);
        assert_int_equal(r.code, PW_OK);
        P(QueryEventsResponse) *q = (P(QueryEventsResponse) *)r.msg;
        for (size_t i = 0; i < q->n_events; i++) {
            assert_string_equal(q->events[i]->subject_id, "mer_query");
        }
        seen += (int)q->n_events;
        pages++;
        snprintf(token, sizeof(token), "%s", q->next_page_token);
        reply_free(&r);
    } while (token[0] && pages < 10);
    assert_int_equal(seen, 5);
    assert_int_equal(pages, 3);
    /* A token with other filters is refused. */
    req.page_size = 2;
    req.page_token = "";
    reply r = call(AUDIT "QueryEvents", &req.base,
                   &paywire__compliance__v1__query_events_response__descriptor);
    snprintf(token, sizeof(token), "%s", ((P(QueryEventsResponse) *)r.msg)->next_page_token);
    reply_free(&r);
    req.subject_id = "mer_other";
    req.page_token = token;
    r = call(AUDIT "QueryEvents", &req.base,
             &paywire__compliance__v1__query_events_response__descriptor);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "page_token"));
    reply_free(&r);
}

/* ---- sanctions lists ---- */

/* The real OFAC SDN list (read once); the test fails naming the directory when it is missing. */

static ofac_list *real_list(void)
{
    if (ofac == NULL) {
        const char *env = getenv("PWSANCTIONS_DIR");
        const char *dir = env && env[0] ? env : PW_SOURCE_DIR "/" OFAC_DEFAULT_DIR;
        struct stat st;
        if (stat(dir, &st) != 0) {
            fail_msg("%s is missing: the OFAC SDN files these tests screen against", dir);
        }
        char err[256];
        assert_int_equal(ofac_list_read(&ofac, dir, NULL, NULL, err, sizeof(err)), PW_OK);
    }
    return ofac;
}

/* "version:active" of every stored version of list, comma-separated, into out. */
static void versions(const char *list, char *out, size_t cap)
{
    P(ListSanctionsListsRequest) req = PAYWIRE__COMPLIANCE__V1__LIST_SANCTIONS_LISTS_REQUEST__INIT;
    reply r = call(SCREENING "ListSanctionsLists", &req.base,
                   &paywire__compliance__v1__list_sanctions_lists_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(ListSanctionsListsResponse) *l = (P(ListSanctionsListsResponse) *)r.msg;
    out[0] = '\0';
    for (size_t i = 0; i < l->n_lists; i++) {
        if (strcmp(l->lists[i]->list, list) == 0) {
            size_t n = strlen(out);
            snprintf(out + n, cap - n, "%s%s:%d", n ? "," : "", l->lists[i]->version,
                     l->lists[i]->active);
        }
    }
    reply_free(&r);
}

/* Streams entries announcing expected; returns the status, the message into msg. */
static pw_status upload_raw(const char *list, const char *version, int64_t expected,
                            P(SanctionsEntry) *const *entries, size_t n, reply *out)
{
    pw_stream *s = NULL;
    assert_int_equal(
        paywire_compliance_v1_screening_service_upload_sanctions_list_start_blocking(ch, NULL, &s),
        PW_OK);
    P(UploadSanctionsListRequest)
    req = PAYWIRE__COMPLIANCE__V1__UPLOAD_SANCTIONS_LIST_REQUEST__INIT;
    req.list = (char *)list;
    req.version = (char *)version;
    req.expected_entries = expected;
    req.entries = (P(SanctionsEntry) **)entries;
    req.n_entries = n;
    assert_int_equal(
        paywire_compliance_v1_screening_service_upload_sanctions_list_stream_send(s, &req), PW_OK);
    assert_int_equal(pw_stream_close_send(s), PW_OK);
    const char *msg = NULL;
    const pw_metadata *trailers = NULL;
    pw_status rv = pw_stream_finish(s, &msg, &trailers);
    memset(out, 0, sizeof(*out));
    out->code = rv;
    snprintf(out->message, sizeof(out->message), "%s", msg ? msg : "");
    if (trailers != NULL) {
        pw_error_details_read(trailers, &out->details);
    }
    pw_stream_free(s);
    return rv;
}

static void test_lists_upload_atomic(void **state)
{
    (void)state;
    size_t n;
    P(SanctionsEntry) *const *all = ofac_list_entries(real_list(), &n);
    char v[256], msg[512];
    int active = 0;
    /* A first version of a small list. */
    assert_int_equal(ofac_upload(ch, "test-list", "v1", all, 3, 2, 0, &active, msg, sizeof(msg)),
                     PW_OK);
    assert_true(active);
    versions("test-list", v, sizeof(v));
    assert_string_equal(v, "v1:1");

    /* Fewer entries than announced: ABORTED, nothing stored, v1 still active. */
    reply r;
    assert_int_equal(upload_raw("test-list", "v2", 5, all, 3, &r), PW_ABORTED);
    assert_non_null(r.details.reason);
    assert_string_equal(r.details.reason, "UPLOAD_INCOMPLETE");
    reply_free(&r);
    versions("test-list", v, sizeof(v));
    assert_string_equal(v, "v1:1");

    /* Interrupted mid-stream: nothing stored. */
    assert_int_not_equal(
        ofac_upload(ch, "test-list", "v3", all, 50, 10, 25, &active, msg, sizeof(msg)), PW_OK);
    versions("test-list", v, sizeof(v));
    assert_string_equal(v, "v1:1");
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM sanctions_lists WHERE list = "
                                               "'test-list'"),
                     1);

    /* Bad rows: the entry and field are named; nothing stored. */
    P(SanctionsEntry) a = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT, b = a, c = a;
    char *names[] = {"SOMEONE, Listed"};
    char *bad_country[] = {"Cuba"};
    a.entry_id = "1";
    a.names = names;
    a.n_names = 1;
    b.entry_id = "2"; /* no names */
    c.entry_id = "1"; /* a repeated id */
    c.names = names;
    c.n_names = 1;
    c.countries = bad_country;
    c.n_countries = 1;
    P(SanctionsEntry) * bad[] = {&a, &b, &c};
    assert_int_equal(upload_raw("test-list", "v4", 3, bad, 3, &r), PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "entries[1].names"));
    assert_true(has_violation(&r, "entries[2].countries"));
    assert_true(has_violation(&r, "entries"));
    reply_free(&r);
    assert_int_equal(upload_raw("Bad List", "v 5", 0, NULL, 0, &r), PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "list"));
    assert_true(has_violation(&r, "version"));
    reply_free(&r);
    versions("test-list", v, sizeof(v));
    assert_string_equal(v, "v1:1");

    /* A second good version replaces it in one step; the same version again changes nothing;
     * other entries under an existing version are refused. */
    assert_int_equal(
        ofac_upload(ch, "test-list", "v2", all + 3, 4, 1000, 0, &active, msg, sizeof(msg)), PW_OK);
    versions("test-list", v, sizeof(v));
    assert_string_equal(v, "v1:0,v2:1");
    assert_int_equal(
        ofac_upload(ch, "test-list", "v2", all + 3, 4, 3, 0, &active, msg, sizeof(msg)), PW_OK);
    assert_int_equal(ofac_upload(ch, "test-list", "v2", all, 4, 1000, 0, &active, msg, sizeof(msg)),
                     PW_FAILED_PRECONDITION);
    versions("test-list", v, sizeof(v));
    assert_string_equal(v, "v1:0,v2:1");
    /* Each activation is in the audit chain. */
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM audit_events WHERE action = "
                                               "'sanctions_list.activated' AND subject_id LIKE "
                                               "'test-list@%'"),
                     2);
    assert_true(verify(0, 0).intact);
}

static void test_lists_load_ofac(void **state)
{
    (void)state;
    size_t n;
    P(SanctionsEntry) *const *all = ofac_list_entries(real_list(), &n);
    char msg[512], v[128];
    int active = 0;
    pw_status rv =
        ofac_upload(ch, "ofac-sdn", "2021-07", all, n, 1000, 0, &active, msg, sizeof(msg));
    if (rv != PW_OK) {
        fail_msg("upload: %s %s", pw_status_str(rv), msg);
    }
    assert_true(active);
    versions("ofac-sdn", v, sizeof(v));
    assert_string_equal(v, "2021-07:1");
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT entries FROM sanctions_lists WHERE list = "
                                               "'ofac-sdn' AND active"),
                     8976);
}

/* ---- screening ---- */

#define OUT(x) PAYWIRE__COMPLIANCE__V1__SCREENING_OUTCOME__SCREENING_OUTCOME_##x

static int screen_key;

static reply screen_party(const P(Party) * party, const char *key)
{
    char k[64];
    if (key == NULL) {
        snprintf(k, sizeof(k), "screen-%d", ++screen_key);
        key = k;
    }
    P(ScreenPartyRequest) req = PAYWIRE__COMPLIANCE__V1__SCREEN_PARTY_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.party = (P(Party) *)party;
    req.subject_id = "per_test";
    return call(SCREENING "ScreenParty", &req.base,
                &paywire__compliance__v1__screen_party_response__descriptor);
}

static P(Party) person(char **names, size_t n)
{
    P(Party) p = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    p.names = names;
    p.n_names = n;
    p.kind = PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_PERSON;
    return p;
}

/* Before any list is loaded: no verdict at all (fail closed). */
static void test_screening_fail_closed_without_list(void **state)
{
    (void)state;
    char *names[] = {"Harriet Pennington"};
    P(Party) p = person(names, 1);
    reply r = screen_party(&p, NULL);
    assert_int_equal(r.code, PW_UNAVAILABLE);
    assert_non_null(r.details.reason);
    assert_string_equal(r.details.reason, "NO_ACTIVE_LIST");
    reply_free(&r);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM screenings"), 0);
}

static void test_screening_party_stored(void **state)
{
    (void)state;
    char *names[] = {"Jose Gregorio Noriega Figueroa"};
    P(Party) p = person(names, 1);
    p.date_of_birth = "1969-02-21";
    reply r = screen_party(&p, "screen-noriega");
    assert_int_equal(r.code, PW_OK);
    P(ScreenPartyResponse) *resp = (P(ScreenPartyResponse) *)r.msg;
    assert_int_equal(resp->outcome, OUT(MATCH));
    assert_true(resp->n_matches >= 1);
    assert_string_equal(resp->matches[0]->list, "ofac-sdn");
    assert_string_equal(resp->matches[0]->list_version, "2021-07");
    assert_string_equal(resp->matches[0]->entry_id, "28307");
    assert_string_equal(resp->matches[0]->field, "name");
    assert_int_equal(strncmp(resp->screening_id, "scr_", 4), 0);
    char id[64];
    snprintf(id, sizeof(id), "%s", resp->screening_id);
    reply_free(&r);
    /* A retry gets the same screening. */
    r = screen_party(&p, "screen-noriega");
    assert_int_equal(r.code, PW_OK);
    assert_string_equal(((P(ScreenPartyResponse) *)r.msg)->screening_id, id);
    reply_free(&r);
    /* Stored with its inputs and the versions used. */
    P(GetScreeningRequest) g = PAYWIRE__COMPLIANCE__V1__GET_SCREENING_REQUEST__INIT;
    g.screening_id = id;
    r = call(SCREENING "GetScreening", &g.base,
             &paywire__compliance__v1__get_screening_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(Screening) *s = ((P(GetScreeningResponse) *)r.msg)->screening;
    assert_string_equal(s->id, id);
    assert_string_equal(s->subject_id, "per_test");
    assert_int_equal(s->outcome, OUT(MATCH));
    assert_int_equal(s->review_state,
                     PAYWIRE__COMPLIANCE__V1__SCREENING_REVIEW_STATE__SCREENING_REVIEW_STATE_OPEN);
    int sdn = 0;
    for (size_t i = 0; i < s->n_list_versions; i++) {
        sdn |= strcmp(s->list_versions[i], "ofac-sdn@2021-07") == 0;
    }
    assert_true(sdn);
    assert_true(s->n_matches >= 1);
    reply_free(&r);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM screenings WHERE id = '%s' AND length(party) > 0", id);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1);

    /* Someone not listed: CLEAR, and stored too. */
    names[0] = "Harriet Pennington";
    p.date_of_birth = "";
    r = screen_party(&p, NULL);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(ScreenPartyResponse) *)r.msg)->outcome, OUT(CLEAR));
    reply_free(&r);

    /* A listed address (any case for EVM), and a country under comprehensive sanctions. */
    P(Party) w = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    P(DigitalCurrencyAddress) d = PAYWIRE__COMPLIANCE__V1__DIGITAL_CURRENCY_ADDRESS__INIT;
    P(DigitalCurrencyAddress) * ds[] = {&d};
    d.currency = "ETH";
    d.address = "0X8576ACC5C05D6CE88F4E49BF65BDF0C62F91353C";
    w.digital_currency_addresses = ds;
    w.n_digital_currency_addresses = 1;
    r = screen_party(&w, NULL);
    assert_int_equal(r.code, PW_OK);
    resp = (P(ScreenPartyResponse) *)r.msg;
    assert_int_equal(resp->outcome, OUT(MATCH));
    assert_string_equal(resp->matches[0]->field, "wallet");
    assert_string_equal(resp->matches[0]->entry_id, "29703");
    reply_free(&r);
    char *ir[] = {"IR"};
    P(Party) c = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    c.countries = ir;
    c.n_countries = 1;
    r = screen_party(&c, NULL);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(ScreenPartyResponse) *)r.msg)->outcome, OUT(MATCH));
    reply_free(&r);

    /* Bad input is named. */
    char *bad_country[] = {"Iran"};
    P(Party) b = person(names, 1);
    b.countries = bad_country;
    b.n_countries = 1;
    b.date_of_birth = "21 Feb 1969";
    r = screen_party(&b, NULL);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "party.countries"));
    assert_true(has_violation(&r, "party.date_of_birth"));
    reply_free(&r);
}

static reply screen_tx(const char *key, const char *payment, int stage, P(Party) * payer,
                       const char *wallet)
{
    P(ScreenTransactionRequest) req = PAYWIRE__COMPLIANCE__V1__SCREEN_TRANSACTION_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.merchant_id = "mer_test";
    req.payment_id = (char *)payment;
    req.stage = stage;
    req.payer = payer;
    Paywire__Common__V1__ChainAddress w = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    if (wallet != NULL) {
        w.chain = PAYWIRE__COMMON__V1__CHAIN__CHAIN_ETHEREUM;
        w.address = (char *)wallet;
        req.source_wallet = &w;
    }
    return call(SCREENING "ScreenTransaction", &req.base,
                &paywire__compliance__v1__screen_transaction_response__descriptor);
}

#define VERDICT(x) PAYWIRE__COMPLIANCE__V1__TRANSACTION_VERDICT__TRANSACTION_VERDICT_##x
#define STAGE(x)   PAYWIRE__COMPLIANCE__V1__SCREENING_STAGE__SCREENING_STAGE_##x

static void test_screening_transaction(void **state)
{
    (void)state;
    char *clean[] = {"Harriet Pennington"}, *listed[] = {"Jose Gregorio Noriega Figueroa"};
    P(Party) ok = person(clean, 1), maybe = person(listed, 1);
    /* A clean payer: ALLOW; the same payment and stage again: the first verdict. */
    reply r = screen_tx("pay_1:CONFIRM", "pay_1", STAGE(CONFIRM), &ok, NULL);
    assert_int_equal(r.code, PW_OK);
    P(ScreenTransactionResponse) *t = (P(ScreenTransactionResponse) *)r.msg;
    assert_int_equal(t->verdict, VERDICT(ALLOW));
    char id[64];
    snprintf(id, sizeof(id), "%s", t->screening_id);
    reply_free(&r);
    r = screen_tx("pay_1:CONFIRM", "pay_1", STAGE(CONFIRM), &ok, NULL);
    assert_string_equal(((P(ScreenTransactionResponse) *)r.msg)->screening_id, id);
    reply_free(&r);
    /* At FUNDS_RECEIVED the deposit came from a listed wallet (EIP-55 case): BLOCK, while the
     * CONFIRM verdict of the same payment stays as it was. */
    r = screen_tx("pay_1:FUNDS_RECEIVED", "pay_1", STAGE(FUNDS_RECEIVED), &ok,
                  "0x8576aCC5C05D6Ce88f4e49bf65bdF0C62F91353C");
    assert_int_equal(r.code, PW_OK);
    t = (P(ScreenTransactionResponse) *)r.msg;
    assert_int_equal(t->verdict, VERDICT(BLOCK));
    assert_true(t->n_reasons >= 1);
    assert_string_equal(t->reasons[0], "wallet_on_sanctions_list");
    reply_free(&r);
    r = screen_tx("pay_1:CONFIRM", "pay_1", STAGE(CONFIRM), &ok, NULL);
    assert_int_equal(((P(ScreenTransactionResponse) *)r.msg)->verdict, VERDICT(ALLOW));
    reply_free(&r);
    /* A payer whose name is listed (nothing corroborates it): REVIEW. */
    r = screen_tx("pay_2:CONFIRM", "pay_2", STAGE(CONFIRM), &maybe, NULL);
    assert_int_equal(r.code, PW_OK);
    t = (P(ScreenTransactionResponse) *)r.msg;
    assert_int_equal(t->verdict, VERDICT(REVIEW));
    snprintf(id, sizeof(id), "%s", t->screening_id);
    reply_free(&r);
    P(GetScreeningRequest) g = PAYWIRE__COMPLIANCE__V1__GET_SCREENING_REQUEST__INIT;
    g.screening_id = id;
    r = call(SCREENING "GetScreening", &g.base,
             &paywire__compliance__v1__get_screening_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(Screening) *s = ((P(GetScreeningResponse) *)r.msg)->screening;
    assert_string_equal(s->payment_id, "pay_2");
    assert_int_equal(s->stage, STAGE(CONFIRM));
    assert_int_equal(s->verdict, VERDICT(REVIEW));
    reply_free(&r);
    /* FUNDS_RECEIVED without the wallet is refused. */
    r = screen_tx("pay_3:FUNDS_RECEIVED", "pay_3", STAGE(FUNDS_RECEIVED), &ok, NULL);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "source_wallet"));
    reply_free(&r);
}

/* A new version of a list is used (and recorded) by the next screening. */
static void test_screening_reloads_on_activation(void **state)
{
    (void)state;
    char *names[] = {"QUARTERMAINE, Zebedee Oswin"};
    P(SanctionsEntry) e = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT;
    e.entry_id = "z1";
    e.names = names;
    e.n_names = 1;
    e.type = "individual";
    P(SanctionsEntry) * es[] = {&e};
    char *query[] = {"Zebedee Quartermaine"};
    P(Party) p = person(query, 1);
    reply r = screen_party(&p, NULL);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(ScreenPartyResponse) *)r.msg)->outcome, OUT(CLEAR));
    reply_free(&r);
    char msg[256];
    int active = 0;
    assert_int_equal(ofac_upload(ch, "test-list", "v9", es, 1, 1, 0, &active, msg, sizeof(msg)),
                     PW_OK);
    /* Twice: both workers have loaded the new version by then, whichever answers. */
    for (int i = 0; i < 2; i++) {
        r = screen_party(&p, NULL);
        assert_int_equal(r.code, PW_OK);
        P(ScreenPartyResponse) *resp = (P(ScreenPartyResponse) *)r.msg;
        assert_int_equal(resp->outcome, OUT(POTENTIAL_MATCH));
        assert_string_equal(resp->matches[0]->list, "test-list");
        assert_string_equal(resp->matches[0]->list_version, "v9");
        reply_free(&r);
    }
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM screenings WHERE "
                                               "list_versions LIKE '%test-list@v9%'"),
                     2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_append_idempotent),
        cmocka_unit_test(test_audit_append_only),
        cmocka_unit_test(test_audit_concurrent_appends),
        cmocka_unit_test(test_audit_export_verifiable),
        cmocka_unit_test(test_audit_query_pages),
        cmocka_unit_test(test_screening_fail_closed_without_list),
        cmocka_unit_test(test_lists_upload_atomic),
        cmocka_unit_test(test_lists_load_ofac),
        cmocka_unit_test(test_screening_party_stored),
        cmocka_unit_test(test_screening_transaction),
        cmocka_unit_test(test_screening_reloads_on_activation),
        cmocka_unit_test(test_audit_chain_tamper),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
