// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/ring.h"
#include "shm/err.h"
#include "shm/memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RING_HDR_BYTES 4096u
#define RING_CTL_BYTES 4096u
#define CACHELINE 64

/* Written by the producer only. */
struct ring_hdr {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t hdr_bytes;
	uint64_t data_bytes;
	_Alignas(CACHELINE) _Atomic uint64_t head;
};

/* Written by the consumer only; never trusted by the producer. */
struct ring_ctl {
	_Alignas(CACHELINE) _Atomic uint64_t tail;
	_Alignas(CACHELINE) _Atomic uint64_t wait;
	_Alignas(CACHELINE) _Atomic uint64_t note[KMON_RING_NOTES]; /* ring_cons__set_note() */
};

_Static_assert(sizeof(struct ring_hdr) <= RING_HDR_BYTES, "ring header fits its page");
_Static_assert(sizeof(struct ring_ctl) <= RING_CTL_BYTES, "ring ctl fits its page");
_Static_assert(sizeof(struct kmon_rec_hdr) == 16, "record header layout");

struct ring_prod {
	struct ring_hdr *hdr;
	struct ring_ctl *ctl;
	uint8_t *data;
	size_t data_bytes;
	uint64_t mask;
	uint64_t head;           /* local, includes committed but unpublished */
	uint64_t published;      /* what the consumer may have seen */
	uint64_t tail;           /* last valid consumer position */
	uint32_t reserved_len;
	uint64_t last_woken;     /* wait word already answered */
	uint64_t wakeups;
	uint64_t bad_tail;
	uint64_t wake_full;      /* wake-ups already pending (EAGAIN) */
	bool started;
	int data_fd, data_ro_fd, ctl_fd;
	int wake_fd, wake_peer_fd; /* ours (send only), the consumer's */
};

static bool is_pow2(size_t v)
{
	return v && !(v & (v - 1));
}

size_t ring_prod__total_bytes(size_t data_bytes)
{
	return RING_HDR_BYTES + data_bytes + RING_CTL_BYTES;
}

struct ring_prod *ring_prod__create(size_t data_bytes, const char *name)
{
	struct ring_prod *p;
	char nm[64];
	int sv[2], sndbuf = 1;
	void *m;
	int e;

