# Helpers shared by every CMakeLists.txt in paywire.

# Warnings for our own code. Generated third-party code does not get these.
set(PW_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wundef
  -Wpointer-arith -Wvla)

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
