/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kubelet's GET /pods answer (a v1 PodList), reduced to what annotation
 * needs: per pod its name, namespace and uid, and per container (regular,
 * init, ephemeral, and the previous instance of a restarted one) its name and
 * runtime id. Parsed with cJSON; bounded: at most max_pods pods and
 * PODLIST_MAX_CONTAINERS containers per pod, strings of Kubernetes' lengths.
 */
#ifndef KMON_K8S_PODLIST_H
#define KMON_K8S_PODLIST_H

#include <stdbool.h>
#include <stddef.h>

#define PODLIST_MAX_CONTAINERS 64

struct podlist_container {
	char name[254];
	char id[72];      /* 64 hex, scheme removed */
	char runtime[16]; /* containerd | cri-o | docker */
	char kind[12];    /* container | init | ephemeral */
	bool previous;    /* from lastState.terminated: the instance before a restart */
};

struct podlist_pod {
	char name[254];
	char namespace[254];
	char uid[40];
	unsigned n_containers;
	unsigned cap;
	struct podlist_container *containers;
};

struct podlist {
	unsigned n_pods;
	struct podlist_pod *pods;
};

/* NULL with errno EINVAL (not a PodList; err says what was wrong), E2BIG
 * (more than max_pods pods or too many containers in one) or ENOMEM. */
struct podlist *podlist__parse(const char *json, size_t len, unsigned max_pods, char *err,
			       size_t errlen);
void podlist__free(struct podlist *pl);

#endif
