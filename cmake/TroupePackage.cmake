# `cpack -G DEB` in the build folder: one Debian package, troupe, holding everything
# cmake/TroupeInstall.cmake installs, under /usr.
#
# It is both the runtime and the kit for building plugins, because running apps already needs
# Cap'n Proto's development files: troupe parses the app's schema at start, and schemas import
# /usr/include/capnp/c++.capnp, which only libcapnp-dev ships. So Depends is
#   - the shared libraries the ELF files need, computed by dpkg-shlibdeps at packaging time
#     (libcaf-core0.17, libcaf-io0.17, libcapnp-0.9.2, liblmdb0, libyaml-cpp0.7, libc6, ...), and
#   - what the headers and troupe_add_plugin need: libcapnp-dev (headers, CMake package; it
#     brings libssl-dev, which Cap'n Proto's CMake package looks for) and capnproto (the schema
#     compiler).
# A compiler, cmake and pkg-config are the plugin author's choice and only recommended.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME troupe)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "actor runtime for message-driven batch and stream processing")
set(CPACK_PACKAGE_DESCRIPTION
    "Troupe runs pipelines of supervised CAF actors exchanging Cap'n Proto records over
LMDB-persisted logs, described by a YAML app file. The package holds the troupe
executable, libtroupe_runtime, the stage API's headers, a CMake package
(find_package(Troupe)) and a pkg-config file (troupe.pc) for building stage plugins.")
set(TROUPE_PACKAGE_CONTACT "Troupe developers <troupe@invalid>" CACHE STRING
    "Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT ${TROUPE_PACKAGE_CONTACT})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Pinned to the Cap'n Proto release libtroupe_runtime was built with: a plugin compiled against
# other headers would bring a second, incompatible libcapnp into the process.
string(REGEX MATCH "^([0-9]+)\\.([0-9]+)\\.([0-9]+)" capnp_version "${CapnProto_VERSION}")
math(EXPR capnp_next_patch "${CMAKE_MATCH_3} + 1")
set(capnp_next "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}.${capnp_next_patch}~")
# tzdata: the time zones of a schedule (libdate-tz reads /usr/share/zoneinfo).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libcapnp-dev (>= ${capnp_version}), libcapnp-dev (<< ${capnp_next}), \
capnproto (>= ${capnp_version}), capnproto (<< ${capnp_next}), tzdata")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "g++, cmake, pkg-config")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)

include(CPack)
