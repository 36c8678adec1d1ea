// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The event JSON encoder. It runs for every event every consumer forwards, so
 * it is built for that (issue 18): no allocation and no printf family per
 * event; integers, hex and string escapes written by hand; every field's
 * worst-case length known, so one bound check per event instead of one per
 * byte; and the tail of the line that depends only on the container (the
 * container_id .. node strings, already escaped) made once per container and
 * kept in a small cache (struct event_json_cache).
 *
 * What each event type prints is a table (struct field below): a new field
 * is one row, its kind says how it is written and bounds itself.
 */
#include "shm/common/event_json.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/types.h>
#include "bpf/event_util.h"
#include "bpf/kmon_event.h"
#include "shm/meta.h"
#include "shm/symtab.h"

/* ---- writers: unchecked, the caller has room for the field's bound ---- */

static const char hexdig[] = "0123456789abcdef";
static const char dig2[201] = "00010203040506070809101112131415161718192021222324252627282930313233"
			      "34353637383940414243444546474849505152535455565758596061626364656667"
			      "6869707172737475767778798081828384858687888990919293949596979899";

static inline char *w_lit(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define W_LIT(p, lit) w_lit((p), (lit), sizeof(lit) - 1)

static inline unsigned n_digits(uint64_t v)
{
	static const uint64_t pow10[20] = {
		1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
		100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
		1000000000000ull, 10000000000000ull, 100000000000000ull,
		1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
		1000000000000000000ull, 10000000000000000000ull,
	};
	/* log10 from log2 (1233/4096 ~ log10(2)), corrected by one comparison */
	unsigned t = (unsigned)((64 - __builtin_clzll(v | 1)) * 1233) >> 12;

	return t - ((v | 1) < pow10[t]) + 1;
}

/* Decimal, straight into p from its last digit, two digits per division
 * (by a constant: a multiply). */
static inline char *w_u64(char *p, uint64_t v)
{
	unsigned n = n_digits(v);
	char *q = p + n;

	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);

		v /= 100;
		q -= 2;
		memcpy(q, dig2 + 2 * r, 2);
	}
	if (v >= 10)
		memcpy(q - 2, dig2 + 2 * v, 2);
	else
		q[-1] = (char)('0' + v);
	return p + n;
}

/* "0x..." lower case, no leading zeros, quoted (a JSON number would lose
 * bits above 2^53 in most readers). */
static inline char *w_hex(char *p, uint64_t v)
{
	int n = v ? (67 - __builtin_clzll(v)) / 4 : 1, i;

	p = W_LIT(p, "\"0x");
	for (i = n - 1; i >= 0; i--) {
		p[i] = hexdig[v & 15];
		v >>= 4;
	}
	p += n;
	*p++ = '"';
	return p;
}

/* Bytes a JSON string needs more thought than a copy: controls, quote,
 * backslash, NUL (the end) and everything from 0x80 (UTF-8 to check). DEL
 * (0x7f) is valid JSON and copied as it is. */
static const bool special[256] = {
	[0x00 ... 0x1f] = true, ['"'] = true, ['\\'] = true, [0x80 ... 0xff] = true,
};

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are invalid too. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* At most n bytes of str, stopping at NUL, as a quoted JSON string: quotes,
 * backslashes and controls escaped, invalid UTF-8 as U+FFFD. Writes at most
 * STR_BOUND(n) bytes. */
#define STR_BOUND(n) (2 + 6 * (size_t)(n))

static char *w_str(char *p, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, l;

	*p++ = '"';
	for (;;) {
		while (i < n && !special[s[i]])
			*p++ = (char)s[i++];
		if (i >= n || !s[i])
			break;
		if (s[i] == '"') {
			p = W_LIT(p, "\\\"");
			i++;
		} else if (s[i] == '\\') {
			p = W_LIT(p, "\\\\");
			i++;
		} else if (s[i] < 0x20) {
			p = W_LIT(p, "\\u00");
			*p++ = hexdig[s[i] >> 4];
			*p++ = hexdig[s[i] & 15];
			i++;
		} else if ((l = utf8_len(s + i, n - i)) > 0 && !memchr(s + i, 0, l)) {
			p = w_lit(p, (const char *)s + i, l);
			i += l;
		} else {
			p = W_LIT(p, "\\ufffd");
			i++;
		}
	}
	*p++ = '"';
	return p;
}

