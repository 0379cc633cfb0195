/*
 * The merchant service end to end: a real merchant-server process (this
 * build, under the sanitizers in CI) on a fresh database of the local
 * PostgreSQL, TLS with a local CA, called through the generated C client as
 * an internal service (mTLS identity spiffe://paywire/tests) and as merchants
 * (API keys). Every RPC, every lifecycle transition (allowed and refused),
 * idempotent retries across a restart, concurrent duplicates, invalid input,
 * and authentication failures. Activation goes through a real
 * compliance-server (svc_process.h): the KYB case CreateMerchant opens there,
 * approved with DecideCase by a verified reviewer, checked with GetCase.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "pw_test_raw.h"
#include "paywire/merchant/v1/merchant.pw.h"
#include "paywire/compliance/v1/verification.pw.h"
#include "mint.h"
#include "ofac.h"
#include "svc_process.h"
#include "src/proto/grpc/health/v1/health.pb-c.h"

#define SVC  "/paywire.merchant.v1.MerchantService/"
#define P(x) Paywire__Merchant__V1__##x

static char dir[64];
static char db_url[512];
static char conf_path[128];
static int port;
static int admin_port;
static pid_t server_pid;
static uv_loop_t loop;
static pw_channel *internal;
static pw_channel *public_ch;
/* The real compliance-server activation asks, its database, and the reviewer key. */
static svc_process compliance = {.name = "compliance",
                                 .binary = PW_COMPLIANCE_SERVER,
                                 .health_service = "paywire.compliance.v1.ScreeningService"};
static char compliance_db[512];
static char idp_key[160];
static char compliance_conf[600];
static pw_channel *compliance_ch;

/* ---- the server process ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void write_config(const char *database_url)
{
    FILE *f = fopen(conf_path, "w");
    assert_non_null(f);
    fprintf(f,
            "listen = 127.0.0.1:%d\ndatabase_url = %s\n"
            "encryption_key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
            "tls_cert = %s/merchant.crt\ntls_key = %s/merchant.key\ntls_ca = %s/ca.crt\n"
            "internal_identities = spiffe://paywire/tests\nlog_level = warning\n"
            "workers = 2\nadmin_listen = 127.0.0.1:%d\nidempotency_sweep_seconds = 1\n"
            "merchant_rate_limit_per_second = 5\nmerchant_rate_limit_burst = 40\n"
            "compliance_target = localhost:%d\n"
            /* The tests read signing secrets as the signer would (orchestration's tests check
             * that no one else may). */
            "webhook_signers = spiffe://paywire/tests\n",
            port, database_url, dir, dir, dir, admin_port, compliance.port);
    fclose(f);
}

static void start_server(void)
{
    server_pid = fork();
    if (server_pid == 0) {
        char log[128];
        snprintf(log, sizeof(log), "%s/merchant.log", dir);
        FILE *out = freopen(log, "a", stderr);
        (void)out;
        execl(PW_MERCHANT_SERVER, "merchant-server", "--config", conf_path, (char *)NULL);
        _exit(127);
    }
    assert_true(server_pid > 0);
}

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        int status = 0;
        waitpid(server_pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char cmd[160];
            snprintf(cmd, sizeof(cmd), "tail -40 %s/merchant.log >&2", dir);
            print_message("merchant-server ended with status %d; its log:\n", status);
            (void)system(cmd);
        }
        /* A clean exit: no leaked handles, no sanitizer report. */
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        server_pid = 0;
    }
}

static int health(const char *service)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *resp = NULL;
    pw_call_options o = {.timeout_ms = 1000, .wait_for_ready = 1};
    pw_status rv = pw_client_unary_blocking(internal, "/grpc.health.v1.Health/Check", &o, &req.base,
                                            &grpc__health__v1__health_check_response__descriptor,
                                            &resp, NULL, NULL);
    int st = rv == PW_OK ? (int)((Grpc__Health__V1__HealthCheckResponse *)resp)->status : -1;
    pw_protobuf_free(resp);
    return st;
}

static void wait_serving(void)
{
    for (int i = 0; i < 200; i++) {
        if (health("paywire.merchant.v1.MerchantService") == 1) {
            return;
        }
        uv_sleep(50);
    }
    fail_msg("merchant-server did not become SERVING (see %s/merchant.log)", dir);
}

static pw_channel *channel(int mtls)
{
    static pw_tls_config with_cert, ca_only;
    static char cert[128], key[128], ca[128];
    snprintf(cert, sizeof(cert), "%s/tests.crt", dir);
    snprintf(key, sizeof(key), "%s/tests.key", dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    with_cert = (pw_tls_config){.cert_file = cert, .key_file = key, .ca_file = ca};
    ca_only = (pw_tls_config){.ca_file = ca};
    char target[64];
    snprintf(target, sizeof(target), "localhost:%d", port);
    pw_channel_options o = {
        .tls = mtls ? &with_cert : &ca_only, .backoff_initial_ms = 50, .backoff_max_ms = 200};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, &o), PW_OK);
    return ch;
}

/* compliance-server on its own database, with the identity provider's key for reviewers and a
 * one-entry sanctions list (case creation screens, and fails closed without a list). */
static void start_compliance(void)
{
    pw_test_db_exec(pw_test_db_admin_url(),
                    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                    "'compliance_app') THEN CREATE ROLE compliance_app LOGIN; END IF; END $$");
    pw_test_db_create("merchant_test_compliance", compliance_db, sizeof(compliance_db));
    char err[512], pub[160];
    assert_int_equal(pw_db_migrate(compliance_db, PW_SOURCE_DIR "/services/compliance/migrations",
                                   "paywire.migrate.compliance", NULL, err, sizeof(err)),
                     PW_OK);
    svc_process_prepare(&compliance);
    snprintf(idp_key, sizeof(idp_key), "%s/idp.key", compliance.dir);
    snprintf(pub, sizeof(pub), "%s/idp.pub", compliance.dir);
    assert_int_equal(pwreviewer_keygen(idp_key, pub), PW_OK);
    snprintf(compliance_conf, sizeof(compliance_conf),
             "log_level = warning\nworkers = 1\n"
             "encryption_key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
             "reviewer_token_key = %s\n"
             "internal_identities = spiffe://paywire/tests,spiffe://paywire/merchant\n",
             pub);
    svc_process_start(&compliance, compliance_db, compliance_conf);
}

/* After the loop exists: wait for compliance, load its list. */
static void compliance_ready(void)
{
    compliance_ch = svc_process_channel(&compliance, &loop);
    svc_process_wait_serving(&compliance, compliance_ch);
    char *names[] = {"QUARTERMAINE, Zebedee Oswin"};
    Paywire__Compliance__V1__SanctionsEntry e = PAYWIRE__COMPLIANCE__V1__SANCTIONS_ENTRY__INIT;
    e.entry_id = "z1";
    e.names = names;
    e.n_names = 1;
    e.type = "individual";
    Paywire__Compliance__V1__SanctionsEntry *es[] = {&e};
    int active = 0;
    char msg[256];
    assert_int_equal(
        ofac_upload(compliance_ch, "test-list", "v1", es, 1, 1, 0, &active, msg, sizeof(msg)),
        PW_OK);
}

