/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What a consumer may try with a read-only descriptor of a sealed memfd (a
 * ring's data, the shared history): reopened read-write through
 * /proc/self/fd, it can neither write, map writable, punch holes nor
 * resize. For the unit tests that include it (cmocka first). */
#ifndef KMON_TESTS_UNIT_SEALED_H
#define KMON_TESTS_UNIT_SEALED_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static void assert_sealed_against_writes(int ro)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", ro);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return; /* not even reopened: nothing to try */
	assert_int_equal(write(fd, "x", 1), -1);
	assert_int_equal(errno, EPERM);
	assert_ptr_equal(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), -1);
	assert_int_equal(ftruncate(fd, 0), -1);
	close(fd);
}

#endif
