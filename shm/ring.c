// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
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
	int data_fd, data_ro_fd, ctl_fd, efd;
};

static bool is_pow2(size_t v)
{
	return v && !(v & (v - 1));
}

/* Sealed against resizing: a consumer that could shrink the file under the
 * producer's mapping would turn the producer's next access into SIGBUS. */
static int sealed_memfd(const char *name, size_t bytes)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)bytes) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

struct ring_prod *ring_prod__new(size_t data_bytes, const char *name)
{
	struct ring_prod *p;
	char path[64], nm[64];
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
	p->data_fd = p->data_ro_fd = p->ctl_fd = p->efd = -1;
	p->data_bytes = data_bytes;
	p->mask = data_bytes - 1;

	snprintf(nm, sizeof(nm), "kmon-ring-%s", name ? name : "anon");
	p->data_fd = sealed_memfd(nm, RING_HDR_BYTES + data_bytes);
	if (p->data_fd < 0)
		goto fail;
	snprintf(nm, sizeof(nm), "kmon-ctl-%s", name ? name : "anon");
	p->ctl_fd = sealed_memfd(nm, RING_CTL_BYTES);
	if (p->ctl_fd < 0)
		goto fail;
	/* A read-only open of the memfd: the consumer can map it only read-only. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p->data_fd);
	p->data_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->data_ro_fd < 0)
		goto fail;
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0)
		goto fail;

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

	p->hdr->magic = KMON_RING_MAGIC;
	p->hdr->layout_version = KMON_RING_LAYOUT_VERSION;
	p->hdr->hdr_bytes = RING_HDR_BYTES;
	p->hdr->data_bytes = data_bytes;
	atomic_store_explicit(&p->hdr->head, 0, memory_order_release);
	return p;
fail:
	e = errno;
	ring_prod__free(p);
	errno = e;
	return NULL;
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
	if (p->efd >= 0)
		close(p->efd);
	free(p);
}

int ring_prod__consumer_fds(struct ring_prod *p, int *data_ro, int *ctl, int *efd)
{
	*data_ro = p->data_ro_fd;
	*ctl = p->ctl_fd;
	*efd = p->efd;
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
	uint64_t w;
	const uint64_t one = 1;

	if (p->head == p->published)
		return 0;
	atomic_store_explicit(&p->hdr->head, p->head, memory_order_release);
	p->published = p->head;
	/* Orders the head store before the wait load; pairs with the fence in
	 * ring_cons__prepare_sleep(). */
	atomic_thread_fence(memory_order_seq_cst);
	w = atomic_load_explicit(&p->ctl->wait, memory_order_relaxed);
	if (!(w & 1) || w == p->last_woken)
		return 0;
	p->last_woken = w;
	p->wakeups++;
	if (write(p->efd, &one, sizeof(one)) != sizeof(one))
		return errno == EAGAIN ? 0 : -errno; /* counter saturated: already awake */
	return 1;
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

struct ring_cons *ring_cons__new(int data_fd, int ctl_fd, int efd)
{
	struct ring_cons *c;
	struct stat st;
	void *m;
	int e;

	if (fstat(data_fd, &st) < 0)
		return NULL;
	if (st.st_size < (off_t)(RING_HDR_BYTES + KMON_RING_MIN_BYTES)) {
		errno = EPROTO;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->efd = efd;
	c->map_bytes = (size_t)st.st_size;
	m = mmap(NULL, c->map_bytes, PROT_READ, MAP_SHARED, data_fd, 0);
	if (m == MAP_FAILED) {
		c->map_bytes = 0;
		goto fail;
	}
	c->hdr = m;
	if (c->hdr->magic != KMON_RING_MAGIC || c->hdr->layout_version != KMON_RING_LAYOUT_VERSION ||
	    c->hdr->hdr_bytes != RING_HDR_BYTES || !is_pow2(c->hdr->data_bytes) ||
	    c->hdr->data_bytes + RING_HDR_BYTES != c->map_bytes) {
		errno = EPROTO;
		goto fail;
	}
	c->data_bytes = c->hdr->data_bytes;
	c->mask = c->data_bytes - 1;
	c->data = (const uint8_t *)m + RING_HDR_BYTES;
	if (fstat(ctl_fd, &st) < 0)
		goto fail;
	if (st.st_size < (off_t)RING_CTL_BYTES) {
		errno = EPROTO;
		goto fail;
	}
	m = mmap(NULL, RING_CTL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, ctl_fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	c->ctl = m;
	/* Attach where the producer is: a fresh ring starts at 0, but never
	 * assume so. */
	c->tail = atomic_load_explicit(&c->ctl->tail, memory_order_acquire);
	c->head = c->tail;
	return c;
fail:
	e = errno;
	ring_cons__free(c);
	errno = e;
	return NULL;
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
	/* Nonblocking eventfd: EAGAIN just means nobody wrote it. */
	if (read(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
}

size_t ring_cons__pending(struct ring_cons *c)
{
	c->head = atomic_load_explicit(&c->hdr->head, memory_order_acquire);
	return (size_t)(c->head - c->tail);
}