static int group_setup(void **state)
{
    (void)state;
    start_compliance();
    /* One CA for both processes: merchant calls compliance over mTLS. */
    snprintf(dir, sizeof(dir), "%s", compliance.dir);
    pw_test_db_create("merchant_test", db_url, sizeof(db_url));
    char err[512];
    assert_int_equal(pw_db_migrate(db_url, PW_SOURCE_DIR "/services/merchant/migrations",
                                   "paywire.migrate.merchant", NULL, err, sizeof(err)),
                     PW_OK);
    snprintf(conf_path, sizeof(conf_path), "%s/merchant.conf", dir);
    port = free_port();
    admin_port = free_port();
    write_config(db_url);
    start_server();
    uv_loop_init(&loop);
    compliance_ready();
    internal = channel(1);
    public_ch = channel(0);
    wait_serving();
    return 0;
}

static void closed(pw_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(internal, closed, NULL);
    pw_channel_close(public_ch, closed, NULL);
    pw_channel_close(compliance_ch, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    stop_server();
    svc_process_stop(&compliance);
    svc_process_cleanup(&compliance);
    return 0;
}

/* ---- calls ---- */

typedef struct reply {
    pw_status code;
    char message[512];
    pw_error_details details;
    ProtobufCMessage *msg;
} reply;

/* One unary call; bearer (may be NULL) as an API key on the public channel, else mTLS. */
static reply call(const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_type, const char *bearer)
{
    char path[128];
    snprintf(path, sizeof(path), SVC "%s", method);
    pw_metadata md = {0};
    if (bearer != NULL) {
        char v[160];
        snprintf(v, sizeof(v), "Bearer %s", bearer);
        pw_metadata_add_str(&md, "authorization", v);
    }
    pw_call_options o = {.timeout_ms = 10000, .metadata = &md};
    reply r = {0};
    char *msg = NULL;
    pw_metadata trailers = {0};
    r.code = pw_client_unary_blocking(bearer ? public_ch : internal, path, &o, req, resp_type,
                                      &r.msg, &msg, &trailers);
    snprintf(r.message, sizeof(r.message), "%s", msg ? msg : "");
    pw_free(msg);
    pw_error_details_read(&trailers, &r.details);
    pw_metadata_clear(&trailers);
    pw_metadata_clear(&md);
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

static void expect_code(reply *r, pw_status code, const char *in_message)
{
    if (r->code != code || (in_message && strstr(r->message, in_message) == NULL)) {
        fail_msg("got %s \"%s\", wanted %s containing \"%s\"", pw_status_str(r->code), r->message,
                 pw_status_str(code), in_message ? in_message : "");
    }
    reply_free(r);
}

/* ---- fixtures ---- */

static int key_counter;

static void next_key(char *out, size_t cap)
{
    snprintf(out, cap, "test-%ld-%d", (long)getpid(), ++key_counter);
}

static P(Merchant) * sample_merchant(const char *name)
{
    static P(Merchant) m;
    static P(LegalEntity) le;
    static Paywire__Common__V1__PostalAddress addr;
    static char *currencies[] = {"EUR", "USD"};
    static char name_buf[64];
    snprintf(name_buf, sizeof(name_buf), "%s", name);
    paywire__merchant__v1__merchant__init(&m);
    paywire__merchant__v1__legal_entity__init(&le);
    paywire__common__v1__postal_address__init(&addr);
    addr.country = "DE";
    le.legal_name = "Test GmbH";
    le.entity_type = PAYWIRE__MERCHANT__V1__ENTITY_TYPE__ENTITY_TYPE_COMPANY;
    le.tax_id = "DE123456789";
    le.registered_address = &addr;
    m.display_name = name_buf;
    m.legal_entity = &le;
    m.country = "DE";
    m.merchant_category_code = "5942";
    m.n_currencies = 2;
    m.currencies = currencies;
    return &m;
}

/* Creates a merchant; its id into out. */
static void create(const char *name, char *out, size_t cap)
{
    char key[64];
    next_key(key, sizeof(key));
    P(CreateMerchantRequest) req = PAYWIRE__MERCHANT__V1__CREATE_MERCHANT_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant = sample_merchant(name);
    reply r = call("CreateMerchant", &req.base,
                   &paywire__merchant__v1__create_merchant_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    P(Merchant) *m = ((P(CreateMerchantResponse) *)r.msg)->merchant;
    assert_int_equal(m->state,
                     PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_PENDING_REVIEW);
    assert_string_equal(m->legal_entity->tax_id, "****6789");
    snprintf(out, cap, "%s", m->id);
    reply_free(&r);
}

/* The KYB case merchant's outbox opened in compliance (waited for, up to 30 s), into case_id. */
static void kyb_case(const char *merchant, char case_id[64])
{
    Paywire__Compliance__V1__ListCasesRequest req =
        PAYWIRE__COMPLIANCE__V1__LIST_CASES_REQUEST__INIT;
    req.merchant_id = (char *)merchant;
    for (int i = 0; i < 600; i++) {
        ProtobufCMessage *resp = NULL;
        pw_call_options o = {.timeout_ms = 10000};
        pw_status rv = pw_client_unary_blocking(
            compliance_ch, "/paywire.compliance.v1.VerificationService/ListCases", &o, &req.base,
            &paywire__compliance__v1__list_cases_response__descriptor, &resp, NULL, NULL);
        Paywire__Compliance__V1__ListCasesResponse *l = (void *)resp;
        int found = rv == PW_OK && l->n_cases == 1;
        if (found) {
            assert_string_equal(l->cases[0]->subject_id, merchant);
            snprintf(case_id, 64, "%s", l->cases[0]->id);
        }
        pw_protobuf_free(resp);
        if (found) {
            return;
        }
        uv_sleep(50);
    }
    fail_msg("no KYB case of %s reached compliance", merchant);
}

/* A reviewer's DecideCase APPROVE of case_id; its status. */
static pw_status decide_approve(const char *case_id, const char *reviewer)
{
    char tok[1024], key[64];
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(pwreviewer_mint(idp_key, reviewer, now, now + 300, tok, sizeof(tok)), PW_OK);
    snprintf(key, sizeof(key), "approve-%s-%s", case_id, reviewer);
    char *codes[] = {"documents_verified"};
    Paywire__Compliance__V1__DecideCaseRequest req =
        PAYWIRE__COMPLIANCE__V1__DECIDE_CASE_REQUEST__INIT;
    req.idempotency_key = key;
    req.case_id = (char *)case_id;
    req.decision = PAYWIRE__COMPLIANCE__V1__DECISION__DECISION_APPROVE;
    req.reason_codes = codes;
    req.n_reason_codes = 1;
    pw_metadata md = {0};
    pw_metadata_add_str(&md, "paywire-reviewer-token", tok);
    pw_call_options o = {.timeout_ms = 10000, .metadata = &md};
    ProtobufCMessage *resp = NULL;
    pw_status rv = pw_client_unary_blocking(
        compliance_ch, "/paywire.compliance.v1.VerificationService/DecideCase", &o, &req.base,
        &paywire__compliance__v1__decide_case_response__descriptor, &resp, NULL, NULL);
    pw_protobuf_free(resp);
    pw_metadata_clear(&md);
    return rv;
}

/* Compliance approves merchant's KYB case (a clean business: one reviewer); its id in case_id. */
static void approve(const char *merchant, char case_id[64])
{
    kyb_case(merchant, case_id);
    assert_int_equal(decide_approve(case_id, "reviewer@paywire.example"), PW_OK);
}

/* A lifecycle call by name; returns the reply code (the reply is freed). */
static pw_status transition(const char *method, const char *merchant, const char *extra)
{
    char key[64];
    next_key(key, sizeof(key));
    reply r;
    if (strcmp(method, "ActivateMerchant") == 0) {
        P(ActivateMerchantRequest) req = PAYWIRE__MERCHANT__V1__ACTIVATE_MERCHANT_REQUEST__INIT;
        req.idempotency_key = key;
        req.merchant_id = (char *)merchant;
        req.compliance_case_id = (char *)extra;
        r = call(method, &req.base, &paywire__merchant__v1__activate_merchant_response__descriptor,
                 NULL);
    } else if (strcmp(method, "SuspendMerchant") == 0) {
        P(SuspendMerchantRequest) req = PAYWIRE__MERCHANT__V1__SUSPEND_MERCHANT_REQUEST__INIT;
        req.idempotency_key = key;
        req.merchant_id = (char *)merchant;
        req.reason = (char *)extra;
        r = call(method, &req.base, &paywire__merchant__v1__suspend_merchant_response__descriptor,
                 NULL);
    } else if (strcmp(method, "ReinstateMerchant") == 0) {
        P(ReinstateMerchantRequest) req = PAYWIRE__MERCHANT__V1__REINSTATE_MERCHANT_REQUEST__INIT;
        req.idempotency_key = key;
        req.merchant_id = (char *)merchant;
        r = call(method, &req.base, &paywire__merchant__v1__reinstate_merchant_response__descriptor,
                 NULL);
    } else {
        P(CloseMerchantRequest) req = PAYWIRE__MERCHANT__V1__CLOSE_MERCHANT_REQUEST__INIT;
        req.idempotency_key = key;
        req.merchant_id = (char *)merchant;
        req.reason = (char *)extra;
        r = call(method, &req.base, &paywire__merchant__v1__close_merchant_response__descriptor,
                 NULL);
    }
    pw_status code = r.code;
    if (code == PW_FAILED_PRECONDITION) {
        assert_true(strcmp(r.details.reason, "INVALID_STATE_TRANSITION") == 0 ||
                    strcmp(r.details.reason, "COMPLIANCE_NOT_APPROVED") == 0);
    }
    reply_free(&r);
    return code;
}

/* An API key for merchant with scopes; its secret and id into the outputs. */
static void new_key(const char *merchant, char *const *scopes, size_t n, int live, char *secret,
                    char *id)
{
    char key[64];
    next_key(key, sizeof(key));
    P(CreateApiKeyRequest) req = PAYWIRE__MERCHANT__V1__CREATE_API_KEY_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = (char *)merchant;
    req.mode = live ? PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_LIVE
                    : PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_TEST;
    req.n_scopes = n;
    req.scopes = (char **)scopes;
    reply r = call("CreateApiKey", &req.base,
                   &paywire__merchant__v1__create_api_key_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    P(CreateApiKeyResponse) *resp = (P(CreateApiKeyResponse) *)r.msg;
    assert_true(strncmp(resp->secret, live ? "sk_live_" : "sk_test_", 8) == 0);
    strcpy(secret, resp->secret);
    strcpy(id, resp->api_key->id);
    reply_free(&r);
}

/* ---- tests ---- */

static void test_merchant_lifecycle_every_transition(void **state)
{
    (void)state;
    char m[40];
    create("Lifecycle", m, sizeof(m));
    /* From PENDING_REVIEW: suspend and reinstate are refused; activation needs an approved case. */
    assert_int_equal(transition("SuspendMerchant", m, "x"), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("ReinstateMerchant", m, ""), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("ActivateMerchant", m, "case_unapproved"), PW_FAILED_PRECONDITION);
    /* The merchant's own KYB case while it is still OPEN: refused. */
    char c[64], c3[64];
    kyb_case(m, c);
    assert_int_equal(transition("ActivateMerchant", m, c), PW_FAILED_PRECONDITION);
    approve(m, c);
    assert_int_equal(transition("ActivateMerchant", m, c), PW_OK);
    /* ACTIVE: activate and reinstate refused, suspend allowed. */
    assert_int_equal(transition("ActivateMerchant", m, c), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("ReinstateMerchant", m, ""), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("SuspendMerchant", m, "chargeback review"), PW_OK);
    /* SUSPENDED: suspend and activate refused; reinstate allowed; suspend again; close. */
    assert_int_equal(transition("SuspendMerchant", m, "again"), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("ActivateMerchant", m, c), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("ReinstateMerchant", m, ""), PW_OK);
    assert_int_equal(transition("SuspendMerchant", m, "second look"), PW_OK);
    assert_int_equal(transition("CloseMerchant", m, "merchant asked"), PW_OK);
    /* CLOSED is final. */
    assert_int_equal(transition("CloseMerchant", m, "again"), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("ReinstateMerchant", m, ""), PW_FAILED_PRECONDITION);
    assert_int_equal(transition("ActivateMerchant", m, c), PW_FAILED_PRECONDITION);
    /* PENDING_REVIEW → CLOSED directly, and ACTIVE → CLOSED. */
    char m2[40], m3[40];
    create("Rejected", m2, sizeof(m2));
    assert_int_equal(transition("CloseMerchant", m2, "rejected at review"), PW_OK);
    create("Closing", m3, sizeof(m3));
    /* Another merchant's approved case does not activate this one. */
    assert_int_equal(transition("ActivateMerchant", m3, c), PW_FAILED_PRECONDITION);
    approve(m3, c3);
    assert_int_equal(transition("ActivateMerchant", m3, c3), PW_OK);
    assert_int_equal(transition("CloseMerchant", m3, "offboarded"), PW_OK);
    /* A reason is required where the audit log needs one. */
    assert_int_equal(transition("SuspendMerchant", m, ""), PW_INVALID_ARGUMENT);
    /* Every transition left an audit row. */
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit_outbox WHERE subject_id = '%s'", m);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1 + 5); /* created + five transitions */
}

static void test_merchant_get_list_update(void **state)
{
    (void)state;
    char a[40], b[40], c[40];
    create("Alpha", a, sizeof(a));
    create("Beta", b, sizeof(b));
    create("Gamma", c, sizeof(c));
    /* Get. */
    P(GetMerchantRequest) g = PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
    g.merchant_id = b;
    reply r = call("GetMerchant", &g.base,
                   &paywire__merchant__v1__get_merchant_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    P(Merchant) *m = ((P(GetMerchantResponse) *)r.msg)->merchant;
    assert_string_equal(m->display_name, "Beta");
    char etag[24];
    snprintf(etag, sizeof(etag), "%s", m->etag);
    reply_free(&r);
    /* List newest first, two per page, every merchant exactly once across pages. */
    P(ListMerchantsRequest) l = PAYWIRE__MERCHANT__V1__LIST_MERCHANTS_REQUEST__INIT;
    l.page_size = 2;
    int seen_a = 0, seen_b = 0, seen_c = 0, pages = 0;
    char token[256] = "";
    do {
        l.page_token = token;
        r = call("ListMerchants", &l.base,
                 &paywire__merchant__v1__list_merchants_response__descriptor, NULL);
        assert_int_equal(r.code, PW_OK);
        P(ListMerchantsResponse) *lr = (P(ListMerchantsResponse) *)r.msg;
        assert_true(lr->n_merchants <= 2);
        for (size_t i = 0; i < lr->n_merchants; i++) {
            seen_a += strcmp(lr->merchants[i]->id, a) == 0;
            seen_b += strcmp(lr->merchants[i]->id, b) == 0;
            seen_c += strcmp(lr->merchants[i]->id, c) == 0;
        }
        snprintf(token, sizeof(token), "%s", lr->next_page_token);
        reply_free(&r);
        pages++;
    } while (token[0] != '\0' && pages < 100);
    assert_int_equal(seen_a + seen_b + seen_c, 3);
    /* A token used with other filters is refused. */
    l.page_size = 1;
    l.page_token = "";
    r = call("ListMerchants", &l.base, &paywire__merchant__v1__list_merchants_response__descriptor,
             NULL);
    char first_token[256];
    snprintf(first_token, sizeof(first_token), "%s",
             ((P(ListMerchantsResponse) *)r.msg)->next_page_token);
    reply_free(&r);
    l.page_token = first_token;
    l.state = PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_ACTIVE;
    r = call("ListMerchants", &l.base, &paywire__merchant__v1__list_merchants_response__descriptor,
             NULL);
    assert_true(has_violation(&r, "page_token"));
    expect_code(&r, PW_INVALID_ARGUMENT, "page_token");
    /* Update with a field mask and the etag; a stale etag is ABORTED. */
    char key[64];
    next_key(key, sizeof(key));
    char *paths[] = {"display_name", "support_email"};
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    mask.n_paths = 2;
    mask.paths = paths;
    P(Merchant) patch = PAYWIRE__MERCHANT__V1__MERCHANT__INIT;
    patch.id = b;
    patch.display_name = "Beta Books";
    patch.support_email = "help@beta.example";
    P(UpdateMerchantRequest) u = PAYWIRE__MERCHANT__V1__UPDATE_MERCHANT_REQUEST__INIT;
    u.idempotency_key = key;
    u.merchant = &patch;
    u.update_mask = &mask;
    u.etag = etag;
    r = call("UpdateMerchant", &u.base,
             &paywire__merchant__v1__update_merchant_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    m = ((P(UpdateMerchantResponse) *)r.msg)->merchant;
    assert_string_equal(m->display_name, "Beta Books");
    assert_string_equal(m->country, "DE"); /* untouched */
    assert_string_not_equal(m->etag, etag);
    reply_free(&r);
    next_key(key, sizeof(key));
    u.idempotency_key = key;
    r = call("UpdateMerchant", &u.base,
             &paywire__merchant__v1__update_merchant_response__descriptor, NULL);
    assert_string_equal(r.details.reason, "ETAG_MISMATCH");
    expect_code(&r, PW_ABORTED, "changed since you read it");
    /* Unknown and immutable paths are refused, naming update_mask. */
    char *bad_paths[] = {"country"};
    mask.n_paths = 1;
    mask.paths = bad_paths;
    u.etag = "";
    next_key(key, sizeof(key));
    u.idempotency_key = key;
    r = call("UpdateMerchant", &u.base,
             &paywire__merchant__v1__update_merchant_response__descriptor, NULL);
    assert_true(has_violation(&r, "update_mask"));
    expect_code(&r, PW_INVALID_ARGUMENT, "cannot be updated");
    /* Not found. */
    g.merchant_id = "mer_00000000000000000000000000";
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             NULL);
    expect_code(&r, PW_NOT_FOUND, "not found");
}

static void test_merchant_invalid_input_names_fields(void **state)
{
    (void)state;
    char key[64];
    next_key(key, sizeof(key));
    P(Merchant) *m = sample_merchant("");
    char *currencies[] = {"EUR", "XXX", "EUR"};
    m->currencies = currencies;
    m->n_currencies = 3;
    m->country = "Germany";
    m->merchant_category_code = "59a2";
    m->website_url = "https://127.0.0.1/shop";
    m->support_email = "nobody";
    P(CreateMerchantRequest) req = PAYWIRE__MERCHANT__V1__CREATE_MERCHANT_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant = m;
    reply r = call("CreateMerchant", &req.base,
                   &paywire__merchant__v1__create_merchant_response__descriptor, NULL);
    const char *fields[] = {
        "merchant.display_name",  "merchant.country",       "merchant.merchant_category_code",
        "merchant.currencies[1]", "merchant.currencies[2]", "merchant.support_email",
        "merchant.website_url"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!has_violation(&r, fields[i])) {
            fail_msg("no violation for %s", fields[i]);
        }
    }
    expect_code(&r, PW_INVALID_ARGUMENT, "invalid merchant.display_name");
    /* No idempotency key. */
    req.merchant = sample_merchant("Keyless");
    req.idempotency_key = "";
    r = call("CreateMerchant", &req.base,
             &paywire__merchant__v1__create_merchant_response__descriptor, NULL);
    assert_true(has_violation(&r, "idempotency_key"));
    expect_code(&r, PW_INVALID_ARGUMENT, "idempotency_key");
}

/* Same key: same answer, after a server restart too; same key, other request: refused. */
static void test_merchant_idempotency_across_restart(void **state)
{
    (void)state;
    P(CreateMerchantRequest) req = PAYWIRE__MERCHANT__V1__CREATE_MERCHANT_REQUEST__INIT;
    req.idempotency_key = "restart-key-1";
    req.merchant = sample_merchant("Restart");
    reply r = call("CreateMerchant", &req.base,
                   &paywire__merchant__v1__create_merchant_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    char id[40];
    snprintf(id, sizeof(id), "%s", ((P(CreateMerchantResponse) *)r.msg)->merchant->id);
    reply_free(&r);
    stop_server();
    start_server();
    wait_serving();
    r = call("CreateMerchant", &req.base,
             &paywire__merchant__v1__create_merchant_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    assert_string_equal(((P(CreateMerchantResponse) *)r.msg)->merchant->id, id);
    reply_free(&r);
    assert_int_equal(
        pw_test_db_scalar(db_url, "SELECT count(*) FROM merchants WHERE display_name = 'Restart'"),
        1);
    req.merchant = sample_merchant("Restart but different");
    r = call("CreateMerchant", &req.base,
             &paywire__merchant__v1__create_merchant_response__descriptor, NULL);
    assert_string_equal(r.details.reason, "IDEMPOTENCY_KEY_REUSED");
    expect_code(&r, PW_FAILED_PRECONDITION, "restart-key-1");
}

/* Many calls with one key at the same moment: one merchant, every caller told its id. */
typedef struct dup_call {
    int done;
    pw_status code;
    char id[40];
} dup_call;

static void dup_done(const P(CreateMerchantResponse) * resp, const pw_result *res, void *ud)
{
    dup_call *d = ud;
    d->done = 1;
    d->code = res->code;
    if (resp != NULL) {
        snprintf(d->id, sizeof(d->id), "%s", resp->merchant->id);
    }
}

static void set_flag(pw_channel *ch, void *ud)
{
    (void)ch;
    *(int *)ud = 1;
}

/* 12 concurrent calls with one key, over 4 connections (so both workers race): one merchant. */
static void test_merchant_concurrent_duplicates(void **state)
{
    (void)state;
    enum { N = 12, CONNS = 4 };
    dup_call d[N];
    memset(d, 0, sizeof(d));
    pw_channel *chs[CONNS];
    for (int i = 0; i < CONNS; i++) {
        chs[i] = channel(1);
    }
    P(CreateMerchantRequest) req = PAYWIRE__MERCHANT__V1__CREATE_MERCHANT_REQUEST__INIT;
    req.idempotency_key = "concurrent-key-1";
    req.merchant = sample_merchant("Concurrent");
    pw_call_options o = {.timeout_ms = 10000, .wait_for_ready = 1};
    for (int i = 0; i < N; i++) {
        assert_int_equal(paywire_merchant_v1_merchant_service_create_merchant(chs[i % CONNS], &req,
                                                                              &o, dup_done, &d[i]),
                         PW_OK);
    }
    for (int i = 0; i < N; i++) {
        pw_test_run_until(&loop, &d[i].done, 15000);
    }
    const char *first = NULL;
    for (int i = 0; i < N; i++) {
        /* The first result, or ABORTED asking for a retry: never a second merchant. */
        assert_true(d[i].code == PW_OK || d[i].code == PW_ABORTED);
        if (d[i].code == PW_OK) {
            first = first ? first : d[i].id;
            assert_string_equal(d[i].id, first);
        }
    }
    assert_non_null(first);
    assert_int_equal(
        pw_test_db_scalar(db_url,
                          "SELECT count(*) FROM merchants WHERE display_name = 'Concurrent'"),
        1);
    for (int i = 0; i < CONNS; i++) {
        int done = 0;
        pw_channel_close(chs[i], set_flag, &done);
        pw_test_run_until(&loop, &done, 5000);
    }
}

static void test_merchant_api_keys_and_auth(void **state)
{
    (void)state;
    char m[40], other[40];
    create("Keyholder", m, sizeof(m));
    create("Someone else", other, sizeof(other));
    char c[64];
    approve(m, c);
    assert_int_equal(transition("ActivateMerchant", m, c), PW_OK);
    char *read_only[] = {"merchants:read", "api_keys:read"};
    char secret[80], id[40];
    new_key(m, read_only, 2, 1, secret, id);
    /* The secret is stored only as its hash. */
    char sql[300];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM api_keys WHERE id = '%s' AND secret_prefix = '%.12s'"
             " AND length(secret_hash) = 32",
             id, secret);
    assert_int_equal(pw_test_db_scalar(db_url, sql), 1);
    char used[200];
    snprintf(used, sizeof(used),
             "SELECT count(*) FROM api_keys WHERE id = '%s'"
             " AND last_used_time > now() - interval '1 minute'",
             id);
    assert_int_equal(pw_test_db_scalar(db_url, used), 0);
    /* The merchant reads itself with its key. */
    P(GetMerchantRequest) g = PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
    g.merchant_id = m;
    reply r = call("GetMerchant", &g.base,
                   &paywire__merchant__v1__get_merchant_response__descriptor, secret);
    expect_code(&r, PW_OK, NULL);
    /* Its last use is recorded (after the answer, sampled: at most once a minute). */
    assert_int_equal(pw_test_db_wait_scalar(db_url, used, 1, 3000), 1);
    char stamp[200];
    snprintf(stamp, sizeof(stamp),
             "SELECT (extract(epoch FROM last_used_time) * 1000000)::bigint FROM api_keys"
             " WHERE id = '%s'",
             id);
    long long first_use = pw_test_db_scalar(db_url, stamp);
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             secret);
    expect_code(&r, PW_OK, NULL);
    /* A second use within the minute writes nothing: the stamp stays put for 300 ms. */
    assert_int_equal(pw_test_db_wait_scalar(db_url, stamp, first_use + 1, 300), first_use);
    /* Once the last use is older than the interval, the next use records again. */
    char age[200];
    snprintf(age, sizeof(age),
             "UPDATE api_keys SET last_used_time = now() - interval '2 minutes' WHERE id = '%s'",
             id);
    pw_test_db_exec(db_url, age);
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             secret);
    expect_code(&r, PW_OK, NULL);
    assert_int_equal(pw_test_db_wait_scalar(db_url, used, 1, 3000), 1);
    /* Another merchant's data does not exist for it. */
    g.merchant_id = other;
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             secret);
    expect_code(&r, PW_NOT_FOUND, "not found");
    /* Missing key (and no client certificate). */
    pw_metadata none = {0};
    (void)none;
    g.merchant_id = m;
    {
        char path[128];
        snprintf(path, sizeof(path), SVC "GetMerchant");
        ProtobufCMessage *resp = NULL;
        char *msg = NULL;
        pw_call_options o = {.timeout_ms = 5000};
        assert_int_equal(
            pw_client_unary_blocking(public_ch, path, &o, &g.base,
                                     &paywire__merchant__v1__get_merchant_response__descriptor,
                                     &resp, &msg, NULL),
            PW_UNAUTHENTICATED);
        assert_non_null(strstr(msg, "needs an API key"));
        pw_free(msg);
    }
    /* Unknown key. */
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             "sk_live_doesnotexist000000000000000000000000000");
    expect_code(&r, PW_UNAUTHENTICATED, "unknown API key");
    /* Wrong scope: a read-only key cannot create keys. */
    char key[64];
    next_key(key, sizeof(key));
    char *write_scope[] = {"api_keys:write"};
    P(CreateApiKeyRequest) ck = PAYWIRE__MERCHANT__V1__CREATE_API_KEY_REQUEST__INIT;
    ck.idempotency_key = key;
    ck.merchant_id = m;
    ck.mode = PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_TEST;
    ck.n_scopes = 1;
    ck.scopes = write_scope;
    r = call("CreateApiKey", &ck.base, &paywire__merchant__v1__create_api_key_response__descriptor,
             secret);
    assert_string_equal(r.details.reason, "MISSING_SCOPE");
    expect_code(&r, PW_PERMISSION_DENIED, "lacks scope api_keys:write");
    /* An API key cannot call internal methods. */
    P(ListMerchantsRequest) l = PAYWIRE__MERCHANT__V1__LIST_MERCHANTS_REQUEST__INIT;
    r = call("ListMerchants", &l.base, &paywire__merchant__v1__list_merchants_response__descriptor,
             secret);
    expect_code(&r, PW_PERMISSION_DENIED, "internal services");
    /* ResolveApiKey (internal) tells other services who the key is. */
    P(ResolveApiKeyRequest) rk = PAYWIRE__MERCHANT__V1__RESOLVE_API_KEY_REQUEST__INIT;
    rk.secret = secret;
    r = call("ResolveApiKey", &rk.base,
             &paywire__merchant__v1__resolve_api_key_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    assert_string_equal(((P(ResolveApiKeyResponse) *)r.msg)->merchant_id, m);
    assert_int_equal(((P(ResolveApiKeyResponse) *)r.msg)->n_scopes, 2);
    reply_free(&r);
    /* ListApiKeys with the key itself. */
    P(ListApiKeysRequest) lk = PAYWIRE__MERCHANT__V1__LIST_API_KEYS_REQUEST__INIT;
    lk.merchant_id = m;
    r = call("ListApiKeys", &lk.base, &paywire__merchant__v1__list_api_keys_response__descriptor,
             secret);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((P(ListApiKeysResponse) *)r.msg)->n_api_keys, 1);
    reply_free(&r);
    /* A retried CreateApiKey returns the same key with the secret withheld. */
    char *scopes[] = {"merchants:read"};
    next_key(key, sizeof(key));
    ck.idempotency_key = key;
    ck.n_scopes = 1;
    ck.scopes = scopes;
    r = call("CreateApiKey", &ck.base, &paywire__merchant__v1__create_api_key_response__descriptor,
             NULL);
    char first_id[40];
    snprintf(first_id, sizeof(first_id), "%s", ((P(CreateApiKeyResponse) *)r.msg)->api_key->id);
    assert_false(((P(CreateApiKeyResponse) *)r.msg)->secret_withheld);
    reply_free(&r);
    r = call("CreateApiKey", &ck.base, &paywire__merchant__v1__create_api_key_response__descriptor,
             NULL);
    assert_string_equal(((P(CreateApiKeyResponse) *)r.msg)->api_key->id, first_id);
    assert_true(((P(CreateApiKeyResponse) *)r.msg)->secret_withheld);
    assert_string_equal(((P(CreateApiKeyResponse) *)r.msg)->secret, "");
    reply_free(&r);
    /* Revocation takes effect at once. */
    next_key(key, sizeof(key));
    P(RevokeApiKeyRequest) rv = PAYWIRE__MERCHANT__V1__REVOKE_API_KEY_REQUEST__INIT;
    rv.idempotency_key = key;
    rv.merchant_id = m;
    rv.api_key_id = id;
    r = call("RevokeApiKey", &rv.base, &paywire__merchant__v1__revoke_api_key_response__descriptor,
             NULL);
    assert_int_equal(r.code, PW_OK);
    assert_non_null(((P(RevokeApiKeyResponse) *)r.msg)->api_key->revoke_time);
    reply_free(&r);
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             secret);
    expect_code(&r, PW_UNAUTHENTICATED, "was revoked");
    r = call("ResolveApiKey", &rk.base,
             &paywire__merchant__v1__resolve_api_key_response__descriptor, NULL);
    expect_code(&r, PW_UNAUTHENTICATED, "was revoked");
    /* Live keys of a merchant that is not active do not work. */
    char pending[40];
    create("Pending", pending, sizeof(pending));
    new_key(pending, read_only, 2, 1, secret, id);
    g.merchant_id = pending;
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             secret);
    expect_code(&r, PW_PERMISSION_DENIED, "once merchant");
}

