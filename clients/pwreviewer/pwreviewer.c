/*
 * pwreviewer: a stand-in for the company identity provider, for the local
 * stack and manual reviews (docs/design/compliance.md, Four-eyes).
 *   pwreviewer keygen PRIVATE.pem PUBLIC.pem
 *       a new P-256 key pair (compliance's reviewer_token_key is PUBLIC.pem)
 *   pwreviewer token --key PRIVATE.pem --subject NAME [--ttl SECONDS]
 *       prints a reviewer token for NAME (ES256 JWT, audience compliance,
 *       valid for SECONDS, default 300), for pwctl's
 *       -H "paywire-reviewer-token: ..."
 * Exit 0 on success, 1 on failure, 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mint.h"

static const char *flag(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return def;
}

static int usage(void)
{
    fprintf(stderr, "usage: pwreviewer keygen PRIVATE.pem PUBLIC.pem\n"
                    "       pwreviewer token --key PRIVATE.pem --subject NAME [--ttl SECONDS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "keygen") == 0) {
        if (pwreviewer_keygen(argv[2], argv[3]) != PW_OK) {
            fprintf(stderr, "pwreviewer: cannot write %s and %s\n", argv[2], argv[3]);
            return 1;
        }
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "token") != 0) {
        return usage();
    }
    const char *key = flag(argc, argv, "--key", NULL), *sub = flag(argc, argv, "--subject", NULL);
    long ttl = strtol(flag(argc, argv, "--ttl", "300"), NULL, 10);
    if (key == NULL || sub == NULL || sub[0] == '\0' || ttl < 1 || ttl > 600) {
        return usage();
    }
    char tok[2048];
    int64_t now = (int64_t)time(NULL);
    if (pwreviewer_mint(key, sub, now, now + ttl, tok, sizeof(tok)) != PW_OK) {
        fprintf(stderr, "pwreviewer: cannot sign with %s (a PEM P-256 private key?)\n", key);
        return 1;
    }
    printf("%s\n", tok);
    return 0;
}
