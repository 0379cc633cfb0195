/*
 * ledger.c: LedgerService (docs/design/finance.md, Ledger model). The
 * writes (CreateTransfer, PostTransfer, VoidTransfer) are validated here
 * field by field and applied by the loop's batcher (batch.c), which answers
 * with the transfer as stored; the reads query the ledger directly. Every
 * request names its mode; an id of the other mode is NOT_FOUND.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "batch.h"
#include "selfcheck.h"
#include "ledger_names.h"

#define MAX_ENTRIES 64

/* ---- field checks ---- */

/* [a-z] (lower) or [A-Za-z0-9_-] (not lower), n characters from s. */
static int chars_ok(const char *s, size_t n, int lower)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok =
            (c >= 'a' && c <= 'z') ||
            (!lower && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'));
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* 1 when id is "txf_<kind>_<cause>"; the kind is copied into kind. */
static int transfer_id_ok(const char *id, char *kind, size_t cap)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 7 || strncmp(id, "txf_", 4) != 0) {
        return 0;
    }
    const char *k = id + 4, *us = strchr(k, '_');
    if (us == NULL || us == k || (size_t)(us - k) > 20 || (size_t)(us - k) >= cap ||
        !chars_ok(k, (size_t)(us - k), 1)) {
        return 0;
    }
    size_t cause = strlen(us + 1);
    if (cause == 0 || cause > 100 || !chars_ok(us + 1, cause, 0)) {
        return 0;
    }
    memcpy(kind, k, (size_t)(us - k));
    kind[us - k] = '\0';
    return 1;
}

/* A partner, institution or other owner name: 1-64 of [A-Za-z0-9_.:-]. */
static int owner_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!chars_ok(s + i, 1, 0) && s[i] != '.' && s[i] != ':') {
            return 0;
        }
    }
    return 1;
}

static void violation_at(svc_req *r, const char *prefix, const char *field, const char *what)
{
    char f[128];
    snprintf(f, sizeof(f), "%s.%s", prefix, field);
    svc_violation(r, f, what);
}

