# Issue 13, defect 5: a slowloris flood of the probe address (real agent,
# real sockets from several loopback addresses); probes keep answering.
add_test(NAME health_dos_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_health_dos.py)
set_tests_properties(health_dos_integration PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>")
