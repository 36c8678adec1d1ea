# The client library's handle lifecycle under valgrind: libuv's own reads of a
# freed handle are invisible to ASan (libuv is not instrumented), so this test
# runs a consumer built WITHOUT sanitizers (valgrind and ASan do not mix) under
# valgrind, in every build type.
add_executable(testconsumer_vg ${CMAKE_CURRENT_LIST_DIR}/testconsumer.c
               ${CMAKE_SOURCE_DIR}/consumers/lib/client.c ${CMAKE_SOURCE_DIR}/shm/ring.c
               ${CMAKE_SOURCE_DIR}/shm/memfd.c ${CMAKE_SOURCE_DIR}/shm/history.c
               ${CMAKE_SOURCE_DIR}/shm/proto.c ${CMAKE_SOURCE_DIR}/shm/symtab.c
               ${CMAKE_SOURCE_DIR}/shm/err.c)
target_include_directories(testconsumer_vg PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(testconsumer_vg PRIVATE PkgConfig::LIBUV)
foreach(prop COMPILE_OPTIONS LINK_OPTIONS)
  get_target_property(kmon_vg_opts testconsumer_vg ${prop})
  if(kmon_vg_opts)
    list(FILTER kmon_vg_opts EXCLUDE REGEX "^-fsanitize|^-fno-sanitize")
    set_target_properties(testconsumer_vg PROPERTIES ${prop} "${kmon_vg_opts}")
  endif()
endforeach()
# DWARF 4: the valgrind of Debian 12 (3.19) cannot read clang's default DWARF 5.
target_compile_options(testconsumer_vg PRIVATE -g -gdwarf-4 -O1)

find_program(KMON_VALGRIND valgrind)
add_test(NAME client_lifecycle_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_client_lifecycle.py)
set_tests_properties(client_lifecycle_integration PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_TESTCONSUMER_VG=$<TARGET_FILE:testconsumer_vg>;KMON_VALGRIND=${KMON_VALGRIND}")