/* RFC 3339 with nanoseconds, quoted. The date part changes once a second:
 * it is made once per second (per thread). */
#define TIME_BOUND 56

static char *w_time(char *p, uint64_t ns)
{
	static _Thread_local time_t cached_sec = (time_t)-1;
	static _Thread_local char prefix[48];
	static _Thread_local size_t prefix_len;
	time_t sec = (time_t)(ns / 1000000000ull);
	uint32_t frac = (uint32_t)(ns % 1000000000ull);
	char *q;
	int i;

	if (sec != cached_sec) {
		struct tm tm;
		unsigned year;

		if (!gmtime_r(&sec, &tm) || tm.tm_year < -1900 || tm.tm_year > 999999 - 1900)
			return W_LIT(p, "null");
		year = (unsigned)tm.tm_year + 1900;
		q = prefix;
		*q++ = '"';
		if (year < 1000) /* %04d */
			*q++ = '0';
		if (year < 100)
			*q++ = '0';
		if (year < 10)
			*q++ = '0';
		q = w_u64(q, year);
		*q++ = '-';
		q = w_lit(q, dig2 + 2 * (tm.tm_mon + 1), 2);
		*q++ = '-';
		q = w_lit(q, dig2 + 2 * tm.tm_mday, 2);
		*q++ = 'T';
		q = w_lit(q, dig2 + 2 * tm.tm_hour, 2);
		*q++ = ':';
		q = w_lit(q, dig2 + 2 * tm.tm_min, 2);
		*q++ = ':';
		q = w_lit(q, dig2 + 2 * (tm.tm_sec > 60 ? 60 : tm.tm_sec), 2);
		*q++ = '.';
		prefix_len = (size_t)(q - prefix);
		cached_sec = sec;
	}
	memcpy(p, prefix, 32); /* "YYYY-MM-DDTHH:MM:SS. is 21 */
	if (prefix_len > 32)
		memcpy(p + 32, prefix + 32, prefix_len - 32);
	p += prefix_len;
	p[8] = (char)('0' + frac % 10);
	frac /= 10;
	for (i = 6; i >= 0; i -= 2) {
		memcpy(p + i, dig2 + 2 * (frac % 100), 2);
		frac /= 100;
	}
	return W_LIT(p + 9, "Z\"");
}

/* ---- the tables: what each event type prints, in order ---- */

enum field_kind {
	F_U64,  /* __u64 at off, decimal */
	F_U32,  /* __u32 at off, decimal */
	F_HEX,  /* __u64 at off, "0x..." */
	F_STR,  /* char[len] at off, not trusted to hold a NUL */
	F_TIME, /* the __u64 boot-time ns at off as wall-clock RFC 3339 */
	F_FLAG, /* true/false: flags & len */
	F_SITE, /* __u64 call site at off: with ADDR_OPAQUE the symbol's name
		 * ("kmalloc_reserve+0x7e [mod]") or null when the agent could not
		 * resolve it; else the raw address, "0x..." */
};

/* Keys, the type's head and the date are copied by fixed-size moves (no
 * memcpy call per field): the writer may store up to COPY_SLACK bytes past
 * what it keeps, which every bound below includes. */
#define KEY_MAX 32
#define COPY_SLACK 64

struct field {
	char key[KEY_MAX]; /* ,"name": (not NUL-terminated when 32 long) */
	unsigned char key_len;
	unsigned char kind;
	unsigned short off;
	unsigned short len;  /* F_FLAG: the flag */
	unsigned short when; /* written only when all these flags are set */
};

#define EV_OFF(m) __builtin_offsetof(struct kmon_event, m)
#define FIELD(k, kind, m, len) { k, sizeof(k) - 1, kind, EV_OFF(m), len, 0 }
#define FIELD_IF(when, k, kind, m, len) { k, sizeof(k) - 1, kind, EV_OFF(m), len, when }
#define FLAG_IF(when, k, flag) { k, sizeof(k) - 1, F_FLAG, 0, flag, when }

