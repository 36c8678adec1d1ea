// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The cgroup classifier on every case of tests/fixtures/cgroup-cases.txt and
 * tests/fixtures/cgroup-real.txt (real files from public sources), plus
 * hostile input. Sandbox cases are settled as the agent settles them:
 * the path says "container", the PodList knows the pod but not the id. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/cgroup.h"
#include "k8s/podlist.h"

#include "tests/unit/slurp.h"
#include "tests/unit/cgroup_cases.h"

static struct podlist *fixture_pods(void)
{
	size_t len;
	char *json = slurp(KMON_FIXTURES "/kubelet-pods.json", &len), err[200];
	struct podlist *pl = podlist__parse(json, len, 100, err, sizeof(err));

	free(json);
	assert_non_null(pl);
	return pl;
}

static bool pods_know_uid(const struct podlist *pl, const char *uid)
{
	for (unsigned i = 0; i < pl->n_pods; i++)
		if (!strcmp(pl->pods[i].uid, uid))
			return true;
	return false;
}

static bool pods_know_id(const struct podlist *pl, const char *id)
{
	for (unsigned i = 0; i < pl->n_pods; i++)
		for (unsigned j = 0; j < pl->pods[i].n_containers; j++)
			if (!strcmp(pl->pods[i].containers[j].id, id))
				return true;
	return false;
}

static void run_cases(const char *path, unsigned min_cases)
{
	struct podlist *pl = fixture_pods();
	unsigned cases = 0, failures = 0;
	struct cgroup_case *all = cgroup_cases__load(path, &cases);

	for (unsigned i = 0; i < cases; i++) {
		const struct cgroup_case *c = &all[i];
		struct cgroup_info info;
		const char *got[6];
		bool bad = false;

		assert_int_equal(cgroup__classify(c->cgroup, strlen(c->cgroup), &info), 0);
		if (!strcmp(c->exp[CASE_KIND], "sandbox")) {
			/* The path alone says container; the pod table makes it a sandbox. */
			if (info.kind != CGROUP_CONTAINER || !pods_know_uid(pl, info.pod_uid) ||
			    pods_know_id(pl, info.container_id))
				bad = true;
			info.kind = CGROUP_SANDBOX;
		}
		got[CASE_VERSION] = cgroup__version_name(info.version);
		got[CASE_RUNTIME] = info.runtime[0] ? info.runtime : "none";
		got[CASE_ID] = info.container_id;
		got[CASE_UID] = info.pod_uid;
		got[CASE_QOS] = cgroup__qos_name(info.qos);
		got[CASE_KIND] = cgroup__kind_name(info.kind);
		for (int k = 0; k < 6; k++) {
			if (strcmp(got[k], c->exp[k])) {
				print_error("%s: %s is '%s', expected '%s'\n", c->name,
					    cgroup_case_keys[k], got[k], c->exp[k]);
				bad = true;
			}
		}
		failures += bad;
	}
	podlist__free(pl);
	free(all);
	assert_true(cases >= min_cases);
	assert_int_equal(failures, 0);
}

static void test_fixture_cases(void **state)
{
	(void)state;
	run_cases(KMON_FIXTURES "/cgroup-cases.txt", 35);
}

static void test_real_cases(void **state)
{
	(void)state;
	run_cases(KMON_FIXTURES "/cgroup-real.txt", 40);
}

static void expect_host(const char *text, size_t len, int ret)
{
	struct cgroup_info info;

	memset(&info, 0x5a, sizeof(info));
	assert_int_equal(cgroup__classify(text, len, &info), ret);
	assert_int_equal(info.kind, CGROUP_HOST);
	assert_string_equal(info.container_id, "");
	assert_string_equal(info.pod_uid, "");
}

