// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * agent/kring: what the drain reads from the kernel's BPF ring buffer. A
 * one-page ring written by a BPF program (kring_writer.bpf.c) through many
 * laps: every record comes back once, in order, whole (also those that wrap
 * around the end of the data area), discarded ones never; a call reads at
 * most `max` and gives their space back to the programs; a map of another
 * type is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/kring.h"
#include "kring_writer.skel.h"

struct args {
	uint32_t n;
	uint32_t discard_every;
	uint64_t first;
	uint32_t written;
	uint32_t discarded;
	uint32_t full;
};

struct reader {
	uint64_t next;          /* number of the next record expected */
	uint32_t discard_every; /* numbers the writer discarded */
	unsigned got;
	unsigned bad;           /* wrong length or contents, or out of order */
	unsigned gaps;          /* numbers skipped: records the writer could not write */
};

static struct kring_writer *skel;

static int setup(void **state)
{
	(void)state;
	skel = kring_writer__open_and_load();
	if (!skel) {
		fprintf(stderr, "test_kring: cannot load kring_writer (root and BPF needed): %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kring_writer__destroy(skel);
	return 0;
}

static struct args write_records(uint64_t first, uint32_t n, uint32_t discard_every)
{
	struct args a = { .n = n, .discard_every = discard_every, .first = first };
	/* A syscall program's context is copied back into ctx_in. */
	LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = &a, .ctx_size_in = sizeof(a));

	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.write_records), &o), 0);
	assert_int_equal(o.retval, 0);
	return a;
}

static void on_rec(void *ctx, const void *data, uint32_t len)
{
	struct reader *r = ctx;
	const uint64_t *w = data;
	uint64_t want = r->next, k;

	r->got++;
	while (r->discard_every && want % r->discard_every == 0)
		want++;
	if (len < 8 || len % 8) {
		r->bad++;
		return;
	}
	k = w[0];
	if (len != 8 + 8 * (k % 7) || k < want)
		r->bad++;
	for (uint32_t i = 1; i < len / 8; i++)
		if (w[i] != k)
			r->bad++;
	if (k > want)
		r->gaps++;
	r->next = k + 1;
}

/* A reader of the test ring with nothing left in it from earlier tests. */
static struct kring *open_empty(void)
{
	struct kring *kr = kring__open(bpf_map__fd(skel->maps.rb));
	struct reader leftovers = { 0 };

	assert_non_null(kr);
	kring__consume(kr, 100000, on_rec, &leftovers);
	return kr;
}

/* 400 rounds of 20 records (~1 KiB) through a 4 KiB ring: ~100 laps, so
 * records land across the end of the data area again and again. */
static void records_in_order_across_laps(void **state)
{
	int fd = bpf_map__fd(skel->maps.rb);
	struct kring *kr = kring__open(fd);
	struct reader r = { 0 };
	uint64_t k = 0;

	(void)state;
	assert_non_null(kr);
	assert_int_equal(kring__fd(kr), fd);
	assert_int_equal(kring__consume(kr, 1000, on_rec, &r), 0); /* empty */
	for (int round = 0; round < 400; round++) {
		struct args a = write_records(k, 20, 0);

		assert_int_equal(a.written, 20);
		assert_int_equal(a.full, 0);
		assert_int_equal(kring__consume(kr, 1000, on_rec, &r), 20);
		k += 20;
	}
	assert_int_equal(r.got, 8000);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.gaps, 0);
	assert_int_equal(r.next, 8000);
	kring__free(kr);
}

/* Discarded records are skipped: not passed on, not counted against max. */
static void discarded_records_are_skipped(void **state)
{
	struct kring *kr = open_empty();
	struct reader r = { .discard_every = 3 };
	uint64_t k = 0;
	unsigned got = 0;

	(void)state;
	r.next = 1; /* 0 is a multiple of 3: discarded */
	for (int round = 0; round < 100; round++) {
		struct args a = write_records(k, 30, 3);

		assert_int_equal(a.written, 20);
		assert_int_equal(a.discarded, 10);
		assert_int_equal(a.full, 0);
		got += kring__consume(kr, 20, on_rec, &r);
		assert_int_equal(kring__consume(kr, 20, on_rec, &r), 0);
		k += 30;
	}
	assert_int_equal(got, 2000);
	assert_int_equal(r.got, 2000);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.gaps, 0);
	kring__free(kr);
}

/* A full ring: the programs' reservations fail until a call has read
 * records; `max` records per call, in order, and their space is the
 * programs' again once the call returns. */
static void a_call_reads_max_and_frees_their_space(void **state)
{
	struct kring *kr = open_empty();
	struct reader r = { 0 };
	struct args a;
	unsigned total = 0, written;

	(void)state;
	a = write_records(0, 400, 0);
	assert_true(a.full > 0); /* 400 records do not fit in 4 KiB */
	written = a.written;
	/* Full to the byte (98 records of 7 sizes, then the smaller ones that
	 * still fit): nothing more goes in before a read. */
	assert_int_equal(write_records(400, 1, 0).full, 1);
	assert_int_equal(kring__consume(kr, 5, on_rec, &r), 5);
	assert_int_equal(r.next, 5);
	/* Records 0..4 took 16+24+32+40+48 bytes with their headers: room
	 * again for record 400 (24 bytes with its header). */
	a = write_records(400, 1, 0);
	assert_int_equal(a.full, 0);
	written += a.written;
	total = 5;
	for (unsigned n; (n = kring__consume(kr, 7, on_rec, &r)); total += n)
		assert_true(n <= 7);
	assert_int_equal(total, written);
	assert_int_equal(r.bad, 0);
	kring__free(kr);
}

static void refuses_other_maps(void **state)
{
	(void)state;
	errno = 0;
	assert_null(kring__open(bpf_map__fd(skel->maps.buf)));
	assert_int_equal(errno, EINVAL);
	assert_null(kring__open(-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(records_in_order_across_laps),
		cmocka_unit_test(discarded_records_are_skipped),
		cmocka_unit_test(a_call_reads_max_and_frees_their_space),
		cmocka_unit_test(refuses_other_maps),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
