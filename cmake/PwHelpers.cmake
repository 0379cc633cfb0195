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

# paywire_generate(TARGET name PROTOS a.proto ... IMPORT_DIRS dir ... [LIBS lib ...])
# Runs protoc with protoc-c and protoc-gen-paywire on each .proto (a path
# relative to one of IMPORT_DIRS) and builds a static library `name` of the
# messages (NAME.pb-c.c) and typed servers/clients (NAME.pw.c). Editing a
# .proto regenerates and rebuilds what depends on it. LIBS are the libraries
# of imported protos (pw_proto_wkt for google/protobuf/*.proto).
# Generated paywire code is compiled with the project's strict warnings.
function(paywire_generate)
  cmake_parse_arguments(G "" "TARGET" "PROTOS;IMPORT_DIRS;LIBS" ${ARGN})
  set(out ${CMAKE_BINARY_DIR}/proto-gen)
  set(import_args)
  foreach(dir ${G_IMPORT_DIRS} ${PW_PROTOBUF_INCLUDEDIR})
    list(APPEND import_args -I${dir})
  endforeach()
  set(pb_srcs)
  set(pw_srcs)
  foreach(proto ${G_PROTOS})
    set(abs)
    foreach(dir ${G_IMPORT_DIRS})
      if(NOT abs AND EXISTS ${dir}/${proto})
        set(abs ${dir}/${proto})
      endif()
    endforeach()
    if(NOT abs)
      message(FATAL_ERROR "paywire_generate(${G_TARGET}): ${proto} is in none of ${G_IMPORT_DIRS}")
    endif()
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    set(outs ${out}/${base}.pb-c.c ${out}/${base}.pb-c.h ${out}/${base}.pw.c ${out}/${base}.pw.h)
    add_custom_command(
      OUTPUT ${outs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
      COMMAND ${PROTOC} ${import_args} --c_out=${out} --paywire_out=${out}
              --plugin=protoc-gen-paywire=$<TARGET_FILE:protoc-gen-paywire> ${proto}
      DEPENDS ${abs} protoc-gen-paywire
      COMMENT "protoc (protobuf-c + paywire) ${proto}"
      VERBATIM)
    list(APPEND pb_srcs ${out}/${base}.pb-c.c)
    list(APPEND pw_srcs ${out}/${base}.pw.c)
  endforeach()
  add_library(${G_TARGET} STATIC ${pb_srcs} ${pw_srcs})
  target_include_directories(${G_TARGET} PUBLIC ${out})
  target_link_libraries(${G_TARGET} PUBLIC paywire PkgConfig::PROTOBUF_C ${G_LIBS})
  set(strict ${PW_WARNINGS})
  if(PW_WERROR)
    list(APPEND strict -Werror)
  endif()
  set_source_files_properties(${pw_srcs} PROPERTIES COMPILE_OPTIONS "${strict}")
endfunction()

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
