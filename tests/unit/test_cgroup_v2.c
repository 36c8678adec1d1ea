// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Which cgroup v2 directory the agent may key the kernel's cgroup map by:
 * only a container's own. Everything else a tenant can shape (a sub-cgroup,
 * a path naming the id elsewhere, another namespace's relative view, a file
 * without a 0:: line) must answer -ENOENT, so it never maps a cgroup that
 * holds other processes to that container. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s/cgroup_v2.h"

#define ID "2fb6f5e8e95c5ea20f58251a4ba6e9b8591274d662be29d7e51497fcf3ac1a0c"
#define POD "/kubepods/besteffort/pod3ab1f8ba-69b3-46a1-9605-f9ae6a481800"

static int own(const char *text, char *out, size_t cap)
{
	return cgroup__own_v2_path(text, strlen(text), ID, out, cap);
}

static void test_own_directories(void **state)
{
	static const char *const ok[][2] = {
		{ "0::" POD "/" ID "\n", POD "/" ID },
		{ "4:memory:" POD "/" ID "\n0::" POD "/" ID "\n", POD "/" ID },
		{ "0::/system.slice/docker-" ID ".scope", "/system.slice/docker-" ID ".scope" },
		{ "0::" POD "/e1d2fe48c12cb078cbbee8881836bf7943b5c4f315b6d6fb429c596fd132c002/libpod-" ID,
		  POD "/e1d2fe48c12cb078cbbee8881836bf7943b5c4f315b6d6fb429c596fd132c002/libpod-" ID },
	};
	char out[512];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(own(ok[i][0], out, sizeof(out)), 0);
		assert_string_equal(out, ok[i][1]);
	}
}

static void test_not_own(void **state)
{
	static const char *const no[] = {
		/* v1 only: no unified hierarchy */
		"4:memory:" POD "/" ID "\n1:cpu:" POD "/" ID "\n",
		/* hybrid runtime leaving the process in the v2 root or a service */
		"4:memory:" POD "/" ID "\n0::/\n",
		"4:memory:/docker/" ID "\n0::/system.slice/containerd.service\n",
		/* a sub-cgroup the tenant made inside its container */
		"0::" POD "/" ID "/sub\n",
		/* the id in a parent segment, or only a prefix of it */
		"0::/" ID "/kmon\n",
		"0::" POD "/2fb6f5e8e95c5ea20f58251a4ba6e9b8591274d662be29d7e51497fcf3ac1a0\n",
		/* not a cgroup file */
		"",
		"0:" ID "\n",
		"garbage\n",
	};
	char out[512];

	(void)state;
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(own(no[i], out, sizeof(out)), -ENOENT);
	/* An id that is not 64 hex never matches. */
	assert_int_equal(cgroup__own_v2_path("0::/abc\n", 8, "abc", out, sizeof(out)), -ENOENT);
	/* Too long for the caller's buffer: said, not cut. */
	assert_int_equal(own("0::" POD "/" ID "\n", out, 20), -ENAMETOOLONG);
}

/* The text is not NUL-terminated: nothing past len is read. */
static void test_bounds(void **state)
{
	const char text[] = "0::" POD "/" ID;
	size_t n = sizeof(text) - 1;
	char *copy = malloc(n), out[512];

	(void)state;
	assert_non_null(copy);
	memcpy(copy, text, n);
	assert_int_equal(cgroup__own_v2_path(copy, n, ID, out, sizeof(out)), 0);
	assert_int_equal(cgroup__own_v2_path(copy, n - 1, ID, out, sizeof(out)), -ENOENT);
	free(copy);
}

static void test_mount(void **state)
{
	char path[] = "/tmp/kmon-mountinfo-XXXXXX", out[256];
	unsigned depth = 99;
	int fd = mkstemp(path);
	const char *mi =
		"25 30 0:23 / /sys type sysfs rw - sysfs sysfs rw\n"
		"31 25 0:26 /sub /mnt/sub rw - cgroup2 cgroup2 rw\n"
		"32 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, mi, strlen(mi)), (ssize_t)strlen(mi));
	close(fd);
	/* The hierarchy's root, not a bind mount of a sub-cgroup. */
	assert_int_equal(cgroup__v2_mount(path, out, sizeof(out), &depth), 0);
	assert_string_equal(out, "/sys/fs/cgroup/unified");
	assert_int_equal(depth, 0);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, mi, 50), 50); /* only sysfs */
	close(fd);
	assert_int_equal(cgroup__v2_mount(path, out, sizeof(out), &depth), -ENOENT);
	/* Seen from a cgroup namespace two levels down. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	mi = "40 30 0:37 /../.. /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n";
	assert_int_equal(write(fd, mi, strlen(mi)), (ssize_t)strlen(mi));
	close(fd);
	assert_int_equal(cgroup__v2_mount(path, out, sizeof(out), &depth), 0);
	assert_string_equal(out, "/sys/fs/cgroup");
	assert_int_equal(depth, 2);
	unlink(path);
	assert_int_equal(cgroup__v2_mount(path, out, sizeof(out), &depth), -ENOENT);
}

/* Another namespace's view joined onto where that namespace's root is;
 * climbing above the hierarchy's root is refused, not clamped. */
static void test_resolve(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(cgroup__v2_resolve("/kubepods/burstable/podA/agent",
					    "/../../../besteffort/podB/" ID, out, sizeof(out)), 0);
	assert_string_equal(out, "/kubepods/besteffort/podB/" ID);
	assert_int_equal(cgroup__v2_resolve("", "/kubepods/x", out, sizeof(out)), 0);
	assert_string_equal(out, "/kubepods/x");
	assert_int_equal(cgroup__v2_resolve("/a", "/..", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(cgroup__v2_resolve("/a", "/../..", out, sizeof(out)), -ENOENT);
	assert_int_equal(cgroup__v2_resolve("", "/../x", out, sizeof(out)), -ENOENT);
	assert_int_equal(cgroup__v2_resolve("/a", "/./b//c", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b/c");
	assert_int_equal(cgroup__v2_resolve("/a", "/" ID "/" ID, out, 100), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_directories),
		cmocka_unit_test(test_not_own),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_mount),
		cmocka_unit_test(test_resolve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
