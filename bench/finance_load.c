/*
 * finance-load: two-entry CreateTransfer traffic through the generated C
 * client (mTLS) against a running finance service, closed loop with a fixed
 * number of calls in flight over CONNECTIONS connections; prints transfers/s
 * and p50/p99 (bench/finance runs it). SHAPE "spread": each transfer moves
 * 1 from one of 10 000 merchant accounts to another; "hot": every transfer
 * credits the one platform revenue account.
 *   finance-load HOST:PORT CERT_DIR SECONDS IN_FLIGHT SHAPE CONNECTIONS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <paywire/paywire.h>
#include "hist.h"
#include "paywire/finance/v1/ledger.pw.h"

#define MAX_CONNS 64
#define ACCOUNTS  10000

typedef struct load {
    pw_channel *ch[MAX_CONNS];
    int nconns;
    uint64_t end_ns;
    int hot;
    int in_flight;
    uint64_t seq, ok, errors;
    uint64_t rng;
    pwb_hist hist;
} load;

typedef struct slot {
    load *l;
    pw_channel *ch;
    uint64_t start;
} slot;

static void next(slot *sl);

static void done(const Paywire__Finance__V1__CreateTransferResponse *resp, const pw_result *res,
                 void *ud)
{
    (void)resp;
    slot *sl = ud;
    if (res->code == PW_OK) {
        sl->l->ok++;
        pwb_hist_record(&sl->l->hist, (uv_hrtime() - sl->start) / 1000);
    } else if (sl->l->errors++ < 3) {
        fprintf(stderr, "finance-load: %s %s\n", pw_status_str(res->code), res->message);
    }
    next(sl);
}

/* "mer_" and 26 digits (Crockford digits are valid). */
static void merchant(char *out, size_t cap, uint64_t n)
{
    snprintf(out, cap, "mer_%026llu", (unsigned long long)n);
}

static void next(slot *sl)
{
    load *l = sl->l;
    if (uv_hrtime() >= l->end_ns) {
        l->in_flight--;
        return;
    }
    l->rng = l->rng * 6364136223846793005ull + 1442695040888963407ull;
    char from[40], to[40], id[80];
    merchant(from, sizeof(from), (l->rng >> 33) % ACCOUNTS);
    merchant(to, sizeof(to), (l->rng >> 17) % ACCOUNTS);
    snprintf(id, sizeof(id), "txf_adjust_load%ld_%llu", (long)getpid(),
             (unsigned long long)++l->seq);
    Paywire__Common__V1__Money amount = PAYWIRE__COMMON__V1__MONEY__INIT;
    amount.amount_minor = 1;
    amount.currency = "USD";
    Paywire__Finance__V1__MerchantAccount a = PAYWIRE__FINANCE__V1__MERCHANT_ACCOUNT__INIT,
                                          b = PAYWIRE__FINANCE__V1__MERCHANT_ACCOUNT__INIT;
    a.merchant_id = from;
    a.kind = b.kind = PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_AVAILABLE;
    a.currency = b.currency = "USD";
    b.merchant_id = to;
    Paywire__Finance__V1__PlatformAccount rev = PAYWIRE__FINANCE__V1__PLATFORM_ACCOUNT__INIT;
    rev.kind = PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PLATFORM_REVENUE;
    rev.currency = "USD";
    Paywire__Finance__V1__AccountRef ra = PAYWIRE__FINANCE__V1__ACCOUNT_REF__INIT,
                                     rb = PAYWIRE__FINANCE__V1__ACCOUNT_REF__INIT;
    ra.ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT;
    ra.merchant = &a;
    if (l->hot) {
        rb.ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_PLATFORM;
        rb.platform = &rev;
    } else {
        rb.ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT;
        rb.merchant = &b;
    }
    Paywire__Finance__V1__Entry dr = PAYWIRE__FINANCE__V1__ENTRY__INIT,
                                cr = PAYWIRE__FINANCE__V1__ENTRY__INIT;
    dr.account = &ra;
    cr.account = &rb;
    dr.amount = cr.amount = &amount;
    dr.side = PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT;
    cr.side = PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT;
    Paywire__Finance__V1__Entry *entries[] = {&dr, &cr};
    Paywire__Finance__V1__Transfer t = PAYWIRE__FINANCE__V1__TRANSFER__INIT;
    t.id = id;
    t.kind = "adjust";
    t.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    t.entries = entries;
    t.n_entries = 2;
    Paywire__Finance__V1__CreateTransferRequest req =
        PAYWIRE__FINANCE__V1__CREATE_TRANSFER_REQUEST__INIT;
    req.transfer = &t;
    req.balance_check = PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_NONE;
    pw_call_options o = {.timeout_ms = 10000};
    sl->start = uv_hrtime();
    if (paywire_finance_v1_ledger_service_create_transfer(sl->ch, &req, &o, done, sl) != PW_OK) {
        l->in_flight--;
    }
}

static void closed(pw_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(
            stderr,
            "usage: finance-load HOST:PORT CERT_DIR SECONDS IN_FLIGHT spread|hot CONNECTIONS\n");
        return 2;
    }
    char cert[256], key[256], ca[256];
    snprintf(cert, sizeof(cert), "%s/tests.crt", argv[2]);
    snprintf(key, sizeof(key), "%s/tests.key", argv[2]);
    snprintf(ca, sizeof(ca), "%s/ca.crt", argv[2]);
    pw_tls_config tls = {.cert_file = cert, .key_file = key, .ca_file = ca};
    static load l;
    l.hot = strcmp(argv[5], "hot") == 0;
    l.nconns = atoi(argv[6]);
    l.nconns = l.nconns < 1 ? 1 : l.nconns > MAX_CONNS ? MAX_CONNS : l.nconns;
    l.rng = (uint64_t)getpid();
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_channel_options co = {.tls = &tls};
    for (int i = 0; i < l.nconns; i++) {
        if (pw_channel_new(&l.ch[i], &loop, argv[1], &co) != PW_OK) {
            fprintf(stderr, "finance-load: cannot open a channel to %s\n", argv[1]);
            return 1;
        }
    }
    double secs = atof(argv[3]);
    int n = atoi(argv[4]);
    slot *slots = calloc((size_t)n, sizeof(*slots));
    uint64_t t0 = uv_hrtime();
    l.end_ns = t0 + (uint64_t)(secs * 1e9);
    l.in_flight = n;
    for (int i = 0; i < n; i++) {
        slots[i].l = &l;
        slots[i].ch = l.ch[i % l.nconns];
        next(&slots[i]);
    }
    while (l.in_flight > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    double took = (double)(uv_hrtime() - t0) / 1e9;
    printf("%-8s %4d in flight: %8.0f transfers/s  p50 %7.2f ms  p99 %7.2f ms  errors %llu\n",
           argv[5], n, (double)l.ok / took, (double)pwb_hist_quantile(&l.hist, 0.5) / 1000,
           (double)pwb_hist_quantile(&l.hist, 0.99) / 1000, (unsigned long long)l.errors);
    for (int i = 0; i < l.nconns; i++) {
        pw_channel_close(l.ch[i], closed, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(slots);
    return l.errors > 0 && l.ok == 0;
}
