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
/** 1 when s is a C keyword (C11). */
int pwg_is_c_keyword(const char *s);

#endif
