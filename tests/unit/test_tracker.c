// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The tracker's parts without root and without a kernel: the /proc scan on
 * a /proc tree of plain files (one process per case of
 * tests/fixtures/cgroup-cases.txt and cgroup-real.txt), the container table
 * and its annotation from the pod table of tests/fixtures/kubelet-pods.json
 * (each case's `kubelet=` line says which names it must get), sandbox
 * inference and its ordering rule, a cgroup named after another pod's
 * container, the pod table's grace period, and the container key space.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/types.h>

#include "agent/containers.h"
#include "agent/pod_table.h"
#include "agent/proc_scan.h"
#include "bpf/kmon_event.h"
#include "k8s/podlist.h"

#include "tests/unit/slurp.h"
#include "tests/unit/cgroup_cases.h"

#define FIRST_PID 1000

static struct podlist *parse_podlist(const char *json, size_t len)
{
	char err[200] = "";
	struct podlist *pl = podlist__parse(json, len, 100, err, sizeof(err));

	if (!pl)
		fail_msg("PodList: %s", err);
	return pl;
}

static struct podlist *fixture_pods(void)
{
	size_t len;
	char *json = slurp(KMON_FIXTURES "/kubelet-pods.json", &len);
	struct podlist *pl = parse_podlist(json, len);

	free(json);
	return pl;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *root, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", root, name);
	assert_int_equal(mkdir(out, 0755), 0);
}

static void remove_tree(const char *root)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

/* A /proc of plain files: pid FIRST_PID+i is case i; plus what a real /proc
 * also has: non-pid entries, the agent itself, a zombie (empty cgroup file)
 * and a process gone between readdir and open (no cgroup file). */
struct fake_proc {
	char root[256];
	struct cgroup_case *cases;
	unsigned n;
	uint32_t self;
};

static void fake_proc__make(struct fake_proc *fp)
{
	unsigned n1 = 0, n2 = 0;
	struct cgroup_case *a = cgroup_cases__load(KMON_FIXTURES "/cgroup-cases.txt", &n1);
	struct cgroup_case *b = cgroup_cases__load(KMON_FIXTURES "/cgroup-real.txt", &n2);
	char dir[512], name[32];

	assert_true(n1 >= 35 && n2 >= 40);
	fp->cases = realloc(a, (n1 + n2) * sizeof(*a));
	assert_non_null(fp->cases);
	memcpy(fp->cases + n1, b, n2 * sizeof(*b));
	free(b);
	fp->n = n1 + n2;
	snprintf(fp->root, sizeof(fp->root), "/tmp/kmon-test-proc-XXXXXX");
	assert_non_null(mkdtemp(fp->root));
	for (unsigned i = 0; i < fp->n; i++) {
		snprintf(name, sizeof(name), "%u", FIRST_PID + i);
		make_dir(fp->root, name, dir, sizeof(dir));
		write_file(dir, "cgroup", fp->cases[i].cgroup);
	}
	/* The agent: in a container (its own pod), and still left out. */
	fp->self = FIRST_PID + fp->n;
	snprintf(name, sizeof(name), "%u", fp->self);
	make_dir(fp->root, name, dir, sizeof(dir));
	write_file(dir, "cgroup", fp->cases[0].cgroup);
	snprintf(name, sizeof(name), "%u", fp->self + 1); /* zombie */
	make_dir(fp->root, name, dir, sizeof(dir));
	write_file(dir, "cgroup", "");
	snprintf(name, sizeof(name), "%u", fp->self + 2); /* gone */
	make_dir(fp->root, name, dir, sizeof(dir));
	make_dir(fp->root, "self", dir, sizeof(dir));
	make_dir(fp->root, "sys", dir, sizeof(dir));
	make_dir(fp->root, "0", dir, sizeof(dir));
	make_dir(fp->root, "12abc", dir, sizeof(dir));
	write_file(fp->root, "cmdline", "x");
}

static void fake_proc__free(struct fake_proc *fp)
{
	remove_tree(fp->root);
	free(fp->cases);
}

static const struct cgroup_case *case_of(const struct fake_proc *fp, uint32_t tgid)
{
	assert_true(tgid >= FIRST_PID && tgid < FIRST_PID + fp->n);
	return &fp->cases[tgid - FIRST_PID];
}

static void test_scan(void **state)
{
	struct fake_proc fp;
	struct proc_scan s;
	unsigned want = 0, got_container = 0, got_pod_only = 0;
	bool *hit;

	(void)state;
	fake_proc__make(&fp);
	hit = calloc(fp.n, sizeof(*hit));
	assert_non_null(hit);
	assert_int_equal(proc_scan__run(&s, fp.root, NULL, fp.self), 0);
	/* Every pid directory counts as seen (the agent's too); "0" is no pid. */
	assert_int_equal(s.seen, fp.n + 3);
	assert_int_equal(s.vanished, 2);
	assert_int_equal(s.unreadable, 0);
	for (size_t i = 0; i < s.n_hits; i++) {
		const struct proc_scan_hit *h = &s.hits[i];
		const struct cgroup_case *c = case_of(&fp, h->tgid);

		assert_false(hit[h->tgid - FIRST_PID]);
		hit[h->tgid - FIRST_PID] = true;
		/* No cgroup v2 hierarchy given: no cgroup ids. */
		assert_int_equal(h->cgid, 0);
		if (strcmp(h->info.container_id, c->exp[CASE_ID]) ||
		    strcmp(h->info.pod_uid, c->exp[CASE_UID]))
			fail_msg("%s: scanned as %s / %s", c->name, h->info.container_id,
				 h->info.pod_uid);
		got_container += h->info.kind == CGROUP_CONTAINER;
		got_pod_only += h->info.kind == CGROUP_POD_ONLY;
	}
	/* Exactly the container and pod-level processes are hits: host and
	 * conmon processes are not. */
	for (unsigned i = 0; i < fp.n; i++) {
		const char *kind = fp.cases[i].exp[CASE_KIND];
		bool wanted = strcmp(kind, "host") && strcmp(kind, "conmon");

		want += wanted;
		if (wanted != hit[i])
			fail_msg("%s (kind %s): %s", fp.cases[i].name, kind,
				 hit[i] ? "a hit, should not be" : "missed");
	}
	assert_int_equal(s.n_hits, want);
	assert_true(got_container > 20 && got_pod_only >= 1);
	proc_scan__release(&s);
	free(hit);
	fake_proc__free(&fp);
}

static void test_scan_missing_root(void **state)
{
	struct proc_scan s;

	(void)state;
	assert_int_equal(proc_scan__run(&s, "/nonexistent/proc", NULL, 0), -ENOENT);
	proc_scan__release(&s);
}

/* "ns/pod/container (...)", "ns/pod (pod only ...)" or "-": the names a
 * case must end up with. */
static void expected_names(const char *kubelet, char *ns, char *pod, char *ctr)
{
	char buf[160], *sp, *a, *b;

	ns[0] = pod[0] = ctr[0] = '\0';
	if (!strcmp(kubelet, "-") || !kubelet[0])
		return;
	snprintf(buf, sizeof(buf), "%s", kubelet);
	sp = strchr(buf, ' ');
	if (sp)
		*sp = '\0';
	a = strchr(buf, '/');
	assert_non_null(a);
	*a++ = '\0';
	b = strchr(a, '/');
	if (b)
		*b++ = '\0';
	strcpy(ns, buf);
	strcpy(pod, a);
	if (b)
		strcpy(ctr, b);
}

/* Scan, table, pod table, annotation: what the agent does between a scan
 * and the META records consumers get, case by case. */
static void test_annotation(void **state)
{
	struct fake_proc fp;
	struct proc_scan s;
	struct containers *ct = containers__new();
	struct pod_table *pt = pod_table__new(60);
	struct podlist *pl = fixture_pods();
	unsigned named = 0, sandboxes = 0, failures = 0;

	(void)state;
	assert_non_null(ct);
	assert_non_null(pt);
	fake_proc__make(&fp);
	assert_int_equal(proc_scan__run(&s, fp.root, NULL, fp.self), 0);
	/* Scanned before the first PodList request started (seen_at 0); that
	 * request (number 1) brings the fixture PodList. */
	for (size_t i = 0; i < s.n_hits; i++) {
		bool is_new;

		assert_int_not_equal(containers__add(ct, &s.hits[i].info, 0, &is_new), 0);
	}
	assert_int_equal(pod_table__merge(pt, pl, 100.0), 0);
	for (uint32_t k = containers__next(ct, 0); k; k = containers__next(ct, k))
		containers__annotate(ct, containers__get(ct, k), pt, 1);
	for (size_t i = 0; i < s.n_hits; i++) {
		const struct cgroup_case *c = case_of(&fp, s.hits[i].tgid);
		bool is_new;
		uint32_t k = containers__add(ct, &s.hits[i].info, 0, &is_new);
		const struct container *x = containers__get(ct, k);
		char ns[160], pod[160], ctr[160];
		const char *kind = cgroup__kind_name(x->kind);

		assert_false(is_new);
		expected_names(c->exp[CASE_KUBELET], ns, pod, ctr);
		if (strcmp(x->meta.namespace, ns) || strcmp(x->meta.pod, pod) ||
		    strcmp(x->meta.container, ctr) || strcmp(kind, c->exp[CASE_KIND])) {
			print_error("%s: annotated %s/%s/%s kind %s; expected %s kind %s\n", c->name,
				    x->meta.namespace, x->meta.pod, x->meta.container, kind,
				    c->exp[CASE_KUBELET], c->exp[CASE_KIND]);
			failures++;
		}
		assert_int_equal(x->meta.key, k);
		named += ns[0] != '\0';
		sandboxes += x->kind == CGROUP_SANDBOX;
	}
	assert_int_equal(failures, 0);
	assert_true(named >= 12 && sandboxes >= 2);
	/* A second PodList that changes nothing changes no META. */
	assert_int_equal(pod_table__merge(pt, pl, 110.0), 0);
	for (uint32_t k = containers__next(ct, 0); k; k = containers__next(ct, k))
		assert_false(containers__annotate(ct, containers__get(ct, k), pt, 2));
	proc_scan__release(&s);
	podlist__free(pl);
	pod_table__free(pt);
	containers__free(ct);
	fake_proc__free(&fp);
}

static struct cgroup_info container_info(const char *id, const char *uid)
{
	struct cgroup_info info;

	memset(&info, 0, sizeof(info));
	info.kind = CGROUP_CONTAINER;
	info.version = CGROUP_V2;
	snprintf(info.runtime, sizeof(info.runtime), "containerd");
	snprintf(info.container_id, sizeof(info.container_id), "%s", id);
	snprintf(info.pod_uid, sizeof(info.pod_uid), "%s", uid);
	return info;
}

/* ledger-0 (kubelet-pods.json) and an id the kubelet does not list. */
#define LEDGER_UID "271112b7-fb46-451a-9c77-d72720101eca"
#define PAUSE_ID "7afceaa86dc3f3464849a845d1f7c3a0579f09222a2bed27a584d21b54fa8973"
/* checkout-7d9f8b6c5-x2lqp's container "checkout". */
#define CHECKOUT_UID "e3f7128c-3555-427e-a507-b503ccb2c06e"
#define CHECKOUT_ID "a84bba07931db925306a0799dc6ebd718b8c764d1c0acb3dea13519a60a077bb"

/* A container the PodList does not list is its pod's sandbox only when
 * that PodList was asked for after the container was first seen: one seen
 * while the request was under way may just be newer than the answer. */
static void test_sandbox_needs_a_later_podlist(void **state)
{
	struct containers *ct = containers__new();
	struct pod_table *pt = pod_table__new(60);
	struct podlist *pl = fixture_pods();
	struct cgroup_info info = container_info(PAUSE_ID, LEDGER_UID);
	struct container *c;
	bool is_new;
	uint32_t k;

	(void)state;
	assert_int_equal(pod_table__merge(pt, pl, 1.0), 0);
	/* Seen when one request had started: seen_at 1. */
	k = containers__add(ct, &info, 1, &is_new);
	assert_true(is_new);
	c = containers__get(ct, k);
	/* The answer to request 1 is applied: pod names, but not a sandbox yet. */
	assert_true(containers__annotate(ct, c, pt, 1));
	assert_string_equal(c->meta.pod, "ledger-0");
	assert_string_equal(c->meta.namespace, "payments");
	assert_string_equal(c->meta.container, "");
	assert_int_equal(c->kind, CGROUP_CONTAINER);
	assert_false(c->id_known);
	/* Request 2 started after it was seen, and still does not list it. */
	containers__annotate(ct, c, pt, 2);
	assert_int_equal(c->kind, CGROUP_SANDBOX);
	assert_string_equal(c->meta.pod, "ledger-0");
	podlist__free(pl);
	pod_table__free(pt);
	containers__free(ct);
}

/* Whoever can make a cgroup can name it after another pod's container: the
 * pod directory of the path must agree with the PodList, else no names, and
 * its own key (never the real container's). */
static void test_lookalike_is_not_annotated(void **state)
{
	struct containers *ct = containers__new();
	struct pod_table *pt = pod_table__new(60);
	struct podlist *pl = fixture_pods();
	struct cgroup_info real = container_info(CHECKOUT_ID, CHECKOUT_UID);
	struct cgroup_info fake = container_info(CHECKOUT_ID, LEDGER_UID);
	struct cgroup_info nopod = container_info(CHECKOUT_ID, "");
	struct container *r, *f, *n;
	bool is_new;
	uint32_t kr, kf, kn;

	(void)state;
	assert_int_equal(pod_table__merge(pt, pl, 1.0), 0);
	kr = containers__add(ct, &real, 0, &is_new);
	kf = containers__add(ct, &fake, 0, &is_new);
	kn = containers__add(ct, &nopod, 0, &is_new);
	assert_true(kr && kf && kn && kr != kf && kf != kn && kr != kn);
	r = containers__get(ct, kr);
	f = containers__get(ct, kf);
	n = containers__get(ct, kn);
	assert_true(containers__annotate(ct, r, pt, 1));
	assert_string_equal(r->meta.container, "checkout");
	assert_string_equal(r->meta.pod, "checkout-7d9f8b6c5-x2lqp");
	containers__annotate(ct, f, pt, 1);
	containers__annotate(ct, n, pt, 1);
	assert_string_equal(f->meta.pod, "");
	assert_string_equal(f->meta.container, "");
	assert_string_equal(n->meta.pod, "");
	assert_false(f->pod_known || f->id_known);
	/* Never taken for a sandbox of the pod it sits in either. */
	assert_int_equal(f->kind, CGROUP_CONTAINER);
	assert_int_equal(containers__mismatches(ct), 2);
	/* Counted (and logged) once per container, not per PodList. */
	containers__annotate(ct, f, pt, 2);
	containers__annotate(ct, n, pt, 3);
	assert_int_equal(containers__mismatches(ct), 2);
	podlist__free(pl);
	pod_table__free(pt);
	containers__free(ct);
}

/* A pod gone from the PodList keeps its names for the grace period (its
 * last processes' events), then goes; a pod still listed is never kept
 * twice. */
static void test_pod_table_grace(void **state)
{
	static const char empty[] = "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"items\":[]}";
	struct pod_table *pt = pod_table__new(60);
	struct podlist *pl = fixture_pods(), *none = parse_podlist(empty, strlen(empty));
	size_t full;

	(void)state;
	assert_int_equal(pod_table__merge(pt, pl, 100.0), 0);
	full = pod_table__entries(pt);
	assert_true(full >= pl->n_pods * 2);
	assert_int_equal(pod_table__merge(pt, pl, 110.0), 0);
	assert_int_equal(pod_table__entries(pt), full);
	assert_non_null(pod_table__by_container(pt, CHECKOUT_ID));
	assert_string_equal(pod_table__by_uid(pt, LEDGER_UID)->pod, "ledger-0");

	assert_int_equal(pod_table__merge(pt, none, 150.0), 0);
	assert_int_equal(pod_table__entries(pt), full);
	assert_string_equal(pod_table__by_container(pt, CHECKOUT_ID)->container, "checkout");
	/* 60 s after the last PodList that had them. */
	assert_int_equal(pod_table__merge(pt, none, 169.9), 0);
	assert_non_null(pod_table__by_uid(pt, LEDGER_UID));
	assert_int_equal(pod_table__merge(pt, none, 170.0), 0);
	assert_null(pod_table__by_uid(pt, LEDGER_UID));
	assert_null(pod_table__by_container(pt, CHECKOUT_ID));
	assert_int_equal(pod_table__entries(pt), 0);
	/* Back in the list: known again, at once. */
	assert_int_equal(pod_table__merge(pt, pl, 180.0), 0);
	assert_int_equal(pod_table__entries(pt), full);
	podlist__free(pl);
	podlist__free(none);
	pod_table__free(pt);
}

/* Keys 1 .. KMON_CONTAINER_KEYS-1: a full table refuses (the tracker counts
 * it), a freed key is reused, and a removed container is not found. */
static void test_key_space(void **state)
{
	struct containers *ct = containers__new();
	struct cgroup_info info;
	char id[72];
	bool is_new;
	uint32_t k, n = 0;

	(void)state;
	for (uint32_t i = 1; i < KMON_CONTAINER_KEYS; i++) {
		snprintf(id, sizeof(id), "%064x", i);
		info = container_info(id, CHECKOUT_UID);
		k = containers__add(ct, &info, 0, &is_new);
		assert_int_equal(k, i);
		assert_true(is_new);
	}
	assert_int_equal(containers__count(ct), KMON_CONTAINER_KEYS - 1);
	snprintf(id, sizeof(id), "%064x", KMON_CONTAINER_KEYS);
	info = container_info(id, CHECKOUT_UID);
	assert_int_equal(containers__add(ct, &info, 0, &is_new), 0);
	for (k = containers__next(ct, 0); k; k = containers__next(ct, k))
		n++;
	assert_int_equal(n, KMON_CONTAINER_KEYS - 1);

	containers__remove(ct, 77);
	assert_null(containers__get(ct, 77));
	assert_int_equal(containers__add(ct, &info, 5, &is_new), 77);
	assert_true(is_new);
	assert_int_equal(containers__get(ct, 77)->seen_at, 5);
	assert_string_equal(containers__get(ct, 77)->meta.container_id, id);
	snprintf(id, sizeof(id), "%064x", 77);
	info = container_info(id, CHECKOUT_UID);
	assert_int_equal(containers__add(ct, &info, 0, &is_new), 0);
	assert_null(containers__get(ct, 0));
	assert_null(containers__get(ct, KMON_CONTAINER_KEYS));
	containers__free(ct);
}

/* Churn: containers come and go in any order; every one still present is
 * found under its key, every one removed is new again (the index never
 * loses or keeps an entry it should not). */
static void test_churn(void **state)
{
	enum { N = 3000 };
	struct containers *ct = containers__new();
	static uint32_t key_of[N];
	struct cgroup_info info;
	uint32_t x = 12345, present = 0;
	char id[72];
	bool is_new;

	(void)state;
	memset(key_of, 0, sizeof(key_of));
	for (int round = 0; round < 20 * N; round++) {
		uint32_t i, k;

		x = x * 1103515245u + 12345u;
		i = (x >> 8) % N;
		snprintf(id, sizeof(id), "%064x", i * 2654435761u);
		/* Two pods per id: the pod uid is part of the identity. */
		info = container_info(id, i & 1 ? CHECKOUT_UID : LEDGER_UID);
		if (key_of[i] && (x & 0x10000)) {
			containers__remove(ct, key_of[i]);
			assert_null(containers__get(ct, key_of[i]));
			key_of[i] = 0;
			present--;
			continue;
		}
		k = containers__add(ct, &info, 0, &is_new);
		assert_int_not_equal(k, 0);
		assert_int_equal(is_new, key_of[i] == 0);
		if (key_of[i])
			assert_int_equal(k, key_of[i]);
		else
			present++;
		key_of[i] = k;
		assert_string_equal(containers__get(ct, k)->meta.container_id, id);
	}
	assert_int_equal(containers__count(ct), present);
	containers__free(ct);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_scan_missing_root),
		cmocka_unit_test(test_annotation),
		cmocka_unit_test(test_sandbox_needs_a_later_podlist),
		cmocka_unit_test(test_lookalike_is_not_annotated),
		cmocka_unit_test(test_pod_table_grace),
		cmocka_unit_test(test_key_space),
		cmocka_unit_test(test_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
