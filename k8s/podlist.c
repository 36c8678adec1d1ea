// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/podlist.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static void *fail(int e, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void *fail(int e, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return NULL;
}

/* Copies a string field; false when missing, not a string, or too long. */
static bool get_str(const cJSON *o, const char *key, char *out, size_t cap, bool required)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	size_t n;

	if (!v || cJSON_IsNull(v)) {
		out[0] = '\0';
		return !required;
	}
	if (!cJSON_IsString(v) || !v->valuestring)
		return false;
	n = strlen(v->valuestring);
	if (n >= cap || (required && n == 0))
		return false;
	memcpy(out, v->valuestring, n + 1);
	return true;
}

/* A required metadata string; err names the field and what is wrong with it. */
static bool meta_str(const cJSON *md, const char *key, char *out, size_t cap, unsigned podno,
		     char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, key);
	size_t n;

	if (!v || cJSON_IsNull(v)) {
		fail(EINVAL, err, errlen, "pod #%u: metadata.%s is missing", podno, key);
		return false;
	}
	if (!cJSON_IsString(v) || !v->valuestring) {
		fail(EINVAL, err, errlen, "pod #%u: metadata.%s is not a string", podno, key);
		return false;
	}
	n = strlen(v->valuestring);
	if (!n || n >= cap) {
		fail(EINVAL, err, errlen, "pod #%u: metadata.%s is %s (%zu bytes, at most %zu)",
		     podno, key, n ? "too long" : "empty", n, cap - 1);
		return false;
	}
	memcpy(out, v->valuestring, n + 1);
	return true;
}

/* "containerd://<64 hex>" -> runtime + id. Unknown schemes are skipped. */
static bool split_id(const char *s, char *runtime, size_t rcap, char *id, size_t icap)
{
	static const struct { const char *scheme, *runtime; } schemes[] = {
		{ "containerd://", "containerd" },
		{ "cri-o://", "cri-o" },
		{ "docker://", "docker" },
	};
	size_t i, n;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		n = strlen(schemes[i].scheme);
		if (strncmp(s, schemes[i].scheme, n))
			continue;
		if (strlen(s + n) != 64 || strlen(s + n) >= icap)
			return false;
		for (size_t k = 0; k < 64; k++) {
			char c = s[n + k];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
				return false;
		}
		snprintf(runtime, rcap, "%s", schemes[i].runtime);
		memcpy(id, s + n, 65);
		return true;
	}
	return false;
}

static int add_container(struct podlist_pod *p, const char *name, const char *kind,
			 const char *cid, bool previous)
{
	struct podlist_container *c;

	char runtime[sizeof(c->runtime)], id[sizeof(c->id)];

	/* Ids of unknown runtimes cannot match a cgroup: skipped, not counted. */
	if (!split_id(cid, runtime, sizeof(runtime), id, sizeof(id)))
		return 0;
	if (p->n_containers >= p->cap)
		return -E2BIG;
	c = &p->containers[p->n_containers];
	memset(c, 0, sizeof(*c));
	memcpy(c->runtime, runtime, sizeof(runtime));
	memcpy(c->id, id, sizeof(id));
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->kind, sizeof(c->kind), "%s", kind);
	c->previous = previous;
	p->n_containers++;
	return 0;
}

static int add_statuses(struct podlist_pod *p, const cJSON *status, const char *key,
			const char *kind, char *err, size_t errlen)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(status, key), *cs;
	char name[254], cid[128];
	int r;

	if (!list || cJSON_IsNull(list))
		return 0;
	if (!cJSON_IsArray(list)) {
		fail(EINVAL, err, errlen, "pod %s: status.%s is not an array", p->name, key);
		return -EINVAL;
	}
	cJSON_ArrayForEach(cs, list) {
		const cJSON *last, *term;
		if (!cJSON_IsObject(cs) || !get_str(cs, "name", name, sizeof(name), true)) {
			fail(EINVAL, err, errlen, "pod %s: an entry of status.%s has no valid name",
			     p->name, key);
			return -EINVAL;
		}
		/* Pending containers have no id yet: nothing to match. */
		if (get_str(cs, "containerID", cid, sizeof(cid), false) && cid[0]) {
			r = add_container(p, name, kind, cid, false);
			if (r)
				goto big;
		}
		last = cJSON_GetObjectItemCaseSensitive(cs, "lastState");
		term = last ? cJSON_GetObjectItemCaseSensitive(last, "terminated") : NULL;
		if (term && cJSON_IsObject(term) &&
		    get_str(term, "containerID", cid, sizeof(cid), false) && cid[0]) {
			r = add_container(p, name, kind, cid, true);
			if (r)
				goto big;
		}
	}
	return 0;
