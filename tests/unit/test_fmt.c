// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The consumers' formatters: event JSON (escaping, exact fields), the
 * Prometheus text writer, and the aggregation table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <linux/types.h>

#include "bpf/kmon_event.h"
#include "consumers/aggregate/aggtable.h"
#include "shm/common/event_json.h"
#include "shm/common/metrics_text.h"
#include "shm/meta.h"
#include "kmeta.h"

static struct kmon_event exec_ev(const char *comm, size_t comm_len, const char *file,
				 size_t file_len)
{
	struct kmon_event e;

	memset(&e, 0, sizeof(e));
	e.timestamp = 1500000000123ull;
	e.pid = 42;
	e.tid = 43;
	e.event_type = KMON_EV_PROCESS_EXEC;
	e.version = KMON_EVENT_VERSION;
	e.cgroup_id = 777;
	memcpy(e.comm, comm, comm_len);
	memcpy(e.data.filename, file, file_len);
	return e;
}

static cJSON *parse_line(const char *buf, int n)
{
	char *copy;
	cJSON *j;

	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	copy = strndup(buf, (size_t)n - 1);
	j = cJSON_Parse(copy);
	free(copy);
	assert_non_null(j);
	return j;
}

static const char *str(cJSON *j, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);

	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static double num(cJSON *j, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void test_json_exec_fields(void **state)
{
	struct kmon_event e = exec_ev("bash", 4, "/bin/true", 9);
	struct kmon_meta m;
	char buf[2048];
	cJSON *j;
	int n;
	const char *order[] = { "type", "timestamp", "time", "pid", "tid", "comm", "size",
				"filename", "filename_truncated", "cgroup_id", "container_id",
				"pod_uid", "pod",
				"namespace", "container", "node" };
	cJSON *it;
	unsigned i = 0;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.key = 1;
	strcpy(m.container_id, "abc");
	strcpy(m.pod_uid, "uid-1");
	strcpy(m.pod, "web-0");
	strcpy(m.namespace, "shop");
	strcpy(m.container, "nginx");
	/* offset: 1 s -> time is 1970-01-01T00:25:01.000000123Z (1500 s + 1 s) */
	n = event_json__write(buf, sizeof(buf), &e, &m, "node-1", 1000000000ull);
	j = parse_line(buf, n);
	assert_string_equal(str(j, "type"), "process_exec");
	assert_true(num(j, "timestamp") == 1500000000123.0);
	assert_string_equal(str(j, "time"), "1970-01-01T00:25:01.000000123Z");
	assert_true(num(j, "pid") == 42);
	assert_true(num(j, "tid") == 43);
	assert_string_equal(str(j, "comm"), "bash");
	assert_string_equal(str(j, "filename"), "/bin/true");
	assert_string_equal(str(j, "pod"), "web-0");
	assert_string_equal(str(j, "namespace"), "shop");
	assert_string_equal(str(j, "container"), "nginx");
	assert_string_equal(str(j, "container_id"), "abc");
	assert_string_equal(str(j, "node"), "node-1");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "filename_truncated")));
	assert_null(cJSON_GetObjectItem(j, "ptr"));
	cJSON_ArrayForEach(it, j) {
		assert_true(i < sizeof(order) / sizeof(order[0]));
		assert_string_equal(it->string, order[i++]);
	}
	assert_int_equal(i, sizeof(order) / sizeof(order[0]));
	cJSON_Delete(j);
}

static void test_json_memory_and_no_meta(void **state)
{
	struct kmon_event e = exec_ev("kworker", 7, "", 0);
	char buf[2048];
	cJSON *j;
	int n;

	(void)state;
	e.event_type = KMON_EV_MEMORY_ALLOC;
	e.size = 4096;
	e.data.mem.ptr = 0xffff888100000000ull;
	e.data.mem.call_site = 0xffffffff81000abcull;
	n = event_json__write(buf, sizeof(buf), &e, NULL, "", 0);
	j = parse_line(buf, n);
	assert_string_equal(str(j, "type"), "memory_alloc");
	assert_string_equal(str(j, "ptr"), "0xffff888100000000");
	assert_string_equal(str(j, "call_site"), "0xffffffff81000abc");
	assert_true(num(j, "size") == 4096);
	assert_string_equal(str(j, "pod"), "");
	assert_string_equal(str(j, "container_id"), "");
	assert_null(cJSON_GetObjectItem(j, "filename"));
	assert_null(cJSON_GetObjectItem(j, "filename_truncated"));
	cJSON_Delete(j);
}

