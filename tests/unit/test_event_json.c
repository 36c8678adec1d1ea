// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The table-driven event JSON encoder against the encoder it replaced
 * (tests/support/event_json_ref.c), byte for byte: on real events captured
 * from the agent (tests/fixtures/events-real.bin, see capture_events.py) with
 * real pods' metadata (tests/fixtures/podlists, real kubelet answers), on
 * hostile bytes in every string, and through the per-container cache,
 * including its invalidation. cJSON parses every line.
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

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <linux/types.h>

#include "bpf/kmon_event.h"
#include "shm/common/event_json.h"
#include "shm/meta.h"
#include "tests/support/event_json_ref.h"
#include "slurp.h"

#define MAX_METAS 64

static struct kmon_meta metas[MAX_METAS];
static unsigned n_metas;

static void copy_str(char *dst, size_t cap, const cJSON *v)
{
	if (cJSON_IsString(v) && v->valuestring) {
		const char *s = v->valuestring, *sep = strstr(s, "://");

		if (sep && cap == KMON_META_ID_MAX)
			s = sep + 3; /* containerd://<id> -> <id>, as the tracker keeps it */
		strncpy(dst, s, cap - 1);
	}
}

/* One kmon_meta per container status of the real pod lists. */
static void load_metas(const char *file)
{
	char path[512];
	size_t len;
	char *text;
	cJSON *root, *pod, *st;

	snprintf(path, sizeof(path), "%s/podlists/%s", KMON_FIXTURES, file);
	text = slurp(path, &len);
	root = cJSON_Parse(text);
	assert_non_null(root);
	cJSON_ArrayForEach(pod, cJSON_GetObjectItem(root, "items")) {
		cJSON *md = cJSON_GetObjectItem(pod, "metadata");
		cJSON *sts = cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "status"),
						 "containerStatuses");

		cJSON_ArrayForEach(st, sts) {
			struct kmon_meta *m;

			if (n_metas >= MAX_METAS)
				break;
			m = &metas[n_metas];
			memset(m, 0, sizeof(*m));
			m->key = n_metas + 1;
			copy_str(m->pod, sizeof(m->pod), cJSON_GetObjectItem(md, "name"));
			copy_str(m->namespace, sizeof(m->namespace),
				 cJSON_GetObjectItem(md, "namespace"));
			copy_str(m->pod_uid, sizeof(m->pod_uid), cJSON_GetObjectItem(md, "uid"));
			copy_str(m->container, sizeof(m->container), cJSON_GetObjectItem(st, "name"));
			copy_str(m->container_id, sizeof(m->container_id),
				 cJSON_GetObjectItem(st, "containerID"));
			n_metas++;
		}
	}
	cJSON_Delete(root);
	free(text);
}

static int setup(void **state)
{
	(void)state;
	load_metas("spire-pod_list.json");
	load_metas("spire-crio_pod_list.json");
	load_metas("otel-kubeletstats-pods.json");
	return n_metas >= 10 ? 0 : -1;
}

static void parse_ok(const char *line, int n)
{
	char *copy;
	cJSON *j;

	assert_true(n > 0);
	assert_int_equal(line[n - 1], '\n');
	copy = strndup(line, (size_t)n - 1);
	j = cJSON_Parse(copy);
	if (!j)
		fail_msg("not JSON: %s", copy);
	cJSON_Delete(j);
	free(copy);
}

/* The fields the old encoder wrote: v1 types (and unknown ones) and frees
 * not charged to an owner, with raw addresses. v2 types, charged frees and
 * call sites named through the symbol table (ADDR_OPAQUE) are written in ways
 * it never wrote (tests/unit/test_fmt.c and test_symbols.c check those). */
static bool old_contract(const struct kmon_event *ev)
{
	uint32_t t = ev->event_type;

	if (t == KMON_EV_SLAB_ALLOC || t == KMON_EV_SLAB_FREE || t == KMON_EV_OOM_KILL ||
	    (ev->flags & KMON_EVF_ADDR_OPAQUE))
		return false;
	return !(t == KMON_EV_MEMORY_FREE && (ev->flags & KMON_EVF_OWNER_CHARGED));
}

