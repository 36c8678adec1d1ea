# The OTLP logs encoder of kmon-forward (consumers/otlp.c).
add_executable(test_otlp ${CMAKE_CURRENT_LIST_DIR}/test_otlp.c)
target_link_libraries(test_otlp PRIVATE kmon_consumer_fmt PkgConfig::CJSON PkgConfig::CMOCKA)
add_test(NAME unit_otlp COMMAND test_otlp)
set_tests_properties(unit_otlp PROPERTIES LABELS unit)
