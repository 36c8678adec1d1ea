# The cluster variant (charts/clickhouse/cluster.sql) on a real cluster:
# ZooKeeper and two clickhouse-server shards from Debian, 8 forwards into the
# Distributed table through both servers.
add_test(NAME clickhouse_distributed
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_clickhouse_distributed.py)
set_tests_properties(clickhouse_distributed PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
