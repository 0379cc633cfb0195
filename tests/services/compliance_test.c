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
#include "compliance_calls.h"
#include <sys/stat.h>
#include "ofac.h"
#include "paywire/compliance/v1/audit.pw.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/compliance/v1/verification.pw.h"
#include "mint.h"
#include "svc.h"

#define AUDIT     "/paywire.compliance.v1.AuditService/"
#define SCREENING "/paywire.compliance.v1.ScreeningService/"
#define P(x)      Paywire__Compliance__V1__##x

static ofac_list *ofac;
static svc_process srv = {.name = "compliance",
                          .binary = PW_COMPLIANCE_SERVER,
                          .health_service = "paywire.compliance.v1.ScreeningService"};
static char db_url[512];
static char idp_key[160], other_key[160];
static uv_loop_t loop;
static pw_channel *ch;

static int group_setup(void **state)
{
    (void)state;
    compliance_db_prepare("compliance_test", db_url, sizeof(db_url));
    svc_process_prepare(&srv);
    /* The identity provider's key (reviewer tokens), and another one a forger might hold. */
    char pub[160], other_pub[160], conf[600];
    snprintf(idp_key, sizeof(idp_key), "%s/idp.key", srv.dir);
    snprintf(pub, sizeof(pub), "%s/idp.pub", srv.dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", srv.dir);
    snprintf(other_pub, sizeof(other_pub), "%s/other.pub", srv.dir);
    assert_int_equal(pwreviewer_keygen(idp_key, pub), PW_OK);
    assert_int_equal(pwreviewer_keygen(other_key, other_pub), PW_OK);
    snprintf(conf, sizeof(conf),
             "log_level = warning\nworkers = 2\n"
             "encryption_key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
             "reviewer_token_key = %s\n",
             pub);
    svc_process_start(&srv, db_url, conf);
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

/* One unary call on ch, with the reviewer token (may be NULL). */
static reply call_as(const char *path, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_type, const char *token)
{
    return compliance_call(ch, path, req, resp_type, token);
}

static reply call(const char *path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_type)
{
    return compliance_call(ch, path, req, resp_type, NULL);
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
    /* Appends that waited behind another were batched: events share a transaction (xmin). With
     * 240 calls in flight on 4 connections, some always arrive while a commit is pending. */
    long long txs = pw_test_db_scalar(
        db_url, "SELECT count(DISTINCT xmin::text) FROM audit_events WHERE subject_id = "
                "'fee_concurrent'");
    print_message("test_audit_concurrent_appends: %d events in %lld transactions\n", UNIQUE, txs);
    assert_true(txs >= 1 && txs < UNIQUE);
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

/* ---- verification cases ---- */

#define VERIFICATION "/paywire.compliance.v1.VerificationService/"
#define CSTATE(x)    PAYWIRE__COMPLIANCE__V1__CASE_STATE__CASE_STATE_##x
#define DEC(x)       PAYWIRE__COMPLIANCE__V1__DECISION__DECISION_##x
#define REVIEW(x)    PAYWIRE__COMPLIANCE__V1__SCREENING_REVIEW_STATE__SCREENING_REVIEW_STATE_##x

/* A reviewer token for sub, issued age seconds ago (signed by key; NULL: the provider's). */
static const char *token(const char *sub, int age, const char *key)
{
    static char tok[4][1024];
    static int next;
    char *t = tok[next++ % 4];
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(
        pwreviewer_mint(key ? key : idp_key, sub, now - age, now - age + 300, t, sizeof(tok[0])),
        PW_OK);
    return t;
}

static char *new_merchant_id(void)
{
    static char id[4][40];
    static int next;
    char *m = id[next++ % 4];
    assert_int_equal(svc_new_id("mer", m, 40), PW_OK);
    return m;
}

static reply create_case(const char *key, const char *merchant, char *business, char **owners,
                         size_t n_owners)
{
    P(Party) org = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    char *names[] = {business};
    char *gb[] = {"GB"};
    org.names = names;
    org.n_names = 1;
    org.countries = gb;
    org.n_countries = 1;
    org.kind = PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_ORGANIZATION;
    P(Party) people[4];
    P(BeneficialOwner) os[4], *op[4];
    for (size_t i = 0; i < n_owners; i++) {
        people[i] = person(&owners[i], 1);
        paywire__compliance__v1__beneficial_owner__init(&os[i]);
        os[i].person = &people[i];
        os[i].role = "owner";
        os[i].ownership_basis_points = 2500;
        op[i] = &os[i];
    }
    P(DocumentRef) doc = PAYWIRE__COMPLIANCE__V1__DOCUMENT_REF__INIT, *docs[] = {&doc};
    doc.kind = "certificate_of_incorporation";
    doc.document_id = "doc_1";
    doc.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    P(CreateCaseRequest) req = PAYWIRE__COMPLIANCE__V1__CREATE_CASE_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.kind = PAYWIRE__COMPLIANCE__V1__CASE_KIND__CASE_KIND_KYB;
    req.subject_id = (char *)merchant;
    req.party = &org;
    req.beneficial_owners = op;
    req.n_beneficial_owners = n_owners;
    req.documents = docs;
    req.n_documents = 1;
    return call(VERIFICATION "CreateCase", &req.base,
                &paywire__compliance__v1__create_case_response__descriptor);
}

/* A KYB case created for a new merchant, its id in id (and its first KYC case's in kyc). */
static void kyb_ok(char *business, char **owners, size_t n, char id[64], char kyc[64])
{
    char key[80];
    const char *merchant = new_merchant_id();
    snprintf(key, sizeof(key), "kyb-%s", merchant);
    reply r = create_case(key, merchant, business, owners, n);
    if (r.code != PW_OK) {
        char why[600];
        snprintf(why, sizeof(why), "%s %s", pw_status_str(r.code), r.message);
        reply_free(&r);
        fail_msg("CreateCase: %s", why);
    }
    P(VerificationCase) *c = ((P(CreateCaseResponse) *)r.msg)->case_;
    snprintf(id, 64, "%s", c->id);
    if (kyc != NULL) {
        assert_true(c->n_linked_case_ids >= 1);
        snprintf(kyc, 64, "%s", c->linked_case_ids[0]);
    }
    reply_free(&r);
}

static reply decide(const char *case_id, int decision, const char *key, const char *tok)
{
    char *codes[] = {decision == DEC(REJECT) ? "high_risk_business" : "documents_verified"};
    P(DecideCaseRequest) req = PAYWIRE__COMPLIANCE__V1__DECIDE_CASE_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.case_id = (char *)case_id;
    req.decision = decision;
    req.reason_codes = codes;
    req.n_reason_codes = 1;
    req.note = "checked";
    return call_as(VERIFICATION "DecideCase", &req.base,
                   &paywire__compliance__v1__decide_case_response__descriptor, tok);
}

/* The case's state after a decision that must succeed. */
static int decide_ok(const char *case_id, int decision, const char *key, const char *sub)
{
    reply r = decide(case_id, decision, key, token(sub, 0, NULL));
    if (r.code != PW_OK) {
        fail_msg("DecideCase %s by %s: %s %s", key, sub, pw_status_str(r.code), r.message);
    }
    int st = ((P(DecideCaseResponse) *)r.msg)->case_->state;
    reply_free(&r);
    return st;
}

static void assert_refused(reply r, pw_status code, const char *reason, const char *words)
{
    if (r.code != code) {
        fail_msg("expected %s, got %s %s", pw_status_str(code), pw_status_str(r.code), r.message);
    }
    assert_non_null(r.details.reason);
    assert_string_equal(r.details.reason, reason);
    if (words != NULL && strstr(r.message, words) == NULL) {
        fail_msg("message \"%s\" does not say \"%s\"", r.message, words);
    }
    reply_free(&r);
}

static P(VerificationCase) * get_case(const char *id, reply *r)
{
    P(GetCaseRequest) g = PAYWIRE__COMPLIANCE__V1__GET_CASE_REQUEST__INIT;
    g.case_id = (char *)id;
    *r = call(VERIFICATION "GetCase", &g.base,
              &paywire__compliance__v1__get_case_response__descriptor);
    assert_int_equal(r->code, PW_OK);
    return ((P(GetCaseResponse) *)r->msg)->case_;
}

static void test_cases_with_owners(void **state)
{
    (void)state;
    char *owners[] = {"Harriet Pennington", "Oliver Thistlewood", "Marguerite Ashdown"};
    char *merchant = new_merchant_id();
    reply r = create_case("kyb-owners", merchant, "Pennington Fine Bakeries Ltd", owners, 3);
    assert_int_equal(r.code, PW_OK);
    P(VerificationCase) *c = ((P(CreateCaseResponse) *)r.msg)->case_;
    char id[64];
    snprintf(id, sizeof(id), "%s", c->id);
    assert_int_equal(strncmp(c->id, "case_", 5), 0);
    assert_int_equal(c->state, CSTATE(OPEN));
    assert_string_equal(c->subject_id, merchant);
    assert_string_equal(c->merchant_id, merchant);
    assert_int_equal(c->n_linked_case_ids, 3);
    assert_int_equal(c->n_screening_ids, 1);
    assert_int_equal(c->n_documents, 1);
    reply_free(&r);
    /* A retry answers the same case and adds nothing; the key with another request is refused. */
    r = create_case("kyb-owners", merchant, "Pennington Fine Bakeries Ltd", owners, 3);
    assert_int_equal(r.code, PW_OK);
    assert_string_equal(((P(CreateCaseResponse) *)r.msg)->case_->id, id);
    reply_free(&r);
    r = create_case("kyb-owners", merchant, "Pennington Bakeries", owners, 3);
    assert_refused(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED", NULL);
    /* One KYB case per merchant. */
    r = create_case("kyb-owners-2", merchant, "Pennington Fine Bakeries Ltd", owners, 1);
    assert_refused(r, PW_ALREADY_EXISTS, "CASE_EXISTS", id);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM cases WHERE merchant_id = "
                                               "(SELECT merchant_id FROM cases WHERE kind = 'KYB' "
                                               "ORDER BY seq DESC LIMIT 1)"),
                     4);
    /* Three linked KYC cases, four screenings, each owner a person id of its own. */
    c = get_case(id, &r);
    for (size_t i = 0; i < c->n_linked_case_ids; i++) {
        reply k;
        P(VerificationCase) *kyc = get_case(c->linked_case_ids[i], &k);
        assert_int_equal(kyc->kind, PAYWIRE__COMPLIANCE__V1__CASE_KIND__CASE_KIND_KYC);
        assert_string_equal(kyc->parent_case_id, id);
        assert_string_equal(kyc->merchant_id, merchant);
        assert_int_equal(strncmp(kyc->subject_id, "per_", 4), 0);
        assert_int_equal(kyc->n_screening_ids, 1);
        reply_free(&k);
    }
    reply_free(&r);
    /* The parties are sealed at rest: no owner's name in the clear. */
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM cases WHERE position("
                                               "convert_to('Thistlewood', 'UTF8') IN "
                                               "party_sealed) > 0"),
                     0);
    /* Listed by merchant, in pages. */
    P(ListCasesRequest) l = PAYWIRE__COMPLIANCE__V1__LIST_CASES_REQUEST__INIT;
    l.merchant_id = merchant;
    l.page_size = 3;
    r = call(VERIFICATION "ListCases", &l.base,
             &paywire__compliance__v1__list_cases_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(ListCasesResponse) *page = (P(ListCasesResponse) *)r.msg;
    assert_int_equal(page->n_cases, 3);
    assert_string_equal(page->cases[0]->id, id);
    char tok[128];
    snprintf(tok, sizeof(tok), "%s", page->next_page_token);
    reply_free(&r);
    l.page_token = tok;
    r = call(VERIFICATION "ListCases", &l.base,
             &paywire__compliance__v1__list_cases_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    page = (P(ListCasesResponse) *)r.msg;
    assert_int_equal(page->n_cases, 1);
    assert_string_equal(page->next_page_token, "");
    reply_free(&r);
    /* The opening is in the audit chain. */
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit_events WHERE action = 'case.opened' AND subject_id = '%s'",
             id);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1);
}

static void test_cases_bad_input(void **state)
{
    (void)state;
    char *owners[] = {""};
    reply r = create_case("kyb-bad", "merchant-1", "", owners, 1);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "subject_id"));
    assert_true(has_violation(&r, "party.names"));
    assert_true(has_violation(&r, "beneficial_owners[0].person.names"));
    reply_free(&r);
    P(CreateCaseRequest) k = PAYWIRE__COMPLIANCE__V1__CREATE_CASE_REQUEST__INIT;
    k.idempotency_key = "kyc-bad";
    r = call(VERIFICATION "CreateCase", &k.base,
             &paywire__compliance__v1__create_case_response__descriptor);
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "kind"));
    reply_free(&r);
    r = decide("case_1", 9, "bad-decision", token("alice", 0, NULL));
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "case_id"));
    assert_true(has_violation(&r, "decision"));
    reply_free(&r);
    char *bad_codes[] = {"looks_fine"};
    P(DecideCaseRequest) d = PAYWIRE__COMPLIANCE__V1__DECIDE_CASE_REQUEST__INIT;
    d.idempotency_key = "bad-codes";
    d.case_id = "case_00000000000000000000000000";
    d.decision = DEC(APPROVE);
    d.reason_codes = bad_codes;
    d.n_reason_codes = 1;
    r = call_as(VERIFICATION "DecideCase", &d.base,
                &paywire__compliance__v1__decide_case_response__descriptor,
                token("alice", 0, NULL));
    assert_int_equal(r.code, PW_INVALID_ARGUMENT);
    assert_true(has_violation(&r, "reason_codes"));
    reply_free(&r);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM case_decisions WHERE "
                                               "case_id LIKE 'case_0000%'"),
                     0);
}

