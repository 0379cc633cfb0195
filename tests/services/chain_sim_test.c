/*
 * The chain simulator end to end (chain.proto): a real chain-sim process on a
 * fresh database, called over mTLS. Orchestration's on-chain tests read the
 * chain through it, so its records are checked here first: one address per
 * key, a transfer per key in a new block, confirmations counted from the
 * height, a reorg dropping a block and every later one, a key used again with
 * other values refused (IDEMPOTENCY_KEY_REUSED naming the field, nothing
 * counted), bad input named by its field, and the treasury's withdrawals
 * (finance's wallet payouts): once per key, never more than it holds.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/simulators/v1/chain.pw.h"

typedef Paywire__Simulators__V1__Transfer Transfer;

#define ETH      PAYWIRE__COMMON__V1__CHAIN__CHAIN_ETHEREUM
#define INCLUDED PAYWIRE__SIMULATORS__V1__TRANSFER_STATE__TRANSFER_STATE_INCLUDED
#define DROPPED  PAYWIRE__SIMULATORS__V1__TRANSFER_STATE__TRANSFER_STATE_DROPPED

static const char payer[] = "0x52908400098527886E0F7030069857D2E4169EE7"; /* EIP-55 mixed case */

static char db_url[512];
static svc_process sim = {.name = "chain",
                          .binary = PW_CHAIN_SIM,
                          .health_service = "paywire.simulators.v1.ChainService"};
static uv_loop_t loop;
static pw_channel *ch;

static int group_setup(void **state)
{
    (void)state;
    svc_process_prepare(&sim);
    pw_test_db_create("chain_sim_test", db_url, sizeof(db_url));
    char err[512];
    assert_int_equal(pw_db_migrate(db_url,
                                   PW_SOURCE_DIR
                                   "/services/orchestration/simulators/chain-sim/migrations",
                                   "paywire.migrate.chain_sim", NULL, err, sizeof(err)),
                     PW_OK);
    svc_process_start(&sim, db_url, "log_level = warning\nworkers = 2\ntreasury_float = 5000000\n");
    uv_loop_init(&loop);
    ch = svc_process_channel(&sim, &loop);
    svc_process_wait_serving(&sim, ch);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(ch, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&sim);
    svc_process_cleanup(&sim);
    return 0;
}

/* An answer: the status, the response and message (free with answer_free) and the details. */
typedef struct answer {
    pw_status code;
    ProtobufCMessage *msg;
    char *message;
    pw_error_details details;
} answer;

static answer call(const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *type)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.simulators.v1.ChainService/%s", method);
    pw_call_options o = {.timeout_ms = 10000};
    answer a = {0};
    pw_metadata trailers = {0};
    a.code = pw_client_unary_blocking(ch, path, &o, req, type, &a.msg, &a.message, &trailers);
    pw_error_details_read(&trailers, &a.details);
    pw_metadata_clear(&trailers);
    return a;
}

static void answer_free(answer *a)
{
    pw_protobuf_free(a->msg);
    pw_free(a->message);
    pw_error_details_clear(&a->details);
}

/* 1 when the answer is FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED naming field. */
static int key_reused(answer *a, const char *field)
{
    int ok = a->code == PW_FAILED_PRECONDITION && a->details.reason != NULL &&
             strcmp(a->details.reason, "IDEMPOTENCY_KEY_REUSED") == 0 && a->message != NULL &&
             strstr(a->message, field) != NULL;
    if (!ok) {
        fprintf(stderr, "expected IDEMPOTENCY_KEY_REUSED for %s, got %d: %s\n", field, a->code,
                a->message != NULL ? a->message : "(none)");
    }
    answer_free(a);
    return ok;
}

/* 1 when the answer is INVALID_ARGUMENT with a violation for field. */
static int violates(answer *a, const char *field)
{
    int found = 0;
    for (size_t i = 0; i < a->details.violation_count; i++) {
        found |= strcmp(a->details.violations[i].field, field) == 0;
    }
    int ok = a->code == PW_INVALID_ARGUMENT && found;
    answer_free(a);
    return ok;
}

static answer create_address(const char *key, int chain, const char *token)
{
    Paywire__Simulators__V1__CreateDepositAddressRequest req =
        PAYWIRE__SIMULATORS__V1__CREATE_DEPOSIT_ADDRESS_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.chain = (Paywire__Common__V1__Chain)chain;
    req.token = (char *)token;
    return call("CreateDepositAddress", &req.base,
                &paywire__simulators__v1__create_deposit_address_response__descriptor);
}

