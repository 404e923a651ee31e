# Finds the four libraries with pkg-config and checks their minimum versions.
# A missing or too old library stops the configure with the Debian package to
# install, so a version mismatch never surfaces as a crash at run time.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install it with 'apt-get install pkg-config'")
endif()

# tc_require(<var> <what> <debian package> <pkg-config module spec>...)
# Tries each module spec in turn (for libraries whose .pc name changed).
function(tc_require var what package)
  foreach(spec IN LISTS ARGN)
    string(REGEX REPLACE "[<>=].*$" "" module "${spec}")
    pkg_check_modules(${var} QUIET IMPORTED_TARGET GLOBAL "${spec}")
    if(${var}_FOUND)
      message(STATUS "taskcast: ${what} ${${var}_VERSION} (pkg-config ${module})")
      return()
    endif()
    pkg_check_modules(${var}_ANY QUIET "${module}")
    if(${var}_ANY_FOUND)
      message(FATAL_ERROR
        "${what} ${${var}_ANY_VERSION} is too old: taskcast needs ${spec}. "
        "Install a newer one with 'apt-get install ${package}'.")
    endif()
  endforeach()
  message(FATAL_ERROR
    "${what} not found (pkg-config: ${ARGN}). Install it with 'apt-get install ${package}'.")
endfunction()

tc_require(ZMQ     "libzmq"         "libzmq3-dev"       "libzmq>=4.3")
tc_require(LWS     "libwebsockets"  "libwebsockets-dev libcap-dev" "libwebsockets>=4.1")
tc_require(SODIUM  "libsodium"      "libsodium-dev"     "libsodium>=1.0.18")
tc_require(MSGPACK "msgpack-c"      "libmsgpack-dev"    "msgpack-c>=3.0" "msgpack>=3.0")

# Minimum versions, also checked at run time against the shared libraries
# actually loaded (common/version.c).
set(TC_MIN_DEFS TC_MIN_ZMQ=40300 TC_MIN_LWS=40100 TC_MIN_SODIUM=10018 TC_MIN_MSGPACK=30000)

# libev: the gateway's event loop (epoll). Debian ships no pkg-config file
# for it. libwebsockets joins the same loop through its libev plugin, which
# it loads at run time (package libwebsockets-evlib-ev).
find_path(TC_EV_INCLUDE_DIR ev.h)
find_library(TC_EV_LIBRARY ev)
if(NOT TC_EV_INCLUDE_DIR OR NOT TC_EV_LIBRARY)
  message(FATAL_ERROR
    "libev not found. Install it with 'apt-get install libev-dev libwebsockets-evlib-ev'.")
endif()
add_library(tc_libev INTERFACE)
target_include_directories(tc_libev SYSTEM INTERFACE ${TC_EV_INCLUDE_DIR})
target_link_libraries(tc_libev INTERFACE ${TC_EV_LIBRARY})