/* Compliance down: activation fails closed (UNAVAILABLE), and a merchant created meanwhile gets
 * its KYB case once compliance is back (the outbox), then activates through it. */
static void test_merchant_activation_compliance_down(void **state)
{
    (void)state;
    char m[40], early[40], c[64], ce[64];
    create("Before the outage", early, sizeof(early));
    approve(early, ce);
    svc_process_stop(&compliance);
    create("During the outage", m, sizeof(m));
    reply r;
    char key[64];
    next_key(key, sizeof(key));
    P(ActivateMerchantRequest) req = PAYWIRE__MERCHANT__V1__ACTIVATE_MERCHANT_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = early;
    req.compliance_case_id = ce;
    r = call("ActivateMerchant", &req.base,
             &paywire__merchant__v1__activate_merchant_response__descriptor, NULL);
    assert_int_equal(r.code, PW_UNAVAILABLE); /* an approved case, but nobody to confirm it */
    reply_free(&r);
    svc_process_start(&compliance, compliance_db, compliance_conf);
    svc_process_wait_serving(&compliance, compliance_ch);
    kyb_case(m, c); /* delivered from the outbox after compliance came back */
    approve(m, c);
    assert_int_equal(transition("ActivateMerchant", m, c), PW_OK);
    assert_int_equal(transition("ActivateMerchant", early, ce), PW_OK);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM kyb_outbox WHERE "
                                               "published_time IS NULL"),
                     0);
}