static Paywire__Simulators__V1__CreateDepositAddressResponse *address_of(answer *a)
{
    assert_int_equal(a->code, PW_OK);
    return (Paywire__Simulators__V1__CreateDepositAddressResponse *)a->msg;
}

static answer send_transfer(const char *key, const char *from, const char *to, const char *token,
                            int64_t amount)
{
    Paywire__Common__V1__ChainAddress f = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    Paywire__Common__V1__ChainAddress t = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    f.chain = t.chain = ETH;
    f.address = (char *)from;
    t.address = (char *)to;
    Paywire__Simulators__V1__SendTransferRequest req =
        PAYWIRE__SIMULATORS__V1__SEND_TRANSFER_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.from_address = &f;
    req.to_address = &t;
    req.token = (char *)token;
    req.amount_minor = amount;
    return call("SendTransfer", &req.base,
                &paywire__simulators__v1__send_transfer_response__descriptor);
}

static Paywire__Simulators__V1__SendTransferResponse *sent(answer *a)
{
    assert_int_equal(a->code, PW_OK);
    return (Paywire__Simulators__V1__SendTransferResponse *)a->msg;
}

static int64_t mine_blocks(int count)
{
    Paywire__Simulators__V1__MineBlocksRequest req =
        PAYWIRE__SIMULATORS__V1__MINE_BLOCKS_REQUEST__INIT;
    req.count = count;
    answer a =
        call("MineBlocks", &req.base, &paywire__simulators__v1__mine_blocks_response__descriptor);
    assert_int_equal(a.code, PW_OK);
    int64_t h = ((Paywire__Simulators__V1__MineBlocksResponse *)a.msg)->height;
    answer_free(&a);
    return h;
}

static answer reorg_at_most(const char *hash, uint32_t max_depth)
{
    Paywire__Simulators__V1__ReorgRequest req = PAYWIRE__SIMULATORS__V1__REORG_REQUEST__INIT;
    req.transaction_hash = (char *)hash;
    req.max_depth = max_depth;
    return call("Reorg", &req.base, &paywire__simulators__v1__reorg_response__descriptor);
}

static answer reorg(const char *hash)
{
    return reorg_at_most(hash, 0);
}

static answer withdraw(const char *key, const char *to, const char *token, int64_t amount)
{
    Paywire__Common__V1__ChainAddress t = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    t.chain = ETH;
    t.address = (char *)to;
    Paywire__Simulators__V1__WithdrawRequest req = PAYWIRE__SIMULATORS__V1__WITHDRAW_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    req.to_address = &t;
    req.token = (char *)token;
    req.amount_minor = amount;
    return call("Withdraw", &req.base, &paywire__simulators__v1__withdraw_response__descriptor);
}

static Paywire__Simulators__V1__WithdrawResponse *withdrawn(answer *a)
{
    if (a->code != PW_OK) {
        fprintf(stderr, "Withdraw: %d %s\n", a->code, a->message ? a->message : "");
    }
    assert_int_equal(a->code, PW_OK);
    return (Paywire__Simulators__V1__WithdrawResponse *)a->msg;
}

static answer get_transfer(const char *key)
{
    Paywire__Simulators__V1__GetTransferRequest req =
        PAYWIRE__SIMULATORS__V1__GET_TRANSFER_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    return call("GetTransfer", &req.base,
                &paywire__simulators__v1__get_transfer_response__descriptor);
}

static answer get_address(const char *address, const char *key)
{
    Paywire__Simulators__V1__GetDepositAddressRequest req =
        PAYWIRE__SIMULATORS__V1__GET_DEPOSIT_ADDRESS_REQUEST__INIT;
    req.address = (char *)address;
    req.idempotency_key = (char *)key;
    return call("GetDepositAddress", &req.base,
                &paywire__simulators__v1__get_deposit_address_response__descriptor);
}

static Paywire__Simulators__V1__GetDepositAddressResponse *got(answer *a)
{
    assert_int_equal(a->code, PW_OK);
    return (Paywire__Simulators__V1__GetDepositAddressResponse *)a->msg;
}

