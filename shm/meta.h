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

/* The container key space, shared by the agent (which hands keys out), the
 * client and the consumers' tables (which index by key): keys 1..65535; 0 is
 * "no container". */
#define KMON_CONTAINER_KEYS 65536u

struct kmon_meta {
	uint32_t key; /* == kmon_event.container_key; never 0 */
	char runtime[KMON_META_RUNTIME_MAX];
	char container_id[KMON_META_ID_MAX];
	char pod_uid[KMON_META_UID_MAX];
	char pod[KMON_META_NAME_MAX];
	char namespace[KMON_META_NAME_MAX];
	char container[KMON_META_NAME_MAX];
	char reserved[2]; /* zero; explicit so the size has no hidden padding */
};

/* The layout is a wire format (META records; the Python bindings map it). */
_Static_assert(sizeof(struct kmon_meta) == 896, "kmon_meta size");
_Static_assert(__builtin_offsetof(struct kmon_meta, runtime) == 4, "kmon_meta.runtime");
_Static_assert(__builtin_offsetof(struct kmon_meta, container_id) == 20, "kmon_meta.container_id");
_Static_assert(__builtin_offsetof(struct kmon_meta, pod_uid) == 92, "kmon_meta.pod_uid");
_Static_assert(__builtin_offsetof(struct kmon_meta, pod) == 132, "kmon_meta.pod");
_Static_assert(__builtin_offsetof(struct kmon_meta, namespace) == 386, "kmon_meta.namespace");
_Static_assert(__builtin_offsetof(struct kmon_meta, container) == 640, "kmon_meta.container");

#endif
