// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/kring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

struct kring {
	int map_fd;
	size_t page;
	size_t data_bytes;
	uint64_t mask;
	unsigned long *consumer_pos;        /* the consumer page, read-write */
	const unsigned long *producer_pos; /* producer page, then data twice */
	const uint8_t *data;
};

struct kring *kring__open(int map_fd)
{
	struct bpf_map_info info;
	__u32 info_len = sizeof(info);
	struct kring *r;
	void *m;
	int e;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(map_fd, &info, &info_len))
		return NULL;
	if (info.type != BPF_MAP_TYPE_RINGBUF || !info.max_entries ||
	    (info.max_entries & (info.max_entries - 1))) {
		errno = EINVAL;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->map_fd = map_fd;
	r->page = (size_t)sysconf(_SC_PAGESIZE);
	r->data_bytes = info.max_entries;
	r->mask = info.max_entries - 1;
	m = mmap(NULL, r->page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	r->consumer_pos = m;
	/* The kernel maps the data area twice in a row after the producer
	 * page, so a record that wraps around the end reads as one piece. */
	m = mmap(NULL, r->page + 2 * r->data_bytes, PROT_READ, MAP_SHARED, map_fd,
		 (off_t)r->page);
	if (m == MAP_FAILED)
		goto fail;
	r->producer_pos = m;
	r->data = (const uint8_t *)m + r->page;
	return r;
fail:
	e = errno;
	kring__free(r);
	errno = e;
	return NULL;
}

void kring__free(struct kring *r)
{
	if (!r)
		return;
	if (r->consumer_pos)
		munmap(r->consumer_pos, r->page);
	if (r->producer_pos)
		munmap((void *)r->producer_pos, r->page + 2 * r->data_bytes);
	free(r);
}

int kring__fd(const struct kring *r)
{
	return r->map_fd;
}

unsigned kring__consume(struct kring *r, unsigned max, kring_cb cb, void *ctx)
{
	/* Only this thread writes it: a plain read of our own last store. */
	uint64_t cons = __atomic_load_n(r->consumer_pos, __ATOMIC_RELAXED);
	uint64_t prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
	unsigned n = 0;

	while (n < max) {
		const uint32_t *hdr;
		uint32_t len, plen;

		if (cons == prod) {
			prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
			if (cons == prod)
				break;
		}
		hdr = (const uint32_t *)(r->data + (cons & r->mask));
		/* Pairs with the kernel's release of the length at commit. */
		len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
		if (len & BPF_RINGBUF_BUSY_BIT)
			break; /* reserved, not yet committed: the next pass */
		plen = len & ~(uint32_t)(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
		cons += (plen + BPF_RINGBUF_HDR_SZ + 7) & ~7ull;
		if (len & BPF_RINGBUF_DISCARD_BIT)
			continue;
		cb(ctx, (const uint8_t *)hdr + BPF_RINGBUF_HDR_SZ, plen);
		n++;
	}
	/* Frees the space for the programs: after the records were read. */
	__atomic_store_n(r->consumer_pos, cons, __ATOMIC_RELEASE);
	return n;
}
