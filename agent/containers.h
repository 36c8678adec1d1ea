/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The container table: every container (or pod-level cgroup) the scans
 * found, under the key its events carry (1 .. KMON_CONTAINER_KEYS-1), with
 * the metadata consumers get for that key. Annotation fills pod, namespace
 * and container names from the pod table, refuses a container whose cgroup
 * path and PodList disagree on the pod, and infers the pod's sandbox
 * (pause) container, which the kubelet never lists. Loop-thread only; no
 * I/O except one log line per identity mismatch.
 */
#ifndef KMON_AGENT_CONTAINERS_H
#define KMON_AGENT_CONTAINERS_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/pod_table.h"
#include "k8s/cgroup.h"
#include "shm/meta.h"

struct container {
	uint32_t key;
	enum cgroup_kind kind;
	struct kmon_meta meta;
	uint64_t last_scan; /* scan number it was last seen in (the tracker's) */
	bool pod_known;     /* pod/namespace filled from the pod table */
	bool id_known;      /* its id is in the pod table */
	uint64_t seen_at;   /* PodList requests started before it was first seen */
	bool mismatch_said; /* its identity mismatch was counted and logged */
	uint64_t cgid;      /* its own cgroup v2 id, in the kernel's cgroup map; 0: none */
	uint64_t cgid_scan; /* scan that last saw a process in that cgroup */
};

struct containers;

struct containers *containers__new(void);
void containers__free(struct containers *ct);

/* The key of the container info names (same container id and pod uid),
 * adding it when new (*is_new; seen_at = requests started so far). 0: the
 * key space is full. */
uint32_t containers__add(struct containers *ct, const struct cgroup_info *info,
			 uint64_t seen_at, bool *is_new);
/* NULL when key is not in use. */
struct container *containers__get(struct containers *ct, uint32_t key);
/* The next key in use after key (0 to start); 0 at the end. */
uint32_t containers__next(const struct containers *ct, uint32_t key);
/* Frees the key for reuse. */
void containers__remove(struct containers *ct, uint32_t key);
uint32_t containers__count(const struct containers *ct);
/* Containers refused their pod's names: path and PodList disagree. */
uint64_t containers__mismatches(const struct containers *ct);

/* Fills c's names from pt; applied_start is the number of the request
 * whose PodList pt now holds (a container seen before that request started
 * and still absent from it is its pod's sandbox). True when c->meta changed
 * (consumers need a new META). */
bool containers__annotate(struct containers *ct, struct container *c, const struct pod_table *pt,
			  uint64_t applied_start);

#endif
