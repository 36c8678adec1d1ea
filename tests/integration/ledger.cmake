# The memory ledger of kmon-aggregate on the real kernel: a pod holding kernel
# memory against its memory cgroup, exit and charge-back, expiry, OOM kills.
add_test(NAME ledger_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_ledger.py)
set_tests_properties(ledger_integration PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_AGGREGATE=$<TARGET_FILE:kmon-aggregate>")
