// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What hiding addresses costs the drain, per event, in one process (root:
 * it reads this machine's /proc/kallsyms, as the agent does):
 *   copy      the 128-byte copy of the record the drain makes anyway (baseline)
 *   raw       copy + addrmask__apply with --raw-kernel-addresses (a branch)
 *   masked    copy + addrmask__apply by default: SipHash of ptr, two call
 *             sites through the cache (and the binary search on a miss)
 *   masked_cold  the same with every call site distinct (cache misses only:
 *             the worst case, a binary search per call site)
 * and on the consumer side, the JSON line with hex addresses vs with names.
 * Call sites are real text symbols of this kernel plus an offset; DISTINCT of
 * them (a node has a few thousand), drawn with a skew (a few sites make most
 * events). Prints one JSON line, ns per event.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/addrmask.h"
#include "agent/ksyms.h"
#include "shm/common/event_json.h"
#include "shm/symtab.h"

#define N 1000000
#define DISTINCT 3000

/* CPU time of this thread: the machine is shared, wall time would count
 * other processes' slices. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static volatile uint64_t sink;

static double run(struct addrmask *m, const struct kmon_event *in, size_t n)
{
	double t0 = now();
	uint64_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		struct kmon_event e = in[i];

		if (m)
			addrmask__apply(m, &e);
		acc += e.data.mem.ptr ^ e.data.mem.call_site;
	}
	sink = acc;
	return (now() - t0) * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
	struct ksyms_opts ko = { .sz = sizeof(ko), .mode = KSYMS_AUTO };
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : N;
	struct kmon_event *evs = calloc(n, sizeof(*evs)), *cold = calloc(n, sizeof(*cold));
	uint64_t sites[DISTINCT], seed = 0x9e3779b97f4a7c15ull;
	struct ksyms *k = ksyms__load(&ko);
	struct addrmask *masked, *raw;
	struct kmon_symtab *st;
	char err[200], *lines;
	double copy, r, m, mc, jhex, jsym, t_ptr = 1e9, t_site = 1e9;
	uint32_t nsym;

	if (!evs || !cold || !k || !n)
		return 1;
	nsym = ksyms__count(k);
	if (!nsym) {
		fprintf(stderr, "no kernel symbols: %s\n", ksyms__why(k));
		return 1;
	}
	st = kmon_symtab__open(ksyms__memfd(k), err, sizeof(err));
	masked = addrmask__new(k, false);
	raw = addrmask__new(k, true);
	if (!st || !masked || !raw)
		return 1;
	for (int i = 0; i < DISTINCT; i++)
		sites[i] = ksyms__addr(k, 1 + (uint32_t)(rnd(&seed) % nsym)) + 0x10 + rnd(&seed) % 64;
	for (size_t i = 0; i < n; i++) {
		/* Skewed: half the events from 1% of the sites. */
		uint64_t r1 = rnd(&seed);
		int s = (r1 & 1) ? (int)(r1 >> 8) % (DISTINCT / 100) : (int)(r1 >> 8) % DISTINCT;

		evs[i].event_type = (i & 1) ? KMON_EV_MEMORY_FREE : KMON_EV_MEMORY_ALLOC;
		evs[i].version = KMON_EVENT_VERSION;
		evs[i].pid = evs[i].tid = 1000 + (uint32_t)(i % 50);
		memcpy(evs[i].comm, "worker", 6);
		evs[i].size = 64;
		evs[i].data.mem.ptr = 0xffff888100000000ull + (rnd(&seed) & 0xffffff80ull);
		evs[i].data.mem.call_site = sites[s];
		cold[i] = evs[i];
		cold[i].data.mem.call_site = ksyms__addr(k, 1 + (uint32_t)(i % nsym)) + 8;
	}
	/* Warm-up pass, then the measured ones (best of 3: a shared machine). */
	(void)run(masked, evs, n);
	copy = r = m = mc = 1e9;
	for (int rep = 0; rep < 3; rep++) {
		double v;

		if ((v = run(NULL, evs, n)) < copy)
			copy = v;
		if ((v = run(raw, evs, n)) < r)
			r = v;
		if ((v = run(masked, evs, n)) < m)
			m = v;
		if ((v = run(masked, cold, n)) < mc)
			mc = v;
	}
	/* The two parts of masked alone: the pointer's SipHash, the call
	 * site's cache lookup. */
	for (int rep = 0; rep < 3; rep++) {
		uint64_t acc = 0;
		double t0 = now(), v;

		for (size_t i = 0; i < n; i++)
			acc += addrmask__ptr_id(masked, evs[i].data.mem.ptr);
		if ((v = (now() - t0) * 1e9 / (double)n) < t_ptr)
			t_ptr = v;
		t0 = now();
		for (size_t i = 0; i < n; i++)
			acc += ksyms__ref(k, evs[i].data.mem.call_site);
		if ((v = (now() - t0) * 1e9 / (double)n) < t_site)
			t_site = v;
		sink = acc;
	}
	/* Consumer side: the JSON line, hex vs names. */
	lines = malloc(KMON_EVENT_JSON_MAX);
	if (!lines)
		return 1;
	{
		size_t nj = n < 200000 ? n : 200000;
		struct kmon_event *mk = calloc(nj, sizeof(*mk));
		double t0;
		uint64_t acc = 0;

		if (!mk)
			return 1;
		for (size_t i = 0; i < nj; i++) {
			mk[i] = evs[i];
			addrmask__apply(masked, &mk[i]);
		}
		t0 = now();
		for (size_t i = 0; i < nj; i++)
			acc += (uint64_t)event_json__write_sym(lines, KMON_EVENT_JSON_MAX, &evs[i], NULL,
							       "node", 0, st);
		jhex = (now() - t0) * 1e9 / (double)nj;
		t0 = now();
		for (size_t i = 0; i < nj; i++)
			acc += (uint64_t)event_json__write_sym(lines, KMON_EVENT_JSON_MAX, &mk[i], NULL,
							       "node", 0, st);
		jsym = (now() - t0) * 1e9 / (double)nj;
		sink = acc;
		free(mk);
	}
	printf("{\"symbols\":%u,\"source\":\"%s\",\"distinct_call_sites\":%d,\"events\":%zu,"
	       "\"copy_ns\":%.2f,\"raw_ns\":%.2f,\"masked_ns\":%.2f,\"masked_cold_ns\":%.2f,"
	       "\"masked_extra_ns\":%.2f,\"masked_over_copy\":%.2f,\"masked_cold_over_copy\":%.2f,"
	       "\"ptr_siphash_ns\":%.2f,\"call_site_cached_ns\":%.2f,"
	       "\"json_hex_ns\":%.1f,\"json_names_ns\":%.1f,\"json_names_over_hex\":%.2f}\n",
	       nsym, kmon_symtab__source_name(ksyms__source(k)), DISTINCT, n, copy, r, m, mc,
	       m - copy, m / copy, mc / copy, t_ptr, t_site, jhex, jsym, jsym / jhex);
	kmon_symtab__free(st);
	addrmask__free(masked);
	addrmask__free(raw);
	ksyms__free(k);
	free(lines);
	free(evs);
	free(cold);
	return 0;
}
