// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "k8s/kubelet_reply.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/common/fdio.h"
#include "shm/err.h"

int kubelet_reply__write(int fd, int rc, long status, const char *err, const char *body,
			 size_t len)
{
	struct kubelet_reply_hdr h;
	size_t elen = err ? strnlen(err, KUBELET_REPLY_MAX_ERR) : 0;
	int r;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, KUBELET_REPLY_MAGIC, sizeof(h.magic));
	h.rc = rc;
	h.err_len = (uint32_t)elen;
	h.status = status;
	h.body_len = rc || !body ? 0 : len;
	r = kmon_fd__write_all(fd, &h, sizeof(h), NULL);
	if (!r && elen)
		r = kmon_fd__write_all(fd, err, elen, NULL);
	if (!r && h.body_len)
		r = kmon_fd__write_all(fd, body, len, NULL);
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Exactly n bytes before the deadline: 0, -ETIMEDOUT, -EPIPE (end of the
 * pipe first) or another -errno. */
static int read_full(int fd, void *p, size_t n, int64_t deadline)
{
	char *c = p;

	while (n) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t got;
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pf, 1, left > 60000 ? 60000 : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!r)
			continue;
		got = read(fd, c, n);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (!got)
			return -EPIPE;
		c += got;
		n -= (size_t)got;
	}
	return 0;
}

static int cut(char *err, size_t errlen, int r, const char *what)
{
	if (r == -ETIMEDOUT)
		return kmon_err__set(err, errlen, -ETIMEDOUT, "kubelet helper: no complete reply "
				     "within the deadline (%s)", what);
	if (r == -EPIPE)
		return kmon_err__set(err, errlen, -EPROTO, "kubelet helper: reply cut short in "
				     "its %s", what);
	return kmon_err__set(err, errlen, r, "kubelet helper: cannot read its %s: %s", what,
			     strerror(-r));
}

int kubelet_reply__read(int fd, int timeout_ms, size_t max_body, char **body, size_t *len,
			long *status, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	char line[KUBELET_REPLY_MAX_ERR + 1];
	struct kubelet_reply_hdr h;
	char *buf;
	int r;

	*body = NULL;
	*len = 0;
	*status = 0;
	r = read_full(fd, &h, sizeof(h), deadline);
	if (r)
		return cut(err, errlen, r, "header");
	if (memcmp(h.magic, KUBELET_REPLY_MAGIC, sizeof(h.magic)))
		return kmon_err__set(err, errlen, -EPROTO, "kubelet helper: not a reply (bad "
				     "magic): is --kubelet-helper kmon-kubelet-get of this version?");
	if (h.rc > 0 || h.rc < -4095 || h.err_len > KUBELET_REPLY_MAX_ERR ||
	    h.status < 0 || h.status > 999 || (h.rc && h.body_len))
		return kmon_err__set(err, errlen, -EPROTO, "kubelet helper: inconsistent reply "
				     "(rc %d, error line %u bytes, status %lld, body %llu bytes)",
				     h.rc, h.err_len, (long long)h.status,
				     (unsigned long long)h.body_len);
	if (h.body_len > max_body)
		return kmon_err__set(err, errlen, -E2BIG, "kubelet helper: body of %llu bytes over "
				     "the %zu-byte cap", (unsigned long long)h.body_len, max_body);
	r = read_full(fd, line, h.err_len, deadline);
	if (r)
		return cut(err, errlen, r, "error line");
	line[h.err_len] = '\0';
	*status = (long)h.status;
	if (h.rc) {
		/* The kubelet's error, as the client library said it. */
		kmon_err__set(err, errlen, 0, "%s", line);
		return h.rc;
	}
	buf = malloc((size_t)h.body_len + 1);
	if (!buf)
		return kmon_err__set(err, errlen, -ENOMEM, "kubelet helper: no memory for a "
				     "%llu-byte body", (unsigned long long)h.body_len);
	r = read_full(fd, buf, (size_t)h.body_len, deadline);
	if (r) {
		free(buf);
		return cut(err, errlen, r, "body");
	}
	buf[h.body_len] = '\0';
	*body = buf;
	*len = (size_t)h.body_len;
	return 0;
}
