// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kmon_fd__write_all through a real pipe: a buffer much larger than the pipe
 * arrives whole through partial writes and signals; a reader that went away,
 * or a nonblocking pipe that is full, stops it with the error and the count
 * of what did go through. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/common/fdio.h"

#define BIG (4u << 20) /* 64 pipe buffers of the default 64 KiB */

struct reader {
	int fd;
	unsigned delay_ms;
	unsigned char *got;
	size_t n;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	ssize_t k;

	usleep(r->delay_ms * 1000u);
	while ((k = read(r->fd, r->got + r->n, BIG - r->n)) > 0 || (k < 0 && errno == EINTR))
		if (k > 0)
			r->n += (size_t)k;
	return NULL;
}

static unsigned char *pattern(void)
{
	unsigned char *b = malloc(BIG);

	assert_non_null(b);
	for (size_t i = 0; i < BIG; i++)
		b[i] = (unsigned char)(i * 131 + (i >> 12));
	return b;
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void whole_buffer_through_partial_writes_and_signals(void **state)
{
	struct sigaction sa;
	struct itimerval every_ms = { { 0, 1000 }, { 0, 1000 } }, off = { { 0, 0 }, { 0, 0 } };
	unsigned char *src = pattern();
	struct reader r = { .delay_ms = 50 };
	pthread_t t;
	sigset_t block;
	size_t done = 0;
	int p[2];

	(void)state;
	/* No SA_RESTART: a write blocked on the full pipe returns EINTR (or
	 * what it had written) at each tick. The reader starts late, so the
	 * first write fills the pipe and blocks. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	assert_int_equal(pipe(p), 0);
	r.fd = p[0];
	r.got = malloc(BIG);
	assert_non_null(r.got);
	/* Only this thread takes the signal. */
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, read_all, &r), 0);
	assert_int_equal(pthread_sigmask(SIG_UNBLOCK, &block, NULL), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &every_ms, NULL), 0);
	assert_int_equal(kmon_fd__write_all(p[1], src, BIG, &done), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
	close(p[1]);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(alarms > 0);
	assert_int_equal(done, BIG);
	assert_int_equal(r.n, BIG);
	assert_memory_equal(r.got, src, BIG);
	close(p[0]);
	free(r.got);
	free(src);
}

static void reader_gone_is_epipe_with_the_count(void **state)
{
	unsigned char *src = pattern();
	size_t done = 12345;
	int p[2];

	(void)state;
	assert_ptr_not_equal(signal(SIGPIPE, SIG_IGN), SIG_ERR);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(kmon_fd__write_all(p[1], src, BIG, &done), -EPIPE);
	assert_int_equal(done, 0);
	assert_int_equal(kmon_fd__write_all(p[1], src, 0, NULL), 0); /* nothing to write */
	close(p[1]);
	free(src);
}

static void full_nonblocking_pipe_is_eagain_with_the_count(void **state)
{
	unsigned char *src = pattern(), *back = malloc(BIG);
	size_t done = 0, n = 0;
	ssize_t k;
	int p[2];

	(void)state;
	assert_non_null(back);
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_int_equal(kmon_fd__write_all(p[1], src, BIG, &done), -EAGAIN);
	assert_true(done > 0 && done < BIG);
	/* What it counted is exactly what the pipe holds, in order. */
	while ((k = read(p[0], back + n, BIG - n)) > 0)
		n += (size_t)k;
	assert_int_equal(n, done);
	assert_memory_equal(back, src, done);
	close(p[0]);
	close(p[1]);
	free(back);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(whole_buffer_through_partial_writes_and_signals),
		cmocka_unit_test(reader_gone_is_epipe_with_the_count),
		cmocka_unit_test(full_nonblocking_pipe_is_eagain_with_the_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
