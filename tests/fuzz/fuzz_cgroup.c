// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libFuzzer: the cgroup classifier on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/cgroup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cgroup_info info;
	/* An exact-size copy: ASan catches any read past the end. */
	char *buf = malloc(size ? size : 1);
	char *json;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (cgroup__classify(buf, size, &info) == 0) {
		if (memchr(info.container_id, 0, sizeof(info.container_id)) == NULL ||
		    memchr(info.pod_uid, 0, sizeof(info.pod_uid)) == NULL)
			abort();
		json = cgroup__to_json(&info);
		free(json);
	}
	free(buf);
	return 0;
}
