// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int kmon_err__set(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

int kmon_err__errno(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = e;
	return -1;
}
