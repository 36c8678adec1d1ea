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
 *   ctl:  one page the consumer writes: its position, its "about to
 *         sleep" word and notes about itself (numbers it reports). The
 *         producer treats every value in it as hostile.
 *
 * Positions are byte counters that only grow (the offset is pos & mask).
 * Records are 8-byte aligned and start with struct kmon_rec_hdr; a record
 * never straddles the end of the data area: a PAD record fills the tail
 * instead. The producer publishes its position once per batch with a
 * store-release; the consumer publishes its own likewise.
 *
 * Wake-ups: the consumer, before sleeping on its wake-up socket, writes an
 * odd "wait" word, issues a full fence and re-checks the producer position.
 * The producer, after publishing, issues a full fence and reads the wait
 * word; it sends one byte on the wake-up socket only for a wait word it has
 * not already answered. Both fences are needed: a store-release alone lets
 * the two loads pass the two stores and each side miss the other (the lost
 * wake-up libbpf once had).
 *
 * The wake-up channel is an AF_UNIX SOCK_SEQPACKET socket pair: the producer
 * keeps one end (nonblocking, receive side shut, the smallest send buffer)
 * and hands over the other (send side shut). Layout 1 sent the eventfd the
 * producer wrote: one open file description, so the consumer could clear
 * O_NONBLOCK on it, fill its counter, and block the producer's next write.
 * A pipe would fix the flags, but a pipe's read end can be reopened for
 * writing through /proc/self/fd, and a pipe writer holds the pipe's mutex
 * while it copies from its own memory, which the nonblocking producer then
 * waits for. A socket cannot be reopened through /proc, and the send path
 * takes only the peer's spinlocks.
 *
 * Who pays for the pages: shmem pages are charged to the memory cgroup of
 * the task that first faults them, and the data memfd is sealed with
 * F_SEAL_FUTURE_WRITE (so nobody can punch holes in it to free them). So
 * the producer creates a ring untouched (ring_prod__create), the consumer
 * maps it with MAP_POPULATE (ring_cons__map: every page faulted in by, and
 * charged to, the consumer), the producer checks with mincore() that every
 * page is resident (ring_prod__resident) and only then writes the header
 * (ring_prod__start). Detaching leaves nothing charged to the producer,
 * whatever descriptors the consumer keeps. The one exception is bounded: the
 * consumer may punch a hole in its ctl page (it must be writable), and the
 * producer's next read faults one page back in: at most one page per ring.
 *
 * Drain path audit (nothing the drain thread does may block on an object a
 * consumer can change):
 *  - ring data/ctl: plain loads and stores to memory the producer mapped;
 *    the memfds are sealed against shrinking (no SIGBUS) and every page is
 *    resident before the first write; every value read from ctl is
 *    validated (refresh_tail), the wait word only compared.
 *  - wake-up: send(MSG_DONTWAIT | MSG_NOSIGNAL) on a descriptor whose open
 *    file description never leaves the agent; a full queue gives EAGAIN
 *    (a wake-up is already pending), a shut-down peer EPIPE; neither
 *    blocks, and the consumer cannot change our end's flags or buffer.
 *  - the shared history (shm/history.h): stores into the agent's own mapping
 *    of a memfd sealed against resizing and against writes through any
 *    other mapping or descriptor, so no consumer can free, shrink or change
 *    a page under the drain; wake-ups for it as above (ring_prod__wake()).
 *    The notes a consumer writes in its ctl page are read only for
 *    statistics, off the drain.
 *  - the BPF ring buffer's mappings (agent/kring.h) and epoll_wait: on
 *    descriptors only the agent holds (the BPF ring map, the drain's stop
 *    eventfd).
 *  - the fan-out mutex: shared only with the agent's control thread, which
 *    holds it for bounded, non-blocking work (attach/detach, metadata,
 *    stats); no consumer-controlled syscall runs under it.
 *  - on a bad consumer: uv_async_send, a write to libuv's own eventfd,
 *    which the agent alone holds.
 *  - logging: to the agent's stderr, never from the drain's per-record path.
 * Compatibility: the layout version is 2 since the wake-up channel became a
 * socket; a consumer checks it (ring_cons__start) and refuses another.
 */
#ifndef KMON_SHM_RING_H
#define KMON_SHM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KMON_RING_MAGIC 0x4b4d4f4e52494e47ull /* "KMONRING" */
#define KMON_RING_LAYOUT_VERSION 2
#define KMON_RING_MIN_BYTES 4096u
#define KMON_RING_MAX_BYTES (1u << 30)
#define KMON_RING_ALIGN 8u
#define KMON_RING_NOTES 2 /* ring_cons__set_note() */

