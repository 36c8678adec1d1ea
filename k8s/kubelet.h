/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * GET <kubelet>/pods with libcurl. Blocking: the agent calls it on the libuv
 * thread pool, never on the drain or the loop thread.
 *
 * The bearer token is re-read on every request (projected service-account
 * tokens rotate). Responses are capped at max_body bytes (the transfer is
 * aborted past it, nothing larger is ever buffered) and may be gzip'd. Errors
 * come back as one line saying what to do: a 401/403 names the RBAC rule, a
 * TLS failure names the flags, since kubelet serving certificates are often
 * not signed by the cluster CA.
 */
#ifndef KMON_K8S_KUBELET_H
#define KMON_K8S_KUBELET_H

#include <stdbool.h>
#include <stddef.h>

struct kubelet_opts {
	size_t sz;
	const char *url;        /* base, e.g. https://10.0.0.1:10250 */
	const char *token_file; /* NULL: no Authorization header */
	const char *ca_file;    /* NULL: the system trust store */
	bool insecure;          /* skip TLS verification (explicit opt-in) */
	long timeout_ms;        /* whole request; default 10 s */
	size_t max_body;        /* default KUBELET_DEFAULT_MAX_BODY */
};

#define KUBELET_DEFAULT_MAX_BODY ((size_t)64 << 20)

struct kubelet;

/* NULL with errno EINVAL (no url, sz smaller than this header's opts) or ENOMEM. */
struct kubelet *kubelet__new(const struct kubelet_opts *o);
void kubelet__free(struct kubelet *k);
/* 0 with a malloc'd NUL-terminated body (any 200 answer; parsing it is the
 * caller's job), or -errno with a one-line err: ECONNREFUSED, ETIMEDOUT,
 * EACCES (HTTP 401/403), EPROTO (TLS), E2BIG (over max_body), EIO (other HTTP
 * status or transfer error), ENOENT/EACCES/EINVAL/E2BIG (token file). *status
 * is the HTTP status (0 when none was received). */
int kubelet__get_pods(struct kubelet *k, char **body, size_t *len, long *status, char *err,
		      size_t errlen);

#endif
