# Real container engines (Docker, containerd + ctr, podman) on private state,
# with containers in the kubelet's cgroups; processes entering them tracked
# by the kernel's cgroup map (issue 14 §3, §4).
add_test(NAME e2e_engines COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_engines.py)
set_tests_properties(e2e_engines PROPERTIES
  LABELS e2e TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_FORWARD=$<TARGET_FILE:kmon-forward>")
