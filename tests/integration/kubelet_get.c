// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test driver for the kubelet client library alone (no agent): one
 * struct kubelet, one GET /pods per "get" line on stdin, one result line per
 * request on stdout, so a test can change the server (token, mode, pods)
 * between two requests of the same client and see what the library does.
 *
 *   kubelet_get --url URL [--token-file F] [--ca-file F] [--insecure]
 *               [--timeout-ms N] [--max-body N]
 *
 * Result line, tab-separated:
 *   rc=<int>  status=<http>  len=<bytes>  pods=<n|-1>  err=<library or parser error>
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/kubelet.h"
#include "k8s/kubelet_args.h"
#include "k8s/podlist.h"

static int get_once(struct kubelet *k)
{
	char err[512] = "", perr[256] = "";
	char *body = NULL;
	size_t len = 0;
	long status = 0;
	long pods = -1;
	int rc;

	rc = kubelet__get_pods(k, &body, &len, &status, err, sizeof(err));
	if (!rc) {
		struct podlist *pl = podlist__parse(body, len, 10000, perr, sizeof(perr));

		if (pl)
			pods = pl->n_pods;
		else
			snprintf(err, sizeof(err), "podlist: %s", perr);
		podlist__free(pl);
		/* The library promises a NUL-terminated body. */
		if (body[len] != '\0') {
			fprintf(stderr, "body not NUL-terminated\n");
			free(body);
			return -1;
		}
	}
	free(body);
	if (printf("rc=%d\tstatus=%ld\tlen=%zu\tpods=%ld\terr=%s\n", rc, status, len, pods, err) <
		    0 ||
	    fflush(stdout))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct kubelet_opts o = { .sz = sizeof(o) };
	struct kubelet *k;
	char line[64];
	char err[256];
	int ret = 1;

	if (kubelet_args__parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "kubelet_get: %s; then 'get' lines on stdin\n", err);
		return 2;
	}
	k = kubelet__new(&o);
	if (!k) {
		fprintf(stderr, "kubelet__new: %s\n", strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), stdin)) {
		if (strncmp(line, "get", 3))
			continue;
		if (get_once(k))
			goto out;
	}
	ret = 0;
out:
	kubelet__free(k);
	return ret;
}
