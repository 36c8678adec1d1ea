# comm/filename bytes a tenant chooses, through the real kernel and the agent's
# --print (the one event encoder), and the 63-byte filename boundary.
add_test(NAME exec_names_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_exec_names.py)
set_tests_properties(exec_names_integration PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>")