/* ResolveApiKey answers by the rule of the merchant's own auth (issue 15): test keys of any
 * merchant not CLOSED, live keys of ACTIVE and SUSPENDED merchants, with the merchant's state. */
static void test_merchant_resolve_key_states(void **state)
{
    (void)state;
    char *scopes[] = {"payments:read"};
    char m[40], live[128], test_key[128], id[40];
    create("Resolver", m, sizeof(m));
    new_key(m, scopes, 1, 1, live, id);
    new_key(m, scopes, 1, 0, test_key, id);
    P(ResolveApiKeyRequest) rk = PAYWIRE__MERCHANT__V1__RESOLVE_API_KEY_REQUEST__INIT;
    char c[64];
    approve(m, c);
    struct {
        const char *transition, *extra;
        char *secret;
        pw_status code;
        int merchant_state;
    } steps[] = {
        {NULL, NULL, test_key, PW_OK,
         PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_PENDING_REVIEW},
        {NULL, NULL, live, PW_PERMISSION_DENIED, 0},
        {"ActivateMerchant", c, live, PW_OK,
         PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_ACTIVE},
        {"SuspendMerchant", "review", live, PW_OK,
         PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_SUSPENDED},
        {"CloseMerchant", "offboarded", live, PW_PERMISSION_DENIED, 0},
        {NULL, NULL, test_key, PW_PERMISSION_DENIED, 0},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].transition != NULL) {
            assert_int_equal(transition(steps[i].transition, m, steps[i].extra), PW_OK);
        }
        rk.secret = steps[i].secret;
        reply r = call("ResolveApiKey", &rk.base,
                       &paywire__merchant__v1__resolve_api_key_response__descriptor, NULL);
        if (r.code != steps[i].code) {
            fail_msg("step %zu: got %s \"%s\"", i, pw_status_str(r.code), r.message);
        }
        if (r.code == PW_OK) {
            P(ResolveApiKeyResponse) *resp = (P(ResolveApiKeyResponse) *)r.msg;
            assert_string_equal(resp->merchant_id, m);
            assert_int_equal(resp->merchant_state, steps[i].merchant_state);
        }
        reply_free(&r);
    }
}

