// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libFuzzer: the kubelet PodList parser on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/podlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1), err[256];
	struct podlist *pl;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	pl = podlist__parse(buf, size, 1000, err, sizeof(err));
	if (pl) {
		for (unsigned i = 0; i < pl->n_pods; i++)
			for (unsigned j = 0; j < pl->pods[i].n_containers; j++)
				if (strlen(pl->pods[i].containers[j].id) != 64)
					abort();
	}
	podlist__free(pl);
	free(buf);
	return 0;
}