static void test_garbage(void **state)
{
	static const char id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char buf[512], *big;
	struct cgroup_info info;

	(void)state;
	expect_host("", 0, -EINVAL);
	expect_host("hello world\n", 12, -EINVAL);
	/* An empty path is a line that says nothing, not a broken file. */
	expect_host("0::", 3, 0);
	expect_host("1::\n2::\n", 8, 0);
	expect_host("x::/docker/abc\n", 15, -EINVAL);
	expect_host("0::/\0/docker/", 13, -EINVAL);
	/* Ids of the wrong length, wrong case or with stray characters. */
	snprintf(buf, sizeof(buf), "0::/docker/%.63s\n", id);
	expect_host(buf, strlen(buf), 0);
	snprintf(buf, sizeof(buf), "0::/docker/%s0\n", id);
	expect_host(buf, strlen(buf), 0);
	snprintf(buf, sizeof(buf), "0::/system.slice/docker-%.10sABCDEF%s.scope\n", id, id + 16);
	expect_host(buf, strlen(buf), 0);
	/* Colon-form lookalikes: unknown runtime word, short id, extra field. */
	snprintf(buf, sizeof(buf), "1:cpu:/kubepods-pod%.32s.slice:rkt:%s\n", id, id);
	expect_host(buf, strlen(buf), 0);
	snprintf(buf, sizeof(buf), "1:cpu:/kubepods-pod%.32s.slice:docker:%.63s\n", id, id);
	expect_host(buf, strlen(buf), 0);
	snprintf(buf, sizeof(buf), "1:cpu:/kubepods-pod%.32s.slice:docker:%s:x\n", id, id);
	expect_host(buf, strlen(buf), 0);
	/* A pod-looking name that is not under kubepods and not a slice. */
	snprintf(buf, sizeof(buf), "0::/user.slice/app-pod%.32s/x\n", id);
	expect_host(buf, strlen(buf), 0);
	/* No newline at the end, and a length cutting the id short. */
	snprintf(buf, sizeof(buf), "0::/docker/%s", id);
	assert_int_equal(cgroup__classify(buf, strlen(buf), &info), 0);
	assert_string_equal(info.container_id, id);
	assert_string_equal(info.runtime, "docker");
	expect_host(buf, strlen(buf) - 1, 0);
	/* A 100 KB line. */
	big = malloc(100 * 1024 + 64);
	assert_non_null(big);
	memcpy(big, "0::/", 4);
	memset(big + 4, 'a', 100 * 1024);
	expect_host(big, 100 * 1024 + 4, 0);
	free(big);
}

static void test_json(void **state)
{
	static const char text[] = "0::/kubepods.slice/kubepods-besteffort.slice/"
		"kubepods-besteffort-pod9bfde076_5d33_47e4_8c1e_9771ac9f1533.slice/"
		"crio-381f412a0a4f9fa423350b233931da53f50a0be52d057e0bd04ab3005440698c.scope\n";
	struct cgroup_info info;
	char *j;

	(void)state;
	assert_int_equal(cgroup__classify(text, sizeof(text) - 1, &info), 0);
	j = cgroup__to_json(&info);
	assert_non_null(j);
	assert_string_equal(j, "{\"runtime\":\"cri-o\",\"container_id\":"
		"\"381f412a0a4f9fa423350b233931da53f50a0be52d057e0bd04ab3005440698c\","
		"\"pod_uid\":\"9bfde076-5d33-47e4-8c1e-9771ac9f1533\",\"qos\":\"besteffort\","
		"\"kind\":\"container\",\"cgroup_version\":\"v2\"}");
	free(j);
}

/* Child cgroups of a pod's container (made by its own processes, with
 * whatever names they like, even another pod's container id or pod
 * directory) stay that container's; nesting under a container that is no
 * pod's (a kind node) still lets the inner pod's container win. */
static void test_child_cgroups(void **state)
{
#define A_UID "9bfde076-5d33-47e4-8c1e-9771ac9f1533"
#define B_UID "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
#define A_ID "381f412a0a4f9fa423350b233931da53f50a0be52d057e0bd04ab3005440698c"
#define B_ID "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
	static const char *const own[] = {
		"0::/kubepods/besteffort/pod" A_UID "/" A_ID "/" B_ID "\n",
		"0::/kubepods/besteffort/pod" A_UID "/" A_ID "/kubepods/besteffort/pod" B_UID
		"/" B_ID "\n",
		"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
		"9bfde076_5d33_47e4_8c1e_9771ac9f1533.slice/cri-containerd-" A_ID
		".scope/cri-containerd-" B_ID ".scope\n",
		"0::/kubepods/besteffort/pod" A_UID "/" A_ID "/sub/pod" B_UID "\n",
	};
	static const char kind_node[] = "0::/docker/" B_ID "/kubepods/besteffort/pod" A_UID
					"/" A_ID "\n";
	struct cgroup_info info;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		assert_int_equal(cgroup__classify(own[i], strlen(own[i]), &info), 0);
		assert_int_equal(info.kind, CGROUP_CONTAINER);
		assert_string_equal(info.container_id, A_ID);
		assert_string_equal(info.pod_uid, A_UID);
	}
	assert_int_equal(cgroup__classify(kind_node, sizeof(kind_node) - 1, &info), 0);
	assert_string_equal(info.container_id, A_ID);
	assert_string_equal(info.pod_uid, A_UID);
#undef A_UID
#undef B_UID
#undef A_ID
#undef B_ID
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_cases),
		cmocka_unit_test(test_real_cases),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_child_cgroups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
