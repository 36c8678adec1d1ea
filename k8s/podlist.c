// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/podlist.h"
#include "shm/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define fail(e, err, errlen, ...) (kmon_err__errno(err, errlen, e, __VA_ARGS__), (void *)NULL)

/* Counts one skipped part; the first one's reason is kept for the log. */
static void skip(struct podlist *pl, unsigned *counter, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void skip(struct podlist *pl, unsigned *counter, const char *fmt, ...)
{
	va_list ap;

	if (*counter < UINT32_MAX)
		(*counter)++;
	if (pl->first_skip[0])
		return;
	va_start(ap, fmt);
	vsnprintf(pl->first_skip, sizeof(pl->first_skip), fmt, ap);
	va_end(ap);
	/* It quotes what the kubelet sent and ends up in a log line: no
	 * control characters (a forged line break would forge a log line). */
	for (char *c = pl->first_skip; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

/* A required metadata string; why names the field and what is wrong with it. */
static bool meta_str(const cJSON *md, const char *key, char *out, size_t cap, char *why,
		     size_t whylen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, key);
	size_t n;

	if (!v || cJSON_IsNull(v)) {
		snprintf(why, whylen, "metadata.%s is missing", key);
		return false;
	}
	if (!cJSON_IsString(v) || !v->valuestring) {
		snprintf(why, whylen, "metadata.%s is not a string", key);
		return false;
	}
	n = strlen(v->valuestring);
	if (!n || n >= cap) {
		snprintf(why, whylen, "metadata.%s is %s (%zu bytes, at most %zu)", key,
			 n ? "too long" : "empty", n, cap - 1);
		return false;
	}
	memcpy(out, v->valuestring, n + 1);
	return true;
}

static bool is_hex64(const char *s)
{
	size_t k;

	for (k = 0; k < 64; k++)
		if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')))
			return false;
	return s[64] == '\0';
}

/* "<scheme>://<64 hex>" or a bare "<64 hex>" -> runtime + id. The id is what
 * matches a cgroup, so any scheme is taken (its name, if short, as the
 * runtime); ids of other shapes cannot match one. */
static bool split_id(const char *s, char *runtime, size_t rcap, char *id)
{
	static const struct { const char *scheme, *runtime; } known[] = {
		{ "containerd", "containerd" },
		{ "cri-o", "cri-o" },
		{ "docker", "docker" },
	};
	const char *sep = strstr(s, "://");
	size_t i, n;

	runtime[0] = '\0';
	if (sep) {
		n = (size_t)(sep - s);
		for (i = 0; i < n; i++) {
			char c = s[i];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			      c == '.' || c == '+'))
				return false;
		}
		if (!n || n >= rcap)
			return false;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strlen(known[i].scheme) == n && !memcmp(s, known[i].scheme, n))
				break;
		snprintf(runtime, rcap, "%.*s", (int)n,
			 i < sizeof(known) / sizeof(known[0]) ? known[i].runtime : s);
		s = sep + 3;
	}
	if (strlen(s) != 64 || !is_hex64(s))
		return false;
	memcpy(id, s, 65);
	return true;
}

static const char *const status_keys[] = { "containerStatuses", "initContainerStatuses",
					    "ephemeralContainerStatuses" };
static const char *const status_kinds[] = { "container", "init", "ephemeral" };

enum walk_mode {
	WALK_COUNT,    /* count usable ids (*cur, *prev) and count every skipped part */
	WALK_CURRENT,  /* add current instances, up to limit */
	WALK_PREVIOUS, /* add previous instances, up to limit */
};

struct walk {
	struct podlist *pl;
	struct podlist_pod *p;
	enum walk_mode mode;
	unsigned limit;
	unsigned cur, prev;
};

