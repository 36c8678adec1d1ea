# Names, not addresses: the agent's symbol table, the consumers' parser, the
# address masking and the encoder's names (issue 15 items 3-4).
add_executable(test_symbols ${CMAKE_CURRENT_LIST_DIR}/test_symbols.c
               ${CMAKE_SOURCE_DIR}/agent/ksyms.c ${CMAKE_SOURCE_DIR}/agent/addrmask.c)
target_compile_definitions(test_symbols PRIVATE KMON_FIXTURES="${KMON_FIXTURES}")
target_include_directories(test_symbols PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(test_symbols PRIVATE ksyms_iter_skel kmon_shm kmon_event_json kmon_log
                      PkgConfig::SODIUM PkgConfig::LIBBPF PkgConfig::CMOCKA)
add_test(NAME unit_symbols COMMAND test_symbols)
set_tests_properties(unit_symbols PROPERTIES LABELS unit)