/* Every type: after "type". */
#define HEAD_FIELDS                                                                        \
	FIELD(",\"timestamp\":", F_U64, timestamp, 8),                                     \
	FIELD(",\"time\":", F_TIME, timestamp, 8),                                         \
	FIELD(",\"pid\":", F_U32, pid, 4),                                                 \
	FIELD(",\"tid\":", F_U32, tid, 4),                                                 \
	FIELD(",\"comm\":", F_STR, comm, KMON_COMM_LEN),                                   \
	FIELD(",\"size\":", F_U64, size, 8)
/* Every type: before the container's strings. */
#define TAIL_FIELDS FIELD(",\"cgroup_id\":", F_U64, cgroup_id, 8)

static const struct field exec_fields[] = {
	HEAD_FIELDS,
	FIELD(",\"filename\":", F_STR, data.filename, KMON_FILENAME_LEN),
	/* The kernel keeps 63 bytes of the path: say when it kept less than
	 * the whole, so nobody takes a cut path for the real one. */
	FLAG_IF(0, ",\"filename_truncated\":", KMON_EVF_TRUNCATED),
	TAIL_FIELDS,
};

#define MEM_FIELDS                                                                         \
	FIELD(",\"ptr\":", F_HEX, data.mem.ptr, 8),                                         \
	FIELD(",\"call_site\":", F_SITE, data.mem.call_site, 8)
/* v2: slab events name their cache. */
#define CACHE_FIELD FIELD(",\"cache\":", F_STR, data.mem.cache, KMON_CACHE_NAME_LEN)
/* v2: a free charged to its owner says so, and where and by whom the memory
 * was allocated; frees not charged add nothing, so v1 lines are unchanged. */
#define OWNER_FIELDS                                                                       \
	FLAG_IF(KMON_EVF_OWNER_CHARGED, ",\"owner_charged\":", KMON_EVF_OWNER_CHARGED),     \
	FLAG_IF(KMON_EVF_OWNER_CHARGED, ",\"charged_elsewhere\":", KMON_EVF_FREED_ELSEWHERE), \
	FIELD_IF(KMON_EVF_OWNER_CHARGED, ",\"owner_pid\":", F_U32, data.free.owner_pid, 4),  \
	FIELD_IF(KMON_EVF_OWNER_CHARGED, ",\"alloc_call_site\":", F_SITE,                    \
		 data.free.alloc_call_site, 8),                                              \
	FIELD_IF(KMON_EVF_OWNER_CHARGED, ",\"alloc_timestamp\":", F_U64,                    \
		 data.free.alloc_timestamp, 8),                                              \
	FLAG_IF(KMON_EVF_OWNER_CHARGED | KMON_EVF_FREE_INFERRED, ",\"free_inferred\":",       \
		KMON_EVF_FREE_INFERRED)

/* memory_alloc, and types this build does not know */
static const struct field mem_fields[] = { HEAD_FIELDS, MEM_FIELDS, TAIL_FIELDS };
static const struct field free_fields[] = { HEAD_FIELDS, MEM_FIELDS, OWNER_FIELDS, TAIL_FIELDS };
static const struct field slab_alloc_fields[] = { HEAD_FIELDS, MEM_FIELDS, CACHE_FIELD,
						   TAIL_FIELDS };
static const struct field slab_free_fields[] = { HEAD_FIELDS, MEM_FIELDS, CACHE_FIELD,
						  OWNER_FIELDS, TAIL_FIELDS };
static const struct field oom_fields[] = {
	HEAD_FIELDS,
	FIELD(",\"memcg_id\":", F_U64, data.oom.memcg_id, 8),
	FIELD(",\"limit_pages\":", F_U64, data.oom.limit_pages, 8),
	FIELD(",\"rss_pages\":", F_U64, data.oom.rss_pages, 8),
	FIELD(",\"killer_pid\":", F_U32, data.oom.killer_pid, 4),
	TAIL_FIELDS,
};

