# The OTLP logs encoder of kmon-forward (consumers/forward/otlp.c).
add_executable(test_otlp ${CMAKE_CURRENT_LIST_DIR}/test_otlp.c)
target_link_libraries(test_otlp PRIVATE kmon_otlp PkgConfig::CJSON PkgConfig::CMOCKA)
target_include_directories(test_otlp PRIVATE ${PROJECT_SOURCE_DIR})
add_test(NAME unit_otlp COMMAND test_otlp)
set_tests_properties(unit_otlp PROPERTIES LABELS unit)
