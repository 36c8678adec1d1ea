add_executable(test_event_util ${CMAKE_CURRENT_LIST_DIR}/test_event_util.c)
target_link_libraries(test_event_util PRIVATE kmon_event PkgConfig::CMOCKA)
add_test(NAME unit_event_util COMMAND test_event_util)
set_tests_properties(unit_event_util PROPERTIES LABELS unit)

add_executable(test_agent_options ${CMAKE_CURRENT_LIST_DIR}/test_agent_options.c)
target_link_libraries(test_agent_options PRIVATE kmon_agent_options PkgConfig::CMOCKA)
add_test(NAME unit_agent_options COMMAND test_agent_options)
set_tests_properties(unit_agent_options PROPERTIES LABELS unit)

add_executable(test_pidset ${CMAKE_CURRENT_LIST_DIR}/test_pidset.c ${CMAKE_SOURCE_DIR}/agent/pidset.c)
target_link_libraries(test_pidset PRIVATE PkgConfig::CMOCKA)
add_test(NAME unit_pidset COMMAND test_pidset)
set_tests_properties(unit_pidset PROPERTIES LABELS unit)
