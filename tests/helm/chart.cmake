# Chart checks: helm lint --strict + helm template with each toggle, and
# assertions on the rendered YAML. helm comes from PATH (.ci/deps --tests
# installs it) or $HELM; a missing helm fails the test, never skips it.
add_test(NAME helm_chart
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_chart.py
                 ${CMAKE_SOURCE_DIR}/charts/kmon)
set_tests_properties(helm_chart PROPERTIES LABELS helm TIMEOUT 300)
