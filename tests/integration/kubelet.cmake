add_test(NAME kubelet_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_kubelet.py)
set_tests_properties(kubelet_integration PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>")

# The client library alone, through a small driver, against the stand-in.
add_executable(kubelet_get ${CMAKE_CURRENT_LIST_DIR}/kubelet_get.c)
target_link_libraries(kubelet_get PRIVATE kmon_k8s_kubelet)
add_test(NAME kubelet_client
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_kubelet_client.py)
set_tests_properties(kubelet_client PROPERTIES
  LABELS integration TIMEOUT 300
  ENVIRONMENT "KMON_KUBELET_GET=$<TARGET_FILE:kubelet_get>")
