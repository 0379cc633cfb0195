/*
 * batch.c: the ledger's batcher (see batch.h; docs/design/finance.md,
 * Batching). One per worker loop (thread-local: a loop runs on one thread),
 * with up to ledger_batches_in_flight batches in flight on disjoint names
 * (claims.h); ops queue while they run and make the next batch. So under
 * load a batch holds what arrived while others ran, and at rest it holds
 * one op: no timer, no added latency.
 *
 * A batch's transaction (READ COMMITTED, restarted from its start after a
 * serialization failure or deadlock):
 *   1. pg_advisory_xact_lock on hash(mode, transfer id) of every op, in key
 *      order: ops on one transfer id serialize across loops and processes;
 *   2. only in a batch's second run, when its first found an account named
 *      by key missing: those accounts are inserted (ON CONFLICT DO NOTHING,
 *      in key order);
 *   3. every account the batch touches (and, for the merchant funds check,
 *      the merchant's pending and available siblings) is read FOR UPDATE in
 *      id order: no deadlock between batches;
 *   4. the transfers named by the ops, with their entries as created;
 * all four pipelined; then, in memory, each op in arrival order against the
 * running balances; then the writes (transfers, entries, transfer states,
 * one UPDATE per touched account with its final counters) and the commit.
 * Every lock is taken before any decision, and each decision reads only
 * what the locks protect.
 *
 * Memory: a batch's working state is malloc'd when it starts and freed when
 * it ends; answers are built in each op's call memory.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <paywire/log.h>
#include "batch.h"
#include "claims.h"
#include "ledger_names.h"

#define BATCH_MAX 512

/* ---- a growable JSON text ---- */

typedef struct jtext {
    char *s;
    size_t len, cap;
    int items;
} jtext;

static void jt_put(jtext *j, const char *p, size_t n)
{
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 1024;
        while (cap < j->len + n + 1) {
            cap *= 2;
        }
        j->s = pw_realloc(j->s, cap);
        PW_ASSERT(j->s != NULL); /* service binaries abort on out-of-memory first */
        j->cap = cap;
    }
    memcpy(j->s + j->len, p, n);
    j->len += n;
    j->s[j->len] = '\0';
}

static void jt_printf(jtext *j, const char *fmt, ...) PW_PRINTF(2, 3);
static void jt_printf(jtext *j, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    PW_ASSERT(n >= 0 && (size_t)n < sizeof(buf));
    jt_put(j, buf, (size_t)n);
}

/* A JSON string; the handlers have refused control characters already, escaped anyway. */
static void jt_str(jtext *j, const char *s)
{
    jt_put(j, "\"", 1);
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '"' || *p == '\\') {
            jt_put(j, "\\", 1);
            jt_put(j, p, 1);
        } else if ((unsigned char)*p < 0x20) {
            jt_printf(j, "\\u%04x", (unsigned)*p);
        } else {
            jt_put(j, p, 1);
        }
    }
    jt_put(j, "\"", 1);
}

/* Starts the next element of an array ("[" before the first). */
static void jt_item(jtext *j)
{
    jt_put(j, j->items++ ? "," : "[", 1);
}

/* "key":"value" in the object being written (its "{" written by jt_obj). */
static void jt_kv(jtext *j, const char *key, const char *value)
{
    jt_put(j, j->s[j->len - 1] == '{' ? "\"" : ",\"", j->s[j->len - 1] == '{' ? 1 : 2);
    jt_put(j, key, strlen(key));
    jt_put(j, "\":", 2);
    jt_str(j, value);
}

/* "key":number. */
static void jt_kvi(jtext *j, const char *key, int64_t value)
{
    jt_printf(j, "%s\"%s\":%" PRId64, j->s[j->len - 1] == '{' ? "" : ",", key, value);
}

/* Starts the next object of an array. */
static void jt_obj(jtext *j)
{
    jt_item(j);
    jt_put(j, "{", 1);
}

static const char *jt_end(jtext *j)
{
    if (j->items == 0) {
        jt_put(j, "[", 1);
    }
    jt_put(j, "]", 1);
    return j->s;
}

/* ---- a string-keyed index (open addressing) ---- */

typedef struct smap {
    char **keys;
    int *vals;
    size_t cap, n;
} smap;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static int smap_get(const smap *m, const char *key)
{
    if (m->cap == 0) {
        return -1;
    }
    for (size_t i = fnv(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == NULL) {
            return -1;
        }
        if (strcmp(m->keys[i], key) == 0) {
            return m->vals[i];
        }
    }
}

static void smap_put(smap *m, const char *key, int val);

static void smap_grow(smap *m)
{
    smap old = *m;
    m->cap = old.cap ? old.cap * 2 : 64;
    m->n = 0;
    m->keys = pw_calloc(m->cap, sizeof(char *));
    m->vals = pw_calloc(m->cap, sizeof(int));
    PW_ASSERT(m->keys != NULL && m->vals != NULL);
    for (size_t i = 0; i < old.cap; i++) {
        if (old.keys[i] != NULL) {
            smap_put(m, old.keys[i], old.vals[i]);
            pw_free(old.keys[i]);
        }
    }
    pw_free(old.keys);
    pw_free(old.vals);
}

/* Sets key → val (the key is copied). */
static void smap_put(smap *m, const char *key, int val)
{
    if ((m->n + 1) * 2 > m->cap) {
        smap_grow(m);
    }
    size_t i = fnv(key) & (m->cap - 1);
    while (m->keys[i] != NULL && strcmp(m->keys[i], key) != 0) {
        i = (i + 1) & (m->cap - 1);
    }
    if (m->keys[i] == NULL) {
        size_t len = strlen(key);
        m->keys[i] = pw_malloc(len + 1);
        PW_ASSERT(m->keys[i] != NULL);
        memcpy(m->keys[i], key, len + 1);
        m->n++;
    }
    m->vals[i] = val;
}

static void smap_free(smap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        pw_free(m->keys[i]);
    }
    pw_free(m->keys);
    pw_free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ---- the working state of a batch ---- */

/* A text copied into the batch's arena (freed with the batch). */
typedef struct arena {
    char **blocks;
    size_t n, cap;
} arena;

static char *arena_dup(arena *a, const char *s)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->blocks = pw_realloc(a->blocks, a->cap * sizeof(char *));
        PW_ASSERT(a->blocks != NULL);
    }
    size_t len = strlen(s ? s : "");
    char *p = pw_malloc(len + 1);
    PW_ASSERT(p != NULL);
    memcpy(p, s ? s : "", len + 1);
    a->blocks[a->n++] = p;
    return p;
}

static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->n; i++) {
        pw_free(a->blocks[i]);
    }
    pw_free(a->blocks);
    memset(a, 0, sizeof(*a));
}

typedef struct wacct {
    char *id, *mode, *kind, *owner, *currency;
    int credit_normal;
    int64_t pd, pc, qd, qc, version;
    int dirty;
} wacct;

typedef struct wentry {
    int acct;
    int credit;
    int64_t amount;
    char *currency;
    char *purpose;
} wentry;

enum { ST_PENDING = 1, ST_POSTED, ST_VOIDED };

typedef struct wtransfer {
    char *mode, *id, *kind, *reference, *partner_reference, *balance_check;
    int two_phase;
    int state;
    int64_t create_us, post_us, void_us;
    wentry *entries;
    size_t n, cap;
    int is_new;
} wtransfer;

