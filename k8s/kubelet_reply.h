/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One kubelet answer, as kmon-kubelet-get hands it to the agent over a pipe:
 * the result of kubelet__get_pods (k8s/kubelet.h) in a fixed header, then
 * the error line, then the body. The agent runs the kubelet client (libcurl,
 * TLS, the peer's bytes) in that short-lived child instead of in itself, so
 * the reader treats the pipe as hostile: every length is checked against the
 * caller's caps before anything is allocated, and the read has a deadline.
 */
#ifndef KMON_K8S_KUBELET_REPLY_H
#define KMON_K8S_KUBELET_REPLY_H

#include <stddef.h>
#include <stdint.h>

/* The longest error line carried; longer ones are cut by the writer. */
#define KUBELET_REPLY_MAX_ERR 1024u

#define KUBELET_REPLY_MAGIC "KMKUBE01"

/* The reply on the wire, host byte order (both ends are on one machine):
 * this header, err_len bytes of error line, body_len bytes of body. */
struct kubelet_reply_hdr {
	char magic[8];     /* KUBELET_REPLY_MAGIC, no NUL */
	int32_t rc;        /* 0, or -errno of a failed request (then no body) */
	uint32_t err_len;  /* at most KUBELET_REPLY_MAX_ERR */
	int64_t status;    /* HTTP status, 0 when none was received */
	uint64_t body_len;
};

/* Writes the whole reply to fd (blocking); 0 or -errno. rc is 0 or -errno;
 * body and len are only sent when rc is 0. */
int kubelet_reply__write(int fd, int rc, long status, const char *err, const char *body,
			 size_t len);

/* Reads one reply from fd within timeout_ms. Returns the reply's rc (0 with
 * a malloc'd NUL-terminated *body of *len bytes, or the kubelet error it
 * carries, its line in err) and *status. A reply that cannot be trusted
 * fails with err naming what was wrong: -ETIMEDOUT (nothing complete within
 * the deadline), -EPROTO (not a reply, cut short, or inconsistent), -E2BIG
 * (a body announced over max_body: refused before any allocation). */
int kubelet_reply__read(int fd, int timeout_ms, size_t max_body, char **body, size_t *len,
			long *status, char *err, size_t errlen);

#endif