/* One containerID string of a status entry: counted or added. */
static void take_id(struct walk *w, const cJSON *v, const char *name, const char *kind,
		    const char *where, bool previous)
{
	struct podlist_container *c;
	char runtime[sizeof(c->runtime)], id[sizeof(c->id)];

	if (!v || cJSON_IsNull(v))
		return;
	if (!cJSON_IsString(v) || !v->valuestring) {
		if (w->mode == WALK_COUNT)
			skip(w->pl, &w->pl->skipped.fields, "pod %s/%s: %s of %s is not a string",
			     w->p->namespace, w->p->name, where, name);
		return;
	}
	/* Pending containers have an empty id: nothing to match, nothing odd. */
	if (!v->valuestring[0])
		return;
	if (!split_id(v->valuestring, runtime, sizeof(runtime), id)) {
		if (w->mode == WALK_COUNT)
			skip(w->pl, &w->pl->skipped.ids,
			     "pod %s/%s: %s of %s is not [<scheme>://]<64 hex> (%.40s)",
			     w->p->namespace, w->p->name, where, name, v->valuestring);
		return;
	}
	if (w->mode == WALK_COUNT) {
		if (previous)
			w->prev++;
		else
			w->cur++;
		return;
	}
	if (previous != (w->mode == WALK_PREVIOUS) || w->p->n_containers >= w->limit)
		return;
	c = &w->p->containers[w->p->n_containers++];
	memset(c, 0, sizeof(*c));
	memcpy(c->runtime, runtime, sizeof(runtime));
	memcpy(c->id, id, sizeof(id));
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->kind, sizeof(c->kind), "%s", kind);
	c->previous = previous;
}

/* Every status list of one pod, in the order the kubelet writes them. */
static void walk_statuses(struct walk *w, const cJSON *st)
{
	for (size_t k = 0; k < sizeof(status_keys) / sizeof(status_keys[0]); k++) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(st, status_keys[k]), *cs;

		if (!list || cJSON_IsNull(list))
			continue;
		if (!cJSON_IsArray(list)) {
			if (w->mode == WALK_COUNT)
				skip(w->pl, &w->pl->skipped.fields,
				     "pod %s/%s: status.%s is not an array", w->p->namespace,
				     w->p->name, status_keys[k]);
			continue;
		}
		cJSON_ArrayForEach(cs, list) {
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(cs, "name");
			const cJSON *last, *term;
			size_t n;

			n = cJSON_IsString(name) && name->valuestring ? strlen(name->valuestring) : 0;
			if (!cJSON_IsObject(cs) || !n || n >= sizeof(w->p->containers->name)) {
				if (w->mode == WALK_COUNT)
					skip(w->pl, &w->pl->skipped.fields,
					     "pod %s/%s: an entry of status.%s has no valid name",
					     w->p->namespace, w->p->name, status_keys[k]);
				continue;
			}
			take_id(w, cJSON_GetObjectItemCaseSensitive(cs, "containerID"),
				name->valuestring, status_kinds[k], "containerID", false);
			last = cJSON_GetObjectItemCaseSensitive(cs, "lastState");
			term = cJSON_IsObject(last) ?
				       cJSON_GetObjectItemCaseSensitive(last, "terminated") :
				       NULL;
			if (cJSON_IsObject(term))
				take_id(w, cJSON_GetObjectItemCaseSensitive(term, "containerID"),
					name->valuestring, status_kinds[k],
					"lastState.terminated.containerID", true);
		}
	}
}

/* Static pods: the kubelet names their cgroup after the config hash. A
 * mirror pod (the API server's copy) carries that hash in an annotation. */
static void static_pod(struct podlist_pod *p, const cJSON *md)
{
	const cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
	const cJSON *src, *mirror;

	if (!cJSON_IsObject(ann))
		return;
	src = cJSON_GetObjectItemCaseSensitive(ann, "kubernetes.io/config.source");
	mirror = cJSON_GetObjectItemCaseSensitive(ann, "kubernetes.io/config.mirror");
	if (cJSON_IsString(src) && src->valuestring &&
	    (!strcmp(src->valuestring, "file") || !strcmp(src->valuestring, "http")))
		p->is_static = true;
	if (cJSON_IsString(mirror) && mirror->valuestring && mirror->valuestring[0] &&
	    strlen(mirror->valuestring) < sizeof(p->uid) && strcmp(mirror->valuestring, p->uid)) {
		memcpy(p->api_uid, p->uid, sizeof(p->uid));
		snprintf(p->uid, sizeof(p->uid), "%s", mirror->valuestring);
		p->is_static = true;
	}
}

