// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/common/event_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <linux/types.h>
#include "bpf/event_util.h"
#include "bpf/kmon_event.h"
#include "shm/meta.h"

/* A cursor that stops writing (and remembers it) when the buffer is full,
 * so the encoder needs one check at the end instead of one per field. */
struct out {
	char *p, *end;
	bool full;
};

static inline void put(struct out *o, const char *s, size_t n)
{
	if (o->full || (size_t)(o->end - o->p) < n) {
		o->full = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static inline void put_u64(struct out *o, uint64_t v)
{
	char b[24];
	int i = 24;

	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, b + i, (size_t)(24 - i));
}

static inline void put_hex(struct out *o, uint64_t v)
{
	static const char hx[] = "0123456789abcdef";
	char b[20];
	int i = 20;

	do {
		b[--i] = hx[v & 15];
		v >>= 4;
	} while (v);
	b[--i] = 'x';
	b[--i] = '0';
	put(o, "\"", 1);
	put(o, b + i, (size_t)(20 - i));
	put(o, "\"", 1);
}

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

static void put_str(struct out *o, const char *str, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;

	put(o, "\"", 1);
	while (i < n && s[i]) {
		unsigned char c = s[i];
		size_t l;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			i++;
			run++;
			continue;
		}
		put(o, (const char *)s + i - run, run);
		run = 0;
		if (c == '"') {
			PUTS(o, "\\\"");
			i++;
		} else if (c == '\\') {
			PUTS(o, "\\\\");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = { '\\', 'u', '0', '0', hx[c >> 4], hx[c & 15] };
			put(o, e, 6);
			i++;
		} else if ((l = utf8_len(s + i, n - i)) > 0 && !memchr(s + i, 0, l)) {
			put(o, (const char *)s + i, l);
			i += l;
		} else {
			PUTS(o, "\\ufffd");
			i++;
		}
	}
	put(o, (const char *)s + i - run, run);
	put(o, "\"", 1);
}

int event_json__string(char *buf, size_t cap, const char *s, size_t n)
{
	struct out o = { buf, buf + cap, false };

	put_str(&o, s, n);
	return o.full ? -ENOSPC : (int)(o.p - buf);
}

/* RFC 3339 with nanoseconds. The date part changes once a second, so it is
 * formatted once per second (per thread) and the nanoseconds by hand: this
 * runs for every event. */
static void put_time(struct out *o, uint64_t ns)
{
	static _Thread_local time_t cached_sec = (time_t)-1;
	static _Thread_local char prefix[32];
	static _Thread_local size_t prefix_len;
	time_t sec = (time_t)(ns / 1000000000ull);
	uint32_t frac = (uint32_t)(ns % 1000000000ull);
	char b[16];
	struct tm tm;
	int i, n;

	if (sec != cached_sec) {
		if (!gmtime_r(&sec, &tm)) {
			PUTS(o, "null");
			return;
		}
		n = snprintf(prefix, sizeof(prefix), "\"%04d-%02d-%02dT%02d:%02d:%02d.",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			     tm.tm_sec);
		if (n < 0 || (size_t)n >= sizeof(prefix)) {
			PUTS(o, "null");
			return;
		}
		prefix_len = (size_t)n;
		cached_sec = sec;
	}
	put(o, prefix, prefix_len);
	for (i = 8; i >= 0; i--) {
		b[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	b[9] = 'Z';
	b[10] = '"';
	put(o, b, 11);
}

int event_json__write(char *buf, size_t cap, const struct kmon_event *ev,
		      const struct kmon_meta *meta, const char *node, uint64_t boot_offset_ns)
{
	struct out o = { buf, buf + cap, false };
	const char *type = kmon_event_type_name(ev->event_type);
	static const char empty[] = "";

	if (!type)
		type = "unknown";
	PUTS(&o, "{\"type\":");
	put_str(&o, type, strlen(type));
	PUTS(&o, ",\"timestamp\":");
	put_u64(&o, ev->timestamp);
	PUTS(&o, ",\"time\":");
	put_time(&o, ev->timestamp + boot_offset_ns);
	PUTS(&o, ",\"pid\":");
	put_u64(&o, ev->pid);
	PUTS(&o, ",\"tid\":");
	put_u64(&o, ev->tid);
	PUTS(&o, ",\"comm\":");
	put_str(&o, ev->comm, sizeof(ev->comm));
	PUTS(&o, ",\"size\":");
	put_u64(&o, ev->size);
	if (ev->event_type == KMON_EV_PROCESS_EXEC) {
		PUTS(&o, ",\"filename\":");
		put_str(&o, ev->data.filename, sizeof(ev->data.filename));
		/* The kernel keeps 63 bytes of the path: say when it kept less
		 * than the whole, so nobody takes a cut path for the real one. */
		if (ev->flags & KMON_EVF_TRUNCATED)
			PUTS(&o, ",\"filename_truncated\":true");
		else
			PUTS(&o, ",\"filename_truncated\":false");
	} else {
		PUTS(&o, ",\"ptr\":");
		put_hex(&o, ev->data.mem.ptr);
		PUTS(&o, ",\"call_site\":");
		put_hex(&o, ev->data.mem.call_site);
	}
	PUTS(&o, ",\"cgroup_id\":");
	put_u64(&o, ev->cgroup_id);
	PUTS(&o, ",\"container_id\":");
	put_str(&o, meta ? meta->container_id : empty, meta ? sizeof(meta->container_id) : 0);
	PUTS(&o, ",\"pod_uid\":");
	put_str(&o, meta ? meta->pod_uid : empty, meta ? sizeof(meta->pod_uid) : 0);
	PUTS(&o, ",\"pod\":");
	put_str(&o, meta ? meta->pod : empty, meta ? sizeof(meta->pod) : 0);
	PUTS(&o, ",\"namespace\":");
	put_str(&o, meta ? meta->namespace : empty, meta ? sizeof(meta->namespace) : 0);
	PUTS(&o, ",\"container\":");
	put_str(&o, meta ? meta->container : empty, meta ? sizeof(meta->container) : 0);
	PUTS(&o, ",\"node\":");
	put_str(&o, node ? node : empty, node ? strlen(node) : 0);
	PUTS(&o, "}\n");
	if (o.full)
		return -ENOSPC;
	return (int)(o.p - buf);
}

uint64_t event_json__boot_offset_ns(void)
{
	struct timespec r, b;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_BOOTTIME, &b);
	return ((uint64_t)r.tv_sec * 1000000000ull + (uint64_t)r.tv_nsec) -
	       ((uint64_t)b.tv_sec * 1000000000ull + (uint64_t)b.tv_nsec);
}
