// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The OTLP logs encoder (consumers/forward/otlp.c): requests read back with a wire
 * reader written here independently (field numbers from opentelemetry-proto),
 * the JSON form parsed by cJSON, malformed batches refused, and the
 * partial-success reader fed hostile answers. The official decoder checks the
 * same encoder in tests/integration/test_forward_otlp.py. */
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
#include "consumers/forward/otlp.h"
#include "shm/meta.h"

#define BOOT_OFFSET 1700000000000000000ull
#define S(lit) (lit), sizeof(lit) - 1

/* ---- a minimal protobuf reader: the fields of one message ---- */

struct field {
	unsigned num, wt;
	uint64_t v;            /* varint / fixed64 */
	const uint8_t *p;      /* length-delimited */
	size_t n;
};

static uint64_t varint(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;
	int shift = 0;

	for (;;) {
		assert_true(*p < end);
		assert_true(shift < 64);
		v |= (uint64_t)(**p & 0x7f) << shift;
		if (!(*(*p)++ & 0x80))
			return v;
		shift += 7;
	}
}

/* All fields of the message [p, p+n) numbered num, in order. */
static size_t fields(const uint8_t *p, size_t n, unsigned num, struct field *out, size_t cap)
{
	const uint8_t *end = p + n;
	size_t k = 0;

	while (p < end) {
		uint64_t tag = varint(&p, end);
		struct field f = { .num = (unsigned)(tag >> 3), .wt = (unsigned)(tag & 7) };

		switch (f.wt) {
		case 0:
			f.v = varint(&p, end);
			break;
		case 1:
			assert_true(end - p >= 8);
			for (int i = 0; i < 8; i++)
				f.v |= (uint64_t)p[i] << (8 * i);
			p += 8;
			break;
		case 2:
			f.n = varint(&p, end);
			assert_true(f.n <= (size_t)(end - p));
			f.p = p;
			p += f.n;
			break;
		default:
			fail_msg("wire type %u", f.wt);
		}
		if (f.num == num) {
			assert_true(k < cap);
			out[k++] = f;
		}
	}
	return k;
}

static struct field one(const struct field *msg, unsigned num)
{
	struct field f[4];

	assert_int_equal(fields(msg->p, msg->n, num, f, 4), 1);
	return f[0];
}

static int streq(const struct field *f, const char *s)
{
	return f->n == strlen(s) && !memcmp(f->p, s, f->n);
}

/* KeyValue list (field num of msg) -> the AnyValue of key, or NULL-ish. */
static int attr(const struct field *msg, unsigned num, const char *key, struct field *value)
{
	struct field kv[64];
	size_t n = fields(msg->p, msg->n, num, kv, 64);

	for (size_t i = 0; i < n; i++) {
		struct field k = one(&kv[i], 1);

		if (streq(&k, key)) {
			*value = one(&kv[i], 2);
			return 1;
		}
	}
	return 0;
}

static int attr_str(const struct field *msg, unsigned num, const char *key, const char *want)
{
	struct field v, s;

	if (!attr(msg, num, key, &v))
		return want == NULL;
	s = one(&v, 1); /* AnyValue.string_value */
	return want && streq(&s, want);
}

static uint64_t attr_int(const struct field *msg, unsigned num, const char *key)
{
	struct field v;

	assert_true(attr(msg, num, key, &v));
	return one(&v, 3).v; /* AnyValue.int_value */
}

/* ---- inputs ---- */

static struct kmon_meta meta_of(const char *cid, const char *pod, const char *ns)
{
	struct kmon_meta m;

	memset(&m, 0, sizeof(m));
	m.key = 1;
	snprintf(m.container_id, sizeof(m.container_id), "%s", cid);
	snprintf(m.pod_uid, sizeof(m.pod_uid), "uid-%s", pod);
	snprintf(m.pod, sizeof(m.pod), "%s", pod);
	snprintf(m.namespace, sizeof(m.namespace), "%s", ns);
	snprintf(m.container, sizeof(m.container), "ctr");
	return m;
}

