/*
 * names.c: identifier rules. protobuf-c's rules, observed from protoc-c's
 * output: type names join each dotted component, camel-cased (underscores
 * dropped, the next letter upper-cased), with "__"; lower names lower-case
 * each component, putting '_' before an upper-case letter that follows a
 * non-upper-case one, and join with "__". Struct members are the field's
 * name lower-cased, with '_' appended when that is a C++ keyword.
 */
#include <ctype.h>
#include <stdio.h>
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

static int in_list(const char *const *words, const char *s)
{
    for (size_t i = 0; words[i] != NULL; i++) {
        if (strcmp(s, words[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* 1 when s is one of the space-separated words of list (which starts and ends with a space). */
static int in_words(const char *list, const char *s)
{
    char key[64];
    size_t n = strlen(s);
    if (n == 0 || n + 3 > sizeof(key) || strchr(s, ' ') != NULL) {
        return 0;
    }
    snprintf(key, sizeof(key), " %s ", s);
    return strstr(list, key) != NULL;
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
    return in_list(words, s);
}

int pwg_is_c_keyword(const char *s)
{
    static const char *const words[] = {
        "auto",    "break",  "case",     "char",   "const",    "continue", "default",
        "do",      "double", "else",     "enum",   "extern",   "float",    "for",
        "goto",    "if",     "inline",   "int",    "long",     "register", "restrict",
        "return",  "short",  "signed",   "sizeof", "static",   "struct",   "switch",
        "typedef", "union",  "unsigned", "void",   "volatile", "while",    NULL};
    return in_list(words, s);
}

/*
 * protoc-c 1.4.1's kKeywordList (protoc-c/c_helpers.cc): C++ keywords and
 * alternative tokens, which cover C's except "restrict". Its FieldName()
 * lower-cases a field's name and appends '_' when the result is in the list.
 */
static const char pbc_escaped[] =
    " and and_eq asm auto bitand bitor bool break case catch char class compl const"
    " const_cast continue default delete do double dynamic_cast else enum explicit extern"
    " false float for friend goto if inline int long mutable namespace new not not_eq"
    " operator or or_eq private protected public register reinterpret_cast return short"
    " signed sizeof static static_cast struct switch template this throw true try typedef"
    " typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq ";

char *pwg_pbc_member(const char *field_name)
{
    pw_buf b = {0};
    for (const char *p = field_name; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        pw_buf_append(&b, &c, 1);
    }
    char *lower = buf_take(&b);
    if (lower == NULL || !in_words(pbc_escaped, lower)) {
        return lower;
    }
    pw_buf e = {0};
    pw_buf_printf(&e, "%s_", lower);
    pw_free(lower);
    return buf_take(&e);
}

char *pwg_pbc_oneof_case(const char *oneof_name)
{
    char *lower = pwg_pbc_lower(oneof_name);
    pw_buf b = {0};
    if (lower != NULL) {
        pw_buf_printf(&b, "%s_case", lower);
    }
    pw_free(lower);
    return lower ? buf_take(&b) : NULL;
}

/*
 * Object-like macros with lower-case names in scope of every generated file
 * (it includes paywire/paywire.h, so <uv.h>, and protobuf-c.h, built with
 * _GNU_SOURCE) that expand to more than a plain identifier: C11's errno and
 * static_assert, and glibc's (st_mtime, sa_handler, si_pid, ...). A struct
 * member named after one is replaced by the macro's body, which does not
 * compile there. (stdin, d_fileno and the like expand to one identifier:
 * the member is renamed consistently and compiles.) tests/codegen/errors.sh
 * checks this list against the headers and that each name breaks protoc-c's
 * output.
 */
static const char header_macros[] =
    " errno h_addr h_errno s6_addr s6_addr16 s6_addr32 sa_handler sa_sigaction si_addr"
    " si_addr_lsb si_arch si_band si_call_addr si_fd si_int si_lower si_overrun si_pid"
    " si_pkey si_ptr si_status si_stime si_syscall si_timerid si_uid si_upper si_utime"
    " si_value sigev_notify_attributes sigev_notify_function st_atime st_ctime st_mtime"
    " static_assert ";

const char *pwg_member_unusable(const char *member)
{
    if (pwg_is_c_keyword(member)) {
        return "a C keyword that protoc-c leaves as it is (it escapes C++ keywords only)";
    }
    if (in_words(header_macros, member)) {
        return "a macro of the C headers that generated code includes";
    }
    return NULL;
}
