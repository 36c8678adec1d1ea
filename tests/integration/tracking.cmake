# No process invisible for life, no pod identity claimed (issue 13, defects
# 2 and 9): attacks by real processes in kubelet-style cgroups, against the
# real BPF programs, with a stand-in kubelet and kmon-forward as nobody.
add_executable(thread_attack ${CMAKE_CURRENT_LIST_DIR}/thread_attack.c)
target_link_libraries(thread_attack PRIVATE Threads::Threads)
add_test(NAME tracking_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_tracking.py)
set_tests_properties(tracking_integration PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>;KMON_THREAD_ATTACK=$<TARGET_FILE:thread_attack>")
