# Issue 13 defect 4: a PodList with a tenant's oversized pods next to a
# normal pod; the real agent keeps annotating and counts what it skipped.
add_test(NAME podlist_attack_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_podlist_attack.py)
set_tests_properties(podlist_attack_integration PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
