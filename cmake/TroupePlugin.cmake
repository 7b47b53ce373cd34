# troupe_add_plugin: builds a stage plugin, libtroupe_<name>.so, which an app loads by listing
# <name> under `plugins:` (runtime/CONFIG.md, "plugins"). One definition, used by this
# repository's own apps and tests and, through the installed CMake package (find_package(Troupe)),
# by projects outside it.
#
#   troupe_add_plugin(<name> SOURCES a.cpp ... [SCHEMAS x.capnp ...] [NO_INSTALL])
#
# SCHEMAS are compiled with capnp into the plugin; their generated headers (x.capnp.h) are on its
# include path. The plugin links Troupe::runtime, which brings the public stage API's headers and
# C++17.
#
# Where the .so is built: ${TROUPE_PLUGIN_OUTPUT_DIR} when that is set (this repository sets it
# to build/plugins, where build/bin/troupe looks), else the current binary directory.
# Where it is installed, unless NO_INSTALL: ${TROUPE_PLUGIN_INSTALL_DIR} under the installing
# project's prefix, the folder an installed troupe in that same prefix searches.
#
# Needs CapnProto (its capnp_generate_cpp) and the target Troupe::runtime to exist.
function(troupe_add_plugin name)
  cmake_parse_arguments(PLUGIN "NO_INSTALL" "" "SOURCES;SCHEMAS" ${ARGN})
  if(PLUGIN_UNPARSED_ARGUMENTS)
    string(REPLACE ";" " " unexpected "${PLUGIN_UNPARSED_ARGUMENTS}")
    message(FATAL_ERROR "troupe_add_plugin(${name}): unexpected arguments '${unexpected}' "
                        "(expected SOURCES, SCHEMAS, NO_INSTALL)")
  endif()
  if(NOT PLUGIN_SOURCES)
    message(FATAL_ERROR "troupe_add_plugin(${name}): no SOURCES given")
  endif()
  if(NOT name MATCHES "^[A-Za-z0-9_.-]+$")
    message(FATAL_ERROR "troupe_add_plugin(${name}): a plugin name is made of letters, digits, "
                        "'_', '.' and '-' (the YAML names it so)")
  endif()

  set(generated)
  if(PLUGIN_SCHEMAS)
    set(CAPNPC_SRC_PREFIX ${CMAKE_CURRENT_SOURCE_DIR})
    set(CAPNPC_OUTPUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/troupe_${name}_gen)
    file(MAKE_DIRECTORY ${CAPNPC_OUTPUT_DIR})
    capnp_generate_cpp(generated generated_headers ${PLUGIN_SCHEMAS})
  endif()

  add_library(troupe_${name} MODULE ${PLUGIN_SOURCES} ${generated})
  # A MODULE is named lib<target>.so on Linux already; PREFIX says so for any platform default.
  set_target_properties(troupe_${name} PROPERTIES PREFIX "lib")
  if(TROUPE_PLUGIN_OUTPUT_DIR)
    set_target_properties(troupe_${name} PROPERTIES
      LIBRARY_OUTPUT_DIRECTORY ${TROUPE_PLUGIN_OUTPUT_DIR})
  endif()
  target_include_directories(troupe_${name} PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/troupe_${name}_gen)
  target_link_libraries(troupe_${name} PRIVATE Troupe::runtime CapnProto::capnp)

  if(NOT PLUGIN_NO_INSTALL)
    install(TARGETS troupe_${name} LIBRARY DESTINATION ${TROUPE_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
