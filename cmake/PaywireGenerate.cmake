# paywire_generate(TARGET name PROTOS a.proto ... IMPORT_DIRS dir ... [LIBS lib ...])
# Runs protoc with protoc-c and protoc-gen-paywire on each .proto (a path
# relative to one of IMPORT_DIRS) and builds a static library `name` of the
# messages (NAME.pb-c.c) and typed servers/clients (NAME.pw.c). Editing a
# .proto regenerates and rebuilds what depends on it. LIBS are the libraries
# of imported protos (pw_proto_wkt in this tree, paywire::wkt from an installed
# paywire, for google/protobuf/*.proto).
# Inside this tree (or add_subdirectory) it uses the protoc-gen-paywire and
# paywire targets and compiles generated paywire code with the project's strict
# warnings; from an installed paywire (paywireConfig.cmake includes this file)
# it uses paywire::protoc-gen-paywire and links paywire::paywire.
function(paywire_generate)
  cmake_parse_arguments(G "" "TARGET" "PROTOS;IMPORT_DIRS;LIBS" ${ARGN})
  if(TARGET protoc-gen-paywire)
    set(plugin protoc-gen-paywire)
    set(plugin_dep protoc-gen-paywire)
    set(runtime paywire)
  else()
    set(plugin paywire::protoc-gen-paywire)
    set(plugin_dep $<TARGET_FILE:paywire::protoc-gen-paywire>)
    set(runtime paywire::paywire)
  endif()
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
              --plugin=protoc-gen-paywire=$<TARGET_FILE:${plugin}> ${proto}
      DEPENDS ${abs} ${plugin_dep}
      COMMENT "protoc (protobuf-c + paywire) ${proto}"
      VERBATIM)
    list(APPEND pb_srcs ${out}/${base}.pb-c.c)
    list(APPEND pw_srcs ${out}/${base}.pw.c)
  endforeach()
  add_library(${G_TARGET} STATIC ${pb_srcs} ${pw_srcs})
  target_include_directories(${G_TARGET} PUBLIC ${out})
  target_link_libraries(${G_TARGET} PUBLIC ${runtime} ${G_LIBS})
  if(DEFINED PW_WARNINGS)
    set(strict ${PW_WARNINGS})
    if(PW_WERROR)
      list(APPEND strict -Werror)
    endif()
    set_source_files_properties(${pw_srcs} PROPERTIES COMPILE_OPTIONS "${strict}")
  endif()
endfunction()

