// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/agent_metrics.h"
#include "agent/control.h"

#include <stdio.h>

#include "bpf/event_util.h"
#include "shm/common/metrics_text.h"
#include "shm/symtab.h"

/* A family of one unlabelled sample: a counter (u) or a gauge (d). */
struct scalar {
	const char *name, *help;
	bool gauge;
	uint64_t u;
	double d;
};

#define COUNTER(name, help, v) { (name), (help), false, (v), 0 }
#define GAUGE(name, help, v) { (name), (help), true, 0, (v) }
#define SCALARS(m, table) scalars((m), (table), sizeof(table) / sizeof((table)[0]))

static void scalars(struct metrics_text *m, const struct scalar *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		metrics_text__family(m, f[i].name, f[i].gauge ? "gauge" : "counter", f[i].help);
		if (f[i].gauge)
			metrics_text__sample(m, f[i].name, NULL, NULL, 0, f[i].d);
		else
			metrics_text__sample_u64(m, f[i].name, NULL, NULL, 0, f[i].u);
	}
}

/* A family whose samples differ by one label: label=values[i] holds v[i].
 * One family's samples at a time: the text format wants them together under
 * their HELP/TYPE (promtool rejects interleaving). */
static void by_label(struct metrics_text *m, const char *name, const char *type, const char *help,
		     const char *label, const char *const *values, const uint64_t *v, unsigned n)
{
	const char *const ln[] = { label };

	metrics_text__family(m, name, type, help);
	for (unsigned i = 0; i < n; i++) {
		const char *lv[] = { values[i] };

		metrics_text__sample_u64(m, name, ln, lv, 1, v[i]);
	}
}

/* A counter by event type, from an array indexed by type (1..KMON_EV_TYPE_MAX). */
static void by_type(struct metrics_text *m, const char *name, const char *help,
		    const uint64_t *per_type)
{
	const char *names[KMON_EV_TYPE_MAX];

	for (unsigned t = 1; t <= KMON_EV_TYPE_MAX; t++)
		names[t - 1] = kmon_event_type_name(t);
	by_label(m, name, "counter", help, "type", names, per_type + 1, KMON_EV_TYPE_MAX);
}

enum consumer_value { CONSUMER_DELIVERED, CONSUMER_LOST, CONSUMER_FILL };

/* One per-consumer family, every consumer's sample under its HELP/TYPE. */
static void consumer_family(struct metrics_text *m, const struct agent_metrics_src *s,
			    const char *name, const char *type, const char *help,
			    enum consumer_value what)
{
	static const char *const cons_l[] = { "consumer", "id" };

	metrics_text__family(m, name, type, help);
	for (unsigned i = 0; i < s->n_listed; i++) {
		const struct fanout_consumer_stats *c = &s->consumers[i];
		char id[16];
		const char *v[] = { c->name, id };

		snprintf(id, sizeof(id), "%u", c->id);
		if (what == CONSUMER_FILL)
			metrics_text__sample(m, name, cons_l, v, 2, c->fill);
		else
			metrics_text__sample_u64(m, name, cons_l, v, 2,
						 what == CONSUMER_LOST ? c->lost : c->delivered);
	}
}

