# The consumer programs' shared command line (consumers/common/cli.c).
add_executable(test_consumer_cli ${CMAKE_CURRENT_LIST_DIR}/test_consumer_cli.c)
target_link_libraries(test_consumer_cli PRIVATE kmon_consumer_cli PkgConfig::CMOCKA)
add_test(NAME unit_consumer_cli COMMAND test_consumer_cli)
set_tests_properties(unit_consumer_cli PROPERTIES LABELS unit)

# kmon-forward's gzip codecs, decoded by zlib.
add_executable(test_compress ${CMAKE_CURRENT_LIST_DIR}/test_compress.c)
target_link_libraries(test_compress PRIVATE kmon_compress PkgConfig::ZLIB PkgConfig::CMOCKA)
add_test(NAME unit_compress COMMAND test_compress)
set_tests_properties(unit_compress PROPERTIES LABELS unit)