typedef struct batch {
    ledger_op *ops[BATCH_MAX];
    size_t nops;
    pw_db_tx *tx;
    int attempt;
    int failed;
    int64_t now_us;
    arena text;
    wacct *accts;
    size_t nacct, cap_acct;
    /* "id:acc_…" and "key:MODE|kind|owner|CUR" → index in accts. */
    smap acct_index;
    wtransfer *xfers;
    size_t nxfer, cap_xfer;
    /* "MODE|txf_…" → index in xfers. */
    smap xfer_index;
    /* What the writes send. */
    jtext new_transfers, new_states, new_entries;
    /* Query results still to come before the batch can decide. */
    int awaiting;
    /* The claim slots the batch's ops hold (claims.h), released when it ends. */
    uint32_t *claims;
    size_t nclaims, cap_claims;
    /* 1: the reads insert the accounts named by key that are missing (the batch's second run,
     * after its first found some missing); 1 in retry_creating: that first run is ending. */
    int create_accounts;
    int retry_creating;
} batch;

/* A worker loop's batcher: its queue and how many of its batches are in flight. */
typedef struct batcher {
    ledger_op *head, *tail;
    int running;
    pw_db_pool *pool;
    ledger_shared *shared;
} batcher;

static _Thread_local batcher loop_batcher;

/* ---- results ---- */

static void op_fail(ledger_op *op, pw_status code, const char *reason, const char *field,
                    const char *fmt, ...) PW_PRINTF(5, 6);
static void op_fail(ledger_op *op, pw_status code, const char *reason, const char *field,
                    const char *fmt, ...)
{
    op->code = code;
    snprintf(op->reason, sizeof(op->reason), "%s", reason ? reason : "");
    snprintf(op->field, sizeof(op->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->message, sizeof(op->message), fmt, ap);
    va_end(ap);
    op->transfer = NULL;
}

/* The transfer as it stands in the batch, in r's call memory. */
static Paywire__Finance__V1__Transfer *transfer_message(svc_req *r, const batch *b,
                                                        const wtransfer *t)
{
    Paywire__Finance__V1__Transfer *m = svc_alloc(r, sizeof(*m));
    paywire__finance__v1__transfer__init(m);
    m->id = svc_strdup(r, t->id);
    m->state = (Paywire__Finance__V1__TransferState)t->state;
    m->kind = svc_strdup(r, t->kind);
    m->reference = svc_strdup(r, t->reference);
    m->partner_reference = svc_strdup(r, t->partner_reference);
    m->mode = ledger_mode_value(t->mode);
    m->two_phase = t->two_phase;
    m->create_time = svc_timestamp(r, t->create_us);
    m->post_time = t->state == ST_POSTED ? svc_timestamp(r, t->post_us) : NULL;
    m->void_time = t->state == ST_VOIDED ? svc_timestamp(r, t->void_us) : NULL;
    m->n_entries = t->n;
    m->entries = svc_alloc(r, t->n * sizeof(*m->entries));
    for (size_t i = 0; i < t->n; i++) {
        Paywire__Finance__V1__Entry *e = svc_alloc(r, sizeof(*e));
        paywire__finance__v1__entry__init(e);
        Paywire__Finance__V1__AccountRef *ref = svc_alloc(r, sizeof(*ref));
        paywire__finance__v1__account_ref__init(ref);
        ref->ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_ACCOUNT_ID;
        ref->account_id = svc_strdup(r, b->accts[t->entries[i].acct].id);
        e->account = ref;
        e->amount = ledger_money(r, t->entries[i].amount, t->entries[i].currency);
        e->side = t->entries[i].credit ? PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT
                                       : PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT;
        e->purpose = svc_strdup(r, t->entries[i].purpose);
        m->entries[i] = e;
    }
    return m;
}

static void op_ok(batch *b, ledger_op *op, const wtransfer *t)
{
    op->code = PW_OK;
    op->transfer = transfer_message(op->r, b, t);
}

/* ---- accounts and transfers in the batch ---- */

static int is_merchant_kind(const char *kind)
{
    return strncmp(kind, "merchant_", 9) == 0;
}

static void key_of(char *out, size_t cap, const char *mode, const char *kind, const char *owner,
                   const char *currency)
{
    snprintf(out, cap, "key:%s|%s|%s|%s", mode, kind, owner, currency);
}

static int find_key(const batch *b, const char *mode, const char *kind, const char *owner,
                    const char *currency)
{
    char key[256];
    key_of(key, sizeof(key), mode, kind, owner, currency);
    return smap_get(&b->acct_index, key);
}

static int find_id(const batch *b, const char *id)
{
    char key[64];
    snprintf(key, sizeof(key), "id:%s", id);
    return smap_get(&b->acct_index, key);
}

/* Indexes a by id and, when keyed, by its key too. */
static int add_acct(batch *b, const wacct *a, int keyed)
{
    if (b->nacct == b->cap_acct) {
        b->cap_acct = b->cap_acct ? b->cap_acct * 2 : 64;
        b->accts = pw_realloc(b->accts, b->cap_acct * sizeof(*b->accts));
        PW_ASSERT(b->accts != NULL);
    }
    int i = (int)b->nacct++;
    b->accts[i] = *a;
    char key[256];
    snprintf(key, sizeof(key), "id:%s", a->id);
    smap_put(&b->acct_index, key, i);
    if (keyed) {
        key_of(key, sizeof(key), a->mode, a->kind, a->owner, a->currency);
        smap_put(&b->acct_index, key, i);
    }
    return i;
}

static wtransfer *find_xfer(batch *b, const char *mode, const char *id)
{
    char key[160];
    snprintf(key, sizeof(key), "%s|%s", mode, id);
    int i = smap_get(&b->xfer_index, key);
    return i < 0 ? NULL : &b->xfers[i];
}

static wtransfer *add_xfer(batch *b, const char *mode, const char *id)
{
    if (b->nxfer == b->cap_xfer) {
        b->cap_xfer = b->cap_xfer ? b->cap_xfer * 2 : 64;
        b->xfers = pw_realloc(b->xfers, b->cap_xfer * sizeof(*b->xfers));
        PW_ASSERT(b->xfers != NULL);
    }
    wtransfer *t = &b->xfers[b->nxfer];
    memset(t, 0, sizeof(*t));
    t->mode = arena_dup(&b->text, mode);
    t->id = arena_dup(&b->text, id);
    char key[160];
    snprintf(key, sizeof(key), "%s|%s", mode, id);
    smap_put(&b->xfer_index, key, (int)b->nxfer++);
    return t;
}

static void xfer_add_entry(batch *b, wtransfer *t, int acct, int credit, int64_t amount,
                           const char *currency, const char *purpose)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4;
        t->entries = pw_realloc(t->entries, t->cap * sizeof(*t->entries));
        PW_ASSERT(t->entries != NULL);
    }
    t->entries[t->n++] =
        (wentry){acct, credit, amount, arena_dup(&b->text, currency), arena_dup(&b->text, purpose)};
}

/* The posted balance, signed by the normal side; the counters never exceed INT64_MAX each. */
static ledger_i128 posted_balance(const wacct *a)
{
    return a->credit_normal ? (ledger_i128)a->pc - a->pd : (ledger_i128)a->pd - a->pc;
}

