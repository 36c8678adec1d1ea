/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where a container's own cgroup v2 directory is, so the agent can key the
 * kernel's cgroup map by its id (bpf_get_current_cgroup_id() is the id of
 * the task's unified-hierarchy cgroup, the inode number of its directory).
 *
 * Only a container's own directory counts: the 0:: line's last segment must
 * name the container id (<id>, docker-<id>.scope, libpod-<id>, ...). On a v1
 * node there is no 0:: line; on a hybrid node the runtime may leave the
 * process in the root or in a service's cgroup (cgroupfs drivers of older
 * runtimes, conmon); a process in a sub-cgroup of its container, or a path
 * relative to another cgroup namespace ("/../.."), has no directory of its
 * own here either. All of those answer -ENOENT: the /proc scan still finds
 * the processes, a little later.
 */
#ifndef KMON_K8S_CGROUP_V2_H
#define KMON_K8S_CGROUP_V2_H

#include <stddef.h>

/* The 0:: path of a /proc/<pid>/cgroup text (not necessarily
 * NUL-terminated) when its last segment names container_id (64 hex).
 * 0 with out set, -ENOENT, or -ENAMETOOLONG when out is too small. */
int cgroup__own_v2_path(const char *text, size_t len, const char *container_id, char *out,
			size_t cap);

/* The mount point of the whole cgroup v2 hierarchy (a cgroup2 mount of its
 * root) in this process's mount table (mountinfo: /proc/self/mountinfo).
 * 0 with out set, -ENOENT when there is none, or -errno. */
int cgroup__v2_mount(const char *mountinfo, char *out, size_t cap);

#endif
