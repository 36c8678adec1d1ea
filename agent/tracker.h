/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The tracker keeps the kernel's view of "which processes are container
 * processes" (the PID map) and the consumers' view of "which container is
 * this" (META records) current. /proc scans and kubelet requests run on the
 * libuv thread pool; their results are applied on the loop thread, which is
 * the only one touching the container table. The drain thread is never
 * involved, so none of this can stall it.
 */
#ifndef KMON_AGENT_TRACKER_H
#define KMON_AGENT_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct loader;
struct fanout;
struct kubelet_proc;
struct tracker;

struct tracker_opts {
	size_t sz;
	uv_loop_t *loop;
	struct loader *loader;
	struct fanout *fanout;
	const char *proc_root;
	double rescan_interval; /* seconds; 0 = scan once at start only */
	uint32_t pid_map_size;
	/* The kubelet client (agent/kubelet_proc.h), NULL for none: the tracker
	 * takes it over, and frees it even when tracker__new fails. kubelet_url
	 * is what the logs name. */
	struct kubelet_proc *kubelet;
	const char *kubelet_url;
	double kubelet_refresh;
	const char *node_name;
	/* Called on the loop thread after each scan and refresh (may be NULL). */
	void (*on_update)(void *ctx);
	void *ctx;
};

struct tracker_stats {
	uint64_t scans;
	uint64_t scan_errors;
	uint64_t tracked;         /* container tgids put in the PID map by scans, now */
	uint64_t containers;      /* containers known */
	uint64_t pods;            /* pods known from the kubelet */
	uint64_t pid_map_full;    /* scan could not add a process: map full */
	uint64_t identity_mismatch; /* containers whose path and PodList disagree on the pod */
	uint64_t cgroups_mapped;  /* containers whose own cgroup v2 id is in the kernel's map */
	uint64_t cgroup_map_full; /* containers left out of the cgroup map: full */
	uint64_t kubelet_ok;
	uint64_t kubelet_errors;
	double last_scan_ms;
	double seconds_since_kubelet_ok; /* -1 = never */
	bool first_scan_done;
	bool kubelet_configured;
	/* Parts of the last good PodList skipped rather than failing it (see
	 * k8s/podlist.h): pods, container instances over the size bound,
	 * container ids not understood, malformed status fields. */
	uint64_t podlist_skipped_items;
	uint64_t podlist_skipped_instances;
	uint64_t podlist_skipped_ids;
	uint64_t podlist_skipped_fields;
};

struct tracker *tracker__new(const struct tracker_opts *opts);
/* Starts the first scan (and kubelet fetch) at once; later ones on timers. */
int tracker__start(struct tracker *t);
void tracker__get_stats(struct tracker *t, struct tracker_stats *out);
/* Closes the handles; frees once the loop has run their close callbacks. */
void tracker__close(struct tracker *t);

#endif
