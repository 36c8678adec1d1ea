# The memory ledger's kernel side on the real kernel (runc containers, a
# stand-in kubelet, kmon-forward): slab cache names, frees charged to their
# owner from another process and from RCU, an annotated oom_kill.
add_test(NAME ledger_kernel
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_ledger_kernel.py
                 LedgerKernel.test_slab_cache_names_and_no_double_count
                 LedgerKernel.test_free_by_another_process_is_charged_to_owner
                 LedgerKernel.test_rcu_freed_dentries_are_matched
                 LedgerKernel.test_oom_kill_event)
# A leak-free container's outstanding bytes stay flat over 30 s.
add_test(NAME ledger_noleak
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_ledger_kernel.py
                 LedgerKernel.test_no_leak_stays_flat)
set_tests_properties(ledger_kernel ledger_noleak PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
