/*
 * compliance-bench: the compliance service's numbers (bench/compliance runs it).
 *   compliance-bench SDN_DIR [HOST:PORT CERT_DIR SECONDS]
 * 1. The screening engine in process, on the real OFAC SDN list: per-name
 *    latency (p50/p99/max) of the indexed screening ScreenParty runs and of a
 *    naive baseline that scores every listed name with Jaro–Winkler, on the
 *    same queries in one run, and the speed-up as a ratio.
 * 2. With a server: the list uploaded, ScreenParty and ScreenTransaction end
 *    to end (mTLS, the stored screening committed) one call at a time, then
 *    AppendEvent with 32
 *    calls in flight for SECONDS: appends/s and latency.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <paywire/alloc.h>
#include <paywire/paywire.h>
#include "index.h"
#include "ofac.h"
#include "paywire/compliance/v1/audit.pw.h"
#include "paywire/compliance/v1/screening.pw.h"

#define P(x) Paywire__Compliance__V1__##x

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void summary(const char *what, uint64_t *ns, size_t n, double *p99_out, double *mean_out)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)ns[i];
    }
    double p50 = (double)ns[n / 2] / 1e3, p99 = (double)ns[(n * 99) / 100] / 1e3;
    printf("%-34s %6zu  mean %9.1f us  p50 %9.1f us  p99 %9.1f us  max %9.1f us\n", what, n,
           sum / (double)n / 1e3, p50, p99, (double)ns[n - 1] / 1e3);
    if (p99_out) {
        *p99_out = p99;
    }
    if (mean_out) {
        *mean_out = sum / (double)n / 1e3;
    }
}

/* "LAST, First" → "First Last" with one character of the longest word changed (every other
 * query), or a made-up unlisted person. */
static void query_name(P(SanctionsEntry) *const *e, size_t n, size_t i, char *out, size_t cap)
{
    static const char *first[] = {"James", "Maria", "Lukas", "Akira", "Ingrid", "Pierre"};
    static const char *last[] = {"Pennington", "Whitfield", "Lindqvist", "Haverford", "Ogilvie"};
    if (i % 2 == 1) {
        snprintf(out, cap, "%s %s", first[i % 6], last[(i / 6) % 5]);
        return;
    }
    const char *name = e[(i * 37) % n]->names[0];
    const char *comma = strchr(name, ',');
    if (comma) {
        snprintf(out, cap, "%s %.*s", comma + 1 + (comma[1] == ' '), (int)(comma - name), name);
    } else {
        snprintf(out, cap, "%s", name);
    }
    size_t len = strlen(out);
    if (len > 6 && (i / 2) % 2 == 0) {
        out[len / 2] = out[len / 2] == 'Q' ? 'X' : 'Q';
    }
}

static void engine(ofac_list *l)
{
    size_t n;
    P(SanctionsEntry) *const *e = ofac_list_entries(l, &n);
    P(UploadSanctionsListRequest)
    req = PAYWIRE__COMPLIANCE__V1__UPLOAD_SANCTIONS_LIST_REQUEST__INIT;
    req.list = "ofac-sdn";
    req.version = "2021-07";
    req.entries = (P(SanctionsEntry) **)e;
    req.n_entries = n;
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = pw_malloc(len);
    protobuf_c_message_pack(&req.base, buf);
    ProtobufCMessage *copy = protobuf_c_message_unpack(
        &paywire__compliance__v1__upload_sanctions_list_request__descriptor,
        pw_protobuf_allocator(), len, buf);
    pw_free(buf);
    uint64_t t0 = now_ns();
    sx_index *x = NULL;
    if (copy == NULL || sx_index_new(&x, (P(UploadSanctionsListRequest) *)copy) != PW_OK) {
        fprintf(stderr, "compliance-bench: cannot index the list\n");
        exit(1);
    }
    printf("index: %zu names of %zu entries built in %.1f ms\n", sx_index_name_count(x), n,
           (double)(now_ns() - t0) / 1e6);
    sx_config cfg = {950, 880};
    enum { QUERIES = 4000, NAIVE = 400 };
    uint64_t *fast = malloc(sizeof(uint64_t) * QUERIES), *slow = malloc(sizeof(uint64_t) * NAIVE);
    uint64_t *fast_same = malloc(sizeof(uint64_t) * NAIVE);
    int agree = 0;
    for (size_t i = 0; i < QUERIES; i++) {
        char name[512];
        query_name(e, n, i, name, sizeof(name));
        char *names[] = {name};
        P(Party) p = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
        p.names = names;
        p.n_names = 1;
        sx_hit hits[16];
        int o1, o2;
        uint64_t a = now_ns();
        sx_index_screen(x, &p, &cfg, 0, hits, 16, &o1);
        uint64_t b = now_ns();
        fast[i] = b - a;
        if (i < NAIVE) {
            fast_same[i] = b - a;
            a = now_ns();
            sx_index_screen(x, &p, &cfg, 1, hits, 16, &o2);
            slow[i] = now_ns() - a;
            agree += o1 == o2;
        }
    }
    double fp99, fmean, sp99, smean, cp99, cmean;
    summary("indexed screening, per name", fast, QUERIES, &fp99, &fmean);
    summary("  same queries as the baseline", fast_same, NAIVE, &cp99, &cmean);
    summary("naive: Jaro-Winkler over every name", slow, NAIVE, &sp99, &smean);
    printf("speed-up (naive / indexed, same %d queries): p99 %.0fx, mean %.0fx; outcomes agree "
           "on %d of %d\n",
           NAIVE, sp99 / cp99, smean / cmean, agree, NAIVE);
    free(fast);
    free(slow);
    free(fast_same);
    sx_index_free(x);
}

