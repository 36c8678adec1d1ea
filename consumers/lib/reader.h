/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A pull-style consumer on top of kmon_client, for programs (and language
 * bindings) that want "give me the next records" instead of a libuv loop of
 * their own: the reader owns a private loop and fills the caller's array in
 * batches, so a binding pays one call per batch, not per event.
 */
#ifndef KMON_CONSUMERS_READER_H
#define KMON_CONSUMERS_READER_H

#include <stdint.h>

#include "consumers/lib/client.h"

struct kmon_reader;

enum kmon_read_kind {
	KMON_READ_EVENT = 1, /* ev, seq, meta */
	KMON_READ_LOST = 2,  /* count records lost, starting at seq */
};

enum kmon_read_flags {
	KMON_READF_REPLAY = 1u << 0, /* history from before this consumer attached */
};

/* 176 bytes; laid out for ctypes as much as for C (no implicit padding). */
struct kmon_read_rec {
	uint32_t kind;  /* enum kmon_read_kind */
	uint32_t flags; /* enum kmon_read_flags */
	uint64_t seq;
	uint64_t count;
	/* The container's metadata (NULL if none or not known yet). The pointer
	 * stays valid until kmon_reader__free; its contents change in place
	 * when the agent updates them (kmon_reader__meta_gen() then grows). */
	const struct kmon_meta *meta;
	uint8_t ev[128]; /* struct kmon_event, version-checked */
	uint64_t reserved[2];
};

/* Connects in the background (opts as for kmon_client__new; reconnect is
 * honoured). NULL + errno on failure. */
struct kmon_reader *kmon_reader__new(const struct kmon_client_opts *opts);
/* Waits up to timeout_ms (-1: forever) for records and copies at most n into
 * out. Returns how many (0 on timeout), or -ECONNREFUSED once the agent
 * refused the hello or went away without reconnect (kmon_reader__why says
 * why), or another -errno. */
int kmon_reader__read(struct kmon_reader *r, struct kmon_read_rec *out, unsigned n,
		      int timeout_ms);
/* Last state change as text ("attached to ...", "the agent refused ..."). */
const char *kmon_reader__why(const struct kmon_reader *r);
enum kmon_client_state kmon_reader__state(const struct kmon_reader *r);
/* Grows whenever some container's metadata was added or changed. */
uint64_t kmon_reader__meta_gen(const struct kmon_reader *r);
const char *kmon_reader__node(const struct kmon_reader *r);
void kmon_reader__get_stats(const struct kmon_reader *r, struct kmon_client_stats *out);
/* Detaches, delivering nothing more, and frees everything. NULL is fine. */
void kmon_reader__free(struct kmon_reader *r);

#endif