/* ---- writes ---- */

static void write_entry(batch *b, const wtransfer *t, const wentry *e, const char *phase)
{
    const wacct *a = &b->accts[e->acct];
    jtext *j = &b->new_entries;
    jt_obj(j);
    jt_kv(j, "mode", t->mode);
    jt_kv(j, "transfer_id", t->id);
    jt_kv(j, "account_id", a->id);
    jt_kv(j, "side", e->credit ? "CREDIT" : "DEBIT");
    jt_kvi(j, "amount", e->amount);
    jt_kv(j, "currency", e->currency);
    jt_kv(j, "phase", phase);
    jt_kv(j, "purpose", e->purpose);
    /* Counters are each <= INT64_MAX, but their difference may not fit: clamp (never in
     * practice; the stored counters stay exact). */
    ledger_i128 bal = posted_balance(a);
    jt_kvi(j, "balance_after",
           bal > INT64_MAX   ? INT64_MAX
           : bal < INT64_MIN ? INT64_MIN
                             : (int64_t)bal);
    jt_put(j, "}", 1);
}

/* ---- applying one op ---- */

typedef struct saved {
    int acct;
    int64_t pd, pc, qd, qc, version;
    int dirty;
} saved;

static void save(saved *s, const wacct *a, int i)
{
    *s = (saved){i, a->pd, a->pc, a->qd, a->qc, a->version, a->dirty};
}

static void restore(batch *b, const saved *s)
{
    wacct *a = &b->accts[s->acct];
    a->pd = s->pd;
    a->pc = s->pc;
    a->qd = s->qd;
    a->qc = s->qc;
    a->version = s->version;
    a->dirty = s->dirty;
}

/* Adds amount to a counter; 0 when it would overflow. */
static int add_to(int64_t *counter, int64_t amount)
{
    return !__builtin_add_overflow(*counter, amount, counter);
}

/* The first field in which op differs from the stored t, or NULL: the replay rule of finance.md. */
static const char *differs(batch *b, const ledger_op *op, const wtransfer *t, const int *accts,
                           char *field, size_t cap)
{
    if (strcmp(op->transfer_kind, t->kind) != 0) {
        return "transfer.kind";
    }
    if (strcmp(op->reference, t->reference) != 0) {
        return "transfer.reference";
    }
    /* A post may have set the reference since (PostTransfer): a retry of the create without
     * one is still the same create. */
    if (op->partner_reference[0] != '\0' &&
        strcmp(op->partner_reference, t->partner_reference) != 0) {
        return "transfer.partner_reference";
    }
    if (op->pending != t->two_phase) {
        return "pending";
    }
    if (strcmp(op->balance_check, t->balance_check) != 0) {
        return "balance_check";
    }
    if (op->entry_count != t->n) {
        return "transfer.entries";
    }
    for (size_t i = 0; i < t->n; i++) {
        const ledger_entry_in *e = &op->entries[i];
        const wentry *s = &t->entries[i];
        const char *what = accts[i] != s->acct                   ? "account"
                           : e->amount != s->amount              ? "amount"
                           : strcmp(e->currency, s->currency)    ? "amount.currency"
                           : e->credit != s->credit              ? "side"
                           : strcmp(e->purpose, s->purpose) != 0 ? "purpose"
                                                                 : NULL;
        if (what != NULL) {
            snprintf(field, cap, "transfer.entries[%zu].%s", i, what);
            return field;
        }
    }
    (void)b;
    return NULL;
}

/* The entries' accounts, checked against the op (mode, currency, pending credits); 0 on failure
 * (op failed). */
static int resolve(batch *b, ledger_op *op, int *accts)
{
    char field[96];
    for (size_t i = 0; i < op->entry_count; i++) {
        const ledger_entry_in *e = &op->entries[i];
        int a = e->account_id ? find_id(b, e->account_id)
                              : find_key(b, op->mode, e->kind, e->owner, e->currency);
        if (a < 0 || strcmp(b->accts[a].mode, op->mode) != 0) {
            snprintf(field, sizeof(field), "transfer.entries[%zu].account.account_id", i);
            op_fail(op, PW_INVALID_ARGUMENT, NULL, field, "no account %s in mode %s",
                    e->account_id ? e->account_id : e->kind, op->mode);
            return 0;
        }
        const wacct *acc = &b->accts[a];
        if (strcmp(acc->currency, e->currency) != 0) {
            snprintf(field, sizeof(field), "transfer.entries[%zu].amount.currency", i);
            op_fail(op, PW_INVALID_ARGUMENT, NULL, field,
                    "account %s is in %s; the entry is in %s (one currency per leg)", acc->id,
                    acc->currency, e->currency);
            return 0;
        }
        if (op->pending && e->credit && is_merchant_kind(acc->kind)) {
            snprintf(field, sizeof(field), "transfer.entries[%zu].side", i);
            op_fail(op, PW_INVALID_ARGUMENT, NULL, field,
                    "a pending transfer may not credit a merchant account (%s)", acc->id);
            return 0;
        }
        accts[i] = a;
    }
    return 1;
}

/* Payable: posted credits − posted debits − pending debits (pending credits never count). */
static ledger_i128 payable(const wacct *a)
{
    return (ledger_i128)a->pc - a->pd - a->qd;
}

/* The balance check of finance.md for the op just applied; 0 (op failed) when it is broken. */
static int balance_ok(batch *b, ledger_op *op, const int *accts)
{
    int funds = strcmp(op->balance_check, "MERCHANT_FUNDS") == 0;
    if (!funds && strcmp(op->balance_check, "AVAILABLE") != 0) {
        return 1;
    }
    for (size_t i = 0; i < op->entry_count; i++) {
        const wacct *a = &b->accts[accts[i]];
        if (op->entries[i].credit || !is_merchant_kind(a->kind)) {
            continue;
        }
        ledger_i128 left;
        if (funds) {
            /* The merchant's pending + available, less both accounts' pending debits; the
             * negative allowance is 0 until merchant configuration carries one. */
            int p = find_key(b, a->mode, "merchant_pending", a->owner, a->currency);
            int v = find_key(b, a->mode, "merchant_available", a->owner, a->currency);
            left = (p >= 0 ? payable(&b->accts[p]) : 0) + (v >= 0 ? payable(&b->accts[v]) : 0);
        } else if (strcmp(a->kind, "merchant_available") == 0) {
            left = payable(a);
        } else {
            continue;
        }
        if (left < 0) {
            char field[64];
            snprintf(field, sizeof(field), "transfer.entries[%zu].amount", i);
            op_fail(op, PW_FAILED_PRECONDITION, "INSUFFICIENT_FUNDS", field,
                    "account %s lacks the funds for %s (balance check %s)", a->id, op->transfer_id,
                    op->balance_check);
            return 0;
        }
    }
    return 1;
}

