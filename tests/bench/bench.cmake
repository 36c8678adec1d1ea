# Benchmarks: not pass/fail on time; they print ratios against baselines run
# side by side. CI runs the short version (ctest -L bench) so they cannot rot.
kmon_bpf_object(baseline ${CMAKE_CURRENT_LIST_DIR}/baseline.bpf.c)
add_executable(bench_probe ${CMAKE_CURRENT_LIST_DIR}/bench_probe.c)
target_include_directories(bench_probe PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(bench_probe PRIVATE baseline_skel PkgConfig::LIBBPF)

add_executable(bench_podlist ${CMAKE_CURRENT_LIST_DIR}/bench_podlist.c)
target_link_libraries(bench_podlist PRIVATE kmon_k8s_kubelet)

add_test(NAME bench_short
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/run_bench.py --short
                 --out ${CMAKE_BINARY_DIR}/bench-results.json)
set_tests_properties(bench_short PROPERTIES LABELS bench TIMEOUT 1800 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_BUILD=${CMAKE_BINARY_DIR}")

add_executable(bench_micro ${CMAKE_CURRENT_LIST_DIR}/bench_micro.c)
include(${CMAKE_SOURCE_DIR}/tests/support/event_json_ref.cmake)
target_link_libraries(bench_micro PRIVATE kmon_event_json kmon_aggtable kmon_event_json_ref
                      kmon_compress PkgConfig::ZLIB)

add_executable(bench_bare_reader ${CMAKE_CURRENT_LIST_DIR}/bench_bare_reader.c
               ${CMAKE_SOURCE_DIR}/agent/loader.c)
target_link_libraries(bench_bare_reader PRIVATE kernel_monitor_skel kmon_event kmon_log
                      PkgConfig::LIBBPF)

# The fan-out alone: compiled from the agent's own source, driven in-process.
add_executable(bench_fanout ${CMAKE_CURRENT_LIST_DIR}/bench_fanout.c
               ${CMAKE_SOURCE_DIR}/agent/fanout.c)
target_link_libraries(bench_fanout PRIVATE kmon_shm kmon_event Threads::Threads)

add_test(NAME bench_python
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/bench_python.py --short)
set_tests_properties(bench_python PROPERTIES LABELS bench TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_BUILD=${CMAKE_BINARY_DIR}")
# A scan's re-assertion of the PID map: batched against one syscall each.
add_executable(bench_pidmap ${CMAKE_CURRENT_LIST_DIR}/bench_pidmap.c)
target_link_libraries(bench_pidmap PRIVATE PkgConfig::LIBBPF)
# The memory ledger's slab-heavy workload (file create/unlink in a tmpfs).
add_executable(bench_slab_flood ${CMAKE_CURRENT_LIST_DIR}/bench_slab_flood.c)

# Hiding kernel addresses (issue 15 item 4): the drain's per-event cost of
# addrmask__apply vs the record copy alone, and JSON with names vs hex.
add_executable(bench_addrmask ${CMAKE_CURRENT_LIST_DIR}/bench_addrmask.c)
target_link_libraries(bench_addrmask PRIVATE kmon_agent_core kmon_event_json)
# The README region's generator (no timing: a unit test of the report).
add_test(NAME unit_bench_report COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_report.py)
set_tests_properties(unit_bench_report PROPERTIES LABELS unit)
