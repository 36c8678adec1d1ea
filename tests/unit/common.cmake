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

# Writing a whole buffer to a descriptor, through a real pipe.
add_executable(test_fdio ${CMAKE_CURRENT_LIST_DIR}/test_fdio.c)
target_link_libraries(test_fdio PRIVATE kmon_fdio PkgConfig::CMOCKA Threads::Threads)
add_test(NAME unit_fdio COMMAND test_fdio)
set_tests_properties(unit_fdio PROPERTIES LABELS unit)

# The event JSON encoder against the one it replaced, byte for byte
# (tests/support/event_json_ref.c is that old encoder, kept as the reference).
include(${CMAKE_SOURCE_DIR}/tests/support/event_json_ref.cmake)
add_executable(test_event_json ${CMAKE_CURRENT_LIST_DIR}/test_event_json.c)
target_compile_definitions(test_event_json PRIVATE KMON_FIXTURES="${KMON_FIXTURES}")
target_link_libraries(test_event_json PRIVATE kmon_event_json kmon_event_json_ref
                      PkgConfig::CJSON PkgConfig::CMOCKA)
add_test(NAME unit_event_json COMMAND test_event_json)
set_tests_properties(unit_event_json PROPERTIES LABELS unit)

# Layering (README "Layering"): no lower layer includes a higher one; the
# self-test plants one offence per rule and expects each to be caught.
add_test(NAME unit_layering COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/layering.py
         ${CMAKE_SOURCE_DIR})
add_test(NAME unit_layering_selftest
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/layering.py --self-test)
set_tests_properties(unit_layering unit_layering_selftest PROPERTIES LABELS unit)
