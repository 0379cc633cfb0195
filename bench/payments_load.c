/*
 * payments-load: CreatePayment with confirm and automatic capture through
 * the generated C client (mTLS, an internal caller) against a running
 * orchestration service, closed loop with a fixed number of calls in flight
 * over CONNECTIONS connections, each payment of one of 100 merchants with
 * its own idempotency key; prints payments/s and p50/p99 of the whole
 * create-authorize-capture call (bench/payments runs it). A call counts
 * only when it answers OK with the payment SUCCEEDED. With REFUND_EVERY N
 * (bench/stack: 10), every Nth succeeded payment is then refunded in part
 * by the same slot (CreateRefund, its own key) before it starts the next
 * payment; refunds are counted and timed apart (a refund counts when it
 * answers OK, PENDING or SUCCEEDED).
 *   payments-load HOST:PORT CERT_DIR SECONDS IN_FLIGHT CONNECTIONS [REFUND_EVERY]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <paywire/paywire.h>
#include "hist.h"
#include "paywire/orchestration/v1/payments.pw.h"

#define MAX_CONNS 64

typedef struct load {
    pw_channel *ch[MAX_CONNS];
    int nconns;
    uint64_t end_ns;
    int in_flight;
    uint64_t seq, ok, errors, not_succeeded;
    uint64_t refund_every, refunds, refund_errors;
    pwb_hist hist, refund_hist;
} load;

typedef struct slot {
    load *l;
    pw_channel *ch;
    uint64_t start;
} slot;

static void next(slot *sl);

static void refunded(const Paywire__Orchestration__V1__CreateRefundResponse *resp,
                     const pw_result *res, void *ud)
{
    slot *sl = ud;
    if (res->code == PW_OK && resp->refund != NULL &&
        resp->refund->state != PAYWIRE__ORCHESTRATION__V1__REFUND_STATE__REFUND_STATE_FAILED) {
        sl->l->refunds++;
        pwb_hist_record(&sl->l->refund_hist, (uv_hrtime() - sl->start) / 1000);
    } else if (sl->l->refund_errors++ < 3) {
        fprintf(stderr, "payments-load: refund: %s %s\n", pw_status_str(res->code), res->message);
    }
    next(sl);
}

/* A partial refund (a third) of a payment just captured; 1 when the call started. */
static int refund(slot *sl, const Paywire__Orchestration__V1__Payment *p)
{
    char key[96];
    snprintf(key, sizeof(key), "refund-%s", p->id);
    Paywire__Common__V1__Money amount = PAYWIRE__COMMON__V1__MONEY__INIT;
    amount.amount_minor = p->amount->amount_minor / 3;
    amount.currency = p->amount->currency;
    Paywire__Orchestration__V1__CreateRefundRequest req =
        PAYWIRE__ORCHESTRATION__V1__CREATE_REFUND_REQUEST__INIT;
    req.idempotency_key = key;
    req.payment_id = p->id;
    req.amount = &amount;
    req.reason = "bench";
    pw_call_options o = {.timeout_ms = 10000};
    sl->start = uv_hrtime();
    return paywire_orchestration_v1_payment_service_create_refund(sl->ch, &req, &o, refunded, sl) ==
           PW_OK;
}

static void done(const Paywire__Orchestration__V1__CreatePaymentResponse *resp,
                 const pw_result *res, void *ud)
{
    slot *sl = ud;
    if (res->code == PW_OK && resp->payment != NULL &&
        resp->payment->state ==
            PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED) {
        sl->l->ok++;
        pwb_hist_record(&sl->l->hist, (uv_hrtime() - sl->start) / 1000);
        if (sl->l->refund_every > 0 && sl->l->ok % sl->l->refund_every == 0 &&
            refund(sl, resp->payment)) {
            return;
        }
    } else if (res->code == PW_OK) {
        sl->l->not_succeeded++;
    } else if (sl->l->errors++ < 3) {
        fprintf(stderr, "payments-load: %s %s\n", pw_status_str(res->code), res->message);
    }
    next(sl);
}

