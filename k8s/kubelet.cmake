add_library(kmon_k8s_kubelet STATIC ${CMAKE_CURRENT_LIST_DIR}/podlist.c
            ${CMAKE_CURRENT_LIST_DIR}/kubelet.c)
target_include_directories(kmon_k8s_kubelet PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(kmon_k8s_kubelet PUBLIC kmon_err PkgConfig::CJSON PkgConfig::LIBCURL)
