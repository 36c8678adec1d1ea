// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/agent_metrics.h"
#include "agent/control.h"

#include <stdio.h>

#include "bpf/event_util.h"
#include "shm/common/metrics_text.h"

static void counter(struct metrics_text *m, const char *name, const char *help, uint64_t v)
{
	metrics_text__family(m, name, "counter", help);
	metrics_text__sample_u64(m, name, NULL, NULL, 0, v);
}

static void gauge(struct metrics_text *m, const char *name, const char *help, double v)
{
	metrics_text__family(m, name, "gauge", help);
	metrics_text__sample(m, name, NULL, NULL, 0, v);
}

void agent_metrics_render(struct metrics_text *m, const struct agent_metrics_src *s)
{
	static const char *const type_l[] = { "type" };
	static const char *const cons_l[] = { "consumer", "id" };
	unsigned t, i;

	metrics_text__family(m, "kmon_events_read_total", "counter",
			     "Events read from the BPF ring buffer, by type");
	for (t = 1; t <= KMON_EV_TYPE_MAX; t++) {
		const char *v[] = { kmon_event_type_name(t) };
		metrics_text__sample_u64(m, "kmon_events_read_total", type_l, v, 1,
					 s->drain->events[t]);
	}
	if (s->kernel) {
		metrics_text__family(m, "kmon_kernel_dropped_total", "counter",
				     "Events the kernel could not reserve in the BPF ring buffer "
				     "(ring full), by type");
		metrics_text__family(m, "kmon_kernel_attempted_total", "counter",
				     "Events the BPF programs tried to emit, by type");
		for (t = 1; t <= KMON_EV_TYPE_MAX; t++) {
			const char *v[] = { kmon_event_type_name(t) };
			metrics_text__sample_u64(m, "kmon_kernel_dropped_total", type_l, v, 1,
						 s->kernel->c[KMON_CTR_DROP_BASE + t]);
			metrics_text__sample_u64(m, "kmon_kernel_attempted_total", type_l, v, 1,
						 s->kernel->c[KMON_CTR_ATTEMPT_BASE + t]);
		}
		counter(m, "kmon_irq_skipped_total",
			"Memory events raised in interrupt context, not charged to a task",
			s->kernel->c[KMON_CTR_IRQ_SKIPPED]);
		counter(m, "kmon_sampled_out_total", "Memory events skipped by 1-in-N sampling",
			s->kernel->c[KMON_CTR_SAMPLED_OUT]);
		counter(m, "kmon_kernel_pid_map_full_total",
			"Forked children the kernel could not track: PID map full",
			s->kernel->c[KMON_CTR_PIDMAP_FULL]);
		counter(m, "kmon_kernel_cgroup_tracked_total",
			"Processes tracked in the kernel on their first event because their cgroup "
			"is a known container's (exec, nsenter)",
			s->kernel->c[KMON_CTR_CGROUP_TRACKED]);
		counter(m, "kmon_bpf_recursion_misses_total",
			"BPF program runs the kernel skipped because one was already running on "
			"that CPU", s->kernel->recursion_misses);
	}
	counter(m, "kmon_invalid_records_total", "Ring buffer records that failed to decode",
		s->drain->invalid);
	gauge(m, "kmon_drain_stall_max_seconds",
	      "Longest time from a batch's first record to its publication",
	      (double)s->drain->max_batch_ns / 1e9);
	gauge(m, "kmon_consumers", "Consumers attached", s->n_consumers);
	metrics_text__family(m, "kmon_consumer_delivered_total", "counter",
			     "Records written into a consumer's ring");
	metrics_text__family(m, "kmon_consumer_dropped_total", "counter",
			     "Records a consumer lost because its ring was full");
	metrics_text__family(m, "kmon_consumer_ring_fill_ratio", "gauge",
			     "How full a consumer's ring was at the last publish (0-1)");
	for (i = 0; i < s->n_listed; i++) {
		const struct fanout_consumer_stats *c = &s->consumers[i];
		char id[16];
		const char *v[] = { c->name, id };
		snprintf(id, sizeof(id), "%u", c->id);
		metrics_text__sample_u64(m, "kmon_consumer_delivered_total", cons_l, v, 2,
					 c->delivered);
		metrics_text__sample_u64(m, "kmon_consumer_dropped_total", cons_l, v, 2, c->lost);
		metrics_text__sample(m, "kmon_consumer_ring_fill_ratio", cons_l, v, 2, c->fill);
	}
	if (s->control) {
		static const char *const why_l[] = { "reason" };
		const char *pend[] = { "pending" }, *uid[] = { "uid_limit" },
			   *bud[] = { "shm_budget" }, *pop[] = { "not_populated" };

		metrics_text__family(m, "kmon_control_refused_total", "counter",
				     "Connections and hellos the control socket refused, by reason");
		metrics_text__sample_u64(m, "kmon_control_refused_total", why_l, pend, 1,
					 s->control->refused_pending);
		metrics_text__sample_u64(m, "kmon_control_refused_total", why_l, uid, 1,
					 s->control->refused_uid);
		metrics_text__sample_u64(m, "kmon_control_refused_total", why_l, bud, 1,
					 s->control->refused_budget);
		metrics_text__sample_u64(m, "kmon_control_refused_total", why_l, pop, 1,
					 s->control->refused_populate);
		gauge(m, "kmon_shm_bytes", "Shared memory of the consumers' rings (--shm-budget counts it)",
		      (double)s->control->shm_bytes);
		gauge(m, "kmon_shm_budget_bytes", "--shm-budget", (double)s->control->shm_budget);
	}
	if (s->tracker) {
		const struct tracker_stats *ts = s->tracker;
		static const char *const res_l[] = { "result" };
		const char *ok[] = { "ok" }, *er[] = { "error" };

		gauge(m, "kmon_tracked_pids", "Container processes the last scan put in the PID map",
		      (double)ts->tracked);
		gauge(m, "kmon_containers", "Containers known", (double)ts->containers);
		gauge(m, "kmon_pods", "Pods in the last good kubelet PodList", (double)ts->pods);
		counter(m, "kmon_rescans_total", "Scans of /proc for container processes",
			ts->scans);
		counter(m, "kmon_pid_map_full_total",
			"Container processes a scan could not track: PID map full", ts->pid_map_full);
		counter(m, "kmon_identity_mismatch_total",
			"Containers left unannotated because the kubelet lists their id in another "
			"pod than their cgroup path's pod directory", ts->identity_mismatch);
		gauge(m, "kmon_cgroups_mapped",
		      "Containers whose own cgroup v2 is in the kernel's cgroup map",
		      (double)ts->cgroups_mapped);
		counter(m, "kmon_cgroup_map_full_total",
			"Containers left out of the cgroup map because it was full",
			ts->cgroup_map_full);
		gauge(m, "kmon_last_scan_seconds", "Duration of the last /proc scan",
		      ts->last_scan_ms / 1e3);
		if (ts->kubelet_configured) {
			metrics_text__family(m, "kmon_kubelet_refreshes_total", "counter",
					     "Kubelet PodList requests, by result");
			metrics_text__sample_u64(m, "kmon_kubelet_refreshes_total", res_l, ok, 1,
						 ts->kubelet_ok);
			metrics_text__sample_u64(m, "kmon_kubelet_refreshes_total", res_l, er, 1,
						 ts->kubelet_errors);
			gauge(m, "kmon_kubelet_last_success_age_seconds",
			      "Seconds since the last good PodList (-1: never)",
			      ts->seconds_since_kubelet_ok);
			{
				static const char *const part_l[] = { "part" };
				const char *pods[] = { "pod" }, *inst[] = { "container_instance" },
					   *ids[] = { "container_id" }, *fields[] = { "field" };

				metrics_text__family(m, "kmon_kubelet_podlist_skipped", "gauge",
						     "Parts of the last good PodList skipped (the rest "
						     "is used), by part");
				metrics_text__sample_u64(m, "kmon_kubelet_podlist_skipped", part_l,
							 pods, 1, ts->podlist_skipped_items);
				metrics_text__sample_u64(m, "kmon_kubelet_podlist_skipped", part_l,
							 inst, 1, ts->podlist_skipped_instances);
				metrics_text__sample_u64(m, "kmon_kubelet_podlist_skipped", part_l,
							 ids, 1, ts->podlist_skipped_ids);
				metrics_text__sample_u64(m, "kmon_kubelet_podlist_skipped", part_l,
							 fields, 1, ts->podlist_skipped_fields);
			}
		}
	}
	gauge(m, "kmon_ready", "1 when attached, draining and the first scan is done",
	      s->ready ? 1 : 0);
}
