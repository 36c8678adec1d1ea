// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/ledger/ledger.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"

struct site {
	uint64_t site, bytes, objects;
	bool opaque;
};

struct cache {
	char name[KMON_CACHE_NAME_LEN + 1];
	uint64_t bytes, objects;
};

struct ledger {
	unsigned k, slots; /* slots = 2k candidates per breakdown */
	uint64_t bytes, objects, folded;
	/* Earliest allocation seen: an owner-charged free of an older
	 * allocation was never added here, so it subtracts nothing. */
	uint64_t first_alloc_ts;
	bool any_alloc;
	struct site other_site;
	struct cache other_cache;
	struct site *sites;
	struct cache *caches;
};

size_t ledger__footprint(unsigned k)
{
	return sizeof(struct ledger) + 2 * (size_t)k * (sizeof(struct site) + sizeof(struct cache));
}

struct ledger *ledger__new(unsigned k)
{
	struct ledger *l;

	if (!k || k > LEDGER_TOP_MAX) {
		errno = EINVAL;
		return NULL;
	}
	/* One block: the footprint is what ledger__footprint says. */
	l = calloc(1, ledger__footprint(k));
	if (!l)
		return NULL;
	l->k = k;
	l->slots = 2 * k;
	l->sites = (struct site *)(l + 1);
	l->caches = (struct cache *)(l->sites + l->slots);
	return l;
}

