/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kmon-top's table: per container (the agent's container key), events
 * counted between two snapshots and in total, kernel memory allocated and not
 * yet freed (frees whose size the kernel knew), and the call site that
 * allocated most often (a small space-saving sketch). A snapshot turns the
 * counts into per-second rates, filters by namespace and sorts. No I/O, no
 * loop: kmon-top draws it, the unit test checks it.
 */
#ifndef KMON_CONSUMERS_TOPTABLE_H
#define KMON_CONSUMERS_TOPTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kmon_event;
struct kmon_meta;
struct toptable;

enum top_sort {
	TOP_SORT_EXEC = 0, /* exec/s */
	TOP_SORT_ALLOC,    /* allocations/s */
	TOP_SORT_BYTES,    /* allocated bytes/s */
	TOP_SORT_HELD,     /* outstanding bytes */
	TOP_SORT_NAME,     /* namespace, pod, container */
	TOP_SORT_MAX,
};

struct top_row {
	uint32_t key;
	const char *ns, *pod, *container; /* "" when not known */
	double exec_s, alloc_s, alloc_bytes_s;
	int64_t held_bytes;
	uint64_t exec, alloc; /* totals */
	uint64_t top_call_site; /* 0 when none seen */
};

struct toptable *toptable__new(void);
void toptable__free(struct toptable *t);
void toptable__add(struct toptable *t, const struct kmon_event *ev, const struct kmon_meta *meta);
/* Rows with activity in the window or memory held, matching ns_filter (NULL
 * or "" = all), sorted; the window restarts. Returns the number of rows; the
 * array is owned by the table and valid until the next call. */
size_t toptable__snapshot(struct toptable *t, double elapsed_s, enum top_sort sort,
			  const char *ns_filter, const struct top_row **rows);
const char *top_sort_name(enum top_sort s);

#endif
