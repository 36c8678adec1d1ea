// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The kubelet PodList parser on the fixtures (tests/fixtures/kubelet-pods.json
 * and the real captures in tests/fixtures/podlists/), on the shapes real
 * kubelets answer with, and on hostile input: one pod, however odd or large,
 * never costs the other pods their annotation. */
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

static const struct podlist_pod *find_pod(const struct podlist *pl, const char *name)
{
	for (unsigned i = 0; i < pl->n_pods; i++)
		if (!strcmp(pl->pods[i].name, name))
			return &pl->pods[i];
	return NULL;
}

static const struct podlist_pod *pod(const struct podlist *pl, const char *name)
{
	const struct podlist_pod *p = find_pod(pl, name);

	if (!p)
		fail_msg("pod %s missing", name);
	return p;
}

static const struct podlist_container *ctr(const struct podlist_pod *p, const char *id_prefix)
{
	for (unsigned i = 0; i < p->n_containers; i++)
		if (!strncmp(p->containers[i].id, id_prefix, strlen(id_prefix)))
			return &p->containers[i];
	fail_msg("container %s missing in %s", id_prefix, p->name);
	return NULL;
}

static struct podlist *parse_ok(const char *json, unsigned max_pods)
{
	char err[200] = "";
	struct podlist *pl = podlist__parse(json, strlen(json), max_pods, err, sizeof(err));

	if (!pl)
		fail_msg("parse failed: %s", err);
	return pl;
}

static struct podlist *parse_file(const char *name)
{
	char path[512];
	size_t len;
	char *json, err[200] = "";
	struct podlist *pl;

	snprintf(path, sizeof(path), "%s/%s", KMON_FIXTURES, name);
	json = slurp(path, &len);
	pl = podlist__parse(json, len, 1000, err, sizeof(err));
	free(json);
	if (!pl)
		fail_msg("%s: %s", name, err);
	return pl;
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
	assert_int_equal(podlist__skipped_total(pl), 0);
	assert_string_equal(pl->first_skip, "");
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
	p = pod(pl, "kube-proxy-worker-1");
	assert_string_equal(p->uid, "ea7841cba6dcd9ed85c937eaff758459");
	assert_true(p->is_static);
	podlist__free(pl);
	/* More pods than allowed: the first ones are used, the rest counted. */
	pl = podlist__parse(json, len, 6, err, sizeof(err));
	assert_non_null(pl);
	assert_int_equal(pl->n_pods, 6);
	assert_int_equal(pl->skipped.items, 1);
	assert_non_null(strstr(pl->first_skip, "more than the 6 pods allowed"));
	podlist__free(pl);
	free(json);
}