static void apply_create(batch *b, ledger_op *op)
{
    int accts[64];
    PW_ASSERT(op->entry_count <= 64); /* the handler refuses more */
    if (!resolve(b, op, accts)) {
        return;
    }
    wtransfer *t = find_xfer(b, op->mode, op->transfer_id);
    if (t != NULL) {
        char field[96];
        const char *f = differs(b, op, t, accts, field, sizeof(field));
        if (f != NULL) {
            op_fail(op, PW_FAILED_PRECONDITION, "TRANSFER_ID_REUSED", f,
                    "transfer %s exists with a different %s; a new transfer needs a new id",
                    op->transfer_id, f);
        } else {
            op_ok(b, op, t);
        }
        return;
    }
    saved undo[64];
    for (size_t i = 0; i < op->entry_count; i++) {
        wacct *a = &b->accts[accts[i]];
        save(&undo[i], a, accts[i]);
        const ledger_entry_in *e = &op->entries[i];
        int64_t *c = op->pending ? (e->credit ? &a->qc : &a->qd) : (e->credit ? &a->pc : &a->pd);
        if (!add_to(c, e->amount)) {
            for (size_t k = i + 1; k-- > 0;) {
                restore(b, &undo[k]);
            }
            char field[64];
            snprintf(field, sizeof(field), "transfer.entries[%zu].amount", i);
            op_fail(op, PW_INVALID_ARGUMENT, NULL, field,
                    "account %s cannot hold this amount (its counters would overflow int64)",
                    a->id);
            return;
        }
        a->version++;
        a->dirty = 1;
    }
    if (!balance_ok(b, op, accts)) {
        for (size_t k = op->entry_count; k-- > 0;) {
            restore(b, &undo[k]);
        }
        return;
    }
    t = add_xfer(b, op->mode, op->transfer_id);
    t->kind = arena_dup(&b->text, op->transfer_kind);
    t->reference = arena_dup(&b->text, op->reference);
    t->partner_reference = arena_dup(&b->text, op->partner_reference);
    t->balance_check = arena_dup(&b->text, op->balance_check);
    t->two_phase = op->pending;
    t->state = op->pending ? ST_PENDING : ST_POSTED;
    t->create_us = b->now_us;
    t->post_us = op->pending ? 0 : b->now_us;
    t->is_new = 1;
    for (size_t i = 0; i < op->entry_count; i++) {
        const ledger_entry_in *e = &op->entries[i];
        xfer_add_entry(b, t, accts[i], e->credit, e->amount, e->currency, e->purpose);
    }
    /* balance_after is each account's posted balance once the whole transfer applied. */
    for (size_t i = 0; i < t->n; i++) {
        write_entry(b, t, &t->entries[i], op->pending ? "PENDING" : "POSTED");
    }
    jtext *j = &b->new_transfers;
    jt_obj(j);
    jt_kv(j, "mode", t->mode);
    jt_kv(j, "id", t->id);
    jt_kv(j, "kind", t->kind);
    jt_kv(j, "reference", t->reference);
    jt_kv(j, "partner_reference", t->partner_reference);
    jt_put(j, t->two_phase ? ",\"two_phase\":true" : ",\"two_phase\":false",
           t->two_phase ? 17 : 18);
    jt_kv(j, "balance_check", t->balance_check);
    jt_put(j, "}", 1);
    op_ok(b, op, t);
}

static void apply_resolve(batch *b, ledger_op *op)
{
    int post = op->kind == LEDGER_POST;
    wtransfer *t = find_xfer(b, op->mode, op->transfer_id);
    if (t == NULL) {
        op_fail(op, PW_NOT_FOUND, NULL, NULL, "transfer %s not found in mode %s", op->transfer_id,
                op->mode);
        return;
    }
    if (!t->two_phase) {
        op_fail(op, PW_FAILED_PRECONDITION, "TRANSFER_NOT_TWO_PHASE", "transfer_id",
                "transfer %s was created posted; only a pending transfer is posted or voided",
                t->id);
        return;
    }
    /* A post may set the partner's reference once; it is part of the post's content. */
    const char *ref = post && op->partner_reference ? op->partner_reference : "";
    int ref_differs = ref[0] != '\0' && strcmp(ref, t->partner_reference) != 0;
    if (ref_differs && (t->state == ST_POSTED || t->partner_reference[0] != '\0')) {
        op_fail(op, PW_FAILED_PRECONDITION, "TRANSFER_ID_REUSED", "partner_reference",
                "transfer %s has partner reference \"%s\"; a post cannot change it", t->id,
                t->partner_reference);
        return;
    }
    if (t->state == (post ? ST_POSTED : ST_VOIDED)) {
        op_ok(b, op, t); /* a retry: the first result, with its time */
        return;
    }
    if (t->state != ST_PENDING) {
        op_fail(op, PW_FAILED_PRECONDITION, post ? "TRANSFER_VOIDED" : "TRANSFER_POSTED",
                "transfer_id", "transfer %s is %s already", t->id, post ? "voided" : "posted");
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        const wentry *e = &t->entries[i];
        wacct *a = &b->accts[e->acct];
        if (e->credit) {
            a->qc -= e->amount;
        } else {
            a->qd -= e->amount;
        }
        /* The pending amount was already inside the counters' range; the posted counter of a
         * two-phase entry cannot overflow unless the account holds ~9.2e18 minor units. */
        if (post) {
            PW_ASSERT(add_to(e->credit ? &a->pc : &a->pd, e->amount));
        }
        a->version++;
        a->dirty = 1;
    }
    t->state = post ? ST_POSTED : ST_VOIDED;
    if (ref_differs) {
        t->partner_reference = arena_dup(&b->text, ref);
    }
    if (post) {
        t->post_us = b->now_us;
    } else {
        t->void_us = b->now_us;
    }
    for (size_t i = 0; i < t->n; i++) {
        write_entry(b, t, &t->entries[i], post ? "POST" : "VOID");
    }
    jtext *j = &b->new_states;
    jt_obj(j);
    jt_kv(j, "mode", t->mode);
    jt_kv(j, "id", t->id);
    jt_kv(j, "state", post ? "POSTED" : "VOIDED");
    jt_kv(j, "partner_reference", t->partner_reference);
    jt_put(j, "}", 1);
    op_ok(b, op, t);
}

/* ---- the statements ---- */

/* The batch's statements find rows by key from a jsonb list, whose size the planner cannot know
 * (it guesses 100 rows), against tables whose statistics lag behind a ledger that grows under
 * load: a plan made while a table looked small (a full index scan per listed row) stayed cached
 * for seconds per batch (measured: 74 transfers/s). So every lookup is written so that no plan
 * can read more than the listed rows: LATERAL probes driven by the list (OFFSET 0 keeps the
 * planner from flattening them into a join it may reorder), or `= ANY (ARRAY(...))` on an index;
 * and sequential scans are off in the batch's transaction besides. */
static const pw_db_stmt lock_ids = {
    "ledger_lock_ids",
    "SELECT set_config('enable_seqscan', 'off', true) AS s, count(pg_advisory_xact_lock(k)) AS n"
    " FROM (SELECT DISTINCT hashtextextended(x, 0) AS k"
    " FROM jsonb_array_elements_text($1) x ORDER BY 1) s",
    1,
    {PW_DB_JSONB}};

static const pw_db_stmt upsert_accounts = {
    "ledger_upsert_accounts",
    "INSERT INTO accounts (id, mode, kind, owner, currency, normal_balance)"
    " SELECT id, mode, kind, owner, currency, CASE WHEN kind IN ('partner_receivable',"
    " 'partner_fees', 'platform_cash', 'fx_position', 'network_fees') THEN 'DEBIT'"
    " ELSE 'CREDIT' END"
    " FROM jsonb_to_recordset($1) AS x(id text, mode text, kind text, owner text, currency text)"
    " ORDER BY mode, kind, owner, currency ON CONFLICT DO NOTHING",
    1,
    {PW_DB_JSONB}};

