/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The monotonic clock in the units kmon's code measures in. Intervals,
 * deadlines and rates only: never for timestamps a user reads.
 */
#ifndef KMON_COMMON_CLOCK_H
#define KMON_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t kmon_clock__ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int64_t kmon_clock__ms(void)
{
	return (int64_t)(kmon_clock__ns() / 1000000ull);
}

static inline double kmon_clock__sec(void)
{
	return (double)kmon_clock__ns() / 1e9;
}

#endif
