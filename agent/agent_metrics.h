/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the agent's /metrics says, from snapshots of each part's counters.
 * Every family carries the kmon_ prefix; counters end in _total.
 */
#ifndef KMON_AGENT_METRICS_H
#define KMON_AGENT_METRICS_H

#include "agent/drain.h"
#include "agent/fanout.h"
#include "agent/loader.h"
#include "agent/tracker.h"

struct metrics_text;
struct control_stats;

struct agent_metrics_src {
	const struct drain_stats *drain;
	const struct loader_counters *kernel; /* NULL if unreadable */
	const struct fanout_consumer_stats *consumers;
	unsigned n_consumers; /* attached */
	unsigned n_listed;    /* entries in consumers[]: all of them unless out of memory */
	const struct tracker_stats *tracker; /* NULL when not scanning */
	const struct control_stats *control; /* NULL before the socket exists */
	bool ready;
	uint32_t kernel_symbols;   /* symbols in the table handed to consumers */
	unsigned symbols_source;   /* enum kmon_symtab_source */
	bool raw_kernel_addresses; /* --raw-kernel-addresses */
};

void agent_metrics_render(struct metrics_text *m, const struct agent_metrics_src *s);

#endif
