add_library(kmon_k8s_cgroup STATIC ${CMAKE_CURRENT_LIST_DIR}/cgroup.c
            ${CMAKE_CURRENT_LIST_DIR}/cgroup_v2.c)
target_include_directories(kmon_k8s_cgroup PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(kmon_k8s_cgroup PUBLIC PkgConfig::CJSON)
