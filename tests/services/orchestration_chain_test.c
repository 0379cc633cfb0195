/*
 * On-chain payments end to end (design: "On-chain payments"): a real
 * orchestration-server, a real chain-sim (the chain and the custody
 * partner) and a real compliance-server holding the OFAC SDN list's
 * digital-currency entries (read from the shared copy of the list), each on
 * its own fresh database, one CA for all, called through the generated
 * messages over mTLS. The test plays the payer and the chain: it sends
 * transfers, mines blocks and reorganises them through chain-sim, and
 * watches the payment move as orchestration's watcher sees the chain.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "ofac.h"
#include "paywire/orchestration/v1/payments.pw.h"
#include "paywire/simulators/v1/chain.pw.h"

typedef Paywire__Orchestration__V1__Payment Payment;

#define ETH           PAYWIRE__COMMON__V1__CHAIN__CHAIN_ETHEREUM
#define USDC(n)       ((int64_t)(n)*1000000)
#define STATE(s)      PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_##s
#define DEPOSIT(s)    PAYWIRE__ORCHESTRATION__V1__DEPOSIT_STATE__DEPOSIT_STATE_##s
#define CONFIRMATIONS 3

static char orch_db[512], chain_db[512], compliance_db[512];
static svc_process comp = {.name = "compliance",
                           .binary = PW_COMPLIANCE_SERVER,
                           .health_service = "paywire.compliance.v1.ScreeningService"};
static svc_process chain = {.name = "chain",
                            .binary = PW_CHAIN_SIM,
                            .health_service = "paywire.simulators.v1.ChainService"};
static svc_process orch = {.name = "orchestration",
                           .binary = PW_ORCHESTRATION_SERVER,
                           .health_service = "paywire.orchestration.v1.PaymentService"};
static uv_loop_t loop;
static pw_channel *ch, *chain_ch;
static const char *merchant = "mer_0000000000000000000000000M";
/* A payer no list names, and one the OFAC SDN list does (found in setup). */
static const char clean_wallet[] = "0x52908400098527886e0f7030069857d2e4169ee7";
static char listed_wallet[64];
static char chain_conf[512];
static int seq;

/* The SDN entries with a digital-currency address, uploaded; the first ETH one is the listed
 * payer (lower case: chain-sim stores addresses so, compliance normalises either). */
static void upload_ofac_wallets(void)
{
    ofac_list *l = NULL;
    char err[512];
    if (ofac_list_read(&l, PW_SOURCE_DIR "/" OFAC_DEFAULT_DIR, NULL, NULL, err, sizeof(err)) !=
        PW_OK) {
        fail_msg("the OFAC SDN list: %s", err);
    }
    size_t n = 0, kept = 0;
    Paywire__Compliance__V1__SanctionsEntry *const *all = ofac_list_entries(l, &n);
    Paywire__Compliance__V1__SanctionsEntry **with = calloc(n, sizeof(*with));
    for (size_t i = 0; i < n; i++) {
        if (all[i]->n_digital_currency_addresses == 0) {
            continue;
        }
        with[kept++] = all[i];
        for (size_t k = 0; k < all[i]->n_digital_currency_addresses && !listed_wallet[0]; k++) {
            const Paywire__Compliance__V1__DigitalCurrencyAddress *a =
                all[i]->digital_currency_addresses[k];
            if (strcmp(a->currency, "ETH") == 0 && strlen(a->address) == 42) {
                for (size_t c = 0; c <= 42; c++) {
                    listed_wallet[c] = (char)tolower((unsigned char)a->address[c]);
                }
            }
        }
    }
    assert_true(listed_wallet[0] != '\0');
    pw_channel *cc = svc_process_channel(&comp, &loop);
    int active = 0;
    assert_int_equal(
        ofac_upload(cc, "ofac-sdn", "wallets", with, kept, 500, 0, &active, err, sizeof(err)),
        PW_OK);
    assert_true(active);
    pw_channel_close(cc, NULL, NULL);
    print_message("OFAC SDN: %zu entries with digital-currency addresses uploaded; payer %s\n",
                  kept, listed_wallet);
    free(with);
    ofac_list_free(l);
}