#define TABLE(t) { t, sizeof(t) / sizeof(t[0]) }
static const struct {
	const struct field *f;
	size_t n;
} tables[KMON_EV_TYPE_MAX + 1] = {
	[KMON_EV_MEMORY_ALLOC] = TABLE(mem_fields),
	[KMON_EV_MEMORY_FREE] = TABLE(free_fields),
	[KMON_EV_PROCESS_EXEC] = TABLE(exec_fields),
	[KMON_EV_SLAB_ALLOC] = TABLE(slab_alloc_fields),
	[KMON_EV_SLAB_FREE] = TABLE(slab_free_fields),
	[KMON_EV_OOM_KILL] = TABLE(oom_fields),
};

struct type_desc {
	char head[KEY_MAX + 16]; /* {"type":"<name>" */
	size_t head_len;
	const struct field *fields;
	size_t n_fields;
	size_t bound; /* bytes the head and fields can take, at most */
};

/* Index = event type; the last one is for types this build does not know. */
static struct type_desc types[KMON_EV_TYPE_MAX + 2];
static pthread_once_t types_once = PTHREAD_ONCE_INIT;

static size_t field_bound(const struct field *f)
{
	switch (f->kind) {
	case F_U64:
	case F_U32:
		return f->key_len + 20;
	case F_HEX:
		return f->key_len + 20;
	case F_STR:
		return f->key_len + STR_BOUND(f->len);
	case F_TIME:
		return f->key_len + TIME_BOUND;
	case F_SITE:
		return f->key_len + STR_BOUND(KMON_EVENT_JSON_SYM_MAX);
	default:
		return f->key_len + 5;
	}
}

static void types_init(void)
{
	size_t t, i;

	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		struct type_desc *d = &types[t];
		const char *name = t && t <= KMON_EV_TYPE_MAX ? kmon_event_type_name((uint32_t)t)
							      : NULL;
		char *p = d->head;

		if (!name)
			name = "unknown";
		p = W_LIT(p, "{\"type\":");
		p = w_str(p, name, strlen(name));
		d->head_len = (size_t)(p - d->head);
		if (t <= KMON_EV_TYPE_MAX && tables[t].f) {
			d->fields = tables[t].f;
			d->n_fields = tables[t].n;
		} else {
			d->fields = mem_fields;
			d->n_fields = sizeof(mem_fields) / sizeof(mem_fields[0]);
		}
		d->bound = d->head_len + COPY_SLACK;
		for (i = 0; i < d->n_fields; i++)
			d->bound += field_bound(&d->fields[i]);
	}
}

static const struct type_desc *type_of(uint32_t t)
{
	static bool ready;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		pthread_once(&types_once, types_init);
		__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
	}
	return &types[t && t <= KMON_EV_TYPE_MAX ? t : KMON_EV_TYPE_MAX + 1];
}

/* A call site (F_SITE). Names come from the agent's sealed table, which the
 * client validated; they are escaped like any string all the same. */
static char *w_site(char *p, const struct kmon_event *ev, uint64_t site,
		    const struct kmon_symtab *st)
{
	char name[KMON_EVENT_JSON_SYM_MAX];
	int n;

	if (!(ev->flags & KMON_EVF_ADDR_OPAQUE))
		return w_hex(p, site);
	n = st ? kmon_symtab__symbolize(st, site, name, sizeof(name)) : -ENOENT;
	if (n == -ENOSPC)
		n = (int)strnlen(name, sizeof(name));
	if (n < 0)
		return W_LIT(p, "null");
	return w_str(p, name, (size_t)n);
}