/* v2: a slab event names its cache, a free charged to its owner says so
 * (and where it was allocated), an uncharged free adds nothing, and an
 * oom_kill carries its payload instead of ptr/call_site. */
static void test_json_ledger_fields(void **state)
{
	struct kmon_event e = exec_ev("kworker/0:1", 7, "", 0);
	char buf[2048];
	cJSON *j;
	int n;

	(void)state;
	e.event_type = KMON_EV_SLAB_FREE;
	memset(&e.data, 0, sizeof(e.data));
	e.flags = KMON_EVF_SIZE_KNOWN | KMON_EVF_OWNER_CHARGED | KMON_EVF_FREED_ELSEWHERE;
	e.size = 192;
	e.data.free.ptr = 0xffff888100000040ull;
	e.data.free.call_site = 0xffffffff81000100ull;
	e.data.free.alloc_call_site = 0xffffffff81000200ull;
	e.data.free.alloc_timestamp = 123456789;
	e.data.free.owner_pid = 4242;
	memcpy(e.data.free.cache, "dentry", 6);
	n = event_json__write(buf, sizeof(buf), &e, NULL, "", 0);
	j = parse_line(buf, n);
	assert_string_equal(str(j, "type"), "slab_free");
	assert_string_equal(str(j, "cache"), "dentry");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "owner_charged")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "charged_elsewhere")));
	assert_true(num(j, "owner_pid") == 4242);
	assert_string_equal(str(j, "alloc_call_site"), "0xffffffff81000200");
	assert_true(num(j, "alloc_timestamp") == 123456789.0);
	cJSON_Delete(j);

	/* A 24-byte cache name with no NUL stops at the payload's end. */
	e.event_type = KMON_EV_SLAB_ALLOC;
	e.flags = 0;
	memset(e.data.mem.cache, 'k', sizeof(e.data.mem.cache));
	e.container_key = 0x41414141;
	n = event_json__write(buf, sizeof(buf), &e, NULL, "", 0);
	j = parse_line(buf, n);
	assert_int_equal(strlen(str(j, "cache")), KMON_CACHE_NAME_LEN);
	assert_null(cJSON_GetObjectItem(j, "owner_charged"));
	cJSON_Delete(j);

	e.event_type = KMON_EV_MEMORY_FREE;
	e.flags = 0;
	n = event_json__write(buf, sizeof(buf), &e, NULL, "", 0);
	j = parse_line(buf, n);
	assert_null(cJSON_GetObjectItem(j, "owner_charged"));
	assert_null(cJSON_GetObjectItem(j, "cache"));
	cJSON_Delete(j);

	e.event_type = KMON_EV_OOM_KILL;
	memset(&e.data, 0, sizeof(e.data));
	e.data.oom.memcg_id = 77;
	e.data.oom.limit_pages = 8192;
	e.data.oom.rss_pages = 8000;
	e.data.oom.killer_pid = 99;
	n = event_json__write(buf, sizeof(buf), &e, NULL, "", 0);
	j = parse_line(buf, n);
	assert_string_equal(str(j, "type"), "oom_kill");
	assert_true(num(j, "memcg_id") == 77 && num(j, "limit_pages") == 8192);
	assert_true(num(j, "rss_pages") == 8000 && num(j, "killer_pid") == 99);
	assert_null(cJSON_GetObjectItem(j, "ptr"));
	cJSON_Delete(j);
}

/* The kernel's TRUNCATED flag is visible, and a payload with no NUL at all
 * (a hostile or newer record) is read to its end, never past it. */
static void test_json_truncated_filename(void **state)
{
	char full[KMON_FILENAME_LEN];
	struct kmon_event e;
	char buf[2048];
	cJSON *j;
	int n;

	(void)state;
	memset(full, 'x', sizeof(full));
	e = exec_ev("sh", 2, full, sizeof(full));
	e.flags = KMON_EVF_TRUNCATED;
	e.container_key = 0x41414141; /* the bytes right after the payload */
	n = event_json__write(buf, sizeof(buf), &e, NULL, "", 0);
	j = parse_line(buf, n);
	assert_int_equal(strlen(str(j, "filename")), KMON_FILENAME_LEN);
	assert_null(strchr(str(j, "filename"), 'A'));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "filename_truncated")));
	cJSON_Delete(j);
}