static void kernel_families(struct metrics_text *m, const struct loader_counters *k)
{
	const struct scalar f[] = {
		COUNTER("kmon_irq_skipped_total",
			"Memory events raised in interrupt context, not charged to a task",
			k->c[KMON_CTR_IRQ_SKIPPED]),
		COUNTER("kmon_sampled_out_total", "Memory events skipped by 1-in-N sampling",
			k->c[KMON_CTR_SAMPLED_OUT]),
		COUNTER("kmon_kernel_pid_map_full_total",
			"Forked children the kernel could not track: PID map full",
			k->c[KMON_CTR_PIDMAP_FULL]),
		COUNTER("kmon_kernel_cgroup_tracked_total",
			"Processes tracked in the kernel on their first event because their cgroup "
			"is a known container's (exec, nsenter)",
			k->c[KMON_CTR_CGROUP_TRACKED]),
		/* The memory ledger's health: what the live-allocation map
		 * matched, missed and could not hold. */
		COUNTER("kmon_live_map_recorded_total",
			"Container allocations recorded in the live-allocation map",
			k->c[KMON_CTR_LIVE_RECORDED]),
		COUNTER("kmon_live_map_full_total",
			"Container allocations not recorded: live-allocation map full "
			"(--live-map-size); their frees will be unknown",
			k->c[KMON_CTR_LIVE_FULL]),
		COUNTER("kmon_live_map_stale_total",
			"Live-map entries found when their address was allocated again: the free "
			"happened on a path without a tracepoint; reported as inferred frees",
			k->c[KMON_CTR_LIVE_STALE]),
		COUNTER("kmon_live_map_insert_failed_total",
			"Container allocations not recorded for another map error",
			k->c[KMON_CTR_SIZEMAP_FAIL]),
		COUNTER("kmon_frees_owner_charged_total",
			"Frees found in the live-allocation map, charged to the allocating container",
			k->c[KMON_CTR_FREE_MATCHED]),
		COUNTER("kmon_frees_owner_charged_elsewhere_total",
			"Of those, frees done outside the owner's process (another process, a "
			"kworker, an RCU callback, an interrupt)",
			k->c[KMON_CTR_FREE_ELSEWHERE]),
		COUNTER("kmon_frees_unknown_total",
			"Frees by a container's task of memory not in the live-allocation map",
			k->c[KMON_CTR_FREE_UNKNOWN]),
		COUNTER("kmon_bpf_recursion_misses_total",
			"BPF program runs the kernel skipped because one was already running on "
			"that CPU", k->recursion_misses),
	};

	by_type(m, "kmon_kernel_dropped_total",
		"Events the kernel could not reserve in the BPF ring buffer (ring full), by type",
		&k->c[KMON_CTR_DROP_BASE]);
	by_type(m, "kmon_kernel_attempted_total", "Events the BPF programs tried to emit, by type",
		&k->c[KMON_CTR_ATTEMPT_BASE]);
	SCALARS(m, f);
}

static void control_families(struct metrics_text *m, const struct control_stats *c)
{
	static const char *const why[] = { "pending", "uid_limit", "shm_budget", "not_populated" };
	const uint64_t refused[] = { c->refused_pending, c->refused_uid, c->refused_budget,
				     c->refused_populate };
	const struct scalar f[] = {
		GAUGE("kmon_shm_bytes", "Shared memory of the consumers' rings (--shm-budget counts it)",
		      (double)c->shm_bytes),
		GAUGE("kmon_shm_budget_bytes", "--shm-budget", (double)c->shm_budget),
	};

	by_label(m, "kmon_control_refused_total", "counter",
		 "Connections and hellos the control socket refused, by reason", "reason", why,
		 refused, 4);
	SCALARS(m, f);
}