static void test_cases_four_eyes(void **state)
{
    (void)state;
    char *owners[] = {"Oliver Thistlewood"};
    char kyb[64], kyc[64];
    kyb_ok("Thistlewood Joinery Ltd", owners, 1, kyb, kyc);
    /* No reviewer, a forged one, an old one: refused, and nothing recorded. */
    assert_refused(decide(kyb, DEC(REJECT), "fe-0", NULL), PW_PERMISSION_DENIED,
                   "REVIEWER_IDENTITY_REQUIRED", "none was sent");
    assert_refused(decide(kyb, DEC(REJECT), "fe-0", token("alice", 0, other_key)),
                   PW_PERMISSION_DENIED, "REVIEWER_IDENTITY_REQUIRED", "signature");
    assert_refused(decide(kyb, DEC(REJECT), "fe-0", token("alice", 700, NULL)),
                   PW_PERMISSION_DENIED, "REVIEWER_IDENTITY_REQUIRED", NULL);
    assert_refused(decide(kyb, DEC(REJECT), "fe-0", "a.b.c"), PW_PERMISSION_DENIED,
                   "REVIEWER_IDENTITY_REQUIRED", NULL);
    /* The KYB case before its owner's KYC case: KYC_INCOMPLETE, naming it. */
    assert_refused(decide(kyb, DEC(APPROVE), "fe-1", token("alice", 0, NULL)),
                   PW_FAILED_PRECONDITION, "KYC_INCOMPLETE", kyc);
    /* A clean KYC case: one reviewer approves it; then the KYB case (no match): one too. */
    assert_int_equal(decide_ok(kyc, DEC(APPROVE), "fe-2", "alice"), CSTATE(APPROVED));
    assert_int_equal(decide_ok(kyb, DEC(APPROVE), "fe-3", "alice"), CSTATE(APPROVED));
    assert_refused(decide(kyb, DEC(REJECT), "fe-4", token("bob", 0, NULL)), PW_FAILED_PRECONDITION,
                   "CASE_CLOSED", NULL);

    /* REJECT takes two: the same reviewer twice is refused naming the rule. */
    char other[64];
    kyb_ok("Ashdown Haulage Ltd", NULL, 0, other, NULL);
    assert_int_equal(decide_ok(other, DEC(REJECT), "fe-5", "alice"),
                     CSTATE(AWAITING_SECOND_REVIEW));
    assert_refused(decide(other, DEC(REJECT), "fe-6", token("alice", 0, NULL)),
                   PW_FAILED_PRECONDITION, "SECOND_REVIEWER_REQUIRED", "four-eyes");
    /* A second reviewer who disagrees: back to OPEN, both recorded. */
    assert_int_equal(decide_ok(other, DEC(APPROVE), "fe-7", "bob"), CSTATE(OPEN));
    assert_int_equal(decide_ok(other, DEC(REJECT), "fe-8", "bob"), CSTATE(AWAITING_SECOND_REVIEW));
    assert_int_equal(decide_ok(other, DEC(REJECT), "fe-9", "carol"), CSTATE(REJECTED));
    reply r;
    P(VerificationCase) *c = get_case(other, &r);
    assert_int_equal(c->n_decisions, 4);
    const char *by[] = {"alice", "bob", "bob", "carol"};
    const int stage[] = {1, 2, 1, 2};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(c->decisions[i]->reviewer, by[i]);
        assert_int_equal(c->decisions[i]->stage, stage[i]);
        assert_string_equal(c->decisions[i]->reason_codes[0],
                            i == 1 ? "documents_verified" : "high_risk_business");
    }
    reply_free(&r);
    /* Every decision is in the audit chain, and the chain verifies. */
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM audit_events WHERE action = 'case.decided' AND subject_id = '%s'"
             " AND actor LIKE 'reviewer:%%'",
             other);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 4);
    assert_true(verify(0, 0).intact);
}