static void next(slot *sl)
{
    load *l = sl->l;
    if (uv_hrtime() >= l->end_ns) {
        l->in_flight--;
        return;
    }
    uint64_t n = ++l->seq;
    char key[64], merchant[40];
    snprintf(key, sizeof(key), "load-%ld-%llu", (long)getpid(), (unsigned long long)n);
    snprintf(merchant, sizeof(merchant), "mer_%026llu", (unsigned long long)(n % 100));
    Paywire__Orchestration__V1__CardMethod c = PAYWIRE__ORCHESTRATION__V1__CARD_METHOD__INIT;
    c.vault_token = "tok_4242424242424242";
    c.brand = "visa";
    c.last4 = "4242";
    Paywire__Orchestration__V1__PaymentMethod pm = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__INIT;
    pm.method_case = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_CARD;
    pm.card = &c;
    Paywire__Common__V1__Money amount = PAYWIRE__COMMON__V1__MONEY__INIT;
    amount.amount_minor = 1000 + (int64_t)(n % 9000);
    amount.currency = "USD";
    Paywire__Orchestration__V1__CreatePaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__CREATE_PAYMENT_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = merchant;
    req.amount = &amount;
    req.method = &pm;
    req.capture_method = PAYWIRE__ORCHESTRATION__V1__CAPTURE_METHOD__CAPTURE_METHOD_AUTOMATIC;
    req.confirm = 1;
    pw_call_options o = {.timeout_ms = 10000};
    sl->start = uv_hrtime();
    if (paywire_orchestration_v1_payment_service_create_payment(sl->ch, &req, &o, done, sl) !=
        PW_OK) {
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
    if (argc < 6) {
        fprintf(stderr, "usage: payments-load HOST:PORT CERT_DIR SECONDS IN_FLIGHT CONNECTIONS"
                        " [REFUND_EVERY]\n");
        return 2;
    }
    char cert[256], key[256], ca[256];
    snprintf(cert, sizeof(cert), "%s/tests.crt", argv[2]);
    snprintf(key, sizeof(key), "%s/tests.key", argv[2]);
    snprintf(ca, sizeof(ca), "%s/ca.crt", argv[2]);
    pw_tls_config tls = {.cert_file = cert, .key_file = key, .ca_file = ca};
    static load l;
    l.nconns = atoi(argv[5]);
    l.refund_every = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
    l.nconns = l.nconns < 1 ? 1 : l.nconns > MAX_CONNS ? MAX_CONNS : l.nconns;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_channel_options co = {.tls = &tls};
    for (int i = 0; i < l.nconns; i++) {
        if (pw_channel_new(&l.ch[i], &loop, argv[1], &co) != PW_OK) {
            fprintf(stderr, "payments-load: cannot open a channel to %s\n", argv[1]);
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
    printf("%4d in flight: %8.0f payments/s  p50 %7.2f ms  p99 %7.2f ms  payments %llu"
           "  errors %llu  not succeeded %llu\n",
           n, (double)l.ok / took, (double)pwb_hist_quantile(&l.hist, 0.5) / 1000,
           (double)pwb_hist_quantile(&l.hist, 0.99) / 1000, (unsigned long long)l.ok,
           (unsigned long long)l.errors, (unsigned long long)l.not_succeeded);
    if (l.refund_every > 0) {
        printf("%4d in flight: %8.0f refunds/s   p50 %7.2f ms  p99 %7.2f ms  refunds %llu"
               "  errors %llu\n",
               n, (double)l.refunds / took, (double)pwb_hist_quantile(&l.refund_hist, 0.5) / 1000,
               (double)pwb_hist_quantile(&l.refund_hist, 0.99) / 1000,
               (unsigned long long)l.refunds, (unsigned long long)l.refund_errors);
    }
    for (int i = 0; i < l.nconns; i++) {
        pw_channel_close(l.ch[i], closed, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(slots);
    return l.errors > 0 && l.ok == 0;
}
