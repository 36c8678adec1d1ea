/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's kubelet client: GET /pods through kmon-kubelet-get, a child
 * run for each request (agent/kubelet_get_main.c says why). Same contract as
 * kubelet__get_pods (k8s/kubelet.h), blocking: called on the libuv thread
 * pool only.
 *
 * The helper is opened when this is made, while the agent is still root, and
 * run from that descriptor: the agent's user need not be able to reach its
 * path, and a path changed later runs nothing else. The child gets /dev/null,
 * the pipe and the agent's stderr, no other descriptor of the agent's, an
 * empty environment (a node's proxy settings must not route kubelet
 * traffic), and is killed once it has answered or when it has not within
 * the request's timeout plus a margin.
 */
#ifndef KMON_AGENT_KUBELET_PROC_H
#define KMON_AGENT_KUBELET_PROC_H

#include <stdbool.h>
#include <stddef.h>

struct kubelet_proc_opts {
	size_t sz;
	const char *helper;     /* path of kmon-kubelet-get */
	const char *url;
	const char *token_file; /* NULL: no Authorization header */
	const char *ca_file;    /* NULL: the system trust store */
	bool insecure;
	long timeout_ms;        /* the request's; the child gets 5 s more */
	size_t max_body;        /* 0: 16 MiB; the reply's body is refused beyond it */
};

struct kubelet_proc;

/* NULL with err saying why (the helper cannot be opened, or no memory). */
struct kubelet_proc *kubelet_proc__new(const struct kubelet_proc_opts *o, char *err,
				       size_t errlen);
void kubelet_proc__free(struct kubelet_proc *kp);
/* 0 with a malloc'd NUL-terminated body, or -errno with a one-line err: the
 * kubelet's errors as k8s/kubelet.h lists them, and the helper's own (it
 * could not run, died, said nothing in time, or sent what is not a reply). */
int kubelet_proc__get_pods(struct kubelet_proc *kp, char **body, size_t *len, long *status,
			   char *err, size_t errlen);

#endif