/* Max-min fair shares of the instance bound: the largest level L with
 * sum(min(want, L)) <= bound, then what is left one by one in list order. */
static void share_out(const unsigned *want, unsigned *alloc, unsigned n, unsigned bound)
{
	unsigned long long total = 0;
	unsigned lo = 0, hi = 0, i, left;

	if (!n)
		return;
	for (i = 0; i < n; i++) {
		total += want[i];
		if (want[i] > hi)
			hi = want[i];
	}
	if (total <= bound) {
		memcpy(alloc, want, n * sizeof(*alloc));
		return;
	}
	while (lo < hi) {
		unsigned mid = lo + (hi - lo + 1) / 2;
		unsigned long long s = 0;
		for (i = 0; i < n; i++)
			s += want[i] < mid ? want[i] : mid;
		if (s <= bound)
			lo = mid;
		else
			hi = mid - 1;
	}
	left = bound;
	for (i = 0; i < n; i++) {
		alloc[i] = want[i] < lo ? want[i] : lo;
		left -= alloc[i];
	}
	for (i = 0; i < n && left; i++) {
		if (want[i] > alloc[i]) {
			alloc[i]++;
			left--;
		}
	}
}

struct podlist *podlist__parse(const char *json, size_t len, unsigned max_pods, char *err,
			       size_t errlen)
{
	const char *end = NULL;
	/* The end pointer, not cJSON_GetErrorPtr(): that one is a global and
	 * this runs on a thread pool. */
	cJSON *root = json ? cJSON_ParseWithLengthOpts(json, len, &end, false) : NULL;
	const cJSON *kind, *items, *it;
	const cJSON **status = NULL;
	unsigned *want = NULL, *alloc = NULL, *cur = NULL;
	struct podlist *pl = NULL;
	const cJSON *arr;
	unsigned n, itemno = 0, i;
	int e;

	if (!root)
		return fail(EINVAL, err, errlen, "not JSON (error near byte %ld of %zu)",
			    end && json ? (long)(end - json) : 0L, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return fail(EINVAL, err, errlen, "JSON but not a PodList (not an object)");
	}
	/* Kubelets say PodList; "List" is what kubectl and some proxies write,
	 * and a kind-less object with items is what trimmed captures hold. A
	 * "Pod" only counts when it carries an items array. */
	kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
	items = cJSON_GetObjectItemCaseSensitive(root, "items");
	if (kind && !(cJSON_IsString(kind) && kind->valuestring &&
		      (!strcmp(kind->valuestring, "PodList") || !strcmp(kind->valuestring, "List") ||
		       (!strcmp(kind->valuestring, "Pod") && cJSON_IsArray(items))))) {
		cJSON_Delete(root);
		return fail(EINVAL, err, errlen,
			    "JSON but not a PodList (kind is not \"PodList\", \"List\" or "
			    "\"Pod\" with items)");
	}
	if (!cJSON_IsArray(items) && !cJSON_IsNull(items)) {
		cJSON_Delete(root);
		return fail(EINVAL, err, errlen, items ? "PodList items is not an array" :
							 "PodList has no items array");
	}
	n = cJSON_IsArray(items) ? (unsigned)cJSON_GetArraySize(items) : 0;
	if (n > max_pods)
		n = max_pods;
	pl = calloc(1, sizeof(*pl));
	if (!pl || (n && (!(pl->pods = calloc(n, sizeof(*pl->pods))) ||
			  !(status = calloc(n, sizeof(*status))) ||
			  !(want = calloc(n, sizeof(*want))) ||
			  !(cur = calloc(n, sizeof(*cur))) ||
			  !(alloc = calloc(n, sizeof(*alloc))))))
		goto nomem;
	/* Pass 1: usable pods, and how many instances each one has. */
	arr = cJSON_IsArray(items) ? items : NULL;
	cJSON_ArrayForEach(it, arr) {
		struct podlist_pod *p;
		const cJSON *md, *st;
		char why[120];
		struct walk w;

		itemno++;
		if (pl->n_pods >= n) {
			skip(pl, &pl->skipped.items,
			     "pod #%u and later: the list has more than the %u pods allowed", itemno,
			     max_pods);
			continue;
		}
		p = &pl->pods[pl->n_pods];
		md = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "metadata") : NULL;
		if (!cJSON_IsObject(md)) {
			skip(pl, &pl->skipped.items, "pod #%u: %s", itemno,
			     cJSON_IsNull(it) ? "null item" : "metadata is missing or not an object");
			continue;
		}
		if (!meta_str(md, "name", p->name, sizeof(p->name), why, sizeof(why)) ||
		    !meta_str(md, "namespace", p->namespace, sizeof(p->namespace), why,
			      sizeof(why)) ||
		    !meta_str(md, "uid", p->uid, sizeof(p->uid), why, sizeof(why))) {
			skip(pl, &pl->skipped.items, "pod #%u: %s", itemno, why);
			memset(p, 0, sizeof(*p));
			continue;
		}
		static_pod(p, md);
		st = cJSON_GetObjectItemCaseSensitive(it, "status");
		if (st && !cJSON_IsNull(st) && !cJSON_IsObject(st)) {
			skip(pl, &pl->skipped.fields, "pod %s/%s: status is not an object",
			     p->namespace, p->name);
			st = NULL;
		}
		status[pl->n_pods] = cJSON_IsObject(st) ? st : NULL;
		memset(&w, 0, sizeof(w));
		w.pl = pl;
		w.p = p;
		w.mode = WALK_COUNT;
		if (status[pl->n_pods])
			walk_statuses(&w, st);
		cur[pl->n_pods] = w.cur;
		want[pl->n_pods] = w.cur + w.prev;
		pl->n_pods++;
	}
	/* Pass 2: each pod's share of the bound, current instances first. */
	share_out(want, alloc, pl->n_pods, PODLIST_MAX_INSTANCES);
	for (i = 0; i < pl->n_pods; i++) {
		struct podlist_pod *p = &pl->pods[i];
		struct walk w;

		p->cap = alloc[i];
		p->containers = calloc(alloc[i] ? alloc[i] : 1, sizeof(*p->containers));
		if (!p->containers)
			goto nomem;
		if (want[i] > alloc[i]) {
			p->skipped = want[i] - alloc[i];
			pl->skipped.instances += p->skipped;
			if (!pl->first_skip[0])
				snprintf(pl->first_skip, sizeof(pl->first_skip),
					 "pod %.40s/%.40s: %u of its %u container instances over "
					 "the %u the whole list may hold",
					 p->namespace, p->name, p->skipped, want[i],
					 PODLIST_MAX_INSTANCES);
		}
		if (!status[i] || !alloc[i])
			continue;
		memset(&w, 0, sizeof(w));
		w.pl = pl;
		w.p = p;
		w.limit = alloc[i];
		w.mode = WALK_CURRENT;
		walk_statuses(&w, status[i]);
		if (alloc[i] > cur[i]) {
			w.mode = WALK_PREVIOUS;
			walk_statuses(&w, status[i]);
		}
	}
	free(status);
	free(want);
	free(cur);
	free(alloc);
	cJSON_Delete(root);
	return pl;
nomem:
	kmon_err__errno(err, errlen, ENOMEM, "out of memory");
	e = errno;
	free(status);
	free(want);
	free(cur);
	free(alloc);
	cJSON_Delete(root);
	podlist__free(pl);
	errno = e;
	return NULL;
}

unsigned podlist__skipped_total(const struct podlist *pl)
{
	unsigned long long t;

	if (!pl)
		return 0;
	t = (unsigned long long)pl->skipped.items + pl->skipped.instances + pl->skipped.ids +
	    pl->skipped.fields;
	return t > UINT32_MAX ? UINT32_MAX : (unsigned)t;
}

void podlist__free(struct podlist *pl)
{
	unsigned i;

	if (!pl)
		return;
	for (i = 0; i < pl->n_pods; i++)
		free(pl->pods[i].containers);
	free(pl->pods);
	free(pl);
}
