// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libFuzzer: what consumers do with a record: decode the kernel event and
 * encode it, with its container metadata, as a JSON line; the line must
 * always be valid JSON (checked with cJSON), byte for byte what the encoder
 * before issue 18 wrote (tests/support/event_json_ref.c), directly and
 * through the per-container cache. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <linux/types.h>

#include "bpf/event_util.h"
#include "bpf/kmon_event.h"
#include "shm/common/event_json.h"
#include "shm/meta.h"
#include "tests/support/event_json_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kmon_event ev;
	struct kmon_meta meta;
	static struct event_json_cache *cache;
	static char line[KMON_EVENT_JSON_MAX], ref[KMON_EVENT_JSON_MAX], viac[KMON_EVENT_JSON_MAX];
	char node[254];
	int nr, nc;
	cJSON *j;
	int n;

	if (size < sizeof(ev))
		return 0;
	memcpy(&ev, data, sizeof(ev));
	memset(&meta, 0, sizeof(meta));
	memcpy(&meta, data + sizeof(ev),
	       size - sizeof(ev) < sizeof(meta) ? size - sizeof(ev) : sizeof(meta));
	/* The client terminates META strings it receives. */
	meta.container_id[sizeof(meta.container_id) - 1] = meta.pod_uid[sizeof(meta.pod_uid) - 1] = 0;
	meta.pod[sizeof(meta.pod) - 1] = meta.namespace[sizeof(meta.namespace) - 1] = 0;
	meta.container[sizeof(meta.container) - 1] = 0;
	/* The worst node name: 253 control bytes, each escaped to 6. */
	memset(node, 0x01, sizeof(node) - 1);
	node[sizeof(node) - 1] = 0;
	n = event_json__write(line, sizeof(line), &ev, size > sizeof(ev) ? &meta : NULL,
			      size & 1 ? node : "node", 0);
	if (n <= 0 || line[n - 1] != '\n')
		abort();
	/* The old encoder's fields: v1 types and frees not charged to an owner,
	 * raw addresses (v2 types and named call sites are written in ways it
	 * never wrote). */
	if (ev.event_type == KMON_EV_SLAB_ALLOC || ev.event_type == KMON_EV_SLAB_FREE ||
	    ev.event_type == KMON_EV_OOM_KILL || (ev.flags & KMON_EVF_ADDR_OPAQUE) ||
	    (ev.event_type == KMON_EV_MEMORY_FREE && (ev.flags & KMON_EVF_OWNER_CHARGED)))
		nr = event_json__write(ref, sizeof(ref), &ev, size > sizeof(ev) ? &meta : NULL,
				       size & 1 ? node : "node", 0);
	else
		nr = event_json_ref__write(ref, sizeof(ref), &ev, size > sizeof(ev) ? &meta : NULL,
					   size & 1 ? node : "node", 0);
	if (!cache && !(cache = event_json_cache__new(8)))
		abort();
	/* meta's bytes change in place from one input to the next */
	event_json_cache__invalidate(cache);
	nc = event_json__write_cached(cache, viac, sizeof(viac), &ev,
				      size > sizeof(ev) ? &meta : NULL, size & 1 ? node : "node", 0, NULL);
	if (nr != n || nc != n || memcmp(ref, line, (size_t)n) || memcmp(viac, line, (size_t)n))
		abort();
	line[n - 1] = '\0';
	j = cJSON_Parse(line);
	if (!j)
		abort();
	cJSON_Delete(j);
	return 0;
}
