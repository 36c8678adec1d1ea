# The event JSON encoder before issue 18 (event_json_ref.c): the reference the
# unit test, the fuzzer and bench_micro compare the current encoder with.
if(NOT TARGET kmon_event_json_ref)
  add_library(kmon_event_json_ref STATIC ${CMAKE_CURRENT_LIST_DIR}/event_json_ref.c)
  target_include_directories(kmon_event_json_ref PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(kmon_event_json_ref PUBLIC kmon_event)
endif()
