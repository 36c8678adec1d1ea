// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The shm ring within one process: producer and consumer map the same memfds
 * as they would across processes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/ring.h"

struct pair {
	struct ring_prod *p;
	struct ring_cons *c;
	int data_ro, ctl, efd;
};

static void pair_open(struct pair *x, size_t bytes)
{
	x->p = ring_prod__new(bytes, "test");
	assert_non_null(x->p);
	assert_int_equal(ring_prod__consumer_fds(x->p, &x->data_ro, &x->ctl, &x->efd), 0);
	x->c = ring_cons__new(x->data_ro, x->ctl, x->efd);
	assert_non_null(x->c);
}

static void pair_close(struct pair *x)
{
	ring_cons__free(x->c);
	ring_prod__free(x->p);
}

/* Writes one RAW record of `payload` bytes filled from seq; false when full. */
static bool put(struct pair *x, uint32_t payload, uint64_t seq)
{
	bool bad;
	struct kmon_rec_hdr *h = ring_prod__reserve(x->p, kmon_rec_size(payload), &bad);

	assert_false(bad);
	if (!h)
		return false;
	h->type = KMON_REC_RAW;
	h->flags = 0;
	h->seq = seq;
	memset(h + 1, (int)(seq & 0xff), payload);
	ring_prod__commit(x->p, h);
	return true;
}

static uint32_t get(struct pair *x, uint64_t want_seq)
{
	bool bad;
	const struct kmon_rec_hdr *h = ring_cons__peek(x->c, &bad);
	uint32_t n, i;
	const uint8_t *b;

	assert_false(bad);
	if (!h)
		return UINT32_MAX;
	assert_int_equal(h->type, KMON_REC_RAW);
	assert_int_equal(h->seq, want_seq);
	n = h->len - (uint32_t)sizeof(*h);
	b = (const uint8_t *)(h + 1);
	for (i = 0; i < n; i++)
		if (b[i] != (uint8_t)(want_seq & 0xff))
			break;
	n = h->len;
	ring_cons__advance(x->c, h);
	return n;
}

static void test_bad_sizes(void **state)
{
	(void)state;
	errno = 0;
	assert_null(ring_prod__new(3000, "x"));
	assert_int_equal(errno, EINVAL);
	assert_null(ring_prod__new(2048, "x"));
	assert_null(ring_prod__new(6000, "x"));
}

static void test_empty(void **state)
{
	struct pair x;
	bool bad;

	(void)state;
	pair_open(&x, 4096);
	assert_null(ring_cons__peek(x.c, &bad));
	assert_false(bad);
	assert_int_equal(ring_cons__pending(x.c), 0);
	/* Committed but unpublished records are invisible. */
	assert_true(put(&x, 10, 1));
	assert_null(ring_cons__peek(x.c, &bad));
	ring_prod__publish(x.p);
	assert_int_equal(get(&x, 1), kmon_rec_size(10));
	assert_int_equal(get(&x, 2), UINT32_MAX);
	pair_close(&x);
}

static void test_full(void **state)
{
	struct pair x;
	uint64_t seq = 0, got = 0;

	(void)state;
	pair_open(&x, 4096);
	/* 64-byte records: exactly 64 fit in 4096 bytes, the 65th does not. */
	while (put(&x, 48, seq))
		seq++;
	assert_int_equal(seq, 64);
	assert_int_equal(ring_prod__free_bytes(x.p), 0);
	ring_prod__publish(x.p);
	/* Reading frees space only once the consumer publishes its position. */
	assert_int_equal(get(&x, got++), 64);
	assert_false(put(&x, 48, seq));
	ring_cons__release(x.c);
	assert_true(put(&x, 48, seq++));
	ring_prod__publish(x.p);
	while (get(&x, got) != UINT32_MAX)
		got++;
	assert_int_equal(got, seq);
	pair_close(&x);
}

/* Mixed record sizes that do not divide the ring: many wraps through PAD
 * records, every record read back intact and in order. */
