// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/containers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>

#include "bpf/kmon_event.h"
#include "shm/common/log.h"

struct slot {
	bool used;
	struct container c;
};

struct containers {
	struct slot *s;    /* indexed by key; [0] unused; calloc'd, so only the
			    * pages of keys in use become resident */
	uint32_t hi;       /* keys in use are below this */
	uint32_t last_key; /* the last container found: scans hit runs of one */
	uint32_t n;
	uint32_t free_from; /* no free key below this */
	uint64_t mismatches;
	/* (container id, pod uid) -> key: open addressing, linear probing,
	 * 0 = empty; grown to stay at most half full. A node with thousands
	 * of containers finds a new one without walking them all. */
	uint32_t *idx;
	uint32_t idx_cap; /* a power of two, or 0 */
};

struct containers *containers__new(void)
{
	struct containers *ct = calloc(1, sizeof(*ct));

	if (!ct)
		return NULL;
	ct->s = calloc(KMON_CONTAINER_KEYS, sizeof(*ct->s));
	if (!ct->s) {
		free(ct);
		return NULL;
	}
	return ct;
}

void containers__free(struct containers *ct)
{
	if (!ct)
		return;
	free(ct->idx);
	free(ct->s);
	free(ct);
}

static uint32_t hash_ids(const char *id, const char *uid)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	h = (h ^ '/') * 16777619u;
	for (; *uid; uid++)
		h = (h ^ (uint8_t)*uid) * 16777619u;
	return h;
}

static uint32_t home_of(const struct containers *ct, uint32_t key)
{
	const struct kmon_meta *m = &ct->s[key].c.meta;

	return hash_ids(m->container_id, m->pod_uid) & (ct->idx_cap - 1);
}

static void idx_put(uint32_t *idx, uint32_t cap, uint32_t home, uint32_t key)
{
	uint32_t i = home;

	while (idx[i])
		i = (i + 1) & (cap - 1);
	idx[i] = key;
}

/* 0, or -1 out of memory: the old index stays (usable while not full). */
static int idx_grow(struct containers *ct)
{
	uint32_t cap = ct->idx_cap ? ct->idx_cap * 2 : 256;
	uint32_t *idx = calloc(cap, sizeof(*idx));

	if (!idx)
		return -1;
	for (uint32_t k = 1; k < ct->hi; k++)
		if (ct->s[k].used)
			idx_put(idx, cap, hash_ids(ct->s[k].c.meta.container_id,
						   ct->s[k].c.meta.pod_uid) & (cap - 1), k);
	free(ct->idx);
	ct->idx = idx;
	ct->idx_cap = cap;
	return 0;
}

/* Backward-shift deletion: no tombstones, so lookups stay short. */
static void idx_remove(struct containers *ct, uint32_t key)
{
	uint32_t mask = ct->idx_cap - 1, i, j;

	if (!ct->idx_cap)
		return;
	for (i = home_of(ct, key); ct->idx[i] != key; i = (i + 1) & mask)
		if (!ct->idx[i])
			return;
	ct->idx[i] = 0;
	for (j = (i + 1) & mask; ct->idx[j]; j = (j + 1) & mask) {
		uint32_t h = home_of(ct, ct->idx[j]);

		/* Moves back unless its home lies cyclically in (i, j]. */
		if (i <= j ? (h <= i || h > j) : (h <= i && h > j)) {
			ct->idx[i] = ct->idx[j];
			ct->idx[j] = 0;
			i = j;
		}
	}
}

static bool same_container(const struct slot *s, const struct cgroup_info *info)
{
	if (!s->used)
		return false;
	/* The pod uid too: a cgroup named after another pod's container must
	 * not share that container's key (and so its annotation). */
	return !strcmp(s->c.meta.container_id, info->container_id) &&
	       !strcmp(s->c.meta.pod_uid, info->pod_uid);
}

static uint32_t find(struct containers *ct, const struct cgroup_info *info)
{
	uint32_t i;

	if (ct->last_key && same_container(&ct->s[ct->last_key], info))
		return ct->last_key;
	if (!ct->idx_cap)
		return 0;
	for (i = hash_ids(info->container_id, info->pod_uid) & (ct->idx_cap - 1); ct->idx[i];
	     i = (i + 1) & (ct->idx_cap - 1)) {
		if (same_container(&ct->s[ct->idx[i]], info)) {
			ct->last_key = ct->idx[i];
			return ct->last_key;
		}
	}
	return 0;
}

