// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/cgroup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#define ID_LEN 64

struct seg {
	const char *p;
	size_t n;
};

static bool starts(struct seg s, const char *pfx)
{
	size_t n = strlen(pfx);

	return s.n >= n && !memcmp(s.p, pfx, n);
}

static bool ends(struct seg s, const char *sfx)
{
	size_t n = strlen(sfx);

	return s.n >= n && !memcmp(s.p + s.n - n, sfx, n);
}

static bool eq(struct seg s, const char *lit)
{
	return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

/* Container ids are 64 lowercase hex digits, nothing else. */
static bool is_id(const char *p, size_t n)
{
	size_t i;

	if (n != ID_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* A pod uid: 36-char uuid with '-' (or '_' from systemd escaping), or the
 * 32-hex config hash static pods use. Written out canonical, with '-'. */
static bool take_uid(const char *p, size_t n, char *out, size_t cap)
{
	size_t i;

	if (n == 32) {
		for (i = 0; i < n; i++)
			if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
				return false;
	} else if (n == 36) {
		for (i = 0; i < n; i++) {
			bool dash = i == 8 || i == 13 || i == 18 || i == 23;
			if (dash ? (p[i] != '-' && p[i] != '_')
				 : !((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
				return false;
		}
	} else {
		return false;
	}
	if (cap <= n)
		return false;
	for (i = 0; i < n; i++)
		out[i] = p[i] == '_' ? '-' : p[i];
	out[n] = '\0';
	return true;
}

struct path_result {
	enum cgroup_kind kind;
	enum cgroup_qos qos;
	const char *runtime;
	char id[ID_LEN + 1];
	char uid[40];
};

/* Is this segment a container (or conmon) cgroup? Runtime prefixes are
 * taken with or without systemd's ".scope" (containerd's cgroupfs driver
 * writes "cri-containerd-<id>" leaves too); anything else after the id, such
 * as systemd's "-rootfs.mount" units holding an id, is not a container. */
static bool container_seg(struct seg s, struct seg parent, const char **runtime,
			  enum cgroup_kind *kind, char *id)
{
	static const struct {
		const char *pfx, *runtime;
		enum cgroup_kind kind;
	} pats[] = {
		{ "cri-containerd-", "containerd", CGROUP_CONTAINER },
		{ "crio-conmon-", "cri-o", CGROUP_CONMON },
		{ "crio-", "cri-o", CGROUP_CONTAINER },
		{ "docker-", "docker", CGROUP_CONTAINER },
		{ "libpod-conmon-", "podman", CGROUP_CONMON },
		/* podman --cgroups=split: the payload under the unit's cgroup */
		{ "libpod-payload-", "podman", CGROUP_CONTAINER },
		{ "libpod-", "podman", CGROUP_CONTAINER },
		{ "nerdctl-", "containerd", CGROUP_CONTAINER },
	};
	struct seg core = s;
	bool scope = ends(s, ".scope");
	size_t i, pl;

	if (scope)
		core.n -= 6;
	for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		if (!starts(core, pats[i].pfx))
			continue;
		pl = strlen(pats[i].pfx);
		if (!is_id(core.p + pl, core.n - pl))
			return false;
		*runtime = pats[i].runtime;
		*kind = pats[i].kind;
		memcpy(id, core.p + pl, ID_LEN);
		id[ID_LEN] = '\0';
		return true;
	}
	if (!scope && is_id(s.p, s.n)) {
		/* Bare ids: /docker/<id> is docker; under a pod, or a containerd
		 * namespace such as /default/<id>, containerd (today's default;
		 * the kubelet's containerID scheme settles it). */
		*runtime = eq(parent, "docker") ? "docker" : "containerd";
		*kind = CGROUP_CONTAINER;
		memcpy(id, s.p, ID_LEN);
		id[ID_LEN] = '\0';
		return true;
	}
	return false;
}

static enum cgroup_qos qos_word(const char *p, size_t n)
{
	if (n == 9 && !memcmp(p, "burstable", 9))
		return CGROUP_QOS_BURSTABLE;
	if (n == 10 && !memcmp(p, "besteffort", 10))
		return CGROUP_QOS_BESTEFFORT;
	return CGROUP_QOS_NONE;
}

/* Pod segments: cgroupfs "pod<uid>", systemd "...kubepods[-<qos>]-pod<uid>.slice",
 * and cgroupfs directories that carry the systemd name without ".slice"
 * ("kubepods-besteffort-pod<uid_with_underscores>", only under that prefix). */
static bool pod_seg(struct seg s, char *uid, size_t cap, enum cgroup_qos *qos)
{
	struct seg core = s;
	const char *pod;
	size_t i;

	if (starts(s, "pod"))
		return take_uid(s.p + 3, s.n - 3, uid, cap);
	if (ends(s, ".slice"))
		core.n -= 6;
	else if (!starts(s, "kubepods-") && !starts(s, "kubelet-kubepods-"))
		return false;
	pod = NULL;
	for (i = 0; i + 4 <= core.n; i++)
		if (!memcmp(core.p + i, "-pod", 4))
			pod = core.p + i;
	if (!pod || !take_uid(pod + 4, (size_t)(core.p + core.n - (pod + 4)), uid, cap))
		return false;
	/* The level is in the name: kubepods-burstable-pod<uid>.slice. */
	for (i = 0; s.p + i < pod; i++) {
		if (s.p[i] == '-') {
			const char *w = s.p + i + 1;
			size_t wn = (size_t)(pod - w);
			if (qos_word(w, wn) != CGROUP_QOS_NONE)
				*qos = qos_word(w, wn);
		}
	}
	return true;
}

static bool qos_seg(struct seg s, enum cgroup_qos *qos)
{
	enum cgroup_qos q = qos_word(s.p, s.n);
	const char *dash;

	if (q == CGROUP_QOS_NONE && ends(s, ".slice") && s.n > 6) {
		/* kubepods-burstable.slice, kubelet-kubepods-besteffort.slice */
		dash = memrchr(s.p, '-', s.n - 6);
		if (dash)
			q = qos_word(dash + 1, (size_t)(s.p + s.n - 6 - dash - 1));
	}
	if (q == CGROUP_QOS_NONE)
		return false;
	*qos = q;
	return true;
}

/* The systemd driver's colon form, as containerd and Docker write it on
 * cgroup v1: "<pod>.slice:<runtime>:<id>" in place of the container's
 * ".../<pod>.slice/<runtime>-<id>.scope". */
static bool colon_seg(struct seg s, struct seg *slice, const char **runtime, char *id)
{
	static const struct { const char *word, *runtime; } words[] = {
		{ "cri-containerd", "containerd" },
		{ "docker", "docker" },
		{ "crio", "cri-o" },
	};
	const char *c1 = memchr(s.p, ':', s.n), *c2;
	struct seg w;
	size_t i;

	if (!c1)
		return false;
	c2 = memchr(c1 + 1, ':', (size_t)(s.p + s.n - c1 - 1));
	if (!c2 || !is_id(c2 + 1, (size_t)(s.p + s.n - c2 - 1)))
		return false;
	w.p = c1 + 1;
	w.n = (size_t)(c2 - c1 - 1);
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!eq(w, words[i].word))
			continue;
		slice->p = s.p;
		slice->n = (size_t)(c1 - s.p);
		*runtime = words[i].runtime;
		memcpy(id, c2 + 1, ID_LEN);
		id[ID_LEN] = '\0';
		return true;
	}
	return false;
}

/* Nesting: the container is the one directly under the pod (kubepods)
 * anchor; cgroups below it (a container's own children, docker-in-docker
 * inside a pod) belong to it. Without a pod above it a container is only a
 * candidate: a kind/k3s/minikube node container or an outer docker-in-docker
 * level gives way to the container inside it. */
/* Podman's pods (cgroupfs): <parent>/<pod id>/libpod-<id> and
 * <parent>/<pod id>/conmon. The pod id looks like a bare container id: the
 * segment after it says it was the pod's. Then conmon is conmon, and a
 * libpod-<id> below is the container (the pod context above still applies). */
static void podman_pod_seg(struct seg cur, const char *p, const char *end, const char **rt,
			   enum cgroup_kind *kind, bool *found)
{
	const char *slash, *nrt;
	enum cgroup_kind nk;
	char nid[ID_LEN + 1];
	struct seg nx;

	if (!is_id(cur.p, cur.n) || p >= end)
		return;
	slash = memchr(p, '/', (size_t)(end - p));
	nx.p = p;
	nx.n = slash ? (size_t)(slash - p) : (size_t)(end - p);
	if (eq(nx, "conmon")) {
		*kind = CGROUP_CONMON;
		*rt = "podman";
	} else if (container_seg(nx, cur, &nrt, &nk, nid) && !strcmp(nrt, "podman")) {
		*found = false;
	}
}

static void classify_path(const char *p, size_t n, struct path_result *r)
{
	struct seg prev = { "", 0 }, cur;
	const char *end = p + n;
	enum cgroup_qos qos = CGROUP_QOS_NONE;
	char uid[40] = "";
	bool have_pod = false, pod_after_container = false, settled = false;
	/* ".." above the pod: a cgroup-namespace view hides the QoS level. */
	bool hidden = false;

	memset(r, 0, sizeof(*r));
	while (p < end && !settled) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *rt;
		enum cgroup_kind kind = CGROUP_CONTAINER;
		char id[ID_LEN + 1];
		struct seg slice;
		bool found = false;

		cur.p = p;
		cur.n = slash ? (size_t)(slash - p) : (size_t)(end - p);
		p = slash ? slash + 1 : end;
		if (!cur.n)
			continue;
		if (!have_pod && eq(cur, ".."))
			hidden = true;
		if (colon_seg(cur, &slice, &rt, id)) {
			if (pod_seg(slice, uid, sizeof(uid), &qos))
				have_pod = true;
			else if (!have_pod)
				qos_seg(slice, &qos);
			found = true;
		} else if (pod_seg(cur, uid, sizeof(uid), &qos)) {
			have_pod = true;
			pod_after_container = true;
		} else if (!have_pod && qos_seg(cur, &qos)) {
			/* level before the pod */
		} else if (container_seg(cur, prev, &rt, &kind, id)) {
			found = true;
			podman_pod_seg(cur, p, end, &rt, &kind, &found);
		}
		if (found) {
			r->kind = kind;
			r->runtime = rt;
			memcpy(r->id, kind == CGROUP_CONMON ? "" : id,
			       kind == CGROUP_CONMON ? 1 : sizeof(id));
			if (have_pod) {
				memcpy(r->uid, uid, sizeof(uid));
				r->qos = qos != CGROUP_QOS_NONE ? qos :
					 hidden ? CGROUP_QOS_NONE : CGROUP_QOS_GUARANTEED;
				settled = true;
			} else {
				r->uid[0] = '\0';
				r->qos = CGROUP_QOS_NONE;
				qos = CGROUP_QOS_NONE;
			}
			pod_after_container = false;
		}
		prev = cur;
	}
	if (have_pod && pod_after_container) {
		/* A pod-level cgroup (no container below it). */
		r->kind = CGROUP_POD_ONLY;
		r->runtime = NULL;
		r->id[0] = '\0';
		memcpy(r->uid, uid, sizeof(uid));
		r->qos = qos != CGROUP_QOS_NONE ? qos :
			 hidden ? CGROUP_QOS_NONE : CGROUP_QOS_GUARANTEED;
	}
}

static int rank(enum cgroup_kind k)
{
	switch (k) {
	case CGROUP_CONTAINER: return 4;
	case CGROUP_SANDBOX: return 4;
	case CGROUP_CONMON: return 3;
	case CGROUP_POD_ONLY: return 2;
	case CGROUP_HOST: return 1;
	}
	return 0;
}

int cgroup__classify(const char *text, size_t len, struct cgroup_info *out)
{
	const char *p = text, *end = text + len;
	bool v1 = false, v2 = false, any = false, bad = false;
	struct path_result best, r;
	int best_rank = 0;

	memset(out, 0, sizeof(*out));
	memset(&best, 0, sizeof(best));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end, *c1, *c2;
		size_t i;

		c1 = memchr(p, ':', (size_t)(le - p));
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(le - c1 - 1)) : NULL;
		if (le == p) {
			p = le + 1;
			continue;
		}
		/* The path may be empty, relative to a cgroup namespace root
		 * ("../../kubepods-...") or "/": the line still counts. */
		if (!c1 || !c2 || c1 == p) {
			bad = true;
			break;
		}
		for (i = 0; p + i < c1; i++)
			if (p[i] < '0' || p[i] > '9')
				bad = true;
		if (memchr(p, '\0', (size_t)(le - p)))
			bad = true;
		if (bad)
			break;
		if (c1 - p == 1 && p[0] == '0' && c2 == c1 + 1)
			v2 = true;
		else
			v1 = true;
		any = true;
		classify_path(c2 + 1, (size_t)(le - c2 - 1), &r);
		if (rank(r.kind) > best_rank) {
			best = r;
			best_rank = rank(r.kind);
		}
		p = nl ? nl + 1 : end;
	}
	if (bad || !any) {
		out->version = CGROUP_V2;
		return -EINVAL;
	}
	out->version = v1 && v2 ? CGROUP_V1_HYBRID : v1 ? CGROUP_V1 : CGROUP_V2;
	out->kind = best.kind;
	out->qos = best.qos;
	if (best.runtime)
		snprintf(out->runtime, sizeof(out->runtime), "%s", best.runtime);
	snprintf(out->container_id, sizeof(out->container_id), "%s", best.id);
	snprintf(out->pod_uid, sizeof(out->pod_uid), "%s", best.uid);
	return 0;
}

