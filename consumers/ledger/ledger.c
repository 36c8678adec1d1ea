// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "consumers/ledger/ledger.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"

/* What an entry holds. */
struct tally {
	uint64_t bytes, objects;
};

/*
 * One breakdown (by call site, by cache): a bounded top-K table. `slots`
 * entries of `stride` bytes each, a struct tally followed by a key of
 * key_len bytes compared as bytes (keys are built zero-padded); an entry
 * holding nothing is free. "other" holds what was folded out to make room.
 */
struct topk {
	unsigned char *e;
	size_t stride, key_len;
	struct tally other;
};

/* A call site: the address (or symbol reference) and whether it is opaque
 * (two words: no padding to compare). */
struct site_key {
	uint64_t site, opaque;
};

struct site_entry {
	struct tally t;
	struct site_key key;
};

struct cache_entry {
	struct tally t;
	char key[KMON_CACHE_NAME_LEN + 1]; /* printable, NUL-padded */
};

struct ledger {
	unsigned k, slots; /* slots = 2k candidates per breakdown */
	uint64_t bytes, objects, folded;
	/* Earliest allocation seen: an owner-charged free of an older
	 * allocation was never added here, so it subtracts nothing. */
	uint64_t first_alloc_ts;
	bool any_alloc;
	struct topk sites, caches;
};

