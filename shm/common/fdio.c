// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/common/fdio.h"

#include <errno.h>
#include <unistd.h>

int kmon_fd__write_all(int fd, const void *buf, size_t len, size_t *done)
{
	const char *p = buf;
	size_t off = 0;
	int r = 0;

	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (done)
		*done = off;
	return r;
}