static struct kmon_event ev_of(uint32_t type, uint64_t ts, uint32_t pid, const char *comm)
{
	struct kmon_event e;

	memset(&e, 0, sizeof(e));
	e.timestamp = ts;
	e.pid = pid;
	e.tid = pid + 1;
	e.event_type = type;
	e.version = KMON_EVENT_VERSION;
	e.size = 4096;
	e.cgroup_id = 99;
	memcpy(e.comm, comm, strnlen(comm, sizeof(e.comm)));
	if (type == KMON_EV_PROCESS_EXEC) {
		snprintf(e.data.filename, sizeof(e.data.filename), "/bin/%s", comm);
	} else {
		e.data.mem.ptr = 0xffff888012345678ull;
		e.data.mem.call_site = 0xffffffff81234567ull;
	}
	return e;
}

struct batch {
	char buf[16384];
	size_t len;
	uint64_t n;
};

static void add(struct batch *b, const struct kmon_event *e, const struct kmon_meta *m)
{
	int n = otlp__item(b->buf + b->len, sizeof(b->buf) - b->len, e, m);

	assert_true(n > 0);
	b->len += (size_t)n;
	b->n++;
}

/* Containers interleaved (a, b, a, host): grouped per container, arrival
 * order kept within one, every field where the spec puts it. */