/* Two reviewers sending one idempotency key make two decisions; one reviewer's retry, one. */
static void test_decisions_key_per_reviewer(void **state)
{
    (void)state;
    char id[64];
    kyb_ok("Marchbank Textiles Ltd", NULL, 0, id, NULL);
    assert_int_equal(decide_ok(id, DEC(REJECT), "same-key", "alice"),
                     CSTATE(AWAITING_SECOND_REVIEW));
    assert_int_equal(decide_ok(id, DEC(REJECT), "same-key", "alice"),
                     CSTATE(AWAITING_SECOND_REVIEW)); /* the stored answer */
    assert_int_equal(decide_ok(id, DEC(REJECT), "same-key", "bob"), CSTATE(REJECTED));
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM case_decisions WHERE case_id = '%s'", id);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 2);
}

static reply decide_screening(const char *id, int decision, const char *key, const char *sub)
{
    char *codes[] = {decision == 1 ? "different_entity" : "confirmed_listing"};
    P(DecideScreeningRequest) req = PAYWIRE__COMPLIANCE__V1__DECIDE_SCREENING_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.screening_id = (char *)id;
    req.decision = decision;
    req.reason_codes = codes;
    req.n_reason_codes = 1;
    return call_as(SCREENING "DecideScreening", &req.base,
                   &paywire__compliance__v1__decide_screening_response__descriptor,
                   token(sub, 0, NULL));
}

