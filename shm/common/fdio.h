/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Writing a whole buffer to a descriptor: write(2) may take part of it (a
 * pipe, a socket, a signal), so every caller that must send all of it loops
 * the same way; this is that loop, once.
 */
#ifndef KMON_COMMON_FDIO_H
#define KMON_COMMON_FDIO_H

#include <stddef.h>

/*
 * Writes len bytes of buf to fd, retrying after EINTR and after partial
 * writes. Returns 0, or -errno of the write that failed (EPIPE, ENOSPC,
 * EAGAIN on a nonblocking descriptor, ...). When done is not NULL it gets
 * the bytes written, also on failure: what a reader or a file already has.
 */
int kmon_fd__write_all(int fd, const void *buf, size_t len, size_t *done);

#endif
