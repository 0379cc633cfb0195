/*
 * ledger_names.c: account kinds by number and by name (see ledger_names.h).
 */
#include <string.h>
#include <time.h>
#include "google/protobuf/timestamp.pb-c.h"
#include "ledger_names.h"

static const char *const kind_names[] = {
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_PENDING] = "merchant_pending",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_AVAILABLE] = "merchant_available",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_RESERVED] = "merchant_reserved",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PLATFORM_REVENUE] = "platform_revenue",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_RECEIVABLE] = "partner_receivable",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_SETTLEMENT_CLEARING] = "settlement_clearing",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_FX_POSITION] = "fx_position",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PLATFORM_CASH] = "platform_cash",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_FEES] = "partner_fees",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_FX_REVENUE] = "fx_revenue",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_FROZEN_FUNDS] = "frozen_funds",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_UNAPPLIED_FUNDS] = "unapplied_funds",
    [PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_NETWORK_FEES] = "network_fees",
};

#define KINDS ((int)(sizeof(kind_names) / sizeof(kind_names[0])))

const char *ledger_kind_name(int kind)
{
    return kind > 0 && kind < KINDS ? kind_names[kind] : NULL;
}

int ledger_kind_value(const char *name)
{
    for (int k = 1; k < KINDS; k++) {
        if (kind_names[k] != NULL && strcmp(kind_names[k], name) == 0) {
            return k;
        }
    }
    return 0;
}

int ledger_kind_is_merchant(int kind)
{
    return kind == PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_PENDING ||
           kind == PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_AVAILABLE ||
           kind == PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_RESERVED;
}

int ledger_kind_has_counterparty(int kind)
{
    return kind == PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_RECEIVABLE ||
           kind == PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_FEES ||
           kind == PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PLATFORM_CASH;
}

const char *ledger_mode_name(int mode)
{
    return mode == PAYWIRE__COMMON__V1__MODE__MODE_TEST   ? "TEST"
           : mode == PAYWIRE__COMMON__V1__MODE__MODE_LIVE ? "LIVE"
                                                          : NULL;
}

Paywire__Common__V1__Mode ledger_mode_value(const char *name)
{
    return strcmp(name, "LIVE") == 0 ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE
                                     : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
}

const char *ledger_mode_required(svc_req *r, int mode, const char *field)
{
    const char *m = ledger_mode_name(mode);
    if (m == NULL) {
        svc_violation(r, field, "required: MODE_TEST or MODE_LIVE");
    }
    return m;
}

Paywire__Common__V1__Money *ledger_money(svc_req *r, int64_t amount, const char *currency)
{
    Paywire__Common__V1__Money *m = svc_alloc(r, sizeof(*m));
    paywire__common__v1__money__init(m);
    m->amount_minor = amount;
    m->currency = svc_strdup(r, currency);
    return m;
}

int64_t ledger_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ledger_ts_us(const Google__Protobuf__Timestamp *t)
{
    return t->seconds * 1000000 + t->nanos / 1000;
}
