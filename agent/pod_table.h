/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The pod table: the kubelet's PodList flattened to one entry per pod
 * container instance plus one per pod (no id), merged with the previous
 * table so a pod that has just left the PodList keeps its names for a grace
 * period (events of a terminating pod's last processes still get names).
 * Loop-thread only; no I/O.
 */
#ifndef KMON_AGENT_POD_TABLE_H
#define KMON_AGENT_POD_TABLE_H

#include <stddef.h>

#include "k8s/podlist.h"
#include "shm/meta.h"

struct pod_entry {
	double last_seen; /* the `now` of the last merge that found the pod */
	char id[KMON_META_ID_MAX]; /* "" for the pod-level entry */
	char pod[KMON_META_NAME_MAX], ns[KMON_META_NAME_MAX], container[KMON_META_NAME_MAX];
	char uid[KMON_META_UID_MAX];
	char runtime[KMON_META_RUNTIME_MAX]; /* from the containerID scheme */
};

struct pod_table;

/* grace_sec: how long a pod missing from the PodList stays known. */
struct pod_table *pod_table__new(double grace_sec);
void pod_table__free(struct pod_table *pt);

/* The new table: everything in pl (stamped now), plus the entries of pods
 * absent from pl whose last_seen is less than grace_sec before now.
 * -ENOMEM leaves the old table in place. */
int pod_table__merge(struct pod_table *pt, const struct podlist *pl, double now);

/* NULL when not there. by_container: the entry of that container id;
 * by_uid: the first entry of that pod. */
const struct pod_entry *pod_table__by_container(const struct pod_table *pt, const char *id);
const struct pod_entry *pod_table__by_uid(const struct pod_table *pt, const char *uid);
size_t pod_table__entries(const struct pod_table *pt);

#endif