static void test_chain_sim_address_once_per_key(void **state)
{
    (void)state;
    answer a = create_address("att_addr1", ETH, "USDC");
    answer b = create_address("att_addr1", ETH, "USDC");
    answer c = create_address("att_addr2", ETH, "USDC");
    const char *addr = address_of(&a)->deposit_address->address->address;
    assert_int_equal(strlen(addr), 42);
    assert_string_equal(address_of(&b)->deposit_address->address->address, addr);
    assert_int_equal(address_of(&b)->deposit_address->requests, 2);
    assert_int_equal(address_of(&b)->deposit_address->derivation_index,
                     address_of(&a)->deposit_address->derivation_index);
    assert_string_not_equal(address_of(&c)->deposit_address->address->address, addr);
    assert_int_equal(address_of(&c)->deposit_address->derivation_index,
                     address_of(&a)->deposit_address->derivation_index + 1);
    /* Found by the address and by the key alike, with nothing sent to it yet. */
    answer g = get_address(addr, "");
    assert_string_equal(got(&g)->deposit_address->idempotency_key, "att_addr1");
    assert_int_equal(got(&g)->n_transfers, 0);
    answer k = get_address("", "att_addr2");
    assert_string_equal(got(&k)->deposit_address->address->address,
                        address_of(&c)->deposit_address->address->address);
    answer n = get_address("", "att_none");
    assert_int_equal(n.code, PW_NOT_FOUND);
    answer *all[] = {&a, &b, &c, &g, &k, &n};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        answer_free(all[i]);
    }
}

static void test_chain_sim_transfer_confirmations(void **state)
{
    (void)state;
    answer a = create_address("att_conf", ETH, "USDC");
    const char *addr = address_of(&a)->deposit_address->address->address;
    answer s = send_transfer("tx_conf", payer, addr, "USDC", 25000000);
    Transfer *t = sent(&s)->transfer;
    assert_int_equal(t->state, INCLUDED);
    assert_int_equal(t->confirmations, 1);
    assert_int_equal(t->block_number, sent(&s)->height);
    assert_int_equal(strlen(t->transaction_hash), 66);
    /* The payer's address comes back as stored: lower case. */
    assert_string_equal(t->from_address->address, "0x52908400098527886e0f7030069857d2e4169ee7");
    int64_t height = mine_blocks(11);
    assert_int_equal(height, t->block_number + 11);
    /* A retry is the same transfer in the same block: no new block, no second transfer. */
    answer again = send_transfer("tx_conf", payer, addr, "USDC", 25000000);
    assert_string_equal(sent(&again)->transfer->transaction_hash, t->transaction_hash);
    assert_int_equal(sent(&again)->transfer->requests, 2);
    assert_int_equal(sent(&again)->height, height);
    answer g = get_address(addr, "");
    assert_int_equal(got(&g)->n_transfers, 1);
    assert_int_equal(got(&g)->transfers[0]->confirmations, 12);
    assert_int_equal(got(&g)->transfers[0]->amount_minor, 25000000);
    assert_int_equal(got(&g)->height, height);
    answer_free(&a);
    answer_free(&s);
    answer_free(&again);
    answer_free(&g);
}

static void test_chain_sim_reorg_drops_later_blocks(void **state)
{
    (void)state;
    answer a = create_address("att_reorg", ETH, "USDC");
    const char *addr = address_of(&a)->deposit_address->address->address;
    answer first = send_transfer("tx_reorg1", payer, addr, "USDC", 1000000);
    mine_blocks(2);
    answer second = send_transfer("tx_reorg2", payer, addr, "USDC", 2000000);
    int64_t height = sent(&second)->height;
    const char *hash = sent(&first)->transfer->transaction_hash;
    /* Its block is 4 deep (itself, two mined, the second's): max_depth 3 refuses and drops
     * nothing, 4 would allow it. */
    answer deep = reorg_at_most(hash, 3);
    assert_int_equal(deep.code, PW_FAILED_PRECONDITION);
    answer kept = get_address(addr, "");
    assert_int_equal(got(&kept)->transfers[0]->state, INCLUDED);
    assert_int_equal(got(&kept)->transfers[0]->confirmations, 4);
    answer r = reorg_at_most(hash, 4);
    assert_int_equal(r.code, PW_OK);
    Paywire__Simulators__V1__ReorgResponse *rr = (Paywire__Simulators__V1__ReorgResponse *)r.msg;
    assert_int_equal(rr->n_dropped, 2);
    assert_int_equal(rr->height, height);
    assert_int_equal(rr->dropped[0]->state, DROPPED);
    answer g = get_address(addr, "");
    assert_int_equal(got(&g)->n_transfers, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(got(&g)->transfers[i]->state, DROPPED);
        assert_int_equal(got(&g)->transfers[i]->confirmations, 0);
        assert_int_equal(got(&g)->transfers[i]->block_number, 0);
    }
    /* A dropped transfer cannot be reorganised again; an unknown one is not found. */
    answer twice = reorg(hash);
    assert_int_equal(twice.code, PW_FAILED_PRECONDITION);
    answer unknown = reorg("0x00000000000000000000000000000000000000000000000000000000000000ff");
    assert_int_equal(unknown.code, PW_NOT_FOUND);
    answer *all[] = {&a, &first, &second, &deep, &kept, &r, &g, &twice, &unknown};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        answer_free(all[i]);
    }
}

