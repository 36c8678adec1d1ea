# libkmon, the consumer SDK: shared (SONAME libkmon.so.0) and static, with
# headers under include/kmon/ and a pkg-config file. Built from the sources
# (not from kmon_client) because a shared library needs position-independent
# objects; a version script keeps the ring and protocol internals private.
include(GNUInstallDirs)
set(KMON_SDK_SOURCES ${CMAKE_CURRENT_LIST_DIR}/client.c ${CMAKE_CURRENT_LIST_DIR}/reader.c
    ${PROJECT_SOURCE_DIR}/shm/ring.c ${PROJECT_SOURCE_DIR}/shm/proto.c
    ${PROJECT_SOURCE_DIR}/shm/symtab.c
    ${PROJECT_SOURCE_DIR}/bpf/event_util.c)

add_library(kmon SHARED ${KMON_SDK_SOURCES})
set_target_properties(kmon PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION 0
                      LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/libkmon.map)
target_link_options(kmon PRIVATE -Wl,--version-script=${CMAKE_CURRENT_LIST_DIR}/libkmon.map)
# Every symbol resolved at link time, except in sanitizer builds: there the
# sanitizer runtime comes from the program that loads the library.
if(NOT KMON_SANITIZE)
  target_link_options(kmon PRIVATE -Wl,--no-undefined)
endif()
target_link_libraries(kmon PRIVATE PkgConfig::LIBUV)

add_library(kmon_sdk_static STATIC ${KMON_SDK_SOURCES})
set_target_properties(kmon_sdk_static PROPERTIES OUTPUT_NAME kmon)
target_link_libraries(kmon_sdk_static PUBLIC PkgConfig::LIBUV)

# The installed headers name each other as <kmon/...>; in the tree they are
# "bpf/..." and "consumers/...". One rewrite at configure time keeps a single
# source for each header.
set(KMON_SDK_INC ${CMAKE_CURRENT_BINARY_DIR}/sdk-include)
function(kmon_sdk_header src dst)
  file(READ ${src} text)
  string(REPLACE "#include \"bpf/kmon_event.h\"" "#include <kmon/kmon_event.h>" text "${text}")
  string(REPLACE "#include \"consumers/client.h\"" "#include <kmon/client.h>" text "${text}")
  string(REPLACE "#include \"consumers/reader.h\"" "#include <kmon/reader.h>" text "${text}")
  string(REPLACE "#include \"bpf/event_util.h\"" "#include <kmon/event_util.h>" text "${text}")
  string(REPLACE "#include \"shm/meta.h\"" "#include <kmon/meta.h>" text "${text}")
  file(CONFIGURE OUTPUT ${KMON_SDK_INC}/kmon/${dst} CONTENT "${text}" @ONLY)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
endfunction()
kmon_sdk_header(${PROJECT_SOURCE_DIR}/bpf/kmon_event.h kmon_event.h)
kmon_sdk_header(${PROJECT_SOURCE_DIR}/bpf/event_util.h event_util.h)
kmon_sdk_header(${PROJECT_SOURCE_DIR}/shm/meta.h meta.h)
kmon_sdk_header(${CMAKE_CURRENT_LIST_DIR}/client.h client.h)
kmon_sdk_header(${CMAKE_CURRENT_LIST_DIR}/reader.h reader.h)
kmon_sdk_header(${CMAKE_CURRENT_LIST_DIR}/kmon.h kmon.h)
configure_file(${CMAKE_CURRENT_LIST_DIR}/kmon.pc.in ${CMAKE_CURRENT_BINARY_DIR}/kmon.pc @ONLY)

install(TARGETS kmon kmon_sdk_static
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${KMON_SDK_INC}/kmon DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kmon.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The .pc file finds the prefix from its own place: two levels below it.
if(IS_ABSOLUTE ${CMAKE_INSTALL_LIBDIR} OR CMAKE_INSTALL_LIBDIR MATCHES "/.*/")
  message(FATAL_ERROR "kmon.pc assumes CMAKE_INSTALL_LIBDIR is one level (lib, lib64)")
endif()
install(FILES ${PROJECT_SOURCE_DIR}/consumers/PROTOCOL.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
