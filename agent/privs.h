/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Once the programs are attached, the maps open and the control socket bound,
 * the agent needs no capability at all: map updates, ring-buffer reads and
 * memfd creation go through descriptors it already holds, and /proc/<pid>/cgroup
 * is world-readable. Dropping everything limits what a bug reachable from an
 * unprivileged consumer could do.
 */
#ifndef KMON_AGENT_PRIVS_H
#define KMON_AGENT_PRIVS_H

#include <stddef.h>

/* Clears the effective, permitted and inheritable sets and the ambient set,
 * and sets no_new_privs. Returns 0 or a negative errno with err filled. */
int privs_drop_all(char *err, size_t errlen);

#endif