void ledger__free(struct ledger *l)
{
	free(l);
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Cache names come from the kernel, cut to 24 bytes, not trusted to be
 * NUL-terminated or printable: labels get printable ASCII only. */
static void cache_label(const struct kmon_event *ev, char out[KMON_CACHE_NAME_LEN + 1])
{
	unsigned i;

	if (ev->event_type == KMON_EV_MEMORY_ALLOC || ev->event_type == KMON_EV_MEMORY_FREE) {
		snprintf(out, KMON_CACHE_NAME_LEN + 1, "%s", LEDGER_KMALLOC);
		return;
	}
	memcpy(out, ev->data.mem.cache, KMON_CACHE_NAME_LEN);
	out[KMON_CACHE_NAME_LEN] = '\0';
	for (i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			out[i] = '?';
	if (!out[0])
		snprintf(out, KMON_CACHE_NAME_LEN + 1, "?");
}

static struct site *site_find(struct ledger *l, uint64_t site, bool opaque)
{
	unsigned i;

	for (i = 0; i < l->slots; i++)
		if ((l->sites[i].bytes || l->sites[i].objects) && l->sites[i].site == site &&
		    l->sites[i].opaque == opaque)
			return &l->sites[i];
	return NULL;
}

/* A slot for a new site: an empty one, else the one holding least, folded
 * into "other" (its later frees then come out of "other" too). */
static struct site *site_slot(struct ledger *l)
{
	unsigned i, min = 0;

	for (i = 0; i < l->slots; i++) {
		if (!l->sites[i].bytes && !l->sites[i].objects)
			return &l->sites[i];
		if (l->sites[i].bytes < l->sites[min].bytes)
			min = i;
	}
	l->other_site.bytes += l->sites[min].bytes;
	l->other_site.objects += l->sites[min].objects;
	l->folded++;
	return &l->sites[min];
}

static struct cache *cache_find(struct ledger *l, const char *name)
{
	unsigned i;

	for (i = 0; i < l->slots; i++)
		if ((l->caches[i].bytes || l->caches[i].objects) && !strcmp(l->caches[i].name, name))
			return &l->caches[i];
	return NULL;
}

static struct cache *cache_slot(struct ledger *l)
{
	unsigned i, min = 0;

	for (i = 0; i < l->slots; i++) {
		if (!l->caches[i].bytes && !l->caches[i].objects)
			return &l->caches[i];
		if (l->caches[i].bytes < l->caches[min].bytes)
			min = i;
	}
	l->other_cache.bytes += l->caches[min].bytes;
	l->other_cache.objects += l->caches[min].objects;
	l->folded++;
	return &l->caches[min];
}

static void charge(struct ledger *l, const struct kmon_event *ev)
{
	bool opaque = ev->flags & KMON_EVF_ADDR_OPAQUE;
	uint64_t at = ev->data.mem.call_site, size = ev->size;
	char name[KMON_CACHE_NAME_LEN + 1];
	struct site *s;
	struct cache *c;

	if (!l->any_alloc || ev->timestamp < l->first_alloc_ts)
		l->first_alloc_ts = ev->timestamp;
	l->any_alloc = true;
	l->bytes += size;
	l->objects++;
	s = site_find(l, at, opaque);
	if (!s) {
		s = site_slot(l);
		memset(s, 0, sizeof(*s));
		s->site = at;
		s->opaque = opaque;
	}
	s->bytes += size;
	s->objects++;
	cache_label(ev, name);
	c = cache_find(l, name);
	if (!c) {
		c = cache_slot(l);
		memset(c, 0, sizeof(*c));
		memcpy(c->name, name, sizeof(name));
	}
	c->bytes += size;
	c->objects++;
}

/* Saturating: a free whose allocation went to "other" after it was counted
 * under its site (or was lost) never drives an entry below zero. */
static void discharge(struct ledger *l, const struct kmon_event *ev)
{
	bool opaque = ev->flags & KMON_EVF_ADDR_OPAQUE;
	uint64_t size = ev->size;
	char name[KMON_CACHE_NAME_LEN + 1];
	struct site *s = site_find(l, ev->data.free.alloc_call_site, opaque);
	struct cache *c;
	uint64_t *b, *o;

	l->bytes = sub_sat(l->bytes, size);
	l->objects = sub_sat(l->objects, 1);
	b = s ? &s->bytes : &l->other_site.bytes;
	o = s ? &s->objects : &l->other_site.objects;
	*b = sub_sat(*b, size);
	*o = sub_sat(*o, 1);
	cache_label(ev, name);
	c = cache_find(l, name);
	b = c ? &c->bytes : &l->other_cache.bytes;
	o = c ? &c->objects : &l->other_cache.objects;
	*b = sub_sat(*b, size);
	*o = sub_sat(*o, 1);
}

enum ledger_result ledger__add(struct ledger *l, const struct kmon_event *ev)
{
	switch (ev->event_type) {
	case KMON_EV_MEMORY_ALLOC:
	case KMON_EV_SLAB_ALLOC:
		charge(l, ev);
		return LEDGER_ALLOC;
	case KMON_EV_MEMORY_FREE:
	case KMON_EV_SLAB_FREE:
		if (!(ev->flags & KMON_EVF_OWNER_CHARGED))
			return LEDGER_FREE_UNMATCHED;
		/* alloc_timestamp 0: the agent did not say; trust the match. */
		if (!l->any_alloc ||
		    (ev->data.free.alloc_timestamp && ev->data.free.alloc_timestamp < l->first_alloc_ts))
			return LEDGER_FREE_UNSEEN;
		discharge(l, ev);
		return ev->flags & KMON_EVF_FREED_ELSEWHERE ? LEDGER_FREE_ELSEWHERE
							    : LEDGER_FREE_CHARGED;
	default:
		return LEDGER_IGNORED;
	}
}

uint64_t ledger__bytes(const struct ledger *l)
{
	return l->bytes;
}

uint64_t ledger__objects(const struct ledger *l)
{
	return l->objects;
}

uint64_t ledger__folded(const struct ledger *l)
{
	return l->folded;
}

void ledger__site_name(uint64_t site, bool opaque, ledger_site_namer namer, void *ctx, char *buf,
		       size_t n)
{
	if (!site)
		snprintf(buf, n, "-");
	else if (namer && !namer(ctx, site, opaque, buf, n))
		return;
	else if (opaque && !(site >> 32))
		snprintf(buf, n, "unresolved+0x%" PRIx64, site & 0xffffffffu);
	else if (opaque)
		snprintf(buf, n, "sym%" PRIu64 "+0x%" PRIx64, site >> 32, site & 0xffffffffu);
	else
		snprintf(buf, n, "0x%" PRIx64, site);
}

/* Indices of the k entries holding most bytes (selection: k and slots are small). */
static unsigned pick(const uint64_t *bytes, unsigned slots, unsigned k, unsigned *idx)
{
	bool taken[2 * LEDGER_TOP_MAX] = { false };
	unsigned n = 0, i;

	while (n < k) {
		int best = -1;
		for (i = 0; i < slots; i++)
			if (!taken[i] && bytes[i] && (best < 0 || bytes[i] > bytes[best]))
				best = (int)i;
		if (best < 0)
			break;
		taken[best] = true;
		idx[n++] = (unsigned)best;
	}
	return n;
}

size_t ledger__sites(const struct ledger *l, struct ledger_row *rows, ledger_site_namer namer,
		     void *ctx)
{
	uint64_t bytes[2 * LEDGER_TOP_MAX];
	unsigned idx[LEDGER_TOP_MAX], n, i;
	uint64_t ob = l->other_site.bytes, oo = l->other_site.objects;
	bool top[2 * LEDGER_TOP_MAX] = { false };

	for (i = 0; i < l->slots; i++)
		bytes[i] = l->sites[i].bytes;
	n = pick(bytes, l->slots, l->k, idx);
	for (i = 0; i < n; i++) {
		const struct site *s = &l->sites[idx[i]];
		top[idx[i]] = true;
		ledger__site_name(s->site, s->opaque, namer, ctx, rows[i].label,
				  sizeof(rows[i].label));
		rows[i].bytes = s->bytes;
		rows[i].objects = s->objects;
	}
	for (i = 0; i < l->slots; i++)
		if (!top[i]) {
			ob += l->sites[i].bytes;
			oo += l->sites[i].objects;
		}
	if (ob || oo) {
		snprintf(rows[n].label, sizeof(rows[n].label), "%s", LEDGER_OTHER);
		rows[n].bytes = ob;
		rows[n].objects = oo;
		n++;
	}
	return n;
}

size_t ledger__caches(const struct ledger *l, struct ledger_row *rows)
{
	uint64_t bytes[2 * LEDGER_TOP_MAX];
	unsigned idx[LEDGER_TOP_MAX], n, i;
	uint64_t ob = l->other_cache.bytes, oo = l->other_cache.objects;
	bool top[2 * LEDGER_TOP_MAX] = { false };

	for (i = 0; i < l->slots; i++)
		bytes[i] = l->caches[i].bytes;
	n = pick(bytes, l->slots, l->k, idx);
	for (i = 0; i < n; i++) {
		top[idx[i]] = true;
		snprintf(rows[i].label, sizeof(rows[i].label), "%s", l->caches[idx[i]].name);
		rows[i].bytes = l->caches[idx[i]].bytes;
		rows[i].objects = l->caches[idx[i]].objects;
	}
	for (i = 0; i < l->slots; i++)
		if (!top[i]) {
			ob += l->caches[i].bytes;
			oo += l->caches[i].objects;
		}
	if (ob || oo) {
		snprintf(rows[n].label, sizeof(rows[n].label), "%s", LEDGER_OTHER);
		rows[n].bytes = ob;
		rows[n].objects = oo;
		n++;
	}
	return n;
}

uint64_t ledger__top_site(const struct ledger *l, bool *opaque)
{
	unsigned i, best = 0;
	bool any = false;

	for (i = 0; i < l->slots; i++)
		if (l->sites[i].bytes && (!any || l->sites[i].bytes > l->sites[best].bytes)) {
			best = i;
			any = true;
		}
	if (!any)
		return 0;
	if (opaque)
		*opaque = l->sites[best].opaque;
	return l->sites[best].site;
}
