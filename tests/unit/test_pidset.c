// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent/pidset.h"

static void sum_cb(void *ctx, uint32_t tgid, uint32_t key)
{
	uint64_t *sum = ctx;

	*sum += (uint64_t)tgid * 1000 + key;
}

static void put_get_update(void **state)
{
	struct pidset *s = pidset__new(100);
	uint32_t key = 0;

	(void)state;
	assert_non_null(s);
	assert_false(pidset__get(s, 42, &key));
	assert_int_equal(pidset__put(s, 42, 7), 0);
	assert_true(pidset__get(s, 42, &key));
	assert_int_equal(key, 7);
	assert_int_equal(pidset__put(s, 42, 9), 0); /* update, not a second entry */
	assert_int_equal(pidset__count(s), 1);
	assert_true(pidset__get(s, 42, &key));
	assert_int_equal(key, 9);
	assert_int_equal(pidset__put(s, 0, 1), -EINVAL);
	pidset__clear(s);
	assert_int_equal(pidset__count(s), 0);
	assert_false(pidset__get(s, 42, NULL));
	pidset__free(s);
}

static void bounded(void **state)
{
	struct pidset *s = pidset__new(1000);
	uint64_t sum = 0, want = 0;

	(void)state;
	for (uint32_t i = 1; i <= 1000; i++) {
		assert_int_equal(pidset__put(s, i * 7919, i), 0);
		want += (uint64_t)i * 7919 * 1000 + i;
	}
	assert_int_equal(pidset__put(s, 5, 5), -ENOSPC);
	assert_int_equal(pidset__put(s, 7919, 3), 0); /* existing keys still update */
	want += 3 - 1;
	assert_int_equal(pidset__count(s), 1000);
	pidset__for_each(s, sum_cb, &sum);
	assert_int_equal(sum, want);
	pidset__free(s);
	assert_null(pidset__new(0));
	pidset__free(NULL);
}

/* The table starts small and doubles as PIDs come: every entry must survive
 * each rehash, and the capacity still binds at the largest size. */
static void grows_and_clears(void **state)
{
	struct pidset *s = pidset__new(3000);
	uint64_t sum = 0, want = 0;
	uint32_t key = 0;

	(void)state;
	assert_non_null(s);
	for (uint32_t i = 1; i <= 3000; i++) {
		assert_int_equal(pidset__put(s, i * 2654435761u | 1, i), 0);
		want += (uint64_t)(i * 2654435761u | 1) * 1000 + i;
	}
	assert_int_equal(pidset__count(s), 3000);
	assert_int_equal(pidset__put(s, 2, 2), -ENOSPC);
	for (uint32_t i = 1; i <= 3000; i++) {
		assert_true(pidset__get(s, i * 2654435761u | 1, &key));
		assert_int_equal(key, i);
	}
	pidset__for_each(s, sum_cb, &sum);
	assert_int_equal(sum, want);
	pidset__clear(s);
	assert_int_equal(pidset__count(s), 0);
	assert_false(pidset__get(s, 2654435761u | 1, NULL));
	assert_int_equal(pidset__put(s, 2, 2), 0);
	assert_true(pidset__get(s, 2, &key));
	assert_int_equal(key, 2);
	pidset__free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(put_get_update),
		cmocka_unit_test(bounded),
		cmocka_unit_test(grows_and_clears),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
