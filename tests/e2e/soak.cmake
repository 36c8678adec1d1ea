# The soak runs about 10 minutes (KMON_SOAK_SECONDS); in the sanitizer build
# in CI. Longer on demand: KMON_SOAK_SECONDS=3600 ctest -R e2e_soak.
add_test(NAME e2e_soak COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_soak.py)
set_tests_properties(e2e_soak PROPERTIES
  LABELS "e2e;soak" TIMEOUT 2400 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>;KMON_TESTCONSUMER=$<TARGET_FILE:testconsumer>")
