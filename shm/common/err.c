// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/common/err.h"

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