/* ---- against a server ---- */

typedef struct appender {
    pw_channel *ch;
    uint64_t end, started;
    uint64_t *lat;
    size_t n, cap, errors;
    int in_flight;
    uint64_t seq;
} appender;

typedef struct slot {
    appender *a;
    uint64_t start;
    char key[48];
    P(AuditEvent) e;
    P(AppendEventRequest) req;
} slot;

static void append_next(slot *s);

static void appended(const P(AppendEventResponse) * resp, const pw_result *res, void *ud)
{
    (void)resp;
    slot *s = ud;
    appender *a = s->a;
    if (res->code != PW_OK) {
        a->errors++;
    } else {
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 4096;
            a->lat = realloc(a->lat, a->cap * sizeof(uint64_t));
        }
        a->lat[a->n++] = now_ns() - s->start;
    }
    if (now_ns() < a->end) {
        append_next(s);
    } else {
        a->in_flight--;
    }
}

static void append_next(slot *s)
{
    appender *a = s->a;
    snprintf(s->key, sizeof(s->key), "bench-%lld-%llu", (long long)time(NULL),
             (unsigned long long)++a->seq);
    paywire__compliance__v1__audit_event__init(&s->e);
    s->e.actor = "spiffe://paywire/merchant";
    s->e.action = "merchant.updated";
    s->e.subject_id = "mer_bench";
    s->e.source = "merchant";
    s->e.detail_json = "{\"field\":\"display_name\",\"etag\":7}";
    paywire__compliance__v1__append_event_request__init(&s->req);
    s->req.idempotency_key = s->key;
    s->req.event = &s->e;
    s->start = now_ns();
    pw_call_options o = {.timeout_ms = 10000};
    if (paywire_compliance_v1_audit_service_append_event(a->ch, &s->req, &o, appended, s) !=
        PW_OK) {
        a->errors++;
        a->in_flight--;
    }
}

