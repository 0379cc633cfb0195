/* services/common: ids, secrets, sealing, validation and configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "pw_test.h"
#include "pwtest/json/v1/all.pb-c.h"
#include "svc.h"

static void test_svc_ids_and_secrets(void **state)
{
    (void)state;
    char a[40], b[40];
    assert_int_equal(svc_new_id("mer", a, sizeof(a)), PW_OK);
    assert_int_equal(svc_new_id("mer", b, sizeof(b)), PW_OK);
    assert_int_equal(strlen(a), 30);
    assert_true(svc_id_ok(a, "mer"));
    assert_string_not_equal(a, b);
    assert_false(svc_id_ok(a, "key"));
    assert_false(svc_id_ok("mer_0000000000000000000000000I", "mer")); /* I is not Crockford */
    assert_false(svc_id_ok("mer_123", "mer"));
    assert_int_equal(svc_new_id("mer", a, 10), PW_INTERNAL); /* too small a buffer */
    char s1[64], s2[64];
    assert_int_equal(svc_new_secret("sk_live_", s1, sizeof(s1)), PW_OK);
    assert_int_equal(svc_new_secret("sk_live_", s2, sizeof(s2)), PW_OK);
    assert_int_equal(strlen(s1), 8 + 43);
    assert_string_not_equal(s1, s2);
    for (const char *p = s1 + 8; *p; p++) {
        assert_non_null(
            strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", *p));
    }
    uint8_t h[32];
    svc_sha256("abc", 3, h);
    /* SHA-256("abc") begins ba7816bf. */
    assert_int_equal(h[0], 0xba);
    assert_int_equal(h[3], 0xbf);
}