/* $1 account ids, $2 account keys, $3 transfers whose pending entries move. */
static const pw_db_stmt lock_accounts = {
    "ledger_lock_accounts",
    "WITH named AS ("
    " SELECT x AS id FROM jsonb_array_elements_text($1) x"
    " UNION SELECT a.id FROM jsonb_to_recordset($2) AS k(mode text, kind text, owner text,"
    " currency text), LATERAL (SELECT a.id FROM accounts a WHERE a.mode = k.mode"
    " AND a.kind = k.kind AND a.owner = k.owner AND a.currency = k.currency AND a.shard = 0 OFFSET "
    "0) a"
    " UNION SELECT e.account_id FROM jsonb_to_recordset($3) AS t(mode text, id text),"
    " LATERAL (SELECT e.account_id FROM entries e WHERE e.mode = t.mode"
    " AND e.transfer_id = t.id AND e.phase = 'PENDING' OFFSET 0) e),"
    " siblings AS (SELECT s.id FROM jsonb_array_elements_text($1) x,"
    " LATERAL (SELECT a.mode, a.owner, a.currency FROM accounts a WHERE a.id = x"
    " AND a.kind IN ('merchant_pending', 'merchant_available') OFFSET 0) a,"
    " LATERAL (SELECT s.id FROM accounts s WHERE s.mode = a.mode"
    " AND s.kind IN ('merchant_pending', 'merchant_available') AND s.owner = a.owner"
    " AND s.currency = a.currency AND s.shard = 0 OFFSET 0) s)"
    " SELECT id, mode, kind, owner, currency, normal_balance, posted_debits, posted_credits,"
    " pending_debits, pending_credits, version FROM accounts"
    " WHERE id = ANY (ARRAY(SELECT id FROM named UNION SELECT id FROM siblings))"
    " ORDER BY id FOR UPDATE",
    3,
    {PW_DB_JSONB, PW_DB_JSONB, PW_DB_JSONB}};

/* lock_accounts for a batch that names accounts by key only and moves no pending transfer (most
 * batches): the same rows, from a plan a third the size (starting the executor on the full
 * plan's unused branches was a measurable share of a small batch). */
static const pw_db_stmt lock_accounts_by_key = {
    "ledger_lock_accounts_by_key",
    "SELECT id, mode, kind, owner, currency, normal_balance, posted_debits, posted_credits,"
    " pending_debits, pending_credits, version FROM accounts"
    " WHERE id = ANY (ARRAY(SELECT a.id FROM jsonb_to_recordset($1) AS k(mode text, kind text,"
    " owner text, currency text), LATERAL (SELECT a.id FROM accounts a WHERE a.mode = k.mode"
    " AND a.kind = k.kind AND a.owner = k.owner AND a.currency = k.currency AND a.shard = 0"
    " OFFSET 0) a)) ORDER BY id FOR UPDATE",
    1,
    {PW_DB_JSONB}};

static const pw_db_stmt read_transfers = {
    "ledger_read_transfers",
    "SELECT t.mode, t.id, t.kind, t.state, t.reference, t.partner_reference, t.two_phase,"
    " t.balance_check, t.create_time, t.post_time, t.void_time, e.account_id, e.side,"
    " e.amount_minor, e.currency, e.purpose, e.sequence"
    " FROM (SELECT DISTINCT mode, id FROM jsonb_to_recordset($1) AS n(mode text, id text)) x,"
    " LATERAL (SELECT * FROM transfers t WHERE t.mode = x.mode AND t.id = x.id OFFSET 0) t"
    " LEFT JOIN LATERAL (SELECT * FROM entries e WHERE e.mode = t.mode"
    " AND e.transfer_id = t.id AND e.phase IN ('POSTED', 'PENDING') OFFSET 0) e ON true"
    " ORDER BY t.mode, t.id, e.sequence",
    1,
    {PW_DB_JSONB}};
/* (DISTINCT: two ops of a batch may name one transfer, a retry and a post say; its entries are
 * read once.) */

static const pw_db_stmt insert_transfers = {
    "ledger_insert_transfers",
    "INSERT INTO transfers (mode, id, kind, state, reference, partner_reference, two_phase,"
    " balance_check, create_time, post_time)"
    " SELECT mode, id, kind, CASE WHEN two_phase THEN 'PENDING' ELSE 'POSTED' END, reference,"
    " partner_reference, two_phase, balance_check, $2, CASE WHEN two_phase THEN NULL ELSE $2 END"
    " FROM jsonb_to_recordset($1) AS x(mode text, id text, kind text, reference text,"
    " partner_reference text, two_phase boolean, balance_check text)",
    2,
    {PW_DB_JSONB, PW_DB_TIMESTAMPTZ}};

static const pw_db_stmt update_states = {
    "ledger_update_states",
    "UPDATE transfers t SET state = x.state, partner_reference = x.partner_reference,"
    " post_time = CASE WHEN x.state = 'POSTED' THEN $2 END,"
    " void_time = CASE WHEN x.state = 'VOIDED' THEN $2 END"
    " FROM jsonb_to_recordset($1) AS x(mode text, id text, state text, partner_reference text)"
    " WHERE t.mode = x.mode AND t.id = x.id AND t.state = 'PENDING'"
    " AND t.mode IN ('TEST', 'LIVE')"
    " AND t.id = ANY (ARRAY(SELECT j->>'id' FROM jsonb_array_elements($1) j))",
    2,
    {PW_DB_JSONB, PW_DB_TIMESTAMPTZ}};

static const pw_db_stmt insert_entries = {
    "ledger_insert_entries",
    "INSERT INTO entries (mode, transfer_id, account_id, side, amount_minor, currency, phase,"
    " purpose, balance_after_minor, time)"
    " SELECT mode, transfer_id, account_id, side, amount, currency, phase, purpose,"
    " balance_after, $2 FROM ROWS FROM (jsonb_to_recordset($1) AS (mode text, transfer_id text,"
    " account_id text, side text, amount int8, currency text, phase text, purpose text,"
    " balance_after int8)) WITH ORDINALITY AS x(mode, transfer_id, account_id, side, amount,"
    " currency, phase, purpose, balance_after, n) ORDER BY n",
    2,
    {PW_DB_JSONB, PW_DB_TIMESTAMPTZ}};

static const pw_db_stmt update_accounts = {
    "ledger_update_accounts",
    "UPDATE accounts a SET posted_debits = x.pd, posted_credits = x.pc, pending_debits = x.qd,"
    " pending_credits = x.qc, version = x.v"
    " FROM jsonb_to_recordset($1) AS x(id text, pd int8, pc int8, qd int8, qc int8, v int8)"
    " WHERE a.id = x.id AND a.id = ANY (ARRAY(SELECT j->>'id' FROM jsonb_array_elements($1) j))",
    1,
    {PW_DB_JSONB}};

/* ---- the transaction ---- */

