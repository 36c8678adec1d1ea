// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The kubelet PodList parser on the fixture and on bad input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/podlist.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static const struct podlist_pod *pod(const struct podlist *pl, const char *name)
{
	for (unsigned i = 0; i < pl->n_pods; i++)
		if (!strcmp(pl->pods[i].name, name))
			return &pl->pods[i];
	fail_msg("pod %s missing", name);
	return NULL;
}

static const struct podlist_container *ctr(const struct podlist_pod *p, const char *id_prefix)
{
	for (unsigned i = 0; i < p->n_containers; i++)
		if (!strncmp(p->containers[i].id, id_prefix, strlen(id_prefix)))
			return &p->containers[i];
	fail_msg("container %s missing in %s", id_prefix, p->name);
	return NULL;
}

static void test_fixture(void **state)
{
	size_t len;
	char *json = slurp(KMON_FIXTURES "/kubelet-pods.json", &len), err[200];
	struct podlist *pl = podlist__parse(json, len, 100, err, sizeof(err));
	const struct podlist_pod *p;
	const struct podlist_container *c;

	(void)state;
	assert_non_null(pl);
	assert_int_equal(pl->n_pods, 7);
	p = pod(pl, "checkout-7d9f8b6c5-x2lqp");
	assert_string_equal(p->namespace, "payments");
	assert_string_equal(p->uid, "e3f7128c-3555-427e-a507-b503ccb2c06e");
	assert_int_equal(p->n_containers, 3);
	c = ctr(p, "dcb6de07");
	assert_string_equal(c->name, "migrate-schema");
	assert_string_equal(c->kind, "init");
	assert_string_equal(c->runtime, "containerd");
	assert_int_equal(strlen(c->id), 64);
	/* Pending pod: names, no ids, so nothing to match. */
	assert_int_equal(pod(pl, "checkout-7d9f8b6c5-9mzv4")->n_containers, 0);
	/* Restarted container: the previous instance's id too. */
	p = pod(pl, "ledger-0");
	c = ctr(p, "ce9da20");
	assert_true(c->previous);
	assert_string_equal(c->name, "ledger");
	assert_false(ctr(p, "ebc57f4")->previous);
	/* cri-o ids and an ephemeral debug container. */
	p = pod(pl, "node-exporter-8kq2n");
	assert_string_equal(ctr(p, "381f412a")->runtime, "cri-o");
	c = ctr(p, "7ba05476");
	assert_string_equal(c->kind, "ephemeral");
	assert_string_equal(c->name, "debugger-xk7q2");
	/* Static pod: the uid is the config hash. */
	assert_string_equal(pod(pl, "kube-proxy-worker-1")->uid, "ea7841cba6dcd9ed85c937eaff758459");
	podlist__free(pl);
	/* Too many pods for the bound. */
	errno = 0;
	assert_null(podlist__parse(json, len, 6, err, sizeof(err)));
	assert_int_equal(errno, E2BIG);
	assert_non_null(strstr(err, "7 pods"));
	free(json);
}

static void expect_bad(const char *json, const char *msg)
{
	char err[200] = "";

	errno = 0;
	assert_null(podlist__parse(json, strlen(json), 100, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	if (!strstr(err, msg))
		fail_msg("error '%s' does not say '%s'", err, msg);
}

static void test_bad(void **state)
{
	char big[2048];

	(void)state;
	expect_bad("<html>", "not JSON");
	expect_bad("", "not JSON");
	expect_bad("[1,2]", "not a PodList");
	expect_bad("{\"kind\":\"Pod\"}", "not a PodList");
	expect_bad("{\"kind\":\"PodList\",\"items\":{}}", "items is not an array");
	expect_bad("{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\"}}]}",
		   "pod #1");
	expect_bad("{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\",\"namespace\":"
		   "\"n\",\"uid\":\"u\"},\"status\":{\"containerStatuses\":7}}]}",
		   "not an array");
	snprintf(big, sizeof(big), "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"%0300d\","
		 "\"namespace\":\"n\",\"uid\":\"u\"}}]}", 1);
	expect_bad(big, "too long");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
