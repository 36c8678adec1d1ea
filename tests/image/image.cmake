# The Dockerfile's image, built with docker and run as the chart's DaemonSet
# pod spec says (runc, pod cgroup and network namespace, RuntimeDefault
# seccomp). Needs root, dockerd (started by the test) and helm.
add_test(NAME image_pod COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_image.py)
set_tests_properties(image_pod PROPERTIES LABELS "image;e2e" TIMEOUT 2400 RUN_SERIAL TRUE)
