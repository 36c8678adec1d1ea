/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel memory ledger of one container: bytes and objects it allocated
 * (kmalloc and slab caches) and that were not freed yet, whatever context
 * freed them. An allocation counts for the container that made it; a free
 * the kernel matched in its live-allocation map (KMON_EVF_OWNER_CHARGED)
 * carries the owner's container key, size and allocation call site, so it
 * is subtracted from the owner's ledger even when an RCU callback, a kworker
 * or another process freed it. Frees the kernel did not match subtract
 * nothing (their allocation is unknown).
 *
 * Broken down by allocation call site and by slab cache with bounded
 * memory: 2*K candidate entries each, the entry holding least folded into
 * "other" when a new one needs room (counted); reading takes the K entries
 * holding most, the rest summed as "other". No I/O: kmon-aggregate and
 * kmon-top keep one per container, the unit test drives it.
 */
#ifndef KMON_CONSUMERS_LEDGER_H
#define KMON_CONSUMERS_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kmon_event;
struct ledger;

#define LEDGER_TOP_MAX 100
#define LEDGER_LABEL_MAX 128
#define LEDGER_OTHER "other"
#define LEDGER_KMALLOC "kmalloc" /* the cache label of kmalloc/kfree events */

/* What ledger__add did with an event (for the ledger's health counters). */
enum ledger_result {
	LEDGER_IGNORED = 0,     /* not a memory event */
	LEDGER_ALLOC,           /* charged to this container */
	LEDGER_FREE_CHARGED,    /* owner-charged free, subtracted */
	LEDGER_FREE_ELSEWHERE,  /* the same, freed by another context */
	LEDGER_FREE_UNSEEN,     /* owner-charged free of an allocation this ledger never saw
				 * (made before it started, or lost): nothing subtracted */
	LEDGER_FREE_UNMATCHED,  /* the kernel knew no allocation: nothing subtracted */
};

struct ledger_row {
	char label[LEDGER_LABEL_MAX]; /* site name, cache name or "other" */
	uint64_t bytes, objects;
};

/* Names a call site for a label. opaque: the event had KMON_EVF_ADDR_OPAQUE
 * (site = symbol id << 32 | offset). Returns 0 and writes buf, or -1 to use
 * the fallback (hex). */
typedef int (*ledger_site_namer)(void *ctx, uint64_t site, bool opaque, char *buf, size_t n);

/* k: entries reported per breakdown (1..LEDGER_TOP_MAX). NULL + errno on failure. */
struct ledger *ledger__new(unsigned k);
void ledger__free(struct ledger *l);
enum ledger_result ledger__add(struct ledger *l, const struct kmon_event *ev);
uint64_t ledger__bytes(const struct ledger *l);
uint64_t ledger__objects(const struct ledger *l);
/* Candidate entries folded into "other" to make room (cardinality bound at work). */
uint64_t ledger__folded(const struct ledger *l);
/* Bytes of memory one ledger of this k takes (all of it is allocated up front). */
size_t ledger__footprint(unsigned k);
/* The K call sites (or caches) holding most, by bytes, then "other" when it
 * holds anything: up to k + 1 rows written to rows (room for k + 1). Rows
 * holding nothing are left out. namer may be NULL (hex). Returns the count. */
size_t ledger__sites(const struct ledger *l, struct ledger_row *rows, ledger_site_namer namer,
		     void *ctx);
size_t ledger__caches(const struct ledger *l, struct ledger_row *rows);
/* The call site holding most bytes (0 = none); *opaque says how to name it. */
uint64_t ledger__top_site(const struct ledger *l, bool *opaque);
/* The one place a call site becomes text: namer if it answers, else
 * "0x<hex>" for a raw address, "sym<id>+0x<off>" for an opaque reference
 * (until the consumer has the agent's symbol table), "-" for 0. */
void ledger__site_name(uint64_t site, bool opaque, ledger_site_namer namer, void *ctx, char *buf,
		       size_t n);

#endif