static int group_setup(void **state)
{
    (void)state;
    pw_test_db_create("orch_chain", orch_db, sizeof(orch_db));
    pw_test_db_create("orch_chain_sim", chain_db, sizeof(chain_db));
    pw_test_db_create("orch_chain_comp", compliance_db, sizeof(compliance_db));
    svc_process_migrate(compliance_db, PW_SOURCE_DIR "/services/compliance/migrations",
                        "paywire.migrate.compliance");
    svc_process_migrate(orch_db, PW_SOURCE_DIR "/services/orchestration/migrations",
                        "paywire.migrate.orchestration");
    svc_process_migrate(chain_db,
                        PW_SOURCE_DIR "/services/orchestration/simulators/chain-sim/migrations",
                        "paywire.migrate.chain_sim");
    uv_loop_init(&loop);
    svc_process_prepare(&chain);
    svc_process_prepare(&orch);
    svc_process_prepare(&comp);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "bash %s/scripts/certs %s chain >/dev/null", PW_SOURCE_DIR,
             chain.dir);
    assert_int_equal(system(cmd), 0);
    const svc_process *others[] = {&orch, &comp};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof(cmd), "cp %s/*.crt %s/*.key %s/", chain.dir, chain.dir,
                 others[i]->dir);
        assert_int_equal(system(cmd), 0);
    }
    const char *internal =
        "internal_identities = spiffe://paywire/tests,spiffe://paywire/orchestration\n";
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "log_level = warning\nworkers = 1\nencryption_key = "
             "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n%s",
             internal);
    svc_process_start_serving(&comp, &loop, compliance_db, conf);
    upload_ofac_wallets();
    snprintf(chain_conf, sizeof(chain_conf), "log_level = warning\nworkers = 1\n%s", internal);
    svc_process_start_serving(&chain, &loop, chain_db, chain_conf);
    snprintf(conf, sizeof(conf),
             "log_level = warning\nworkers = 2\nchain_target = localhost:%d\n"
             "compliance_target = localhost:%d\nchain_confirmations = %d\n"
             "chain_poll_interval_ms = 50\nconnector_timeout_ms = 2000\n",
             chain.port, comp.port, CONFIRMATIONS);
    svc_process_start(&orch, orch_db, conf);
    ch = svc_process_channel(&orch, &loop);
    svc_process_wait_serving(&orch, ch);
    chain_ch = svc_process_channel(&chain, &loop);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(ch, NULL, NULL);
    pw_channel_close(chain_ch, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&orch);
    svc_process_stop(&chain);
    svc_process_stop(&comp);
    svc_process_cleanup(&orch);
    svc_process_cleanup(&chain);
    svc_process_cleanup(&comp);
    return 0;
}

/* ---- calls ---- */

typedef struct answer {
    pw_status code;
    ProtobufCMessage *msg;
    pw_error_details details;
} answer;

static answer call(pw_channel *c, const char *path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *type)
{
    pw_call_options o = {.timeout_ms = 10000};
    answer a = {0};
    pw_metadata trailers = {0};
    char *msg = NULL;
    a.code = pw_client_unary_blocking(c, path, &o, req, type, &a.msg, &msg, &trailers);
    if (a.code != PW_OK && a.code != PW_INVALID_ARGUMENT) {
        print_message("%s: %s %s\n", path, pw_status_str(a.code), msg ? msg : "");
    }
    pw_free(msg);
    pw_error_details_read(&trailers, &a.details);
    pw_metadata_clear(&trailers);
    return a;
}

static void answer_free(answer *a)
{
    pw_protobuf_free(a->msg);
    pw_error_details_clear(&a->details);
    a->msg = NULL;
}

