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
 *
 * An agent in its own cgroup namespace (a pod on a cgroup v2 node) reads
 * other pods' paths relative to its namespace root ("/../../kubepods/...")
 * and the hierarchy's root mount as "/../..": cgroup__v2_locate finds where
 * its namespace root is, and cgroup__v2_resolve turns such paths into paths
 * under the mount.
 */
#ifndef KMON_K8S_CGROUP_V2_H
#define KMON_K8S_CGROUP_V2_H

#include <stddef.h>

#include <sys/types.h>

/* The 0:: path of a /proc/<pid>/cgroup text (not necessarily
 * NUL-terminated) when its last segment names container_id (64 hex); it
 * may be relative to the reader's namespace ("/../.."): see resolve.
 * 0 with out set, -ENOENT, or -ENAMETOOLONG when out is too small. */
int cgroup__own_v2_path(const char *text, size_t len, const char *container_id, char *out,
			size_t cap);

/* The mount point of the whole cgroup v2 hierarchy (a cgroup2 mount of its
 * root) in this process's mount table (mountinfo: /proc/self/mountinfo),
 * and ns_depth: how far below that root the reader's cgroup namespace root
 * is (mountinfo shows the root as "/", or "/.." that many times).
 * 0 with out set, -ENOENT when there is none, or -errno. */
int cgroup__v2_mount(const char *mountinfo, char *out, size_t cap, unsigned *ns_depth);

struct cgroup_v2_where {
	char mount[256];    /* the whole hierarchy is mounted here */
	char ns_root[1024]; /* the reader's namespace root under it; "" = the root */
};

/* Where the whole hierarchy is mounted and where this process's cgroup
 * namespace root is in it: self_cgroup is its /proc/self/cgroup, pid its
 * pid as cgroup.procs files show it. Outside the host's namespace the
 * root is found by looking for pid in the cgroup.procs of the directories
 * at that depth (bounded). 0, -ENOENT (no v2 hierarchy, or not found), or
 * -errno. */
int cgroup__v2_locate(const char *mountinfo, const char *self_cgroup, pid_t pid,
		      struct cgroup_v2_where *w);

/* ns_root joined with a path relative to it ("/../../kubepods/x"): the
 * path under the mount ("/kubepods/x", "" for the root). -ENOENT when it
 * climbs above the hierarchy's root, -ENAMETOOLONG. */
int cgroup__v2_resolve(const char *ns_root, const char *path, char *out, size_t cap);

#endif
