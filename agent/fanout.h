/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Fan-out: copies each kernel event into the shared-memory ring of every
 * attached consumer whose subscription matches, or, for a shared consumer
 * (one without a namespace filter), writes it once into the history they
 * all read (shm/history.h) and gives each only the META its events need.
 * Owns the consumers' rings, the per-consumer accounting (produced /
 * delivered / lost) and the history.
 *
 * Threads: fanout__publish() and fanout__flush() are called only by the drain
 * thread and never block. Everything else is called from one control (libuv)
 * thread: fanout__attach() reads the metadata without the lock, as only that
 * thread changes it. The object synchronises internally with short critical
 * sections taken at most once per published batch; an attach builds the new
 * consumer (ring, dictionary, replay) outside them and a detach frees it
 * outside them, so neither holds up the drain.
 */
#ifndef KMON_AGENT_FANOUT_H
#define KMON_AGENT_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/meta.h"
#include "shm/proto.h"

struct kmon_event;
struct kmon_meta;
struct fanout;


struct fanout_opts {
	size_t sz;              /* sizeof(struct fanout_opts) */
	unsigned max_consumers; /* default 16 */
	size_t default_ring_bytes; /* when a hello asks for 0; default 4 MiB */
	size_t max_ring_bytes;  /* largest ring a consumer may ask for; default 64 MiB */
	size_t history_bytes;   /* events kept for replay to late consumers; default 8 MiB */
	/* Called on the drain thread when a consumer's shared position was
	 * invalid; the consumer is skipped from then on and the control thread
	 * should collect it with fanout__take_bad(). */
	void (*on_bad)(void *ctx);
	void *ctx;
};

struct fanout_sub {
	const char *name;
	uid_t uid;
	pid_t pid;
	uint32_t event_mask; /* 0 = all */
	const char (*namespaces)[KMON_PROTO_NS_LEN];
	unsigned n_namespaces;
	size_t ring_bytes;   /* 0 = default */
	size_t replay_bytes;
	/* The consumer can read its events from the shared history (the
	 * library can): granted when it has no namespace filter and the agent
	 * keeps a history. */
	bool shared;
	/* A ring the caller created and started (ring_prod__create, populated by
	 * the consumer, ring_prod__start): the fan-out takes it over on success
	 * and ring_bytes is its size. NULL: the fan-out creates one itself. */
	struct ring_prod *ring;
};

struct fanout_consumer_stats {
	uint32_t id;
	char name[KMON_PROTO_NAME_MAX];
	uid_t uid;
	pid_t pid;
	uint64_t produced;  /* records the agent tried to give this consumer */
	uint64_t delivered; /* records written into its ring; for a shared
			     * consumer, produced less lost */
	uint64_t lost;      /* records dropped because its ring was full; for a
			     * shared consumer, what it reports it missed in the
			     * history (never more than produced) */
	bool shared;        /* reads its events from the shared history */
	uint64_t lost_reported; /* shared: the consumer's own count, unclamped */
	uint64_t wakeups;   /* wake-ups sent */
	double fill;        /* ring fill ratio at the last publish, 0..1; for a
			     * shared consumer, the share of the history it is
			     * behind, from the position it reports */
	size_t ring_bytes;
};

struct fanout *fanout__new(const struct fanout_opts *opts);
void fanout__free(struct fanout *fo);

/* Drain thread: called once per event in kernel order, then flush per batch. */
void fanout__publish(struct fanout *fo, const struct kmon_event *ev);
void fanout__flush(struct fanout *fo);

/* Control thread: container metadata, sent to consumers before first use. */
int fanout__set_meta(struct fanout *fo, const struct kmon_meta *meta);
int fanout__forget_meta(struct fanout *fo, uint32_t key);

/* Control thread. On success *id names the consumer and fds[] holds the ring
 * data (read-only), ring ctl and wake-up descriptors, and the shared
 * history's read-only descriptor for a shared consumer (else -1), owned by
 * the fan-out (valid until detach; send them, do not close them). Returns
 * 0, -ENOSPC when the consumer limit is reached, or another -errno. */
int fanout__attach(struct fanout *fo, const struct fanout_sub *sub, uint32_t *id, int fds[4],
		   size_t *ring_bytes, size_t *replayed_bytes);
/* Frees the consumer's ring; *final (may be NULL) gets its last counts. */
int fanout__detach(struct fanout *fo, uint32_t id, struct fanout_consumer_stats *final);
/* Ids of consumers found misbehaving and not yet detached (at most n). */
unsigned fanout__take_bad(struct fanout *fo, uint32_t *ids, unsigned n);
/* Drain thread, at shutdown: last LOST records and a final publish. */
void fanout__finish(struct fanout *fo);
unsigned fanout__consumer_count(struct fanout *fo);
/* Copies at most n entries; returns how many consumers there are. */
unsigned fanout__consumer_stats(struct fanout *fo, struct fanout_consumer_stats *out, unsigned n);

#endif
