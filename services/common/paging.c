/*
 * paging.c: the paging contract of api-conventions.md for every List method:
 * keyset tokens (hex of "v1|filter|position", opaque to clients, checked on
 * the way back) and the page size rule.
 */
#include <stdio.h>
#include <string.h>
#include "svc_req.h"

char *svc_page_token(svc_req *r, const char *position, const char *filter)
{
    char plain[256];
    int n = snprintf(plain, sizeof(plain), "v1|%s|%s", filter, position);
    if (n < 0 || (size_t)n >= sizeof(plain)) {
        n = (int)sizeof(plain) - 1; /* positions and filters are ids: never this long */
    }
    char *out = svc_alloc(r, (size_t)n * 2 + 1);
    for (int i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)plain[i]);
    }
    return out;
}

int svc_page_token_read(svc_req *r, const char *token, const char *filter, char *position,
                        size_t cap)
{
    position[0] = '\0';
    if (token == NULL || token[0] == '\0') {
        return 1;
    }
    char plain[256];
    size_t n = strlen(token);
    if (n % 2 != 0 || n / 2 >= sizeof(plain)) {
        svc_violation(r, "page_token", "not a token from this method");
        return 0;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(token + 2 * i, "%2x", &v) != 1) {
            svc_violation(r, "page_token", "not a token from this method");
            return 0;
        }
        plain[i] = (char)v;
    }
    plain[n / 2] = '\0';
    char want[128];
    snprintf(want, sizeof(want), "v1|%s|", filter);
    if (strncmp(plain, want, strlen(want)) != 0) {
        svc_violation(r, "page_token",
                      "belongs to a request with other filters; repeat the same filters or start "
                      "again without a token");
        return 0;
    }
    snprintf(position, cap, "%s", plain + strlen(want));
    return 1;
}

int svc_page_size(int32_t requested)
{
    return requested <= 0 ? SVC_PAGE_DEFAULT : requested > SVC_PAGE_MAX ? SVC_PAGE_MAX : requested;
}
