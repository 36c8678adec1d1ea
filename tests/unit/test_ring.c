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
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/ring.h"
#include "sealed.h"

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
	char b;

	(void)state;
	pair_open(&x, 4096);
	/* Not sleeping: publishing sends no wake-up. */
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
	/* Exactly one wake-up is pending. */
	assert_int_equal(recv(x.efd, &b, 1, MSG_DONTWAIT), 1);
	assert_int_equal(recv(x.efd, &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	ring_cons__wake(x.c);
	assert_int_equal(get(&x, 1), kmon_rec_size(8));
	assert_int_equal(get(&x, 2), kmon_rec_size(8));
	assert_true(ring_cons__prepare_sleep(x.c));
	assert_true(put(&x, 8, 3));
	assert_int_equal(ring_prod__publish(x.p), 1);
	pair_close(&x);
}

/* Defect 1 of issue 13: a consumer that clears O_NONBLOCK on the wake-up
 * descriptor it received, shrinks its buffer, tries to write into it or to
 * reopen it, and then announces sleep forever without reading: the producer
 * keeps publishing without blocking (a blocking send would hang this test
 * until ctest's timeout) and counts the wake-ups it could not send. */
static void test_wake_channel_cannot_block_producer(void **state)
{
	struct ring_prod_stats st;
	struct pair x;
	char path[64];
	int one = 1, i, fd, flags;

	(void)state;
	pair_open(&x, 4096);
	flags = fcntl(x.efd, F_GETFL);
	assert_true(flags >= 0);
	assert_int_equal(fcntl(x.efd, F_SETFL, flags & ~O_NONBLOCK), 0);
	(void)setsockopt(x.efd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	/* The consumer's end is receive-only; a socket cannot be reopened. */
	assert_int_equal(send(x.efd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL), -1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", x.efd);
	fd = open(path, O_RDWR);
	assert_int_equal(fd, -1);
	for (i = 0; i < 20000; i++) {
		assert_true(ring_cons__prepare_sleep(x.c));
		assert_true(put(&x, 8, (uint8_t)i));
		assert_true(ring_prod__publish(x.p) >= 0);
		/* read the record but never the wake-up */
		assert_int_equal(get(&x, (uint8_t)i), kmon_rec_size(8));
	}
	ring_prod__get_stats(x.p, &st);
	assert_true(st.wake_full > 0);
	assert_true(st.wakeups == 20000);
	/* A consumer that shuts its end: EPIPE, no SIGPIPE. */
	assert_int_equal(shutdown(x.efd, SHUT_RDWR), 0);
	assert_true(ring_cons__prepare_sleep(x.c));
	assert_true(put(&x, 8, 1));
	assert_true(ring_prod__publish(x.p) <= 0);
	pair_close(&x);
}

/* Defect 6: the read-only data descriptor reopened read-write through
 * /proc/self/fd can neither write, map writable, nor punch holes. */
static void test_data_sealed_against_writes(void **state)
{
	struct pair x;

	(void)state;
	pair_open(&x, 4096);
	assert_sealed_against_writes(x.data_ro);
	pair_close(&x);
}

/* Defect 3: the producer touches no page before the consumer has faulted
 * them all in, and the consumer sees no valid header before start. */
static void test_create_untouched_until_populated(void **state)
{
	struct ring_prod *p = ring_prod__create(1 << 16, "untouched");
	struct ring_cons *c;
	int d, ctl, w;
	char err[200];

	(void)state;
	assert_non_null(p);
	assert_false(ring_prod__resident(p));
	assert_int_equal(ring_prod__consumer_fds(p, &d, &ctl, &w), 0);
	c = ring_cons__map(d, ctl, w, 1 << 16, err, sizeof(err));
	assert_non_null(c);
	assert_true(ring_prod__resident(p));
	assert_int_equal(ring_cons__start(c), -EPROTO);
	ring_prod__start(p);
	assert_int_equal(ring_cons__start(c), 0);
	/* Asking for another size than the memfd has is refused. */
	assert_null(ring_cons__map(d, ctl, w, 1 << 17, err, sizeof(err)));
	assert_non_null(strstr(err, "expected"));
	ring_cons__free(c);
	ring_prod__free(p);
}

static void test_consumer_rejects_foreign_fd(void **state)
{
	int fd = memfd_create("notaring", MFD_ALLOW_SEALING), sealed, pfd[2], sv[2];
	struct ring_prod *p = ring_prod__create(4096, "ok");
	int d, ctl, w;
	char err[200];

	(void)state;
	assert_true(fd >= 0);
	assert_non_null(p);
	assert_int_equal(ring_prod__consumer_fds(p, &d, &ctl, &w), 0);
	assert_int_equal(ftruncate(fd, 65536), 0);
	errno = 0;
	assert_null(ring_cons__new(fd, fd, -1));
	assert_int_equal(errno, EPROTO);
	/* Unsealed: could be truncated under our mapping (SIGBUS). */
	assert_int_equal(ftruncate(fd, 8192), 0);
	assert_null(ring_cons__map(fd, ctl, w, 4096, err, sizeof(err)));
	assert_int_equal(errno, EPROTO);
	assert_non_null(strstr(err, "ring data memfd has seals"));
	/* Sealed against resizing but writable by whoever holds it. */
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	assert_null(ring_cons__map(fd, ctl, w, 4096, err, sizeof(err)));
	assert_non_null(strstr(err, "needs"));
	/* Right seals, wrong size. */
	sealed = memfd_create("short", MFD_ALLOW_SEALING);
	assert_true(sealed >= 0);
	assert_int_equal(ftruncate(sealed, 8192), 0);
	assert_int_equal(fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
					     F_SEAL_FUTURE_WRITE), 0);
	assert_null(ring_cons__map(sealed, ctl, w, 65536, err, sizeof(err)));
	assert_non_null(strstr(err, "8192 bytes, expected"));
	/* Not a memfd at all. */
	assert_int_equal(pipe(pfd), 0);
	assert_null(ring_cons__map(pfd[0], ctl, w, 4096, err, sizeof(err)));
	assert_non_null(strstr(err, "not a memfd"));
	/* The wake-up descriptor must be a socket. */
	assert_null(ring_cons__map(d, ctl, pfd[0], 4096, err, sizeof(err)));
	assert_non_null(strstr(err, "wake-up descriptor is not a socket"));
	/* ctl swapped with data: sizes and seals say so. */
	assert_null(ring_cons__map(ctl, d, w, 4096, err, sizeof(err)));
	assert_int_equal(errno, EPROTO);
	/* The real thing passes, with any socket for wake-ups. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	ring_cons__free(ring_cons__map(d, ctl, sv[1], 4096, err, sizeof(err)));
	assert_string_equal(err, "");
	close(sv[0]);
	close(sv[1]);
	close(pfd[0]);
	close(pfd[1]);
	close(sealed);
	close(fd);
	ring_prod__free(p);
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
		cmocka_unit_test(test_wake_channel_cannot_block_producer),
		cmocka_unit_test(test_data_sealed_against_writes),
		cmocka_unit_test(test_create_untouched_until_populated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
