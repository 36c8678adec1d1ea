# Pure formatting/aggregation code shared by the consumers (and the agent's
# /metrics): no sockets, no loop.
add_library(kmon_consumer_fmt STATIC ${CMAKE_CURRENT_LIST_DIR}/event_json.c
            ${CMAKE_CURRENT_LIST_DIR}/metrics_text.c ${CMAKE_CURRENT_LIST_DIR}/aggtable.c
            ${CMAKE_CURRENT_LIST_DIR}/otlp.c)
target_link_libraries(kmon_consumer_fmt PUBLIC kmon_event PkgConfig::CJSON m)
