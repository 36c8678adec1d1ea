// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon-kubelet-get: one GET <kubelet>/pods, its result written to stdout as a
 * kubelet reply (k8s/kubelet_reply.h). kmon-agent runs it for every PodList
 * refresh, as its own unprivileged user, with nothing of the agent's open
 * but the pipe. Why a child rather than libcurl in the agent:
 *  - the kubelet's bytes (TLS, HTTP, gzip) are handled in a process that
 *    holds no BPF map, ring or consumer descriptor, and is gone a moment
 *    later: a flaw in that stack reached through the network ends there;
 *  - libcurl's tree (OpenSSL, libssh2, Kerberos, LDAP, ...) is not mapped
 *    into the long-running agent: about 2 MiB of its private memory (issue
 *    18, target 6), for an exec and a TLS handshake per refresh.
 * Not meant to be run by hand; it takes the agent's --kubelet-* values:
 *   kmon-kubelet-get --url URL [--token-file F] [--ca-file F] [--insecure]
 *                    [--timeout-ms N] [--max-body N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "k8s/kubelet.h"
#include "k8s/kubelet_args.h"
#include "k8s/kubelet_reply.h"

static int reply(int rc, long status, const char *err, const char *body, size_t len)
{
	int r = kubelet_reply__write(STDOUT_FILENO, rc, status, err, body, len);

	if (r) {
		fprintf(stderr, "kmon-kubelet-get: cannot write the reply: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct kubelet_opts o = { .sz = sizeof(o) };
	char err[KUBELET_REPLY_MAX_ERR] = "";
	struct kubelet *k;
	char *body = NULL;
	size_t len = 0;
	long status = 0;
	int c, rc;

	if (kubelet_args__parse(argc, argv, &o, err, sizeof(err))) {
		char why[sizeof(err) + 100]; /* the parser's message and the hint, whole */

		snprintf(why, sizeof(why), "kmon-kubelet-get: %s (it takes the agent's --kubelet-* "
			 "values; see kmon-agent --help)", err);
		reply(-EINVAL, 0, why, NULL, 0);
		return 2;
	}
	k = kubelet__new(&o);
	if (!k) {
		int e = errno;

		snprintf(err, sizeof(err), "kmon-kubelet-get: cannot set up the client: %s",
			 strerror(e));
		return reply(-e, 0, err, NULL, 0) ? 1 : 0;
	}
	rc = kubelet__get_pods(k, &body, &len, &status, err, sizeof(err));
	c = reply(rc, status, err, body, len);
	free(body);
	kubelet__free(k);
	return c;
}
