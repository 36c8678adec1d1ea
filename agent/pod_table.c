// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/pod_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pod_table {
	double grace;
	struct pod_entry *e;
	size_t n;
};

struct pod_table *pod_table__new(double grace_sec)
{
	struct pod_table *pt = calloc(1, sizeof(*pt));

	if (pt)
		pt->grace = grace_sec;
	return pt;
}

void pod_table__free(struct pod_table *pt)
{
	if (!pt)
		return;
	free(pt->e);
	free(pt);
}

static bool in_podlist(const struct podlist *pl, const char *uid)
{
	for (unsigned j = 0; j < pl->n_pods; j++)
		if (!strcmp(pl->pods[j].uid, uid))
			return true;
	return false;
}

int pod_table__merge(struct pod_table *pt, const struct podlist *pl, double now)
{
	size_t n = 0, i;
	struct pod_entry *e;

	for (i = 0; i < pl->n_pods; i++)
		n += pl->pods[i].n_containers + 1; /* +1: pod-level entry (no id) */
	e = calloc(n + pt->n + 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	n = 0;
	for (i = 0; i < pl->n_pods; i++) {
		const struct podlist_pod *p = &pl->pods[i];

		for (unsigned j = 0; j <= p->n_containers; j++) {
			struct pod_entry *x = &e[n++];

			x->last_seen = now;
			snprintf(x->pod, sizeof(x->pod), "%s", p->name);
			snprintf(x->ns, sizeof(x->ns), "%s", p->namespace);
			snprintf(x->uid, sizeof(x->uid), "%s", p->uid);
			if (j < p->n_containers) {
				snprintf(x->id, sizeof(x->id), "%s", p->containers[j].id);
				snprintf(x->container, sizeof(x->container), "%s",
					 p->containers[j].name);
				snprintf(x->runtime, sizeof(x->runtime), "%s",
					 p->containers[j].runtime);
			}
		}
	}
	for (i = 0; i < pt->n; i++) {
		const struct pod_entry *o = &pt->e[i];

		if (now - o->last_seen < pt->grace && !in_podlist(pl, o->uid))
			e[n++] = *o;
	}
	free(pt->e);
	pt->e = e;
	pt->n = n;
	return 0;
}

const struct pod_entry *pod_table__by_container(const struct pod_table *pt, const char *id)
{
	for (size_t i = 0; i < pt->n; i++)
		if (!strcmp(pt->e[i].id, id))
			return &pt->e[i];
	return NULL;
}

const struct pod_entry *pod_table__by_uid(const struct pod_table *pt, const char *uid)
{
	for (size_t i = 0; i < pt->n; i++)
		if (!strcmp(pt->e[i].uid, uid))
			return &pt->e[i];
	return NULL;
}

size_t pod_table__entries(const struct pod_table *pt)
{
	return pt->n;
}
