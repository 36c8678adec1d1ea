# The shm ring across two processes, and the agent's fan-out with real
# consumers (as user nobody) on real BPF events.
add_executable(ring_twoproc ${CMAKE_CURRENT_LIST_DIR}/ring_twoproc.c)
target_link_libraries(ring_twoproc PRIVATE kmon_shm)
add_test(NAME ring_two_process_10M COMMAND ring_twoproc check 10000000 92)
add_test(NAME ring_two_process_sleep COMMAND ring_twoproc check 2000000 240 sleep)
set_tests_properties(ring_two_process_10M ring_two_process_sleep PROPERTIES
  LABELS integration TIMEOUT 600)

add_executable(testconsumer ${CMAKE_CURRENT_LIST_DIR}/testconsumer.c)
target_link_libraries(testconsumer PRIVATE kmon_client)