static void test_chain_sim_reorg_keeps_earlier_blocks(void **state)
{
    (void)state;
    answer a = create_address("att_keep", ETH, "USDC");
    const char *addr = address_of(&a)->deposit_address->address->address;
    answer kept = send_transfer("tx_keep1", payer, addr, "USDC", 3000000);
    answer gone = send_transfer("tx_keep2", payer, addr, "USDC", 4000000);
    answer r = reorg(sent(&gone)->transfer->transaction_hash);
    assert_int_equal(r.code, PW_OK);
    assert_int_equal(((Paywire__Simulators__V1__ReorgResponse *)r.msg)->n_dropped, 1);
    answer g = get_address(addr, "");
    assert_int_equal(got(&g)->transfers[0]->state, INCLUDED);
    assert_int_equal(got(&g)->transfers[0]->confirmations, 2);
    assert_int_equal(got(&g)->transfers[1]->state, DROPPED);
    answer *all[] = {&a, &kept, &gone, &r, &g};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        answer_free(all[i]);
    }
}

/* Issue 19: a key used again with another value is refused and counts nothing. */
static void test_chain_sim_key_reused_with_other_values(void **state)
{
    (void)state;
    answer a = create_address("att_reuse", ETH, "USDC");
    const char *addr = address_of(&a)->deposit_address->address->address;
    answer x = create_address("att_reuse", ETH, "USDT");
    assert_true(key_reused(&x, "token"));
    answer other = create_address("att_reuse_to", ETH, "USDC");
    const char *addr2 = address_of(&other)->deposit_address->address->address;
    answer s = send_transfer("tx_reuse", payer, addr, "USDC", 5000000);
    int64_t height = sent(&s)->height;
    x = send_transfer("tx_reuse", payer, addr, "USDC", 5000001);
    assert_true(key_reused(&x, "amount_minor"));
    x = send_transfer("tx_reuse", payer, addr2, "USDC", 5000000);
    assert_true(key_reused(&x, "to_address"));
    x = send_transfer("tx_reuse", addr2, addr, "USDC", 5000000);
    assert_true(key_reused(&x, "from_address"));
    x = send_transfer("tx_reuse", payer, addr, "USDT", 5000000);
    assert_true(key_reused(&x, "token"));
    /* The same values again (the payer in another case) are the first records, counted twice. */
    answer b = create_address("att_reuse", ETH, "USDC");
    assert_string_equal(address_of(&b)->deposit_address->address->address, addr);
    assert_int_equal(address_of(&b)->deposit_address->requests, 2);
    answer again = send_transfer("tx_reuse", "0x52908400098527886e0f7030069857d2e4169ee7", addr,
                                 "USDC", 5000000);
    assert_string_equal(sent(&again)->transfer->transaction_hash,
                        sent(&s)->transfer->transaction_hash);
    assert_int_equal(sent(&again)->transfer->requests, 2);
    assert_int_equal(sent(&again)->height, height);
    /* Nothing refused was written: one transfer, to the first address only. */
    answer g = get_address(addr, "");
    assert_int_equal(got(&g)->n_transfers, 1);
    assert_int_equal(got(&g)->transfers[0]->amount_minor, 5000000);
    answer g2 = get_address(addr2, "");
    assert_int_equal(got(&g2)->n_transfers, 0);
    answer *all[] = {&a, &other, &s, &b, &again, &g, &g2};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        answer_free(all[i]);
    }
}