static answer create(int64_t amount, const char *token, const char *currency, int chain_id)
{
    char key[32];
    snprintf(key, sizeof(key), "chain-%d", ++seq);
    Paywire__Common__V1__Money m = PAYWIRE__COMMON__V1__MONEY__INIT;
    m.amount_minor = amount;
    m.currency = (char *)currency;
    Paywire__Orchestration__V1__OnChainMethod oc =
        PAYWIRE__ORCHESTRATION__V1__ON_CHAIN_METHOD__INIT;
    oc.chain = (Paywire__Common__V1__Chain)chain_id;
    oc.token = (char *)token;
    Paywire__Orchestration__V1__PaymentMethod pm = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__INIT;
    pm.method_case = PAYWIRE__ORCHESTRATION__V1__PAYMENT_METHOD__METHOD_ON_CHAIN;
    pm.on_chain = &oc;
    Paywire__Orchestration__V1__CreatePaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__CREATE_PAYMENT_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = (char *)merchant;
    req.amount = &m;
    req.method = &pm;
    req.confirm = 1;
    return call(ch, "/paywire.orchestration.v1.PaymentService/CreatePayment", &req.base,
                &paywire__orchestration__v1__create_payment_response__descriptor);
}

static Payment *payment_of(answer *a)
{
    assert_int_equal(a->code, PW_OK);
    return ((Paywire__Orchestration__V1__CreatePaymentResponse *)a->msg)->payment;
}

static answer get(const char *id)
{
    Paywire__Orchestration__V1__GetPaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__GET_PAYMENT_REQUEST__INIT;
    req.payment_id = (char *)id;
    return call(ch, "/paywire.orchestration.v1.PaymentService/GetPayment", &req.base,
                &paywire__orchestration__v1__get_payment_response__descriptor);
}

/* Polls until the payment is in state (ms at most); the answer holds it (answer_free). */
static answer wait_state_for(const char *id, Paywire__Orchestration__V1__PaymentState state, int ms)
{
    for (int i = 0; i < ms / 50; i++) {
        answer a = get(id);
        if (payment_of(&a)->state == state) {
            return a;
        }
        answer_free(&a);
        uv_sleep(50);
    }
    answer a = get(id);
    print_message("payment %s is in state %d, not %d\n", id, payment_of(&a)->state, state);
    assert_int_equal(payment_of(&a)->state, state);
    return a;
}

static answer wait_state(const char *id, Paywire__Orchestration__V1__PaymentState state)
{
    return wait_state_for(id, state, 10000);
}

/* A new on-chain USDC payment in REQUIRES_ACTION: its deposit address into address. */
static answer pay_usdc(int64_t amount, char *address, size_t cap)
{
    answer a = create(amount, "USDC", "USDC", ETH);
    Payment *p = payment_of(&a);
    assert_int_equal(p->state, STATE(REQUIRES_ACTION));
    assert_non_null(p->next_action);
    assert_int_equal(p->next_action->action_case,
                     PAYWIRE__ORCHESTRATION__V1__NEXT_ACTION__ACTION_DEPOSIT);
    const Paywire__Orchestration__V1__DepositAction *d = p->next_action->deposit;
    assert_string_equal(d->token, "USDC");
    assert_int_equal(d->amount->amount_minor, amount);
    assert_non_null(d->expire_time);
    assert_string_equal(d->address->address, p->method->on_chain->deposit_address);
    assert_int_equal(p->method->on_chain->required_confirmations, CONFIRMATIONS);
    snprintf(address, cap, "%s", d->address->address);
    return a;
}

