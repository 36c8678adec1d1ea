/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kmon-aggregate's table: per (namespace, pod, container) counts of execs,
 * allocations and frees (and their bytes), outstanding bytes (allocated minus
 * freed, for frees whose size the kernel knew), and the most exec'd
 * filenames. Bounded: at most max_series series (more are counted as
 * overflow, not stored), top_n filenames per series (a space-saving sketch),
 * and series unseen for the expiry time are dropped.
 * Events without a container go to the series with empty labels.
 */
#ifndef KMON_CONSUMERS_AGGTABLE_H
#define KMON_CONSUMERS_AGGTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct kmon_event;
struct kmon_meta;
struct metrics_text;
struct aggtable;

struct aggtable *aggtable__new(unsigned max_series, unsigned top_n);
void aggtable__free(struct aggtable *t);
/* meta may be NULL. now: seconds (any monotonic clock). */
void aggtable__add(struct aggtable *t, const struct kmon_event *ev, const struct kmon_meta *meta,
		   double now);
/* The labels behind a container key changed: forget the cached lookup. */
void aggtable__meta_changed(struct aggtable *t, uint32_t key);
/* Drops series not seen for expire seconds; returns how many. */
unsigned aggtable__expire(struct aggtable *t, double now, double expire);
unsigned aggtable__series(const struct aggtable *t);
uint64_t aggtable__overflow(const struct aggtable *t);
int aggtable__write_metrics(const struct aggtable *t, struct metrics_text *m);
/* One JSON line: {"series":[{namespace,pod,container,exec,...,top:[...]}],...} */
int aggtable__write_summary(const struct aggtable *t, FILE *out);

#endif
