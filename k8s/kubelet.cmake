# The PodList parser (cJSON), the kubelet client (libcurl) and the reply the
# client's helper process hands the agent: three libraries, so that the agent
# links the parser and the reply but not libcurl (agent/kubelet_proc.h).
add_library(kmon_k8s_podlist STATIC ${CMAKE_CURRENT_LIST_DIR}/podlist.c)
target_include_directories(kmon_k8s_podlist PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(kmon_k8s_podlist PUBLIC kmon_err PkgConfig::CJSON)

add_library(kmon_k8s_kubelet_reply STATIC ${CMAKE_CURRENT_LIST_DIR}/kubelet_reply.c)
target_include_directories(kmon_k8s_kubelet_reply PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(kmon_k8s_kubelet_reply PUBLIC kmon_err kmon_fdio)

add_library(kmon_k8s_kubelet STATIC ${CMAKE_CURRENT_LIST_DIR}/kubelet.c
            ${CMAKE_CURRENT_LIST_DIR}/kubelet_args.c)
target_include_directories(kmon_k8s_kubelet PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(kmon_k8s_kubelet PUBLIC kmon_err kmon_k8s_podlist PkgConfig::CJSON
                      PkgConfig::LIBCURL)