enum kmon_rec_type {
	KMON_REC_PAD = 0,   /* filler up to the end of the data area; skip */
	KMON_REC_EVENT = 1, /* struct kmon_event follows */
	KMON_REC_META = 2,  /* struct kmon_meta follows */
	KMON_REC_LOST = 3,  /* struct kmon_rec_lost follows */
	KMON_REC_RAW = 4,   /* opaque bytes (benchmarks, tests) */
	KMON_REC_JOIN = 5,  /* struct kmon_rec_join follows: events continue in the history */
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

/* From this record on, a shared consumer's events are read from the shared
 * history (shm/history.h), starting with event number `from`; its ring
 * carries only the other records. Events numbered below `live_from` were
 * published before the consumer attached (replay). The record's seq is the
 * one the first event read from the history takes. */
struct kmon_rec_join {
	uint64_t from;
	uint64_t live_from;
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
	uint64_t wakeups;      /* wake-ups sent */
	uint64_t bad_tail;     /* invalid consumer positions seen */
	uint64_t wake_full;    /* wake-ups not sent: one already pending */
	size_t data_bytes;
};

/* data_bytes: power of two in [KMON_RING_MIN_BYTES, KMON_RING_MAX_BYTES].
 * name: shows up in /proc/<pid>/maps as memfd:<name>. NULL + errno on error.
 * Creates the ring without touching a page of it (see "Who pays"): hand the
 * descriptors over, wait for the consumer, check ring_prod__resident(), then
 * ring_prod__start() before any other call. */
struct ring_prod *ring_prod__create(size_t data_bytes, const char *name);
/* True when every page of the ring (data and ctl) is in memory. */
bool ring_prod__resident(const struct ring_prod *p);
/* Writes the header; the ring is usable from here on. */
void ring_prod__start(struct ring_prod *p);
/* create + start, for a producer that pays for its own pages (tests). */
struct ring_prod *ring_prod__new(size_t data_bytes, const char *name);
void ring_prod__free(struct ring_prod *p);
/* Bytes of shared memory a ring of data_bytes takes (header, data, ctl). */
size_t ring_prod__total_bytes(size_t data_bytes);
/* Descriptors to hand the consumer: data (read-only) and ctl (read-write),
 * plus the consumer's end of the wake-up socket. Owned by the ring; dup them
 * to keep. */
int ring_prod__consumer_fds(struct ring_prod *p, int *data_ro, int *ctl, int *wake);

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
 * it sent a wake-up, 0 when not (or one was pending), -errno when the send
 * failed (e.g. -EPIPE: the consumer shut its end). Never blocks. */
int ring_prod__publish(struct ring_prod *p);
/* The wake-up half of publish: after a full fence, wakes the consumer if it
 * announced sleep since the last wake-up. For a producer that made something
 * else the consumer checks before sleeping visible (the shared history,
 * shm/history.h). Returns as publish. Never blocks. */
int ring_prod__wake(struct ring_prod *p);
/* Note i (below KMON_RING_NOTES; else 0) as the consumer last wrote it with
 * ring_cons__set_note(): what it reports about itself (e.g. where it reads
 * outside this ring, and what it lost there). Never trusted: for display
 * only. */
uint64_t ring_prod__consumer_note(const struct ring_prod *p, unsigned i);
/* Free bytes as of the cached consumer position (cheap; no shared read). */
size_t ring_prod__free_bytes(const struct ring_prod *p);
/* Fill ratio 0..1 reading the consumer position once; sets *bad if invalid. */
double ring_prod__fill(struct ring_prod *p, bool *bad);
void ring_prod__get_stats(const struct ring_prod *p, struct ring_prod_stats *out);

/* ---- consumer ---- */

struct ring_cons;

/* Checks the descriptors received from the agent before touching them (takes
 * no ownership): data and ctl must be memfds of exactly the expected sizes,
 * sealed against shrinking and growing (data also F_SEAL_FUTURE_WRITE), wake
 * a socket; then maps them with every page populated (the consumer pays for
 * its ring). NULL + errno (EPROTO: not what the agent sends) and a reason in
 * err (may be NULL). The header is not valid yet: see ring_cons__start(). */
struct ring_cons *ring_cons__map(int data_fd, int ctl_fd, int wake_fd, size_t data_bytes,
				 char *err, size_t errlen);
/* Validates the header once the producer has started the ring: 0 or -EPROTO. */
int ring_cons__start(struct ring_cons *c);
/* map + start, the size taken from the data memfd (tests, benchmarks). */
struct ring_cons *ring_cons__new(int data_fd, int ctl_fd, int wake_fd);
void ring_cons__free(struct ring_cons *c);
/* The descriptor to poll for POLLIN while sleeping (the wake-up socket; the
 * name is from layout 1, when it was an eventfd). */
int ring_cons__eventfd(const struct ring_cons *c);

/* Next record, or NULL when the ring is empty (returns NULL with *bad set
 * when the producer wrote something malformed). PAD records are skipped. */
const struct kmon_rec_hdr *ring_cons__peek(struct ring_cons *c, bool *bad);
/* Done with the record peek returned; its memory may be reused after the
 * next ring_cons__release(). */
void ring_cons__advance(struct ring_cons *c, const struct kmon_rec_hdr *rec);
/* Publishes the consumer position (once per batch). */
void ring_cons__release(struct ring_cons *c);
/* Writes note i (below KMON_RING_NOTES), which ring_prod__consumer_note()
 * reads. */
void ring_cons__set_note(struct ring_cons *c, unsigned i, uint64_t v);
/* Announces sleep. Returns false if records arrived meanwhile (do not sleep),
 * true when the caller may wait for the eventfd. */
bool ring_cons__prepare_sleep(struct ring_cons *c);
/* After waking (or deciding not to sleep): clears the announcement and
 * drains the pending wake-ups. */
void ring_cons__wake(struct ring_cons *c);
/* Bytes waiting to be read. */
size_t ring_cons__pending(struct ring_cons *c);

#endif
