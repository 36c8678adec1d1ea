# The installed SDK (libkmon, headers, kmon.pc) and the Python package, used
# the way a user would: out of the tree, as nobody, against a live agent.
set(KMON_SANITIZER_RUNTIME "")
if(KMON_SANITIZE)
  # Programs that load the instrumented libkmon (python, the out-of-tree
  # example) need the sanitizer runtime preloaded.
  if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
    set(_rt libclang_rt.asan-${CMAKE_SYSTEM_PROCESSOR}.so)
  else()
    set(_rt libasan.so)
  endif()
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${_rt}
                  OUTPUT_VARIABLE KMON_SANITIZER_RUNTIME OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
add_test(NAME sdk_integration
         COMMAND ${KMON_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_sdk.py)
set_tests_properties(sdk_integration PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "KMON_AGENT=$<TARGET_FILE:kmon-agent>;KMON_BUILD_DIR=${CMAKE_BINARY_DIR};KMON_SANITIZER_RUNTIME=${KMON_SANITIZER_RUNTIME}")
