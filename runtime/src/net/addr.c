/* addr.c: parsing "host:port" and "[v6]:port" for listeners and channels. */
#include <stdlib.h>
#include <string.h>
#include "net/addr.h"

pw_status pw__parse_host_port(const char *s, char *host, size_t host_size, int *port)
{
    const char *h = s;
    const char *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':') {
            return PW_INVALID_ARGUMENT;
        }
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return PW_INVALID_ARGUMENT;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen >= host_size) {
        return PW_INVALID_ARGUMENT;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535) {
        return PW_INVALID_ARGUMENT;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return PW_OK;
}
