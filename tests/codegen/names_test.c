/*
 * codegen/src/names.c against protoc-c 1.4.1 itself: for every field of
 * pwtest.v1.Keywords and Branch, the member pwg_pbc_member() predicts is the
 * one protoc-c made (this file compiles only if the member exists, and its
 * offset is the one in protoc-c's field descriptor).
 */
#include <stddef.h>
#include <string.h>
#include <paywire/alloc.h>
#include "names.h"
#include "pwtest/v1/keywords.pb-c.h"
#include "pw_test.h"

typedef struct expect {
    const char *field;
    const char *member;
    size_t offset;
} expect;

#define KW(field, member)                                      \
    {                                                          \
        field, #member, offsetof(Pwtest__V1__Keywords, member) \
    }
#define BR(field, member)                                    \
    {                                                        \
        field, #member, offsetof(Pwtest__V1__Branch, member) \
    }

static const expect keywords[] = {
    KW("auto", auto_),
    KW("break", break_),
    KW("case", case_),
    KW("char", char_),
    KW("const", const_),
    KW("continue", continue_),
    KW("default", default_),
    KW("do", do_),
    KW("double", double_),
    KW("else", else_),
    KW("enum", enum_),
    KW("extern", extern_),
    KW("float", float_),
    KW("for", for_),
    KW("goto", goto_),
    KW("if", if_),
    KW("inline", inline_),
    KW("int", int_),
    KW("long", long_),
    KW("register", register_),
    KW("return", return_),
    KW("short", short_),
    KW("signed", signed_),
    KW("sizeof", sizeof_),
    KW("static", static_),
    KW("struct", struct_),
    KW("switch", switch_),
    KW("typedef", typedef_),
    KW("union", union_),
    KW("unsigned", unsigned_),
    KW("void", void_),
    KW("volatile", volatile_),
    KW("while", while_),
    KW("_Alignas", _alignas),
    KW("_Alignof", _alignof),
    KW("_Atomic", _atomic),
    KW("_Bool", _bool),
    KW("_Complex", _complex),
    KW("_Generic", _generic),
    KW("_Imaginary", _imaginary),
    KW("_Noreturn", _noreturn),
    KW("_Static_assert", _static_assert),
    KW("_Thread_local", _thread_local),
};

static const expect branch[] = {
    BR("case", case_),
    BR("default", default_),
    BR("struct", struct_),
    BR("break", break_),
};

static void check(const ProtobufCMessageDescriptor *d, const expect *e, size_t n)
{
    assert_int_equal(d->n_fields, n);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, e[i].field);
        assert_non_null(f);
        assert_int_equal(f->offset, e[i].offset);
        char *member = pwg_pbc_member(e[i].field);
        assert_string_equal(member, e[i].member);
        assert_null(pwg_member_unusable(member));
        pw_free(member);
    }
}

static void test_names_pbc_member_is_protoc_c_s(void **state)
{
    (void)state;
    check(&pwtest__v1__keywords__descriptor, keywords, sizeof(keywords) / sizeof(keywords[0]));
    check(&pwtest__v1__branch__descriptor, branch, sizeof(branch) / sizeof(branch[0]));
    char *c = pwg_pbc_oneof_case("switch");
    assert_string_equal(c, "switch_case");
    pw_free(c);
    assert_int_equal(pwtest__v1__branch__descriptor.fields[0].quantifier_offset,
                     offsetof(Pwtest__V1__Branch, switch_case));
}

static void test_names_pbc_member_rules(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"amount", "amount"},   {"Register", "register_"},  {"DEFAULT", "default_"},
        {"bitand", "bitand_"},  {"wchar_t", "wchar_t_"},    {"restrict", "restrict"},
        {"alignas", "alignas"}, {"register_", "register_"}, {"minorUnits", "minorunits"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *m = pwg_pbc_member(cases[i][0]);
        assert_string_equal(m, cases[i][1]);
        pw_free(m);
    }
    char *c = pwg_pbc_oneof_case("PayMethod");
    assert_string_equal(c, "pay_method_case");
    pw_free(c);
    assert_non_null(pwg_member_unusable("restrict"));
    assert_non_null(pwg_member_unusable("errno"));
    assert_null(pwg_member_unusable("register_"));
    assert_null(pwg_member_unusable("_bool"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_pbc_member_is_protoc_c_s),
        cmocka_unit_test(test_names_pbc_member_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