static void test_protobuf_groups_and_fields(void **state)
{
	struct otlp_encoder *e = otlp_encoder__new(OTLP_PROTOBUF, "1.2.3", BOOT_OFFSET);
	struct kmon_meta ma = meta_of("aaaa", "pod-a", "ns-a"), mb = meta_of("bbbb", "pod-b", "ns-b");
	struct kmon_event e1 = ev_of(KMON_EV_PROCESS_EXEC, 1000, 10, "true");
	struct kmon_event e2 = ev_of(KMON_EV_MEMORY_ALLOC, 2000, 20, "sh");
	struct kmon_event e3 = ev_of(KMON_EV_MEMORY_FREE, 3000, 10, "\xff\xfe" "bad");
	struct kmon_event e4 = ev_of(KMON_EV_PROCESS_EXEC, 4000, 30, "host");
	static struct batch b;
	struct field req, rl[8], sl, lr[8], scope, res, body, f;
	char *out;
	size_t out_len;

	(void)state;
	assert_non_null(e);
	assert_int_equal(otlp_encoder__set_node(e, "node-1"), 0);
	assert_string_equal(otlp_encoder__content_type(e), "application/x-protobuf");
	e3.flags = KMON_EVF_OWNER_CHARGED | KMON_EVF_FREED_ELSEWHERE;
	e3.data.free.alloc_call_site = 0xffffffff81000001ull;
	e3.data.free.alloc_timestamp = 900;
	e3.data.free.owner_pid = 10;
	b.len = b.n = 0;
	add(&b, &e1, &ma);
	add(&b, &e2, &mb);
	add(&b, &e3, &ma);
	add(&b, &e4, NULL);
	assert_int_equal(otlp_encoder__encode(e, b.buf, b.len, b.n, &out, &out_len), 0);

	req.p = (const uint8_t *)out;
	req.n = out_len;
	/* ExportLogsServiceRequest.resource_logs = 1: host (no names) sorts
	 * first, then aaaa, then bbbb. */
	assert_int_equal(fields(req.p, req.n, 1, rl, 8), 3);

	res = one(&rl[0], 1);
	assert_true(attr_str(&res, 1, "service.name", "kmon"));
	assert_true(attr_str(&res, 1, "k8s.node.name", "node-1"));
	assert_true(attr_str(&res, 1, "container.id", NULL));
	assert_true(attr_str(&res, 1, "k8s.pod.name", NULL));

	res = one(&rl[1], 1); /* ResourceLogs.resource = 1 */
	assert_true(attr_str(&res, 1, "container.id", "aaaa"));
	assert_true(attr_str(&res, 1, "k8s.pod.name", "pod-a"));
	assert_true(attr_str(&res, 1, "k8s.namespace.name", "ns-a"));
	assert_true(attr_str(&res, 1, "k8s.pod.uid", "uid-pod-a"));
	assert_true(attr_str(&res, 1, "k8s.container.name", "ctr"));
	assert_true(attr_str(&res, 1, "k8s.node.name", "node-1"));
	sl = one(&rl[1], 2);    /* ResourceLogs.scope_logs = 2 */
	scope = one(&sl, 1);    /* ScopeLogs.scope = 1 */
	f = one(&scope, 1);
	assert_true(streq(&f, "kmon"));
	f = one(&scope, 2);
	assert_true(streq(&f, "1.2.3"));
	assert_int_equal(fields(sl.p, sl.n, 2, lr, 8), 2); /* log_records = 2 */

	/* e1: exec */
	assert_int_equal(one(&lr[0], 1).v, BOOT_OFFSET + 1000); /* time_unix_nano */
	assert_int_equal(one(&lr[0], 1).wt, 1);                  /* fixed64 */
	assert_true(one(&lr[0], 11).v >= BOOT_OFFSET);          /* observed */
	assert_int_equal(one(&lr[0], 2).v, 9);                   /* SEVERITY_NUMBER_INFO */
	f = one(&lr[0], 3);
	assert_true(streq(&f, "INFO"));
	body = one(&lr[0], 5);
	f = one(&body, 1);
	assert_true(streq(&f, "process_exec"));
	assert_true(attr_str(&lr[0], 6, "kmon.type", "process_exec"));
	assert_true(attr_str(&lr[0], 6, "kmon.filename", "/bin/true"));
	assert_true(attr_str(&lr[0], 6, "kmon.comm", "true"));
	assert_int_equal(attr_int(&lr[0], 6, "process.pid"), 10);
	assert_int_equal(attr_int(&lr[0], 6, "thread.id"), 11);
	assert_int_equal(attr_int(&lr[0], 6, "kmon.timestamp"), 1000);
	assert_int_equal(attr_int(&lr[0], 6, "kmon.size"), 4096);
	assert_int_equal(attr_int(&lr[0], 6, "kmon.cgroup_id"), 99);
	assert_true(attr_str(&lr[0], 6, "kmon.ptr", NULL));

	/* e3: a free charged to its owner, comm not UTF-8 */
	assert_int_equal(one(&lr[1], 1).v, BOOT_OFFSET + 3000);
	assert_true(attr_str(&lr[1], 6, "kmon.comm", "\xef\xbf\xbd\xef\xbf\xbd" "bad"));
	assert_true(attr_str(&lr[1], 6, "kmon.ptr", "0xffff888012345678"));
	assert_true(attr_str(&lr[1], 6, "kmon.call_site", "0xffffffff81234567"));
	assert_true(attr_str(&lr[1], 6, "kmon.alloc_call_site", "0xffffffff81000001"));
	assert_int_equal(attr_int(&lr[1], 6, "kmon.alloc_timestamp"), 900);
	assert_int_equal(attr_int(&lr[1], 6, "kmon.owner_pid"), 10);
	assert_true(attr(&lr[1], 6, "kmon.freed_elsewhere", &f));
	assert_int_equal(one(&f, 2).v, 1); /* AnyValue.bool_value */
	assert_true(attr_str(&lr[1], 6, "kmon.filename", NULL));

	res = one(&rl[2], 1);
	assert_true(attr_str(&res, 1, "container.id", "bbbb"));
	sl = one(&rl[2], 2);
	assert_int_equal(fields(sl.p, sl.n, 2, lr, 8), 1);
	assert_true(attr_str(&lr[0], 6, "kmon.type", "memory_alloc"));
	free(out);
	otlp_encoder__free(e);
}

/* The JSON mapping: camelCase keys, 64-bit integers as strings, the same
 * grouping. */