static void tracker_families(struct metrics_text *m, const struct tracker_stats *ts)
{
	static const char *const results[] = { "ok", "error" };
	static const char *const parts[] = { "pod", "container_instance", "container_id", "field" };
	const uint64_t refreshes[] = { ts->kubelet_ok, ts->kubelet_errors };
	const uint64_t skipped[] = { ts->podlist_skipped_items, ts->podlist_skipped_instances,
				     ts->podlist_skipped_ids, ts->podlist_skipped_fields };
	const struct scalar f[] = {
		GAUGE("kmon_tracked_pids", "Container processes the last scan put in the PID map",
		      (double)ts->tracked),
		GAUGE("kmon_containers", "Containers known", (double)ts->containers),
		GAUGE("kmon_pods", "Pods in the last good kubelet PodList", (double)ts->pods),
		COUNTER("kmon_rescans_total", "Scans of /proc for container processes", ts->scans),
		COUNTER("kmon_pid_map_full_total",
			"Container processes a scan could not track: PID map full", ts->pid_map_full),
		COUNTER("kmon_identity_mismatch_total",
			"Containers left unannotated because the kubelet lists their id in another "
			"pod than their cgroup path's pod directory", ts->identity_mismatch),
		GAUGE("kmon_cgroups_mapped",
		      "Containers whose own cgroup v2 is in the kernel's cgroup map",
		      (double)ts->cgroups_mapped),
		COUNTER("kmon_cgroup_map_full_total",
			"Containers left out of the cgroup map because it was full",
			ts->cgroup_map_full),
		GAUGE("kmon_last_scan_seconds", "Duration of the last /proc scan",
		      ts->last_scan_ms / 1e3),
	};
	const struct scalar kubelet_age[] = {
		GAUGE("kmon_kubelet_last_success_age_seconds",
		      "Seconds since the last good PodList (-1: never)", ts->seconds_since_kubelet_ok),
	};

	SCALARS(m, f);
	if (!ts->kubelet_configured)
		return;
	by_label(m, "kmon_kubelet_refreshes_total", "counter", "Kubelet PodList requests, by result",
		 "result", results, refreshes, 2);
	SCALARS(m, kubelet_age);
	by_label(m, "kmon_kubelet_podlist_skipped", "gauge",
		 "Parts of the last good PodList skipped (the rest is used), by part", "part", parts,
		 skipped, 4);
}

void agent_metrics_render(struct metrics_text *m, const struct agent_metrics_src *s)
{
	const char *source[] = { kmon_symtab__source_name(s->symbols_source) };
	const uint64_t one = 1;
	const struct scalar drain[] = {
		COUNTER("kmon_invalid_records_total", "Ring buffer records that failed to decode",
			s->drain->invalid),
		GAUGE("kmon_drain_stall_max_seconds",
		      "Longest time from a batch's first record to its publication",
		      (double)s->drain->max_batch_ns / 1e9),
		GAUGE("kmon_consumers", "Consumers attached", s->n_consumers),
	};
	const struct scalar symbols[] = {
		GAUGE("kmon_kernel_symbols",
		      "Kernel text symbols consumers resolve call sites with; 0: no source worked and "
		      "every call site is unresolved (the agent's log says why)",
		      (double)s->kernel_symbols),
	};
	const struct scalar state[] = {
		GAUGE("kmon_raw_kernel_addresses",
		      "1 when consumers get raw kernel addresses (--raw-kernel-addresses)",
		      s->raw_kernel_addresses ? 1 : 0),
		GAUGE("kmon_ready", "1 when attached, draining and the first scan is done",
		      s->ready ? 1 : 0),
	};

	by_type(m, "kmon_events_read_total", "Events read from the BPF ring buffer, by type",
		s->drain->events);
	if (s->kernel)
		kernel_families(m, s->kernel);
	SCALARS(m, drain);
	consumer_family(m, s, "kmon_consumer_delivered_total", "counter",
			"Records written into a consumer's ring (for a consumer reading the shared "
			"history: its events there, less those it reports lost)", CONSUMER_DELIVERED);
	consumer_family(m, s, "kmon_consumer_dropped_total", "counter",
			"Records a consumer lost because its ring was full (for a consumer reading "
			"the shared history: what it reports it missed there, plus what was "
			"overwritten past the position it reports)", CONSUMER_LOST);
	consumer_family(m, s, "kmon_consumer_ring_fill_ratio", "gauge",
			"How full a consumer's ring was at the last publish (0-1; for one reading the "
			"shared history: the share of the history it is behind, 1 when it loses "
			"events)", CONSUMER_FILL);
	if (s->control)
		control_families(m, s->control);
	if (s->tracker)
		tracker_families(m, s->tracker);
	SCALARS(m, symbols);
	by_label(m, "kmon_kernel_symbols_source", "gauge",
		 "Where the symbol table came from (kallsyms, ksym-iter or none)", "source", source,
		 &one, 1);
	SCALARS(m, state);
}