static void test_svc_sealing(void **state)
{
    (void)state;
    svc_sealer s;
    assert_int_equal(svc_sealer_init(&s, "not hex"), PW_INVALID_ARGUMENT);
    assert_int_equal(
        svc_sealer_init(&s, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        PW_OK);
    char sealed[256], sealed2[256], plain[128];
    assert_int_equal(svc_seal(&s, "DE89370400440532013000", sealed, sizeof(sealed)), PW_OK);
    assert_int_equal(svc_seal(&s, "DE89370400440532013000", sealed2, sizeof(sealed2)), PW_OK);
    assert_string_not_equal(sealed, sealed2); /* a fresh nonce each time */
    assert_null(strstr(sealed, "DE89"));
    assert_int_equal(svc_open(&s, sealed, plain, sizeof(plain)), PW_OK);
    assert_string_equal(plain, "DE89370400440532013000");
    /* Tampering is detected, and so is another key. */
    sealed[20] = sealed[20] == 'A' ? 'B' : 'A';
    assert_int_equal(svc_open(&s, sealed, plain, sizeof(plain)), PW_DATA_LOSS);
    svc_sealer other;
    svc_sealer_init(&other, "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_int_equal(svc_open(&other, sealed2, plain, sizeof(plain)), PW_DATA_LOSS);
}

static void test_svc_codes_text_urls(void **state)
{
    (void)state;
    assert_true(svc_country_ok("DE"));
    assert_true(svc_country_ok("SG"));
    assert_false(svc_country_ok("XX"));
    assert_false(svc_country_ok("de"));
    assert_false(svc_country_ok("DEU"));
    assert_true(svc_currency_ok("JPY"));
    assert_true(svc_currency_ok("BHD"));
    assert_true(svc_currency_ok("USDC"));
    assert_false(svc_currency_ok("XYZ"));
    assert_false(svc_currency_ok("US"));
    assert_false(svc_currency_ok("USDCX"));
    assert_true(svc_text_ok("Café", 10));
    assert_false(svc_text_ok("", 10));
    assert_false(svc_text_ok("a\nb", 10));
    assert_false(svc_text_ok("0123456789a", 10));
    assert_true(svc_email_ok("ops@shop.example"));
    assert_false(svc_email_ok("ops@shop"));
    assert_false(svc_email_ok("@shop.example"));
    assert_false(svc_email_ok("a@b@c.example"));
    assert_true(svc_https_url_ok("https://shop.example/hooks?x=1", 1));
    assert_true(svc_https_url_ok("https://shop.example:8443/h", 1));
    assert_false(svc_https_url_ok("http://shop.example/", 1));
    assert_false(svc_https_url_ok("https://user@shop.example/", 1));
    assert_false(svc_https_url_ok("https://10.1.2.3/h", 1));
    assert_false(svc_https_url_ok("https://127.0.0.1/h", 1));
    assert_false(svc_https_url_ok("https://169.254.169.254/latest", 1));
    assert_false(svc_https_url_ok("https://[::1]/h", 1));
    assert_false(svc_https_url_ok("https://localhost/h", 1));
    assert_true(svc_https_url_ok("https://localhost/h", 0));
    assert_true(svc_https_url_ok("https://8.8.8.8/h", 1));
}

static void test_svc_iban_and_wallets(void **state)
{
    (void)state;
    assert_true(svc_iban_ok("DE89 3704 0044 0532 0130 00"));
    assert_true(svc_iban_ok("GB82WEST12345698765432"));
    assert_true(svc_iban_ok("gb82west12345698765432"));
    assert_false(svc_iban_ok("DE88 3704 0044 0532 0130 00")); /* check digits */
    assert_false(svc_iban_ok("DE89 3704 0044 0532 0130 0"));  /* length for DE */
    assert_false(svc_iban_ok("XX89370400440532013000"));
    /* EIP-55: the specification's example; one letter's case changed; all lower case. */
    assert_true(svc_wallet_ok(1, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"));
    assert_true(svc_wallet_ok(3, "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"));
    assert_false(svc_wallet_ok(1, "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"));
    assert_true(svc_wallet_ok(2, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"));
    assert_false(svc_wallet_ok(1, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae"));
    assert_false(svc_wallet_ok(1, "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed00"));
    /* Solana: a 32-byte public key (the System Program id, all zero bytes). */
    assert_true(svc_wallet_ok(4, "11111111111111111111111111111111"));
    assert_true(svc_wallet_ok(4, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"));
    assert_false(svc_wallet_ok(4, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGG")); /* too short */
    assert_false(svc_wallet_ok(4, "0OIl"));
    /* Tron: base58check with version 0x41 (the USDT contract address). */
    assert_true(svc_wallet_ok(5, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"));
    assert_false(svc_wallet_ok(5, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u"));
    assert_false(svc_wallet_ok(0, "anything"));
}

static const svc_setting test_settings[] = {
    {"listen", SVC_SETTING_TEXT, "127.0.0.1:0", 0, 0, 0},
    {"database_url", SVC_SETTING_TEXT, NULL, 0, 0, 1},
    {"workers", SVC_SETTING_INT, "2", 1, 8, 0},
    {"missing", SVC_SETTING_TEXT, "dflt", 0, 0, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Loads path against test_settings and expects a refusal whose message contains want. */
static void expect_refused(const char *path, const char *want)
{
    svc_config *c = (svc_config *)1;
    char err[256] = "";
    assert_int_equal(
        svc_config_load(&c, test_settings, NULL, path, "PW_TESTSVC_", err, sizeof(err)),
        PW_INVALID_ARGUMENT);
    assert_null(c);
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    }
}

static void test_svc_config(void **state)
{
    (void)state;
    char path[] = "/tmp/pw-svc-config-XXXXXX";
    close(mkstemp(path));
    write_file(path, "# comment\nlisten = 127.0.0.1:1\n  database_url=postgresql://x  \n\n");
    svc_config *c;
    char err[256];
    setenv("PW_TESTSVC_WORKERS", "3", 1);
    assert_int_equal(
        svc_config_load(&c, test_settings, NULL, path, "PW_TESTSVC_", err, sizeof(err)), PW_OK);
    assert_string_equal(svc_config_text(c, "listen"), "127.0.0.1:1");
    assert_string_equal(svc_config_text(c, "database_url"), "postgresql://x");
    assert_string_equal(svc_config_text(c, "missing"), "dflt");
    assert_int_equal(svc_config_int(c, "workers"), 3); /* the environment wins over defaults */
    svc_config_free(c);
    setenv("PW_TESTSVC_WORKERS", "9", 1);
    expect_refused(path, "workers (PW_TESTSVC_WORKERS): 9 is out of range 1..8");
    setenv("PW_TESTSVC_WORKERS", "two", 1);
    expect_refused(path, "workers (PW_TESTSVC_WORKERS): \"two\" is not a whole number");
    unsetenv("PW_TESTSVC_WORKERS");
    setenv("PW_TESTSVC_LISTN", "x", 1);
    expect_refused(path, "PW_TESTSVC_LISTN: unknown setting \"listn\"");
    unsetenv("PW_TESTSVC_LISTN");
    write_file(path, "database_url = x\nlisen = 127.0.0.1:1\n");
    expect_refused(path, ":2: unknown setting \"lisen\"");
    write_file(path, "listen = 127.0.0.1:1\n");
    expect_refused(path, "database_url is required");
    write_file(path, "no equals sign here\n");
    expect_refused(path, ":1: expected key = value");
    unlink(path);
    expect_refused(path, "cannot read config file");
}

/* Maps in either order, at the top and nested in a map value, give one fingerprint. */
static void test_svc_fingerprint_sorts_maps(void **state)
{
    (void)state;
    Pwtest__Json__V1__All__ByNameEntry a = PWTEST__JSON__V1__ALL__BY_NAME_ENTRY__INIT;
    Pwtest__Json__V1__All__ByNameEntry b = PWTEST__JSON__V1__ALL__BY_NAME_ENTRY__INIT;
    a.key = "alpha";
    a.value = 1;
    b.key = "beta";
    b.value = 2;
    Pwtest__Json__V1__All__ByNameEntry *ab[] = {&a, &b}, *ba[] = {&b, &a};
    Pwtest__Json__V1__All m = PWTEST__JSON__V1__ALL__INIT;
    m.text = "key-1";
    m.n_by_name = 2;
    uint8_t f1[32], f2[32], f3[32], f4[32];
    m.by_name = ab;
    assert_int_equal(svc_fingerprint(&m.base, NULL, f1), PW_OK);
    m.by_name = ba;
    assert_int_equal(svc_fingerprint(&m.base, NULL, f2), PW_OK);
    assert_memory_equal(f1, f2, 32);
    b.value = 3; /* other content: another fingerprint */
    assert_int_equal(svc_fingerprint(&m.base, NULL, f3), PW_OK);
    assert_memory_not_equal(f1, f3, 32);
    b.value = 2;
    /* The skipped field does not count; without skipping it, it does. */
    m.text = "key-2";
    assert_int_equal(svc_fingerprint(&m.base, "text", f3), PW_OK);
    m.text = "key-1";
    assert_int_equal(svc_fingerprint(&m.base, "text", f4), PW_OK);
    assert_memory_equal(f3, f4, 32);
    assert_memory_not_equal(f1, f4, 32);
    /* The caller's message is left as it was (ba order). */
    assert_ptr_equal(m.by_name[0], &b);
    /* A field this build does not know (99, from a newer client) does not count. */
    Pwtest__Json__V1__Inner in = PWTEST__JSON__V1__INNER__INIT;
    in.name = "n";
    uint8_t wire[64];
    size_t len = protobuf_c_message_pack(&in.base, wire);
    wire[len++] = 0x98; /* field 99, varint */
    wire[len++] = 0x06;
    wire[len++] = 0x01;
    ProtobufCMessage *newer = protobuf_c_message_unpack(&pwtest__json__v1__inner__descriptor,
                                                        pw_protobuf_allocator(), len, wire);
    assert_non_null(newer);
    assert_int_equal(newer->n_unknown_fields, 1);
    assert_int_equal(svc_fingerprint(&in.base, NULL, f1), PW_OK);
    assert_int_equal(svc_fingerprint(newer, NULL, f2), PW_OK);
    assert_memory_equal(f1, f2, 32);
    pw_protobuf_free(newer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svc_ids_and_secrets),
        cmocka_unit_test(test_svc_sealing),
        cmocka_unit_test(test_svc_codes_text_urls),
        cmocka_unit_test(test_svc_iban_and_wallets),
        cmocka_unit_test(test_svc_config),
        cmocka_unit_test(test_svc_fingerprint_sorts_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
