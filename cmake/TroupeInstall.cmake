# What `cmake --install build [--prefix P]` puts into the prefix, all of it relocatable (nothing
# below names the build tree or the source tree; the prefix may move after installing):
#
#   bin/troupe, bin/troupectl               find lib/ through RUNPATH $ORIGIN/../lib
#   lib/libtroupe_runtime.so.<ver>          SONAME libtroupe_runtime.so.<SOVERSION>, + the .so link
#   lib/troupe/plugins/                     stage plugins; troupe searches it (config/plugins.cpp)
#   include/troupe/*.hpp                    the public stage API
#   lib/cmake/Troupe/                       find_package(Troupe): Troupe::runtime, troupe_add_plugin
#   lib/pkgconfig/troupe.pc                 pkg-config --cflags --libs troupe
#
# (lib/ is CMAKE_INSTALL_LIBDIR.) The public headers include Cap'n Proto's and nothing generated,
# so the headers are installed as they are in the source tree.
include(CMakePackageConfigHelpers)

set(TROUPE_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Troupe)

file(RELATIVE_PATH troupe_lib_from_bin ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
set_target_properties(troupe troupectl PROPERTIES INSTALL_RPATH "$ORIGIN/${troupe_lib_from_bin}")

install(TARGETS troupe troupectl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS troupe_runtime EXPORT TroupeTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/troupe
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
# The folder exists from the start, so an installed troupe's error message about a plugin it did
# not find names a folder that is there to put plugins into.
install(DIRECTORY DESTINATION ${TROUPE_PLUGIN_INSTALL_DIR})

# The CMake package.
install(EXPORT TroupeTargets NAMESPACE Troupe:: DESTINATION ${TROUPE_CMAKE_INSTALL_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/TroupeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/TroupeConfig.cmake
  INSTALL_DESTINATION ${TROUPE_CMAKE_INSTALL_DIR}
  PATH_VARS TROUPE_PLUGIN_INSTALL_DIR)
# 0.x: a minor release may break the stage API (see TROUPE_SOVERSION in runtime/CMakeLists.txt).
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(troupe_compatibility SameMinorVersion)
else()
  set(troupe_compatibility SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/TroupeConfigVersion.cmake
  COMPATIBILITY ${troupe_compatibility})
install(FILES
  ${PROJECT_BINARY_DIR}/cmake/TroupeConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/TroupeConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/TroupePlugin.cmake
  DESTINATION ${TROUPE_CMAKE_INSTALL_DIR})

# The pkg-config file finds the prefix from its own location (${pcfiledir}).
file(RELATIVE_PATH troupe_prefix_from_pc ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig
     ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" troupe_prefix_from_pc "${troupe_prefix_from_pc}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/troupe.pc.in ${PROJECT_BINARY_DIR}/cmake/troupe.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cmake/troupe.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