static char *w_fields(char *p, const struct type_desc *d, const struct kmon_event *ev,
		      uint64_t boot_offset_ns, const struct kmon_symtab *st)
{
	const char *base = (const char *)ev;
	uint64_t v64;
	uint32_t v32;
	size_t i;

	memcpy(p, d->head, sizeof(d->head));
	p += d->head_len;
	for (i = 0; i < d->n_fields; i++) {
		const struct field *f = &d->fields[i];

		if ((ev->flags & f->when) != f->when)
			continue;
		memcpy(p, f->key, KEY_MAX);
		p += f->key_len;
		switch (f->kind) {
		case F_U64:
			memcpy(&v64, base + f->off, 8);
			p = w_u64(p, v64);
			break;
		case F_U32:
			memcpy(&v32, base + f->off, 4);
			p = w_u64(p, v32);
			break;
		case F_HEX:
			memcpy(&v64, base + f->off, 8);
			p = w_hex(p, v64);
			break;
		case F_STR:
			p = w_str(p, base + f->off, f->len);
			break;
		case F_TIME:
			memcpy(&v64, base + f->off, 8);
			p = w_time(p, v64 + boot_offset_ns);
			break;
		case F_FLAG:
			p = ev->flags & f->len ? W_LIT(p, "true") : W_LIT(p, "false");
			break;
		case F_SITE:
			memcpy(&v64, base + f->off, 8);
			p = w_site(p, ev, v64, st);
			break;
		}
	}
	return p;
}

/* ---- the container's part: container_id .. node and the line's end ---- */

/* Writes the container's strings into buf (cap bytes). Returns the length,
 * or -ENOSPC. */
static int frag_build(char *buf, size_t cap, const struct kmon_meta *m, const char *node)
{
	static const struct kmon_meta none;
	size_t node_len = node ? strlen(node) : 0;
	char *p = buf;

	if (!m)
		m = &none;
	/* keys + the strings' bounds */
	if (120 + STR_BOUND(sizeof(m->container_id) + sizeof(m->pod_uid) + sizeof(m->pod) +
			    sizeof(m->namespace) + sizeof(m->container) + node_len) > cap)
		return -ENOSPC;
	p = W_LIT(p, ",\"container_id\":");
	p = w_str(p, m->container_id, sizeof(m->container_id));
	p = W_LIT(p, ",\"pod_uid\":");
	p = w_str(p, m->pod_uid, sizeof(m->pod_uid));
	p = W_LIT(p, ",\"pod\":");
	p = w_str(p, m->pod, sizeof(m->pod));
	p = W_LIT(p, ",\"namespace\":");
	p = w_str(p, m->namespace, sizeof(m->namespace));
	p = W_LIT(p, ",\"container\":");
	p = w_str(p, m->container, sizeof(m->container));
	p = W_LIT(p, ",\"node\":");
	p = w_str(p, node ? node : "", node_len);
	p = W_LIT(p, "}\n");
	return (int)(p - buf);
}

/* The whole line: fast path straight into buf when it has room for the
 * worst case; otherwise through a scratch buffer, so a short buf gets
 * -ENOSPC and nothing written past cap. */
static int write_line(char *buf, size_t cap, const struct kmon_event *ev, const char *frag,
		      size_t frag_len, uint64_t boot_offset_ns, const struct kmon_symtab *st)
{
	const struct type_desc *d = type_of(ev->event_type);
	char tmp[2 * KMON_EVENT_JSON_MAX];
	char *p;
	size_t n;

	if (cap >= d->bound + frag_len) {
		p = w_fields(buf, d, ev, boot_offset_ns, st);
		p = w_lit(p, frag, frag_len);
		return (int)(p - buf);
	}
	if (d->bound + frag_len > sizeof(tmp))
		return -ENOSPC;
	p = w_fields(tmp, d, ev, boot_offset_ns, st);
	p = w_lit(p, frag, frag_len);
	n = (size_t)(p - tmp);
	if (n > cap)
		return -ENOSPC;
	memcpy(buf, tmp, n);
	return (int)n;
}

int event_json__write(char *buf, size_t cap, const struct kmon_event *ev,
		      const struct kmon_meta *meta, const char *node, uint64_t boot_offset_ns)
{
	return event_json__write_sym(buf, cap, ev, meta, node, boot_offset_ns, NULL);
}

int event_json__write_sym(char *buf, size_t cap, const struct kmon_event *ev,
			  const struct kmon_meta *meta, const char *node, uint64_t boot_offset_ns,
			  const struct kmon_symtab *st)
{
	char frag[KMON_EVENT_JSON_MAX];
	int n = frag_build(frag, sizeof(frag), meta, node);

	if (n < 0)
		return n;
	return write_line(buf, cap, ev, frag, (size_t)n, boot_offset_ns, st);
}

