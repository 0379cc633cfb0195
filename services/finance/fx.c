/*
 * fx.c: FxService (docs/design/finance.md, FX). Rates are exact decimals
 * (mantissa × 10^-scale); a quote locks the mid rate and the offered rate
 * (mid less our spread, still exact) for at most 300 s; a conversion is one
 * ledger transfer txf_fx_<cnv> through the FX position accounts, each
 * currency balanced on its own and the spread credited to FX revenue at
 * once. The conversion id comes from the quote's (one conversion per quote),
 * so the transfer is idempotent by the quote: it is booked first, through
 * the ledger's batcher (its own transaction, with the AVAILABLE check), then
 * the quote is marked used with the call's idempotency key.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "batch.h"
#include "fx.h"
#include "money.h"

/* Our spread on the mid rate, in basis points (configuration later). */
#define SPREAD_BPS 50

/* ---- currencies ---- */

static const char exp0[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF";
static const char exp3[] = "BHD IQD JOD KWD LYD OMR TND";
static const char tokens[] = "USDC USDT EURC PYUSD";
static const char all_codes[] =
    "AED AUD BHD BRL CAD CHF CLP CNY CZK DKK EUR GBP HKD HUF IDR ILS INR ISK JOD JPY KRW KWD MXN"
    " MYR NOK NZD OMR PHP PLN SAR SEK SGD THB TND TRY USD VND ZAR USDC USDT EURC PYUSD";

static int in_words(const char *list, const char *code)
{
    size_t n = strlen(code);
    for (const char *p = list; (p = strstr(p, code)) != NULL; p += n) {
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

int fx_is_token(const char *code)
{
    return in_words(tokens, code);
}

/* ISO 4217 minor units; the supported tokens have 6. */
static uint32_t exponent_of(const char *code)
{
    return in_words(tokens, code) ? 6 : in_words(exp0, code) ? 0 : in_words(exp3, code) ? 3 : 2;
}

SVC_HANDLER(list_currencies, Paywire__Finance__V1__ListCurrenciesRequest)
{
    (void)req;
    svc_authenticate(r, NULL);
    size_t n = 0;
    Paywire__Common__V1__Currency **list = svc_alloc(r, 64 * sizeof(*list));
    char codes[sizeof(all_codes)];
    memcpy(codes, all_codes, sizeof(codes));
    for (char *save = NULL, *c = strtok_r(codes, " ", &save); c && n < 64;
         c = strtok_r(NULL, " ", &save)) {
        Paywire__Common__V1__Currency *cur = svc_alloc(r, sizeof(*cur));
        paywire__common__v1__currency__init(cur);
        cur->code = svc_strdup(r, c);
        cur->exponent = exponent_of(c);
        cur->kind = in_words(tokens, c) ? PAYWIRE__COMMON__V1__CURRENCY_KIND__CURRENCY_KIND_TOKEN
                                        : PAYWIRE__COMMON__V1__CURRENCY_KIND__CURRENCY_KIND_FIAT;
        list[n++] = cur;
    }
    Paywire__Finance__V1__ListCurrenciesResponse resp =
        PAYWIRE__FINANCE__V1__LIST_CURRENCIES_RESPONSE__INIT;
    resp.currencies = list;
    resp.n_currencies = n;
    svc_reply(r, &resp.base);
}

/* ---- rates ---- */

static void check_pair(svc_req *r, const char *base, const char *quote, const char *bf,
                       const char *qf)
{
    if (!svc_currency_ok(base)) {
        svc_violation(r, bf, "a currency code");
    }
    if (!svc_currency_ok(quote) || strcmp(base, quote) == 0) {
        svc_violation(r, qf, "a currency code other than the base");
    }
}

static const pw_db_stmt insert_rate = {
    "fx_insert_rate",
    "INSERT INTO rates (base_currency, quote_currency, mantissa, scale, source, as_of_time)"
    " VALUES ($1, $2, $3, $4, $5, $6)",
    6,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_INT4, PW_DB_TEXT, PW_DB_TIMESTAMPTZ}};

static void publish_tx(svc_req *r, const void *arg)
{
    const Paywire__Finance__V1__PublishRatesRequest *req = arg;
    for (size_t i = 0; i < req->n_rates; i++) {
        const Paywire__Finance__V1__Rate *x = req->rates[i];
        pw_db_param p[] = {
            pw_db_text(x->base_currency), pw_db_text(x->quote_currency),
            pw_db_int8(x->mantissa),      pw_db_int4((int32_t)x->scale),
            pw_db_text(x->source),        pw_db_timestamptz(ledger_ts_us(x->as_of_time))};
        svc_tx_pipe(r, &insert_rate, p, 6);
    }
    Paywire__Finance__V1__PublishRatesResponse resp =
        PAYWIRE__FINANCE__V1__PUBLISH_RATES_RESPONSE__INIT;
    resp.accepted = (int32_t)req->n_rates;
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(publish_rates, Paywire__Finance__V1__PublishRatesRequest)
{
    if (req->n_rates == 0 || req->n_rates > 500) {
        svc_violation(r, "rates", "1 to 500 rates");
    }
    for (size_t i = 0; i < req->n_rates; i++) {
        const Paywire__Finance__V1__Rate *x = req->rates[i];
        char b[48], q[48], f[48];
        snprintf(b, sizeof(b), "rates[%zu].base_currency", i);
        snprintf(q, sizeof(q), "rates[%zu].quote_currency", i);
        check_pair(r, x->base_currency, x->quote_currency, b, q);
        snprintf(f, sizeof(f), "rates[%zu].mantissa", i);
        if (x->mantissa <= 0 || x->scale > 18) {
            svc_violation(r, f, "a positive mantissa with a scale of at most 18");
        }
        snprintf(f, sizeof(f), "rates[%zu].source", i);
        if (!svc_text_ok(x->source, 64)) {
            svc_violation(r, f, "required, at most 64 characters");
        }
        snprintf(f, sizeof(f), "rates[%zu].as_of_time", i);
        if (x->as_of_time == NULL) {
            svc_violation(r, f, "required");
        }
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "PublishRates", req->idempotency_key,
                   &paywire__finance__v1__publish_rates_response__descriptor, publish_tx, req);
}

static const pw_db_stmt rate_at = {
    "fx_rate_at",
    "SELECT base_currency, quote_currency, mantissa, scale, source, as_of_time FROM rates"
    " WHERE base_currency = $1 AND quote_currency = $2 AND as_of_time <= $3"
    " ORDER BY as_of_time DESC, seq DESC LIMIT 1",
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TIMESTAMPTZ}};

static Paywire__Finance__V1__Rate *rate_from(svc_req *r, svc_row row)
{
    Paywire__Finance__V1__Rate *x = svc_alloc(r, sizeof(*x));
    paywire__finance__v1__rate__init(x);
    x->base_currency = svc_text(row, "base_currency");
    x->quote_currency = svc_text(row, "quote_currency");
    x->mantissa = svc_int64(row, "mantissa");
    x->scale = (uint32_t)svc_int64(row, "scale");
    x->source = svc_text(row, "source");
    x->as_of_time = svc_time(row, "as_of_time");
    return x;
}

SVC_HANDLER(get_rate, Paywire__Finance__V1__GetRateRequest)
{
    check_pair(r, req->base_currency, req->quote_currency, "base_currency", "quote_currency");
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {
        pw_db_text(req->base_currency), pw_db_text(req->quote_currency),
        pw_db_timestamptz(req->at_time ? ledger_ts_us(req->at_time) : ledger_now_us())};
    svc_row row = svc_one(r, svc_query(r, &rate_at, p, 3), "rate", req->quote_currency);
    Paywire__Finance__V1__GetRateResponse resp = PAYWIRE__FINANCE__V1__GET_RATE_RESPONSE__INIT;
    resp.rate = rate_from(r, row);
    svc_reply(r, &resp.base);
}

/* ---- quotes ---- */

static const pw_db_stmt insert_quote = {
    "fx_insert_quote",
    "INSERT INTO quotes (mode, id, merchant_id, from_currency, to_currency, mid_mantissa,"
    " mid_scale, offered_mantissa, offered_scale, spread_basis_points, source, as_of_time,"
    " expire_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    13,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_INT4, PW_DB_INT8,
     PW_DB_INT4, PW_DB_INT4, PW_DB_TEXT, PW_DB_TIMESTAMPTZ, PW_DB_TIMESTAMPTZ}};

/* mid × (10 000 − spread) / 10 000, exact: the mantissa grows, the scale by 4; narrowed
 * (half-even) only when it would not fit int64 or a scale of 18. */
static Paywire__Finance__V1__Rate *offered_rate(svc_req *r, const Paywire__Finance__V1__Rate *mid)
{
    ledger_i128 m = (ledger_i128)mid->mantissa * (10000 - SPREAD_BPS);
    uint32_t scale = mid->scale + 4;
    while (m > INT64_MAX || scale > 18) {
        m = money_div_half_even(m, 10);
        scale--;
    }
    Paywire__Finance__V1__Rate *x = svc_alloc(r, sizeof(*x));
    *x = *mid;
    x->mantissa = (int64_t)m;
    x->scale = scale;
    return x;
}

static void create_quote_tx(svc_req *r, const void *arg)
{
    const Paywire__Finance__V1__CreateQuoteRequest *req = arg;
    int64_t now = ledger_now_us();
    pw_db_param p[] = {pw_db_text(req->from_currency), pw_db_text(req->to_currency),
                       pw_db_timestamptz(now)};
    svc_row row = svc_one(r, svc_tx_query(r, &rate_at, p, 3), "rate", req->to_currency);
    Paywire__Finance__V1__Quote *q = svc_alloc(r, sizeof(*q));
    paywire__finance__v1__quote__init(q);
    char id[40];
    if (svc_new_id("quo", id, sizeof(id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    q->id = svc_strdup(r, id);
    q->mode = req->mode;
    q->merchant_id = req->merchant_id;
    q->mid_rate = rate_from(r, row);
    q->offered_rate = offered_rate(r, q->mid_rate);
    q->spread_basis_points = SPREAD_BPS;
    int64_t expire = now + (int64_t)(req->lock_seconds ? req->lock_seconds : 30) * 1000000;
    q->expire_time = svc_timestamp(r, expire);
    pw_db_param ins[] = {pw_db_text(ledger_mode_name(req->mode)),
                         pw_db_text(id),
                         pw_db_text(req->merchant_id),
                         pw_db_text(req->from_currency),
                         pw_db_text(req->to_currency),
                         pw_db_int8(q->mid_rate->mantissa),
                         pw_db_int4((int32_t)q->mid_rate->scale),
                         pw_db_int8(q->offered_rate->mantissa),
                         pw_db_int4((int32_t)q->offered_rate->scale),
                         pw_db_int4(SPREAD_BPS),
                         pw_db_text(q->mid_rate->source),
                         pw_db_timestamptz(ledger_ts_us(q->mid_rate->as_of_time)),
                         pw_db_timestamptz(expire)};
    svc_tx_pipe(r, &insert_quote, ins, 13);
    Paywire__Finance__V1__CreateQuoteResponse resp =
        PAYWIRE__FINANCE__V1__CREATE_QUOTE_RESPONSE__INIT;
    resp.quote = q;
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(create_quote, Paywire__Finance__V1__CreateQuoteRequest)
{
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    check_pair(r, req->from_currency, req->to_currency, "from_currency", "to_currency");
    if (req->lock_seconds > 300) {
        svc_violation(r, "lock_seconds", "at most 300 (0: 30)");
    }
    ledger_mode_required(r, req->mode, "mode");
    svc_check(r);
    svc_authenticate(r, NULL);
    svc_idempotent(r, "CreateQuote", req->idempotency_key,
                   &paywire__finance__v1__create_quote_response__descriptor, create_quote_tx, req);
}

/* ---- conversions ---- */

static const pw_db_stmt select_quote = {
    "fx_select_quote",
    "SELECT merchant_id, from_currency, to_currency, mid_mantissa, mid_scale, offered_mantissa,"
    " offered_scale, expire_time, coalesce(conversion_id, '') AS conversion_id,"
    " expire_time < now() AS expired,"
    " EXISTS (SELECT 1 FROM transfers t WHERE t.mode = $1 AND t.id = 'txf_fx_cnv_' ||"
    " substr($2, 5)) AS booked FROM quotes WHERE mode = $1 AND id = $2",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt use_quote = {
    "fx_use_quote",
    "UPDATE quotes SET conversion_id = $3 WHERE mode = $1 AND id = $2"
    " AND (conversion_id IS NULL OR conversion_id = $3)",
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};

typedef struct conversion {
    const char *mode, *quote_id;
    Paywire__Finance__V1__ConvertResponse *resp;
} conversion;

static void convert_tx(svc_req *r, const void *arg)
{
    const conversion *c = arg;
    pw_db_param p[] = {pw_db_text(c->mode), pw_db_text(c->quote_id),
                       pw_db_text(c->resp->conversion_id)};
    if (pw_db_affected(svc_tx_query(r, &use_quote, p, 3)) != 1) {
        svc_abort(r, PW_FAILED_PRECONDITION, "QUOTE_USED",
                  "quote %s was used by another conversion", c->quote_id);
    }
    svc_commit(r, &c->resp->base, NULL);
}

/* The amounts of a conversion: mid M and offered O in the target currency; ends on failure. */
static void amounts(svc_req *r, svc_row q, int64_t a, int64_t *mid, int64_t *offered)
{
    uint32_t ex = exponent_of(svc_text(q, "from_currency"));
    uint32_t ey = exponent_of(svc_text(q, "to_currency"));
    if (money_convert(a, svc_int64(q, "mid_mantissa"), (uint32_t)svc_int64(q, "mid_scale"), ex, ey,
                      mid) != PW_OK ||
        money_convert(a, svc_int64(q, "offered_mantissa"), (uint32_t)svc_int64(q, "offered_scale"),
                      ex, ey, offered) != PW_OK) {
        svc_violation(r, "amount", "the converted amount does not fit int64 minor units");
    } else if (*offered <= 0) {
        svc_violation(r, "amount", "too small: it converts to 0 minor units");
    }
    svc_check(r);
}

SVC_HANDLER(convert, Paywire__Finance__V1__ConvertRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (!svc_id_ok(req->quote_id, "quo")) {
        svc_violation(r, "quote_id", "a quote id: \"quo_\" and 26 characters");
    }
    if (req->amount == NULL || req->amount->amount_minor <= 0) {
        svc_violation(r, "amount", "required: a positive number of minor units");
    }
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "required: 1-128 printable ASCII characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_text(mode), pw_db_text(req->quote_id)};
    svc_row q = svc_one(r, svc_query(r, &select_quote, p, 2), "quote", req->quote_id);
    const char *from = svc_text(q, "from_currency"), *to = svc_text(q, "to_currency");
    const char *merchant = svc_text(q, "merchant_id");
    if (strcmp(req->amount->currency, from) != 0) {
        svc_violation(r, "amount.currency", "must be the quote's from_currency");
        svc_check(r);
    }
    /* Once booked, the conversion is the quote's: its retries replay it, expired or not. */
    if (!svc_bool(q, "booked")) {
        if (svc_text(q, "conversion_id")[0] != '\0') {
            svc_fail_reason(r, PW_FAILED_PRECONDITION, "QUOTE_USED", "quote %s was used",
                            req->quote_id);
        }
        if (svc_bool(q, "expired")) {
            svc_fail_reason(r, PW_FAILED_PRECONDITION, "QUOTE_EXPIRED",
                            "quote %s expired; ask for a new one", req->quote_id);
        }
    }
    int64_t a = req->amount->amount_minor, m = 0, o = 0;
    amounts(r, q, a, &m, &o);
    Paywire__Finance__V1__ConvertResponse *resp = svc_alloc(r, sizeof(*resp));
    paywire__finance__v1__convert_response__init(resp);
    char cnv[48], txf[64];
    snprintf(cnv, sizeof(cnv), "cnv_%s", req->quote_id + 4);
    snprintf(txf, sizeof(txf), "txf_fx_%s", cnv);
    resp->conversion_id = svc_strdup(r, cnv);
    resp->transfer_id = svc_strdup(r, txf);
    resp->converted = ledger_money(r, o, to);
    resp->mid_amount = ledger_money(r, m, to);
    resp->spread = ledger_money(r, m - o, to);
    ledger_entry_in e[5] = {
        {NULL, "merchant_available", merchant, a, from, 0, "fx"},
        {NULL, "fx_position", "", a, from, 1, "fx"},
        {NULL, "fx_position", "", m, to, 0, "fx"},
        {NULL, "merchant_available", merchant, o, to, 1, "fx"},
        {NULL, "fx_revenue", "", m - o, to, 1, "fx"},
    };
    ledger_op op;
    memset(&op, 0, sizeof(op));
    op.kind = LEDGER_CREATE;
    op.mode = mode;
    op.transfer_id = txf;
    op.transfer_kind = "fx";
    op.reference = cnv;
    op.partner_reference = "";
    op.balance_check = "AVAILABLE";
    op.entries = e;
    op.entry_count = m > o ? 5 : 4;
    ledger_apply(r, &op);
    if (op.code != PW_OK) {
        if (strcmp(op.reason, "TRANSFER_ID_REUSED") == 0) {
            svc_fail_reason(r, PW_FAILED_PRECONDITION, "QUOTE_USED",
                            "quote %s was used for another amount", req->quote_id);
        }
        svc_fail_reason(r, op.code, op.reason[0] ? op.reason : NULL, "%s", op.message);
    }
    conversion c = {mode, req->quote_id, resp};
    svc_idempotent(r, "Convert", req->idempotency_key,
                   &paywire__finance__v1__convert_response__descriptor, convert_tx, &c);
}

static const paywire_finance_v1_fx_service_handlers fx_handlers = {
    .list_currencies = list_currencies_h,
    .publish_rates = publish_rates_h,
    .get_rate = get_rate_h,
    .create_quote = create_quote_h,
    .convert = convert_h,
};

pw_status fx_register(pw_server *server, svc_app *app)
{
    return paywire_finance_v1_fx_service_register(server, &fx_handlers, app);
}
