# The kernel memory ledger of kmon-aggregate and its memory cgroup reader;
# the /metrics text it writes must pass promtool.
add_executable(test_ledger ${CMAKE_CURRENT_LIST_DIR}/test_ledger.c)
target_compile_definitions(test_ledger PRIVATE KMON_FIXTURES="${KMON_FIXTURES}")
target_sources(test_ledger PRIVATE ${CMAKE_SOURCE_DIR}/consumers/top/toptable.c)
target_include_directories(test_ledger PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(test_ledger PRIVATE kmon_aggtable kmon_ledger PkgConfig::CMOCKA)
add_test(NAME unit_ledger COMMAND test_ledger ${CMAKE_CURRENT_BINARY_DIR}/ledger-metrics.txt)
set_tests_properties(unit_ledger PROPERTIES LABELS unit FIXTURES_SETUP ledger_metrics)
find_program(KMON_PROMTOOL promtool)
if(KMON_PROMTOOL)
  add_test(NAME unit_ledger_promtool COMMAND sh -c
           "${KMON_PROMTOOL} check metrics < ${CMAKE_CURRENT_BINARY_DIR}/ledger-metrics.txt && ${KMON_PROMTOOL} check metrics < ${CMAKE_CURRENT_BINARY_DIR}/ledger-metrics.txt.memcg")
  set_tests_properties(unit_ledger_promtool PROPERTIES LABELS unit FIXTURES_REQUIRED ledger_metrics)
endif()
