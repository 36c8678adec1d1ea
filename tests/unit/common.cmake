# The shared layer's encoders (and kmon-aggregate's table, which renders
# through the metrics writer).
add_executable(test_fmt ${CMAKE_CURRENT_LIST_DIR}/test_fmt.c)
target_link_libraries(test_fmt PRIVATE kmon_event_json kmon_metrics_text kmon_aggtable
                      PkgConfig::CJSON PkgConfig::CMOCKA)
add_test(NAME unit_fmt COMMAND test_fmt)
set_tests_properties(unit_fmt PROPERTIES LABELS unit)

add_executable(test_parse ${CMAKE_CURRENT_LIST_DIR}/test_parse.c)
target_link_libraries(test_parse PRIVATE kmon_parse kmon_err PkgConfig::CMOCKA)
add_test(NAME unit_parse COMMAND test_parse)
set_tests_properties(unit_parse PROPERTIES LABELS unit)
