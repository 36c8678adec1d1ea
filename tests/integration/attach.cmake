# Consumers attaching with history replay under a flood, and /metrics with
# more than 64 consumers (issue 13): real agent, real kernel, real consumers.
add_test(NAME attach_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_attach.py)
set_tests_properties(attach_integration PROPERTIES
  LABELS integration TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FLOOD=$<TARGET_FILE:kmalloc_flood>;KMON_TESTCONSUMER=$<TARGET_FILE:testconsumer>")
