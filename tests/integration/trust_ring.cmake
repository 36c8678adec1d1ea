# Issue 13: attacks on the rings and the control socket, on the real kernel.
add_test(NAME trust_ring_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_trust_ring.py)
set_tests_properties(trust_ring_integration PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_TESTCONSUMER=$<TARGET_FILE:testconsumer>;KMON_FLOOD=$<TARGET_FILE:kmalloc_flood>")