static void test_wrap_mixed(void **state)
{
	static const uint32_t sizes[] = { 112, 8, 240, 0, 1000, 92, 4000, 24 };
	struct pair x;
	uint64_t w = 0, r = 0;
	unsigned round;

	(void)state;
	pair_open(&x, 8192);
	for (round = 0; round < 20000; round++) {
		uint32_t pl = sizes[round % 8];
		if (put(&x, pl, w)) {
			w++;
		} else {
			ring_prod__publish(x.p);
			while (get(&x, r) != UINT32_MAX)
				r++;
			ring_cons__release(x.c);
			assert_true(put(&x, pl, w));
			w++;
		}
		if (round % 7 == 0)
			ring_prod__publish(x.p);
	}
	ring_prod__publish(x.p);
	while (get(&x, r) != UINT32_MAX)
		r++;
	assert_int_equal(r, w);
	pair_close(&x);
}

/* A consumer writing its own position is untrusted: positions behind the
 * last one, or past what was published, are reported as bad. */
static void test_corrupt_positions(void **state)
{
	static const uint64_t bogus[] = { 1ull << 40, UINT64_MAX, 4097, 0 };
	struct pair x;
	_Atomic uint64_t *tail;
	unsigned i;
	bool bad;

	(void)state;
	for (i = 0; i < 4; i++) {
		pair_open(&x, 4096);
		tail = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, x.ctl, 0);
		assert_true(tail != MAP_FAILED);
		while (put(&x, 48, 0))
			;
		ring_prod__publish(x.p);
		if (bogus[i] == 0) {
			/* Goes backwards after a valid advance. */
			atomic_store(tail, 128);
			assert_true(put(&x, 48, 1));
			assert_true(put(&x, 48, 2));
			atomic_store(tail, 64);
		} else {
			atomic_store(tail, bogus[i]);
		}
		assert_null(ring_prod__reserve(x.p, 64, &bad));
		assert_true(bad);
		(void)ring_prod__fill(x.p, &bad);
		assert_true(bad);
		munmap(tail, 4096);
		pair_close(&x);
	}
}

/* The consumer cannot write the data it reads, nor resize its ctl page. */
static void test_consumer_cannot_write_data(void **state)
{
	struct pair x;
	void *m;

	(void)state;
	pair_open(&x, 4096);
	m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, x.data_ro, 0);
	assert_true(m == MAP_FAILED);
	assert_int_equal(errno, EACCES);
	assert_int_equal(ftruncate(x.ctl, 0), -1);
	assert_int_equal(errno, EPERM);
	pair_close(&x);
}

static void test_wakeup_protocol(void **state)
{
	struct pair x;
	uint64_t v;

	(void)state;
	pair_open(&x, 4096);
	/* Not sleeping: publishing writes no eventfd. */
	assert_true(put(&x, 8, 0));
	assert_int_equal(ring_prod__publish(x.p), 0);
	/* Records pending: sleep is refused. */
	assert_false(ring_cons__prepare_sleep(x.c));
	ring_cons__wake(x.c);
	assert_int_equal(get(&x, 0), kmon_rec_size(8));
	assert_true(ring_cons__prepare_sleep(x.c));
	assert_true(put(&x, 8, 1));
	assert_int_equal(ring_prod__publish(x.p), 1);
	/* Answered once per announcement. */
	assert_true(put(&x, 8, 2));
	assert_int_equal(ring_prod__publish(x.p), 0);
	assert_int_equal(read(x.efd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 1);
	ring_cons__wake(x.c);
	assert_int_equal(get(&x, 1), kmon_rec_size(8));
	assert_int_equal(get(&x, 2), kmon_rec_size(8));
	assert_true(ring_cons__prepare_sleep(x.c));
	assert_true(put(&x, 8, 3));
	assert_int_equal(ring_prod__publish(x.p), 1);
	pair_close(&x);
}

static void test_consumer_rejects_foreign_fd(void **state)
{
	int fd = memfd_create("notaring", 0);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 65536), 0);
	errno = 0;
	assert_null(ring_cons__new(fd, fd, -1));
	assert_int_equal(errno, EPROTO);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_wrap_mixed),
		cmocka_unit_test(test_corrupt_positions),
		cmocka_unit_test(test_consumer_cannot_write_data),
		cmocka_unit_test(test_wakeup_protocol),
		cmocka_unit_test(test_consumer_rejects_foreign_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
