// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The shared history within one process: the agent's side and a consumer's
 * map the same memfd as they would across processes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "shm/history.h"
#include "shm/memfd.h"
#include "sealed.h"

/* Event number i, every field derived from i: a torn copy mixes two. */
static void make(struct kmon_event *ev, uint64_t i)
{
	memset(ev, (int)(i & 0xff), sizeof(*ev));
	ev->timestamp = i;
	ev->pid = (uint32_t)(i * 7);
	ev->tid = (uint32_t)(i * 13);
}

static bool intact(const struct kmon_event *ev)
{
	uint64_t i = ev->timestamp;
	const uint8_t *b = (const uint8_t *)ev;

	if (ev->pid != (uint32_t)(i * 7) || ev->tid != (uint32_t)(i * 13))
		return false;
	for (size_t k = offsetof(struct kmon_event, tid) + 4; k < sizeof(*ev); k++)
		if (b[k] != (uint8_t)(i & 0xff))
			return false;
	return true;
}

static void append_n(struct hist_prod *h, uint64_t from, uint64_t n)
{
	struct kmon_event ev;

	for (uint64_t i = from; i < from + n; i++) {
		make(&ev, i);
		hist_prod__append(h, &ev);
	}
}

static struct hist_cons *open_cons(struct hist_prod *h)
{
	char err[200];
	struct hist_cons *c = hist_cons__map(hist_prod__consumer_fd(h), err, sizeof(err));

	if (!c)
		fail_msg("map: %s", err);
	return c;
}

/* A consumer sees only what was published, in order, and nothing twice. */
static void test_published_in_order(void **state)
{
	struct hist_prod *h = hist_prod__new(16, "t");
	struct hist_cons *c;
	struct kmon_event out[8];
	uint64_t pos = 0, lost = 0;
	unsigned n;

	(void)state;
	assert_non_null(h);
	c = open_cons(h);
	assert_int_equal(hist_cons__cap(c), 16);
	append_n(h, 0, 5);
	assert_int_equal(hist_cons__published(c), 0); /* written, not published */
	hist_prod__publish(h);
	assert_int_equal(hist_cons__published(c), 5);
	n = hist_cons__read(c, &pos, hist_cons__published(c), out, 8, &lost);
	assert_int_equal(n, 5);
	assert_int_equal(pos, 5);
	assert_int_equal(lost, 0);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(out[i].timestamp, i);
		assert_true(intact(&out[i]));
	}
	assert_int_equal(hist_cons__read(c, &pos, hist_cons__published(c), out, 8, &lost), 0);
	/* Around the end of the slots. */
	append_n(h, 5, 14);
	hist_prod__publish(h);
	n = hist_cons__read(c, &pos, hist_cons__published(c), out, 8, &lost);
	assert_int_equal(n, 8);
	n = hist_cons__read(c, &pos, hist_cons__published(c), out, 8, &lost);
	assert_int_equal(n, 6);
	assert_int_equal(out[5].timestamp, 18);
	assert_int_equal(lost, 0);
	hist_cons__free(c);
	hist_prod__free(h);
}

/* A consumer a whole history behind counts what it missed, every event of
 * it, and jumps ahead with slack; what it gets after that is whole. */
static void test_lapped_consumer_counts_losses(void **state)
{
	struct hist_prod *h = hist_prod__new(64, "t");
	struct hist_cons *c;
	struct kmon_event out[64];
	uint64_t pos = 10, lost = 0, seen = 0, next;
	unsigned n;

	(void)state;
	assert_non_null(h);
	c = open_cons(h);
	append_n(h, 0, 1000);
	hist_prod__publish(h);
	/* Oldest still there: 1000 - 64 = 936; slack an eighth: 944. */
	n = hist_cons__read(c, &pos, 1000, out, 64, &lost);
	assert_int_equal(lost, 944 - 10);
	assert_int_equal(n, 1000 - 944);
	assert_int_equal(out[0].timestamp, 944);
	next = 944;
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(out[i].timestamp, next++);
		assert_true(intact(&out[i]));
	}
	seen += n;
	assert_int_equal(pos, 1000);
	assert_int_equal(seen + lost, 1000 - 10);
	/* The agent's own reader, the replay, is refused an overwritten slot. */
	assert_false(hist_prod__read(h, 935, &out[0]));
	assert_true(hist_prod__read(h, 936, &out[0]));
	assert_int_equal(out[0].timestamp, 936);
	hist_cons__free(c);
	hist_prod__free(h);
}

struct writer {
	struct hist_prod *h;
	uint64_t n;
	_Atomic bool done;
};

static void *write_all(void *arg)
{
	struct writer *w = arg;

	for (uint64_t i = 0; i < w->n; i += 16) {
		append_n(w->h, i, 16);
		hist_prod__publish(w->h);
	}
	atomic_store(&w->done, true);
	return NULL;
}

/* The seqlock under a writer that laps the reader all the time (a history of
 * `cap` events): every event the reader gets is whole and in order, and what
 * it looked at is exactly what it got plus what it counted lost. */