static void test_json_escaping(void **state)
{
	/* A 16-byte comm with no NUL, quotes, backslash, control chars, invalid
	 * and valid UTF-8 in the filename. */
	static const char comm[16] = { 'a', '"', 'b', '\\', 'c', '\n', 'd', '\x01', 'e', 'f',
				       'g', 'h', 'i', 'j', 'k', 'l' };
	static const char file[] = "/x/\xff\xfe/caf\xc3\xa9/\xe2\x82/\x7f/\xed\xa0\x80";
	struct kmon_event e = exec_ev(comm, 16, file, sizeof(file) - 1);
	char buf[2048];
	cJSON *j;
	int n;

	(void)state;
	n = event_json__write(buf, sizeof(buf), &e, NULL, "n\"ode", 0);
	j = parse_line(buf, n);
	assert_string_equal(str(j, "comm"), "a\"b\\c\nd\x01" "efghijkl");
	assert_string_equal(str(j, "filename"),
			    "/x/\xef\xbf\xbd\xef\xbf\xbd/caf\xc3\xa9/\xef\xbf\xbd\xef\xbf\xbd/"
			    "\x7f/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	assert_string_equal(str(j, "node"), "n\"ode");
	assert_non_null(strstr(buf, "\\u0001"));
	cJSON_Delete(j);
}

static void test_json_nospc(void **state)
{
	struct kmon_event e = exec_ev("bash", 4, "/bin/true", 9);
	char buf[2048];
	int full, n;
	size_t cap;

	(void)state;
	full = event_json__write(buf, sizeof(buf), &e, NULL, "node", 0);
	assert_true(full > 0);
	for (cap = 0; cap < (size_t)full; cap += 7) {
		memset(buf, 'Z', sizeof(buf));
		n = event_json__write(buf, cap, &e, NULL, "node", 0);
		assert_int_equal(n, -ENOSPC);
		assert_int_equal(buf[cap], 'Z'); /* nothing written past cap */
	}
	assert_int_equal(event_json__write(buf, (size_t)full, &e, NULL, "node", 0), full);
}

/* Every string at its maximum and every byte escaped still fits the bound. */
static void test_json_worst_case_fits(void **state)
{
	struct kmon_event e;
	struct kmon_meta m;
	char node[254], *buf = malloc(KMON_EVENT_JSON_MAX);
	cJSON *j;
	int n;

	(void)state;
	assert_non_null(buf);
	memset(&e, 0x01, sizeof(e));
	e.event_type = KMON_EV_PROCESS_EXEC;
	e.timestamp = UINT64_MAX / 2;
	memset(&m, 0x01, sizeof(m));
	m.container_id[sizeof(m.container_id) - 1] = m.pod_uid[sizeof(m.pod_uid) - 1] = 0;
	m.pod[sizeof(m.pod) - 1] = m.namespace[sizeof(m.namespace) - 1] = 0;
	m.container[sizeof(m.container) - 1] = m.runtime[sizeof(m.runtime) - 1] = 0;
	memset(node, 0x01, sizeof(node) - 1);
	node[sizeof(node) - 1] = 0;
	n = event_json__write(buf, KMON_EVENT_JSON_MAX, &e, &m, node, UINT64_MAX / 2);
	j = parse_line(buf, n);
	cJSON_Delete(j);
	free(buf);
}

static void test_metrics_text(void **state)
{
	struct metrics_text *m = metrics_text__new();
	const char *ln[] = { "pod", "filename" };
	const char *lv[] = { "a\"b", "c\\d\ne" };
	const char *bad_ln[] = { "0bad" };
	const char *data;
	size_t len;

	(void)state;
	assert_non_null(m);
	assert_int_equal(metrics_text__family(m, "kmon_x_total", "counter", "Help with \\ and\nline"), 0);
	assert_int_equal(metrics_text__family(m, "kmon_x_total", "counter", "again"), 0);
	assert_int_equal(metrics_text__sample_u64(m, "kmon_x_total", ln, lv, 2, 7), 0);
	assert_int_equal(metrics_text__sample(m, "kmon_x_total", NULL, NULL, 0, 0.5), 0);
	assert_int_equal(metrics_text__family(m, "9bad", "counter", "x"), -EINVAL);
	assert_int_equal(metrics_text__family(m, "kmon_y", "histogram", "x"), -EINVAL);
	assert_int_equal(metrics_text__sample(m, "bad-name", NULL, NULL, 0, 1), -EINVAL);
	assert_int_equal(metrics_text__sample(m, "kmon_x_total", bad_ln, lv, 1, 1), -EINVAL);
	data = metrics_text__data(m, &len);
	assert_string_equal(data,
			    "# HELP kmon_x_total Help with \\\\ and\\nline\n"
			    "# TYPE kmon_x_total counter\n"
			    "kmon_x_total{pod=\"a\\\"b\",filename=\"c\\\\d\\ne\"} 7\n"
			    "kmon_x_total 0.5\n");
	assert_int_equal(len, strlen(data));
	metrics_text__free(m);
}

