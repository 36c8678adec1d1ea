# The consumer client library and the two programs.
add_library(kmon_client STATIC ${CMAKE_CURRENT_LIST_DIR}/client.c)
target_link_libraries(kmon_client PUBLIC kmon_shm PkgConfig::LIBUV)

add_executable(kmon-forward ${CMAKE_CURRENT_LIST_DIR}/forward.c
               ${CMAKE_CURRENT_LIST_DIR}/file_sink.c ${CMAKE_CURRENT_LIST_DIR}/http_sink.c)
target_link_libraries(kmon-forward PRIVATE kmon_client kmon_consumer_fmt kmon_event
                      PkgConfig::LIBCURL PkgConfig::ZLIB PkgConfig::LIBUV Threads::Threads)
target_compile_definitions(kmon-forward PRIVATE KMON_VERSION="${KMON_VERSION_STRING}")
install(TARGETS kmon-forward RUNTIME DESTINATION bin)

add_executable(kmon-aggregate ${CMAKE_CURRENT_LIST_DIR}/aggregate.c)
target_link_libraries(kmon-aggregate PRIVATE kmon_client kmon_consumer_fmt kmon_event
                      PkgConfig::MHD PkgConfig::LIBUV)
install(TARGETS kmon-aggregate RUNTIME DESTINATION bin)

# kmon-top: the live terminal view (ncursesw).
pkg_check_modules(NCURSESW REQUIRED IMPORTED_TARGET ncursesw)
add_executable(kmon-top ${CMAKE_CURRENT_LIST_DIR}/top.c ${CMAKE_CURRENT_LIST_DIR}/toptable.c)
target_link_libraries(kmon-top PRIVATE kmon_client kmon_event PkgConfig::NCURSESW
                      PkgConfig::LIBCURL PkgConfig::CJSON PkgConfig::LIBUV)
install(TARGETS kmon-top RUNTIME DESTINATION bin)
