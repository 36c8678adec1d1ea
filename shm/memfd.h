/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The sealed memfds the agent shares with consumers (rings, the history):
 * made by one side, checked by the other before anything is mapped, as a
 * descriptor from the other side is as hostile as what it maps.
 */
#ifndef KMON_SHM_MEMFD_H
#define KMON_SHM_MEMFD_H

#include <stddef.h>
#include <sys/types.h>

/* A close-on-exec, sealable memfd of `bytes` bytes (nothing faulted in);
 * -1 + errno on error. */
int kmon_memfd__sized(const char *name, size_t bytes);
/* A read-only open of the same file (through /proc/self/fd): whoever gets it
 * can map it only read-only. -1 + errno on error. */
int kmon_memfd__reopen_ro(int fd);
/* 0 when fd is a memfd of exactly want_size bytes with at least want_seals;
 * else -1 with errno set (EPROTO: not what the agent sends) and a reason
 * naming `what` in err (may be NULL). */
int kmon_memfd__check(int fd, const char *what, off_t want_size, int want_seals, char *err,
		      size_t errlen);

#endif
