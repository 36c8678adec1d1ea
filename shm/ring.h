/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A single-producer/single-consumer ring of variable-length records in shared
 * memory, between a privileged producer and an unprivileged consumer.
 *
 * Two memfds make up one ring:
 *   data: a header page (magic, size, producer position) followed by a
 *         power-of-two data area. The producer maps it read-write; the
 *         consumer gets a read-only descriptor, so it cannot even map it
 *         writable.
 *   ctl:  one page the consumer writes: its position and its "about to
 *         sleep" word. The producer treats every value in it as hostile.
 *
 * Positions are byte counters that only grow (the offset is pos & mask).
 * Records are 8-byte aligned and start with struct kmon_rec_hdr; a record
 * never straddles the end of the data area: a PAD record fills the tail
 * instead. The producer publishes its position once per batch with a
 * store-release; the consumer publishes its own likewise.
 *
 * Wake-ups: the consumer, before sleeping on the eventfd, writes an odd
 * "wait" word, issues a full fence and re-checks the producer position. The
 * producer, after publishing, issues a full fence and reads the wait word; it
 * writes the eventfd only for a wait word it has not already answered. Both
 * fences are needed: a store-release alone lets the two loads pass the two
 * stores and each side miss the other (the lost wake-up libbpf once had).
 */
#ifndef KMON_SHM_RING_H
#define KMON_SHM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KMON_RING_MAGIC 0x4b4d4f4e52494e47ull /* "KMONRING" */
#define KMON_RING_LAYOUT_VERSION 1
#define KMON_RING_MIN_BYTES 4096u
#define KMON_RING_MAX_BYTES (1u << 30)
#define KMON_RING_ALIGN 8u

enum kmon_rec_type {
	KMON_REC_PAD = 0,   /* filler up to the end of the data area; skip */
	KMON_REC_EVENT = 1, /* struct kmon_event follows */
	KMON_REC_META = 2,  /* struct kmon_meta follows */
	KMON_REC_LOST = 3,  /* struct kmon_rec_lost follows */
	KMON_REC_RAW = 4,   /* opaque bytes (benchmarks, tests) */
};

enum kmon_rec_flags {
	KMON_RECF_REPLAY = 1 << 0, /* history from before this consumer attached */
};

struct kmon_rec_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t len; /* whole record incl. this header, multiple of 8 */
	uint64_t seq; /* per consumer; LOST carries the first lost seq */
};

struct kmon_rec_lost {
	uint64_t count;     /* records with seq in [since_seq, since_seq+count) */
	uint64_t since_seq;
};

/* Bytes a record with `payload` bytes of payload takes in the ring. */
static inline uint32_t kmon_rec_size(uint32_t payload)
{
	return (uint32_t)((sizeof(struct kmon_rec_hdr) + payload + KMON_RING_ALIGN - 1) &
			  ~(size_t)(KMON_RING_ALIGN - 1));
}

/* ---- producer (agent) ---- */

struct ring_prod;

struct ring_prod_stats {
	uint64_t head;         /* bytes produced */
	uint64_t tail;         /* last valid consumer position seen */
	uint64_t wakeups;      /* eventfd writes */
	uint64_t bad_tail;     /* invalid consumer positions seen */
	size_t data_bytes;
};

/* data_bytes: power of two in [KMON_RING_MIN_BYTES, KMON_RING_MAX_BYTES].
 * name: shows up in /proc/<pid>/maps as memfd:<name>. NULL + errno on error. */
struct ring_prod *ring_prod__new(size_t data_bytes, const char *name);
void ring_prod__free(struct ring_prod *p);
/* Descriptors to hand the consumer: data (read-only) and ctl (read-write),
 * plus the eventfd the producer writes. Owned by the ring; dup them to keep. */
int ring_prod__consumer_fds(struct ring_prod *p, int *data_ro, int *ctl, int *efd);

/* Space for a record of `len` bytes (kmon_rec_size()); NULL when the ring is
 * full. Returns NULL with *bad set when the consumer position is invalid:
 * the caller must detach that consumer. Re-reads the consumer position only
 * when the cached one does not leave room. */
struct kmon_rec_hdr *ring_prod__reserve(struct ring_prod *p, uint32_t len, bool *bad);
/* True when `need` bytes are free, re-reading the consumer position only if
 * the cached one says no. *bad as for reserve. */
bool ring_prod__room(struct ring_prod *p, size_t need, bool *bad);
/* Makes the last reserved record part of the next publish. */
void ring_prod__commit(struct ring_prod *p, struct kmon_rec_hdr *rec);
/* Publishes committed records and wakes a sleeping consumer. Returns 1 when
 * it wrote the eventfd, 0 when not, -errno when that write failed. */
int ring_prod__publish(struct ring_prod *p);
/* Free bytes as of the cached consumer position (cheap; no shared read). */
size_t ring_prod__free_bytes(const struct ring_prod *p);
/* Fill ratio 0..1 reading the consumer position once; sets *bad if invalid. */
double ring_prod__fill(struct ring_prod *p, bool *bad);
void ring_prod__get_stats(const struct ring_prod *p, struct ring_prod_stats *out);

/* ---- consumer ---- */

struct ring_cons;

/* Maps the descriptors received from the agent (takes no ownership of
 * them). Validates the header; NULL + errno (EPROTO: not a kmon ring). */
struct ring_cons *ring_cons__new(int data_fd, int ctl_fd, int efd);
void ring_cons__free(struct ring_cons *c);
int ring_cons__eventfd(const struct ring_cons *c);

/* Next record, or NULL when the ring is empty (returns NULL with *bad set
 * when the producer wrote something malformed). PAD records are skipped. */
const struct kmon_rec_hdr *ring_cons__peek(struct ring_cons *c, bool *bad);
/* Done with the record peek returned; its memory may be reused after the
 * next ring_cons__release(). */
void ring_cons__advance(struct ring_cons *c, const struct kmon_rec_hdr *rec);
/* Publishes the consumer position (once per batch). */
void ring_cons__release(struct ring_cons *c);
/* Announces sleep. Returns false if records arrived meanwhile (do not sleep),
 * true when the caller may wait for the eventfd. */
bool ring_cons__prepare_sleep(struct ring_cons *c);
/* After waking (or deciding not to sleep): clears the announcement and
 * drains the eventfd counter. */
void ring_cons__wake(struct ring_cons *c);
/* Bytes waiting to be read. */
size_t ring_cons__pending(struct ring_cons *c);

#endif