	if (!is_pow2(data_bytes) || data_bytes < KMON_RING_MIN_BYTES ||
	    data_bytes > KMON_RING_MAX_BYTES) {
		errno = EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->data_fd = p->data_ro_fd = p->ctl_fd = p->wake_fd = p->wake_peer_fd = -1;
	p->data_bytes = data_bytes;
	p->mask = data_bytes - 1;

	/* Sized but not yet sealed: the data memfd gets its seals once the
	 * producer has mapped it writable (F_SEAL_FUTURE_WRITE forbids new
	 * writable maps). */
	snprintf(nm, sizeof(nm), "kmon-ring-%s", name ? name : "anon");
	p->data_fd = kmon_memfd__sized(nm, RING_HDR_BYTES + data_bytes);
	if (p->data_fd < 0)
		goto fail;
	snprintf(nm, sizeof(nm), "kmon-ctl-%s", name ? name : "anon");
	p->ctl_fd = kmon_memfd__sized(nm, RING_CTL_BYTES);
	if (p->ctl_fd < 0)
		goto fail;
	/* Mapping faults nothing in: the pages are allocated (and charged) by
	 * whoever touches them first, which must be the consumer (see above). */
	m = mmap(NULL, RING_HDR_BYTES + data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		 p->data_fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	p->hdr = m;
	p->data = (uint8_t *)m + RING_HDR_BYTES;
	m = mmap(NULL, RING_CTL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, p->ctl_fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	p->ctl = m;
	/* Sealed against resizing (a consumer shrinking the file would turn
	 * the producer's next access into SIGBUS) and, for the data, against
	 * any write but through the mapping made above: the read-only
	 * descriptor reopened read-write through /proc/self/fd can neither
	 * write(), map writable, nor punch holes. */
	if (fcntl(p->data_fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0 ||
	    fcntl(p->ctl_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	/* A read-only open of the memfd: the consumer can map it only read-only. */
	p->data_ro_fd = kmon_memfd__reopen_ro(p->data_fd);
	if (p->data_ro_fd < 0)
		goto fail;
	/* The wake-up channel: a socket pair whose sending end never leaves
	 * this process (see "Drain path audit" in ring.h). */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		goto fail;
	p->wake_fd = sv[0];
	p->wake_peer_fd = sv[1];
	if (fcntl(p->wake_fd, F_SETFL, O_NONBLOCK) < 0 || shutdown(p->wake_fd, SHUT_RD) < 0 ||
	    shutdown(p->wake_peer_fd, SHUT_WR) < 0 ||
	    /* the kernel's minimum: a handful of pending wake-ups at most */
	    setsockopt(p->wake_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
		goto fail;
	return p;
fail:
	e = errno;
	ring_prod__free(p);
	errno = e;
	return NULL;
}

bool ring_prod__resident(const struct ring_prod *p)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), i, n;
	unsigned char vec[4096];
	size_t total = RING_HDR_BYTES + p->data_bytes, off;

	/* In chunks of 16 MiB: a 1 GiB ring has 256K pages. */
	for (off = 0; off < total; off += n * pg) {
		n = (total - off) / pg;
		if (n > sizeof(vec))
			n = sizeof(vec);
		if (mincore((uint8_t *)p->hdr + off, n * pg, vec) < 0)
			return false;
		for (i = 0; i < n; i++)
			if (!(vec[i] & 1))
				return false;
	}
	if (mincore(p->ctl, RING_CTL_BYTES, vec) < 0)
		return false;
	for (i = 0; i < RING_CTL_BYTES / pg; i++)
		if (!(vec[i] & 1))
			return false;
	return true;
}

void ring_prod__start(struct ring_prod *p)
{
	if (p->started)
		return;
	p->started = true;
	p->hdr->magic = KMON_RING_MAGIC;
	p->hdr->layout_version = KMON_RING_LAYOUT_VERSION;
	p->hdr->hdr_bytes = RING_HDR_BYTES;
	p->hdr->data_bytes = p->data_bytes;
	atomic_store_explicit(&p->hdr->head, 0, memory_order_release);
}

struct ring_prod *ring_prod__new(size_t data_bytes, const char *name)
{
	struct ring_prod *p = ring_prod__create(data_bytes, name);

	if (p)
		ring_prod__start(p);
	return p;
}

void ring_prod__free(struct ring_prod *p)
{
	if (!p)
		return;
	if (p->hdr)
		munmap(p->hdr, RING_HDR_BYTES + p->data_bytes);
	if (p->ctl)
		munmap(p->ctl, RING_CTL_BYTES);
	if (p->data_fd >= 0)
		close(p->data_fd);
	if (p->data_ro_fd >= 0)
		close(p->data_ro_fd);
	if (p->ctl_fd >= 0)
		close(p->ctl_fd);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	if (p->wake_peer_fd >= 0)
		close(p->wake_peer_fd);
	free(p);
}

int ring_prod__consumer_fds(struct ring_prod *p, int *data_ro, int *ctl, int *wake)
{
	*data_ro = p->data_ro_fd;
	*ctl = p->ctl_fd;
	*wake = p->wake_peer_fd;
	return 0;
}

/* The only read of consumer-written memory on the producer side. A position
 * is valid when it neither goes back nor passes what was published. */
static bool refresh_tail(struct ring_prod *p)
{
	uint64_t t = atomic_load_explicit(&p->ctl->tail, memory_order_acquire);

	if (t < p->tail || t > p->published) {
		p->bad_tail++;
		return false;
	}
	p->tail = t;
	return true;
}

struct kmon_rec_hdr *ring_prod__reserve(struct ring_prod *p, uint32_t len, bool *bad)
{
	uint64_t off = p->head & p->mask;
	uint64_t contig = p->data_bytes - off;
	uint64_t need = len <= contig ? len : contig + len;
	struct kmon_rec_hdr *pad;

	*bad = false;
	if (len < sizeof(struct kmon_rec_hdr) || len % KMON_RING_ALIGN || len > p->data_bytes)
		return NULL;
	if (need > p->data_bytes - (p->head - p->tail)) {
		if (!refresh_tail(p)) {
			*bad = true;
			return NULL;
		}
		if (need > p->data_bytes - (p->head - p->tail))
			return NULL;
	}
	if (len > contig) {
		pad = (struct kmon_rec_hdr *)(p->data + off);
		pad->type = KMON_REC_PAD;
		pad->flags = 0;
		pad->len = (uint32_t)contig;
		p->head += contig;
		off = 0;
	}
	p->reserved_len = len;
	return (struct kmon_rec_hdr *)(p->data + off);
}

bool ring_prod__room(struct ring_prod *p, size_t need, bool *bad)
{
	*bad = false;
	if (need <= p->data_bytes - (p->head - p->tail))
		return true;
	if (!refresh_tail(p)) {
		*bad = true;
		return false;
	}
	return need <= p->data_bytes - (p->head - p->tail);
}

void ring_prod__commit(struct ring_prod *p, struct kmon_rec_hdr *rec)
{
	rec->len = p->reserved_len;
	p->head += p->reserved_len;
	p->reserved_len = 0;
}

int ring_prod__publish(struct ring_prod *p)
{
	if (p->head == p->published)
		return 0;
	atomic_store_explicit(&p->hdr->head, p->head, memory_order_release);
	p->published = p->head;
	return ring_prod__wake(p);
}

int ring_prod__wake(struct ring_prod *p)
{
	uint64_t w;
	const char one = 1;
	ssize_t n;

	/* Orders the head store (or the caller's store of whatever else the
	 * consumer checks before sleeping) before the wait load; pairs with the
	 * fence in ring_cons__prepare_sleep(). */
	atomic_thread_fence(memory_order_seq_cst);
	w = atomic_load_explicit(&p->ctl->wait, memory_order_relaxed);
	if (!(w & 1) || w == p->last_woken)
		return 0;
	p->last_woken = w;
	p->wakeups++;
	/* Never blocks (MSG_DONTWAIT on a descriptor only we hold); a full
	 * queue means a wake-up is already pending; a consumer that shut its
	 * end down gets EPIPE, without SIGPIPE. */
	n = send(p->wake_fd, &one, sizeof(one), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)sizeof(one))
		return 1;
	if (errno == EAGAIN || errno == ENOBUFS) {
		p->wake_full++;
		return 0;
	}
	return -errno;
}

uint64_t ring_prod__consumer_note(const struct ring_prod *p, unsigned i)
{
	return i < KMON_RING_NOTES ? atomic_load_explicit(&p->ctl->note[i], memory_order_relaxed)
				   : 0;
}

size_t ring_prod__free_bytes(const struct ring_prod *p)
{
	return p->data_bytes - (p->head - p->tail);
}

double ring_prod__fill(struct ring_prod *p, bool *bad)
{
	*bad = !refresh_tail(p);
	return (double)(p->head - p->tail) / (double)p->data_bytes;
}

void ring_prod__get_stats(const struct ring_prod *p, struct ring_prod_stats *out)
{
	out->head = p->head;
	out->tail = p->tail;
	out->wakeups = p->wakeups;
	out->bad_tail = p->bad_tail;
	out->wake_full = p->wake_full;
	out->data_bytes = p->data_bytes;
}

/* ---- consumer ---- */

struct ring_cons {
	const struct ring_hdr *hdr;
	struct ring_ctl *ctl;
	const uint8_t *data;
	size_t map_bytes;
	size_t data_bytes;
	uint64_t mask;
	uint64_t head; /* cached producer position */
	uint64_t tail; /* local position */
	uint32_t cur_len;
	uint64_t wait_gen;
	int efd;
};

#define cons_fail kmon_err__errno

struct ring_cons *ring_cons__map(int data_fd, int ctl_fd, int wake_fd, size_t data_bytes,
				 char *err, size_t errlen)
{
	struct ring_cons *c;
	struct stat st;
	void *m;
	int e;

	if (err && errlen)
		err[0] = '\0';
	if (!is_pow2(data_bytes) || data_bytes < KMON_RING_MIN_BYTES ||
	    data_bytes > KMON_RING_MAX_BYTES) {
		cons_fail(err, errlen, EPROTO, "%s size %llu is not a power of two in range",
			  "ring", (unsigned long long)data_bytes);
		return NULL;
	}
	if (kmon_memfd__check(data_fd, "ring data", (off_t)(RING_HDR_BYTES + data_bytes),
			      F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE, err, errlen) ||
	    kmon_memfd__check(ctl_fd, "ring ctl", RING_CTL_BYTES, F_SEAL_SHRINK | F_SEAL_GROW,
			      err, errlen))
		return NULL;
	if (fstat(wake_fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		cons_fail(err, errlen, EPROTO, "%s descriptor is not a socket",
			  "wake-up");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->efd = wake_fd;
	c->map_bytes = RING_HDR_BYTES + data_bytes;
	c->data_bytes = data_bytes;
	c->mask = data_bytes - 1;
	/* MAP_POPULATE: this process faults every page in, so the ring is
	 * charged to its memory cgroup, not to the agent's (the agent checks). */
	m = mmap(NULL, c->map_bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, data_fd, 0);
	if (m == MAP_FAILED) {
		c->map_bytes = 0;
		cons_fail(err, errlen, errno, "cannot map the %s", "ring data");
		goto fail;
	}
	c->hdr = m;
	c->data = (const uint8_t *)m + RING_HDR_BYTES;
	m = mmap(NULL, RING_CTL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ctl_fd,
		 0);
	if (m == MAP_FAILED) {
		cons_fail(err, errlen, errno, "cannot map the %s", "ring ctl");
		goto fail;
	}
	c->ctl = m;
	return c;
fail:
	e = errno;
	ring_cons__free(c);
	errno = e;
	return NULL;
}

int ring_cons__start(struct ring_cons *c)
{
	if (c->hdr->magic != KMON_RING_MAGIC || c->hdr->layout_version != KMON_RING_LAYOUT_VERSION ||
	    c->hdr->hdr_bytes != RING_HDR_BYTES || c->hdr->data_bytes != c->data_bytes)
		return -EPROTO;
	/* Attach where the producer is: a fresh ring starts at 0, but never
	 * assume so. */
	c->tail = atomic_load_explicit(&c->ctl->tail, memory_order_acquire);
	c->head = c->tail;
	return 0;
}

struct ring_cons *ring_cons__new(int data_fd, int ctl_fd, int efd)
{
	struct ring_cons *c;
	struct stat st;
	int r;

	if (fstat(data_fd, &st) < 0)
		return NULL;
	if (st.st_size < (off_t)(RING_HDR_BYTES + KMON_RING_MIN_BYTES)) {
		errno = EPROTO;
		return NULL;
	}
	c = ring_cons__map(data_fd, ctl_fd, efd, (size_t)st.st_size - RING_HDR_BYTES, NULL, 0);
	if (!c)
		return NULL;
	r = ring_cons__start(c);
	if (r) {
		ring_cons__free(c);
		errno = -r;
		return NULL;
	}
	return c;
}

void ring_cons__free(struct ring_cons *c)
{
	if (!c)
		return;
	if (c->hdr)
		munmap((void *)c->hdr, c->map_bytes);
	if (c->ctl)
		munmap(c->ctl, RING_CTL_BYTES);
	free(c);
}

int ring_cons__eventfd(const struct ring_cons *c)
{
	return c->efd;
}

const struct kmon_rec_hdr *ring_cons__peek(struct ring_cons *c, bool *bad)
{
	const struct kmon_rec_hdr *r;
	uint64_t off, avail;
	uint32_t len;

	*bad = false;
	for (;;) {
		if (c->tail == c->head) {
			c->head = atomic_load_explicit(&c->hdr->head, memory_order_acquire);
			if (c->head - c->tail > c->data_bytes) {
				*bad = true;
				return NULL;
			}
			if (c->tail == c->head)
				return NULL;
		}
		off = c->tail & c->mask;
		avail = c->head - c->tail;
		r = (const struct kmon_rec_hdr *)(c->data + off);
		len = r->len;
		if (len < KMON_RING_ALIGN || len % KMON_RING_ALIGN || len > c->data_bytes - off ||
		    len > avail) {
			*bad = true;
			return NULL;
		}
		if (r->type != KMON_REC_PAD) {
			if (len < sizeof(*r)) {
				*bad = true;
				return NULL;
			}
			c->cur_len = len;
			return r;
		}
		c->tail += len;
	}
}

void ring_cons__advance(struct ring_cons *c, const struct kmon_rec_hdr *rec)
{
	(void)rec;
	c->tail += c->cur_len;
	c->cur_len = 0;
}

void ring_cons__release(struct ring_cons *c)
{
	atomic_store_explicit(&c->ctl->tail, c->tail, memory_order_release);
}

bool ring_cons__prepare_sleep(struct ring_cons *c)
{
	uint64_t h;

	ring_cons__release(c);
	c->wait_gen += 2;
	atomic_store_explicit(&c->ctl->wait, c->wait_gen | 1, memory_order_relaxed);
	/* Pairs with the fence in ring_prod__publish(). */
	atomic_thread_fence(memory_order_seq_cst);
	h = atomic_load_explicit(&c->hdr->head, memory_order_acquire);
	if (h != c->tail) {
		atomic_store_explicit(&c->ctl->wait, c->wait_gen, memory_order_relaxed);
		return false;
	}
	return true;
}

void ring_cons__wake(struct ring_cons *c)
{
	uint64_t v;

	atomic_store_explicit(&c->ctl->wait, c->wait_gen, memory_order_relaxed);
	/* Drains the pending wake-up messages without blocking (whatever the
	 * descriptor's flags); the producer queues a few at most. */
	for (int i = 0; i < 64; i++)
		if (recv(c->efd, &v, sizeof(v), MSG_DONTWAIT) <= 0)
			break;
}

void ring_cons__set_note(struct ring_cons *c, unsigned i, uint64_t v)
{
	if (i < KMON_RING_NOTES)
		atomic_store_explicit(&c->ctl->note[i], v, memory_order_relaxed);
}

size_t ring_cons__pending(struct ring_cons *c)
{
	c->head = atomic_load_explicit(&c->hdr->head, memory_order_acquire);
	return (size_t)(c->head - c->tail);
}
