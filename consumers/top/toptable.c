// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/top/toptable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "shm/meta.h"

#define MAX_KEYS 65536u
#define SITES 4 /* call sites tracked per container */

struct site {
	uint64_t addr, count;
};

struct entry {
	const struct kmon_meta *meta; /* the client's; updated in place */
	uint64_t exec, alloc, alloc_bytes;       /* this window */
	uint64_t exec_total, alloc_total;
	int64_t held;
	struct site sites[SITES];
};

struct toptable {
	struct entry **by_key; /* key 0: processes outside any container */
	uint32_t *used;        /* keys with an entry, in order of arrival */
	size_t n_used;
	struct top_row *rows;
	size_t rows_cap;
	enum top_sort sort;
};

struct toptable *toptable__new(void)
{
	struct toptable *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->by_key = calloc(MAX_KEYS, sizeof(*t->by_key));
	t->used = calloc(MAX_KEYS, sizeof(*t->used));
	if (!t->by_key || !t->used) {
		toptable__free(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

void toptable__free(struct toptable *t)
{
	size_t i;

	if (!t)
		return;
	if (t->by_key)
		for (i = 0; i < t->n_used; i++)
			free(t->by_key[t->used[i]]);
	free(t->by_key);
	free(t->used);
	free(t->rows);
	free(t);
}

/* Space-saving: a new site replaces the least counted one and inherits its
 * count, so the top site is right for any heavy hitter in bounded memory. */
static void count_site(struct entry *e, uint64_t addr)
{
	unsigned i, min = 0;

	for (i = 0; i < SITES; i++) {
		if (e->sites[i].count && e->sites[i].addr == addr) {
			e->sites[i].count++;
			return;
		}
		if (e->sites[i].count < e->sites[min].count)
			min = i;
	}
	e->sites[min].addr = addr;
	e->sites[min].count++;
}

void toptable__add(struct toptable *t, const struct kmon_event *ev, const struct kmon_meta *meta)
{
	uint32_t key = ev->container_key < MAX_KEYS ? ev->container_key : 0;
	struct entry *e = t->by_key[key];

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return;
		t->by_key[key] = e;
		t->used[t->n_used++] = key;
	}
	if (meta)
		e->meta = meta;
	switch (ev->event_type) {
	case KMON_EV_MEMORY_ALLOC:
		e->alloc++;
		e->alloc_total++;
		e->alloc_bytes += ev->size;
		e->held += (int64_t)ev->size;
		count_site(e, ev->data.mem.call_site);
		break;
	case KMON_EV_MEMORY_FREE:
		if (ev->flags & KMON_EVF_SIZE_KNOWN)
			e->held -= (int64_t)ev->size;
		break;
	case KMON_EV_PROCESS_EXEC:
		e->exec++;
		e->exec_total++;
		break;
	default:
		break;
	}
}

static int cmp_d(double a, double b)
{
	return a < b ? 1 : a > b ? -1 : 0; /* descending */
}

static enum top_sort g_sort; /* qsort has no context argument */

static int cmp_rows(const void *pa, const void *pb)
{
	const struct top_row *a = pa, *b = pb;
	int c = 0;

	switch (g_sort) {
	case TOP_SORT_EXEC:
		c = cmp_d(a->exec_s, b->exec_s);
		break;
	case TOP_SORT_ALLOC:
		c = cmp_d(a->alloc_s, b->alloc_s);
		break;
	case TOP_SORT_BYTES:
		c = cmp_d(a->alloc_bytes_s, b->alloc_bytes_s);
		break;
	case TOP_SORT_HELD:
		c = cmp_d((double)a->held_bytes, (double)b->held_bytes);
		break;
	default:
		break;
	}
	if (!c && !(c = strcmp(a->ns, b->ns)) && !(c = strcmp(a->pod, b->pod)))
		c = strcmp(a->container, b->container);
	return c ? c : (a->key > b->key) - (a->key < b->key);
}

size_t toptable__snapshot(struct toptable *t, double elapsed_s, enum top_sort sort,
			  const char *ns_filter, const struct top_row **rows)
{
	size_t i, n = 0;
	unsigned k;

	if (elapsed_s <= 0)
		elapsed_s = 1;
	if (t->rows_cap < t->n_used) {
		struct top_row *r = realloc(t->rows, t->n_used * sizeof(*r));
		if (!r) {
			*rows = t->rows;
			return 0;
		}
		t->rows = r;
		t->rows_cap = t->n_used;
	}
	for (i = 0; i < t->n_used; i++) {
		struct entry *e = t->by_key[t->used[i]];
		const struct kmon_meta *m = e->meta;
		struct top_row *r = &t->rows[n];
		uint64_t best = 0;

		if (!e->exec && !e->alloc && !e->held)
			continue;
		r->key = t->used[i];
		r->ns = m ? m->namespace : "";
		r->pod = m ? m->pod : "";
		r->container = m ? m->container : "";
		if (ns_filter && *ns_filter && strcmp(r->ns, ns_filter))
			goto reset;
		r->exec_s = (double)e->exec / elapsed_s;
		r->alloc_s = (double)e->alloc / elapsed_s;
		r->alloc_bytes_s = (double)e->alloc_bytes / elapsed_s;
		r->held_bytes = e->held;
		r->exec = e->exec_total;
		r->alloc = e->alloc_total;
		r->top_call_site = 0;
		for (k = 0; k < SITES; k++)
			if (e->sites[k].count > best) {
				best = e->sites[k].count;
				r->top_call_site = e->sites[k].addr;
			}
		n++;
reset:
		e->exec = e->alloc = e->alloc_bytes = 0;
	}
	g_sort = sort;
	qsort(t->rows, n, sizeof(*t->rows), cmp_rows);
	*rows = t->rows;
	return n;
}

const char *top_sort_name(enum top_sort s)
{
	static const char *const names[TOP_SORT_MAX] = { "exec/s", "alloc/s", "MiB/s", "held",
							  "name" };
	return s < TOP_SORT_MAX ? names[s] : "?";
}