/* An AccountRef into e (kind, owner or id); currency is the entry's. 0 after a violation. */
static int account_ref(svc_req *r, const Paywire__Finance__V1__AccountRef *ref,
                       const char *currency, const char *prefix, ledger_entry_in *e)
{
    char p[96];
    snprintf(p, sizeof(p), "%s%saccount", prefix, prefix[0] ? "." : "");
    if (ref == NULL || ref->ref_case == PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF__NOT_SET) {
        svc_violation(r, p, "required: account_id, merchant or platform");
        return 0;
    }
    if (ref->ref_case == PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_ACCOUNT_ID) {
        if (!svc_id_ok(ref->account_id, "acc")) {
            violation_at(r, p, "account_id", "an account id: \"acc_\" and 26 characters");
            return 0;
        }
        e->account_id = ref->account_id;
        return 1;
    }
    int merchant = ref->ref_case == PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT;
    int kind = merchant ? (int)ref->merchant->kind : (int)ref->platform->kind;
    const char *cur = merchant ? ref->merchant->currency : ref->platform->currency;
    const char *owner = merchant ? ref->merchant->merchant_id : ref->platform->counterparty;
    snprintf(p, sizeof(p), "%s%saccount.%s", prefix, prefix[0] ? "." : "",
             merchant ? "merchant" : "platform");
    const char *name = ledger_kind_name(kind);
    if (name == NULL || ledger_kind_is_merchant(kind) != merchant) {
        violation_at(r, p, "kind",
                     merchant ? "a merchant account kind (MERCHANT_PENDING, _AVAILABLE, _RESERVED)"
                              : "a platform account kind (not a merchant one)");
        return 0;
    }
    if (strcmp(cur ? cur : "", currency) != 0) {
        violation_at(r, p, "currency", "must be the entry's currency (one currency per leg)");
        return 0;
    }
    if (merchant && !svc_id_ok(owner, "mer")) {
        violation_at(r, p, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
        return 0;
    }
    if (!merchant && ledger_kind_has_counterparty(kind) != (owner != NULL && owner[0] != '\0')) {
        violation_at(r, p, "counterparty",
                     ledger_kind_has_counterparty(kind)
                         ? "required for PARTNER_RECEIVABLE, PARTNER_FEES and PLATFORM_CASH"
                         : "must be empty for this kind");
        return 0;
    }
    if (!merchant && owner[0] != '\0' && !owner_ok(owner)) {
        violation_at(r, p, "counterparty", "1 to 64 of A-Z a-z 0-9 _ . : -");
        return 0;
    }
    e->kind = name;
    e->owner = owner ? owner : "";
    return 1;
}

/* One entry into e; 0 after a violation. */
static int entry_in(svc_req *r, const Paywire__Finance__V1__Entry *in, size_t i, int pending,
                    ledger_entry_in *e)
{
    char p[64];
    snprintf(p, sizeof(p), "transfer.entries[%zu]", i);
    if (in->amount == NULL || in->amount->amount_minor <= 0) {
        violation_at(r, p, "amount", "required: a positive number of minor units");
        return 0;
    }
    if (!svc_currency_ok(in->amount->currency)) {
        violation_at(r, p, "amount.currency", "a currency code (ISO 4217 or a supported token)");
        return 0;
    }
    if (in->side != PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT &&
        in->side != PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT) {
        violation_at(r, p, "side", "required: DEBIT or CREDIT");
        return 0;
    }
    if (in->purpose[0] != '\0' && !svc_text_ok(in->purpose, 40)) {
        violation_at(r, p, "purpose", "at most 40 characters");
        return 0;
    }
    e->amount = in->amount->amount_minor;
    e->currency = in->amount->currency;
    e->credit = in->side == PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT;
    e->purpose = in->purpose;
    if (!account_ref(r, in->account, e->currency, p, e)) {
        return 0;
    }
    if (pending && e->credit && e->kind != NULL && strncmp(e->kind, "merchant_", 9) == 0) {
        violation_at(r, p, "side",
                     "a pending transfer may debit merchant accounts, never credit one");
        return 0;
    }
    return 1;
}

/* Debits equal credits per currency (sums in 128 bits: no overflow). */
static void check_balanced(svc_req *r, const ledger_entry_in *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int first = 1;
        for (size_t k = 0; k < i; k++) {
            first = first && strcmp(e[k].currency, e[i].currency) != 0;
        }
        if (!first) {
            continue;
        }
        ledger_i128 net = 0;
        for (size_t k = i; k < n; k++) {
            if (strcmp(e[k].currency, e[i].currency) == 0) {
                net += e[k].credit ? -(ledger_i128)e[k].amount : (ledger_i128)e[k].amount;
            }
        }
        if (net != 0) {
            char why[160];
            snprintf(why, sizeof(why), "debits and credits in %s differ by %s%" PRId64 "%s",
                     e[i].currency, net < 0 ? "-" : "",
                     (int64_t)(net < 0 ? (net < -INT64_MAX ? INT64_MAX : -net)
                                       : (net > INT64_MAX ? INT64_MAX : net)),
                     (net > INT64_MAX || net < -INT64_MAX) ? " or more" : "");
            svc_violation(r, "transfer.entries", why);
        }
    }
}

/* The failure of an op, with its field as a BadRequest violation and its reason as ErrorInfo. */
static void op_result(svc_req *r, const ledger_op *op)
{
    if (op->code == PW_OK) {
        return;
    }
    if (op->field[0] != '\0') {
        svc_violation(r, op->field, op->message);
    }
    if (op->reason[0] != '\0') {
        svc_fail_reason(r, op->code, op->reason, "%s", op->message);
    }
    svc_fail(r, op->code, "%s", op->message);
}

