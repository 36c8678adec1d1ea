// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/aggregate/aggtable.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "consumers/aggregate/memcg.h"
#include "shm/common/metrics_text.h"
#include "shm/meta.h"


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
	struct ledger *ledger; /* made at the first memory event */
	uint64_t oom_kills;
	/* memory cgroup: a pid seen in the container, its v2 cgroup id, the
	 * path found from them, and the last figures read */
	uint32_t probe_pid;
	uint64_t probe_cgid;
	char *memcg;
	struct memcg_kmem kmem;
	bool kmem_ok;
};

struct aggtable {
	unsigned max_series, top_n, cap, n;
	struct series *s; /* open addressing, cap slots */
	uint32_t *by_key;  /* container key -> slot + 1; 0 = not cached */
	uint64_t overflow;
	unsigned ledger_k;
	ledger_site_namer namer;
	void *namer_ctx;
	unsigned ledgers;
	uint64_t folded_gone; /* folds of series since expired */
	uint64_t frees_matched, frees_elsewhere, frees_unseen, frees_unmatched, ledger_nomem;
	uint64_t memcg_locate_fail, memcg_read_fail, memcg_parse_errors;
	bool memcg_on;
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
	t->ledger_k = 10;
	t->cap = 16;
	while (t->cap < t->max_series * 2)
		t->cap *= 2;
	t->s = calloc(t->cap, sizeof(*t->s));
	t->by_key = calloc(KMON_CONTAINER_KEYS, sizeof(*t->by_key));
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
	ledger__free(s->ledger);
	free(s->memcg);
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

/* create false: NULL when absent (errno ENOENT), without counting overflow. */
static struct series *lookup(struct aggtable *t, const char *ns, const char *pod,
			     const char *ctr, uint32_t *slot, bool create)
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
	errno = create ? ENOSPC : ENOENT;
	if (!create || t->n >= t->max_series)
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

int aggtable__set_ledger(struct aggtable *t, unsigned top_k, ledger_site_namer namer, void *ctx)
{
	if (!top_k || top_k > LEDGER_TOP_MAX || t->n)
		return -EINVAL;
	t->ledger_k = top_k;
	t->namer = namer;
	t->namer_ctx = ctx;
	return 0;
}

static void ledger_add(struct aggtable *t, struct series *s, const struct kmon_event *ev)
{
	if (!s->ledger) {
		s->ledger = ledger__new(t->ledger_k);
		if (!s->ledger) {
			t->ledger_nomem++;
			return;
		}
		t->ledgers++;
	}
	switch (ledger__add(s->ledger, ev)) {
	case LEDGER_FREE_ELSEWHERE:
		t->frees_elsewhere++;
		/* fall through */
	case LEDGER_FREE_CHARGED:
		t->frees_matched++;
		break;
	case LEDGER_FREE_UNSEEN:
		t->frees_unseen++;
		break;
	case LEDGER_FREE_UNMATCHED:
		t->frees_unmatched++;
		break;
	default:
		break;
	}
}

void aggtable__add(struct aggtable *t, const struct kmon_event *ev, const struct kmon_meta *meta,
		   double now)
{
	uint32_t key = meta ? meta->key : 0, slot;
	struct series *s;

	if (key && key < KMON_CONTAINER_KEYS && t->by_key[key] && t->s[t->by_key[key] - 1].used) {
		s = &t->s[t->by_key[key] - 1];
	} else {
		/* A free made elsewhere of memory of a container whose series
		 * is gone (expired) or never was: nothing to subtract it from,
		 * and no reason to bring the series back. Counted. */
		bool elsewhere = ev->flags & KMON_EVF_FREED_ELSEWHERE;
		s = lookup(t, meta ? meta->namespace : "", meta ? meta->pod : "",
			   meta ? meta->container : "", &slot, !elsewhere);
		if (!s && elsewhere) {
			t->frees_unseen++;
			return;
		}
		if (!s) {
			t->overflow++;
			return;
		}
		if (key && key < KMON_CONTAINER_KEYS)
			t->by_key[key] = slot + 1;
	}
	/* Seen: an event of the container's own tasks. A free made elsewhere
	 * (RCU, kworkers, another process) of memory it left behind does not
	 * keep an exited container's series alive past --expire. */
	if (!(ev->flags & KMON_EVF_FREED_ELSEWHERE))
		s->last_seen = now;
	/* A pid of the container to find its memory cgroup from: not from a
	 * free made elsewhere (pid is then another task's). */
	if (key && !s->memcg && !(ev->flags & KMON_EVF_FREED_ELSEWHERE) && ev->pid &&
	    ev->event_type != KMON_EV_MEMORY_FREE && ev->event_type != KMON_EV_SLAB_FREE) {
		s->probe_pid = ev->pid;
		s->probe_cgid = ev->cgroup_id;
	}
	switch (ev->event_type) {
	case KMON_EV_MEMORY_ALLOC:
		s->alloc++;
		s->alloc_bytes += ev->size;
		ledger_add(t, s, ev);
		break;
	case KMON_EV_MEMORY_FREE:
		s->free_n++;
		if (ev->flags & KMON_EVF_SIZE_KNOWN) {
			s->free_bytes += ev->size;
			s->free_known_bytes += ev->size;
		}
		ledger_add(t, s, ev);
		break;
	case KMON_EV_SLAB_ALLOC:
	case KMON_EV_SLAB_FREE:
		ledger_add(t, s, ev);
		break;
	case KMON_EV_OOM_KILL:
		s->oom_kills++;
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
	if (key < KMON_CONTAINER_KEYS)
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
			if (old[i].ledger) {
				t->ledgers--;
				t->folded_gone += ledger__folded(old[i].ledger);
			}
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
	memset(t->by_key, 0, KMON_CONTAINER_KEYS * sizeof(*t->by_key));
	return dropped;
}

unsigned aggtable__series(const struct aggtable *t)
{
	return t->n;
}

void aggtable__memcg_refresh(struct aggtable *t, struct memcg *mc, unsigned max_locate)
{
	unsigned i;
	int r;

	t->memcg_on = true;
	for (i = 0; i < t->cap; i++) {
		struct series *s = &t->s[i];
		if (!s->used)
			continue;
		if (!s->memcg && s->probe_pid && max_locate) {
			max_locate--;
			r = memcg__locate(mc, s->probe_pid, s->probe_cgid, &s->memcg);
			s->probe_pid = 0; /* the next event offers another */
			if (r)
				t->memcg_locate_fail++;
		}
		if (!s->memcg)
			continue;
		r = memcg__read(mc, s->memcg, &s->kmem);
		s->kmem_ok = !r;
		if (r) {
			t->memcg_read_fail++;
			/* Gone (the container exited) or moved: find it again
			 * from a later event, if any. */
			free(s->memcg);
			s->memcg = NULL;
		}
	}
	t->memcg_parse_errors = memcg__parse_errors(mc);
}

uint64_t aggtable__overflow(const struct aggtable *t)
{
	return t->overflow;
}

/* The kernel's view beside the ledger, where the memory cgroup was read. */
static int write_memcg(const struct aggtable *t, struct metrics_text *m)
{
	static const char *const ln[] = { "namespace", "pod", "container" };
	static const struct {
		const char *name, *help;
		unsigned have;
		size_t off;
	} fam[] = {
		{ "kmon_memcg_kernel_bytes",
		  "Kernel memory the container's memory cgroup is charged (v2 memory.stat kernel, "
		  "v1 memory.kmem.usage_in_bytes)",
		  MEMCG_HAVE_KERNEL, offsetof(struct memcg_kmem, kernel) },
		{ "kmon_memcg_slab_bytes", "Slab memory of the container's memory cgroup (v2 memory.stat slab)",
		  MEMCG_HAVE_SLAB, offsetof(struct memcg_kmem, slab) },
		{ "kmon_memcg_slab_reclaimable_bytes", "v2 memory.stat slab_reclaimable",
		  MEMCG_HAVE_SLAB, offsetof(struct memcg_kmem, slab_reclaimable) },
		{ "kmon_memcg_slab_unreclaimable_bytes", "v2 memory.stat slab_unreclaimable",
		  MEMCG_HAVE_SLAB, offsetof(struct memcg_kmem, slab_unreclaimable) },
		{ "kmon_memcg_sock_bytes",
		  "Socket buffers of the container's memory cgroup (v2 memory.stat sock, v1 "
		  "memory.kmem.tcp.usage_in_bytes)",
		  MEMCG_HAVE_SOCK, offsetof(struct memcg_kmem, sock) },
	};
	const struct {
		const char *name, *help;
		uint64_t v;
	} errs[] = {
		{ "kmon_memcg_locate_failures_total",
		  "Containers whose memory cgroup a pid could not name (pid gone or moved, /proc hidden)",
		  t->memcg_locate_fail },
		{ "kmon_memcg_read_failures_total", "Memory cgroup reads that failed (cgroup gone, bad file)",
		  t->memcg_read_fail },
		{ "kmon_memcg_parse_errors_total",
		  "Memory cgroup or /proc files that did not parse or were too large",
		  t->memcg_parse_errors },
	};
	unsigned f, i;
	int r = 0;

	if (!t->memcg_on)
		return 0;
	for (f = 0; f < sizeof(fam) / sizeof(fam[0]) && !r; f++) {
		r = metrics_text__family(m, fam[f].name, "gauge", fam[f].help);
		for (i = 0; i < t->cap && !r; i++) {
			const struct series *s = &t->s[i];
			const char *lv[] = { s->ns, s->pod, s->container };
			if (!s->used || !s->kmem_ok || !(s->kmem.have & fam[f].have))
				continue;
			r = metrics_text__sample_u64(
				m, fam[f].name, ln, lv, 3,
				*(const uint64_t *)((const char *)&s->kmem + fam[f].off));
		}
	}
	for (f = 0; f < sizeof(errs) / sizeof(errs[0]) && !r; f++) {
		r = metrics_text__family(m, errs[f].name, "counter", errs[f].help);
		if (!r)
			r = metrics_text__sample_u64(m, errs[f].name, NULL, NULL, 0, errs[f].v);
	}
	return r;
}

static uint64_t outstanding(const struct series *s)
{
	return s->alloc_bytes > s->free_known_bytes ? s->alloc_bytes - s->free_known_bytes : 0;
}

static int write_ledger(const struct aggtable *t, struct metrics_text *m)
{
	static const char *const ln[] = { "namespace", "pod", "container", "site" };
	static const char *const lc[] = { "namespace", "pod", "container", "cache" };
	struct ledger_row rows[LEDGER_TOP_MAX + 1];
	const struct {
		const char *name, *help;
		uint64_t v;
	} health[] = {
		{ "kmon_ledger_frees_matched_total",
		  "Frees the kernel matched to their allocation and charged to its owner, any context",
		  t->frees_matched },
		{ "kmon_ledger_frees_matched_elsewhere_total",
		  "Of the matched frees, those made by another process, a kworker, RCU or an irq",
		  t->frees_elsewhere },
		{ "kmon_ledger_frees_unmatched_total",
		  "Frees of memory with no known allocation (not in the kernel's live-allocation map)",
		  t->frees_unmatched },
		{ "kmon_ledger_frees_unseen_total",
		  "Matched frees of allocations made before this ledger started: nothing subtracted",
		  t->frees_unseen },
		{ "kmon_ledger_memory_bytes", "Memory the ledgers of all series take (bounded)",
		  (uint64_t)t->ledgers * ledger__footprint(t->ledger_k) },
		{ "kmon_ledger_alloc_failures_total",
		  "Series whose ledger could not be allocated (their memory events not counted)",
		  t->ledger_nomem },
	};
	unsigned i, f, k;
	uint64_t folded = t->folded_gone;
	int r = 0;

	for (f = 0; f < 3 && !r; f++) {
		static const char *const fam[][2] = {
			{ "kmon_ledger_outstanding_bytes",
			  "Kernel memory (kmalloc and slab) a container allocated and not yet freed, "
			  "frees from any context charged to it" },
			{ "kmon_ledger_outstanding_objects", "Objects behind kmon_ledger_outstanding_bytes" },
			{ "kmon_oom_kills_total", "Processes of the container the OOM killer killed" },
		};
		r = metrics_text__family(m, fam[f][0], f == 2 ? "counter" : "gauge", fam[f][1]);
		for (i = 0; i < t->cap && !r; i++) {
			const struct series *s = &t->s[i];
			const char *lv[] = { s->ns, s->pod, s->container };
			if (!s->used || (f < 2 && !s->ledger))
				continue;
			r = metrics_text__sample_u64(m, fam[f][0], ln, lv, 3,
						     f == 0 ? ledger__bytes(s->ledger)
						     : f == 1 ? ledger__objects(s->ledger)
							      : s->oom_kills);
		}
	}
	if (!r)
		r = metrics_text__family(m, "kmon_ledger_outstanding_bytes_by_site", "gauge",
					 "Outstanding bytes by allocation call site: the top K per "
					 "container, the rest as site=\"other\"");
	for (i = 0; i < t->cap && !r; i++) {
		const struct series *s = &t->s[i];
		size_t n;
		if (!s->used || !s->ledger)
			continue;
		folded += ledger__folded(s->ledger);
		n = ledger__sites(s->ledger, rows, t->namer, t->namer_ctx);
		for (k = 0; k < n && !r; k++) {
			const char *lv[] = { s->ns, s->pod, s->container, rows[k].label };
			r = metrics_text__sample_u64(m, "kmon_ledger_outstanding_bytes_by_site", ln, lv,
						     4, rows[k].bytes);
		}
	}
	for (f = 0; f < 2 && !r; f++) {
		const char *name = f ? "kmon_ledger_outstanding_objects_by_cache"
				     : "kmon_ledger_outstanding_bytes_by_cache";
		r = metrics_text__family(m, name, "gauge",
					 f ? "Outstanding objects by slab cache (kmalloc: cache=\"kmalloc\")"
					   : "Outstanding bytes by slab cache (kmalloc: cache=\"kmalloc\"): "
					     "the top K per container, the rest as cache=\"other\"");
		for (i = 0; i < t->cap && !r; i++) {
			const struct series *s = &t->s[i];
			size_t n;
			if (!s->used || !s->ledger)
				continue;
			n = ledger__caches(s->ledger, rows);
			for (k = 0; k < n && !r; k++) {
				const char *lv[] = { s->ns, s->pod, s->container, rows[k].label };
				r = metrics_text__sample_u64(m, name, lc, lv, 4,
							     f ? rows[k].objects : rows[k].bytes);
			}
		}
	}
	for (f = 0; f < sizeof(health) / sizeof(health[0]) && !r; f++) {
		bool gauge = !strcmp(health[f].name, "kmon_ledger_memory_bytes");
		r = metrics_text__family(m, health[f].name, gauge ? "gauge" : "counter",
					 health[f].help);
		if (!r)
			r = metrics_text__sample_u64(m, health[f].name, NULL, NULL, 0, health[f].v);
	}
	if (!r)
		r = metrics_text__family(m, "kmon_ledger_folded_total", "counter",
					 "Call-site or cache entries folded into \"other\" to bound memory");
	if (!r)
		r = metrics_text__sample_u64(m, "kmon_ledger_folded_total", NULL, NULL, 0, folded);
	if (!r)
		r = write_memcg(t, m);
	return r;
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
		r = write_ledger(t, m);
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
		cJSON_AddNumberToObject(o, "oom_kills", (double)x->oom_kills);
		if (x->ledger) {
			struct ledger_row rows[LEDGER_TOP_MAX + 1];
			size_t n = ledger__sites(x->ledger, rows, t->namer, t->namer_ctx), j;
			cJSON *l = cJSON_AddObjectToObject(o, "ledger"), *a;
			if (l) {
				cJSON_AddNumberToObject(l, "bytes", (double)ledger__bytes(x->ledger));
				cJSON_AddNumberToObject(l, "objects", (double)ledger__objects(x->ledger));
				a = cJSON_AddObjectToObject(l, "by_site");
				for (j = 0; a && j < n; j++)
					cJSON_AddNumberToObject(a, rows[j].label, (double)rows[j].bytes);
				n = ledger__caches(x->ledger, rows);
				a = cJSON_AddObjectToObject(l, "by_cache");
				for (j = 0; a && j < n; j++)
					cJSON_AddNumberToObject(a, rows[j].label, (double)rows[j].bytes);
			}
		}
		if (x->kmem_ok && (x->kmem.have & MEMCG_HAVE_KERNEL))
			cJSON_AddNumberToObject(o, "memcg_kernel_bytes", (double)x->kmem.kernel);
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