static void check_no_torn_event(size_t cap)
{
	struct writer w = { .n = 4u << 20 };
	struct hist_cons *c;
	struct kmon_event out[32];
	uint64_t pos = 0, lost = 0, got = 0, last = 0, pub;
	pthread_t t;
	bool first = true;

	w.h = hist_prod__new(cap, "t");
	assert_non_null(w.h);
	c = open_cons(w.h);
	assert_int_equal(pthread_create(&t, NULL, write_all, &w), 0);
	for (;;) {
		bool done = atomic_load(&w.done);
		unsigned n;

		pub = hist_cons__published(c);
		n = hist_cons__read(c, &pos, pub, out, 32, &lost);
		for (unsigned i = 0; i < n; i++) {
			assert_true(intact(&out[i]));
			assert_true(first || out[i].timestamp > last);
			last = out[i].timestamp;
			first = false;
		}
		got += n;
		if (done && pos >= w.n)
			break;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(got + lost, w.n);
	assert_true(lost > 0); /* the test did make it lap */
	assert_true(got > 0);
	print_message("cap %zu: got %llu lost %llu\n", cap, (unsigned long long)got,
		      (unsigned long long)lost);
	hist_cons__free(c);
	hist_prod__free(w.h);
}

static void test_no_torn_event_under_overwrites(void **state)
{
	(void)state;
	check_no_torn_event(64);
}

/* The same with overwrites announced 4 events ahead (a 64th of 256), as the
 * default history announces them 1,024 ahead: the early announcement must
 * keep every torn copy out. */
static void test_no_torn_event_with_announce_steps(void **state)
{
	(void)state;
	check_no_torn_event(256);
}

/* A consumer can change nothing in the history: not through its descriptor,
 * nor through the file reopened read-write (the seals), nor by resizing it
 * or punching holes under the drain. */
static void test_consumer_cannot_write(void **state)
{
	struct hist_prod *h = hist_prod__new(64, "t");
	int ro;

	(void)state;
	assert_non_null(h);
	ro = hist_prod__consumer_fd(h);
	assert_ptr_equal(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), MAP_FAILED);
	assert_int_equal(errno, EACCES);
	assert_int_equal(write(ro, "x", 1), -1);
	assert_sealed_against_writes(ro);
	hist_prod__free(h);
}

/* A memfd with a history's header but not made by the agent's code: each
 * one thing wrong is refused with a reason naming it. */
static int fake(uint64_t magic, uint32_t slot, uint64_t cap, off_t size, int seals)
{
	int fd = kmon_memfd__sized("fake", (size_t)size);
	uint8_t hdr[64] = { 0 };
	uint32_t v = KMON_HIST_LAYOUT_VERSION, hb = 4096;

	assert_true(fd >= 0);
	memcpy(hdr, &magic, 8);
	memcpy(hdr + 8, &v, 4);
	memcpy(hdr + 12, &hb, 4);
	memcpy(hdr + 16, &slot, 4);
	memcpy(hdr + 24, &cap, 8);
	assert_int_equal(pwrite(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static void refused(int fd, const char *needle)
{
	char err[300];

	assert_null(hist_cons__map(fd, err, sizeof(err)));
	assert_int_equal(errno, EPROTO);
	if (!strstr(err, needle))
		fail_msg("reason '%s' does not name '%s'", err, needle);
	close(fd);
}

static void test_map_refuses_what_the_agent_does_not_send(void **state)
{
	const int all = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE;
	off_t good = (off_t)hist_prod__total_bytes(64);
	int sv[2], fd;

	(void)state;
	/* The real thing maps. */
	fd = fake(KMON_HIST_MAGIC, sizeof(struct kmon_event), 64, good, all);
	{
		char err[200];
		struct hist_cons *c = hist_cons__map(fd, err, sizeof(err));

		assert_non_null(c);
		hist_cons__free(c);
		close(fd);
	}
	refused(fake(KMON_HIST_MAGIC, sizeof(struct kmon_event), 64, good, F_SEAL_SHRINK | F_SEAL_GROW),
		"seals");
	refused(fake(KMON_HIST_MAGIC, sizeof(struct kmon_event), 64, good + 4096, all), "bytes");
	refused(fake(KMON_HIST_MAGIC ^ 1, sizeof(struct kmon_event), 64, good, all), "magic");
	refused(fake(KMON_HIST_MAGIC, 64, 64, good, all), "slot 64 bytes");
	refused(fake(KMON_HIST_MAGIC, sizeof(struct kmon_event), 0, good, all), "cap 0");
	refused(fake(KMON_HIST_MAGIC, sizeof(struct kmon_event), 1ull << 40, good, all), "cap");
	/* Not a file at all. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(send(sv[1], "x", 1, 0), 1);
	refused(sv[0], "header");
	close(sv[1]);
}

static void test_bad_sizes(void **state)
{
	(void)state;
	assert_null(hist_prod__new(0, "t"));
	assert_int_equal(errno, EINVAL);
	assert_null(hist_prod__new((size_t)KMON_HIST_MAX_CAP + 1, "t"));
	assert_int_equal(errno, EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_in_order),
		cmocka_unit_test(test_lapped_consumer_counts_losses),
		cmocka_unit_test(test_no_torn_event_under_overwrites),
		cmocka_unit_test(test_no_torn_event_with_announce_steps),
		cmocka_unit_test(test_consumer_cannot_write),
		cmocka_unit_test(test_map_refuses_what_the_agent_does_not_send),
		cmocka_unit_test(test_bad_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
