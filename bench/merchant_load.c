/*
 * merchant-load: sustained CreateMerchant/GetMerchant traffic through the
 * generated C client (mTLS) against a running merchant service, closed
 * loop with a fixed number of calls in flight spread over CONNECTIONS
 * connections (default 1; a server with several workers needs several to use
 * them); prints throughput and p50/p90/p99 latency per method (bench/merchant
 * runs it).
 *   merchant-load HOST:PORT CERT_DIR SECONDS IN_FLIGHT CREATE_PERCENT [CONNECTIONS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <paywire/paywire.h>
#include "paywire/merchant/v1/merchant.pw.h"

#define MAX_IDS   65536
#define MAX_CONNS 64

typedef struct series {
    const char *name;
    uint64_t *lat_us;
    size_t n, cap;
    uint64_t errors;
} series;

typedef struct load {
    pw_channel *ch[MAX_CONNS];
    int nconns;
    uint64_t end_ns;
    int create_pct;
    int in_flight;
    uint64_t seq;
    char (*ids)[40];
    size_t nids;
    series create, get;
    uint64_t rng;
} load;

typedef struct slot {
    load *l;
    pw_channel *ch;
    uint64_t start;
    char key[48];
} slot;

static void record(series *s, uint64_t us, int ok)
{
    if (!ok) {
        s->errors++;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->lat_us = realloc(s->lat_us, s->cap * sizeof(*s->lat_us));
    }
    s->lat_us[s->n++] = us;
}

static void next(slot *sl);

static void created(const Paywire__Merchant__V1__CreateMerchantResponse *resp, const pw_result *res,
                    void *ud)
{
    slot *sl = ud;
    load *l = sl->l;
    record(&l->create, (uv_hrtime() - sl->start) / 1000, res->code == PW_OK);
    if (resp != NULL && l->nids < MAX_IDS) {
        snprintf(l->ids[l->nids++], 40, "%s", resp->merchant->id);
    }
    next(sl);
}

static void got(const Paywire__Merchant__V1__GetMerchantResponse *resp, const pw_result *res,
                void *ud)
{
    (void)resp;
    slot *sl = ud;
    record(&sl->l->get, (uv_hrtime() - sl->start) / 1000, res->code == PW_OK);
    next(sl);
}

static void next(slot *sl)
{
    load *l = sl->l;
    if (uv_hrtime() >= l->end_ns) {
        l->in_flight--;
        return;
    }
    l->rng = l->rng * 6364136223846793005ull + 1442695040888963407ull;
    int dice = (int)((l->rng >> 33) % 100);
    pw_call_options o = {.timeout_ms = 10000};
    sl->start = uv_hrtime();
    if (dice < l->create_pct || l->nids == 0) {
        static char *currencies[] = {"USD"};
        Paywire__Common__V1__PostalAddress addr = PAYWIRE__COMMON__V1__POSTAL_ADDRESS__INIT;
        addr.country = "US";
        Paywire__Merchant__V1__LegalEntity le = PAYWIRE__MERCHANT__V1__LEGAL_ENTITY__INIT;
        le.legal_name = "Load LLC";
        le.entity_type = PAYWIRE__MERCHANT__V1__ENTITY_TYPE__ENTITY_TYPE_COMPANY;
        le.registered_address = &addr;
        Paywire__Merchant__V1__Merchant m = PAYWIRE__MERCHANT__V1__MERCHANT__INIT;
        m.display_name = "Load Test Shop";
        m.legal_entity = &le;
        m.country = "US";
        m.merchant_category_code = "5734";
        m.n_currencies = 1;
        m.currencies = currencies;
        snprintf(sl->key, sizeof(sl->key), "load-%ld-%llu", (long)getpid(),
                 (unsigned long long)++l->seq);
        Paywire__Merchant__V1__CreateMerchantRequest req =
            PAYWIRE__MERCHANT__V1__CREATE_MERCHANT_REQUEST__INIT;
        req.idempotency_key = sl->key;
        req.merchant = &m;
        if (paywire_merchant_v1_merchant_service_create_merchant(sl->ch, &req, &o, created, sl) !=
            PW_OK) {
            l->in_flight--;
        }
    } else {
        Paywire__Merchant__V1__GetMerchantRequest req =
            PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
        req.merchant_id = l->ids[(l->rng >> 20) % l->nids];
        if (paywire_merchant_v1_merchant_service_get_merchant(sl->ch, &req, &o, got, sl) != PW_OK) {
            l->in_flight--;
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void report(const series *s, double secs)
{
    if (s->n == 0) {
        printf("%-15s %8s\n", s->name, "no calls");
        return;
    }
    qsort(s->lat_us, s->n, sizeof(uint64_t), cmp_u64);
    printf("%-15s %8zu %9.0f %9.2f %9.2f %9.2f %7llu\n", s->name, s->n, (double)s->n / secs,
           (double)s->lat_us[s->n / 2] / 1000, (double)s->lat_us[s->n * 9 / 10] / 1000,
           (double)s->lat_us[s->n * 99 / 100] / 1000, (unsigned long long)s->errors);
}

static void closed(pw_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: merchant-load HOST:PORT CERT_DIR SECONDS IN_FLIGHT CREATE_PERCENT "
                        "[CONNECTIONS]\n");
        return 2;
    }
    char cert[256], key[256], ca[256];
    snprintf(cert, sizeof(cert), "%s/tests.crt", argv[2]);
    snprintf(key, sizeof(key), "%s/tests.key", argv[2]);
    snprintf(ca, sizeof(ca), "%s/ca.crt", argv[2]);
    pw_tls_config tls = {.cert_file = cert, .key_file = key, .ca_file = ca};
    pw_channel_options co = {.tls = &tls};
    uv_loop_t loop;
    uv_loop_init(&loop);
    load l = {.create_pct = atoi(argv[5]),
              .rng = 42,
              .create = {.name = "CreateMerchant"},
              .get = {.name = "GetMerchant"}};
    l.ids = calloc(MAX_IDS, sizeof(*l.ids));
    l.nconns = argc > 6 ? atoi(argv[6]) : 1;
    if (l.nconns < 1 || l.nconns > MAX_CONNS) {
        fprintf(stderr, "merchant-load: CONNECTIONS must be 1..%d\n", MAX_CONNS);
        return 2;
    }
    for (int i = 0; i < l.nconns; i++) {
        if (pw_channel_new(&l.ch[i], &loop, argv[1], &co) != PW_OK) {
            fprintf(stderr, "merchant-load: cannot create a channel\n");
            return 1;
        }
    }
    int n = atoi(argv[4]);
    slot *slots = calloc((size_t)n, sizeof(*slots));
    double secs = atof(argv[3]);
    uint64_t start = uv_hrtime();
    l.end_ns = start + (uint64_t)(secs * 1e9);
    l.in_flight = n;
    for (int i = 0; i < n; i++) {
        slots[i].l = &l;
        slots[i].ch = l.ch[i % l.nconns];
        next(&slots[i]);
    }
    while (l.in_flight > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    double elapsed = (double)(uv_hrtime() - start) / 1e9;
    printf("%-15s %8s %9s %9s %9s %9s %7s\n", "method", "calls", "calls/s", "p50 ms", "p90 ms",
           "p99 ms", "errors");
    report(&l.create, elapsed);
    report(&l.get, elapsed);
    printf("(%d calls in flight, %.1f s, %d mTLS connection%s; %d%% creates)\n", n, elapsed,
           l.nconns, l.nconns == 1 ? "" : "s", l.create_pct);
    int errors = (int)(l.create.errors + l.get.errors);
    for (int i = 0; i < l.nconns; i++) {
        pw_channel_close(l.ch[i], closed, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(l.create.lat_us);
    free(l.get.lat_us);
    free(l.ids);
    free(slots);
    return errors ? 1 : 0;
}
