// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test and benchmark workload: each iteration is eventfd() + close(), one
 * kmalloc and one kfree in the kernel (the eventfd context). Optionally waits
 * for a line on stdin first, so a tracer can be told its PID before it starts.
 *
 *   kmalloc_flood ITERATIONS [THREADS] [--rate=PER_SEC] [--wait]
 * --rate paces the threads together to about PER_SEC iterations a second (an
 * offered load below saturation, as on a real node) instead of flat out.
 * Prints "iterations=N" with the total it performed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define PACE_CHUNK 64

static long per_thread;
static long chunk_ns; /* 0: flat out */

static void *loop(void *arg)
{
	long *done = arg;
	struct timespec next;

	if (clock_gettime(CLOCK_MONOTONIC, &next) < 0) {
		perror("clock_gettime");
		exit(1);
	}
	for (long i = 0; i < per_thread; i++) {
		int fd;

		if (chunk_ns && i % PACE_CHUNK == 0) {
			/* Absolute deadlines: a late chunk is caught up, not lost. */
			next.tv_nsec += chunk_ns;
			while (next.tv_nsec >= 1000000000L) {
				next.tv_nsec -= 1000000000L;
				next.tv_sec++;
			}
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
				;
		}
		fd = eventfd(0, EFD_CLOEXEC);

		if (fd < 0) {
			perror("eventfd");
			exit(1);
		}
		close(fd);
		(*done)++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long iterations = 0, threads = 1, rate = 0, total = 0, done[64] = { 0 };
	int npos = 0;
	bool wait = false;
	pthread_t t[64];
	char line[16], *end;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--wait")) {
			wait = true;
		} else if (!strncmp(argv[i], "--rate=", 7)) {
			rate = strtol(argv[i] + 7, &end, 10);
			if (*end || rate <= 0) {
				fprintf(stderr, "kmalloc_flood: bad --rate '%s'\n", argv[i] + 7);
				return 2;
			}
		} else if (npos < 2) {
			long v = strtol(argv[i], &end, 10);

			if (*end) {
				fprintf(stderr, "kmalloc_flood: bad number '%s'\n", argv[i]);
				return 2;
			}
			if (npos++ == 0)
				iterations = v;
			else
				threads = v;
		} else {
			fprintf(stderr, "usage: kmalloc_flood ITERATIONS [THREADS] [--rate=N] [--wait]\n");
			return 2;
		}
	}
	if (iterations <= 0 || threads <= 0 || threads > 64) {
		fprintf(stderr, "kmalloc_flood: bad ITERATIONS or THREADS "
				"(usage: kmalloc_flood ITERATIONS [THREADS] [--rate=N] [--wait])\n");
		return 2;
	}
	if (rate) {
		chunk_ns = (long)(1e9 * PACE_CHUNK * threads / rate);
		if (chunk_ns <= 0)
			chunk_ns = 1;
	}
	if (wait && !fgets(line, sizeof(line), stdin))
		return 1;
	per_thread = iterations / threads;
	for (long i = 0; i < threads; i++) {
		int ret = pthread_create(&t[i], NULL, loop, &done[i]);

		if (ret) {
			fprintf(stderr, "pthread_create: %s\n", strerror(ret));
			return 1;
		}
	}
	for (long i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += done[i];
	}
	printf("iterations=%ld\n", total);
	return 0;
}
