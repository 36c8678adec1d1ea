/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Loads, configures and attaches kmon's BPF programs (libbpf skeleton), and
 * gives the rest of the agent what it needs of them: the ring buffer, the PID
 * map and the kernel-side counters.
 */
#ifndef KMON_AGENT_LOADER_H
#define KMON_AGENT_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"

struct loader;

struct loader_opts {
	size_t sz;
	bool scope_all;
	uint32_t event_mask;
	uint32_t sample_every;
	uint32_t pid_map_size;
	size_t ringbuf_size;
	uint32_t self_tgid; /* never traced: the agent itself */
	bool classic_tracepoints; /* tracepoint/ instead of tp_btf/ (needs tracefs) */
	uint32_t live_map_size; /* live-allocation map entries; 0: the object's default */
};

struct loader_counters {
	uint64_t c[KMON_CTR_MAX];   /* enum kmon_counter, summed over CPUs */
	uint64_t recursion_misses;  /* program runs the kernel skipped (nested on a CPU) */
};

/* Checks what loading needs and explains what is missing in err: privileges
 * (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN), kernel BTF, the tracepoints. */
int loader_preflight(char *err, size_t errlen);

/* Opens, configures, loads and attaches. NULL with errno and err set on failure. */
struct loader *loader__new(const struct loader_opts *opts, char *err, size_t errlen);
/* Detaches the programs (no new events) but keeps maps readable. */
void loader__detach(struct loader *l);
void loader__free(struct loader *l);

int loader__ringbuf_fd(const struct loader *l);
/* The programs' "drain is polling" word (shared memory with the kernel). */
volatile uint32_t *loader__drain_polling(const struct loader *l);
int loader__pids_fd(const struct loader *l);
int loader__read_counters(const struct loader *l, struct loader_counters *out);

/* PID map maintenance from user space. track returns -ENOSPC when full. */
int loader__track(struct loader *l, uint32_t tgid, uint32_t container_key, uint32_t flags);
int loader__untrack(struct loader *l, uint32_t tgid);
/* Writes n entries (tgids[i] -> infos[i]) whatever the map holds now, in
 * batches of one syscall where the kernel can. Entries refused because the
 * map is full are counted in *n_full; returns 0, or the first other error
 * (the remaining entries are still tried). */
struct kmon_pid_info;
int loader__track_many(struct loader *l, const uint32_t *tgids, const struct kmon_pid_info *infos,
		       uint32_t n, uint32_t *n_full);

/* The cgroup map (cgroup v2 id -> container key, KMON_CGROUP_MAP_SIZE
 * entries): a task missing from the PID map whose cgroup is here is tracked
 * from its first event. map returns -ENOSPC when full; unmap of a missing
 * entry is not an error. set_cgroups_mapped tells the programs how many
 * entries there are (0 spares them the lookup). */
int loader__map_cgroup(struct loader *l, uint64_t cgroup_id, uint32_t container_key);
int loader__unmap_cgroup(struct loader *l, uint64_t cgroup_id);
void loader__set_cgroups_mapped(struct loader *l, uint32_t n);

#endif
