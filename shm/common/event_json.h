/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The event JSON line every kmon output shares (forward to stdout, files,
 * HTTP). Field order and names are the contract:
 *   type, timestamp, time, pid, tid, comm, size, filename and
 *   filename_truncated (exec) or ptr and call_site (memory, hex strings),
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

/* Bytes that always hold one line, whatever the record and metadata hold
 * (every string byte escaped as \u00XX, a 253-byte node name). */
#define KMON_EVENT_JSON_MAX 8192

/* Writes one object and '\n' into buf. Returns its length, or -ENOSPC when
 * cap is too small (nothing usable is left in buf then). meta may be NULL. */
int event_json__write(char *buf, size_t cap, const struct kmon_event *ev,
		      const struct kmon_meta *meta, const char *node, uint64_t boot_offset_ns);
/* CLOCK_REALTIME - CLOCK_BOOTTIME now: add to a kernel timestamp (boot ns)
 * for wall-clock time. */
uint64_t event_json__boot_offset_ns(void);
/* Appends s (at most n bytes, stopping at NUL) as a JSON string with quotes.
 * Returns bytes written or -ENOSPC. Exposed for tests and other encoders. */
int event_json__string(char *out, size_t cap, const char *s, size_t n);

#endif