static int screening_decided(const char *id, int decision, const char *key, const char *sub)
{
    reply r = decide_screening(id, decision, key, sub);
    if (r.code != PW_OK) {
        fail_msg("DecideScreening %s: %s %s", key, pw_status_str(r.code), r.message);
    }
    int st = ((P(DecideScreeningResponse) *)r.msg)->screening->review_state;
    reply_free(&r);
    return st;
}

typedef struct racer {
    int done;
    pw_status code;
    int state;
    char reason[64];
} racer;

static void raced(const P(DecideCaseResponse) * resp, const pw_result *res, void *ud)
{
    racer *x = ud;
    x->code = res->code;
    x->state = resp ? (int)resp->case_->state : 0;
    x->done = 1;
}

/* Second reviewers deciding at once (seeded: how many, and in which order they are sent): one
 * decision completes the case; the others find it decided. */
static void test_cases_second_reviewers_race(void **state)
{
    (void)state;
    const char *seed_env = getenv("PW_TEST_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    print_message("test_cases_second_reviewers_race: seed %u (PW_TEST_SEED=%u to repeat)\n", seed,
                  seed);
    srand(seed);
    enum { MAX = 6 };
    int n = 2 + rand() % (MAX - 1);
    char id[64];
    kyb_ok("Race Logistics Ltd", NULL, 0, id, NULL);
    assert_int_equal(decide_ok(id, DEC(REJECT), "race-first", "alice"),
                     CSTATE(AWAITING_SECOND_REVIEW));
    static racer x[MAX];
    memset(x, 0, sizeof(x));
    pw_channel *chs[MAX];
    pw_metadata md[MAX];
    char *codes[] = {"high_risk_business"};
    P(DecideCaseRequest) req = PAYWIRE__COMPLIANCE__V1__DECIDE_CASE_REQUEST__INIT;
    req.case_id = id;
    req.decision = DEC(REJECT);
    req.reason_codes = codes;
    req.n_reason_codes = 1;
    req.idempotency_key = "race-second";
    int order[MAX];
    for (int i = 0; i < n; i++) {
        order[i] = i;
        chs[i] = svc_process_channel(&srv, &loop);
    }
    for (int i = n - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < n; k++) {
        int i = order[k];
        char sub[16];
        snprintf(sub, sizeof(sub), "second-%d", i);
        memset(&md[i], 0, sizeof(md[i]));
        assert_int_equal(pw_metadata_add_str(&md[i], "paywire-reviewer-token", token(sub, 0, NULL)),
                         PW_OK);
        pw_call_options o = {.timeout_ms = 60000, .wait_for_ready = 1, .metadata = &md[i]};
        assert_int_equal(
            paywire_compliance_v1_verification_service_decide_case(chs[i], &req, &o, raced, &x[i]),
            PW_OK);
    }
    int completed = 0;
    for (int i = 0; i < n; i++) {
        pw_test_run_until(&loop, &x[i].done, 60000);
        if (x[i].code == PW_OK) {
            assert_int_equal(x[i].state, CSTATE(REJECTED));
            completed++;
        } else {
            assert_int_equal(x[i].code, PW_FAILED_PRECONDITION); /* CASE_CLOSED */
        }
        pw_metadata_clear(&md[i]);
    }
    assert_int_equal(completed, 1);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM case_decisions WHERE case_id = '%s' AND stage = 'SECOND'", id);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1);
    for (int i = 0; i < n; i++) {
        close_channel(chs[i]);
    }
}

