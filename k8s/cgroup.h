/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a /proc/<pid>/cgroup file says about a process: container runtime,
 * container id, pod uid and QoS class, or "not a container".
 *
 * Covers cgroup v1, v2 and hybrid files; cgroupfs and systemd drivers;
 * containerd (cri-containerd-<id>.scope, bare <id> under pod<uid>, nerdctl),
 * cri-o (crio-<id>[.scope], crio-conmon-<id>.scope), docker (docker-<id>.scope,
 * /docker/<id>), podman (libpod-<id>[.scope], libpod-conmon-); QoS levels
 * (guaranteed has none); systemd pod uids with '_' for '-'; nested nodes
 * (kind, k3s) where the innermost container wins (but child cgroups of a
 * pod's container are that container's: their names are the tenant's to
 * choose, so they can claim nothing); cgroup-namespace-relative
 * paths ("/../../burstable/pod<uid>/<id>").
 *
 * Every line is considered and the most specific answer wins, because on
 * hybrid hosts the 0:: line may name the runtime's service instead of the
 * container. A sandbox (pause) cgroup looks exactly like a container's: only
 * the kubelet can tell (its id is never in the PodList), so the classifier
 * says "container" and the pod table decides.
 */
#ifndef KMON_K8S_CGROUP_H
#define KMON_K8S_CGROUP_H

#include <stddef.h>

enum cgroup_kind {
	CGROUP_HOST = 0,
	CGROUP_CONTAINER,
	CGROUP_SANDBOX,
	CGROUP_CONMON,
	CGROUP_POD_ONLY,
};

enum cgroup_qos {
	CGROUP_QOS_NONE = 0,
	CGROUP_QOS_GUARANTEED,
	CGROUP_QOS_BURSTABLE,
	CGROUP_QOS_BESTEFFORT,
};

enum cgroup_version {
	CGROUP_V1 = 1,
	CGROUP_V2 = 2,
	CGROUP_V1_HYBRID = 3,
};

struct cgroup_info {
	enum cgroup_kind kind;
	enum cgroup_qos qos;
	enum cgroup_version version;
	char runtime[16];      /* docker | containerd | cri-o | podman | "" */
	char container_id[72]; /* 64 lowercase hex, or "" */
	char pod_uid[40];      /* dashed uid, or 32-hex static pod hash, or "" */
};

/* text need not be NUL-terminated; never read past text+len. Returns 0, or
 * -EINVAL when the text is not a cgroup file (info then says host). */
int cgroup__classify(const char *text, size_t len, struct cgroup_info *out);
const char *cgroup__kind_name(enum cgroup_kind k);
const char *cgroup__qos_name(enum cgroup_qos q);
const char *cgroup__version_name(enum cgroup_version v);
/* {"runtime","container_id","pod_uid","qos","kind","cgroup_version"} as one
 * JSON object; malloc'd, NULL on allocation failure. */
char *cgroup__to_json(const struct cgroup_info *info);

#endif
