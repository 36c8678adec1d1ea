add_executable(test_event_util ${CMAKE_CURRENT_LIST_DIR}/test_event_util.c)
target_link_libraries(test_event_util PRIVATE kmon_event PkgConfig::CMOCKA)
add_test(NAME unit_event_util COMMAND test_event_util)
set_tests_properties(unit_event_util PROPERTIES LABELS unit)
