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
		unsigned long total = 0;

		/* Ids are always 64 hex; the list never holds more instances
		 * than the bound, nor a pod more than its share. */
		for (unsigned i = 0; i < pl->n_pods; i++) {
			if (pl->pods[i].n_containers > pl->pods[i].cap)
				abort();
			total += pl->pods[i].n_containers;
			for (unsigned j = 0; j < pl->pods[i].n_containers; j++)
				if (strlen(pl->pods[i].containers[j].id) != 64)
					abort();
		}
		if (total > PODLIST_MAX_INSTANCES || pl->n_pods > 1000)
			abort();
	}
	podlist__free(pl);
	free(buf);
	return 0;
}
