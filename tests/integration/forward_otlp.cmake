# kmon-forward's OTLP/HTTP logs output against a receiver that decodes with
# the OpenTelemetry JavaScript packages (installed from npm into the build tree).
add_test(NAME forward_otlp_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_forward_otlp.py)
set_tests_properties(forward_otlp_integration PROPERTIES
  LABELS integration TIMEOUT 400 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>;KMON_NPM_DIR=${CMAKE_BINARY_DIR}/npm-otlp")
