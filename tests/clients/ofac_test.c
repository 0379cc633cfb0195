/*
 * The OFAC SDN reader (clients/pwsanctions/ofac.c): the format's quirks on
 * small files written here (CRLF, Ctrl-Z, -0-, quoted commas, remarks
 * continued mid-word, malformed rows reported with file and line), then the
 * real July 2021 files from ../shared/data/ofac-sdn (PWSANCTIONS_DIR).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "pw_test.h"
#include "ofac.h"

#define P(x) Paywire__Compliance__V1__##x

typedef struct reports {
    int n;
    char lines[8][160];
} reports;

static void reported(const char *file, int line, const char *why, void *ud)
{
    reports *r = ud;
    if (r->n < 8) {
        snprintf(r->lines[r->n], sizeof(r->lines[0]), "%s:%d: %s", file, line, why);
    }
    r->n++;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const P(SanctionsEntry) * find(ofac_list *l, const char *id)
{
    size_t n;
    P(SanctionsEntry) *const *e = ofac_list_entries(l, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i]->entry_id, id) == 0) {
            return e[i];
        }
    }
    fail_msg("entry %s not read", id);
    return NULL;
}

static void test_ofac_quirks_and_malformed_rows(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/pw-ofac-test-%ld", (long)getpid());
    mkdir(dir, 0700);
    write_file(dir, "sdn.csv",
               "306,\"BANCO NACIONAL DE CUBA\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"
               "\"a.k.a. 'BNC'.\"\r\n"
               "7,\"NORIEGA, Manuel Antonio\",\"individual\",\"SDGT] [SYRIA\",-0- ,-0- ,-0- ,-0- ,"
               "-0- ,-0- ,-0- ,\"DOB 11 Feb 1934; alt. DOB 1935 to 1936; nationality Panama; "
               "Digital Currency Address - XBT 1AbC; alt. Digital Currency Addres\"\r\n"
               "8,\"BROKEN\",-0- \r\n"
               "9,\"UNTERMINATED,-0- \r\n"
               "x9,\"NOT A NUMBER\",-0- ,\"X\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n"
               "\x1a");
    write_file(dir, "alt.csv",
               "306,220,\"aka\",\"NATIONAL BANK OF CUBA\",-0- \r\n"
               "999,1,\"aka\",\"NOBODY\",-0- \r\n"
               "7,2,\"aka\",\"NORIEGA MORENA, Manuel\",-0- \r\n\x1a");
    write_file(dir, "add.csv",
               "306,199,\"Zweierstrasse 35\",\"Zurich CH-8022\",\"Switzerland\",-0- \r\n"
               "306,200,-0- ,\"Havana\",\"Cuba\",-0- \r\n"
               "7,3,-0- ,-0- ,\"undetermined\",-0- \r\n\x1a");
    write_file(dir, "sdn_comments.csv", "7,\"s - ETH 0xAbCd; DOB Mar 1967.\"\r\n\x1a");
    reports rep = {0};
    ofac_list *l = NULL;
    char err[256];
    assert_int_equal(ofac_list_read(&l, dir, reported, &rep, err, sizeof(err)), PW_OK);
    const ofac_stats *s = ofac_list_stats(l);
    assert_int_equal(s->entries, 2);
    assert_int_equal(s->aliases, 2);
    assert_int_equal(s->addresses, 3);
    assert_int_equal(s->malformed, 4);
    assert_int_equal(rep.n, 4);
    assert_string_equal(rep.lines[0], "sdn.csv:3: 3 fields, 12 expected");
    assert_string_equal(rep.lines[1], "sdn.csv:4: unterminated quoted field");
    assert_string_equal(rep.lines[2], "sdn.csv:5: ent_num is not a positive number");
    assert_string_equal(rep.lines[3], "alt.csv:2: ent_num is not an entry of sdn.csv");

    const P(SanctionsEntry) *bnc = find(l, "306");
    assert_string_equal(bnc->type, "entity");
    assert_int_equal(bnc->n_names, 2);
    assert_string_equal(bnc->names[1], "NATIONAL BANK OF CUBA");
    assert_int_equal(bnc->n_countries, 2);
    assert_string_equal(bnc->countries[0], "CH");
    assert_string_equal(bnc->countries[1], "CU");
    assert_int_equal(bnc->n_programs, 1);

    const P(SanctionsEntry) *n = find(l, "7");
    assert_string_equal(n->type, "individual");
    assert_string_equal(n->names[0], "NORIEGA, Manuel Antonio");
    assert_int_equal(n->n_programs, 2);
    assert_string_equal(n->programs[1], "SYRIA");
    assert_int_equal(n->n_dates_of_birth, 3);
    assert_string_equal(n->dates_of_birth[0], "1934-02-11");
    assert_string_equal(n->dates_of_birth[1], "1935/1936");
    assert_string_equal(n->dates_of_birth[2], "1967-03");
    assert_int_equal(n->n_countries, 1); /* "undetermined" has no code */
    assert_string_equal(n->countries[0], "PA");
    /* The continuation joins mid-word: the second address is whole. */
    assert_int_equal(n->n_digital_currency_addresses, 2);
    assert_string_equal(n->digital_currency_addresses[0]->currency, "XBT");
    assert_string_equal(n->digital_currency_addresses[0]->address, "1AbC");
    assert_string_equal(n->digital_currency_addresses[1]->currency, "ETH");
    assert_string_equal(n->digital_currency_addresses[1]->address, "0xAbCd");
    ofac_list_free(l);

    /* A missing file is named. */
    char path[128];
    snprintf(path, sizeof(path), "%s/alt.csv", dir);
    unlink(path);
    assert_int_equal(ofac_list_read(&l, dir, NULL, NULL, err, sizeof(err)), PW_NOT_FOUND);
    assert_null(l);
    assert_non_null(strstr(err, path));
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_ofac_real_list(void **state)
{
    (void)state;
    const char *env = getenv("PWSANCTIONS_DIR");
    const char *dir = env && env[0] ? env : PW_SOURCE_DIR "/" OFAC_DEFAULT_DIR;
    struct stat st;
    if (stat(dir, &st) != 0) {
        fail_msg("%s is missing: the OFAC SDN files this test reads (set PWSANCTIONS_DIR)", dir);
    }
    ofac_list *l = NULL;
    reports rep = {0};
    char err[256];
    assert_int_equal(ofac_list_read(&l, dir, reported, &rep, err, sizeof(err)), PW_OK);
    const ofac_stats *s = ofac_list_stats(l);
    print_message("ofac: %zu entries, %zu aliases, %zu addresses, %zu digital currency addresses, "
                  "%zu dates of birth, %zu malformed\n",
                  s->entries, s->aliases, s->addresses, s->digital_currency_addresses,
                  s->dates_of_birth, s->malformed);
    /* The README's counts; its 82 digital currency addresses are 97 in the files (96 distinct,
     * 16 of them only in sdn_comments.csv or across its join). */
    assert_int_equal(s->entries, 8976);
    assert_int_equal(s->aliases, 11910);
    assert_int_equal(s->addresses, 13837);
    assert_int_equal(s->digital_currency_addresses, 97);
    assert_int_equal(s->malformed, 0);
    assert_int_equal(rep.n, 0);
    const P(SanctionsEntry) *e = find(l, "306");
    assert_string_equal(e->names[0], "BANCO NACIONAL DE CUBA");
    /* The entry whose ETH address starts in sdn.csv and ends in sdn_comments.csv. */
    e = find(l, "29703");
    int eth = 0;
    for (size_t i = 0; i < e->n_digital_currency_addresses; i++) {
        if (strcmp(e->digital_currency_addresses[i]->address,
                   "0x8576acc5c05d6ce88f4e49bf65bdf0c62f91353c") == 0) {
            eth = strcmp(e->digital_currency_addresses[i]->currency, "ETH") == 0;
        }
    }
    assert_true(eth);
    ofac_list_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ofac_quirks_and_malformed_rows),
        cmocka_unit_test(test_ofac_real_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
