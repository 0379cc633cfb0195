# What `cmake --install` puts in a prefix, and the Debian packages made of it
# (scripts/package). The in-tree libraries stay static archives linked into our
# own binaries; from their position-independent objects this file makes the
# shared (SONAME libpaywire.so.0 ...) and static libraries that are installed,
# so nothing is compiled twice. Only PW_EXTERN symbols (and the generated
# well-known types) leave the shared libraries: tests/install checks it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PW_SOVERSION 0)
set(pw_dist_dir ${CMAKE_BINARY_DIR}/dist)

# pw_dist_library(NAME name OBJECTS tgt ... [PUBLIC lib ...] [PRIVATE lib ...])
# Makes NAME_shared (libNAME.so.VERSION) and NAME_static (libNAME.a) of the
# objects of the in-tree targets OBJECTS, installed and exported as
# paywire::<export> and paywire::<export>_static.
function(pw_dist_library export name)
  cmake_parse_arguments(D "" "" "OBJECTS;PUBLIC;PRIVATE;STATIC_ONLY" ${ARGN})
  set(objs)
  foreach(t ${D_OBJECTS})
    set_target_properties(${t} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    list(APPEND objs $<TARGET_OBJECTS:${t}>)
  endforeach()
  set(incdir $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  add_library(${name}_shared SHARED ${objs})
  set_target_properties(${name}_shared PROPERTIES OUTPUT_NAME ${name} VERSION ${PROJECT_VERSION}
    SOVERSION ${PW_SOVERSION} EXPORT_NAME ${export} LIBRARY_OUTPUT_DIRECTORY ${pw_dist_dir})
  # A symbol the library needs but nobody provides fails here, not in a user's link.
  target_link_options(${name}_shared PRIVATE -Wl,--no-undefined)
  target_link_libraries(${name}_shared PUBLIC ${D_PUBLIC} PRIVATE ${D_PRIVATE})
  target_include_directories(${name}_shared INTERFACE ${incdir})
  add_library(${name}_static STATIC ${objs})
  set_target_properties(${name}_static PROPERTIES OUTPUT_NAME ${name} EXPORT_NAME ${export}_static
    ARCHIVE_OUTPUT_DIRECTORY ${pw_dist_dir})
  set(spub)
  foreach(l ${D_PUBLIC})
    string(REGEX REPLACE "_shared$" "_static" l ${l})
    list(APPEND spub ${l})
  endforeach()
  target_link_libraries(${name}_static PUBLIC ${spub} ${D_STATIC_ONLY} PRIVATE ${D_PRIVATE})
  target_include_directories(${name}_static INTERFACE ${incdir})
  if(PW_SANITIZE)
    # A sanitized paywire needs the sanitizer runtime in whatever links it.
    target_link_options(${name}_shared INTERFACE -fsanitize=${PW_SANITIZE})
    target_link_options(${name}_static INTERFACE -fsanitize=${PW_SANITIZE})
  endif()
  install(TARGETS ${name}_shared EXPORT paywireTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev)
  install(TARGETS ${name}_static EXPORT paywireTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
  set_property(GLOBAL APPEND PROPERTY PW_DIST_TARGETS ${name}_shared ${name}_static)
endfunction()

# The generated well-known types are the one library whose symbols are not pw_:
# their messages' descriptors are what users' generated code links to.
set_target_properties(pw_proto_wkt PROPERTIES C_VISIBILITY_PRESET default)

pw_dist_library(paywire paywire OBJECTS paywire
  PUBLIC PkgConfig::LIBUV PkgConfig::PROTOBUF_C
  PRIVATE PkgConfig::NGHTTP2 PkgConfig::OPENSSL PkgConfig::ZLIB ${HTTP_PARSER_LIBRARY})
pw_dist_library(wkt paywire_wkt OBJECTS pw_proto_wkt PUBLIC paywire_shared)
# The built-ins use paywire_http (libcurl) for OTLP export: it goes with them.
pw_dist_library(builtins paywire_builtins
  OBJECTS paywire_builtins pw_proto_grpc pw_proto_rpc paywire_http
  PUBLIC paywire_shared paywire_wkt_shared
  PRIVATE ${HTTP_PARSER_LIBRARY} PkgConfig::OPENSSL PkgConfig::JANSSON PkgConfig::LIBCURL m)
# admin.c parses its address with the core's internal pw__parse_host_port (not
# exported): the shared library gets its own hidden copy of that one file.
target_sources(paywire_builtins_shared PRIVATE ${PROJECT_SOURCE_DIR}/runtime/src/net/addr.c)
target_include_directories(paywire_builtins_shared PRIVATE ${PROJECT_SOURCE_DIR}/runtime/src
  ${PROJECT_SOURCE_DIR}/runtime/include)
pw_dist_library(db paywire_db OBJECTS paywire_db
  PUBLIC paywire_shared PRIVATE PkgConfig::LIBPQ PkgConfig::OPENSSL)
set_target_properties(paywire_wkt_shared paywire_wkt_static PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES
  "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>;$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/paywire/wkt>")

# Headers: the public API, and the generated well-known types' headers (their
# own "google/protobuf/x.pb-c.h" include paths kept under include/paywire/wkt).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/paywire
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(DIRECTORY ${CMAKE_BINARY_DIR}/proto-gen/google/protobuf
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/paywire/wkt/google COMPONENT dev
  FILES_MATCHING PATTERN "*.h")

# Programs: the plugin goes with the headers (it is what building on paywire
# needs); the command-line clients are tools.
install(TARGETS protoc-gen-paywire EXPORT paywireTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT dev)
install(TARGETS pwctl pwbench pwmigrate RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
set_property(GLOBAL APPEND PROPERTY PW_DIST_TARGETS protoc-gen-paywire pwctl pwbench pwmigrate)

# The CMake package: imported targets, paywire_generate(), version check.
set(pw_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/paywire)
install(EXPORT paywireTargets NAMESPACE paywire:: DESTINATION ${pw_cmakedir} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/paywireConfig.cmake.in
  ${CMAKE_BINARY_DIR}/paywireConfig.cmake INSTALL_DESTINATION ${pw_cmakedir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/paywireConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/paywireConfig.cmake ${CMAKE_BINARY_DIR}/paywireConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/PaywireGenerate.cmake DESTINATION ${pw_cmakedir} COMPONENT dev)

# pkg-config, one file per library. The sanitizer flags of a sanitized build
# travel with it, as in the CMake package.
set(pw_pc_sanitize "")
if(PW_SANITIZE)
  set(pw_pc_sanitize " -fsanitize=${PW_SANITIZE}")
endif()
file(RELATIVE_PATH PW_PC_UP /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
function(pw_pc name description requires requires_private libs_private)
  set(PC_NAME ${name})
  set(PC_DESCRIPTION ${description})
  set(PC_REQUIRES ${requires})
  set(PC_REQUIRES_PRIVATE ${requires_private})
  set(PC_LIBS_PRIVATE ${libs_private})
  string(REPLACE "-" "_" PC_LIB ${name})
  set(PC_CFLAGS "")
  if(name STREQUAL "paywire-wkt")
    set(PC_CFLAGS " -I\${includedir}/paywire/wkt")
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/cmake/paywire.pc.in ${CMAKE_BINARY_DIR}/pkgconfig/${name}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/pkgconfig/${name}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endfunction()
pw_pc(paywire "gRPC-compatible RPC runtime in C" "libuv libprotobuf-c"
  "libnghttp2 openssl zlib" "-lhttp_parser")
pw_pc(paywire-wkt "protobuf well-known types compiled for paywire" "paywire" "" "")
pw_pc(paywire-builtins
  "paywire built-ins: health, reflection, metrics, tracing, auth, errors, JSON, outbound HTTP"
  "paywire paywire-wkt" "openssl jansson libcurl" "-lhttp_parser -lm")
pw_pc(paywire-db "paywire's async PostgreSQL layer" "paywire" "libpq openssl" "")

get_property(pw_dist_targets GLOBAL PROPERTY PW_DIST_TARGETS)
# Everything `cmake --install` installs: scripts/package builds only this.
add_custom_target(paywire_dist DEPENDS ${pw_dist_targets})

include(${PROJECT_SOURCE_DIR}/cmake/PwPackage.cmake)