static void batch_reset(batch *b)
{
    arena_free(&b->text);
    smap_free(&b->acct_index);
    smap_free(&b->xfer_index);
    for (size_t i = 0; i < b->nxfer; i++) {
        pw_free(b->xfers[i].entries);
    }
    pw_free(b->xfers);
    pw_free(b->accts);
    pw_free(b->new_transfers.s);
    pw_free(b->new_states.s);
    pw_free(b->new_entries.s);
    b->xfers = NULL;
    b->accts = NULL;
    b->nxfer = b->cap_xfer = b->nacct = b->cap_acct = 0;
    memset(&b->new_transfers, 0, sizeof(b->new_transfers));
    memset(&b->new_states, 0, sizeof(b->new_states));
    memset(&b->new_entries, 0, sizeof(b->new_entries));
    b->failed = 0;
    b->awaiting = 0;
}

/* Ends the transaction with the first failure a statement reported. */
static int step_failed(batch *b, pw_db_result *res)
{
    if (b->failed) {
        return 1;
    }
    if (pw_db_status(res) == PW_OK) {
        return 0;
    }
    b->failed = 1;
    pw_db_tx_abort(b->tx, pw_db_status(res), pw_db_message(res));
    return 1;
}

static void sent_ok(batch *b, pw_status rv)
{
    if (rv != PW_OK && !b->failed) {
        b->failed = 1;
        pw_db_tx_abort(b->tx, rv, "cannot send a ledger statement");
    }
}

static void piped(pw_db_result *res, void *ud)
{
    step_failed(ud, res);
}

static void decide(batch *b);

static void one_read_done(batch *b)
{
    if (--b->awaiting == 0 && !b->failed) {
        decide(b);
    }
}

static void read_piped(pw_db_result *res, void *ud)
{
    batch *b = ud;
    step_failed(b, res);
    one_read_done(b);
}

static void accounts_read(pw_db_result *res, void *ud)
{
    batch *b = ud;
    if (!step_failed(b, res)) {
        for (int i = 0; i < pw_db_rows(res); i++) {
            const char *s[6] = {0};
            const char *cols[6] = {"id", "mode", "kind", "owner", "currency", "normal_balance"};
            for (int c = 0; c < 6; c++) {
                pw_db_get_text(res, i, pw_db_column(res, cols[c]), &s[c], NULL);
            }
            wacct a = {.id = arena_dup(&b->text, s[0]),
                       .mode = arena_dup(&b->text, s[1]),
                       .kind = arena_dup(&b->text, s[2]),
                       .owner = arena_dup(&b->text, s[3]),
                       .currency = arena_dup(&b->text, s[4]),
                       .credit_normal = strcmp(s[5] ? s[5] : "", "CREDIT") == 0};
            pw_db_get_int64(res, i, pw_db_column(res, "posted_debits"), &a.pd);
            pw_db_get_int64(res, i, pw_db_column(res, "posted_credits"), &a.pc);
            pw_db_get_int64(res, i, pw_db_column(res, "pending_debits"), &a.qd);
            pw_db_get_int64(res, i, pw_db_column(res, "pending_credits"), &a.qc);
            pw_db_get_int64(res, i, pw_db_column(res, "version"), &a.version);
            add_acct(b, &a, 1);
        }
    }
    one_read_done(b);
}

static int state_of(const char *s)
{
    return strcmp(s, "PENDING") == 0  ? ST_PENDING
           : strcmp(s, "POSTED") == 0 ? ST_POSTED
                                      : ST_VOIDED;
}

static const char *text_at(batch *b, pw_db_result *res, int row, const char *col)
{
    const char *s = "";
    pw_db_get_text(res, row, pw_db_column(res, col), &s, NULL);
    return arena_dup(&b->text, s);
}

static void transfers_read(pw_db_result *res, void *ud)
{
    batch *b = ud;
    if (!step_failed(b, res)) {
        for (int i = 0; i < pw_db_rows(res); i++) {
            const char *mode = text_at(b, res, i, "mode"), *id = text_at(b, res, i, "id");
            wtransfer *t = find_xfer(b, mode, id);
            if (t == NULL) {
                t = add_xfer(b, mode, id);
                t->kind = (char *)text_at(b, res, i, "kind");
                t->state = state_of(text_at(b, res, i, "state"));
                t->reference = (char *)text_at(b, res, i, "reference");
                t->partner_reference = (char *)text_at(b, res, i, "partner_reference");
                t->balance_check = (char *)text_at(b, res, i, "balance_check");
                pw_db_get_bool(res, i, pw_db_column(res, "two_phase"), &t->two_phase);
                pw_db_get_timestamptz(res, i, pw_db_column(res, "create_time"), &t->create_us);
                pw_db_get_timestamptz(res, i, pw_db_column(res, "post_time"), &t->post_us);
                pw_db_get_timestamptz(res, i, pw_db_column(res, "void_time"), &t->void_us);
            }
            if (pw_db_is_null(res, i, pw_db_column(res, "account_id"))) {
                continue;
            }
            int a = find_id(b, text_at(b, res, i, "account_id"));
            int64_t amount = 0;
            pw_db_get_int64(res, i, pw_db_column(res, "amount_minor"), &amount);
            /* A stored transfer's account that no op of the batch names (a replay with other
             * accounts): known by id only, so it compares unequal and is never moved. */
            if (a < 0) {
                wacct unknown = {.id = (char *)text_at(b, res, i, "account_id"),
                                 .mode = (char *)mode,
                                 .kind = "",
                                 .owner = "",
                                 .currency = ""};
                a = add_acct(b, &unknown, 0);
            }
            xfer_add_entry(b, t, a, strcmp(text_at(b, res, i, "side"), "CREDIT") == 0, amount,
                           text_at(b, res, i, "currency"), text_at(b, res, i, "purpose"));
        }
    }
    one_read_done(b);
}

static void account_rows(batch *b, jtext *j)
{
    for (size_t i = 0; i < b->nacct; i++) {
        const wacct *a = &b->accts[i];
        if (!a->dirty) {
            continue;
        }
        jt_obj(j);
        jt_kv(j, "id", a->id);
        jt_kvi(j, "pd", a->pd);
        jt_kvi(j, "pc", a->pc);
        jt_kvi(j, "qd", a->qd);
        jt_kvi(j, "qc", a->qc);
        jt_kvi(j, "v", a->version);
        jt_put(j, "}", 1);
    }
}

static void committed(batch *b, pw_status rv)
{
    sent_ok(b, rv);
    if (!b->failed) {
        pw_db_tx_commit(b->tx);
    }
}

/* 1 when an account an op names by key (with the funds check's sibling) is not in the batch:
 * it does not exist yet. */
