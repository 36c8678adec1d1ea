/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The event JSON line every kmon output shares (forward to stdout, files,
 * HTTP). Field order and names are the contract:
 *   type, timestamp, time, pid, tid, comm, size, filename and
 *   filename_truncated (exec) or ptr and call_site (memory: hex strings, or call_site the symbol's
 *   name, see event_json__write_sym; alloc_call_site for charged frees),
 *   cgroup_id, container_id, pod_uid, pod, namespace, container, node
 * comm and filename are kernel bytes: quotes, backslashes and control
 * characters are escaped and invalid UTF-8 becomes U+FFFD, so every line is
 * valid JSON whatever a process calls itself.
 */
#ifndef KMON_CONSUMERS_EVENT_JSON_H
#define KMON_CONSUMERS_EVENT_JSON_H

#include <stddef.h>
#include <stdint.h>

struct kmon_event;
struct kmon_meta;
struct kmon_symtab;

/* Bytes that always hold one line, whatever the record and metadata hold
 * (every string byte escaped as \u00XX, a 253-byte node name). */
#define KMON_EVENT_JSON_MAX 8192

/* Writes one object and '\n' into buf. No allocation, no locks; safe from
 * any thread. Returns its length, or -ENOSPC when
 * cap is too small (nothing usable is left in buf then). meta may be NULL. */
int event_json__write(char *buf, size_t cap, const struct kmon_event *ev,
		      const struct kmon_meta *meta, const char *node, uint64_t boot_offset_ns);
/* The same, resolving call sites through the agent's symbol table (st may
 * be NULL). With KMON_EVF_ADDR_OPAQUE, call_site and (charged frees)
 * alloc_call_site are symbol names, "function+0xoff [module]", or null when
 * unresolved, and ptr is the agent's opaque id in hex; without it both are
 * raw hex addresses (--raw-kernel-addresses). Names are cut at
 * KMON_EVENT_JSON_SYM_MAX - 1 bytes. */
int event_json__write_sym(char *buf, size_t cap, const struct kmon_event *ev,
			  const struct kmon_meta *meta, const char *node, uint64_t boot_offset_ns,
			  const struct kmon_symtab *st);
#define KMON_EVENT_JSON_SYM_MAX 256
/*
 * The part of a line that depends only on the container (container_id, pod_uid,
 * pod, namespace, container, node), escaped once and kept per container key:
 * the encoder then copies it instead of escaping ~300 bytes per event. A fixed
 * number of slots (direct-mapped by key; a container whose strings are longer
 * than a slot is encoded per event, still right). Not thread-safe: one per
 * encoding thread.
 */
struct event_json_cache;

struct event_json_cache_stats {
	uint64_t hits, misses;
	uint64_t invalidations;
	uint64_t too_long; /* container strings too long to keep */
};

/* n_slots: 1 to 65536 (rounded up to a power of two; ~530 bytes each). NULL
 * with errno on failure. */
struct event_json_cache *event_json_cache__new(unsigned n_slots);
void event_json_cache__free(struct event_json_cache *c);
/* Forget every kept part: call when any container's metadata changed (the
 * client's on_meta) or the node name's contents did. A different node
 * pointer is noticed by itself. */
void event_json_cache__invalidate(struct event_json_cache *c);
void event_json_cache__get_stats(const struct event_json_cache *c,
				 struct event_json_cache_stats *out);
/* event_json__write_sym, byte for byte, with the container's part from c. */
int event_json__write_cached(struct event_json_cache *c, char *buf, size_t cap,
			     const struct kmon_event *ev, const struct kmon_meta *meta,
			     const char *node, uint64_t boot_offset_ns, const struct kmon_symtab *st);

/* CLOCK_REALTIME - CLOCK_BOOTTIME now: add to a kernel timestamp (boot ns)
 * for wall-clock time. */
uint64_t event_json__boot_offset_ns(void);
/* Appends s (at most n bytes, stopping at NUL) as a JSON string with quotes.
 * Returns bytes written or -ENOSPC. Exposed for tests and other encoders. */
int event_json__string(char *out, size_t cap, const char *s, size_t n);
/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid
 * (overlong, surrogate, beyond U+10FFFF, cut short). The one validator the
 * encoders share. */
size_t event_json__utf8_len(const unsigned char *s, size_t n);

#endif