static void test_aggtable(void **state)
{
	struct aggtable *t = aggtable__new(3, 2);
	struct kmon_meta a = meta(1, "shop", "web-0", "nginx"), b = meta(2, "shop", "web-1", "nginx");
	struct kmon_meta a2 = meta(3, "shop", "web-0", "nginx"); /* restarted: same labels */
	struct kmon_event e = exec_ev("sh", 2, "/bin/ls", 7);
	struct metrics_text *m = metrics_text__new();
	const char *data;
	int i;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < 3; i++)
		aggtable__add(t, &e, &a, 10);
	aggtable__add(t, &e, &a2, 10);
	e = exec_ev("sh", 2, "/bin/cat", 8);
	aggtable__add(t, &e, &a, 10);
	e = exec_ev("sh", 2, "/bin/xx", 7);
	aggtable__add(t, &e, &a, 10); /* replaces the smallest of the top-2 */
	e.event_type = KMON_EV_MEMORY_ALLOC;
	e.size = 100;
	aggtable__add(t, &e, &b, 11);
	aggtable__add(t, &e, &b, 11);
	e.event_type = KMON_EV_MEMORY_FREE;
	e.flags = KMON_EVF_SIZE_KNOWN;
	e.size = 100;
	aggtable__add(t, &e, &b, 11);
	e.flags = 0;
	e.size = 0;
	aggtable__add(t, &e, &b, 11); /* unknown size: counted, bytes not */
	aggtable__add(t, &e, NULL, 12); /* no container: empty labels */
	assert_int_equal(aggtable__series(t), 3);
	aggtable__add(t, &e, &(struct kmon_meta){ .key = 9, .namespace = "x" }, 12);
	assert_int_equal(aggtable__overflow(t), 1);
	assert_int_equal(aggtable__write_metrics(t, m), 0);
	data = metrics_text__data(m, NULL);
	assert_non_null(strstr(data, "kmon_exec_total{namespace=\"shop\",pod=\"web-0\",container=\"nginx\"} 6\n"));
	assert_non_null(strstr(data, "kmon_exec_filename_total{namespace=\"shop\",pod=\"web-0\",container=\"nginx\",filename=\"/bin/ls\"} 4\n"));
	assert_non_null(strstr(data, "filename=\"/bin/xx\"} 2\n"));
	assert_null(strstr(data, "/bin/cat"));
	assert_non_null(strstr(data, "kmon_alloc_bytes_total{namespace=\"shop\",pod=\"web-1\",container=\"nginx\"} 200\n"));
	assert_non_null(strstr(data, "kmon_free_total{namespace=\"shop\",pod=\"web-1\",container=\"nginx\"} 2\n"));
	assert_non_null(strstr(data, "kmon_free_bytes_total{namespace=\"shop\",pod=\"web-1\",container=\"nginx\"} 100\n"));
	assert_non_null(strstr(data, "kmon_outstanding_bytes{namespace=\"shop\",pod=\"web-1\",container=\"nginx\"} 100\n"));
	assert_non_null(strstr(data, "kmon_free_total{namespace=\"\",pod=\"\",container=\"\"} 1\n"));
	assert_non_null(strstr(data, "kmon_series_overflow_total 1\n"));
	/* Expiry: web-0 (last seen at 10) goes at 10 + 300, the others stay. */
	assert_int_equal(aggtable__expire(t, 310.5, 300), 1);
	assert_int_equal(aggtable__series(t), 2);
	metrics_text__reset(m);
	aggtable__write_metrics(t, m);
	assert_null(strstr(metrics_text__data(m, NULL), "web-0"));
	/* Labels change under a cached key: the cache is dropped. */
	a = meta(2, "shop", "web-1-renamed", "nginx");
	aggtable__meta_changed(t, 2);
	aggtable__add(t, &e, &a, 320);
	metrics_text__reset(m);
	aggtable__write_metrics(t, m);
	assert_non_null(strstr(metrics_text__data(m, NULL), "web-1-renamed"));
	metrics_text__free(m);
	aggtable__free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_exec_fields),
		cmocka_unit_test(test_json_memory_and_no_meta),
		cmocka_unit_test(test_json_truncated_filename),
		cmocka_unit_test(test_json_ledger_fields),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_json_nospc),
		cmocka_unit_test(test_json_worst_case_fits),
		cmocka_unit_test(test_metrics_text),
		cmocka_unit_test(test_aggtable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
