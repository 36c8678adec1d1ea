/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Once the programs are attached, the maps open and the control socket bound,
 * the agent needs neither root nor any capability: map updates, ring-buffer
 * reads and memfd creation go through descriptors it already holds,
 * /proc/<pid>/cgroup is world-readable, and the kubelet token and CA files are
 * readable by its group. Switching to a dedicated user and dropping everything
 * limits what a bug reachable from a consumer, a tenant's process name or the
 * kubelet's reply could do: no capability to regain, no root-owned file to
 * write, no exec that could raise privileges again.
 */
#ifndef KMON_AGENT_PRIVS_H
#define KMON_AGENT_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Makes the calling process uid:gid for good. In order: clears the bounding
 * set (needs CAP_SETPCAP while it holds any capability), drops supplementary
 * groups (CAP_SETGID), sets the real, effective and saved gid then uid
 * (CAP_SETGID, CAP_SETUID) with keep-caps off, clears the effective,
 * permitted, inheritable and ambient sets, marks the process not dumpable
 * (another process of the same uid cannot ptrace it or read its memory) and
 * sets no_new_privs. Steps that are already true need no capability. Reads
 * everything back and fails rather than run with anything left.
 *
 * Call it while single-threaded: capability sets are per thread, and only the
 * uid/gid changes reach other threads (glibc broadcasts those).
 *
 * Returns 0, or a negative errno with err naming the step and what to grant.
 */
int privs_drop_to(uid_t uid, gid_t gid, char *err, size_t errlen);

#endif
