/*
 * pwsanctions: sanctions lists for the compliance service.
 *   pwsanctions check [--dir DIR]
 *       reads the OFAC SDN files and prints what they hold; malformed rows
 *       on stderr as FILE:LINE: why
 *   pwsanctions load  [--dir DIR] [--list ofac-sdn] [--version 2021-07]
 *                     --addr HOST:PORT [--cacert FILE --cert FILE --key FILE]
 *       reads them and uploads them with UploadSanctionsList (once per
 *       version: loading a version again changes nothing)
 * DIR defaults to $PWSANCTIONS_DIR, else ../shared/data/ofac-sdn beside this
 * source tree. Exit 0 on success, 1 on failure (the reason on stderr), 2 on
 * bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "ofac.h"

static const char *flag(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return def;
}

static void report(const char *file, int line, const char *why, void *ud)
{
    (void)ud;
    fprintf(stderr, "pwsanctions: %s:%d: %s (row skipped)\n", file, line, why);
}

static int usage(void)
{
    fprintf(stderr, "usage: pwsanctions check [--dir DIR]\n"
                    "       pwsanctions load [--dir DIR] [--list ofac-sdn] [--version 2021-07]\n"
                    "                        --addr HOST:PORT [--cacert F --cert F --key F]\n");
    return 2;
}

static void closed(pw_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "load") != 0)) {
        return usage();
    }
    const char *env = getenv("PWSANCTIONS_DIR");
    const char *dir =
        flag(argc, argv, "--dir", env && env[0] ? env : PW_SOURCE_DIR "/" OFAC_DEFAULT_DIR);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "pwsanctions: %s is missing: it holds the OFAC SDN files (sdn.csv, alt.csv, "
                "add.csv, sdn_comments.csv; its README says where Treasury publishes them). "
                "Nothing was loaded.\n",
                dir);
        return 1;
    }
    ofac_list *l = NULL;
    char err[1100];
    pw_status rv = ofac_list_read(&l, dir, report, NULL, err, sizeof(err));
    if (rv != PW_OK) {
        fprintf(stderr, "pwsanctions: %s (%s)\n", rv == PW_NOT_FOUND ? err : "out of memory",
                pw_status_str(rv));
        return 1;
    }
    const ofac_stats *s = ofac_list_stats(l);
    printf("pwsanctions: %s: %zu entries, %zu aliases, %zu addresses, %zu continued remarks, "
           "%zu dates of birth, %zu digital currency addresses, %zu malformed rows skipped, "
           "%zu country names without an ISO code\n",
           dir, s->entries, s->aliases, s->addresses, s->comments, s->dates_of_birth,
           s->digital_currency_addresses, s->malformed, s->unmapped_countries);
    int code = 0;
    if (strcmp(argv[1], "load") == 0) {
        const char *addr = flag(argc, argv, "--addr", NULL);
        if (addr == NULL) {
            ofac_list_free(l);
            return usage();
        }
        const char *list = flag(argc, argv, "--list", "ofac-sdn");
        const char *version = flag(argc, argv, "--version", "2021-07");
        pw_tls_config tls = {.cert_file = flag(argc, argv, "--cert", NULL),
                             .key_file = flag(argc, argv, "--key", NULL),
                             .ca_file = flag(argc, argv, "--cacert", NULL)};
        pw_channel_options co = {.tls = tls.ca_file ? &tls : NULL, .connect_timeout_ms = 5000};
        uv_loop_t loop;
        uv_loop_init(&loop);
        pw_channel *ch = NULL;
        if (pw_channel_new(&ch, &loop, addr, &co) != PW_OK) {
            fprintf(stderr, "pwsanctions: cannot create a channel to %s\n", addr);
            code = 1;
        } else {
            size_t n;
            Paywire__Compliance__V1__SanctionsEntry *const *e = ofac_list_entries(l, &n);
            int active = 0;
            char msg[512];
            rv = ofac_upload(ch, list, version, e, n, 1000, 0, &active, msg, sizeof(msg));
            if (rv != PW_OK) {
                fprintf(stderr, "pwsanctions: upload of %s %s: %s: %s\n", list, version,
                        pw_status_str(rv), msg);
                code = 1;
            } else {
                printf("pwsanctions: %s %s: %zu entries stored%s\n", list, version, n,
                       active ? ", active" : " (another version is active)");
            }
            pw_channel_close(ch, closed, NULL);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    ofac_list_free(l);
    return code;
}
