add_test(NAME quickstart_runtime_only
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_quickstart.py)
set_tests_properties(quickstart_runtime_only PROPERTIES LABELS "unit" TIMEOUT 600)