/* Real answers, with provenance in tests/fixtures/podlists/README.md. */
static void test_real_captures(void **state)
{
	struct podlist *pl;
	const struct podlist_pod *p;

	(void)state;
	/* Docker-era kubelet: restarted containers, an init container. */
	pl = parse_file("podlists/spire-pod_list.json");
	assert_int_equal(pl->n_pods, 4);
	assert_int_equal(podlist__skipped_total(pl), 0);
	p = pod(pl, "kube-flannel-ds-gp1g9");
	assert_int_equal(p->n_containers, 3);
	assert_true(ctr(p, "23388cfefd6d")->previous);
	assert_string_equal(ctr(p, "34a2062fd26c")->kind, "init");
	assert_string_equal(ctr(p, "34a2062fd26c")->runtime, "docker");
	assert_int_equal(pod(pl, "blog-24ck7")->n_containers, 4);
	podlist__free(pl);
	/* A container still being created: no id, nothing odd. */
	pl = parse_file("podlists/spire-pod_list_not_running.json");
	assert_int_equal(pl->n_pods, 4);
	assert_int_equal(podlist__skipped_total(pl), 0);
	assert_int_equal(pod(pl, "blog-24ck7")->n_containers, 2);
	podlist__free(pl);
	/* kubectl's "kind": "List". */
	pl = parse_file("podlists/spire-kind_pod_list.json");
	assert_int_equal(pl->n_pods, 1);
	assert_string_equal(pl->pods[0].uid, "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80");
	assert_int_equal(pl->pods[0].n_containers, 1);
	podlist__free(pl);
	pl = parse_file("podlists/spire-crio_pod_list.json");
	assert_int_equal(pl->n_pods, 1);
	podlist__free(pl);
	/* Two pods claiming one container id: both kept (the tracker decides). */
	pl = parse_file("podlists/spire-crio_pod_list_duplicate_containerId.json");
	assert_int_equal(pl->n_pods, 2);
	assert_string_equal(pl->pods[0].containers[0].id, pl->pods[1].containers[0].id);
	podlist__free(pl);
	/* A null item and an empty {} item next to a good pod. */
	pl = parse_file("podlists/datadog-podlist_null_pod.json");
	assert_int_equal(pl->n_pods, 1);
	assert_int_equal(pl->skipped.items, 2);
	assert_non_null(strstr(pl->first_skip, "pod #1: null item"));
	assert_int_equal(pod(pl, "nginx-99d8b564-4r4vq")->n_containers, 1);
	podlist__free(pl);
	/* A trimmed capture: no kind, no namespaces, 16-hex ids without a
	 * scheme. Nothing usable, every part counted, and still not an error. */
	pl = parse_file("podlists/otel-kubeletstats-pods.json");
	assert_int_equal(pl->n_pods, 0);
	assert_int_equal(pl->skipped.items, 9);
	assert_non_null(strstr(pl->first_skip, "metadata.namespace is missing"));
	podlist__free(pl);
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

/* Only a body that is not a pod list at all fails. */
static void test_bad(void **state)
{
	(void)state;
	expect_bad("<html>", "not JSON");
	expect_bad("", "not JSON");
	expect_bad("[1,2]", "not a PodList");
	expect_bad("\"PodList\"", "not a PodList");
	expect_bad("{\"kind\":\"Pod\"}", "not a PodList");
	expect_bad("{\"kind\":\"Node\",\"items\":[]}", "not a PodList");
	expect_bad("{\"kind\":7,\"items\":[]}", "not a PodList");
	expect_bad("{\"kind\":\"PodList\",\"items\":{}}", "items is not an array");
	expect_bad("{\"kind\":\"PodList\",\"items\":[1,", "not JSON");
	expect_bad("{\"kind\":\"PodList\"}", "PodList has no items array");
	expect_bad("{}", "PodList has no items array");
}

#define GOOD_POD                                                                                  \
	"{\"metadata\":{\"name\":\"good\",\"namespace\":\"shop\",\"uid\":\"u-good\"},"             \
	"\"status\":{\"containerStatuses\":[{\"name\":\"web\",\"containerID\":\"containerd://"      \
	"1111111111111111111111111111111111111111111111111111111111111111\"}]}}"

/* An odd part next to a good pod: the good pod is whole, the odd part is
 * counted under the right heading and named in first_skip. */
static void expect_skip(const char *odd, const unsigned *(*which)(const struct podlist *),
			const char *msg)
{
	char json[4096];
	struct podlist *pl;
	const struct podlist_pod *g;

	snprintf(json, sizeof(json), "{\"kind\":\"PodList\",\"items\":[%s," GOOD_POD "]}", odd);
	pl = parse_ok(json, 100);
	g = pod(pl, "good");
	assert_int_equal(g->n_containers, 1);
	assert_string_equal(g->containers[0].name, "web");
	if (*which(pl) != 1)
		fail_msg("%s: counter is %u, not 1 (first_skip '%s')", odd, *which(pl),
			 pl->first_skip);
	assert_int_equal(podlist__skipped_total(pl), 1);
	if (!strstr(pl->first_skip, msg))
		fail_msg("first_skip '%s' does not say '%s'", pl->first_skip, msg);
	podlist__free(pl);
}

static const unsigned *items_of(const struct podlist *pl) { return &pl->skipped.items; }
static const unsigned *fields_of(const struct podlist *pl) { return &pl->skipped.fields; }
static const unsigned *ids_of(const struct podlist *pl) { return &pl->skipped.ids; }

static void test_odd_parts_are_skipped(void **state)
{
	char big[2048];

	(void)state;
	expect_skip("null", items_of, "pod #1: null item");
	expect_skip("{}", items_of, "pod #1: metadata is missing");
	expect_skip("7", items_of, "pod #1: metadata is missing");
	expect_skip("{\"metadata\":{\"name\":\"a\"}}", items_of,
		    "pod #1: metadata.namespace is missing");
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":7}}", items_of,
		    "pod #1: metadata.uid is not a string");
	expect_skip("{\"metadata\":{\"name\":\"\",\"namespace\":\"n\",\"uid\":\"u\"}}", items_of,
		    "metadata.name is empty");
	snprintf(big, sizeof(big), "{\"metadata\":{\"name\":\"%0300d\",\"namespace\":\"n\","
		 "\"uid\":\"u\"}}", 1);
	expect_skip(big, items_of, "pod #1: metadata.name is too long (300 bytes, at most 253)");
	snprintf(big, sizeof(big), "{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\","
		 "\"uid\":\"%041d\"}}", 1);
	expect_skip(big, items_of, "pod #1: metadata.uid is too long (41 bytes, at most 39)");
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		    "\"status\":\"Running\"}",
		    fields_of, "pod n/a: status is not an object");
	/* What the kubelet sent is quoted without control characters. */
	expect_skip("{\"metadata\":{\"name\":\"a\\nkmon: error: forged\",\"namespace\":\"n\","
		    "\"uid\":\"u\"},\"status\":[]}",
		    fields_of, "pod n/a?kmon: error: forged: status is not an object");
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		    "\"status\":{\"containerStatuses\":7}}",
		    fields_of, "pod n/a: status.containerStatuses is not an array");
	snprintf(big, sizeof(big), "{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		 "\"status\":{\"initContainerStatuses\":[{\"name\":\"%0300d\"}]}}", 1);
	expect_skip(big, fields_of,
		    "pod n/a: an entry of status.initContainerStatuses has no valid name");
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		    "\"status\":{\"containerStatuses\":[null]}}",
		    fields_of, "has no valid name");
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		    "\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"containerID\":5}]}}",
		    fields_of, "containerID of c is not a string");
	/* Ids that cannot match a cgroup: short, upper case, odd scheme. */
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		    "\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"containerID\":"
		    "\"docker://364bd8f13021f326\"}]}}",
		    ids_of, "containerID of c is not [<scheme>://]<64 hex> (docker://364bd8f");
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		    "\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"containerID\":"
		    "\"containerd://ABCDEF1111111111111111111111111111111111111111111111111111111111\"}]}}",
		    ids_of, "is not [<scheme>://]<64 hex>");
	expect_skip("{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"uid\":\"u\"},"
		    "\"status\":{\"containerStatuses\":[{\"name\":\"c\",\"lastState\":{\"terminated\":"
		    "{\"containerID\":\"Bad Scheme://1111111111111111111111111111111111111111111111111111111111111111\"}}}]}}",
		    ids_of, "lastState.terminated.containerID of c");
}

