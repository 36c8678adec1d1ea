// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libFuzzer: what consumers do with a record: decode the kernel event and
 * encode it, with its container metadata, as a JSON line; the line must
 * always be valid JSON (checked with cJSON). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <linux/types.h>

#include "bpf/event_util.h"
#include "bpf/kmon_event.h"
#include "shm/common/event_json.h"
#include "shm/meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kmon_event ev;
	struct kmon_meta meta;
	char line[KMON_EVENT_JSON_MAX];
	char node[254];
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
	line[n - 1] = '\0';
	j = cJSON_Parse(line);
	if (!j)
		abort();
	cJSON_Delete(j);
	return 0;
}