size_t ledger__footprint(unsigned k)
{
	return sizeof(struct ledger) +
	       2 * (size_t)k * (sizeof(struct site_entry) + sizeof(struct cache_entry));
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
	l->sites.e = (unsigned char *)(l + 1);
	l->sites.stride = sizeof(struct site_entry);
	l->sites.key_len = sizeof(struct site_key);
	l->caches.e = l->sites.e + l->slots * sizeof(struct site_entry);
	l->caches.stride = sizeof(struct cache_entry);
	l->caches.key_len = sizeof(((struct cache_entry *)0)->key);
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

	/* A key, compared as bytes: nothing but NULs after the name. */
	memset(out, 0, KMON_CACHE_NAME_LEN + 1);
	if (ev->event_type == KMON_EV_MEMORY_ALLOC || ev->event_type == KMON_EV_MEMORY_FREE) {
		snprintf(out, KMON_CACHE_NAME_LEN + 1, "%s", LEDGER_KMALLOC);
		return;
	}
	memcpy(out, ev->data.mem.cache, strnlen(ev->data.mem.cache, KMON_CACHE_NAME_LEN));
	for (i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			out[i] = '?';
	if (!out[0])
		snprintf(out, KMON_CACHE_NAME_LEN + 1, "?");
}

static struct tally *topk_at(const struct topk *t, unsigned i)
{
	return (struct tally *)(t->e + i * t->stride);
}

static const void *topk_key(const struct topk *t, unsigned i)
{
	return t->e + i * t->stride + sizeof(struct tally);
}

static struct tally *topk_find(const struct ledger *l, const struct topk *t, const void *key)
{
	unsigned i;

	for (i = 0; i < l->slots; i++) {
		const struct tally *e = topk_at(t, i);

		if ((e->bytes || e->objects) && !memcmp(topk_key(t, i), key, t->key_len))
			return topk_at(t, i);
	}
	return NULL;
}

/* The entry of key, made when missing: in an empty slot, else in the one
 * holding least, folded into "other" (its later frees then come out of
 * "other" too). */
static struct tally *topk_get(struct ledger *l, struct topk *t, const void *key)
{
	struct tally *e = topk_find(l, t, key);
	unsigned i, min = 0;

	if (e)
		return e;
	for (i = 0; i < l->slots; i++) {
		e = topk_at(t, i);
		if (!e->bytes && !e->objects)
			break;
		if (e->bytes < topk_at(t, min)->bytes)
			min = i;
	}
	if (i == l->slots) {
		e = topk_at(t, min);
		t->other.bytes += e->bytes;
		t->other.objects += e->objects;
		l->folded++;
	}
	memset(e, 0, t->stride);
	memcpy((unsigned char *)e + sizeof(struct tally), key, t->key_len);
	return e;
}

/* Saturating: a free whose allocation went to "other" after it was counted
 * under its key (or was lost) never drives an entry below zero. */
static void topk_sub(const struct ledger *l, struct topk *t, const void *key, uint64_t size)
{
	struct tally *e = topk_find(l, t, key);

	if (!e)
		e = &t->other;
	e->bytes = sub_sat(e->bytes, size);
	e->objects = sub_sat(e->objects, 1);
}

static void charge(struct ledger *l, const struct kmon_event *ev)
{
	char name[KMON_CACHE_NAME_LEN + 1];
	struct site_key k = { ev->data.mem.call_site, !!(ev->flags & KMON_EVF_ADDR_OPAQUE) };
	struct tally *e;

	if (!l->any_alloc || ev->timestamp < l->first_alloc_ts)
		l->first_alloc_ts = ev->timestamp;
	l->any_alloc = true;
	l->bytes += ev->size;
	l->objects++;
	e = topk_get(l, &l->sites, &k);
	e->bytes += ev->size;
	e->objects++;
	cache_label(ev, name);
	e = topk_get(l, &l->caches, name);
	e->bytes += ev->size;
	e->objects++;
}

static void discharge(struct ledger *l, const struct kmon_event *ev)
{
	char name[KMON_CACHE_NAME_LEN + 1];
	struct site_key k = { ev->data.free.alloc_call_site, !!(ev->flags & KMON_EVF_ADDR_OPAQUE) };

	l->bytes = sub_sat(l->bytes, ev->size);
	l->objects = sub_sat(l->objects, 1);
	topk_sub(l, &l->sites, &k, ev->size);
	cache_label(ev, name);
	topk_sub(l, &l->caches, name, ev->size);
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

/* Labels the entry of a key in a row. */
typedef void (*topk_label_fn)(const void *key, char *buf, size_t n, void *ctx);

/* The k entries holding most bytes (selection: k and slots are small), then
 * "other" (the folded and the rest) when it holds anything. */
static size_t topk_rows(const struct ledger *l, const struct topk *t, struct ledger_row *rows,
			topk_label_fn label, void *ctx)
{
	bool taken[2 * LEDGER_TOP_MAX] = { false };
	struct tally other = t->other;
	unsigned n = 0, i;

	while (n < l->k) {
		int best = -1;

		for (i = 0; i < l->slots; i++)
			if (!taken[i] && topk_at(t, i)->bytes &&
			    (best < 0 || topk_at(t, i)->bytes > topk_at(t, (unsigned)best)->bytes))
				best = (int)i;
		if (best < 0)
			break;
		taken[best] = true;
		label(topk_key(t, (unsigned)best), rows[n].label, sizeof(rows[n].label), ctx);
		rows[n].bytes = topk_at(t, (unsigned)best)->bytes;
		rows[n].objects = topk_at(t, (unsigned)best)->objects;
		n++;
	}
	for (i = 0; i < l->slots; i++)
		if (!taken[i]) {
			other.bytes += topk_at(t, i)->bytes;
			other.objects += topk_at(t, i)->objects;
		}
	if (other.bytes || other.objects) {
		snprintf(rows[n].label, sizeof(rows[n].label), "%s", LEDGER_OTHER);
		rows[n].bytes = other.bytes;
		rows[n].objects = other.objects;
		n++;
	}
	return n;
}

struct site_namer {
	ledger_site_namer namer;
	void *ctx;
};

static void site_label(const void *key, char *buf, size_t n, void *ctx)
{
	const struct site_namer *sn = ctx;
	const struct site_key *k = key;

	ledger__site_name(k->site, k->opaque, sn->namer, sn->ctx, buf, n);
}

static void cache_row_label(const void *key, char *buf, size_t n, void *ctx)
{
	(void)ctx;
	snprintf(buf, n, "%s", (const char *)key);
}

size_t ledger__sites(const struct ledger *l, struct ledger_row *rows, ledger_site_namer namer,
		     void *ctx)
{
	struct site_namer sn = { namer, ctx };

	return topk_rows(l, &l->sites, rows, site_label, &sn);
}

size_t ledger__caches(const struct ledger *l, struct ledger_row *rows)
{
	return topk_rows(l, &l->caches, rows, cache_row_label, NULL);
}

uint64_t ledger__top_site(const struct ledger *l, bool *opaque)
{
	const struct site_entry *e, *best = NULL;
	unsigned i;

	for (i = 0; i < l->slots; i++) {
		e = (const struct site_entry *)topk_at(&l->sites, i);
		if (e->t.bytes && (!best || e->t.bytes > best->t.bytes))
			best = e;
	}
	if (!best)
		return 0;
	if (opaque)
		*opaque = best->key.opaque;
	return best->key.site;
}
