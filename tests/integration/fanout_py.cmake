add_test(NAME fanout_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_fanout.py)
set_tests_properties(fanout_integration PROPERTIES
  LABELS integration TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FLOOD=$<TARGET_FILE:kmalloc_flood>;KMON_TESTCONSUMER=$<TARGET_FILE:testconsumer>")
