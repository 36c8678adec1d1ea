/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a consumer needs to annotate an event: the container behind a
 * kmon_event.container_key. Travels in META records; filled by the agent from
 * the cgroup path (container_id, pod_uid, runtime) and the kubelet (pod,
 * namespace, container). Empty strings mean "not known (yet)".
 * Sizes follow Kubernetes limits: names are DNS labels/subdomains (<= 253),
 * uids are 36 chars, container ids 64 hex chars.
 */
#ifndef KMON_SHM_META_H
#define KMON_SHM_META_H

#include <stdint.h>

#define KMON_META_RUNTIME_MAX 16
#define KMON_META_ID_MAX 72
#define KMON_META_UID_MAX 40
#define KMON_META_NAME_MAX 254

struct kmon_meta {
	uint32_t key; /* == kmon_event.container_key; never 0 */
	char runtime[KMON_META_RUNTIME_MAX];
	char container_id[KMON_META_ID_MAX];
	char pod_uid[KMON_META_UID_MAX];
	char pod[KMON_META_NAME_MAX];
	char namespace[KMON_META_NAME_MAX];
	char container[KMON_META_NAME_MAX];
};

#endif
