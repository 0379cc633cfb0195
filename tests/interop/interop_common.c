/* interop_common.c: flag parsing and payloads for the interop programs. */
#include <string.h>
#include "interop_common.h"

const char *pw_interop_flag(int argc, char **argv, const char *name, const char *def)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0) {
            continue;
        }
        if (a[2 + n] == '=') {
            return a + 3 + n;
        }
        if (a[2 + n] == '\0') {
            return "true";
        }
    }
    return def;
}

int pw_interop_flag_bool(int argc, char **argv, const char *name)
{
    const char *v = pw_interop_flag(argc, argv, name, "false");
    return strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

pw_status pw_interop_payload(Grpc__Testing__Payload *p, size_t size)
{
    grpc__testing__payload__init(p);
    p->body.len = size;
    p->body.data = pw_calloc(1, size ? size : 1);
    return p->body.data != NULL ? PW_OK : PW_ERRNO(ENOMEM);
}
