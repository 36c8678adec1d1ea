/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kmon-agent's command line. Parsing is separate from main() so every bad
 * value and its message can be unit-tested.
 */
#ifndef KMON_AGENT_OPTIONS_H
#define KMON_AGENT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "shm/common/log.h"

#define AGENT_MAX_PIDS 64

struct agent_options {
	bool scope_all;
	bool classic_tracepoints; /* --attach tracepoint */
	size_t ringbuf_size;
	uint32_t event_mask;
	uint32_t sample_every;
	uint32_t pid_map_size;
	uint32_t live_map_size; /* --live-map-size */
	uint32_t pids[AGENT_MAX_PIDS];
	unsigned n_pids;
	bool print;
	bool raw_kernel_addresses; /* consumers see real kernel addresses */
	int kernel_symbols;         /* enum ksyms_mode: auto, kallsyms, ksym-iter, off */
	enum log_level log_level;

	const char *socket_path;
	const char *socket_group; /* NULL: the agent's own group */
	unsigned socket_mode;
	unsigned max_consumers;
	size_t max_ring_size;
	size_t history_bytes;
	size_t shm_budget;             /* bytes of all rings at once */
	unsigned max_pending_per_uid;  /* connections without hello, per uid */
	unsigned max_consumers_per_uid;

	const char *proc_root;
	double rescan_interval; /* seconds; 0 = no scanning */
	int drain_nice;         /* -20..0 */
	int drain_rt_priority;  /* 0: off; 1..99: the drain is SCHED_FIFO at it */
	uid_t run_uid;          /* --run-as: who the agent is once attached */
	gid_t run_gid;
	const char *kubelet_url; /* NULL: no kubelet */
	const char *kubelet_token_file;
	const char *kubelet_ca_file;
	bool kubelet_insecure;
	const char *kubelet_helper; /* NULL: kmon-kubelet-get next to the agent */
	double kubelet_refresh;
	const char *node_name;

	const char *metrics_addr; /* NULL: no endpoints */
	const char *health_addr;  /* NULL: probes only on metrics_addr */
	const char *classify_cgroup; /* print what the parser makes of FILE and exit */

	bool show_help;
	bool show_version;

	char kubelet_url_buf[300]; /* storage for the default kubelet_url */
};

/* Fills o from argv and the environment (NODE_IP, NODE_NAME). Returns 0, or
 * -EINVAL with a one-line message naming the option and the reason in err. */
int agent_options_parse(int argc, char **argv, struct agent_options *o, char *err,
			size_t errlen);
void agent_options_usage(FILE *out);

#endif
