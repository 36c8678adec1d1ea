/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kubelet's GET /pods answer (a v1 PodList), reduced to what annotation
 * needs: per pod its name, namespace and uid, and per container (regular,
 * init, ephemeral, and the previous instance of a restarted one) its name and
 * runtime id. Parsed with cJSON.
 *
 * One pod can never break the list: a part that is odd or does not fit is
 * skipped and counted (struct podlist_skips), the rest is used. Only a body
 * that is not a pod list at all (or no memory) fails the parse.
 *
 * Bounded by the size of the whole list, not per pod: at most max_pods pods
 * and PODLIST_MAX_INSTANCES container instances in all. When a list has more
 * instances than that, they are shared out max-min fairly (every pod keeps
 * all of its own up to a level the bound allows, so one pod with thousands of
 * containers only loses its own), current instances before previous ones.
 */
#ifndef KMON_K8S_PODLIST_H
#define KMON_K8S_PODLIST_H

#include <stdbool.h>
#include <stddef.h>

/* Container instances (ids) kept from one PodList, all pods together. */
#define PODLIST_MAX_INSTANCES 8192
/* Historic per-pod bound (a pod over it used to fail the whole list); kept
 * for source compatibility, no longer a limit. */
#define PODLIST_MAX_CONTAINERS 64

struct podlist_container {
	char name[254];
	char id[72];      /* 64 lowercase hex, scheme removed */
	char runtime[16]; /* containerd | cri-o | docker | other scheme | "" (bare id) */
	char kind[12];    /* container | init | ephemeral */
	bool previous;    /* from lastState.terminated: the instance before a restart */
};

struct podlist_pod {
	char name[254];
	char namespace[254];
	/* The uid the pod's cgroup carries: metadata.uid, or for a mirror pod
	 * (annotation kubernetes.io/config.mirror) the static pod's config hash. */
	char uid[40];
	unsigned n_containers;
	unsigned cap;
	struct podlist_container *containers;
	/* Appended fields. */
	unsigned skipped;  /* instances of this pod left out by the size bound */
	bool is_static;    /* config.source file or http, or a mirror pod */
	char api_uid[40];  /* a mirror pod's metadata.uid (uid then holds the hash), else "" */
};

/* Parts of the list skipped instead of failing it; each one is counted. */
struct podlist_skips {
	unsigned items;     /* items that are not usable pods: null, {}, bad metadata, over max_pods */
	unsigned instances; /* container instances over PODLIST_MAX_INSTANCES */
	unsigned ids;       /* container ids that are not [<scheme>://]<64 lowercase hex> */
	unsigned fields;    /* odd parts of usable pods: status or status lists of the
			     * wrong type, status entries without a valid name */
};

struct podlist {
	unsigned n_pods;
	struct podlist_pod *pods;
	/* Appended fields. */
	struct podlist_skips skipped;
	char first_skip[200]; /* the first part skipped and why ("" when none) */
};

/* NULL with errno EINVAL (not a pod list at all; err says what was wrong)
 * or ENOMEM. Odd or excess parts never fail the parse: see pl->skipped. */
struct podlist *podlist__parse(const char *json, size_t len, unsigned max_pods, char *err,
			       size_t errlen);
/* Parts skipped, all kinds together. */
unsigned podlist__skipped_total(const struct podlist *pl);
void podlist__free(struct podlist *pl);

#endif
