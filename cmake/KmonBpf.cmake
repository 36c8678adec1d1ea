# kmon_bpf_object(NAME SOURCE [DEPENDS headers...])
#
# Compiles one CO-RE BPF object with clang and generates its libbpf skeleton
# (NAME.skel.h in the current binary dir), exposed as INTERFACE library
# NAME_skel. A function, not a macro, so header lists do not leak between
# calls; clang's depfile plus the explicit DEPENDS make header edits rebuild.
find_program(KMON_CLANG NAMES clang clang-14 REQUIRED)
find_program(KMON_BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(KMON_VMLINUX_H "" CACHE FILEPATH
    "vmlinux.h to build against (default: generated from /sys/kernel/btf/vmlinux, else the pinned copy)")

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(KMON_BPF_ARCH x86)
  set(KMON_VMLINUX_ARCH x86_64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(KMON_BPF_ARCH arm64)
  set(KMON_VMLINUX_ARCH aarch64)
else()
  message(FATAL_ERROR "kmon: unsupported architecture ${CMAKE_SYSTEM_PROCESSOR}")
endif()

set(KMON_VMLINUX_DIR ${CMAKE_BINARY_DIR}/vmlinux)
if(KMON_VMLINUX_H)
  configure_file(${KMON_VMLINUX_H} ${KMON_VMLINUX_DIR}/vmlinux.h COPYONLY)
elseif(EXISTS /sys/kernel/btf/vmlinux)
  add_custom_command(
    OUTPUT ${KMON_VMLINUX_DIR}/vmlinux.h
    COMMAND ${CMAKE_COMMAND} -E make_directory ${KMON_VMLINUX_DIR}
    COMMAND ${KMON_BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${KMON_VMLINUX_DIR}/vmlinux.h.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${KMON_VMLINUX_DIR}/vmlinux.h.tmp ${KMON_VMLINUX_DIR}/vmlinux.h
    COMMENT "Generating vmlinux.h from this kernel's BTF"
    VERBATIM)
else()
  set(pinned ${CMAKE_SOURCE_DIR}/bpf/vmlinux/${KMON_VMLINUX_ARCH}/vmlinux.h)
  if(NOT EXISTS ${pinned})
    message(FATAL_ERROR "kmon: no /sys/kernel/btf/vmlinux and no pinned ${pinned}; pass -DKMON_VMLINUX_H=")
  endif()
  message(STATUS "kmon: no kernel BTF on this host, using pinned ${pinned}")
  configure_file(${pinned} ${KMON_VMLINUX_DIR}/vmlinux.h COPYONLY)
endif()
add_custom_target(kmon_vmlinux_h DEPENDS ${KMON_VMLINUX_DIR}/vmlinux.h)
# BPF objects outside bpf/ (benchmark baselines) use these too.
set(KMON_VMLINUX_DIR ${KMON_VMLINUX_DIR} CACHE INTERNAL "")
set(KMON_BPF_ARCH ${KMON_BPF_ARCH} CACHE INTERNAL "")

function(kmon_bpf_object name src)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${name}.skel.h)
  get_filename_component(src_abs ${src} ABSOLUTE)
  get_filename_component(src_dir ${src_abs} DIRECTORY)
  # -g for the BTF that CO-RE needs; the BPF static linker (bpftool gen
  # object) then writes the object without the DWARF that -g also makes. The
  # skeleton embeds the object in the agent, and libbpf reads it at every
  # start: 0.9 MiB and 0.6 MiB with DWARF, 0.2 MiB and 4 KiB without.
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${KMON_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${KMON_BPF_ARCH}
            -Wall -Werror -I${KMON_VMLINUX_DIR} -I${src_dir}
            -MD -MF ${obj}.d -MT ${obj} -c ${src_abs} -o ${obj}.debug
    COMMAND ${KMON_BPFTOOL} gen object ${obj} ${obj}.debug
    DEPENDS ${src_abs} ${ARG_DEPENDS} ${KMON_VMLINUX_DIR}/vmlinux.h
    DEPFILE ${obj}.d
    COMMENT "BPF ${name}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${KMON_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_dependencies(${name}_skel_gen kmon_vmlinux_h)
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