static void closed(pw_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static int server(ofac_list *l, const char *addr, const char *certs, int secs)
{
    char cert[256], key[256], ca[256];
    snprintf(cert, sizeof(cert), "%s/tests.crt", certs);
    snprintf(key, sizeof(key), "%s/tests.key", certs);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    pw_tls_config tls = {.cert_file = cert, .key_file = key, .ca_file = ca};
    pw_channel_options co = {.tls = &tls, .connect_timeout_ms = 5000};
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_channel *ch;
    if (pw_channel_new(&ch, &loop, addr, &co) != PW_OK) {
        fprintf(stderr, "compliance-bench: no channel to %s\n", addr);
        return 1;
    }
    size_t n;
    P(SanctionsEntry) *const *e = ofac_list_entries(l, &n);
    char msg[512];
    int active = 0;
    uint64_t t0 = now_ns();
    pw_status rv = ofac_upload(ch, "ofac-sdn", "2021-07", e, n, 1000, 0, &active, msg, sizeof(msg));
    if (rv != PW_OK) {
        fprintf(stderr, "compliance-bench: upload: %s %s\n", pw_status_str(rv), msg);
        return 1;
    }
    printf("UploadSanctionsList: %zu entries stored and active in %.0f ms\n", n,
           (double)(now_ns() - t0) / 1e6);
    enum { CALLS = 2000 };
    uint64_t *lat = malloc(sizeof(uint64_t) * CALLS);
    size_t ok = 0;
    for (size_t i = 0; i < CALLS; i++) {
        char name[512], k[48];
        query_name(e, n, i, name, sizeof(name));
        snprintf(k, sizeof(k), "bench-%lld-%zu", (long long)time(NULL), i);
        char *names[] = {name};
        P(Party) p = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
        p.names = names;
        p.n_names = 1;
        P(ScreenPartyRequest) req = PAYWIRE__COMPLIANCE__V1__SCREEN_PARTY_REQUEST__INIT;
        req.idempotency_key = k;
        req.party = &p;
        P(ScreenPartyResponse) *resp = NULL;
        uint64_t a = now_ns();
        rv = paywire_compliance_v1_screening_service_screen_party_blocking(ch, &req, NULL, &resp,
                                                                           NULL);
        if (rv == PW_OK) {
            lat[ok++] = now_ns() - a;
            pw_protobuf_free(&resp->base);
        }
    }
    if (ok > 0) {
        summary("ScreenParty end to end (stored)", lat, ok, NULL, NULL);
    }
    printf("ScreenParty errors: %zu\n", (size_t)CALLS - ok);
    /* ScreenTransaction at FUNDS_RECEIVED: the payer's name and the deposit's wallet. */
    ok = 0;
    for (size_t i = 0; i < CALLS; i++) {
        char name[512], k[64], pay[48];
        query_name(e, n, i, name, sizeof(name));
        snprintf(pay, sizeof(pay), "pay_bench_%lld_%zu", (long long)time(NULL), i);
        snprintf(k, sizeof(k), "%s:FUNDS_RECEIVED", pay);
        char *names[] = {name};
        P(Party) p = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
        p.names = names;
        p.n_names = 1;
        Paywire__Common__V1__ChainAddress w = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
        w.chain = PAYWIRE__COMMON__V1__CHAIN__CHAIN_ETHEREUM;
        w.address = "0x52908400098527886E0F7030069857D2E4169EE7";
        P(ScreenTransactionRequest) req = PAYWIRE__COMPLIANCE__V1__SCREEN_TRANSACTION_REQUEST__INIT;
        req.idempotency_key = k;
        req.payment_id = pay;
        req.merchant_id = "mer_bench";
        req.stage = PAYWIRE__COMPLIANCE__V1__SCREENING_STAGE__SCREENING_STAGE_FUNDS_RECEIVED;
        req.payer = &p;
        req.source_wallet = &w;
        req.payer_country = "DE";
        P(ScreenTransactionResponse) *resp = NULL;
        uint64_t a = now_ns();
        rv = paywire_compliance_v1_screening_service_screen_transaction_blocking(ch, &req, NULL,
                                                                                 &resp, NULL);
        if (rv == PW_OK) {
            lat[ok++] = now_ns() - a;
            pw_protobuf_free(&resp->base);
        }
    }
    if (ok > 0) {
        summary("ScreenTransaction end to end", lat, ok, NULL, NULL);
    }
    printf("ScreenTransaction errors: %zu\n", (size_t)CALLS - ok);
    free(lat);
    uint64_t dur = (uint64_t)(secs > 0 ? secs : 1) * (uint64_t)1000000000;
    appender a = {.ch = ch, .end = now_ns() + dur, .in_flight = 32};
    slot *slots = calloc(32, sizeof(slot));
    t0 = now_ns();
    for (int i = 0; i < 32; i++) {
        slots[i].a = &a;
        append_next(&slots[i]);
    }
    while (a.in_flight > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    double took = (double)(now_ns() - t0) / 1e9;
    printf("AppendEvent, 32 in flight: %.0f appends/s (%zu in %.1f s, %zu errors)\n",
           (double)a.n / took, a.n, took, a.errors);
    if (a.n > 0) {
        summary("AppendEvent latency", a.lat, a.n, NULL, NULL);
    }
    free(a.lat);
    free(slots);
    pw_channel_close(ch, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: compliance-bench SDN_DIR [HOST:PORT CERT_DIR SECONDS]\n");
        return 2;
    }
    ofac_list *l = NULL;
    char err[1100];
    if (ofac_list_read(&l, argv[1], NULL, NULL, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "compliance-bench: %s\n", err);
        return 1;
    }
    engine(l);
    int rc = argc == 5 ? server(l, argv[2], argv[3], atoi(argv[4])) : 0;
    ofac_list_free(l);
    return rc;
}