static void send_usdc(const char *from, const char *to, int64_t amount, char *hash, size_t cap)
{
    char key[32];
    snprintf(key, sizeof(key), "tx-%d", ++seq);
    Paywire__Common__V1__ChainAddress f = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    Paywire__Common__V1__ChainAddress t = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    f.chain = t.chain = ETH;
    f.address = (char *)from;
    t.address = (char *)to;
    Paywire__Simulators__V1__SendTransferRequest req =
        PAYWIRE__SIMULATORS__V1__SEND_TRANSFER_REQUEST__INIT;
    req.idempotency_key = key;
    req.from_address = &f;
    req.to_address = &t;
    req.token = "USDC";
    req.amount_minor = amount;
    answer a = call(chain_ch, "/paywire.simulators.v1.ChainService/SendTransfer", &req.base,
                    &paywire__simulators__v1__send_transfer_response__descriptor);
    assert_int_equal(a.code, PW_OK);
    if (hash != NULL) {
        snprintf(
            hash, cap, "%s",
            ((Paywire__Simulators__V1__SendTransferResponse *)a.msg)->transfer->transaction_hash);
    }
    answer_free(&a);
}

static void mine(int count)
{
    Paywire__Simulators__V1__MineBlocksRequest req =
        PAYWIRE__SIMULATORS__V1__MINE_BLOCKS_REQUEST__INIT;
    req.count = count;
    answer a = call(chain_ch, "/paywire.simulators.v1.ChainService/MineBlocks", &req.base,
                    &paywire__simulators__v1__mine_blocks_response__descriptor);
    assert_int_equal(a.code, PW_OK);
    answer_free(&a);
}

/* chain-sim's record of the address allocated for key (requests: how often it was asked). */
static int address_requests(const char *key, char *address, size_t cap)
{
    Paywire__Simulators__V1__GetDepositAddressRequest req =
        PAYWIRE__SIMULATORS__V1__GET_DEPOSIT_ADDRESS_REQUEST__INIT;
    req.idempotency_key = (char *)key;
    answer a = call(chain_ch, "/paywire.simulators.v1.ChainService/GetDepositAddress", &req.base,
                    &paywire__simulators__v1__get_deposit_address_response__descriptor);
    assert_int_equal(a.code, PW_OK);
    const Paywire__Simulators__V1__DepositAddress *d =
        ((Paywire__Simulators__V1__GetDepositAddressResponse *)a.msg)->deposit_address;
    snprintf(address, cap, "%s", d->address->address);
    int n = d->requests;
    answer_free(&a);
    return n;
}

/* ---- tests ---- */

static void test_orchestration_chain_happy_path(void **state)
{
    (void)state;
    char address[64], hash[80], sim_address[64];
    answer created = pay_usdc(USDC(25), address, sizeof(address));
    Payment *p = payment_of(&created);
    /* One deposit attempt, its id chain-sim's key for the address, asked for once. */
    assert_int_equal(p->n_attempts, 1);
    assert_string_equal(p->attempts[0]->connector, "chain_sim");
    assert_string_equal(p->attempts[0]->outcome, "PENDING");
    assert_string_equal(p->attempts[0]->partner_reference, address);
    assert_int_equal(address_requests(p->attempts[0]->id, sim_address, sizeof(sim_address)), 1);
    assert_string_equal(sim_address, address);
    char id[40];
    snprintf(id, sizeof(id), "%s", p->id);
    send_usdc(clean_wallet, address, USDC(25), hash, sizeof(hash));
    /* Seen with 1 of 3 confirmations: PROCESSING, nothing captured. */
    answer seen = wait_state(id, STATE(PROCESSING));
    p = payment_of(&seen);
    assert_int_equal(p->n_deposits, 1);
    assert_int_equal(p->deposits[0]->state, DEPOSIT(SEEN));
    assert_string_equal(p->deposits[0]->transaction_hash, hash);
    assert_string_equal(p->deposits[0]->from_address->address, clean_wallet);
    assert_int_equal(p->amount_captured->amount_minor, 0);
    assert_null(p->next_action);
    mine(CONFIRMATIONS - 1);
    answer done = wait_state(id, STATE(SUCCEEDED));
    p = payment_of(&done);
    assert_int_equal(p->amount_captured->amount_minor, USDC(25));
    assert_string_equal(p->amount_captured->currency, "USDC");
    assert_int_equal(p->deposits[0]->state, DEPOSIT(FINAL));
    assert_true(p->deposits[0]->confirmations >= CONFIRMATIONS);
    assert_int_equal(p->n_operations, 1);
    assert_string_equal(p->operations[0]->outcome, "SUCCEEDED");
    assert_string_equal(p->operations[0]->partner_reference, hash);
    assert_string_equal(p->attempts[0]->outcome, "SUCCEEDED");
    assert_int_equal(p->attempts[0]->amount_received->amount_minor, USDC(25));
    assert_int_equal(p->amount_unapplied->amount_minor, 0);
    answer_free(&created);
    answer_free(&seen);
    answer_free(&done);
}