/* old (where it applies), new and new-through-cache give the same bytes;
 * returns the length. */
static int same(struct event_json_cache *c, const struct kmon_event *ev,
		const struct kmon_meta *m, const char *node, uint64_t off)
{
	static char a[KMON_EVENT_JSON_MAX], b[KMON_EVENT_JSON_MAX], d[KMON_EVENT_JSON_MAX];
	int na = old_contract(ev) ? event_json_ref__write(a, sizeof(a), ev, m, node, off)
				  : event_json__write(a, sizeof(a), ev, m, node, off);
	int nb = event_json__write(b, sizeof(b), ev, m, node, off);
	int nd = event_json__write_cached(c, d, sizeof(d), ev, m, node, off, NULL);

	if (na != nb || na != nd)
		fail_msg("lengths %d %d %d:\nold %.*s\nnew %.*s", na, nb, nd, na, a, nb, b);
	if (na > 0) {
		if (memcmp(a, b, (size_t)na) || memcmp(a, d, (size_t)na))
			fail_msg("differ:\nold %.*s\nnew %.*s\ncache %.*s", na, a, nb, b, nd, d);
		parse_ok(b, nb);
	}
	return na;
}

static void test_real_corpus(void **state)
{
	char path[512];
	size_t len, i, n;
	char *raw;
	struct event_json_cache *c = event_json_cache__new(16);
	unsigned types_seen = 0;

	(void)state;
	assert_non_null(c);
	snprintf(path, sizeof(path), "%s/events-real.bin", KMON_FIXTURES);
	raw = slurp(path, &len);
	n = len / sizeof(struct kmon_event);
	assert_true(n >= 1000);
	for (i = 0; i < n; i++) {
		struct kmon_event ev;

		memcpy(&ev, raw + i * sizeof(ev), sizeof(ev));
		types_seen |= 1u << (ev.event_type & 31);
		/* every container of the real pods (more than the cache's slots),
		 * and no container at all; a real offset and a zero one */
		same(c, &ev, i % 5 ? &metas[i % n_metas] : NULL, "ip-10-0-1-17.ec2.internal",
		     i & 1 ? 1764300000000000000ull : 0);
	}
	assert_int_equal(types_seen, (1u << KMON_EV_MEMORY_ALLOC) | (1u << KMON_EV_MEMORY_FREE) |
					     (1u << KMON_EV_PROCESS_EXEC));
	event_json_cache__free(c);
	free(raw);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Bytes a hostile process name, path, or pod name may hold: mostly plain,
 * then quotes, backslashes, controls, DEL, valid and broken UTF-8, NUL. */
static void hostile(char *s, size_t n)
{
	static const char pick[] = "\"\\\x01\x1f\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xed\xa0"
				   "\x80\xc0\xaf\xff\xfe\xf4\x90\x00";
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t r = next();

		s[i] = r % 4 ? (char)('a' + r % 26) : pick[(r >> 8) % (sizeof(pick) - 1)];
	}
}

static void test_hostile_bytes(void **state)
{
	struct event_json_cache *c = event_json_cache__new(4);
	struct kmon_meta m;
	char node[254];
	int i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < 20000; i++) {
		struct kmon_event ev;

		hostile((char *)&ev, sizeof(ev));
		ev.event_type = (uint32_t)(next() % 9); /* known types, 0 and beyond */
		ev.flags = (uint16_t)next();
		ev.timestamp = next() >> (next() % 64);
		ev.size = next() >> (next() % 64);
		ev.data.mem.ptr = next() >> (next() % 64);
		hostile((char *)&m, sizeof(m));
		m.key = (uint32_t)i; /* a new container each time: every line misses */
		m.container_id[sizeof(m.container_id) - 1] = m.pod_uid[sizeof(m.pod_uid) - 1] = 0;
		m.pod[sizeof(m.pod) - 1] = m.namespace[sizeof(m.namespace) - 1] = 0;
		m.container[sizeof(m.container) - 1] = 0;
		hostile(node, sizeof(node) - 1);
		node[next() % sizeof(node)] = 0;
		node[sizeof(node) - 1] = 0;
		event_json_cache__invalidate(c); /* the node's bytes changed in place */
		same(c, &ev, i % 3 ? &m : NULL, node, next() >> (next() % 64) >> 2);
	}
	event_json_cache__free(c);
}

