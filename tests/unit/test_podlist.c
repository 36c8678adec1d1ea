// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The kubelet PodList parser on the fixture and on bad input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/podlist.h"

#include "tests/unit/slurp.h"

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
	expect_bad(big, "metadata.name");
	expect_bad("{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\",\"namespace\":"
		   "\"n\",\"uid\":7}}]}",
		   "pod #1: metadata.uid is not a string");
	expect_bad("{\"kind\":\"PodList\",\"items\":[7]}", "pod #1: metadata is missing");
	snprintf(big, sizeof(big), "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\","
		 "\"namespace\":\"n\",\"uid\":\"%041d\"}}]}", 1);
	expect_bad(big, "pod #1: metadata.uid is too long (41 bytes, at most 39)");
	snprintf(big, sizeof(big), "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\","
		 "\"namespace\":\"n\",\"uid\":\"u\"},\"status\":{\"initContainerStatuses\":"
		 "[{\"name\":\"%0300d\"}]}}]}", 1);
	expect_bad(big, "pod a: an entry of status.initContainerStatuses has no valid name");
	expect_bad("{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"a\",\"namespace\":"
		   "\"n\",\"uid\":\"u\"},\"status\":\"Running\"}]}",
		   "pod a: status is not an object");
	expect_bad("{\"kind\":\"PodList\",\"items\":[1,", "not JSON");
	expect_bad("{\"kind\":\"PodList\"}", "PodList has no items array");
}

/* A pod with n containers (each with an id, and a previous id when prev). */
static char *pod_json(unsigned n, bool prev, const char *scheme)
{
	size_t cap = 256 + n * 400, off;
	char *s = malloc(cap);

	assert_non_null(s);
	off = (size_t)snprintf(s, cap, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"items\":"
			       "[{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"uid\":\"u\"},"
			       "\"status\":{\"containerStatuses\":[");
	for (unsigned i = 0; i < n; i++) {
		off += (size_t)snprintf(s + off, cap - off,
					"%s{\"name\":\"c%u\",\"containerID\":\"%s%064x\"", i ? "," : "",
					i, scheme, i + 1);
		if (prev)
			off += (size_t)snprintf(s + off, cap - off,
						",\"lastState\":{\"terminated\":{\"containerID\":"
						"\"%s%064x\"}}",
						scheme, i + 1000);
		off += (size_t)snprintf(s + off, cap - off, "}");
	}
	snprintf(s + off, cap - off, "]}}]}");
	return s;
}

static void test_bounds(void **state)
{
	char err[200] = "", *js;
	struct podlist *pl;

	(void)state;
	/* 64 instances fit, the 65th does not. */
	js = pod_json(64, false, "containerd://");
	pl = podlist__parse(js, strlen(js), 10, err, sizeof(err));
	assert_non_null(pl);
	assert_int_equal(pl->pods[0].n_containers, 64);
	assert_string_equal(pl->pods[0].containers[63].name, "c63");
	podlist__free(pl);
	free(js);
	js = pod_json(65, false, "docker://");
	errno = 0;
	assert_null(podlist__parse(js, strlen(js), 10, err, sizeof(err)));
	assert_int_equal(errno, E2BIG);
	assert_non_null(strstr(err, "pod p has more than 64 container instances"));
	free(js);
	/* Previous instances count too: 33 containers restarted are 66. */
	js = pod_json(33, true, "cri-o://");
	errno = 0;
	assert_null(podlist__parse(js, strlen(js), 10, err, sizeof(err)));
	assert_int_equal(errno, E2BIG);
	free(js);
	js = pod_json(32, true, "cri-o://");
	pl = podlist__parse(js, strlen(js), 10, err, sizeof(err));
	assert_non_null(pl);
	assert_int_equal(pl->pods[0].n_containers, 64);
	assert_true(pl->pods[0].containers[1].previous);
	assert_string_equal(pl->pods[0].containers[1].runtime, "cri-o");
	assert_int_equal(strlen(pl->pods[0].containers[1].id), 64);
	podlist__free(pl);
	free(js);
	/* Unknown runtimes are skipped and do not use up the bound. */
	js = pod_json(70, false, "rkt://");
	pl = podlist__parse(js, strlen(js), 10, err, sizeof(err));
	assert_non_null(pl);
	assert_int_equal(pl->pods[0].n_containers, 0);
	podlist__free(pl);
	free(js);
}

static void test_empty(void **state)
{
	const char *cases[] = {
		"{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":[]}",
		"{\"kind\":\"PodList\",\"items\":null}",
	};
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct podlist *pl = podlist__parse(cases[i], strlen(cases[i]), 0, err, sizeof(err));
		assert_non_null(pl);
		assert_int_equal(pl->n_pods, 0);
		podlist__free(pl);
	}
	podlist__free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
