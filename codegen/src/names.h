#ifndef PAYWIRE_CODEGEN_NAMES_H
#define PAYWIRE_CODEGEN_NAMES_H

/*
 * C names for generated code. pwg_pbc_* reproduce protobuf-c's own naming so
 * our code refers to its types; pwg_snake and pwg_prefix make our names.
 * Every function returns a pw_malloc'ed string (NULL on ENOMEM).
 */
#include <stddef.h>

/** ".pkg.Outer.Inner" or "pkg.Outer.Inner" -> "Pkg__Outer__Inner" (protobuf-c's type). */
char *pwg_pbc_type(const char *full_name);
/** -> "pkg__outer__inner" (protobuf-c's lower name; "<x>__descriptor" is the descriptor). */
char *pwg_pbc_lower(const char *full_name);
/** "TestService" -> "test_service", "HTTPRequest" -> "http_request", "My_Svc" -> "my_svc". */
char *pwg_snake(const char *name);
/** "grpc.testing" + "TestService" -> "grpc_testing_test_service". */
char *pwg_prefix(const char *package, const char *service);
/** "src/proto/x-y.proto" -> "src_proto_x_y" (identifier from a file name, no extension). */
char *pwg_file_ident(const char *file_name);
/** 1 when s is a C or C++ keyword (or a reserved identifier we must not use). */
int pwg_is_keyword(const char *s);
/** 1 when s is a C keyword (C11; the lower-case ones, as protoc-c's names are lower case). */
int pwg_is_c_keyword(const char *s);
/**
 * protoc-c 1.4.1's struct member for a field (its FieldName()): "register" -> "register_",
 * "Default" -> "default_", "amount" -> "amount". The one place we mirror its escaping.
 */
char *pwg_pbc_member(const char *field_name);
/** protoc-c's member holding a oneof's case: "switch" -> "switch_case", "PayMethod" ->
 * "pay_method_case". */
char *pwg_pbc_oneof_case(const char *oneof_name);
/**
 * Why a struct member of this name cannot compile (a static string: "a C keyword", "a macro
 * of the C headers that generated code includes"), or NULL when it can.
 */
const char *pwg_member_unusable(const char *member);

#endif
