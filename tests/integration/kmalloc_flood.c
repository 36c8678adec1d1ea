// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test and benchmark workload: each iteration is eventfd() + close(), one
 * kmalloc and one kfree in the kernel (the eventfd context). Optionally waits
 * for a line on stdin first, so a tracer can be told its PID before it starts.
 *
 *   kmalloc_flood ITERATIONS [THREADS] [--wait]
 * Prints "iterations=N" with the total it performed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static long per_thread;

static void *loop(void *arg)
{
	long *done = arg;

	for (long i = 0; i < per_thread; i++) {
		int fd = eventfd(0, EFD_CLOEXEC);

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
	long iterations, threads = 1, total = 0, done[64] = { 0 };
	pthread_t t[64];
	char line[16];

	if (argc < 2) {
		fprintf(stderr, "usage: kmalloc_flood ITERATIONS [THREADS] [--wait]\n");
		return 2;
	}
	iterations = strtol(argv[1], NULL, 10);
	if (argc > 2 && strcmp(argv[2], "--wait"))
		threads = strtol(argv[2], NULL, 10);
	if (iterations <= 0 || threads <= 0 || threads > 64) {
		fprintf(stderr, "kmalloc_flood: bad ITERATIONS or THREADS\n");
		return 2;
	}
	if (strcmp(argv[argc - 1], "--wait") == 0 && !fgets(line, sizeof(line), stdin))
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
