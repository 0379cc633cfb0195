/*
 * chain.c: ChainService (chain.proto), an EVM chain and the custody partner
 * of our deposit addresses as the tests need them. Every record is a row of
 * the simulator's own database: an address per caller's key (a retry gets the
 * same address and bumps `requests`), a transfer per sender's key, and the
 * chain's height in `head`. A key used again with other values (another
 * token, amount or address) is refused with FAILED_PRECONDITION
 * IDEMPOTENCY_KEY_REUSED naming the field, and counts nothing, as a real
 * partner's idempotency does. A transfer is included in a new block at once;
 * blocks are mined on demand, and a reorg drops a transfer's block and every
 * later one (their transfers lose their block; the height stays, as the
 * replacing blocks are empty). Addresses and hashes are SHA-256 of the seed
 * and the index or key, so a run with the same seed makes the same ones.
 * Everything that reads or moves the height locks `head`, so confirmations
 * are always counted against one height. The custody partner also holds our
 * treasury wallet: Withdraw sends from it (finance's payouts to wallets),
 * never more than it holds (treasury_float less its included withdrawals,
 * read and spent under head's lock), and GetTransfer answers any transfer by
 * its sender's key.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "chain.h"

typedef Paywire__Simulators__V1__Transfer Transfer;
typedef Paywire__Simulators__V1__DepositAddress DepositAddress;
typedef Paywire__Common__V1__ChainAddress ChainAddress;

#define CHAIN_MINE_MAX 1000

/* The behaviour (settings), process-wide and read-only once set up. */
typedef struct chain_behaviour {
    int chain;
    char tokens[128];
    char seed[24];
    int64_t treasury_float; /* per token, before any withdrawal */
} chain_behaviour;