static const char *check_name(Paywire__Finance__V1__BalanceCheck c)
{
    switch (c) {
    case PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_NONE:
        return "NONE";
    case PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_AVAILABLE:
        return "AVAILABLE";
    case PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_MERCHANT_FUNDS:
        return "MERCHANT_FUNDS";
    default:
        return NULL;
    }
}

/* ---- writes ---- */

/* The request's transfer as an op; violations gathered (svc_check ends the call). */
static void transfer_op(svc_req *r, const Paywire__Finance__V1__CreateTransferRequest *req,
                        ledger_op *op)
{
    const Paywire__Finance__V1__Transfer *t = req->transfer;
    if (t == NULL) {
        svc_violation(r, "transfer", "required");
        svc_check(r);
    }
    op->kind = LEDGER_CREATE;
    op->mode = ledger_mode_required(r, t->mode, "transfer.mode");
    char kind[24];
    if (!transfer_id_ok(t->id, kind, sizeof(kind))) {
        svc_violation(r, "transfer.id",
                      "txf_<kind>_<cause id>: kind a-z (1-20), cause 1-100 of A-Z a-z 0-9 _ -");
    } else if (strcmp(t->kind, kind) != 0) {
        svc_violation(r, "transfer.kind", "must be the <kind> of the transfer id");
    }
    if (t->reference[0] != '\0' && !svc_text_ok(t->reference, 100)) {
        svc_violation(r, "transfer.reference", "at most 100 characters");
    }
    if (t->partner_reference[0] != '\0' && !svc_text_ok(t->partner_reference, 100)) {
        svc_violation(r, "transfer.partner_reference", "at most 100 characters");
    }
    op->balance_check = check_name(req->balance_check);
    if (op->balance_check == NULL) {
        svc_violation(r, "balance_check", "required: NONE, AVAILABLE or MERCHANT_FUNDS");
    }
    if (t->n_entries < 2 || t->n_entries > MAX_ENTRIES) {
        svc_violation(r, "transfer.entries", "2 to 64 entries");
        svc_check(r);
    }
    ledger_entry_in *entries = svc_alloc(r, t->n_entries * sizeof(*entries));
    int all_ok = 1;
    for (size_t i = 0; i < t->n_entries; i++) {
        all_ok &= entry_in(r, t->entries[i], i, req->pending, &entries[i]);
    }
    if (all_ok) {
        check_balanced(r, entries, t->n_entries);
    }
    op->transfer_id = t->id;
    op->transfer_kind = t->kind;
    op->reference = t->reference;
    op->partner_reference = t->partner_reference;
    op->pending = req->pending;
    op->entries = entries;
    op->entry_count = t->n_entries;
}

SVC_HANDLER(create_transfer, Paywire__Finance__V1__CreateTransferRequest)
{
    ledger_op op;
    memset(&op, 0, sizeof(op));
    transfer_op(r, req, &op);
    svc_check(r);
    svc_authenticate(r, NULL);
    ledger_apply(r, &op);
    op_result(r, &op);
    Paywire__Finance__V1__CreateTransferResponse resp =
        PAYWIRE__FINANCE__V1__CREATE_TRANSFER_RESPONSE__INIT;
    resp.transfer = op.transfer;
    svc_reply(r, &resp.base);
}

