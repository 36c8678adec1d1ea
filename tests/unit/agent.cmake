add_executable(test_agent_options ${CMAKE_CURRENT_LIST_DIR}/test_agent_options.c)
target_link_libraries(test_agent_options PRIVATE kmon_agent_options PkgConfig::CMOCKA)
add_test(NAME unit_agent_options COMMAND test_agent_options)
set_tests_properties(unit_agent_options PROPERTIES LABELS unit)

add_executable(test_pidset ${CMAKE_CURRENT_LIST_DIR}/test_pidset.c)
target_link_libraries(test_pidset PRIVATE kmon_agent_core PkgConfig::CMOCKA)
add_test(NAME unit_pidset COMMAND test_pidset)
set_tests_properties(unit_pidset PROPERTIES LABELS unit)
