// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/history.h"
#include "shm/err.h"
#include "shm/memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"

#define HIST_HDR_BYTES 4096u
#define CACHELINE 64
/* How far ahead the drain announces overwrites (hist_prod__append()): the
 * `started` line changes once per 1,024 events of the default history. */
#define HIST_STEP_MAX 1024u

/* Written by the producer only. */
struct hist_hdr {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t hdr_bytes;
	uint32_t slot_bytes;
	uint32_t reserved;
	uint64_t cap;
	_Alignas(CACHELINE) _Atomic uint64_t started;
	_Alignas(CACHELINE) _Atomic uint64_t head;
	_Alignas(CACHELINE) _Atomic uint64_t published;
};
_Static_assert(sizeof(struct hist_hdr) <= HIST_HDR_BYTES, "history header fits its page");

struct hist_prod {
	struct hist_hdr *hdr;
	struct kmon_event *slots;
	size_t cap;
	size_t slot;  /* drain thread: head % cap */
	uint64_t local_head; /* drain thread: its own copy of head */
	uint64_t announced;  /* drain thread: what it last stored in started */
	uint64_t step;       /* how far ahead it announces */
	int fd, ro_fd;
};

size_t hist_prod__total_bytes(size_t cap)
{
	return HIST_HDR_BYTES + cap * sizeof(struct kmon_event);
}

struct hist_prod *hist_prod__new(size_t cap, const char *name)
{
	struct hist_prod *h;
	char nm[64];
	void *m;
	int e;

