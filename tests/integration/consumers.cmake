# The consumers against the real ClickHouse and Prometheus servers.
add_test(NAME consumers_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_consumers.py)
set_tests_properties(consumers_integration PROPERTIES
  LABELS integration TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>;KMON_AGGREGATE=$<TARGET_FILE:kmon-aggregate>")
