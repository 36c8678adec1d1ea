// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Benchmark workload, slab-heavy: each iteration creates, closes and unlinks
 * one file in DIR (a tmpfs: dentry, shmem inode, filp and their kmallocs,
 * with frees from RCU callbacks), so most events are kmem_cache_alloc/free.
 *
 *   bench_slab_flood DIR ITERATIONS
 * Prints "iterations=N".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096];
	long n, i;

	if (argc != 3 || (n = strtol(argv[2], NULL, 10)) <= 0) {
		fprintf(stderr, "usage: bench_slab_flood DIR ITERATIONS\n");
		return 2;
	}
	if (snprintf(path, sizeof(path), "%s/slab-flood-%d", argv[1], (int)getpid()) >=
	    (int)sizeof(path)) {
		fprintf(stderr, "bench_slab_flood: directory name too long\n");
		return 2;
	}
	for (i = 0; i < n; i++) {
		int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);

		if (fd < 0 || close(fd) || unlink(path)) {
			perror("bench_slab_flood");
			return 1;
		}
	}
	printf("iterations=%ld\n", n);
	return 0;
}
