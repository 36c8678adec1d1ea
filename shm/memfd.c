// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/memfd.h"
#include "shm/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int kmon_memfd__sized(const char *name, size_t bytes)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)bytes) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int kmon_memfd__reopen_ro(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* An impostor on the socket could send a file it truncates later (SIGBUS on
 * our next read), one we could write, or not a memfd at all. */
int kmon_memfd__check(int fd, const char *what, off_t want_size, int want_seals, char *err,
		      size_t errlen)
{
	struct stat st;
	int seals;

	if (fstat(fd, &st) < 0)
		return kmon_err__errno(err, errlen, errno, "%s descriptor: fstat failed", what);
	if (!S_ISREG(st.st_mode))
		return kmon_err__errno(err, errlen, EPROTO,
				       "%s descriptor is not a memfd (file type 0%llo)", what,
				       (unsigned long long)(st.st_mode & S_IFMT));
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return kmon_err__errno(err, errlen, EPROTO, "%s descriptor is not a sealable memfd",
				       what);
	if ((seals & want_seals) != want_seals)
		return kmon_err__errno(err, errlen, EPROTO, "%s memfd has seals 0x%llx, needs 0x%llx",
				       what, (unsigned long long)seals,
				       (unsigned long long)want_seals);
	if (st.st_size != want_size)
		return kmon_err__errno(err, errlen, EPROTO, "%s memfd is %llu bytes, expected %llu",
				       what, (unsigned long long)st.st_size,
				       (unsigned long long)want_size);
	return 0;
}