/* What real kubelets (1.2 .. 1.35) answer besides the plain case. */
static void test_kubelet_shapes(void **state)
{
	static const char *empties[] = {
		"{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":[]}",
		"{\"kind\":\"PodList\",\"items\":null}",
		"{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":null}\n",
		" \t\n\r {\"kind\":\"PodList\",\"items\":[]}",
	};
	struct podlist *pl;
	const struct podlist_pod *p;

	(void)state;
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		pl = parse_ok(empties[i], 0);
		assert_int_equal(pl->n_pods, 0);
		assert_int_equal(podlist__skipped_total(pl), 0);
		podlist__free(pl);
	}
	/* "kind": "Pod" carrying items, leading tabs, no kind at all. */
	pl = parse_ok("\t\t{\"kind\":\"Pod\",\"items\":[" GOOD_POD "]}", 10);
	assert_int_equal(pl->n_pods, 1);
	podlist__free(pl);
	pl = parse_ok("{\"items\":[" GOOD_POD "]}", 10);
	assert_int_equal(pl->n_pods, 1);
	podlist__free(pl);
	/* A mirror pod: its cgroup carries the config hash, not the API uid. */
	pl = parse_ok("{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"etcd-n1\","
		      "\"namespace\":\"kube-system\",\"uid\":\"9e2f0c5a-3c1d-4b7e-9f43-2a1b6c8d0e11\","
		      "\"annotations\":{\"kubernetes.io/config.hash\":\"5a5fbd34cfb43ee7bee976798370c910\","
		      "\"kubernetes.io/config.mirror\":\"5a5fbd34cfb43ee7bee976798370c910\","
		      "\"kubernetes.io/config.source\":\"file\"}}}]}",
		      10);
	p = pod(pl, "etcd-n1");
	assert_string_equal(p->uid, "5a5fbd34cfb43ee7bee976798370c910");
	assert_string_equal(p->api_uid, "9e2f0c5a-3c1d-4b7e-9f43-2a1b6c8d0e11");
	assert_true(p->is_static);
	podlist__free(pl);
	/* A static pod as the kubelet itself lists it (uid = hash, source http). */
	pl = parse_ok("{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"s\",\"namespace\":"
		      "\"kube-system\",\"uid\":\"3bef16d65fa74d46458df57d8f6f59af\",\"annotations\":"
		      "{\"kubernetes.io/config.source\":\"http\"}}}]}",
		      10);
	assert_true(pl->pods[0].is_static);
	assert_string_equal(pl->pods[0].api_uid, "");
	assert_string_equal(pl->pods[0].uid, "3bef16d65fa74d46458df57d8f6f59af");
	podlist__free(pl);
	/* Failed/Evicted (no statuses), Succeeded (terminated ids still listed),
	 * Pending (waiting, no id), bare ids without a scheme, any scheme. */
	pl = parse_ok(
		"{\"kind\":\"PodList\",\"items\":["
		"{\"metadata\":{\"name\":\"ev\",\"namespace\":\"n\",\"uid\":\"u1\"},\"status\":"
		"{\"phase\":\"Failed\",\"reason\":\"Evicted\",\"message\":\"low on memory\"}},"
		"{\"metadata\":{\"name\":\"job\",\"namespace\":\"n\",\"uid\":\"u2\"},\"status\":"
		"{\"phase\":\"Succeeded\",\"containerStatuses\":[{\"name\":\"j\",\"state\":"
		"{\"terminated\":{\"exitCode\":0,\"containerID\":\"cri-o://"
		"2222222222222222222222222222222222222222222222222222222222222222\"}},"
		"\"containerID\":\"cri-o://2222222222222222222222222222222222222222222222222222222222222222\"}]}},"
		"{\"metadata\":{\"name\":\"pend\",\"namespace\":\"n\",\"uid\":\"u3\"},\"status\":"
		"{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"p\",\"state\":{\"waiting\":"
		"{\"reason\":\"ContainerCreating\"}},\"containerID\":\"\"}]}},"
		"{\"metadata\":{\"name\":\"bare\",\"namespace\":\"n\",\"uid\":\"u4\"},\"status\":"
		"{\"containerStatuses\":[{\"name\":\"b\",\"containerID\":"
		"\"3333333333333333333333333333333333333333333333333333333333333333\"},"
		"{\"name\":\"k\",\"containerID\":\"kata.v2://"
		"4444444444444444444444444444444444444444444444444444444444444444\"}]}}]}",
		10);
	assert_int_equal(pl->n_pods, 4);
	assert_int_equal(podlist__skipped_total(pl), 0);
	assert_int_equal(pod(pl, "ev")->n_containers, 0);
	assert_string_equal(ctr(pod(pl, "job"), "2222")->runtime, "cri-o");
	assert_int_equal(pod(pl, "pend")->n_containers, 0);
	assert_string_equal(ctr(pod(pl, "bare"), "3333")->runtime, "");
	assert_string_equal(ctr(pod(pl, "bare"), "4444")->runtime, "kata.v2");
	podlist__free(pl);
}

