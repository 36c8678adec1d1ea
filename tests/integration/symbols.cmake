# Names, not addresses: no kernel address reaches a consumer by default,
# call sites resolve like kallsyms, kptr_restrict=2, --raw-kernel-addresses.
add_test(NAME symbols_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_symbols.py)
set_tests_properties(symbols_integration PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
