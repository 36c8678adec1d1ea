/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * User-space helpers around struct kmon_event (bpf/kmon_event.h): checked
 * decoding of a raw record, event type names, and copying the kernel's
 * fixed-size strings, which readers must not trust to be NUL-terminated.
 */
#ifndef KMON_EVENT_UTIL_H
#define KMON_EVENT_UTIL_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/kmon_event.h"

/* Copies a record of len bytes into out. Records from a newer producer may be
 * longer (fields are only appended); shorter ones or an unknown type are
 * rejected. Returns 0 or -EINVAL / -EPROTO. */
int kmon_event_decode(const void *data, size_t len, struct kmon_event *out);

/* "memory_alloc" ... or NULL for an unknown type. */
const char *kmon_event_type_name(uint32_t type);
/* Returns the type for a name, or 0 when unknown. */
uint32_t kmon_event_type_parse(const char *name);
/* Parses "memory_alloc,process_exec" into a KMON_EV_MASK() set. Returns 0, or
 * -EINVAL with *bad pointing at the offending item (within list). */
int kmon_event_mask_parse(const char *list, uint32_t *mask, const char **bad, size_t *bad_len);

/* Copies at most srclen bytes of a possibly unterminated string into dst
 * (size dstlen > 0), always NUL-terminating. Returns the copied length. */
size_t kmon_strncpy_field(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