/* API-key calls are limited per merchant (here 40 at once, then 5 a second); internal ones are not.
 */
static void test_merchant_rate_limit_per_merchant(void **state)
{
    (void)state;
    char m[40], other[40], secret[80], other_secret[80], id[40];
    create("Busy", m, sizeof(m));
    create("Quiet", other, sizeof(other));
    char *read_only[] = {"merchants:read"};
    new_key(m, read_only, 1, 0, secret, id);
    new_key(other, read_only, 1, 0, other_secret, id);
    P(GetMerchantRequest) g = PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
    g.merchant_id = m;
    int ok = 0, limited = 0;
    for (int i = 0; i < 60; i++) {
        reply r = call("GetMerchant", &g.base,
                       &paywire__merchant__v1__get_merchant_response__descriptor, secret);
        if (r.code == PW_RESOURCE_EXHAUSTED) {
            limited++;
            assert_string_equal(r.details.reason, "RATE_LIMITED");
            assert_true(r.details.retry_delay_ms > 0 && r.details.retry_delay_ms <= 201);
            assert_non_null(strstr(r.message, "over its rate limit"));
        } else {
            assert_int_equal(r.code, PW_OK);
            ok++;
        }
        reply_free(&r);
    }
    /* 40 from the burst, plus the few that refilled while the calls ran. */
    assert_true(ok >= 40 && ok < 55);
    assert_int_equal(ok + limited, 60);
    /* Another merchant has its own bucket; internal callers have none. */
    g.merchant_id = other;
    reply r = call("GetMerchant", &g.base,
                   &paywire__merchant__v1__get_merchant_response__descriptor, other_secret);
    expect_code(&r, PW_OK, NULL);
    g.merchant_id = m;
    r = call("GetMerchant", &g.base, &paywire__merchant__v1__get_merchant_response__descriptor,
             NULL);
    expect_code(&r, PW_OK, NULL);
}

