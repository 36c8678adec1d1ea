# kmon-top in a real terminal (tmux) against real runc pods.
add_test(NAME top_tmux COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_top.py)
set_tests_properties(top_tmux PROPERTIES LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_TOP=$<TARGET_FILE:kmon-top>")