/* ---- the per-container cache ---- */

/* Most containers' strings take 150 to 400 bytes escaped; a longer set is
 * made for every event instead of kept (correct, only slower). */
#define SLOT_BYTES 512

struct slot {
	uint64_t gen; /* 0: empty */
	uint32_t key;
	uint32_t len;
	char frag[SLOT_BYTES];
};

struct event_json_cache {
	struct slot *slots;
	uint32_t mask;
	uint64_t gen;
	const char *node; /* the node string the slots were made with */
	struct event_json_cache_stats st;
};

struct event_json_cache *event_json_cache__new(unsigned n_slots)
{
	struct event_json_cache *c;
	uint32_t n = 1;

	if (!n_slots || n_slots > 65536) {
		errno = EINVAL;
		return NULL;
	}
	while (n < n_slots)
		n <<= 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return NULL;
	}
	c->mask = n - 1;
	c->gen = 1;
	return c;
}

void event_json_cache__free(struct event_json_cache *c)
{
	if (!c)
		return;
	free(c->slots);
	free(c);
}

void event_json_cache__invalidate(struct event_json_cache *c)
{
	c->gen++;
	c->st.invalidations++;
}

void event_json_cache__get_stats(const struct event_json_cache *c,
				 struct event_json_cache_stats *out)
{
	*out = c->st;
}

int event_json__write_cached(struct event_json_cache *c, char *buf, size_t cap,
			     const struct kmon_event *ev, const struct kmon_meta *meta,
			     const char *node, uint64_t boot_offset_ns, const struct kmon_symtab *st)
{
	uint32_t key = meta ? meta->key : 0;
	/* Fibonacci hashing: keys are small consecutive numbers. */
	struct slot *s = &c->slots[(key * 2654435769u) >> 16 & c->mask];
	char frag[KMON_EVENT_JSON_MAX];
	int n;

	if (node != c->node) {
		if (c->node)
			event_json_cache__invalidate(c);
		else
			c->gen++;
		c->node = node;
	}
	if (s->gen == c->gen && s->key == key) {
		c->st.hits++;
		return write_line(buf, cap, ev, s->frag, s->len, boot_offset_ns, st);
	}
	c->st.misses++;
	n = frag_build(frag, sizeof(frag), meta, node);
	if (n < 0)
		return n;
	if ((size_t)n <= sizeof(s->frag)) {
		memcpy(s->frag, frag, (size_t)n);
		s->len = (uint32_t)n;
		s->key = key;
		s->gen = c->gen;
	} else {
		c->st.too_long++;
	}
	return write_line(buf, cap, ev, frag, (size_t)n, boot_offset_ns, st);
}

/* The encoder's own validator, for the other encoders (OTLP) to share. */
size_t event_json__utf8_len(const unsigned char *s, size_t n)
{
	return utf8_len(s, n);
}

int event_json__string(char *buf, size_t cap, const char *s, size_t n)
{
	char small[STR_BOUND(64)], *tmp = small;
	size_t len;

	n = strnlen(s, n);
	if (STR_BOUND(n) <= cap)
		return (int)(w_str(buf, s, n) - buf);
	/* Not room for the worst case: escape aside, copy if it fits. */
	if (STR_BOUND(n) > sizeof(small) && !(tmp = malloc(STR_BOUND(n))))
		return -ENOMEM;
	len = (size_t)(w_str(tmp, s, n) - tmp);
	if (len <= cap)
		memcpy(buf, tmp, len);
	if (tmp != small)
		free(tmp);
	return len <= cap ? (int)len : -ENOSPC;
}

uint64_t event_json__boot_offset_ns(void)
{
	struct timespec r, b;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_BOOTTIME, &b);
	return ((uint64_t)r.tv_sec * 1000000000ull + (uint64_t)r.tv_nsec) -
	       ((uint64_t)b.tv_sec * 1000000000ull + (uint64_t)b.tv_nsec);
}