uint32_t containers__add(struct containers *ct, const struct cgroup_info *info,
			 uint64_t seen_at, bool *is_new)
{
	uint32_t k = find(ct, info);
	struct container *c;

	*is_new = false;
	if (k)
		return k;
	/* The lowest free key, as ever; free_from skips the run in use. */
	for (k = ct->free_from ? ct->free_from : 1; k < KMON_CONTAINER_KEYS; k++)
		if (!ct->s[k].used)
			break;
	ct->free_from = k;
	if (k == KMON_CONTAINER_KEYS)
		return 0;
	/* Room in the index first: grown at half full; if memory runs out, the
	 * old one serves while it has a free slot. */
	if ((ct->n + 1) * 2 > ct->idx_cap && idx_grow(ct) && ct->n + 1 >= ct->idx_cap)
		return 0;
	if (k >= ct->hi)
		ct->hi = k + 1;
	memset(&ct->s[k], 0, sizeof(ct->s[k]));
	ct->s[k].used = true;
	c = &ct->s[k].c;
	c->key = k;
	c->kind = info->kind;
	c->meta.key = k;
	snprintf(c->meta.runtime, sizeof(c->meta.runtime), "%s", info->runtime);
	snprintf(c->meta.container_id, sizeof(c->meta.container_id), "%s", info->container_id);
	snprintf(c->meta.pod_uid, sizeof(c->meta.pod_uid), "%s", info->pod_uid);
	c->seen_at = seen_at;
	idx_put(ct->idx, ct->idx_cap, home_of(ct, k), k);
	ct->n++;
	*is_new = true;
	return k;
}

struct container *containers__get(struct containers *ct, uint32_t key)
{
	if (!key || key >= ct->hi || !ct->s[key].used)
		return NULL;
	return &ct->s[key].c;
}

uint32_t containers__next(const struct containers *ct, uint32_t key)
{
	for (uint32_t k = key + 1; k < ct->hi; k++)
		if (ct->s[k].used)
			return k;
	return 0;
}

void containers__remove(struct containers *ct, uint32_t key)
{
	if (!key || key >= ct->hi || !ct->s[key].used)
		return;
	idx_remove(ct, key);
	ct->s[key].used = false;
	if (key < ct->free_from)
		ct->free_from = key;
	if (ct->last_key == key)
		ct->last_key = 0;
	ct->n--;
}

uint32_t containers__count(const struct containers *ct)
{
	return ct->n;
}

uint64_t containers__mismatches(const struct containers *ct)
{
	return ct->mismatches;
}

/*
 * A container id alone proves nothing: whoever can create a cgroup can name
 * it after another pod's container. The kubelet-made pod directory of the
 * same path must agree with the pod the PodList puts that id in; when it
 * does not (or the path has no pod directory at all), the container is left
 * without pod names, counted and logged once.
 */
static bool refuse_mismatch(struct containers *ct, struct container *c, const struct pod_entry *p)
{
	struct kmon_meta m = c->meta;

	if (!c->mismatch_said) {
		c->mismatch_said = true;
		ct->mismatches++;
		log_warn("container %.12s claims pod %s/%s (uid %s) but its cgroup is in "
			 "%s%s: not annotated (a cgroup named after another pod's container)",
			 m.container_id, p->ns, p->pod, p->uid,
			 m.pod_uid[0] ? "pod " : "no pod directory", m.pod_uid);
	}
	m.pod[0] = m.namespace[0] = m.container[0] = '\0';
	c->id_known = false;
	c->pod_known = false;
	if (!memcmp(&m, &c->meta, sizeof(m)))
		return false;
	c->meta = m;
	return true;
}

/* Pod known, id absent from a PodList whose request started after the
 * container was first seen: the pod's sandbox (pause), which the kubelet
 * never lists. A container seen later may simply be newer than that
 * PodList, so it waits for the next one. */
static void infer_sandbox(struct container *c, uint64_t applied_start)
{
	if (c->kind == CGROUP_CONTAINER && !c->id_known && applied_start > c->seen_at)
		c->kind = CGROUP_SANDBOX;
}

bool containers__annotate(struct containers *ct, struct container *c, const struct pod_table *pt,
			  uint64_t applied_start)
{
	struct kmon_meta m = c->meta;
	const struct pod_entry *p = NULL;

	if (c->kind == CGROUP_CONTAINER && m.container_id[0])
		p = pod_table__by_container(pt, m.container_id);
	if (p && strcmp(p->uid, m.pod_uid))
		return refuse_mismatch(ct, c, p);
	if (!p && m.pod_uid[0])
		p = pod_table__by_uid(pt, m.pod_uid);
	if (p) {
		snprintf(m.pod, sizeof(m.pod), "%s", p->pod);
		snprintf(m.namespace, sizeof(m.namespace), "%s", p->ns);
		c->id_known = c->kind == CGROUP_CONTAINER && m.container_id[0] &&
			      !strcmp(p->id, m.container_id);
		if (c->id_known)
			snprintf(m.container, sizeof(m.container), "%s", p->container);
		/* A bare id under a pod cgroup is containerd's or docker's
		 * (dockershim, cri-dockerd), and the classifier says containerd:
		 * the kubelet's containerID scheme settles it. A runtime the path
		 * names itself (docker-, crio-, libpod-) stays. */
		if (c->id_known && p->runtime[0] && !strcmp(m.runtime, "containerd"))
			snprintf(m.runtime, sizeof(m.runtime), "%s", p->runtime);
		infer_sandbox(c, applied_start);
		c->pod_known = true;
	}
	if (!memcmp(&m, &c->meta, sizeof(m)))
		return false;
	c->meta = m;
	return true;
}
