# The agent's reader of the BPF ring buffer (agent/kring.h) against the
# kernel's own ring: a BPF program writes records on demand (test run of a
# syscall program), the test reads them back. Needs root (BPF).
kmon_bpf_object(kring_writer ${CMAKE_CURRENT_LIST_DIR}/kring_writer.bpf.c)
add_executable(test_kring ${CMAKE_CURRENT_LIST_DIR}/test_kring.c)
target_link_libraries(test_kring PRIVATE kmon_agent_core kring_writer_skel PkgConfig::CMOCKA)
add_test(NAME kring_integration COMMAND test_kring)
set_tests_properties(kring_integration PROPERTIES LABELS integration TIMEOUT 120)
