/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The drain: one thread that empties the BPF ring buffer and hands each
 * record to a callback (the fan-out). Nothing else runs on this thread, so
 * kubelet calls, /proc scans and consumer handling can never stall it.
 */
#ifndef KMON_AGENT_DRAIN_H
#define KMON_AGENT_DRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"

struct drain;

struct drain_opts {
	size_t sz;
	int ringbuf_fd;
	/* The BPF programs' drain_polling word (may be NULL): set while the
	 * drain polls on a short timer, so producers need not wake it. */
	volatile uint32_t *polling;
	/* Called on the drain thread for every valid record, in ring order. */
	void (*on_event)(void *ctx, const struct kmon_event *ev);
	/* Called on the drain thread after each batch (a good time to publish). */
	void (*on_batch)(void *ctx);
	void *ctx;
};

struct drain_stats {
	uint64_t events[KMON_EV_TYPE_MAX + 1]; /* read, by type */
	uint64_t invalid;                      /* records that failed to decode */
	uint64_t batches;
	uint64_t max_batch_ns;   /* longest time from a batch's first record to its
				  * publication: the drain's worst stall */
	uint64_t max_batch_len;  /* most records in one batch */
};

struct drain *drain__start(const struct drain_opts *opts);
/* Stops the thread after one last pass over what is in the ring. */
void drain__stop(struct drain *d);
/* After drain__stop(): one more pass on the caller's thread, for records
 * that programs still in flight at detach time wrote late. */
void drain__consume_stopped(struct drain *d);
void drain__free(struct drain *d);
void drain__get_stats(struct drain *d, struct drain_stats *out);
/* Starts a new measurement window for max_batch_ns / max_batch_len. */
void drain__reset_max(struct drain *d);

#endif
