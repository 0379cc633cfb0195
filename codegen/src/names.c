/*
 * names.c: identifier rules. protobuf-c's rules, observed from protoc-c's
 * output: type names join each dotted component, camel-cased (underscores
 * dropped, the next letter upper-cased), with "__"; lower names lower-case
 * each component, putting '_' before an upper-case letter that follows a
 * non-upper-case one, and join with "__".
 */
#include <ctype.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/buf.h>
#include "names.h"

static char *buf_take(pw_buf *b)
{
    if (pw_buf_append(b, "", 1) != PW_OK) {
        pw_buf_reset(b);
        return NULL;
    }
    return (char *)b->data;
}

static const char *skip_dot(const char *s)
{
    return s[0] == '.' ? s + 1 : s;
}

char *pwg_pbc_type(const char *full_name)
{
    pw_buf b = {0};
    int upper_next = 1;
    for (const char *p = skip_dot(full_name); *p; p++) {
        if (*p == '.') {
            pw_buf_append(&b, "__", 2);
            upper_next = 1;
        } else if (*p == '_') {
            upper_next = 1;
        } else {
            char c = upper_next ? (char)toupper((unsigned char)*p) : *p;
            pw_buf_append(&b, &c, 1);
            upper_next = 0;
        }
    }
    return buf_take(&b);
}

char *pwg_pbc_lower(const char *full_name)
{
    pw_buf b = {0};
    int was_upper = 1;
    for (const char *p = skip_dot(full_name); *p; p++) {
        if (*p == '.') {
            pw_buf_append(&b, "__", 2);
            was_upper = 1;
        } else if (isupper((unsigned char)*p)) {
            if (!was_upper) {
                pw_buf_append(&b, "_", 1);
            }
            char c = (char)tolower((unsigned char)*p);
            pw_buf_append(&b, &c, 1);
            was_upper = 1;
        } else {
            pw_buf_append(&b, p, 1);
            was_upper = 0;
        }
    }
    return buf_take(&b);
}

char *pwg_snake(const char *name)
{
    pw_buf b = {0};
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '_' || c == '.' || c == '-') {
            if (b.len > 0 && b.data[b.len - 1] != '_') {
                pw_buf_append(&b, "_", 1);
            }
            continue;
        }
        if (isupper(c) && i > 0) {
            unsigned char prev = (unsigned char)name[i - 1];
            unsigned char next = i + 1 < n ? (unsigned char)name[i + 1] : 0;
            int boundary = islower(prev) || isdigit(prev) || (isupper(prev) && islower(next));
            if (boundary && b.len > 0 && b.data[b.len - 1] != '_') {
                pw_buf_append(&b, "_", 1);
            }
        }
        char l = (char)tolower(c);
        pw_buf_append(&b, &l, 1);
    }
    while (b.len > 0 && b.data[b.len - 1] == '_') {
        b.len--;
    }
    return buf_take(&b);
}

char *pwg_prefix(const char *package, const char *service)
{
    char *pkg = pwg_snake(package ? package : "");
    char *svc = pwg_snake(service);
    pw_buf b = {0};
    if (pkg != NULL && pkg[0] != '\0') {
        pw_buf_printf(&b, "%s_", pkg);
    }
    pw_buf_printf(&b, "%s", svc ? svc : "");
    pw_free(pkg);
    pw_free(svc);
    return buf_take(&b);
}

char *pwg_file_ident(const char *file_name)
{
    pw_buf b = {0};
    size_t n = strlen(file_name);
    if (n > 6 && strcmp(file_name + n - 6, ".proto") == 0) {
        n -= 6;
    }
    for (size_t i = 0; i < n; i++) {
        char c = isalnum((unsigned char)file_name[i]) ? file_name[i] : '_';
        pw_buf_append(&b, &c, 1);
    }
    return buf_take(&b);
}

int pwg_is_keyword(const char *s)
{
    static const char *const words[] = {
        "alignas",  "alignof",  "and",      "asm",    "auto",     "bool",      "break",
        "case",     "catch",    "char",     "class",  "const",    "constexpr", "continue",
        "default",  "delete",   "do",       "double", "else",     "enum",      "explicit",
        "export",   "extern",   "false",    "float",  "for",      "friend",    "goto",
        "if",       "inline",   "int",      "long",   "mutable",  "namespace", "new",
        "noexcept", "not",      "operator", "or",     "private",  "protected", "public",
        "register", "restrict", "return",   "short",  "signed",   "sizeof",    "static",
        "struct",   "switch",   "template", "this",   "throw",    "true",      "try",
        "typedef",  "typeid",   "typename", "union",  "unsigned", "using",     "virtual",
        "void",     "volatile", "while",    "xor",    NULL};
    for (size_t i = 0; words[i] != NULL; i++) {
        if (strcmp(s, words[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

int pwg_is_c_keyword(const char *s)
{
    static const char *const words[] = {
        "auto",    "break",  "case",     "char",   "const",    "continue", "default",
        "do",      "double", "else",     "enum",   "extern",   "float",    "for",
        "goto",    "if",     "inline",   "int",    "long",     "register", "restrict",
        "return",  "short",  "signed",   "sizeof", "static",   "struct",   "switch",
        "typedef", "union",  "unsigned", "void",   "volatile", "while",    NULL};
    for (size_t i = 0; words[i] != NULL; i++) {
        if (strcmp(s, words[i]) == 0) {
            return 1;
        }
    }
    return 0;
}