/* Every buffer shorter than the line: -ENOSPC and not a byte past cap, on
 * both paths; the exact size is enough. */
static void test_short_buffers(void **state)
{
	struct kmon_event ev;
	char buf[2048];
	struct event_json_cache *c = event_json_cache__new(4);
	int full, n;
	size_t cap;

	(void)state;
	memset(&ev, 0, sizeof(ev));
	ev.event_type = KMON_EV_PROCESS_EXEC;
	memcpy(ev.comm, "sh", 2);
	memcpy(ev.data.filename, "/bin/sh", 7);
	full = event_json__write(buf, sizeof(buf), &ev, &metas[0], "node", 0);
	assert_true(full > 0);
	for (cap = 0; cap <= (size_t)full; cap++) {
		memset(buf, 'Z', sizeof(buf));
		n = event_json__write_cached(c, buf, cap, &ev, &metas[0], "node", 0, NULL);
		assert_int_equal(n, cap == (size_t)full ? full : -ENOSPC);
		assert_int_equal(buf[cap], 'Z');
		n = event_json__write(buf, cap, &ev, &metas[0], "node", 0);
		assert_int_equal(n, cap == (size_t)full ? full : -ENOSPC);
		assert_int_equal(buf[cap], 'Z');
	}
	event_json_cache__free(c);
}

static int line_has(struct event_json_cache *c, const struct kmon_event *ev,
		    const struct kmon_meta *m, const char *node, const char *want)
{
	char buf[KMON_EVENT_JSON_MAX];
	int n = event_json__write_cached(c, buf, sizeof(buf), ev, m, node, 0, NULL);

	assert_true(n > 0);
	buf[n] = 0;
	return strstr(buf, want) != NULL;
}

/* A pod's metadata changes in place (the client's META update): after
 * invalidate the line says the new name; a new node string is noticed. The
 * cache keeps its slots however many containers pass through. */
static void test_cache_invalidation(void **state)
{
	struct event_json_cache *c = event_json_cache__new(8);
	struct event_json_cache_stats st;
	struct kmon_meta m = metas[1];
	struct kmon_event ev;
	char node[32] = "node-a";
	unsigned i;

	(void)state;
	assert_non_null(c);
	memset(&ev, 0, sizeof(ev));
	ev.event_type = KMON_EV_MEMORY_ALLOC;
	assert_true(line_has(c, &ev, &m, node, m.pod));
	assert_true(line_has(c, &ev, &m, node, m.pod));
	strcpy(m.pod, "renamed-pod");
	event_json_cache__invalidate(c);
	assert_true(line_has(c, &ev, &m, node, "\"pod\":\"renamed-pod\""));
	assert_true(line_has(c, &ev, &m, "node-b", "\"node\":\"node-b\""));
	event_json_cache__get_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.invalidations, 2);
	/* 100,000 containers through 8 slots: right lines, nothing kept beyond
	 * the slots (the cache allocates nothing after new) */
	for (i = 0; i < 100000; i++) {
		m.key = i + 1;
		same(c, &ev, &m, "node-b", 0);
	}
	/* strings longer than a slot: made per event, still the same bytes */
	m.key = 0x7fffffff;
	memset(m.pod, 'p', sizeof(m.pod) - 1);
	memset(m.namespace, 'n', sizeof(m.namespace) - 1);
	same(c, &ev, &m, "node-b", 0);
	same(c, &ev, &m, "node-b", 0);
	event_json_cache__get_stats(c, &st);
	assert_int_equal(st.too_long, 2);
	event_json_cache__free(c);
	assert_null(event_json_cache__new(0));
	assert_int_equal(errno, EINVAL);
	assert_null(event_json_cache__new(65537));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_corpus),
		cmocka_unit_test(test_hostile_bytes),
		cmocka_unit_test(test_short_buffers),
		cmocka_unit_test(test_cache_invalidation),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