static void test_orchestration_chain_underpaid_then_overpaid(void **state)
{
    (void)state;
    char address[64], id[40];
    answer created = pay_usdc(USDC(25), address, sizeof(address));
    snprintf(id, sizeof(id), "%s", payment_of(&created)->id);
    send_usdc(clean_wallet, address, USDC(10), NULL, 0);
    mine(CONFIRMATIONS);
    /* Underpaid: still REQUIRES_ACTION, asking for what is missing; the attempt says so. */
    answer under;
    for (int i = 0;; i++) {
        under = get(id);
        Payment *p = payment_of(&under);
        if (p->n_deposits == 1 && p->deposits[0]->state == DEPOSIT(FINAL) &&
            p->attempts[0]->amount_received->amount_minor == USDC(10)) {
            break;
        }
        assert_true(i < 200);
        answer_free(&under);
        uv_sleep(50);
    }
    Payment *p = payment_of(&under);
    assert_int_equal(p->state, STATE(REQUIRES_ACTION));
    assert_int_equal(p->next_action->deposit->amount->amount_minor, USDC(15));
    assert_int_equal(p->amount_captured->amount_minor, 0);
    /* The top-up overshoots: captured at the amount, the rest received and unapplied. */
    send_usdc(clean_wallet, address, USDC(20), NULL, 0);
    mine(CONFIRMATIONS);
    answer done = wait_state(id, STATE(SUCCEEDED));
    p = payment_of(&done);
    assert_int_equal(p->amount_captured->amount_minor, USDC(25));
    assert_int_equal(p->attempts[0]->amount_received->amount_minor, USDC(30));
    assert_int_equal(p->amount_unapplied->amount_minor, USDC(5));
    assert_int_equal(p->n_deposits, 2);
    answer_free(&created);
    answer_free(&under);
    answer_free(&done);
}

static void test_orchestration_chain_reorg_back_to_requires_action(void **state)
{
    (void)state;
    char address[64], id[40], hash[80];
    answer created = pay_usdc(USDC(7), address, sizeof(address));
    snprintf(id, sizeof(id), "%s", payment_of(&created)->id);
    send_usdc(clean_wallet, address, USDC(7), hash, sizeof(hash));
    answer seen = wait_state(id, STATE(PROCESSING));
    /* The deposit's block is reorganised away before it is final. */
    Paywire__Simulators__V1__ReorgRequest req = PAYWIRE__SIMULATORS__V1__REORG_REQUEST__INIT;
    req.transaction_hash = hash;
    answer r = call(chain_ch, "/paywire.simulators.v1.ChainService/Reorg", &req.base,
                    &paywire__simulators__v1__reorg_response__descriptor);
    assert_int_equal(r.code, PW_OK);
    answer back = wait_state(id, STATE(REQUIRES_ACTION));
    Payment *p = payment_of(&back);
    assert_int_equal(p->deposits[0]->state, DEPOSIT(REORGED));
    assert_int_equal(p->next_action->deposit->amount->amount_minor, USDC(7));
    assert_int_equal(p->attempts[0]->amount_received->amount_minor, 0);
    assert_int_equal(p->amount_captured->amount_minor, 0);
    /* Mining more blocks brings nothing back; the buyer pays again and it completes. */
    mine(CONFIRMATIONS);
    send_usdc(clean_wallet, address, USDC(7), NULL, 0);
    mine(CONFIRMATIONS);
    answer done = wait_state(id, STATE(SUCCEEDED));
    p = payment_of(&done);
    assert_int_equal(p->n_deposits, 2);
    assert_int_equal(p->amount_captured->amount_minor, USDC(7));
    assert_string_not_equal(p->operations[0]->partner_reference, hash);
    answer *all[] = {&created, &seen, &r, &back, &done};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        answer_free(all[i]);
    }
}