static int accounts_missing(const batch *b)
{
    for (size_t i = 0; i < b->nops; i++) {
        const ledger_op *op = b->ops[i];
        int funds = op->balance_check != NULL && strcmp(op->balance_check, "MERCHANT_FUNDS") == 0;
        for (size_t k = 0; k < op->entry_count; k++) {
            const ledger_entry_in *e = &op->entries[k];
            if (e->account_id != NULL) {
                continue;
            }
            if (funds && is_merchant_kind(e->kind)) {
                if (find_key(b, op->mode, "merchant_pending", e->owner, e->currency) < 0 ||
                    find_key(b, op->mode, "merchant_available", e->owner, e->currency) < 0) {
                    return 1;
                }
            } else if (find_key(b, op->mode, e->kind, e->owner, e->currency) < 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* Every read is in: each op in order against the running balances, then the writes. Accounts
 * are created on first use, but inserting every named account in every batch (to find that it
 * exists) cost a statement per batch: so a batch runs without, and when it finds an account
 * missing it ends and runs again with the insert (batch_done). */
static void decide(batch *b)
{
    if (!b->create_accounts && accounts_missing(b)) {
        b->retry_creating = 1;
        pw_db_tx_abort(b->tx, PW_ABORTED, "accounts to create first");
        return;
    }
    for (size_t i = 0; i < b->nops; i++) {
        ledger_op *op = b->ops[i];
        if (op->kind == LEDGER_CREATE) {
            apply_create(b, op);
        } else {
            apply_resolve(b, op);
        }
    }
    jtext accounts = {0};
    account_rows(b, &accounts);
    pw_db_param ts = pw_db_timestamptz(b->now_us);
    if (b->new_transfers.items > 0) {
        pw_db_param p[] = {pw_db_jsonb(jt_end(&b->new_transfers)), ts};
        sent_ok(b, pw_db_tx_query(b->tx, &insert_transfers, p, 2, piped, b));
    }
    if (b->new_states.items > 0) {
        pw_db_param p[] = {pw_db_jsonb(jt_end(&b->new_states)), ts};
        sent_ok(b, pw_db_tx_query(b->tx, &update_states, p, 2, piped, b));
    }
    if (b->new_entries.items > 0) {
        pw_db_param p[] = {pw_db_jsonb(jt_end(&b->new_entries)), ts};
        sent_ok(b, pw_db_tx_query(b->tx, &insert_entries, p, 2, piped, b));
    }
    pw_status rv = PW_OK;
    if (accounts.items > 0) {
        pw_db_param p = pw_db_jsonb(jt_end(&accounts));
        rv = pw_db_tx_query(b->tx, &update_accounts, &p, 1, piped, b);
    }
    pw_free(accounts.s);
    committed(b, rv);
}

/* {"mode":…,"id":…} */
static void jt_ref(jtext *j, const char *mode, const char *id)
{
    jt_obj(j);
    jt_kv(j, "mode", mode);
    jt_kv(j, "id", id);
    jt_put(j, "}", 1);
}

/* {"id":…,"mode":…,"kind":…,"owner":…,"currency":…}; no "id" when id is NULL. */
static void jt_key(jtext *j, const char *id, const char *mode, const char *kind, const char *owner,
                   const char *currency)
{
    jt_obj(j);
    if (id != NULL) {
        jt_kv(j, "id", id);
    }
    jt_kv(j, "mode", mode);
    jt_kv(j, "kind", kind);
    jt_kv(j, "owner", owner);
    jt_kv(j, "currency", currency);
    jt_put(j, "}", 1);
}

typedef struct reads {
    /* Transfer lock keys; accounts by id; accounts by key (with new ids, and without);
     * transfers whose pending entries move; every transfer named. */
    jtext locks, ids, newkeys, keys, moved, named;
    smap seen;
} reads;

/* The accounts one entry names: its own, and for the funds check both merchant accounts
 * (creating the sibling is harmless). */
static void entry_reads(reads *q, const ledger_op *op, const ledger_entry_in *e)
{
    if (e->account_id != NULL) {
        jt_item(&q->ids);
        jt_str(&q->ids, e->account_id);
        return;
    }
    const char *kinds[2] = {e->kind, NULL};
    if (strcmp(op->balance_check, "MERCHANT_FUNDS") == 0 && is_merchant_kind(e->kind)) {
        kinds[0] = "merchant_pending";
        kinds[1] = "merchant_available";
    }
    for (int n = 0; n < 2 && kinds[n] != NULL; n++) {
        char key[256];
        key_of(key, sizeof(key), op->mode, kinds[n], e->owner, e->currency);
        if (smap_get(&q->seen, key) >= 0) {
            continue;
        }
        smap_put(&q->seen, key, 1);
        char id[40];
        PW_ASSERT(svc_new_id("acc", id, sizeof(id)) == PW_OK);
        jt_key(&q->newkeys, id, op->mode, kinds[n], e->owner, e->currency);
        jt_key(&q->keys, NULL, op->mode, kinds[n], e->owner, e->currency);
    }
}

/* The reads, pipelined: the plan setting with the transfer locks, missing accounts, accounts FOR
 * UPDATE, transfers. */
static void send_reads(batch *b)
{
    reads q;
    memset(&q, 0, sizeof(q));
    for (size_t i = 0; i < b->nops; i++) {
        const ledger_op *op = b->ops[i];
        char key[256];
        snprintf(key, sizeof(key), "%s|%s", op->mode, op->transfer_id);
        jt_item(&q.locks);
        jt_str(&q.locks, key);
        jt_ref(&q.named, op->mode, op->transfer_id);
        if (op->kind != LEDGER_CREATE) {
            jt_ref(&q.moved, op->mode, op->transfer_id);
        }
        for (size_t k = 0; k < op->entry_count; k++) {
            entry_reads(&q, op, &op->entries[k]);
        }
    }
    b->awaiting = b->create_accounts ? 4 : 3;
    pw_db_param pl = pw_db_jsonb(jt_end(&q.locks));
    sent_ok(b, pw_db_tx_query(b->tx, &lock_ids, &pl, 1, read_piped, b));
    if (b->create_accounts) {
        pw_db_param pu = pw_db_jsonb(jt_end(&q.newkeys));
        sent_ok(b, pw_db_tx_query(b->tx, &upsert_accounts, &pu, 1, read_piped, b));
    }
    if (q.ids.items == 0 && q.moved.items == 0) {
        pw_db_param pk = pw_db_jsonb(jt_end(&q.keys));
        sent_ok(b, pw_db_tx_query(b->tx, &lock_accounts_by_key, &pk, 1, accounts_read, b));
    } else {
        pw_db_param pa[] = {pw_db_jsonb(jt_end(&q.ids)), pw_db_jsonb(jt_end(&q.keys)),
                            pw_db_jsonb(jt_end(&q.moved))};
        sent_ok(b, pw_db_tx_query(b->tx, &lock_accounts, pa, 3, accounts_read, b));
    }
    pw_db_param pt = pw_db_jsonb(jt_end(&q.named));
    sent_ok(b, pw_db_tx_query(b->tx, &read_transfers, &pt, 1, transfers_read, b));
    smap_free(&q.seen);
    jtext *all[] = {&q.locks, &q.ids, &q.newkeys, &q.keys, &q.moved, &q.named};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        pw_free(all[i]->s);
    }
}

static void batch_body(pw_db_tx *tx, int attempt, void *ud)
{
    batch *b = ud;
    batch_reset(b);
    b->tx = tx;
    b->attempt = attempt;
    b->now_us = ledger_now_us();
    send_reads(b);
}

static int batch_form(batcher *q);

/* Starts batches while the loop may have more in flight and one forms. */
static void batches_refill(batcher *q)
{
    while (q->head != NULL && q->running < ledger_shared_batches_in_flight(q->shared) &&
           batch_form(q)) {
    }
}

/* Hands every op its result and wakes its handler; then the next batches. */
static void batch_done(pw_status status, const char *message, void *ud)
{
    batch *b = ud;
    batcher *q = &loop_batcher;
    if (b->retry_creating) {
        /* The same ops, claims and all, again, now inserting the missing accounts. */
        b->retry_creating = 0;
        b->create_accounts = 1;
        pw_status rv =
            pw_db_tx_run(q->pool, NULL, PW_DB_READ_COMMITTED, 5, batch_body, batch_done, b);
        PW_ASSERT(rv == PW_OK);
        return;
    }
    ledger_op *ops[BATCH_MAX];
    size_t n = b->nops;
    memcpy(ops, b->ops, n * sizeof(*ops));
    ledger_claims_release(q->shared, b->claims, b->nclaims, b);
    batch_reset(b);
    pw_free(b->claims);
    pw_free(b);
    q->running--;
    if (status != PW_OK && n > 1 && status != PW_UNAVAILABLE && status != PW_CANCELLED &&
        status != PW_DEADLINE_EXCEEDED) {
        /* Something one op can cause (a constraint): each again on its own, ahead of the queue,
         * so the op at fault fails alone. */
        PW_LOG(PW_LOG_WARNING, "finance", "ledger batch of %zu failed (%s); applying one by one", n,
               message ? message : "");
        for (size_t i = n; i-- > 0;) {
            ops[i]->alone = 1;
            ops[i]->next = q->head;
            q->head = ops[i];
            if (q->tail == NULL) {
                q->tail = ops[i];
            }
        }
        batches_refill(q);
        return;
    }
    if (status == PW_OK) {
        ledger_shared_count_size(q->shared, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (status != PW_OK) {
            op_fail(ops[i], status, NULL, NULL, "the ledger could not apply the transfer: %s",
                    message ? message : "");
        }
        svc_resume(ops[i]->r);
    }
    batches_refill(q);
}

static void claim_name(uint32_t *slots, size_t *n, const char *fmt, ...) PW_PRINTF(3, 4);
static void claim_name(uint32_t *slots, size_t *n, const char *fmt, ...)
{
    char name[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    slots[(*n)++] = ledger_claim_slot(name);
}

/* The names an op's batch claims: its transfer id and the accounts its entries name (both
 * merchant accounts for the funds check, as entry_reads locks them). A post or void names no
 * account: the accounts of its pending entries are known only once read. */
static void op_claims(svc_req *r, ledger_op *op)
{
    op->slots = svc_alloc(r, (1 + 2 * op->entry_count) * sizeof(*op->slots));
    size_t n = 0;
    claim_name(op->slots, &n, "txf:%s|%s", op->mode, op->transfer_id);
    int funds = op->balance_check != NULL && strcmp(op->balance_check, "MERCHANT_FUNDS") == 0;
    for (size_t i = 0; i < op->entry_count; i++) {
        const ledger_entry_in *e = &op->entries[i];
        if (e->account_id != NULL) {
            claim_name(op->slots, &n, "id:%s", e->account_id);
        } else if (funds && is_merchant_kind(e->kind)) {
            claim_name(op->slots, &n, "key:%s|merchant_pending|%s|%s", op->mode, e->owner,
                       e->currency);
            claim_name(op->slots, &n, "key:%s|merchant_available|%s|%s", op->mode, e->owner,
                       e->currency);
        } else {
            claim_name(op->slots, &n, "key:%s|%s|%s|%s", op->mode, e->kind, e->owner, e->currency);
        }
    }
    op->nslots = n;
}

static void batch_keep_claims(batch *b, const ledger_op *op)
{
    if (b->nclaims + op->nslots > b->cap_claims) {
        b->cap_claims = (b->nclaims + op->nslots) * 2;
        b->claims = pw_realloc(b->claims, b->cap_claims * sizeof(*b->claims));
        PW_ASSERT(b->claims != NULL);
    }
    memcpy(b->claims + b->nclaims, op->slots, op->nslots * sizeof(*op->slots));
    b->nclaims += op->nslots;
}

/* 1 when one of op's slots is marked in bits (by an op left behind before it). */
static int slots_marked(const uint8_t *bits, const ledger_op *op)
{
    for (size_t i = 0; i < op->nslots; i++) {
        uint32_t s = op->slots[i];
        if ((bits[s >> 3] >> (s & 7)) & 1) {
            return 1;
        }
    }
    return 0;
}

/* Marks op's slots in bits: it stays behind, and so do the ops after it that share a name. */
static void slots_mark(uint8_t *bits, const ledger_op *op)
{
    for (size_t i = 0; i < op->nslots; i++) {
        uint32_t s = op->slots[i];
        bits[s >> 3] |= (uint8_t)(1u << (s & 7));
    }
}

/*
 * Forms and starts a batch of the queued ops that no batch in flight has claimed, in queue
 * order; an op that shares a name with an op left behind stays behind too, so ops on one
 * account or transfer keep their order. Another loop's claims are ignored while this loop has
 * nothing in flight: nothing else would start this loop's next batch (the row locks still order
 * the two). Returns 1 when a batch started, 0 when no op could go.
 */
static int batch_form(batcher *q)
{
    batch *b = pw_calloc(1, sizeof(*b));
    uint8_t *behind = pw_calloc(LEDGER_CLAIM_SLOTS / 8, 1);
    PW_ASSERT(b != NULL && behind != NULL);
    int others_ignored = q->running == 0;
    ledger_claims_lock(q->shared);
    ledger_op **link = &q->head, *last = NULL;
    while (*link != NULL && b->nops < BATCH_MAX) {
        ledger_op *op = *link;
        /* An op marked alone runs by itself. */
        if (op->alone && b->nops > 0) {
            break;
        }
        if (slots_marked(behind, op) ||
            ledger_claims_conflict(q->shared, op->slots, op->nslots, b, q, others_ignored)) {
            slots_mark(behind, op);
            last = op;
            link = &op->next;
            continue;
        }
        ledger_claims_take(q->shared, op->slots, op->nslots, b, q);
        batch_keep_claims(b, op);
        *link = op->next;
        b->ops[b->nops++] = op;
        if (op->alone) {
            break;
        }
    }
    ledger_claims_unlock(q->shared);
    /* The tail is the last op left in the queue, or it was not reached. */
    if (*link == NULL) {
        q->tail = last;
    }
    pw_free(behind);
    if (b->nops == 0) {
        pw_free(b->claims);
        pw_free(b);
        return 0;
    }
    q->running++;
    /* Fails only for bad arguments or out of memory (which aborts a service first): never. The
     * batch runs for no call: its ops' deadlines do not cut their neighbours' transaction short;
     * the pool's statement timeout bounds it. */
    pw_status rv = pw_db_tx_run(q->pool, NULL, PW_DB_READ_COMMITTED, 5, batch_body, batch_done, b);
    PW_ASSERT(rv == PW_OK);
    return 1;
}

void ledger_apply(svc_req *r, ledger_op *op)
{
    batcher *q = &loop_batcher;
    q->pool = r->app->pool;
    q->shared = r->app->service;
    op->r = r;
    op->next = NULL;
    op->alone = 0;
    op_claims(r, op);
    /* Ops already waiting wait for a batch to end (which forms the next); a lone arrival may
     * start a batch of its own beside those in flight. */
    int waiting = q->head != NULL;
    if (q->tail != NULL) {
        q->tail->next = op;
    } else {
        q->head = op;
    }
    q->tail = op;
    if (q->running == 0 || (!waiting && q->running < ledger_shared_batches_in_flight(q->shared))) {
        batch_form(q);
    }
    svc_suspend(r);
}
