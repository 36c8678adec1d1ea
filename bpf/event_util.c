// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "bpf/event_util.h"

#include <errno.h>
#include <string.h>

static const char *const type_names[] = {
	[KMON_EV_MEMORY_ALLOC] = "memory_alloc",
	[KMON_EV_MEMORY_FREE] = "memory_free",
	[KMON_EV_PROCESS_EXEC] = "process_exec",
	[KMON_EV_SLAB_ALLOC] = "slab_alloc",
	[KMON_EV_SLAB_FREE] = "slab_free",
	[KMON_EV_OOM_KILL] = "oom_kill",
};
_Static_assert(sizeof(type_names) / sizeof(type_names[0]) == KMON_EV_TYPE_MAX + 1,
	       "a name for every event type");

int kmon_event_decode(const void *data, size_t len, struct kmon_event *out)
{
	if (!data || len < sizeof(*out))
		return -EINVAL;
	memcpy(out, data, sizeof(*out));
	if (out->version < 1 || !kmon_event_type_name(out->event_type))
		return -EPROTO;
	return 0;
}

const char *kmon_event_type_name(uint32_t type)
{
	if (type == 0 || type > KMON_EV_TYPE_MAX)
		return NULL;
	return type_names[type];
}

uint32_t kmon_event_type_parse(const char *name)
{
	for (uint32_t t = 1; t <= KMON_EV_TYPE_MAX; t++)
		if (strcmp(name, type_names[t]) == 0)
			return t;
	return 0;
}

int kmon_event_mask_parse(const char *list, uint32_t *mask, const char **bad, size_t *bad_len)
{
	const char *p = list;
	uint32_t m = 0;

	if (!list || !*list) {
		*bad = list;
		*bad_len = 0;
		return -EINVAL;
	}
	for (;;) {
		size_t n = strcspn(p, ",");
		uint32_t t = 0;

		for (uint32_t i = 1; i <= KMON_EV_TYPE_MAX; i++) {
			if (strlen(type_names[i]) == n && strncmp(p, type_names[i], n) == 0)
				t = i;
		}
		if (!t) {
			*bad = p;
			*bad_len = n;
			return -EINVAL;
		}
		m |= KMON_EV_MASK(t);
		if (!p[n])
			break;
		p += n + 1;
	}
	*mask = m;
	return 0;
}

size_t kmon_strncpy_field(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t n = strnlen(src, srclen);

	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}
