// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Field numbers below are those of opentelemetry-proto (v1.x):
 *   opentelemetry/proto/collector/logs/v1/logs_service.proto
 *   opentelemetry/proto/logs/v1/logs.proto
 *   opentelemetry/proto/resource/v1/resource.proto
 *   opentelemetry/proto/common/v1/common.proto
 * The JSON form follows the OTLP/HTTP JSON mapping: lowerCamelCase keys,
 * 64-bit integers as decimal strings, enums as numbers.
 */
#include "consumers/forward/otlp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/types.h>
#include "bpf/event_util.h"
#include "bpf/kmon_event.h"
#include "shm/common/event_json.h"
#include "shm/meta.h"
#include "shm/symtab.h"

#define N_NAMES 5 /* container_id, pod_uid, pod, namespace, container */
#define SEVERITY_NUMBER_INFO 9 /* logs.proto: enum SeverityNumber */

struct otlp_encoder {
	enum otlp_encoding enc;
	char *version;
	char *node;
	uint64_t boot_offset;
	const struct kmon_symtab *st; /* names for call sites; NULL: none */
};

/* A growing buffer that remembers a failed allocation, so the encoder checks
 * once at the end. */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static bool reserve(struct buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + n <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void put(struct buf *b, const void *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

/* Bytes of s (up to n, stopping at NUL) with every invalid UTF-8 sequence
 * replaced by U+FFFD. */
static void put_utf8(struct buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, l;

	while (i < n && s[i]) {
		l = event_json__utf8_len(s + i, n - i);
		if (l && !memchr(s + i, 0, l)) {
			put(b, s + i, l);
			i += l;
		} else {
			PUTS(b, "\xef\xbf\xbd");
			i++;
		}
	}
}

/* ---- protobuf wire format ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };

static void pb_varint(struct buf *b, uint64_t v)
{
	char t[10];
	size_t n = 0;

	do {
		t[n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	put(b, t, n);
}

static void pb_tag(struct buf *b, unsigned field, unsigned wt)
{
	pb_varint(b, (uint64_t)field << 3 | wt);
}

static void pb_fixed64(struct buf *b, unsigned field, uint64_t v)
{
	char t[8];

	pb_tag(b, field, WT_I64);
	for (int i = 0; i < 8; i++)
		t[i] = (char)(v >> (8 * i));
	put(b, t, 8);
}

/* A length-delimited field whose length is known only at its end: 5 bytes
 * are reserved (enough for 32 bits), pb_end writes the shortest varint and
 * moves the content back. */
static size_t pb_begin(struct buf *b, unsigned field)
{
	size_t at;

	pb_tag(b, field, WT_LEN);
	at = b->len;
	put(b, "\0\0\0\0\0", 5);
	return at;
}

static void pb_end(struct buf *b, size_t at)
{
	size_t body, n = 0;
	uint64_t v;
	char t[5];

	if (b->oom)
		return;
	body = b->len - at - 5;
	v = body;
	do {
		t[n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	memmove(b->p + at + n, b->p + at + 5, body);
	memcpy(b->p + at, t, n);
	b->len -= 5 - n;
}

static void pb_string(struct buf *b, unsigned field, const char *s, size_t n)
{
	size_t at = pb_begin(b, field);

	put_utf8(b, s, n);
	pb_end(b, at);
}

/* ---- JSON ---- */

static void json_string(struct buf *b, const char *s, size_t n)
{
	int w;

	/* Worst case: every byte escaped as \u00XX, plus quotes. */
	if (!reserve(b, n * 6 + 2))
		return;
	w = event_json__string(b->p + b->len, b->cap - b->len, s, n);
	if (w < 0)
		b->oom = true;
	else
		b->len += (size_t)w;
}

static void json_u64(struct buf *b, uint64_t v, bool quoted)
{
	char t[24];
	int n = snprintf(t, sizeof(t), quoted ? "\"%llu\"" : "%llu", (unsigned long long)v);

	put(b, t, (size_t)n);
}

/* ---- attributes: one list, two encodings ---- */

enum attr_type { A_STR, A_INT, A_BOOL };

struct attr {
	const char *key;
	enum attr_type t;
	const char *s;
	size_t n;
	uint64_t v; /* A_INT (as int64), A_BOOL */
	char hex[20];
};

struct attrs {
	struct attr a[24];
	unsigned n;
	char site[2][KMON_EVENT_JSON_SYM_MAX]; /* call sites' names */
};

static void add_str(struct attrs *l, const char *key, const char *s, size_t n)
{
	struct attr *a = &l->a[l->n++];

	a->key = key;
	a->t = A_STR;
	a->s = s;
	a->n = n;
}

/* Only non-empty: an attribute without a value says nothing. */
static void add_name(struct attrs *l, const char *key, const char *s, size_t n)
{
	if (n && s[0])
		add_str(l, key, s, n);
}

static void add_int(struct attrs *l, const char *key, uint64_t v)
{
	struct attr *a = &l->a[l->n++];

	a->key = key;
	a->t = A_INT;
	a->v = v;
}

static void add_bool(struct attrs *l, const char *key, bool v)
{
	struct attr *a = &l->a[l->n++];

	a->key = key;
	a->t = A_BOOL;
	a->v = v;
}

/* Addresses and call sites as "0x..." strings, as the JSON line writes
 * them: a kernel address does not fit an int64. */
static void add_hex(struct attrs *l, const char *key, uint64_t v)
{
	struct attr *a = &l->a[l->n++];
	int n = snprintf(a->hex, sizeof(a->hex), "0x%llx", (unsigned long long)v);

	a->key = key;
	a->t = A_STR;
	a->s = a->hex;
	a->n = (size_t)n;
}

/* A call site as the JSON line writes it: with ADDR_OPAQUE the symbol's
 * name from the agent's table (left out when not resolved: the line's null),
 * else the raw address in hex. */
static void add_site(struct attrs *l, const struct otlp_encoder *e, const char *key,
		     const struct kmon_event *ev, uint64_t site, unsigned slot)
{
	char *name = l->site[slot];
	int n;

	if (!(ev->flags & KMON_EVF_ADDR_OPAQUE)) {
		add_hex(l, key, site);
		return;
	}
	n = e->st ? kmon_symtab__symbolize(e->st, site, name, sizeof(l->site[slot])) : -ENOENT;
	if (n == -ENOSPC)
		n = (int)strnlen(name, sizeof(l->site[slot]));
	if (n > 0)
		add_str(l, key, name, (size_t)n);
}

static void attrs_pb(struct buf *b, unsigned field, const struct attrs *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		const struct attr *a = &l->a[i];
		size_t kv = pb_begin(b, field), av;

		pb_string(b, 1, a->key, strlen(a->key)); /* KeyValue.key = 1 */
		av = pb_begin(b, 2);                     /* KeyValue.value = 2 */
		switch (a->t) {
		case A_STR:
			pb_string(b, 1, a->s, a->n); /* AnyValue.string_value = 1 */
			break;
		case A_BOOL:
			pb_tag(b, 2, WT_VARINT); /* AnyValue.bool_value = 2 */
			pb_varint(b, a->v ? 1 : 0);
			break;
		case A_INT:
			pb_tag(b, 3, WT_VARINT); /* AnyValue.int_value = 3 (int64) */
			pb_varint(b, a->v);
			break;
		}
		pb_end(b, av);
		pb_end(b, kv);
	}
}

static void attrs_json(struct buf *b, const struct attrs *l)
{
	PUTS(b, "[");
	for (unsigned i = 0; i < l->n; i++) {
		const struct attr *a = &l->a[i];

		if (i)
			PUTS(b, ",");
		PUTS(b, "{\"key\":");
		json_string(b, a->key, strlen(a->key));
		switch (a->t) {
		case A_STR:
			PUTS(b, ",\"value\":{\"stringValue\":");
			json_string(b, a->s, a->n);
			break;
		case A_BOOL:
			PUTS(b, ",\"value\":{\"boolValue\":");
			if (a->v)
				PUTS(b, "true");
			else
				PUTS(b, "false");
			break;
		case A_INT:
			PUTS(b, ",\"value\":{\"intValue\":");
			json_u64(b, a->v, true);
			break;
		}
		PUTS(b, "}}");
	}
	PUTS(b, "]");
}

/* ---- items ---- */

static size_t name_len(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	return n > 255 ? 255 : n;
}

int otlp__item(char *buf, size_t cap, const struct kmon_event *ev, const struct kmon_meta *meta)
{
	const char *s[N_NAMES] = { "", "", "", "", "" };
	size_t n[N_NAMES] = { 0 }, len = sizeof(*ev);
	int i;

	if (meta) {
		s[0] = meta->container_id;
		n[0] = name_len(meta->container_id, sizeof(meta->container_id));
		s[1] = meta->pod_uid;
		n[1] = name_len(meta->pod_uid, sizeof(meta->pod_uid));
		s[2] = meta->pod;
		n[2] = name_len(meta->pod, sizeof(meta->pod));
		s[3] = meta->namespace;
		n[3] = name_len(meta->namespace, sizeof(meta->namespace));
		s[4] = meta->container;
		n[4] = name_len(meta->container, sizeof(meta->container));
	}
	for (i = 0; i < N_NAMES; i++)
		len += 1 + n[i];
	if (len > cap)
		return -ENOSPC;
	memcpy(buf, ev, sizeof(*ev));
	len = sizeof(*ev);
	for (i = 0; i < N_NAMES; i++) {
		buf[len++] = (char)n[i];
		memcpy(buf + len, s[i], n[i]);
		len += n[i];
	}
	return (int)len;
}

struct ref {
	const struct kmon_event *ev; /* packed: any alignment will do */
	const char *s[N_NAMES];
	size_t n[N_NAMES];
	uint64_t idx;
};

static int ref_cmp(const void *pa, const void *pb)
{
	const struct ref *a = pa, *b = pb;

	for (int i = 0; i < N_NAMES; i++) {
		size_t m = a->n[i] < b->n[i] ? a->n[i] : b->n[i];
		int c = memcmp(a->s[i], b->s[i], m);

		if (c)
			return c;
		if (a->n[i] != b->n[i])
			return a->n[i] < b->n[i] ? -1 : 1;
	}
	/* Arrival order within a container. */
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool same_container(const struct ref *a, const struct ref *b)
{
	for (int i = 0; i < N_NAMES; i++)
		if (a->n[i] != b->n[i] || memcmp(a->s[i], b->s[i], a->n[i]))
			return false;
	return true;
}

static int parse_items(const char *items, size_t len, uint64_t n_items, struct ref **out)
{
	struct ref *r;
	size_t off = 0;
	uint64_t i;

	if (!n_items || n_items > len / sizeof(struct kmon_event))
		return -EINVAL;
	r = calloc(n_items, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < n_items; i++) {
		if (len - off < sizeof(struct kmon_event) + N_NAMES)
			goto bad;
		r[i].ev = (const struct kmon_event *)(const void *)(items + off);
		r[i].idx = i;
		off += sizeof(struct kmon_event);
		for (int k = 0; k < N_NAMES; k++) {
			size_t n;

			if (off >= len)
				goto bad;
			n = (unsigned char)items[off++];
			if (len - off < n)
				goto bad;
			r[i].s[k] = items + off;
			r[i].n[k] = n;
			off += n;
		}
	}
	if (off != len)
		goto bad;
	*out = r;
	return 0;
bad:
	free(r);
	return -EINVAL;
}

/* ---- the request ---- */

static void resource_attrs(const struct otlp_encoder *e, const struct ref *r, struct attrs *l)
{
	l->n = 0;
	add_str(l, "service.name", "kmon", 4);
	if (e->node)
		add_name(l, "k8s.node.name", e->node, strlen(e->node));
	add_name(l, "k8s.namespace.name", r->s[3], r->n[3]);
	add_name(l, "k8s.pod.name", r->s[2], r->n[2]);
	add_name(l, "k8s.pod.uid", r->s[1], r->n[1]);
	add_name(l, "k8s.container.name", r->s[4], r->n[4]);
	add_name(l, "container.id", r->s[0], r->n[0]);
}

/* The event's fields, named as the JSON line names them under "kmon.",
 * except pid and tid, which the semantic conventions name. */
static void event_attrs(const struct otlp_encoder *e, const struct kmon_event *ev,
			struct attrs *l, const char **type)
{
	uint32_t t = ev->event_type;

	*type = kmon_event_type_name(t);
	if (!*type)
		*type = "unknown";
	l->n = 0;
	add_str(l, "kmon.type", *type, strlen(*type));
	add_int(l, "kmon.timestamp", ev->timestamp);
	add_int(l, "process.pid", ev->pid);
	add_int(l, "thread.id", ev->tid);
	add_str(l, "kmon.comm", ev->comm, sizeof(ev->comm));
	add_int(l, "kmon.size", ev->size);
	add_int(l, "kmon.cgroup_id", ev->cgroup_id);
	switch (t) {
	case KMON_EV_PROCESS_EXEC:
		add_str(l, "kmon.filename", ev->data.filename, sizeof(ev->data.filename));
		add_bool(l, "kmon.filename_truncated", ev->flags & KMON_EVF_TRUNCATED);
		break;
	case KMON_EV_OOM_KILL:
		add_int(l, "kmon.memcg_id", ev->data.oom.memcg_id);
		add_int(l, "kmon.limit_pages", ev->data.oom.limit_pages);
		add_int(l, "kmon.rss_pages", ev->data.oom.rss_pages);
		add_int(l, "kmon.killer_pid", ev->data.oom.killer_pid);
		break;
	default:
		add_hex(l, "kmon.ptr", ev->data.mem.ptr);
		add_site(l, e, "kmon.call_site", ev, ev->data.mem.call_site, 0);
		if (t == KMON_EV_SLAB_ALLOC || t == KMON_EV_SLAB_FREE)
			add_str(l, "kmon.cache", ev->data.mem.cache, sizeof(ev->data.mem.cache));
		if ((t == KMON_EV_MEMORY_FREE || t == KMON_EV_SLAB_FREE) &&
		    (ev->flags & KMON_EVF_OWNER_CHARGED)) {
			add_site(l, e, "kmon.alloc_call_site", ev, ev->data.free.alloc_call_site, 1);
			add_int(l, "kmon.alloc_timestamp", ev->data.free.alloc_timestamp);
			add_int(l, "kmon.owner_pid", ev->data.free.owner_pid);
			add_bool(l, "kmon.freed_elsewhere", ev->flags & KMON_EVF_FREED_ELSEWHERE);
		}
		if (ev->flags & KMON_EVF_ADDR_OPAQUE)
			add_bool(l, "kmon.addr_opaque", true);
		break;
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void encode_pb(const struct otlp_encoder *e, struct buf *b, const struct ref *r,
		      uint64_t n, uint64_t observed)
{
	struct attrs l;
	uint64_t i = 0;

	while (i < n) {
		size_t rl, res, sl, sc;

		rl = pb_begin(b, 1);   /* ExportLogsServiceRequest.resource_logs = 1 */
		res = pb_begin(b, 1);  /* ResourceLogs.resource = 1 */
		resource_attrs(e, &r[i], &l);
		attrs_pb(b, 1, &l);    /* Resource.attributes = 1 */
		pb_end(b, res);
		sl = pb_begin(b, 2);   /* ResourceLogs.scope_logs = 2 */
		sc = pb_begin(b, 1);   /* ScopeLogs.scope = 1 */
		pb_string(b, 1, "kmon", 4);                           /* name = 1 */
		pb_string(b, 2, e->version, strlen(e->version));      /* version = 2 */
		pb_end(b, sc);
		do {
			const struct kmon_event *ev = r[i].ev;
			const char *type;
			size_t lr, body;

			event_attrs(e, ev, &l, &type);
			lr = pb_begin(b, 2);                            /* ScopeLogs.log_records = 2 */
			pb_fixed64(b, 1, ev->timestamp + e->boot_offset); /* time_unix_nano = 1 */
			pb_fixed64(b, 11, observed);          /* observed_time_unix_nano = 11 */
			pb_tag(b, 2, WT_VARINT);              /* severity_number = 2 */
			pb_varint(b, SEVERITY_NUMBER_INFO);
			pb_string(b, 3, "INFO", 4);           /* severity_text = 3 */
			body = pb_begin(b, 5);                /* body = 5 (AnyValue) */
			pb_string(b, 1, type, strlen(type));
			pb_end(b, body);
			attrs_pb(b, 6, &l);                   /* attributes = 6 */
			pb_end(b, lr);
			i++;
		} while (i < n && same_container(&r[i - 1], &r[i]));
		pb_end(b, sl);
		pb_end(b, rl);
	}
}

static void encode_json(const struct otlp_encoder *e, struct buf *b, const struct ref *r,
			uint64_t n, uint64_t observed)
{
	struct attrs l;
	uint64_t i = 0;

	PUTS(b, "{\"resourceLogs\":[");
	while (i < n) {
		if (i)
			PUTS(b, ",");
		resource_attrs(e, &r[i], &l);
		PUTS(b, "{\"resource\":{\"attributes\":");
		attrs_json(b, &l);
		PUTS(b, "},\"scopeLogs\":[{\"scope\":{\"name\":\"kmon\",\"version\":");
		json_string(b, e->version, strlen(e->version));
		PUTS(b, "},\"logRecords\":[");
		do {
			const struct kmon_event *ev = r[i].ev;
			const char *type;

			event_attrs(e, ev, &l, &type);
			if (i && same_container(&r[i - 1], &r[i]))
				PUTS(b, ",");
			PUTS(b, "{\"timeUnixNano\":");
			json_u64(b, ev->timestamp + e->boot_offset, true);
			PUTS(b, ",\"observedTimeUnixNano\":");
			json_u64(b, observed, true);
			PUTS(b, ",\"severityNumber\":9,\"severityText\":\"INFO\",\"body\":{\"stringValue\":");
			json_string(b, type, strlen(type));
			PUTS(b, "},\"attributes\":");
			attrs_json(b, &l);
			PUTS(b, "}");
			i++;
		} while (i < n && same_container(&r[i - 1], &r[i]));
		PUTS(b, "]}]}");
	}
	PUTS(b, "]}");
}

int otlp_encoder__encode(struct otlp_encoder *e, const char *items, size_t len,
			 uint64_t n_items, char **body, size_t *body_len)
{
	struct buf b = { 0 };
	struct ref *r;
	int err;

	err = parse_items(items, len, n_items, &r);
	if (err)
		return err;
	qsort(r, n_items, sizeof(*r), ref_cmp);
	if (e->enc == OTLP_JSON)
		encode_json(e, &b, r, n_items, now_ns());
	else
		encode_pb(e, &b, r, n_items, now_ns());
	free(r);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*body = b.p;
	*body_len = b.len;
	return 0;
}

/* ---- the answer ---- */

static bool rd_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	uint64_t x = 0;

	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		unsigned char c = *(*p)++;

		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/* Finds field `field` (varint) in the message [p, end); false if absent or
 * unreadable. Bounded by the bytes given: the answer is a peer's. */
static bool pb_find(const unsigned char *p, const unsigned char *end, unsigned field,
		    unsigned want_wt, const unsigned char **sub, const unsigned char **sub_end,
		    uint64_t *v)
{
	uint64_t tag, n;

	while (p < end) {
		if (!rd_varint(&p, end, &tag))
			return false;
		switch (tag & 7) {
		case WT_VARINT:
			if (!rd_varint(&p, end, &n))
				return false;
			if ((tag >> 3) == field && want_wt == WT_VARINT) {
				*v = n;
				return true;
			}
			break;
		case WT_I64:
			if (end - p < 8)
				return false;
			p += 8;
			break;
		case WT_LEN:
			if (!rd_varint(&p, end, &n))
				return false;
			if ((tag >> 3) == field && want_wt == WT_LEN) {
				/* Cut short (the sink keeps the answer's first bytes):
				 * read what is there. */
				*sub = p;
				*sub_end = n > (uint64_t)(end - p) ? end : p + n;
				return true;
			}
			if (n > (uint64_t)(end - p))
				return false;
			p += n;
			break;
		case 5: /* I32 */
			if (end - p < 4)
				return false;
			p += 4;
			break;
		default:
			return false;
		}
	}
	return false;
}

uint64_t otlp_encoder__rejected(const struct otlp_encoder *e, const char *answer, size_t len)
{
	uint64_t v = 0;

	if (e->enc == OTLP_JSON) {
		static const char key[] = "\"rejectedLogRecords\"";
		const char *p = memmem(answer, len, key, sizeof(key) - 1), *end = answer + len;

		if (!p)
			return 0;
		p += sizeof(key) - 1;
		while (p < end && (*p == ' ' || *p == ':' || *p == '"' || *p == '\t'))
			p++;
		while (p < end && *p >= '0' && *p <= '9' && v < (1ull << 60))
			v = v * 10 + (uint64_t)(*p++ - '0');
		return v;
	} else {
		const unsigned char *p = (const unsigned char *)answer, *s, *se;

		/* ExportLogsServiceResponse.partial_success = 1,
		 * ExportLogsPartialSuccess.rejected_log_records = 1 (int64) */
		if (!pb_find(p, p + len, 1, WT_LEN, &s, &se, &v) ||
		    !pb_find(s, se, 1, WT_VARINT, &s, &se, &v))
			return 0;
		/* A negative int64 is nonsense: nothing counted. */
		return v >> 63 ? 0 : v;
	}
}

/* ---- the object ---- */

struct otlp_encoder *otlp_encoder__new(enum otlp_encoding enc, const char *version,
				       uint64_t boot_offset_ns)
{
	struct otlp_encoder *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->enc = enc;
	e->boot_offset = boot_offset_ns;
	e->version = strdup(version ? version : "");
	if (!e->version) {
		free(e);
		return NULL;
	}
	return e;
}

void otlp_encoder__free(struct otlp_encoder *e)
{
	if (!e)
		return;
	free(e->version);
	free(e->node);
	free(e);
}

int otlp_encoder__set_node(struct otlp_encoder *e, const char *node)
{
	char *n;

	if (!node || !*node)
		return 0;
	if (e->node && !strcmp(e->node, node))
		return 0;
	n = strdup(node);
	if (!n)
		return -ENOMEM;
	free(e->node);
	e->node = n;
	return 0;
}

void otlp_encoder__set_symtab(struct otlp_encoder *e, const struct kmon_symtab *st)
{
	e->st = st;
}

const char *otlp_encoder__content_type(const struct otlp_encoder *e)
{
	return e->enc == OTLP_JSON ? "application/json" : "application/x-protobuf";
}