/* A PodList: first the normal pods (2 instances each), then one pod with
 * n containers (each restarted once when prev). */
static char *list_json(unsigned normal, unsigned n, bool prev, const char *scheme)
{
	size_t cap = 1024 + (size_t)(n + normal * 2) * 400, off;
	char *s = malloc(cap);

	assert_non_null(s);
	off = (size_t)snprintf(s, cap, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"items\":[");
	for (unsigned i = 0; i < normal; i++)
		off += (size_t)snprintf(s + off, cap - off,
					"{\"metadata\":{\"name\":\"normal-%u\",\"namespace\":\"shop\","
					"\"uid\":\"u-%u\"},\"status\":{\"containerStatuses\":["
					"{\"name\":\"app\",\"containerID\":\"containerd://%064x\"},"
					"{\"name\":\"side\",\"containerID\":\"containerd://%064x\"}]}},",
					i, i, 0x100000u + i, 0x200000u + i);
	off += (size_t)snprintf(s + off, cap - off,
				"{\"metadata\":{\"name\":\"big\",\"namespace\":\"tenant\",\"uid\":\"u\"},"
				"\"status\":{\"containerStatuses\":[");
	for (unsigned i = 0; i < n; i++) {
		off += (size_t)snprintf(s + off, cap - off,
					"%s{\"name\":\"c%u\",\"containerID\":\"%s%064x\"", i ? "," : "",
					i, scheme, i + 1);
		if (prev)
			off += (size_t)snprintf(s + off, cap - off,
						",\"lastState\":{\"terminated\":{\"containerID\":"
						"\"%s%064x\"}}",
						scheme, i + 0x1000000u);
		off += (size_t)snprintf(s + off, cap - off, "}");
	}
	snprintf(s + off, cap - off, "]}}]}");
	return s;
}

