// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/aggregate/aggtable.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "shm/common/metrics_text.h"
#include "shm/meta.h"

#define MAX_KEYS 65536u

struct top {
	char name[KMON_FILENAME_LEN + 1];
	uint64_t count;
};

struct series {
	bool used;
	char *ns, *pod, *container;
	uint64_t hash;
	uint64_t exec, alloc, alloc_bytes, free_n, free_bytes, free_known_bytes;
	double last_seen;
	struct top *top; /* top_n entries */
};

struct aggtable {
	unsigned max_series, top_n, cap, n;
	struct series *s; /* open addressing, cap slots */
	uint32_t *by_key;  /* container key -> slot + 1; 0 = not cached */
	uint64_t overflow;
};

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h * 0x100000001b3ull; /* separator */
}

static uint64_t hash3(const char *a, const char *b, const char *c)
{
	return fnv(fnv(fnv(0xcbf29ce484222325ull, a), b), c);
}

struct aggtable *aggtable__new(unsigned max_series, unsigned top_n)
{
	struct aggtable *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->max_series = max_series ? max_series : 10000;
	t->top_n = top_n ? top_n : 5;
	t->cap = 16;
	while (t->cap < t->max_series * 2)
		t->cap *= 2;
	t->s = calloc(t->cap, sizeof(*t->s));
	t->by_key = calloc(MAX_KEYS, sizeof(*t->by_key));
	if (!t->s || !t->by_key) {
		free(t->s);
		free(t->by_key);
		free(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

static void series_clear(struct series *s)
{
	free(s->ns);
	free(s->pod);
	free(s->container);
	free(s->top);
	memset(s, 0, sizeof(*s));
}

void aggtable__free(struct aggtable *t)
{
	unsigned i;

	if (!t)
		return;
	for (i = 0; i < t->cap; i++)
		if (t->s[i].used)
			series_clear(&t->s[i]);
	free(t->s);
	free(t->by_key);
	free(t);
}

static struct series *lookup(struct aggtable *t, const char *ns, const char *pod,
			     const char *ctr, uint32_t *slot)
{
	uint64_t h = hash3(ns, pod, ctr);
	unsigned i = (unsigned)h & (t->cap - 1);
	struct series *s;

	for (;;) {
		s = &t->s[i];
		if (!s->used)
			break;
		if (s->hash == h && !strcmp(s->ns, ns) && !strcmp(s->pod, pod) &&
		    !strcmp(s->container, ctr)) {
			*slot = i;
			return s;
		}
		i = (i + 1) & (t->cap - 1);
	}
	if (t->n >= t->max_series)
		return NULL;
	s->ns = strdup(ns);
	s->pod = strdup(pod);
	s->container = strdup(ctr);
	s->top = calloc(t->top_n, sizeof(*s->top));
	if (!s->ns || !s->pod || !s->container || !s->top) {
		series_clear(s);
		return NULL;
	}
	s->used = true;
	s->hash = h;
	t->n++;
	*slot = i;
	return s;
}

/* Space-saving: a filename not in the table replaces the smallest entry and
 * inherits its count, so heavy hitters are kept with bounded memory. */
static void count_filename(struct aggtable *t, struct series *s, const char *fn)
{
	char name[KMON_FILENAME_LEN + 1];
	unsigned i, min = 0;

	memcpy(name, fn, KMON_FILENAME_LEN);
	name[KMON_FILENAME_LEN] = '\0';
	/* Labels and JSON need valid text: anything but printable ASCII
	 * becomes '?' (filenames are bytes, not UTF-8). */
	for (i = 0; name[i]; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			name[i] = '?';
	for (i = 0; i < t->top_n; i++) {
		if (s->top[i].count && !strcmp(s->top[i].name, name)) {
			s->top[i].count++;
			return;
		}
		if (s->top[i].count < s->top[min].count)
			min = i;
	}
	memcpy(s->top[min].name, name, sizeof(name));
	s->top[min].count++;
}

void aggtable__add(struct aggtable *t, const struct kmon_event *ev, const struct kmon_meta *meta,
		   double now)
{
	uint32_t key = meta ? meta->key : 0, slot;
	struct series *s;

	if (key && key < MAX_KEYS && t->by_key[key] && t->s[t->by_key[key] - 1].used) {
		s = &t->s[t->by_key[key] - 1];
	} else {
		s = lookup(t, meta ? meta->namespace : "", meta ? meta->pod : "",
			   meta ? meta->container : "", &slot);
		if (!s) {
			t->overflow++;
			return;
		}
		if (key && key < MAX_KEYS)
			t->by_key[key] = slot + 1;
	}
	s->last_seen = now;
	switch (ev->event_type) {
	case KMON_EV_MEMORY_ALLOC:
		s->alloc++;
		s->alloc_bytes += ev->size;
		break;
	case KMON_EV_MEMORY_FREE:
		s->free_n++;
		if (ev->flags & KMON_EVF_SIZE_KNOWN) {
			s->free_bytes += ev->size;
			s->free_known_bytes += ev->size;
		}
		break;
	case KMON_EV_PROCESS_EXEC:
		s->exec++;
		count_filename(t, s, ev->data.filename);
		break;
	default:
		break;
	}
}

void aggtable__meta_changed(struct aggtable *t, uint32_t key)
{
	if (key < MAX_KEYS)
		t->by_key[key] = 0;
}

unsigned aggtable__expire(struct aggtable *t, double now, double expire)
{
	struct series *old = t->s, *n;
	unsigned i, dropped = 0, cap = t->cap;

	for (i = 0; i < cap; i++)
		if (old[i].used && now - old[i].last_seen >= expire)
			dropped++;
	if (!dropped)
		return 0;
	/* Rebuild: open addressing has no cheap delete. */
	n = calloc(cap, sizeof(*n));
	if (!n)
		return 0;
	for (i = 0; i < cap; i++) {
		unsigned j;
		if (!old[i].used)
			continue;
		if (now - old[i].last_seen >= expire) {
			series_clear(&old[i]);
			continue;
		}
		j = (unsigned)old[i].hash & (cap - 1);
		while (n[j].used)
			j = (j + 1) & (cap - 1);
		n[j] = old[i];
	}
	free(old);
	t->s = n;
	t->n -= dropped;
	memset(t->by_key, 0, MAX_KEYS * sizeof(*t->by_key));
	return dropped;
}

unsigned aggtable__series(const struct aggtable *t)
{
	return t->n;
}

uint64_t aggtable__overflow(const struct aggtable *t)
{
	return t->overflow;
}

static uint64_t outstanding(const struct series *s)
{
	return s->alloc_bytes > s->free_known_bytes ? s->alloc_bytes - s->free_known_bytes : 0;
}

int aggtable__write_metrics(const struct aggtable *t, struct metrics_text *m)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "kmon_exec_total", "counter", "Processes exec'd" },
		{ "kmon_alloc_total", "counter", "Kernel memory allocations (kmalloc)" },
		{ "kmon_alloc_bytes_total", "counter", "Bytes allocated by kmalloc" },
		{ "kmon_free_total", "counter", "Kernel memory frees (kfree)" },
		{ "kmon_free_bytes_total", "counter", "Bytes freed, where the allocation size was known" },
		{ "kmon_outstanding_bytes", "gauge",
		  "Bytes allocated and not (yet) seen freed, from frees of known size" },
	};
	static const char *const ln[] = { "namespace", "pod", "container", "filename" };
	unsigned f, i, k;
	int r = 0;

	for (f = 0; f < 6 && !r; f++) {
		r = metrics_text__family(m, fam[f].name, fam[f].type, fam[f].help);
		for (i = 0; i < t->cap && !r; i++) {
			const struct series *s = &t->s[i];
			const char *lv[] = { s->ns, s->pod, s->container };
			uint64_t v[] = { s->exec, s->alloc, s->alloc_bytes, s->free_n, s->free_bytes,
					 outstanding(s) };
			if (s->used)
				r = metrics_text__sample_u64(m, fam[f].name, ln, lv, 3, v[f]);
		}
	}
	if (!r)
		r = metrics_text__family(m, "kmon_exec_filename_total", "counter",
					 "Execs of the most frequent filenames (space-saving top-N)");
	for (i = 0; i < t->cap && !r; i++) {
		const struct series *s = &t->s[i];
		if (!s->used)
			continue;
		for (k = 0; k < t->top_n && !r; k++) {
			const char *lv[] = { s->ns, s->pod, s->container, s->top[k].name };
			if (s->top[k].count)
				r = metrics_text__sample_u64(m, "kmon_exec_filename_total", ln, lv, 4,
							     s->top[k].count);
		}
	}
	if (!r)
		r = metrics_text__family(m, "kmon_aggregate_series", "gauge",
					 "Series (namespace, pod, container) held");
	if (!r)
		r = metrics_text__sample_u64(m, "kmon_aggregate_series", NULL, NULL, 0, t->n);
	if (!r)
		r = metrics_text__family(m, "kmon_series_overflow_total", "counter",
					 "Events not aggregated because the series limit was reached");
	if (!r)
		r = metrics_text__sample_u64(m, "kmon_series_overflow_total", NULL, NULL, 0,
					     t->overflow);
	return r;
}

int aggtable__write_summary(const struct aggtable *t, FILE *out)
{
	cJSON *root = cJSON_CreateObject(), *arr;
	char *s;
	unsigned i, k;

	if (!root)
		return -ENOMEM;
	arr = cJSON_AddArrayToObject(root, "series");
	for (i = 0; arr && i < t->cap; i++) {
		const struct series *x = &t->s[i];
		cJSON *o, *top;
		if (!x->used)
			continue;
		o = cJSON_CreateObject();
		if (!o)
			break;
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "namespace", x->ns);
		cJSON_AddStringToObject(o, "pod", x->pod);
		cJSON_AddStringToObject(o, "container", x->container);
		cJSON_AddNumberToObject(o, "exec", (double)x->exec);
		cJSON_AddNumberToObject(o, "alloc", (double)x->alloc);
		cJSON_AddNumberToObject(o, "alloc_bytes", (double)x->alloc_bytes);
		cJSON_AddNumberToObject(o, "free", (double)x->free_n);
		cJSON_AddNumberToObject(o, "free_bytes", (double)x->free_bytes);
		cJSON_AddNumberToObject(o, "outstanding_bytes", (double)outstanding(x));
		top = cJSON_AddArrayToObject(o, "top_exec");
		for (k = 0; top && k < t->top_n; k++) {
			cJSON *e;
			if (!x->top[k].count)
				continue;
			e = cJSON_CreateObject();
			if (!e)
				break;
			cJSON_AddStringToObject(e, "filename", x->top[k].name);
			cJSON_AddNumberToObject(e, "count", (double)x->top[k].count);
			cJSON_AddItemToArray(top, e);
		}
	}
	cJSON_AddNumberToObject(root, "overflow", (double)t->overflow);
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!s)
		return -ENOMEM;
	fprintf(out, "%s\n", s);
	free(s);
	return 0;
}