const char *cgroup__kind_name(enum cgroup_kind k)
{
	switch (k) {
	case CGROUP_HOST: return "host";
	case CGROUP_CONTAINER: return "container";
	case CGROUP_SANDBOX: return "sandbox";
	case CGROUP_CONMON: return "conmon";
	case CGROUP_POD_ONLY: return "pod-only";
	}
	return "host";
}

const char *cgroup__qos_name(enum cgroup_qos q)
{
	switch (q) {
	case CGROUP_QOS_GUARANTEED: return "guaranteed";
	case CGROUP_QOS_BURSTABLE: return "burstable";
	case CGROUP_QOS_BESTEFFORT: return "besteffort";
	case CGROUP_QOS_NONE: return "none";
	}
	return "none";
}

const char *cgroup__version_name(enum cgroup_version v)
{
	switch (v) {
	case CGROUP_V1: return "v1";
	case CGROUP_V2: return "v2";
	case CGROUP_V1_HYBRID: return "v1+hybrid";
	}
	return "v2";
}

char *cgroup__to_json(const struct cgroup_info *info)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;

	if (!o)
		return NULL;
	if (cJSON_AddStringToObject(o, "runtime", info->runtime[0] ? info->runtime : "none") &&
	    cJSON_AddStringToObject(o, "container_id", info->container_id) &&
	    cJSON_AddStringToObject(o, "pod_uid", info->pod_uid) &&
	    cJSON_AddStringToObject(o, "qos", cgroup__qos_name(info->qos)) &&
	    cJSON_AddStringToObject(o, "kind", cgroup__kind_name(info->kind)) &&
	    cJSON_AddStringToObject(o, "cgroup_version", cgroup__version_name(info->version)))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}