/* PostTransfer and VoidTransfer: the same checks, the mirror-image effect. */
static Paywire__Finance__V1__Transfer *resolve_transfer(svc_req *r, ledger_op_kind kind,
                                                        const char *id,
                                                        Paywire__Common__V1__Mode mode,
                                                        const char *partner_reference)
{
    ledger_op op;
    memset(&op, 0, sizeof(op));
    op.kind = kind;
    op.mode = ledger_mode_required(r, mode, "mode");
    char k[24];
    if (!transfer_id_ok(id, k, sizeof(k))) {
        svc_violation(r, "transfer_id", "a transfer id: txf_<kind>_<cause id>");
    }
    if (partner_reference[0] != '\0' && !svc_text_ok(partner_reference, 100)) {
        svc_violation(r, "partner_reference", "at most 100 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    op.transfer_id = id;
    op.partner_reference = partner_reference;
    ledger_apply(r, &op);
    op_result(r, &op);
    return op.transfer;
}

SVC_HANDLER(post_transfer, Paywire__Finance__V1__PostTransferRequest)
{
    Paywire__Finance__V1__PostTransferResponse resp =
        PAYWIRE__FINANCE__V1__POST_TRANSFER_RESPONSE__INIT;
    resp.transfer =
        resolve_transfer(r, LEDGER_POST, req->transfer_id, req->mode, req->partner_reference);
    svc_reply(r, &resp.base);
}

SVC_HANDLER(void_transfer, Paywire__Finance__V1__VoidTransferRequest)
{
    Paywire__Finance__V1__VoidTransferResponse resp =
        PAYWIRE__FINANCE__V1__VOID_TRANSFER_RESPONSE__INIT;
    resp.transfer = resolve_transfer(r, LEDGER_VOID, req->transfer_id, req->mode, "");
    svc_reply(r, &resp.base);
}

/* ---- reads ---- */

static const pw_db_stmt select_transfer = {
    "ledger_get_transfer",
    "SELECT t.id, t.kind, t.state, t.reference, t.partner_reference, t.two_phase, t.create_time,"
    " t.post_time, t.void_time, e.account_id, e.side, e.amount_minor, e.currency, e.purpose"
    " FROM transfers t LEFT JOIN entries e ON e.mode = t.mode AND e.transfer_id = t.id"
    " AND e.phase IN ('POSTED', 'PENDING') WHERE t.mode = $1 AND t.id = $2 ORDER BY e.sequence",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};

static Paywire__Finance__V1__TransferState state_value(const char *s)
{
    return strcmp(s, "PENDING") == 0  ? PAYWIRE__FINANCE__V1__TRANSFER_STATE__TRANSFER_STATE_PENDING
           : strcmp(s, "POSTED") == 0 ? PAYWIRE__FINANCE__V1__TRANSFER_STATE__TRANSFER_STATE_POSTED
                                      : PAYWIRE__FINANCE__V1__TRANSFER_STATE__TRANSFER_STATE_VOIDED;
}

static Paywire__Finance__V1__NormalBalance side_value(const char *s)
{
    return strcmp(s, "CREDIT") == 0 ? PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT
                                    : PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT;
}

SVC_HANDLER(get_transfer, Paywire__Finance__V1__GetTransferRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    char k[24];
    if (!transfer_id_ok(req->transfer_id, k, sizeof(k))) {
        svc_violation(r, "transfer_id", "a transfer id: txf_<kind>_<cause id>");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_text(mode), pw_db_text(req->transfer_id)};
    const pw_db_result *res = svc_query(r, &select_transfer, p, 2);
    svc_row row = svc_one(r, res, "transfer", req->transfer_id);
    Paywire__Finance__V1__Transfer *t = svc_alloc(r, sizeof(*t));
    paywire__finance__v1__transfer__init(t);
    t->id = svc_text(row, "id");
    t->kind = svc_text(row, "kind");
    t->state = state_value(svc_text(row, "state"));
    t->reference = svc_text(row, "reference");
    t->partner_reference = svc_text(row, "partner_reference");
    t->two_phase = svc_bool(row, "two_phase");
    t->mode = req->mode;
    t->create_time = svc_time(row, "create_time");
    t->post_time = svc_time(row, "post_time");
    t->void_time = svc_time(row, "void_time");
    int n = svc_is_null(row, "account_id") ? 0 : pw_db_rows(res);
    t->n_entries = (size_t)n;
    t->entries = svc_alloc(r, (size_t)n * sizeof(*t->entries));
    for (int i = 0; i < n; i++) {
        svc_row e = svc_row_at(r, res, i);
        Paywire__Finance__V1__Entry *m = svc_alloc(r, sizeof(*m));
        paywire__finance__v1__entry__init(m);
        m->account = svc_alloc(r, sizeof(*m->account));
        paywire__finance__v1__account_ref__init(m->account);
        m->account->ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_ACCOUNT_ID;
        m->account->account_id = svc_text(e, "account_id");
        m->amount = ledger_money(r, svc_int64(e, "amount_minor"), svc_text(e, "currency"));
        m->side = side_value(svc_text(e, "side"));
        m->purpose = svc_text(e, "purpose");
        t->entries[i] = m;
    }
    Paywire__Finance__V1__GetTransferResponse resp =
        PAYWIRE__FINANCE__V1__GET_TRANSFER_RESPONSE__INIT;
    resp.transfer = t;
    svc_reply(r, &resp.base);
}

#define ACCOUNT_COLUMNS                                                               \
    "id, mode, kind, owner, currency, normal_balance, posted_debits, posted_credits," \
    " pending_debits, pending_credits, version"

static const pw_db_stmt account_by_id = {"ledger_account_by_id",
                                         "SELECT " ACCOUNT_COLUMNS
                                         " FROM accounts WHERE id = $1 AND mode = $2",
                                         2,
                                         {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt account_by_key = {"ledger_account_by_key",
                                          "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE mode = $1"
                                          " AND kind = $2 AND owner = $3 AND currency = $4"
                                          " AND shard = 0",
                                          4,
                                          {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};

/* The account a ref names in mode (NOT_FOUND when it has no entries yet or is of the other mode).
 */
static svc_row find_account(svc_req *r, const Paywire__Finance__V1__AccountRef *ref,
                            Paywire__Common__V1__Mode m)
{
    const char *mode = ledger_mode_required(r, m, "mode");
    ledger_entry_in e;
    memset(&e, 0, sizeof(e));
    const char *currency = "";
    if (ref != NULL && ref->ref_case == PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT) {
        currency = ref->merchant->currency;
    } else if (ref != NULL && ref->ref_case == PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_PLATFORM) {
        currency = ref->platform->currency;
    }
    if (currency[0] == '\0' && ref != NULL &&
        ref->ref_case != PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_ACCOUNT_ID) {
        svc_violation(r, "account.currency", "required: a currency code");
    } else if (currency[0] != '\0' && !svc_currency_ok(currency)) {
        svc_violation(r, "account.currency", "a currency code");
    } else {
        account_ref(r, ref, currency, "", &e);
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    if (e.account_id != NULL) {
        pw_db_param p[] = {pw_db_text(e.account_id), pw_db_text(mode)};
        return svc_one(r, svc_query(r, &account_by_id, p, 2), "account", e.account_id);
    }
    pw_db_param p[] = {pw_db_text(mode), pw_db_text(e.kind), pw_db_text(e.owner),
                       pw_db_text(currency)};
    return svc_one(r, svc_query(r, &account_by_key, p, 4), "account", e.kind);
}

SVC_HANDLER(get_account, Paywire__Finance__V1__GetAccountRequest)
{
    svc_row row = find_account(r, req->account, req->mode);
    Paywire__Finance__V1__Account *a = svc_alloc(r, sizeof(*a));
    paywire__finance__v1__account__init(a);
    a->id = svc_text(row, "id");
    a->kind = (Paywire__Finance__V1__AccountKind)ledger_kind_value(svc_text(row, "kind"));
    const char *owner = svc_text(row, "owner");
    if (ledger_kind_is_merchant((int)a->kind)) {
        a->merchant_id = (char *)owner;
    } else {
        a->counterparty = (char *)owner;
    }
    a->currency = svc_text(row, "currency");
    a->normal_balance = side_value(svc_text(row, "normal_balance"));
    int credit = a->normal_balance == PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT;
    ledger_i128 posted =
        (ledger_i128)svc_int64(row, "posted_credits") - svc_int64(row, "posted_debits");
    posted = credit ? posted : -posted;
    if (posted > INT64_MAX || posted < INT64_MIN) {
        svc_fail(r, PW_OUT_OF_RANGE, "account %s's balance does not fit int64", a->id);
    }
    a->posted = ledger_money(r, (int64_t)posted, a->currency);
    a->pending_debits = ledger_money(r, svc_int64(row, "pending_debits"), a->currency);
    a->pending_credits = ledger_money(r, svc_int64(row, "pending_credits"), a->currency);
    a->version = svc_int64(row, "version");
    a->mode = req->mode;
    Paywire__Finance__V1__GetAccountResponse resp =
        PAYWIRE__FINANCE__V1__GET_ACCOUNT_RESPONSE__INIT;
    resp.account = a;
    svc_reply(r, &resp.base);
}

static const pw_db_stmt list_entries = {
    "ledger_list_entries",
    "SELECT sequence, transfer_id, amount_minor, currency, side, balance_after_minor, time,"
    " phase, purpose FROM entries WHERE account_id = $1 AND sequence > $2 ORDER BY sequence"
    " LIMIT $3",
    3,
    {PW_DB_TEXT, PW_DB_INT8, PW_DB_INT8}};

static Paywire__Finance__V1__EntryPhase phase_value(const char *s)
{
    return strcmp(s, "POSTED") == 0    ? PAYWIRE__FINANCE__V1__ENTRY_PHASE__ENTRY_PHASE_POSTED
           : strcmp(s, "PENDING") == 0 ? PAYWIRE__FINANCE__V1__ENTRY_PHASE__ENTRY_PHASE_PENDING
           : strcmp(s, "POST") == 0    ? PAYWIRE__FINANCE__V1__ENTRY_PHASE__ENTRY_PHASE_POST
                                       : PAYWIRE__FINANCE__V1__ENTRY_PHASE__ENTRY_PHASE_VOID;
}

/* One entry row as a PostedEntry (shared with ExportEntries). */
static Paywire__Finance__V1__PostedEntry *posted_entry(svc_req *r, svc_row e, const char *account,
                                                       Paywire__Common__V1__Mode mode)
{
    Paywire__Finance__V1__PostedEntry *m = svc_alloc(r, sizeof(*m));
    paywire__finance__v1__posted_entry__init(m);
    m->sequence = svc_int64(e, "sequence");
    m->account_id = account ? svc_strdup(r, account) : svc_text(e, "account_id");
    m->transfer_id = svc_text(e, "transfer_id");
    const char *currency = svc_text(e, "currency");
    m->amount = ledger_money(r, svc_int64(e, "amount_minor"), currency);
    m->side = side_value(svc_text(e, "side"));
    m->balance_after = ledger_money(r, svc_int64(e, "balance_after_minor"), currency);
    m->time = svc_time(e, "time");
    m->phase = phase_value(svc_text(e, "phase"));
    m->purpose = svc_text(e, "purpose");
    m->mode = mode;
    return m;
}

/* Page tokens: "<account id>.<last sequence>" in hex (opaque; the account is the filter). */
static char *entries_token(svc_req *r, const char *account, int64_t seq)
{
    char plain[96];
    int n = snprintf(plain, sizeof(plain), "%s.%" PRId64, account, seq);
    char *out = svc_alloc(r, (size_t)n * 2 + 1);
    for (int i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)plain[i]);
    }
    return out;
}

/* The sequence after which the page starts (0: the first page); ends the call on a bad token. */
static int64_t entries_after(svc_req *r, const char *token, const char *account)
{
    size_t n = token ? strlen(token) : 0;
    if (n == 0) {
        return 0;
    }
    char plain[96] = "";
    int ok = n % 2 == 0 && n / 2 < sizeof(plain);
    for (size_t i = 0; ok && i < n / 2; i++) {
        unsigned v;
        ok = sscanf(token + 2 * i, "%2x", &v) == 1;
        plain[i] = (char)v;
    }
    size_t alen = strlen(account);
    long long seq = -1;
    char extra;
    if (!ok || strncmp(plain, account, alen) != 0 || plain[alen] != '.' ||
        sscanf(plain + alen + 1, "%lld%c", &seq, &extra) != 1 || seq < 0) {
        svc_violation(r, "page_token", "not a token of this method for this account");
        svc_check(r);
    }
    return seq;
}

SVC_HANDLER(list_account_entries, Paywire__Finance__V1__ListAccountEntriesRequest)
{
    svc_row acc = find_account(r, req->account, req->mode);
    const char *account = svc_text(acc, "id");
    int64_t after = entries_after(r, req->page_token, account);
    int want = req->page_size <= 0 ? 50 : req->page_size > 500 ? 500 : req->page_size;
    pw_db_param p[] = {pw_db_text(account), pw_db_int8(after), pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &list_entries, p, 3);
    int n = pw_db_rows(res) > want ? want : pw_db_rows(res);
    Paywire__Finance__V1__ListAccountEntriesResponse resp =
        PAYWIRE__FINANCE__V1__LIST_ACCOUNT_ENTRIES_RESPONSE__INIT;
    resp.n_entries = (size_t)n;
    resp.entries = svc_alloc(r, (size_t)n * sizeof(*resp.entries));
    for (int i = 0; i < n; i++) {
        resp.entries[i] = posted_entry(r, svc_row_at(r, res, i), account, req->mode);
    }
    if (pw_db_rows(res) > want) {
        resp.next_page_token = entries_token(r, account, resp.entries[n - 1]->sequence);
    }
    svc_reply(r, &resp.base);
}

/* ---- ExportEntries ---- */

enum { EXPORT_CHUNK = 1000 };

static const pw_db_stmt export_entries = {
    "ledger_export_entries",
    "SELECT sequence, account_id, transfer_id, amount_minor, currency, side, balance_after_minor,"
    " time, phase, purpose FROM entries WHERE mode = $1 AND sequence > $2 AND sequence <= $5"
    " AND ($3::timestamptz IS NULL OR time >= $3) AND ($4::timestamptz IS NULL OR time < $4)"
    " ORDER BY sequence LIMIT 1000",
    5,
    {PW_DB_TEXT, PW_DB_INT8, PW_DB_TIMESTAMPTZ, PW_DB_TIMESTAMPTZ, PW_DB_INT8}};

/* The sequence below which no entry can still appear (0010_export_horizon.sql): an export reads
 * up to it, so one resumed after any sequence it returned misses nothing committed later. */
static const pw_db_stmt export_horizon = {
    "ledger_export_horizon", "SELECT entries_export_horizon() AS horizon", 0, {0}};

/* One chunk's messages, reused by every export on this loop's thread: a chunk is filled from a
 * result and sent with no wait in between, so two exports never share it at once, and an export
 * of any length holds one chunk, not the whole stream in call memory. */
typedef struct export_chunk {
    Paywire__Finance__V1__PostedEntry entry[EXPORT_CHUNK];
    Paywire__Finance__V1__PostedEntry *ptr[EXPORT_CHUNK];
    Paywire__Common__V1__Money amount[EXPORT_CHUNK], after[EXPORT_CHUNK];
    Google__Protobuf__Timestamp time[EXPORT_CHUNK];
} export_chunk;

static _Thread_local export_chunk chunk;

/* Borrowed text of a column (valid until the next wait). */
static char *col_text(const pw_db_result *res, int row, const char *col)
{
    const char *s = "";
    pw_db_get_text(res, row, pw_db_column(res, col), &s, NULL);
    return (char *)s;
}

static int64_t col_int(const pw_db_result *res, int row, const char *col)
{
    int64_t v = 0;
    pw_db_get_int64(res, row, pw_db_column(res, col), &v);
    return v;
}

/* Row i of res into chunk slot i, pointing into res. */
static void export_row(const pw_db_result *res, int i, Paywire__Common__V1__Mode mode)
{
    Paywire__Finance__V1__PostedEntry *e = &chunk.entry[i];
    paywire__finance__v1__posted_entry__init(e);
    paywire__common__v1__money__init(&chunk.amount[i]);
    paywire__common__v1__money__init(&chunk.after[i]);
    google__protobuf__timestamp__init(&chunk.time[i]);
    e->sequence = col_int(res, i, "sequence");
    e->account_id = col_text(res, i, "account_id");
    e->transfer_id = col_text(res, i, "transfer_id");
    chunk.amount[i].amount_minor = col_int(res, i, "amount_minor");
    chunk.amount[i].currency = col_text(res, i, "currency");
    chunk.after[i].amount_minor = col_int(res, i, "balance_after_minor");
    chunk.after[i].currency = chunk.amount[i].currency;
    e->amount = &chunk.amount[i];
    e->balance_after = &chunk.after[i];
    e->side = side_value(col_text(res, i, "side"));
    int64_t us = 0;
    pw_db_get_timestamptz(res, i, pw_db_column(res, "time"), &us);
    chunk.time[i].seconds = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    chunk.time[i].nanos = (int32_t)((us - chunk.time[i].seconds * 1000000) * 1000);
    e->time = &chunk.time[i];
    e->phase = phase_value(col_text(res, i, "phase"));
    e->purpose = col_text(res, i, "purpose");
    e->mode = mode;
    chunk.ptr[i] = e;
}

/* Every entry of a mode in sequence order up to the horizon (entries committed after the export
 * started are the next export's), in chunks of 1000; a slow reader holds the handler
 * (svc_wait_writable) instead of filling memory. Resumable with after_sequence. */
SVC_HANDLER(export_entries_fiber, Paywire__Finance__V1__ExportEntriesRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (req->after_sequence < 0) {
        svc_violation(r, "after_sequence", "0 or a sequence an earlier export returned");
    }
    if (req->start_time && req->end_time &&
        ledger_ts_us(req->end_time) < ledger_ts_us(req->start_time)) {
        svc_violation(r, "end_time", "must not be before start_time");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    int64_t after = req->after_sequence;
    const pw_db_result *h = svc_query(r, &export_horizon, NULL, 0);
    int64_t horizon = 0;
    pw_db_get_int64(h, 0, pw_db_column(h, "horizon"), &horizon);
    while (after < horizon) {
        svc_wait_writable(r);
        pw_db_param p[] = {pw_db_text(mode), pw_db_int8(after),
                           req->start_time ? pw_db_timestamptz(ledger_ts_us(req->start_time))
                                           : pw_db_null(PW_DB_TIMESTAMPTZ),
                           req->end_time ? pw_db_timestamptz(ledger_ts_us(req->end_time))
                                         : pw_db_null(PW_DB_TIMESTAMPTZ),
                           pw_db_int8(horizon)};
        const pw_db_result *res = svc_query(r, &export_entries, p, 5);
        int n = pw_db_rows(res);
        if (n == 0) {
            break;
        }
        for (int i = 0; i < n; i++) {
            export_row(res, i, req->mode);
        }
        Paywire__Finance__V1__ExportEntriesResponse page =
            PAYWIRE__FINANCE__V1__EXPORT_ENTRIES_RESPONSE__INIT;
        page.entries = chunk.ptr;
        page.n_entries = (size_t)n;
        after = chunk.entry[n - 1].sequence;
        svc_reply(r, &page.base);
        if (n < EXPORT_CHUNK) {
            break;
        }
    }
    svc_stream_end(r);
}

static const paywire_finance_v1_ledger_service_handlers ledger_handlers = {
    .create_transfer = create_transfer_h,
    .post_transfer = post_transfer_h,
    .void_transfer = void_transfer_h,
    .get_transfer = get_transfer_h,
    .get_account = get_account_h,
    .list_account_entries = list_account_entries_h,
    .export_entries = export_entries_fiber_h,
    .check_ledger = selfcheck_serve,
};

pw_status ledger_register(pw_server *server, svc_app *app)
{
    return paywire_finance_v1_ledger_service_register(server, &ledger_handlers, app);
}
