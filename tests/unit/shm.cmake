add_executable(test_ring ${CMAKE_CURRENT_LIST_DIR}/test_ring.c)
target_link_libraries(test_ring PRIVATE kmon_shm PkgConfig::CMOCKA)
add_test(NAME unit_ring COMMAND test_ring)
set_tests_properties(unit_ring PROPERTIES LABELS unit)

add_executable(test_history ${CMAKE_CURRENT_LIST_DIR}/test_history.c)
target_link_libraries(test_history PRIVATE kmon_shm kmon_err PkgConfig::CMOCKA Threads::Threads)
add_test(NAME unit_history COMMAND test_history)
set_tests_properties(unit_history PROPERTIES LABELS unit)