static void test_json_mapping(void **state)
{
	struct otlp_encoder *e = otlp_encoder__new(OTLP_JSON, "1.2.3", BOOT_OFFSET);
	struct kmon_meta ma = meta_of("aaaa", "pod-\"a\"", "ns-a");
	struct kmon_event e1 = ev_of(KMON_EV_PROCESS_EXEC, 1000, 10, "tr\x01" "ue");
	struct kmon_event e2 = ev_of(KMON_EV_SLAB_ALLOC, 2000, 20, "sh");
	static struct batch b;
	cJSON *root, *rls, *rl, *lrs, *lr, *a;
	char *out, *txt;
	size_t out_len;
	int i;

	(void)state;
	assert_string_equal(otlp_encoder__content_type(e), "application/json");
	snprintf(e2.data.mem.cache, sizeof(e2.data.mem.cache), "kmalloc-64");
	b.len = b.n = 0;
	add(&b, &e1, &ma);
	add(&b, &e2, &ma);
	assert_int_equal(otlp_encoder__encode(e, b.buf, b.len, b.n, &out, &out_len), 0);
	txt = strndup(out, out_len);
	root = cJSON_Parse(txt);
	assert_non_null(root);
	rls = cJSON_GetObjectItem(root, "resourceLogs");
	assert_int_equal(cJSON_GetArraySize(rls), 1);
	rl = cJSON_GetArrayItem(rls, 0);
	a = cJSON_GetObjectItem(cJSON_GetObjectItem(rl, "resource"), "attributes");
	i = 0;
	for (cJSON *kv = a->child; kv; kv = kv->next) {
		const char *k = cJSON_GetObjectItem(kv, "key")->valuestring;
		const char *v = cJSON_GetObjectItem(cJSON_GetObjectItem(kv, "value"),
						    "stringValue")->valuestring;

		if (!strcmp(k, "k8s.pod.name")) {
			assert_string_equal(v, "pod-\"a\"");
			i++;
		}
	}
	assert_int_equal(i, 1);
	lrs = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rl, "scopeLogs"), 0),
				  "logRecords");
	assert_int_equal(cJSON_GetArraySize(lrs), 2);
	lr = cJSON_GetArrayItem(lrs, 0);
	assert_string_equal(cJSON_GetObjectItem(lr, "timeUnixNano")->valuestring,
			    "1700000000000001000");
	assert_int_equal(cJSON_GetObjectItem(lr, "severityNumber")->valueint, 9);
	for (cJSON *kv = cJSON_GetObjectItem(lr, "attributes")->child; kv; kv = kv->next) {
		const char *k = cJSON_GetObjectItem(kv, "key")->valuestring;
		cJSON *v = cJSON_GetObjectItem(kv, "value");

		if (!strcmp(k, "process.pid"))
			assert_string_equal(cJSON_GetObjectItem(v, "intValue")->valuestring, "10");
		if (!strcmp(k, "kmon.comm"))
			assert_string_equal(cJSON_GetObjectItem(v, "stringValue")->valuestring,
					    "tr\x01ue");
		if (!strcmp(k, "kmon.filename_truncated"))
			assert_true(cJSON_IsFalse(cJSON_GetObjectItem(v, "boolValue")));
	}
	lr = cJSON_GetArrayItem(lrs, 1);
	i = 0;
	for (cJSON *kv = cJSON_GetObjectItem(lr, "attributes")->child; kv; kv = kv->next)
		if (!strcmp(cJSON_GetObjectItem(kv, "key")->valuestring, "kmon.cache")) {
			assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(kv, "value"),
								"stringValue")->valuestring,
					    "kmalloc-64");
			i++;
		}
	assert_int_equal(i, 1);
	cJSON_Delete(root);
	free(txt);
	free(out);
	otlp_encoder__free(e);
}

static void test_malformed_batches_refused(void **state)
{
	struct otlp_encoder *e = otlp_encoder__new(OTLP_PROTOBUF, "1", 0);
	struct kmon_meta ma = meta_of("aaaa", "p", "n");
	struct kmon_event e1 = ev_of(KMON_EV_PROCESS_EXEC, 1, 1, "x");
	static struct batch b;
	char *out = NULL;
	size_t out_len;
	char small[64];

	(void)state;
	b.len = b.n = 0;
	add(&b, &e1, &ma);
	add(&b, &e1, &ma);
	/* More items claimed than there are, fewer, a cut item, none. */
	assert_int_equal(otlp_encoder__encode(e, b.buf, b.len, 3, &out, &out_len), -EINVAL);
	assert_int_equal(otlp_encoder__encode(e, b.buf, b.len, 1, &out, &out_len), -EINVAL);
	assert_int_equal(otlp_encoder__encode(e, b.buf, b.len - 1, 2, &out, &out_len), -EINVAL);
	assert_int_equal(otlp_encoder__encode(e, b.buf, 0, 0, &out, &out_len), -EINVAL);
	assert_null(out);
	assert_int_equal(otlp__item(small, sizeof(small), &e1, &ma), -ENOSPC);
	otlp_encoder__free(e);
}