static void test_chain_sim_rejects_bad_input(void **state)
{
    (void)state;
    answer a = create_address("att_bad", ETH, "USDC");
    const char *addr = address_of(&a)->deposit_address->address->address;
    answer x;
    x = create_address("", ETH, "USDC");
    assert_true(violates(&x, "idempotency_key"));
    x = create_address("att_bad2", PAYWIRE__COMMON__V1__CHAIN__CHAIN_SOLANA, "USDC");
    assert_true(violates(&x, "chain"));
    x = create_address("att_bad3", ETH, "DOGE");
    assert_true(violates(&x, "token"));
    x = send_transfer("tx_bad", "0x1234", addr, "USDC", 1);
    assert_true(violates(&x, "from_address"));
    /* A mixed-case address whose EIP-55 checksum is wrong. */
    x = send_transfer("tx_bad", payer, "0x52908400098527886E0F7030069857D2E4169Ee7", "USDC", 1);
    assert_true(violates(&x, "to_address"));
    x = send_transfer("tx_bad", payer, addr, "USDC", 0);
    assert_true(violates(&x, "amount_minor"));
    Paywire__Simulators__V1__MineBlocksRequest m =
        PAYWIRE__SIMULATORS__V1__MINE_BLOCKS_REQUEST__INIT;
    m.count = 1001;
    x = call("MineBlocks", &m.base, &paywire__simulators__v1__mine_blocks_response__descriptor);
    assert_true(violates(&x, "count"));
    x = reorg("0x12");
    assert_true(violates(&x, "transaction_hash"));
    x = get_address(addr, "att_bad");
    assert_true(violates(&x, "address"));
    /* Nothing was half-written: the address still has no transfer. */
    answer g = get_address(addr, "");
    assert_int_equal(got(&g)->n_transfers, 0);
    answer_free(&g);
    answer_free(&a);
}

/* The treasury (treasury_float 5 USDC and 5 USDT here) pays once per key and never more than
 * it holds; a reorg that drops a withdrawal gives its amount back. */
static void test_chain_sim_treasury_withdrawals(void **state)
{
    (void)state;
    const char *merchant = "0x1111111111111111111111111111111111111111";
    answer w = withdraw("pyo_t1", merchant, "USDC", 3000000);
    Transfer *t = withdrawn(&w)->transfer;
    assert_int_equal(withdrawn(&w)->treasury_balance_minor, 2000000);
    assert_string_not_equal(t->from_address->address, payer);
    assert_string_equal(t->to_address->address, merchant);
    assert_int_equal(t->state, INCLUDED);
    assert_int_equal(t->confirmations, 1);
    /* The retry is the same transfer and spends nothing more. */
    answer again = withdraw("pyo_t1", merchant, "USDC", 3000000);
    assert_string_equal(withdrawn(&again)->transfer->transaction_hash, t->transaction_hash);
    assert_int_equal(withdrawn(&again)->transfer->requests, 2);
    assert_int_equal(withdrawn(&again)->treasury_balance_minor, 2000000);
    answer x = withdraw("pyo_t1", merchant, "USDC", 2000000);
    assert_true(key_reused(&x, "amount_minor"));
    /* More than it holds: refused, nothing sent. */
    answer poor = withdraw("pyo_t2", merchant, "USDC", 2000001);
    assert_int_equal(poor.code, PW_FAILED_PRECONDITION);
    assert_non_null(poor.details.reason);
    assert_string_equal(poor.details.reason, "INSUFFICIENT_FUNDS");
    answer none = get_transfer("pyo_t2");
    assert_int_equal(none.code, PW_NOT_FOUND);
    /* Each token has its own balance. */
    answer usdt = withdraw("pyo_t3", merchant, "USDT", 5000000);
    assert_int_equal(withdrawn(&usdt)->treasury_balance_minor, 0);
    /* Read by its key, confirmations from the height. */
    mine_blocks(4);
    answer g = get_transfer("pyo_t1");
    assert_int_equal(g.code, PW_OK);
    Paywire__Simulators__V1__GetTransferResponse *gt =
        (Paywire__Simulators__V1__GetTransferResponse *)g.msg;
    assert_int_equal(gt->transfer->confirmations, 6);
    assert_int_equal(gt->transfer->requests, 2);
    /* A reorg drops it (and the USDT one after it): the treasury holds 5 USDC again. */
    answer r = reorg(t->transaction_hash);
    assert_int_equal(r.code, PW_OK);
    answer full = withdraw("pyo_t4", merchant, "USDC", 5000000);
    assert_int_equal(withdrawn(&full)->treasury_balance_minor, 0);
    answer self = withdraw("pyo_t5", withdrawn(&full)->transfer->from_address->address, "USDC", 1);
    assert_int_equal(self.code, PW_INVALID_ARGUMENT);
    answer *all[] = {&w, &again, &poor, &none, &usdt, &g, &r, &full, &self};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        answer_free(all[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_sim_address_once_per_key),
        cmocka_unit_test(test_chain_sim_transfer_confirmations),
        cmocka_unit_test(test_chain_sim_reorg_drops_later_blocks),
        cmocka_unit_test(test_chain_sim_reorg_keeps_earlier_blocks),
        cmocka_unit_test(test_chain_sim_key_reused_with_other_values),
        cmocka_unit_test(test_chain_sim_rejects_bad_input),
        cmocka_unit_test(test_chain_sim_treasury_withdrawals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
