# Helpers shared by every CMakeLists.txt in paywire.

# Warnings for our own code. Generated third-party code does not get these.
# A cache variable, so projects that add paywire as a subdirectory and call
# paywire_generate() get the same flags for generated code.
set(PW_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wundef
  -Wpointer-arith -Wvla
  CACHE INTERNAL "Warning flags for paywire's own and generated code")

function(pw_warnings target)
  target_compile_options(${target} PRIVATE ${PW_WARNINGS})
  if(PW_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# pw_add_test(name [SOURCES a.c ...] [LIBS lib ...])
# One line per cmocka test executable; the source defaults to <name>.c.
function(pw_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_SOURCES)
    set(T_SOURCES ${name}.c)
  endif()
  add_executable(${name} ${T_SOURCES})
  pw_warnings(${name})
  target_link_libraries(${name} PRIVATE PkgConfig::CMOCKA paywire_test_support ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT})
endfunction()

# pw_protoc_c(OUT_SRCS OUT_HDRS IMPORT_DIR dir PROTOS rel/a.proto ...)
# Runs protoc-c on .proto files (paths relative to IMPORT_DIR) into the build tree,
# keeping the relative layout so includes read "grpc/testing/messages.pb-c.h".
function(pw_protoc_c out_srcs out_hdrs)
  cmake_parse_arguments(P "" "IMPORT_DIR;OUT_DIR" "PROTOS;EXTRA_IMPORTS" ${ARGN})
  set(srcs)
  set(hdrs)
  set(import_args -I${P_IMPORT_DIR})
  foreach(extra ${P_EXTRA_IMPORTS})
    list(APPEND import_args -I${extra})
  endforeach()
  foreach(proto ${P_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    set(c ${P_OUT_DIR}/${base}.pb-c.c)
    set(h ${P_OUT_DIR}/${base}.pb-c.h)
    add_custom_command(
      OUTPUT ${c} ${h}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${P_OUT_DIR}
      COMMAND ${PROTOC_C} ${import_args} --c_out=${P_OUT_DIR} ${P_IMPORT_DIR}/${proto}
      DEPENDS ${P_IMPORT_DIR}/${proto}
      COMMENT "protoc-c ${proto}"
      VERBATIM)
    list(APPEND srcs ${c})
    list(APPEND hdrs ${h})
  endforeach()
  set(${out_srcs} ${srcs} PARENT_SCOPE)
  set(${out_hdrs} ${hdrs} PARENT_SCOPE)
endfunction()

include(${CMAKE_CURRENT_LIST_DIR}/PaywireGenerate.cmake)

# pw_grpcpp_generate(OUT_SRCS IMPORT_DIR dir OUT_DIR dir PROTOS a.proto ... SERVICES a.proto ...)
# protoc's C++ messages for PROTOS and gRPC C++ services for SERVICES, for the
# reference peers (gRPC C++ servers) that tests and benchmarks compare with.
function(pw_grpcpp_generate out_srcs)
  cmake_parse_arguments(G "" "IMPORT_DIR;OUT_DIR" "PROTOS;SERVICES" ${ARGN})
  set(srcs)
  set(deps)
  foreach(p ${G_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${p})
    list(APPEND srcs ${G_OUT_DIR}/${base}.pb.cc)
    list(APPEND deps ${G_IMPORT_DIR}/${p})
  endforeach()
  foreach(p ${G_SERVICES})
    string(REGEX REPLACE "\\.proto$" "" base ${p})
    list(APPEND srcs ${G_OUT_DIR}/${base}.grpc.pb.cc)
  endforeach()
  add_custom_command(
    OUTPUT ${srcs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${G_OUT_DIR}
    COMMAND ${PROTOC} -I ${G_IMPORT_DIR} --cpp_out=${G_OUT_DIR} ${G_PROTOS}
    COMMAND ${PROTOC} -I ${G_IMPORT_DIR} --grpc_out=${G_OUT_DIR}
            --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN} ${G_SERVICES}
    DEPENDS ${deps}
    COMMENT "protoc (C++ and gRPC C++) ${G_SERVICES}"
    VERBATIM)
  set(${out_srcs} ${srcs} PARENT_SCOPE)
endfunction()
