add_executable(test_ring ${CMAKE_CURRENT_LIST_DIR}/test_ring.c)
target_link_libraries(test_ring PRIVATE kmon_shm PkgConfig::CMOCKA)
add_test(NAME unit_ring COMMAND test_ring)
set_tests_properties(unit_ring PROPERTIES LABELS unit)

add_executable(test_fmt ${CMAKE_CURRENT_LIST_DIR}/test_fmt.c)
target_link_libraries(test_fmt PRIVATE kmon_consumer_fmt PkgConfig::CJSON PkgConfig::CMOCKA)
add_test(NAME unit_fmt COMMAND test_fmt)
set_tests_properties(unit_fmt PROPERTIES LABELS unit)

# The event JSON encoder against the one it replaced, byte for byte
# (tests/support/event_json_ref.c is that old encoder, kept as the reference).
include(${CMAKE_SOURCE_DIR}/tests/support/event_json_ref.cmake)
add_executable(test_event_json ${CMAKE_CURRENT_LIST_DIR}/test_event_json.c)
target_compile_definitions(test_event_json PRIVATE KMON_FIXTURES="${KMON_FIXTURES}")
target_link_libraries(test_event_json PRIVATE kmon_consumer_fmt kmon_event_json_ref
                      PkgConfig::CJSON PkgConfig::CMOCKA)
add_test(NAME unit_event_json COMMAND test_event_json)
set_tests_properties(unit_event_json PROPERTIES LABELS unit)