/* A KYC case for party: its id and its screening's. */
static void kyc_ok(const char *key, P(Party) * party, char id[64], char scr[64])
{
    P(CreateCaseRequest) req = PAYWIRE__COMPLIANCE__V1__CREATE_CASE_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.kind = PAYWIRE__COMPLIANCE__V1__CASE_KIND__CASE_KIND_KYC;
    req.party = party;
    reply r = call(VERIFICATION "CreateCase", &req.base,
                   &paywire__compliance__v1__create_case_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(VerificationCase) *c = ((P(CreateCaseResponse) *)r.msg)->case_;
    snprintf(id, 64, "%s", c->id);
    snprintf(scr, 64, "%s", c->screening_ids[0]);
    reply_free(&r);
}

/* A MATCH blocks approval until two reviewers clear it; the approval then takes two as well. A
 * CONFIRMED match leaves REJECT only. A POTENTIAL_MATCH is approved by two reviewers. */
static void test_cases_match_resolution(void **state)
{
    (void)state;
    /* An owner resident in a country under comprehensive sanctions: a MATCH. */
    P(Party) owner = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    char *names[] = {"Darius Kavehzadeh"}, *ir[] = {"IR"};
    owner.names = names;
    owner.n_names = 1;
    owner.countries = ir;
    owner.n_countries = 1;
    char id[64], scr[64];
    kyc_ok("kyc-match", &owner, id, scr);
    assert_refused(decide(id, DEC(APPROVE), "mr-1", token("alice", 0, NULL)),
                   PW_FAILED_PRECONDITION, "SCREENING_UNRESOLVED", "MATCH");
    /* Clearing the MATCH: two reviewers, never the same one twice. */
    assert_int_equal(screening_decided(scr, 1, "mr-2", "alice"), REVIEW(AWAITING_SECOND_REVIEW));
    assert_refused(decide_screening(scr, 1, "mr-3", "alice"), PW_FAILED_PRECONDITION,
                   "SECOND_REVIEWER_REQUIRED", "four-eyes");
    assert_refused(decide(id, DEC(APPROVE), "mr-4", token("alice", 0, NULL)),
                   PW_FAILED_PRECONDITION, "SCREENING_UNRESOLVED", NULL);
    assert_int_equal(screening_decided(scr, 1, "mr-5", "bob"), REVIEW(CLEARED));
    /* The case had a match: its approval takes two reviewers too. */
    assert_int_equal(decide_ok(id, DEC(APPROVE), "mr-6", "alice"), CSTATE(AWAITING_SECOND_REVIEW));
    assert_refused(decide(id, DEC(APPROVE), "mr-7", token("alice", 0, NULL)),
                   PW_FAILED_PRECONDITION, "SECOND_REVIEWER_REQUIRED", "alice");
    assert_int_equal(decide_ok(id, DEC(APPROVE), "mr-8", "bob"), CSTATE(APPROVED));
    P(GetScreeningRequest) g = PAYWIRE__COMPLIANCE__V1__GET_SCREENING_REQUEST__INIT;
    g.screening_id = scr;
    reply r = call(SCREENING "GetScreening", &g.base,
                   &paywire__compliance__v1__get_screening_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    P(Screening) *s = ((P(GetScreeningResponse) *)r.msg)->screening;
    assert_int_equal(s->n_decisions, 2);
    assert_int_equal(strncmp(s->decisions[0], "alice CLEAR ", 12), 0);
    assert_int_equal(strncmp(s->decisions[1], "bob CLEAR ", 10), 0);
    reply_free(&r);

    /* A confirmed MATCH: only REJECT. */
    kyc_ok("kyc-confirmed", &owner, id, scr);
    assert_int_equal(screening_decided(scr, 2, "mc-1", "alice"), REVIEW(CONFIRMED));
    assert_refused(decide_screening(scr, 1, "mc-2", "bob"), PW_FAILED_PRECONDITION, "REVIEW_CLOSED",
                   NULL);
    assert_refused(decide(id, DEC(APPROVE), "mc-3", token("bob", 0, NULL)), PW_FAILED_PRECONDITION,
                   "SCREENING_UNRESOLVED", "REJECT");
    assert_int_equal(decide_ok(id, DEC(REJECT), "mc-4", "bob"), CSTATE(AWAITING_SECOND_REVIEW));
    assert_int_equal(decide_ok(id, DEC(REJECT), "mc-5", "carol"), CSTATE(REJECTED));

    /* A POTENTIAL_MATCH (a listed name, nothing corroborating): APPROVE by two reviewers, which
     * clears the screening. */
    char *listed[] = {"Jose Gregorio Noriega Figueroa"};
    owner = person(listed, 1);
    kyc_ok("kyc-potential", &owner, id, scr);
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM screenings WHERE id = '%s' AND outcome = "
             "'POTENTIAL_MATCH' AND review_state = 'OPEN'",
             scr);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1);
    assert_int_equal(decide_ok(id, DEC(APPROVE), "mp-1", "alice"), CSTATE(AWAITING_SECOND_REVIEW));
    assert_int_equal(decide_ok(id, DEC(APPROVE), "mp-2", "bob"), CSTATE(APPROVED));
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM screenings WHERE id = '%s' AND review_state = 'CLEARED'", scr);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1);
    assert_true(verify(0, 0).intact);
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
        cmocka_unit_test(test_cases_with_owners),
        cmocka_unit_test(test_cases_bad_input),
        cmocka_unit_test(test_cases_four_eyes),
        cmocka_unit_test(test_decisions_key_per_reviewer),
        cmocka_unit_test(test_cases_second_reviewers_race),
        cmocka_unit_test(test_cases_match_resolution),
        cmocka_unit_test(test_audit_chain_tamper),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
