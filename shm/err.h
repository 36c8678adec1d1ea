/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Error reporting for code that does not print: a message into the caller's
 * buffer (err, errlen) and a code to return. The caller decides what to do
 * from the code; the message is for people. In shm/, the lowest layer but
 * bpf/, so that the transport (and libkmon, built from its sources) reports
 * the same way as everything above it.
 */
#ifndef KMON_SHM_ERR_H
#define KMON_SHM_ERR_H

#include <stddef.h>

/* Formats into err (when errlen > 0) and returns code, so that
 * `return kmon_err__set(err, errlen, -EINVAL, "...")` reports and fails. */
int kmon_err__set(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The same for code that reports through errno: formats into err, sets
 * errno to e and returns -1. */
int kmon_err__errno(char *err, size_t errlen, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