static void test_orchestration_chain_ofac_wallet_blocked(void **state)
{
    (void)state;
    char address[64], id[40];
    answer created = pay_usdc(USDC(12), address, sizeof(address));
    snprintf(id, sizeof(id), "%s", payment_of(&created)->id);
    send_usdc(listed_wallet, address, USDC(12), NULL, 0);
    mine(CONFIRMATIONS);
    answer failed = wait_state(id, STATE(FAILED));
    Payment *p = payment_of(&failed);
    assert_string_equal(p->failure_code, "blocked_by_compliance");
    /* The deposit is recorded but never counted: nothing received, captured or unapplied. */
    assert_int_equal(p->n_deposits, 1);
    assert_string_equal(p->deposits[0]->from_address->address, listed_wallet);
    assert_int_equal(p->attempts[0]->amount_received->amount_minor, 0);
    assert_string_equal(p->attempts[0]->outcome, "FAILED");
    assert_int_equal(p->amount_captured->amount_minor, 0);
    assert_int_equal(p->amount_unapplied->amount_minor, 0);
    assert_int_equal(p->n_operations, 0);
    /* It stays failed whatever arrives next, from a clean wallet too. */
    send_usdc(clean_wallet, address, USDC(12), NULL, 0);
    mine(CONFIRMATIONS);
    uv_sleep(300);
    answer later = get(id);
    assert_int_equal(payment_of(&later)->state, STATE(FAILED));
    assert_int_equal(payment_of(&later)->n_operations, 0);
    answer_free(&created);
    answer_free(&failed);
    answer_free(&later);
}

static void test_orchestration_chain_address_after_partner_outage(void **state)
{
    (void)state;
    /* The custody partner is down at confirm: the attempt is committed, the address not. */
    svc_process_stop(&chain);
    answer created = create(USDC(3), "USDC", "USDC", ETH);
    Payment *p = payment_of(&created);
    assert_int_equal(p->state, STATE(REQUIRES_CONFIRMATION));
    assert_null(p->next_action);
    assert_int_equal(p->n_attempts, 1);
    assert_string_equal(p->attempts[0]->outcome, "PENDING");
    assert_string_equal(p->attempts[0]->partner_reference, "");
    char id[40], att[40];
    snprintf(id, sizeof(id), "%s", p->id);
    snprintf(att, sizeof(att), "%s", p->attempts[0]->id);
    /* Back: the watcher asks again under the same key once the attempt's lease ends. */
    svc_process_start_serving(&chain, &loop, chain_db, chain_conf);
    answer waiting = wait_state_for(id, STATE(REQUIRES_ACTION), 30000);
    p = payment_of(&waiting);
    char address[64];
    assert_int_equal(address_requests(att, address, sizeof(address)), 1);
    assert_string_equal(p->next_action->deposit->address->address, address);
    assert_string_equal(p->attempts[0]->partner_reference, address);
    send_usdc(clean_wallet, address, USDC(3), NULL, 0);
    mine(CONFIRMATIONS);
    answer done = wait_state(id, STATE(SUCCEEDED));
    answer_free(&created);
    answer_free(&waiting);
    answer_free(&done);
}