const svc_setting chain_settings[] = {
    /* The simulated chain: 1 Ethereum, 2 Polygon, 3 Base (paywire.common.v1.Chain). */
    {"chain", SVC_SETTING_INT, "1", 1, 3, 0},
    /* The tokens it carries, comma-separated. */
    {"tokens", SVC_SETTING_TEXT, "USDC,USDT", 0, 0, 0},
    /* Addresses and transaction hashes derive from it. */
    {"seed", SVC_SETTING_INT, "1", 0, INT64_MAX, 0},
    /* What the treasury wallet holds of each token before any withdrawal (minor units). */
    {"treasury_float", SVC_SETTING_INT, "1000000000000000", 0, INT64_MAX, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

pw_status chain_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    chain_behaviour *b = pw_calloc(1, sizeof(*b));
    b->chain = (int)svc_config_int(cfg, "chain");
    const char *tokens = svc_config_text(cfg, "tokens");
    if (strlen(tokens) == 0 || strlen(tokens) >= sizeof(b->tokens)) {
        snprintf(err, err_len, "tokens: 1 to 127 characters");
        pw_free(b);
        return PW_INVALID_ARGUMENT;
    }
    snprintf(b->tokens, sizeof(b->tokens), "%s", tokens);
    snprintf(b->seed, sizeof(b->seed), "%lld", (long long)svc_config_int(cfg, "seed"));
    b->treasury_float = svc_config_int(cfg, "treasury_float");
    PW_LOG(PW_LOG_NOTICE, "chain_sim", "chain %d, tokens %s, seed %s", b->chain, b->tokens,
           b->seed);
    *state = b;
    return PW_OK;
}

void chain_teardown(void *state)
{
    pw_free(state);
}

/* ---- rows ---- */

#define ADDRESS_COLUMNS "key, chain, token, address, derivation_index, requests"
#define TRANSFER_COLUMNS                                                             \
    "t.key, t.transaction_hash, t.log_index, t.chain, t.from_address, t.to_address," \
    " t.token, t.amount_minor, coalesce(t.block, 0) AS block, t.requests,"           \
    " CASE WHEN t.block IS NULL THEN 0 ELSE h.height - t.block + 1 END::int8 AS confirmations"

static const pw_db_stmt replay_address = {
    .name = "chain_replay_address",
    .sql = "UPDATE addresses SET requests = requests + 1 WHERE key = $1 RETURNING " ADDRESS_COLUMNS,
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* The next index's address: 0x and the first 20 bytes of SHA-256("<seed>:address:<index>"). */
static const pw_db_stmt insert_address = {
    .name = "chain_insert_address",
    .sql = "WITH i AS (SELECT nextval('address_index') AS n)"
           " INSERT INTO addresses AS a (key, chain, token, address, derivation_index)"
           " SELECT $1, $2, $3, '0x' || left(encode(sha256(convert_to($4 || ':address:' || i.n,"
           " 'UTF8')), 'hex'), 40), i.n FROM i"
           " ON CONFLICT (key) DO UPDATE SET requests = a.requests + 1 RETURNING " ADDRESS_COLUMNS,
    .nparams = 4,
    .types = {PW_DB_TEXT, PW_DB_INT4, PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt select_address = {
    .name = "chain_select_address",
    .sql = "SELECT " ADDRESS_COLUMNS " FROM addresses WHERE address = $1 OR key = $2",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt lock_head = {
    .name = "chain_lock_head",
    .sql = "SELECT height FROM head FOR UPDATE",
    .nparams = 0,
};
static const pw_db_stmt replay_transfer = {
    .name = "chain_replay_transfer",
    .sql = "UPDATE transfers t SET requests = t.requests + 1 FROM head h WHERE t.key = $1"
           " RETURNING " TRANSFER_COLUMNS ", h.height",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* Included in the block after the height (the caller holds head's lock and moves it). */
static const pw_db_stmt insert_transfer = {
    .name = "chain_insert_transfer",
    .sql = "WITH ins AS (INSERT INTO transfers (key, transaction_hash, chain, from_address,"
           " to_address, token, amount_minor, block)"
           " SELECT $1, '0x' || encode(sha256(convert_to($2 || ':transfer:' || $1, 'UTF8')),"
           " 'hex'), $3, $4, $5, $6, $7, height + 1 FROM head RETURNING *),"
           " h AS (UPDATE head SET height = height + 1 RETURNING height)"
           " SELECT " TRANSFER_COLUMNS ", h.height FROM ins t, h",
    .nparams = 7,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT4, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8},
};
/* The treasury wallet: 0x and the first 20 bytes of SHA-256("<seed>:treasury"). */
static const pw_db_stmt treasury_address = {
    .name = "chain_treasury_address",
    .sql = "SELECT '0x' || left(encode(sha256(convert_to($1 || ':treasury', 'UTF8')), 'hex'), 40)"
           " AS address",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* What the treasury has sent of a token and the chain still includes. */
static const pw_db_stmt treasury_sent = {
    .name = "chain_treasury_sent",
    .sql = "SELECT coalesce(sum(amount_minor), 0)::int8 AS sent FROM transfers"
           " WHERE from_address = $1 AND token = $2 AND block IS NOT NULL",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt select_transfer_by_key = {
    .name = "chain_transfer_by_key",
    .sql = "SELECT " TRANSFER_COLUMNS ", h.height FROM transfers t CROSS JOIN head h"
           " WHERE t.key = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt mine = {
    .name = "chain_mine",
    .sql = "UPDATE head SET height = height + $1 RETURNING height",
    .nparams = 1,
    .types = {PW_DB_INT8},
};
static const pw_db_stmt select_transfer = {
    .name = "chain_select_transfer",
    .sql = "SELECT t.block FROM transfers t WHERE t.transaction_hash = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt drop_blocks = {
    .name = "chain_drop_blocks",
    .sql = "UPDATE transfers t SET dropped_block = t.block, block = NULL FROM head h"
           " WHERE t.block >= $1 RETURNING " TRANSFER_COLUMNS,
    .nparams = 1,
    .types = {PW_DB_INT8},
};
static const pw_db_stmt select_transfers_to = {
    .name = "chain_transfers_to",
    .sql = "SELECT " TRANSFER_COLUMNS ", h.height FROM transfers t CROSS JOIN head h"
           " WHERE t.to_address = $1 ORDER BY t.seq",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt select_height = {
    .name = "chain_height",
    .sql = "SELECT height FROM head",
    .nparams = 0,
};

static ChainAddress *chain_address(svc_req *r, int chain, const char *address)
{
    ChainAddress *a = svc_alloc(r, sizeof(*a));
    paywire__common__v1__chain_address__init(a);
    a->chain = (Paywire__Common__V1__Chain)chain;
    a->address = svc_strdup(r, address);
    return a;
}

static DepositAddress *address_from_row(svc_req *r, svc_row row)
{
    DepositAddress *d = svc_alloc(r, sizeof(*d));
    paywire__simulators__v1__deposit_address__init(d);
    d->idempotency_key = svc_text(row, "key");
    d->address = chain_address(r, (int)svc_int64(row, "chain"), svc_text(row, "address"));
    d->token = svc_text(row, "token");
    d->derivation_index = svc_int64(row, "derivation_index");
    d->requests = (int32_t)svc_int64(row, "requests");
    return d;
}

static Transfer *transfer_from_row(svc_req *r, svc_row row)
{
    Transfer *t = svc_alloc(r, sizeof(*t));
    paywire__simulators__v1__transfer__init(t);
    int chain = (int)svc_int64(row, "chain");
    t->idempotency_key = svc_text(row, "key");
    t->transaction_hash = svc_text(row, "transaction_hash");
    t->log_index = (uint32_t)svc_int64(row, "log_index");
    t->from_address = chain_address(r, chain, svc_text(row, "from_address"));
    t->to_address = chain_address(r, chain, svc_text(row, "to_address"));
    t->token = svc_text(row, "token");
    t->amount_minor = svc_int64(row, "amount_minor");
    t->block_number = svc_int64(row, "block");
    t->state = t->block_number > 0
                   ? PAYWIRE__SIMULATORS__V1__TRANSFER_STATE__TRANSFER_STATE_INCLUDED
                   : PAYWIRE__SIMULATORS__V1__TRANSFER_STATE__TRANSFER_STATE_DROPPED;
    t->confirmations = (uint32_t)svc_int64(row, "confirmations");
    t->requests = (int32_t)svc_int64(row, "requests");
    return t;
}

/* ---- validation ---- */

/* 1 when token is one of the simulator's (the comma-separated setting). */
static int token_ok(const chain_behaviour *b, const char *token)
{
    size_t n = strlen(token);
    if (n == 0 || strchr(token, ',') != NULL) {
        return 0;
    }
    for (const char *p = b->tokens; *p != '\0';
         p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strncmp(p, token, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

/* s in lower case (addresses and hashes are stored so), in call memory. */
static const char *lower(svc_req *r, const char *s)
{
    char *low = svc_strdup(r, s);
    for (char *c = low; *c != '\0'; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    return low;
}

/* The address in lower case (as stored), or NULL with a violation for field. */
static const char *address_arg(svc_req *r, const chain_behaviour *b, const ChainAddress *a,
                               const char *field)
{
    if (a == NULL || (int)a->chain != b->chain || !svc_wallet_ok(b->chain, a->address) ||
        strncmp(a->address, "0x", 2) != 0) {
        svc_violation(r, field, "an address (0x and 40 hex digits) on the simulated chain");
        return NULL;
    }
    return lower(r, a->address);
}

static int hash_ok(const char *h)
{
    if (h == NULL || strlen(h) != 66 || strncmp(h, "0x", 2) != 0) {
        return 0;
    }
    for (int i = 2; i < 66; i++) {
        if (!isxdigit((unsigned char)h[i])) {
            return 0;
        }
    }
    return 1;
}

/* ---- CreateDepositAddress ---- */

typedef struct address_args {
    const Paywire__Simulators__V1__CreateDepositAddressRequest *req;
    const chain_behaviour *b;
    DepositAddress **out;
} address_args;

/* The key's address, new or replayed; a replay with other values is rolled back (no count). */
static void address_tx(svc_req *r, const void *arg)
{
    const address_args *a = arg;
    pw_db_param key = pw_db_text(a->req->idempotency_key);
    const pw_db_result *res = svc_tx_query(r, &replay_address, &key, 1);
    if (pw_db_rows(res) == 0) {
        pw_db_param p[] = {key, pw_db_int4(a->b->chain), pw_db_text(a->req->token),
                           pw_db_text(a->b->seed)};
        res = svc_tx_query(r, &insert_address, p, 4);
    }
    svc_row row = svc_row_at(r, res, 0);
    svc_same_int(r, a->req->idempotency_key, "chain", svc_int64(row, "chain"), (int)a->req->chain);
    svc_same_text(r, a->req->idempotency_key, "token", svc_text(row, "token"), a->req->token);
    *a->out = address_from_row(r, row);
    svc_tx_commit(r);
}

SVC_HANDLER(create_deposit_address, Paywire__Simulators__V1__CreateDepositAddressRequest)
{
    const chain_behaviour *b = r->app->service;
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if ((int)req->chain != b->chain) {
        svc_violation(r, "chain", "the simulated chain (setting chain)");
    }
    if (!token_ok(b, req->token)) {
        svc_violation(r, "token", "one of the simulator's tokens (setting tokens)");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    Paywire__Simulators__V1__CreateDepositAddressResponse resp =
        PAYWIRE__SIMULATORS__V1__CREATE_DEPOSIT_ADDRESS_RESPONSE__INIT;
    address_args a = {.req = req, .b = b, .out = &resp.deposit_address};
    svc_transaction(r, address_tx, &a);
    svc_reply(r, &resp.base);
}

/* ---- SendTransfer ---- */

typedef struct send_args {
    const chain_behaviour *b;
    const char *key, *from, *to, *token;
    int64_t amount_minor;
    int64_t treasury_float; /* < 0: a payer's wallet, no balance kept */
    int64_t *balance;       /* the treasury's after the send, when treasury_float >= 0 */
    Transfer **transfer;
    int64_t *height;
} send_args;

/* The treasury's balance in the token, as the chain includes its withdrawals now. */
static int64_t treasury_balance(svc_req *r, const send_args *s)
{
    pw_db_param p[] = {pw_db_text(s->from), pw_db_text(s->token)};
    return s->treasury_float -
           svc_int64(svc_row_at(r, svc_tx_query(r, &treasury_sent, p, 2), 0), "sent");
}

/* Under head's lock, so a replay and the first send never interleave, and a treasury's
 * balance is read and spent by one send at a time. */
static void send_tx(svc_req *r, const void *arg)
{
    const send_args *s = arg;
    svc_tx_query(r, &lock_head, NULL, 0);
    pw_db_param p[] = {pw_db_text(s->key),         pw_db_text(s->b->seed), pw_db_int4(s->b->chain),
                       pw_db_text(s->from),        pw_db_text(s->to),      pw_db_text(s->token),
                       pw_db_int8(s->amount_minor)};
    const pw_db_result *res = svc_tx_query(r, &replay_transfer, &p[0], 1);
    if (pw_db_rows(res) == 0) {
        if (s->treasury_float >= 0) {
            int64_t held = treasury_balance(r, s);
            if (held < s->amount_minor) {
                svc_abort(r, PW_FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
                          "the treasury holds %lld of %s, less than amount_minor %lld",
                          (long long)held, s->token, (long long)s->amount_minor);
            }
        }
        res = svc_tx_query(r, &insert_transfer, p, 7);
    }
    svc_row row = svc_row_at(r, res, 0);
    svc_same_int(r, s->key, "amount_minor", svc_int64(row, "amount_minor"), s->amount_minor);
    svc_same_text(r, s->key, "to_address", svc_text(row, "to_address"), s->to);
    svc_same_text(r, s->key, "from_address", svc_text(row, "from_address"), s->from);
    svc_same_text(r, s->key, "token", svc_text(row, "token"), s->token);
    *s->height = svc_int64(row, "height");
    *s->transfer = transfer_from_row(r, row);
    if (s->treasury_float >= 0) {
        *s->balance = treasury_balance(r, s);
    }
    svc_tx_commit(r);
}

/* The checks SendTransfer and Withdraw share (a violation each; the caller checks). */
static void transfer_args(svc_req *r, const chain_behaviour *b, const char *key, const char *token,
                          int64_t amount_minor)
{
    if (!svc_key_ok(key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!token_ok(b, token)) {
        svc_violation(r, "token", "one of the simulator's tokens (setting tokens)");
    }
    if (amount_minor <= 0) {
        svc_violation(r, "amount_minor", "above 0 (minor units of the token)");
    }
}

SVC_HANDLER(send_transfer, Paywire__Simulators__V1__SendTransferRequest)
{
    const chain_behaviour *b = r->app->service;
    transfer_args(r, b, req->idempotency_key, req->token, req->amount_minor);
    const char *from = address_arg(r, b, req->from_address, "from_address");
    const char *to = address_arg(r, b, req->to_address, "to_address");
    svc_check(r);
    svc_authenticate(r, NULL);
    Paywire__Simulators__V1__SendTransferResponse resp =
        PAYWIRE__SIMULATORS__V1__SEND_TRANSFER_RESPONSE__INIT;
    send_args s = {.b = b,
                   .key = req->idempotency_key,
                   .from = from,
                   .to = to,
                   .token = req->token,
                   .amount_minor = req->amount_minor,
                   .treasury_float = -1,
                   .transfer = &resp.transfer,
                   .height = &resp.height};
    svc_transaction(r, send_tx, &s);
    svc_reply(r, &resp.base);
}

/* ---- Withdraw ---- */

SVC_HANDLER(withdraw, Paywire__Simulators__V1__WithdrawRequest)
{
    const chain_behaviour *b = r->app->service;
    transfer_args(r, b, req->idempotency_key, req->token, req->amount_minor);
    const char *to = address_arg(r, b, req->to_address, "to_address");
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param seed = pw_db_text(b->seed);
    const char *from =
        svc_text(svc_row_at(r, svc_query(r, &treasury_address, &seed, 1), 0), "address");
    if (strcmp(from, to) == 0) {
        svc_fail(r, PW_INVALID_ARGUMENT, "to_address is the treasury wallet itself");
    }
    Paywire__Simulators__V1__WithdrawResponse resp =
        PAYWIRE__SIMULATORS__V1__WITHDRAW_RESPONSE__INIT;
    send_args s = {.b = b,
                   .key = req->idempotency_key,
                   .from = from,
                   .to = to,
                   .token = req->token,
                   .amount_minor = req->amount_minor,
                   .treasury_float = b->treasury_float,
                   .balance = &resp.treasury_balance_minor,
                   .transfer = &resp.transfer,
                   .height = &resp.height};
    svc_transaction(r, send_tx, &s);
    PW_LOG(PW_LOG_INFO, "chain_sim", "withdrawal %s: %lld %s to %s in block %lld",
           req->idempotency_key, (long long)req->amount_minor, req->token, to,
           (long long)resp.transfer->block_number);
    svc_reply(r, &resp.base);
}

/* ---- GetTransfer ---- */

SVC_HANDLER(get_transfer, Paywire__Simulators__V1__GetTransferRequest)
{
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param key = pw_db_text(req->idempotency_key);
    svc_row row = svc_one(r, svc_query(r, &select_transfer_by_key, &key, 1), "transfer",
                          req->idempotency_key);
    Paywire__Simulators__V1__GetTransferResponse resp =
        PAYWIRE__SIMULATORS__V1__GET_TRANSFER_RESPONSE__INIT;
    resp.transfer = transfer_from_row(r, row);
    resp.height = svc_int64(row, "height");
    svc_reply(r, &resp.base);
}

/* ---- MineBlocks ---- */

SVC_HANDLER(mine_blocks, Paywire__Simulators__V1__MineBlocksRequest)
{
    if (req->count < 1 || req->count > CHAIN_MINE_MAX) {
        svc_violation(r, "count", "1 to 1000 blocks");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param n = pw_db_int8(req->count);
    Paywire__Simulators__V1__MineBlocksResponse resp =
        PAYWIRE__SIMULATORS__V1__MINE_BLOCKS_RESPONSE__INIT;
    resp.height = svc_int64(svc_row_at(r, svc_query(r, &mine, &n, 1), 0), "height");
    svc_reply(r, &resp.base);
}

/* ---- Reorg ---- */

typedef struct reorg_args {
    const char *hash;
    uint32_t max_depth; /* 0: no limit */
    Paywire__Simulators__V1__ReorgResponse *resp;
} reorg_args;

static void reorg_tx(svc_req *r, const void *arg)
{
    const reorg_args *a = arg;
    a->resp->height = svc_int64(svc_row_at(r, svc_tx_query(r, &lock_head, NULL, 0), 0), "height");
    pw_db_param hash = pw_db_text(a->hash);
    svc_row t = svc_one(r, svc_tx_query(r, &select_transfer, &hash, 1), "transfer", a->hash);
    if (svc_is_null(t, "block")) {
        svc_abort(r, PW_FAILED_PRECONDITION, "TRANSFER_DROPPED",
                  "transfer %s was dropped by an earlier reorg", a->hash);
    }
    int64_t block = svc_int64(t, "block");
    int64_t depth = a->resp->height - block + 1;
    if (a->max_depth != 0 && depth > (int64_t)a->max_depth) {
        svc_abort(r, PW_FAILED_PRECONDITION, "TOO_DEEP",
                  "transfer %s is %lld blocks deep, more than max_depth %u", a->hash,
                  (long long)depth, a->max_depth);
    }
    pw_db_param from = pw_db_int8(block);
    const pw_db_result *res = svc_tx_query(r, &drop_blocks, &from, 1);
    int n = pw_db_rows(res);
    a->resp->dropped = svc_alloc(r, sizeof(*a->resp->dropped) * (size_t)n);
    for (int i = 0; i < n; i++) {
        a->resp->dropped[a->resp->n_dropped++] = transfer_from_row(r, svc_row_at(r, res, i));
    }
    PW_LOG(PW_LOG_NOTICE, "chain_sim", "reorg from block %lld: %d transfers dropped",
           (long long)block, n);
    svc_tx_commit(r);
}

SVC_HANDLER(reorg, Paywire__Simulators__V1__ReorgRequest)
{
    if (!hash_ok(req->transaction_hash)) {
        svc_violation(r, "transaction_hash", "0x and 64 hex digits");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    Paywire__Simulators__V1__ReorgResponse resp = PAYWIRE__SIMULATORS__V1__REORG_RESPONSE__INIT;
    reorg_args a = {
        .hash = lower(r, req->transaction_hash), .max_depth = req->max_depth, .resp = &resp};
    svc_transaction(r, reorg_tx, &a);
    svc_reply(r, &resp.base);
}

/* ---- GetDepositAddress ---- */

SVC_HANDLER(get_deposit_address, Paywire__Simulators__V1__GetDepositAddressRequest)
{
    int by_address = req->address[0] != '\0', by_key = req->idempotency_key[0] != '\0';
    if (by_address == by_key) {
        svc_violation(r, "address", "exactly one of address and idempotency_key");
    } else if (by_key && !svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    } else if (by_address && !svc_text_ok(req->address, 128)) {
        svc_violation(r, "address", "1 to 128 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_text(by_address ? lower(r, req->address) : NULL),
                       pw_db_text(by_key ? req->idempotency_key : NULL)};
    svc_row row = svc_one(r, svc_query(r, &select_address, p, 2), "deposit address",
                          by_address ? req->address : req->idempotency_key);
    Paywire__Simulators__V1__GetDepositAddressResponse resp =
        PAYWIRE__SIMULATORS__V1__GET_DEPOSIT_ADDRESS_RESPONSE__INIT;
    resp.deposit_address = address_from_row(r, row);
    pw_db_param to = pw_db_text(resp.deposit_address->address->address);
    const pw_db_result *res = svc_query(r, &select_transfers_to, &to, 1);
    int n = pw_db_rows(res);
    resp.transfers = svc_alloc(r, sizeof(*resp.transfers) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        resp.transfers[resp.n_transfers++] = transfer_from_row(r, svc_row_at(r, res, i));
    }
    /* One height for the transfers and the answer: the statement's own. */
    resp.height =
        n > 0 ? svc_int64(svc_row_at(r, res, 0), "height")
              : svc_int64(svc_row_at(r, svc_query(r, &select_height, NULL, 0), 0), "height");
    svc_reply(r, &resp.base);
}

static const paywire_simulators_v1_chain_service_handlers handlers = {
    .create_deposit_address = create_deposit_address_h,
    .send_transfer = send_transfer_h,
    .mine_blocks = mine_blocks_h,
    .reorg = reorg_h,
    .get_deposit_address = get_deposit_address_h,
    .withdraw = withdraw_h,
    .get_transfer = get_transfer_h,
};

pw_status chain_register(pw_server *server, svc_app *app)
{
    return paywire_simulators_v1_chain_service_register(server, &handlers, app);
}