/* The answer is a network peer's: cut short, lying, or garbage, it never
 * reads past what it was given and never counts nonsense. */
static void test_partial_success_answers(void **state)
{
	struct otlp_encoder *p = otlp_encoder__new(OTLP_PROTOBUF, "1", 0);
	struct otlp_encoder *j = otlp_encoder__new(OTLP_JSON, "1", 0);
	/* partial_success { rejected_log_records: 5, error_message: "no" } */
	static const char ok[] = "\x0a\x06\x08\x05\x12\x02no";
	/* the same, cut inside the error message */
	static const char cut[] = "\x0a\x06\x08\x05\x12";
	/* rejected_log_records = -1 (ten-byte varint) */
	static const char neg[] = "\x0a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
	/* a length far past the end, then nothing */
	static const char lie[] = "\x0a\xff\xff\xff\xff\x0f";
	/* an unterminated varint */
	static const char unterminated[] = "\x0a\x02\x08\x80";
	/* an unknown field first (fixed32 and fixed64), then the answer */
	static const char skip[] = "\x15\x01\x02\x03\x04\x19\x01\x02\x03\x04\x05\x06\x07\x08"
				   "\x0a\x02\x08\x07";
	static const char bad_wt[] = "\x0f\x01";
	char big[200];

	(void)state;
	assert_int_equal(otlp_encoder__rejected(p, ok, sizeof(ok) - 1), 5);
	assert_int_equal(otlp_encoder__rejected(p, cut, sizeof(cut) - 1), 5);
	assert_int_equal(otlp_encoder__rejected(p, neg, sizeof(neg) - 1), 0);
	assert_int_equal(otlp_encoder__rejected(p, lie, sizeof(lie) - 1), 0);
	assert_int_equal(otlp_encoder__rejected(p, unterminated, sizeof(unterminated) - 1), 0);
	assert_int_equal(otlp_encoder__rejected(p, skip, sizeof(skip) - 1), 7);
	assert_int_equal(otlp_encoder__rejected(p, bad_wt, sizeof(bad_wt) - 1), 0);
	assert_int_equal(otlp_encoder__rejected(p, "", 0), 0);
	memset(big, 0x80, sizeof(big));
	assert_int_equal(otlp_encoder__rejected(p, big, sizeof(big)), 0);

	assert_int_equal(otlp_encoder__rejected(j, S("{\"partialSuccess\":{\"rejectedLogRecords\":"
						     "\"7\",\"errorMessage\":\"x\"}}")), 7);
	assert_int_equal(otlp_encoder__rejected(j, S("{\"partialSuccess\":{\"rejectedLogRecords\""
						     ": 12}}")), 12);
	assert_int_equal(otlp_encoder__rejected(j, S("{}")), 0);
	assert_int_equal(otlp_encoder__rejected(j, S("{\"partialSuccess\":{\"rejectedLogRecords\"")),
			 0);
	memset(big, '9', sizeof(big));
	memcpy(big, "\"rejectedLogRecords\":", 21);
	/* Absurd: reading stops at 2^60, it never wraps round to a small count. */
	assert_true(otlp_encoder__rejected(j, big, sizeof(big)) >= (1ull << 60));
	otlp_encoder__free(p);
	otlp_encoder__free(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_protobuf_groups_and_fields),
		cmocka_unit_test(test_json_mapping),
		cmocka_unit_test(test_malformed_batches_refused),
		cmocka_unit_test(test_partial_success_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