static void test_orchestration_chain_cancel_before_address(void **state)
{
    (void)state;
    /* Cancelled while the address is outstanding: its attempt is closed, never allocated. */
    svc_process_stop(&chain);
    answer created = create(USDC(4), "USDC", "USDC", ETH);
    char id[40], key[48];
    snprintf(id, sizeof(id), "%s", payment_of(&created)->id);
    snprintf(key, sizeof(key), "cancel-%d", ++seq);
    Paywire__Orchestration__V1__CancelPaymentRequest req =
        PAYWIRE__ORCHESTRATION__V1__CANCEL_PAYMENT_REQUEST__INIT;
    req.idempotency_key = key;
    req.payment_id = id;
    answer c = call(ch, "/paywire.orchestration.v1.PaymentService/CancelPayment", &req.base,
                    &paywire__orchestration__v1__cancel_payment_response__descriptor);
    assert_int_equal(payment_of(&c)->state, STATE(CANCELED));
    svc_process_start_serving(&chain, &loop, chain_db, chain_conf);
    answer later;
    for (int i = 0;; i++) {
        later = get(id);
        if (strcmp(payment_of(&later)->attempts[0]->outcome, "FAILED") == 0) {
            break;
        }
        assert_true(i < 400);
        answer_free(&later);
        uv_sleep(50);
    }
    assert_int_equal(payment_of(&later)->state, STATE(CANCELED));
    assert_string_equal(payment_of(&later)->attempts[0]->decline_code, "payment_ended");
    assert_string_equal(payment_of(&later)->attempts[0]->partner_reference, "");
    /* Nothing was allocated at the custody partner for it. */
    Paywire__Simulators__V1__GetDepositAddressRequest q =
        PAYWIRE__SIMULATORS__V1__GET_DEPOSIT_ADDRESS_REQUEST__INIT;
    q.idempotency_key = payment_of(&later)->attempts[0]->id;
    answer none = call(chain_ch, "/paywire.simulators.v1.ChainService/GetDepositAddress", &q.base,
                       &paywire__simulators__v1__get_deposit_address_response__descriptor);
    assert_int_equal(none.code, PW_NOT_FOUND);
    answer_free(&none);
    answer_free(&created);
    answer_free(&c);
    answer_free(&later);
}

/* 1 when the answer is INVALID_ARGUMENT with a violation for field. */
static int violates(answer a, const char *field)
{
    int found = 0;
    for (size_t i = 0; i < a.details.violation_count; i++) {
        found |= strcmp(a.details.violations[i].field, field) == 0;
    }
    int ok = a.code == PW_INVALID_ARGUMENT && found;
    answer_free(&a);
    return ok;
}

static void test_orchestration_chain_rejects_bad_input(void **state)
{
    (void)state;
    assert_true(violates(create(USDC(1), "DOGE", "USDC", ETH), "method.on_chain.token"));
    assert_true(violates(create(USDC(1), "USDC", "USD", ETH), "amount.currency"));
    assert_true(violates(create(USDC(1), "USDC", "USDC", PAYWIRE__COMMON__V1__CHAIN__CHAIN_SOLANA),
                         "method.on_chain.chain"));
    assert_true(violates(create(0, "USDC", "USDC", ETH), "amount.amount_minor"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orchestration_chain_happy_path),
        cmocka_unit_test(test_orchestration_chain_underpaid_then_overpaid),
        cmocka_unit_test(test_orchestration_chain_reorg_back_to_requires_action),
        cmocka_unit_test(test_orchestration_chain_ofac_wallet_blocked),
        cmocka_unit_test(test_orchestration_chain_address_after_partner_outage),
        cmocka_unit_test(test_orchestration_chain_cancel_before_address),
        cmocka_unit_test(test_orchestration_chain_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
