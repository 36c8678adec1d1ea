# A node as users run kmon on it: real runc containers in kubelet-style
# cgroups, a TLS stand-in kubelet, the agent and kmon-forward as nobody.
add_test(NAME e2e_node COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_node.py)
set_tests_properties(e2e_node PROPERTIES
  LABELS e2e TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