	if (!cap || cap > KMON_HIST_MAX_CAP) {
		errno = EINVAL;
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->fd = h->ro_fd = -1;
	h->cap = cap;
	snprintf(nm, sizeof(nm), "kmon-history-%s", name ? name : "anon");
	h->fd = kmon_memfd__sized(nm, hist_prod__total_bytes(cap));
	if (h->fd < 0)
		goto fail;
	/* Not populated: the drain faults each page in as it first writes it,
	 * as it did when the history was anonymous memory. */
	m = mmap(NULL, hist_prod__total_bytes(cap), PROT_READ | PROT_WRITE, MAP_SHARED, h->fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	h->hdr = m;
	h->slots = (struct kmon_event *)((uint8_t *)m + HIST_HDR_BYTES);
	/* As the ring's data: no resizing (SIGBUS for the drain), no write but
	 * through the mapping above (F_SEAL_FUTURE_WRITE: the read-only
	 * descriptor reopened read-write can neither write, map writable nor
	 * punch holes). */
	if (fcntl(h->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) <
	    0)
		goto fail;
	h->ro_fd = kmon_memfd__reopen_ro(h->fd);
	if (h->ro_fd < 0)
		goto fail;
	h->hdr->layout_version = KMON_HIST_LAYOUT_VERSION;
	h->hdr->hdr_bytes = HIST_HDR_BYTES;
	h->hdr->slot_bytes = sizeof(struct kmon_event);
	h->hdr->cap = cap;
	/* At most a 64th of the history, so a reader takes at most that many
	 * events still there for overwritten; a reader that far behind has
	 * an eighth of slack to skip anyway (hist_cons__read()). */
	h->step = cap / 64 > HIST_STEP_MAX ? HIST_STEP_MAX : cap / 64 ? cap / 64 : 1;
	h->hdr->magic = KMON_HIST_MAGIC; /* before any consumer gets the descriptor */
	return h;
fail:
	e = errno;
	hist_prod__free(h);
	errno = e;
	return NULL;
}

void hist_prod__free(struct hist_prod *h)
{
	if (!h)
		return;
	if (h->hdr)
		munmap(h->hdr, hist_prod__total_bytes(h->cap));
	if (h->fd >= 0)
		close(h->fd);
	if (h->ro_fd >= 0)
		close(h->ro_fd);
	free(h);
}

size_t hist_prod__cap(const struct hist_prod *h)
{
	return h->cap;
}

void hist_prod__append(struct hist_prod *h, const struct kmon_event *ev)
{
	uint64_t n = h->local_head;

	/* Announce the overwrite before doing it (pairs with the fence in the
	 * readers), publish the event after. The announcement runs a step
	 * ahead: readers load `started` after every chunk they copy, and a
	 * line stored for every event moved between the CPUs once per chunk
	 * and reader, which cost the drain more with each consumer. */
	if (n + 1 > h->announced) {
		h->announced = n + h->step;
		atomic_store_explicit(&h->hdr->started, h->announced, memory_order_relaxed);
		atomic_thread_fence(memory_order_release);
	}
	h->slots[h->slot] = *ev;
	if (++h->slot == h->cap)
		h->slot = 0;
	h->local_head = n + 1;
	atomic_store_explicit(&h->hdr->head, n + 1, memory_order_release);
}

uint64_t hist_prod__head(const struct hist_prod *h)
{
	return atomic_load_explicit(&h->hdr->head, memory_order_acquire);
}

uint64_t hist_prod__started(const struct hist_prod *h)
{
	return atomic_load_explicit(&h->hdr->started, memory_order_relaxed);
}

/* The copy races with an overwrite by design (a seqlock read); the check
 * after it is what counts. */
bool hist_prod__read(const struct hist_prod *h, uint64_t i, struct kmon_event *ev)
{
	memcpy(ev, &h->slots[i % h->cap], sizeof(*ev));
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&h->hdr->started, memory_order_relaxed) <= i + h->cap;
}

void hist_prod__publish(struct hist_prod *h)
{
	atomic_store_explicit(&h->hdr->published, h->local_head, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
}

int hist_prod__consumer_fd(const struct hist_prod *h)
{
	return h->ro_fd;
}

/* ---- consumer ---- */

struct hist_cons {
	const struct hist_hdr *hdr;
	const struct kmon_event *slots;
	size_t map_bytes;
	uint64_t cap;
};

#define cons_fail kmon_err__errno

struct hist_cons *hist_cons__map(int fd, char *err, size_t errlen)
{
	struct hist_hdr hd;
	struct hist_cons *c;
	ssize_t n;
	void *m;

	if (err && errlen)
		err[0] = '\0';
	/* The header first, read (not mapped) so that its size can be checked
	 * against the file's before anything is mapped. */
	n = pread(fd, &hd, sizeof(hd), 0);
	if (n != (ssize_t)sizeof(hd)) {
		cons_fail(err, errlen, EPROTO, "cannot read the history header: %s",
			  n < 0 ? strerror(errno) : "short file");
		return NULL;
	}
	if (hd.magic != KMON_HIST_MAGIC || hd.layout_version != KMON_HIST_LAYOUT_VERSION ||
	    hd.hdr_bytes != HIST_HDR_BYTES || hd.slot_bytes != sizeof(struct kmon_event) ||
	    !hd.cap || hd.cap > KMON_HIST_MAX_CAP) {
		cons_fail(err, errlen, EPROTO,
			  "history header is not layout %u with %zu-byte events (magic 0x%llx, "
			  "layout %u, slot %u bytes, cap %llu)",
			  KMON_HIST_LAYOUT_VERSION, sizeof(struct kmon_event),
			  (unsigned long long)hd.magic, hd.layout_version, hd.slot_bytes,
			  (unsigned long long)hd.cap);
		return NULL;
	}
	if (kmon_memfd__check(fd, "history", (off_t)hist_prod__total_bytes(hd.cap),
			      F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE, err, errlen))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cap = hd.cap;
	c->map_bytes = hist_prod__total_bytes(hd.cap);
	m = mmap(NULL, c->map_bytes, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int e = errno;

		free(c);
		cons_fail(err, errlen, e, "cannot map the %s", "history");
		return NULL;
	}
	c->hdr = m;
	c->slots = (const struct kmon_event *)((const uint8_t *)m + HIST_HDR_BYTES);
	return c;
}

void hist_cons__free(struct hist_cons *c)
{
	if (!c)
		return;
	munmap((void *)c->hdr, c->map_bytes);
	free(c);
}

size_t hist_cons__cap(const struct hist_cons *c)
{
	return c->cap;
}

uint64_t hist_cons__published(const struct hist_cons *c)
{
	return atomic_load_explicit(&c->hdr->published, memory_order_acquire);
}

/* Every value read from the header is the agent's: an index is only ever
 * taken modulo cap, so none can make this read outside the mapping. */
unsigned hist_cons__read(struct hist_cons *c, uint64_t *pos, uint64_t end, struct kmon_event *out,
			 unsigned n, uint64_t *lost)
{
	uint64_t started = atomic_load_explicit(&c->hdr->started, memory_order_relaxed);
	uint64_t oldest = started > c->cap ? started - c->cap : 0, k, i, slot, bad;

	if (*pos < oldest) {
		uint64_t to = oldest + c->cap / 8;

		if (to > end)
			to = end > oldest ? end : oldest;
		*lost += to - *pos;
		*pos = to;
	}
	if (end <= *pos || !n)
		return 0;
	k = end - *pos < n ? end - *pos : n;
	slot = *pos % c->cap;
	/* At most two runs of slots, one memcpy each instead of one per event
	 * (with take_event() inlined in libkmon, each consumer's CPU per record
	 * under the 4-consumer flood went from 10.9 to 10.3 ns, medians of 12
	 * pairs side by side). */
	i = c->cap - slot < k ? c->cap - slot : k;
	memcpy(out, &c->slots[slot], (size_t)i * sizeof(*out));
	memcpy(out + i, c->slots, (size_t)(k - i) * sizeof(*out));
	/* Pairs with the release fence in hist_prod__append(): an overwrite of
	 * a slot copied above had announced itself in started by now. */
	atomic_thread_fence(memory_order_acquire);
	started = atomic_load_explicit(&c->hdr->started, memory_order_relaxed);
	oldest = started > c->cap ? started - c->cap : 0;
	bad = oldest > *pos ? oldest - *pos : 0;
	if (bad > k)
		bad = k;
	if (bad) {
		memmove(out, out + bad, (size_t)(k - bad) * sizeof(*out));
		*lost += bad;
	}
	*pos += k;
	return (unsigned)(k - bad);
}