static void test_merchant_destinations_and_webhooks(void **state)
{
    (void)state;
    char m[40];
    create("Payouts", m, sizeof(m));
    char key[64];
    /* A bank account by IBAN (stored sealed, returned masked) and a wallet. */
    Paywire__Merchant__V1__BankAccount bank = PAYWIRE__MERCHANT__V1__BANK_ACCOUNT__INIT;
    bank.account_holder_name = "Payouts GmbH";
    bank.country = "DE";
    bank.currency = "EUR";
    bank.iban = "DE89 3704 0044 0532 0130 00";
    P(SettlementDestination) dst = PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__INIT;
    dst.destination_case = PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_BANK_ACCOUNT;
    dst.bank_account = &bank;
    P(AddSettlementDestinationRequest)
    add = PAYWIRE__MERCHANT__V1__ADD_SETTLEMENT_DESTINATION_REQUEST__INIT;
    next_key(key, sizeof(key));
    add.idempotency_key = key;
    add.merchant_id = m;
    add.destination = &dst;
    reply r = call("AddSettlementDestination", &add.base,
                   &paywire__merchant__v1__add_settlement_destination_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    P(SettlementDestination) *got = ((P(AddSettlementDestinationResponse) *)r.msg)->destination;
    assert_string_equal(got->bank_account->iban, "****3000");
    char bank_id[40];
    snprintf(bank_id, sizeof(bank_id), "%s", got->id);
    reply_free(&r);
    assert_int_equal(
        pw_test_db_scalar(db_url, "SELECT count(*) FROM settlement_destinations"
                                  " WHERE position('DE89' in encode(destination, 'escape')) > 0"),
        0);
    /* Wrong IBAN check digits; bad wallet checksum. */
    bank.iban = "DE88 3704 0044 0532 0130 00";
    next_key(key, sizeof(key));
    add.idempotency_key = key;
    r = call("AddSettlementDestination", &add.base,
             &paywire__merchant__v1__add_settlement_destination_response__descriptor, NULL);
    assert_true(has_violation(&r, "destination.bank_account.iban"));
    expect_code(&r, PW_INVALID_ARGUMENT, "IBAN");
    Paywire__Common__V1__ChainAddress addr = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    addr.chain = PAYWIRE__COMMON__V1__CHAIN__CHAIN_ETHEREUM;
    addr.address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"; /* last letter's case is wrong */
    Paywire__Merchant__V1__Wallet wallet = PAYWIRE__MERCHANT__V1__WALLET__INIT;
    wallet.address = &addr;
    wallet.token = "USDC";
    dst.destination_case = PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_WALLET;
    dst.wallet = &wallet;
    next_key(key, sizeof(key));
    add.idempotency_key = key;
    r = call("AddSettlementDestination", &add.base,
             &paywire__merchant__v1__add_settlement_destination_response__descriptor, NULL);
    expect_code(&r, PW_INVALID_ARGUMENT, "EIP-55");
    addr.address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
    next_key(key, sizeof(key));
    add.idempotency_key = key;
    r = call("AddSettlementDestination", &add.base,
             &paywire__merchant__v1__add_settlement_destination_response__descriptor, NULL);
    expect_code(&r, PW_OK, NULL);
    /* List, remove, list. */
    P(ListSettlementDestinationsRequest)
    ld = PAYWIRE__MERCHANT__V1__LIST_SETTLEMENT_DESTINATIONS_REQUEST__INIT;
    ld.merchant_id = m;
    r = call("ListSettlementDestinations", &ld.base,
             &paywire__merchant__v1__list_settlement_destinations_response__descriptor, NULL);
    assert_int_equal(((P(ListSettlementDestinationsResponse) *)r.msg)->n_destinations, 2);
    reply_free(&r);
    P(RemoveSettlementDestinationRequest)
    rd = PAYWIRE__MERCHANT__V1__REMOVE_SETTLEMENT_DESTINATION_REQUEST__INIT;
    next_key(key, sizeof(key));
    rd.idempotency_key = key;
    rd.merchant_id = m;
    rd.destination_id = bank_id;
    r = call("RemoveSettlementDestination", &rd.base,
             &paywire__merchant__v1__remove_settlement_destination_response__descriptor, NULL);
    expect_code(&r, PW_OK, NULL);
    r = call("ListSettlementDestinations", &ld.base,
             &paywire__merchant__v1__list_settlement_destinations_response__descriptor, NULL);
    assert_int_equal(((P(ListSettlementDestinationsResponse) *)r.msg)->n_destinations, 1);
    reply_free(&r);
    /* Webhooks: create (secret once), list, rotate (new secret), delete; private URLs refused. */
    P(WebhookEndpoint) ep = PAYWIRE__MERCHANT__V1__WEBHOOK_ENDPOINT__INIT;
    ep.url = "https://hooks.example.com/paywire";
    P(CreateWebhookEndpointRequest)
    cw = PAYWIRE__MERCHANT__V1__CREATE_WEBHOOK_ENDPOINT_REQUEST__INIT;
    next_key(key, sizeof(key));
    cw.idempotency_key = key;
    cw.merchant_id = m;
    cw.endpoint = &ep;
    r = call("CreateWebhookEndpoint", &cw.base,
             &paywire__merchant__v1__create_webhook_endpoint_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    char whk[40], first_secret[80];
    snprintf(whk, sizeof(whk), "%s", ((P(CreateWebhookEndpointResponse) *)r.msg)->endpoint->id);
    snprintf(first_secret, sizeof(first_secret), "%s",
             ((P(CreateWebhookEndpointResponse) *)r.msg)->signing_secret);
    assert_true(strncmp(first_secret, "whsec_", 6) == 0);
    reply_free(&r);
    P(RotateWebhookSecretRequest) rw = PAYWIRE__MERCHANT__V1__ROTATE_WEBHOOK_SECRET_REQUEST__INIT;
    next_key(key, sizeof(key));
    rw.idempotency_key = key;
    rw.merchant_id = m;
    rw.endpoint_id = whk;
    r = call("RotateWebhookSecret", &rw.base,
             &paywire__merchant__v1__rotate_webhook_secret_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    assert_string_not_equal(((P(RotateWebhookSecretResponse) *)r.msg)->signing_secret,
                            first_secret);
    char second_secret[80];
    snprintf(second_secret, sizeof(second_secret), "%s",
             ((P(RotateWebhookSecretResponse) *)r.msg)->signing_secret);
    reply_free(&r);
    /* The signer's view (orchestration): the secrets in the clear, the old one while it
     * verifies; internal callers only. */
    P(GetWebhookTargetsRequest) gt = PAYWIRE__MERCHANT__V1__GET_WEBHOOK_TARGETS_REQUEST__INIT;
    gt.merchant_id = m;
    r = call("GetWebhookTargets", &gt.base,
             &paywire__merchant__v1__get_webhook_targets_response__descriptor, NULL);
    assert_int_equal(r.code, PW_OK);
    P(GetWebhookTargetsResponse) *targets = (void *)r.msg;
    assert_int_equal(targets->n_targets, 1);
    assert_string_equal(targets->targets[0]->endpoint_id, whk);
    assert_string_equal(targets->targets[0]->url, "https://hooks.example.com/paywire");
    assert_string_equal(targets->targets[0]->signing_secret, second_secret);
    assert_string_equal(targets->targets[0]->previous_signing_secret, first_secret);
    reply_free(&r);
    char *hooks_scope[] = {"webhooks:read"};
    char hooks_key[80], hooks_key_id[40];
    new_key(m, hooks_scope, 1, 0, hooks_key, hooks_key_id);
    r = call("GetWebhookTargets", &gt.base,
             &paywire__merchant__v1__get_webhook_targets_response__descriptor, hooks_key);
    expect_code(&r, PW_PERMISSION_DENIED, NULL);
    gt.merchant_id = "mer_nope";
    r = call("GetWebhookTargets", &gt.base,
             &paywire__merchant__v1__get_webhook_targets_response__descriptor, NULL);
    expect_code(&r, PW_INVALID_ARGUMENT, "merchant_id");
    gt.merchant_id = m;
    P(ListWebhookEndpointsRequest) lw = PAYWIRE__MERCHANT__V1__LIST_WEBHOOK_ENDPOINTS_REQUEST__INIT;
    lw.merchant_id = m;
    r = call("ListWebhookEndpoints", &lw.base,
             &paywire__merchant__v1__list_webhook_endpoints_response__descriptor, NULL);
    assert_int_equal(((P(ListWebhookEndpointsResponse) *)r.msg)->n_endpoints, 1);
    reply_free(&r);
    P(DeleteWebhookEndpointRequest)
    dw = PAYWIRE__MERCHANT__V1__DELETE_WEBHOOK_ENDPOINT_REQUEST__INIT;
    next_key(key, sizeof(key));
    dw.idempotency_key = key;
    dw.merchant_id = m;
    dw.endpoint_id = whk;
    r = call("DeleteWebhookEndpoint", &dw.base,
             &paywire__merchant__v1__delete_webhook_endpoint_response__descriptor, NULL);
    expect_code(&r, PW_OK, NULL);
    r = call("ListWebhookEndpoints", &lw.base,
             &paywire__merchant__v1__list_webhook_endpoints_response__descriptor, NULL);
    assert_int_equal(((P(ListWebhookEndpointsResponse) *)r.msg)->n_endpoints, 0);
    reply_free(&r);
    r = call("GetWebhookTargets", &gt.base,
             &paywire__merchant__v1__get_webhook_targets_response__descriptor, NULL);
    assert_int_equal(((P(GetWebhookTargetsResponse) *)r.msg)->n_targets, 0);
    reply_free(&r);
    /* Plain http to the loopback only where webhook_loopback_http allows it (not here). */
    ep.url = "http://127.0.0.1:8080/hooks";
    next_key(key, sizeof(key));
    cw.idempotency_key = key;
    r = call("CreateWebhookEndpoint", &cw.base,
             &paywire__merchant__v1__create_webhook_endpoint_response__descriptor, NULL);
    expect_code(&r, PW_INVALID_ARGUMENT, "endpoint.url");
    ep.url = "https://192.168.1.10/hooks";
    next_key(key, sizeof(key));
    cw.idempotency_key = key;
    r = call("CreateWebhookEndpoint", &cw.base,
             &paywire__merchant__v1__create_webhook_endpoint_response__descriptor, NULL);
    assert_true(has_violation(&r, "endpoint.url"));
    expect_code(&r, PW_INVALID_ARGUMENT, "endpoint.url");
}

/* Health says NOT_SERVING while the database cannot be reached. */

/* GetMerchant calls answered NOT_FOUND, as the admin listener's /metrics reports them. */
static int get_not_found_count(void)
{
    static char text[1 << 17];
    assert_int_equal(
        pw_test_http(admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 1, text, sizeof(text)),
        1);
    const char *line = strstr(text, "\npaywire_server_handled_total{method=\"" SVC
                                    "GetMerchant\",code=\"NOT_FOUND\"} ");
    assert_non_null(strstr(text, "\npaywire_server_started_total{method=\"" SVC "GetMerchant\"}"));
    return line ? atoi(strchr(line, '}') + 2) : 0;
}

/*
 * Two workers share the port: 16 connections (each lands on either, by the
 * kernel's hash) make one call each, and the admin listener on worker 0
 * reports the calls of both. Were it reporting worker 0 alone, the count would
 * fall short unless all 16 landed there (1 in 2^16).
 */
static void test_merchant_workers_share_port_and_metrics(void **state)
{
    (void)state;
    int before = get_not_found_count();
    P(GetMerchantRequest) g = PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
    g.merchant_id = "mer_00000000000000000000000000";
    for (int i = 0; i < 16; i++) {
        pw_channel *ch = channel(1);
        ProtobufCMessage *resp = NULL;
        pw_call_options o = {.timeout_ms = 5000, .wait_for_ready = 1};
        assert_int_equal(
            pw_client_unary_blocking(ch, SVC "GetMerchant", &o, &g.base,
                                     &paywire__merchant__v1__get_merchant_response__descriptor,
                                     &resp, NULL, NULL),
            PW_NOT_FOUND);
        int done = 0;
        pw_channel_close(ch, set_flag, &done);
        pw_test_run_until(&loop, &done, 5000);
    }
    assert_int_equal(get_not_found_count() - before, 16);
}

/* Idempotency records are kept 7 days, then deleted by the sweeper (here: every second). */
static void test_merchant_idempotency_records_expire(void **state)
{
    (void)state;
    pw_test_db_exec(
        db_url,
        "INSERT INTO idempotency_keys (scope, method, key, request_sha256, response,"
        " create_time) VALUES"
        " ('sweep', 'CreateMerchant', 'eight-days', '\\x00', '\\x00', now() - interval '8 days'),"
        " ('sweep', 'CreateMerchant', 'six-days', '\\x00', '\\x00', now() - interval '6 days')");
    assert_int_equal(
        pw_test_db_wait_scalar(
            db_url, "SELECT count(*) FROM idempotency_keys WHERE key = 'eight-days'", 0, 5000),
        0);
    assert_int_equal(
        pw_test_db_scalar(db_url, "SELECT count(*) FROM idempotency_keys WHERE key = 'six-days'"),
        1);
}

static void test_merchant_health_follows_database(void **state)
{
    (void)state;
    stop_server();
    write_config("postgresql://postgres@127.0.0.1:1/nowhere");
    start_server();
    int st = -1;
    for (int i = 0; i < 100 && st != 2; i++) {
        st = health("paywire.merchant.v1.MerchantService");
        uv_sleep(50);
    }
    assert_int_equal(st, 2); /* NOT_SERVING */
    /* Calls fail fast with UNAVAILABLE, not a hang. */
    P(GetMerchantRequest) g = PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
    g.merchant_id = "mer_00000000000000000000000000";
    reply r = call("GetMerchant", &g.base,
                   &paywire__merchant__v1__get_merchant_response__descriptor, NULL);
    expect_code(&r, PW_UNAVAILABLE, "database unavailable");
    stop_server();
    write_config(db_url);
    start_server();
    wait_serving();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merchant_lifecycle_every_transition),
        cmocka_unit_test(test_merchant_get_list_update),
        cmocka_unit_test(test_merchant_invalid_input_names_fields),
        cmocka_unit_test(test_merchant_idempotency_across_restart),
        cmocka_unit_test(test_merchant_concurrent_duplicates),
        cmocka_unit_test(test_merchant_api_keys_and_auth),
        cmocka_unit_test(test_merchant_resolve_key_states),
        cmocka_unit_test(test_merchant_activation_compliance_down),
        cmocka_unit_test(test_merchant_rate_limit_per_merchant),
        cmocka_unit_test(test_merchant_destinations_and_webhooks),
        cmocka_unit_test(test_merchant_workers_share_port_and_metrics),
        cmocka_unit_test(test_merchant_idempotency_records_expire),
        cmocka_unit_test(test_merchant_health_follows_database),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
