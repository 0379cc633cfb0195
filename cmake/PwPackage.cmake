# Debian packages of the install components, with CPack's DEB generator
# (scripts/package): libpaywire0 (runtime), libpaywire-dev (dev), paywire-tools
# (tools). Runtime dependencies come from dpkg-shlibdeps on the binaries; the
# -dev package adds what building against paywire needs (headers of the
# libraries paywire's headers and pkg-config files name, protoc and plugins).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME paywire)
set(CPACK_PACKAGE_VENDOR "paywire")
set(CPACK_PACKAGE_CONTACT "paywire maintainers <paywire@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev tools)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps resolves our own libraries in the package being built.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${pw_dist_dir})

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libpaywire${PW_SOVERSION})
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
  "paywire runtime libraries\n libpaywire, the built-ins, the database layer and the compiled\n protobuf well-known types: a gRPC-compatible RPC platform in C.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpaywire-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DESCRIPTION
  "paywire development files\n Headers, static libraries, pkg-config files, the CMake package with\n paywire_generate(), and protoc-gen-paywire.")
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libuv1-dev, libprotobuf-c-dev, libnghttp2-dev, libssl-dev, zlib1g-dev, libjansson-dev, libpq-dev, libcurl4-openssl-dev | libcurl-dev, libhttp-parser-dev, libprotobuf-dev, protobuf-compiler, protobuf-c-compiler, pkg-config")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME paywire-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION net)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
  "paywire command-line tools\n pwctl (call any RPC with JSON), pwbench (load generator) and\n pwmigrate (database migrations).")

include(CPack)
