# The fake-node harness (real runc containers in kubelet-style cgroups) the
# Kubernetes end-to-end tests use; needs root, runc and busybox-static.
add_test(NAME kubenode_harness
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_kubenode.py)
set_tests_properties(kubenode_harness PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE)
