add_test(NAME hardening_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_hardening.py)
set_tests_properties(hardening_integration PROPERTIES
  LABELS integration TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>;KMON_AGGREGATE=$<TARGET_FILE:kmon-aggregate>;KMON_TESTCONSUMER=$<TARGET_FILE:testconsumer>;KMON_FLOOD=$<TARGET_FILE:kmalloc_flood>")
