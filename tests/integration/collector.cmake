# Root tests on the real kernel: they load BPF for real and must not skip.
add_test(NAME collector_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_collector.py)
set_tests_properties(collector_integration PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>")

add_executable(kmalloc_flood ${CMAKE_CURRENT_LIST_DIR}/kmalloc_flood.c)
target_link_libraries(kmalloc_flood PRIVATE Threads::Threads)
set_property(TEST collector_integration APPEND PROPERTY
  ENVIRONMENT "KMON_FLOOD=$<TARGET_FILE:kmalloc_flood>")