big:
	fail(E2BIG, err, errlen, "pod %s has more than %d container instances", p->name,
	     PODLIST_MAX_CONTAINERS);
	return -E2BIG;
}

struct podlist *podlist__parse(const char *json, size_t len, unsigned max_pods, char *err,
			       size_t errlen)
{
	const char *end = NULL;
	/* The end pointer, not cJSON_GetErrorPtr(): that one is a global and
	 * this runs on a thread pool. */
	cJSON *root = json ? cJSON_ParseWithLengthOpts(json, len, &end, false) : NULL;
	const cJSON *kind, *items, *it;
	struct podlist *pl = NULL;
	unsigned n;
	int r;

	if (!root)
		return fail(EINVAL, err, errlen, "not JSON (error near byte %ld of %zu)",
			    end && json ? (long)(end - json) : 0L, len);
	kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
	if (!cJSON_IsObject(root) || !cJSON_IsString(kind) || strcmp(kind->valuestring, "PodList")) {
		cJSON_Delete(root);
		return fail(EINVAL, err, errlen, "JSON but not a PodList (kind is not \"PodList\")");
	}
	items = cJSON_GetObjectItemCaseSensitive(root, "items");
	if (!cJSON_IsArray(items) && !cJSON_IsNull(items)) {
		cJSON_Delete(root);
		return fail(EINVAL, err, errlen, items ? "PodList items is not an array" :
							 "PodList has no items array");
	}
	n = items ? (unsigned)cJSON_GetArraySize(items) : 0;
	if (n > max_pods) {
		cJSON_Delete(root);
		return fail(E2BIG, err, errlen, "PodList has %u pods, more than the %u allowed", n,
			    max_pods);
	}
	pl = calloc(1, sizeof(*pl));
	if (!pl || (n && !(pl->pods = calloc(n, sizeof(*pl->pods)))))
		goto nomem;
	cJSON_ArrayForEach(it, items) {
		struct podlist_pod *p = &pl->pods[pl->n_pods];
		const cJSON *md = cJSON_GetObjectItemCaseSensitive(it, "metadata");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "status");

		if (!cJSON_IsObject(md)) {
			fail(EINVAL, err, errlen, "pod #%u: metadata is missing or not an object",
			     pl->n_pods + 1);
			goto bad;
		}
		if (!meta_str(md, "name", p->name, sizeof(p->name), pl->n_pods + 1, err, errlen) ||
		    !meta_str(md, "namespace", p->namespace, sizeof(p->namespace), pl->n_pods + 1,
			      err, errlen) ||
		    !meta_str(md, "uid", p->uid, sizeof(p->uid), pl->n_pods + 1, err, errlen))
			goto bad;
		{
			/* Room for every status and its previous instance, capped. */
			static const char *const keys[] = { "containerStatuses",
							    "initContainerStatuses",
							    "ephemeralContainerStatuses" };
			unsigned want = 0;
			for (unsigned k = 0; k < 3 && cJSON_IsObject(st); k++) {
				const cJSON *l = cJSON_GetObjectItemCaseSensitive(st, keys[k]);
				if (cJSON_IsArray(l))
					want += 2 * (unsigned)cJSON_GetArraySize(l);
			}
			if (want > PODLIST_MAX_CONTAINERS)
				want = PODLIST_MAX_CONTAINERS;
			p->containers = calloc(want ? want : 1, sizeof(*p->containers));
			p->cap = want;
		}
		if (!p->containers)
			goto nomem;
		pl->n_pods++;
		if (!st || cJSON_IsNull(st))
			continue;
		if (!cJSON_IsObject(st)) {
			fail(EINVAL, err, errlen, "pod %s: status is not an object", p->name);
			goto bad;
		}
		if ((r = add_statuses(p, st, "containerStatuses", "container", err, errlen)) ||
		    (r = add_statuses(p, st, "initContainerStatuses", "init", err, errlen)) ||
		    (r = add_statuses(p, st, "ephemeralContainerStatuses", "ephemeral", err,
				      errlen)))
			goto bad;
	}
	cJSON_Delete(root);
	return pl;
nomem:
	fail(ENOMEM, err, errlen, "out of memory");
bad:
	r = errno;
	cJSON_Delete(root);
	podlist__free(pl);
	errno = r;
	return NULL;
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
