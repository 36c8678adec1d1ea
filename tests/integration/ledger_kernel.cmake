# The memory ledger's kernel side on the real kernel: slab cache names, frees
# charged to their owner from any context, a leak-free container staying
# flat, an annotated oom_kill (runc containers, stand-in kubelet).
add_test(NAME ledger_kernel
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_ledger_kernel.py)
set_tests_properties(ledger_kernel PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
