# kmon-forward against an HTTP sink whose answers are hostile (bodies on
# stdout, forged log lines, size).
add_test(NAME forward_sink_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_forward_sink.py)
set_tests_properties(forward_sink_integration PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