static void expect_normal_whole(const struct podlist *pl, unsigned normal)
{
	for (unsigned i = 0; i < normal; i++) {
		char name[32];
		snprintf(name, sizeof(name), "normal-%u", i);
		assert_int_equal(pod(pl, name)->n_containers, 2);
		assert_int_equal(pod(pl, name)->skipped, 0);
	}
}

static void test_bounds(void **state)
{
	char *js;
	struct podlist *pl;
	const struct podlist_pod *big;

	(void)state;
	/* Issue 13 defect 4: 33 containers restarted once are 66 instances; this
	 * used to fail the whole list. Now every pod is there, nothing skipped. */
	js = list_json(5, 33, true, "cri-o://");
	pl = parse_ok(js, 100);
	assert_int_equal(pl->n_pods, 6);
	expect_normal_whole(pl, 5);
	big = pod(pl, "big");
	assert_int_equal(big->n_containers, 66);
	assert_int_equal(podlist__skipped_total(pl), 0);
	/* Current instances first, then the previous ones. */
	assert_false(big->containers[0].previous);
	assert_true(big->containers[33].previous);
	assert_string_equal(big->containers[33].runtime, "cri-o");
	podlist__free(pl);
	free(js);
	/* A pod with more instances than the whole list may hold: the normal
	 * pods keep all of theirs, the big one loses only its own, previous
	 * instances first, and every one lost is counted. */
	js = list_json(20, PODLIST_MAX_INSTANCES, true, "containerd://");
	pl = parse_ok(js, 100);
	expect_normal_whole(pl, 20);
	big = pod(pl, "big");
	assert_int_equal(big->n_containers, PODLIST_MAX_INSTANCES - 40);
	assert_int_equal(big->skipped, PODLIST_MAX_INSTANCES + 40);
	assert_int_equal(pl->skipped.instances, PODLIST_MAX_INSTANCES + 40);
	for (unsigned i = 0; i < big->n_containers; i++)
		assert_false(big->containers[i].previous);
	assert_non_null(strstr(pl->first_skip, "pod tenant/big: 8232 of its 16384 container"));
	podlist__free(pl);
	free(js);
	/* Any scheme with a 64-hex id counts and uses up the bound alike. */
	js = list_json(0, 70, false, "rkt://");
	pl = parse_ok(js, 10);
	assert_int_equal(pl->pods[0].n_containers, 70);
	assert_string_equal(pl->pods[0].containers[69].runtime, "rkt");
	podlist__free(pl);
	free(js);
}

/* Many pods, all over their share: max-min fair, the bound exactly used. */
static void test_fair_share(void **state)
{
	const unsigned pods = 100, each = 100;
	size_t cap = (size_t)pods * each * 120 + 1024, off;
	char *s = malloc(cap);
	struct podlist *pl;
	unsigned total = 0, lo = ~0u, hi = 0;

	(void)state;
	assert_non_null(s);
	off = (size_t)snprintf(s, cap, "{\"kind\":\"PodList\",\"items\":[");
	for (unsigned p = 0; p < pods; p++) {
		off += (size_t)snprintf(s + off, cap - off,
					"%s{\"metadata\":{\"name\":\"p%u\",\"namespace\":\"n\",\"uid\":"
					"\"u%u\"},\"status\":{\"containerStatuses\":[",
					p ? "," : "", p, p);
		for (unsigned c = 0; c < each; c++)
			off += (size_t)snprintf(s + off, cap - off,
						"%s{\"name\":\"c\",\"containerID\":\"docker://%064x\"}",
						c ? "," : "", p * each + c + 1);
		off += (size_t)snprintf(s + off, cap - off, "]}}");
	}
	snprintf(s + off, cap - off, "]}");
	pl = parse_ok(s, 1000);
	assert_int_equal(pl->n_pods, pods);
	for (unsigned p = 0; p < pods; p++) {
		unsigned n = pl->pods[p].n_containers;
		total += n;
		lo = n < lo ? n : lo;
		hi = n > hi ? n : hi;
		assert_int_equal(n + pl->pods[p].skipped, each);
	}
	assert_int_equal(total, PODLIST_MAX_INSTANCES);
	assert_true(hi - lo <= 1);
	assert_int_equal(pl->skipped.instances, pods * each - PODLIST_MAX_INSTANCES);
	podlist__free(pl);
	free(s);
	podlist__free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture),
		cmocka_unit_test(test_real_captures),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_odd_parts_are_skipped),
		cmocka_unit_test(test_kubelet_shapes),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_fair_share),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
