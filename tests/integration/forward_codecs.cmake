# kmon-forward's HTTP codecs (gzip via libdeflate, zstd, none) decoded by the
# real libraries, and against the real ClickHouse (issue 18).
add_test(NAME forward_codecs_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_forward_codecs.py)
set_tests_properties(forward_codecs_integration PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
