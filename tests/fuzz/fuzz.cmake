# libFuzzer targets (clang, with KMON_FUZZ=ON and usually KMON_SANITIZE=ON),
# each run for a bounded time in CI on a copy of its seed corpus.
if(KMON_FUZZ)
  set(KMON_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzzer runs in ctest")
  function(kmon_fuzzer name src corpus)
    add_executable(${name} ${src})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE ${ARGN})
    add_test(NAME ${name}
             COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                     sh -c "rm -rf ${name}.corpus && cp -r ${corpus} ${name}.corpus && \
exec $<TARGET_FILE:${name}> -max_total_time=${KMON_FUZZ_SECONDS} -rss_limit_mb=2048 \
-max_len=65536 ${name}.corpus")
    set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 300)
  endfunction()
  set(C ${CMAKE_CURRENT_LIST_DIR}/corpus)
  kmon_fuzzer(fuzz_cgroup ${CMAKE_CURRENT_LIST_DIR}/fuzz_cgroup.c ${C}/cgroup kmon_k8s_cgroup)
  kmon_fuzzer(fuzz_podlist ${CMAKE_CURRENT_LIST_DIR}/fuzz_podlist.c ${C}/podlist kmon_k8s_kubelet)
  kmon_fuzzer(fuzz_hello ${CMAKE_CURRENT_LIST_DIR}/fuzz_hello.c ${C}/hello kmon_shm)
  kmon_fuzzer(fuzz_event ${CMAKE_CURRENT_LIST_DIR}/fuzz_event.c ${C}/event kmon_event_json
              PkgConfig::CJSON)
endif()
