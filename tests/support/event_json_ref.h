/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The old event JSON encoder, for tests and benchmarks only (event_json_ref.c). */
#ifndef KMON_TESTS_EVENT_JSON_REF_H
#define KMON_TESTS_EVENT_JSON_REF_H

#include <stddef.h>
#include <stdint.h>

struct kmon_event;
struct kmon_meta;

int event_json_ref__write(char *buf, size_t cap, const struct kmon_event *ev,
			  const struct kmon_meta *meta, const char *node, uint64_t boot_offset_ns);

#endif
