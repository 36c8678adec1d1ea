/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One pass over /proc: which processes are in a container, which container
 * (k8s/cgroup classifies each /proc/<pid>/cgroup) and, on cgroup v2, the id
 * of that container's own cgroup directory. Pure reading, no agent state:
 * it runs on the libuv thread pool, and the unit tests run it on a /proc
 * tree made of plain files.
 */
#ifndef KMON_AGENT_PROC_SCAN_H
#define KMON_AGENT_PROC_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "k8s/cgroup.h"
#include "k8s/cgroup_v2.h"

struct proc_scan_hit {
	uint32_t tgid;
	struct cgroup_info info;
	uint64_t cgid; /* the container's own cgroup v2 id, when the process is in it; else 0 */
};

struct proc_scan {
	struct proc_scan_hit *hits; /* container and pod-level processes, in /proc order */
	size_t n_hits, cap_hits;
	uint64_t seen;       /* pid directories read */
	uint64_t vanished;   /* gone between readdir and open, or zombies */
	uint64_t unreadable; /* any other error reading the cgroup file */
	double ms;
};

/*
 * Fills *out (zeroed first) from proc_root. v2 NULL or v2->mount "": no
 * cgroup v2 hierarchy in view, no cgroup ids. self: a pid left out (the
 * agent). Host and conmon processes are not hits. Returns 0, or -errno
 * when proc_root cannot be read or memory runs out (out->hits then holds
 * what was found so far; release it either way).
 */
int proc_scan__run(struct proc_scan *out, const char *proc_root,
		   const struct cgroup_v2_where *v2, uint32_t self);
void proc_scan__release(struct proc_scan *s);

#endif
