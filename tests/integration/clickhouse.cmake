# ClickHouse for a whole cluster: the shipped schema, 8 forwards into the real
# clickhouse-server from Debian, the README's queries checked.
add_test(NAME clickhouse_cluster
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_clickhouse.py)
set_tests_properties(clickhouse_cluster PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
