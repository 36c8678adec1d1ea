// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "shm/proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/types.h>

#include "bpf/kmon_event.h"
#include "shm/err.h"
#include "shm/ring.h"

#define fail(s, err, errlen, ...) \
	((enum kmon_hello_status)kmon_err__set(err, errlen, (int)(s), __VA_ARGS__))

/* A fixed field must hold a NUL and nothing but printable ASCII before it. */
static bool field_ok(const char *f, size_t cap, bool allow_empty)
{
	const char *nul = memchr(f, '\0', cap);
	size_t i, n;

	if (!nul)
		return false;
	n = (size_t)(nul - f);
	if (!n && !allow_empty)
		return false;
	for (i = 0; i < n; i++)
		if (f[i] < 0x21 || f[i] > 0x7e)
			return false;
	return true;
}

/* Kubernetes namespace names are RFC 1123 labels. */
static bool ns_ok(const char *f)
{
	const char *nul = memchr(f, '\0', KMON_PROTO_NS_LEN);
	size_t i, n;

	if (!nul)
		return false;
	n = (size_t)(nul - f);
	if (n < 1 || n > 63 || f[0] == '-' || f[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= '0' && f[i] <= '9') || f[i] == '-'))
			return false;
	return true;
}

enum kmon_hello_status kmon_hello_check(const void *msg, size_t msg_len, uint64_t max_ring_bytes,
					uint64_t max_replay_bytes, char *err, size_t errlen)
{
	struct kmon_hello h;
	unsigned i;

	if (msg_len < sizeof(h.magic) + sizeof(h.version))
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen, "hello of %zu bytes is too short",
			    msg_len);
	memcpy(&h, msg, msg_len < sizeof(h) ? msg_len : sizeof(h));
	if (h.magic != KMON_PROTO_MAGIC)
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen,
			    "not a kmon hello (magic 0x%08x)", h.magic);
	/* Version before size: a newer client's hello may have another size. */
	if (h.version != KMON_PROTO_VERSION)
		return fail(KMON_HELLO_BAD_VERSION, err, errlen,
			    "protocol version %u not supported (agent speaks %u)", h.version,
			    KMON_PROTO_VERSION);
	if (msg_len != sizeof(h))
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen,
			    "hello of %zu bytes, expected %zu", msg_len, sizeof(h));
	if (h.flags & ~(uint32_t)KMON_HELLO_F_SHARED)
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen, "unknown hello flags 0x%x", h.flags);
	if (h.event_mask & ~(uint32_t)(KMON_EV_MASK_ALL))
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen, "unknown event types in mask 0x%x",
			    h.event_mask);
	if (!field_ok(h.name, sizeof(h.name), false))
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen,
			    "consumer name must be 1-%d printable characters without spaces",
			    KMON_PROTO_NAME_MAX - 1);
	if (h.n_namespaces > KMON_PROTO_NS_MAX)
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen, "%u namespaces, at most %d",
			    h.n_namespaces, KMON_PROTO_NS_MAX);
	for (i = 0; i < h.n_namespaces; i++)
		if (!ns_ok(h.namespaces[i]))
			return fail(KMON_HELLO_BAD_MESSAGE, err, errlen,
				    "namespace #%u is not a Kubernetes namespace name", i + 1);
	if (h.ring_bytes && (h.ring_bytes < KMON_RING_MIN_BYTES ||
			     (h.ring_bytes & (h.ring_bytes - 1))))
		return fail(KMON_HELLO_BAD_MESSAGE, err, errlen,
			    "ring size %llu is not a power of two of at least %u",
			    (unsigned long long)h.ring_bytes, KMON_RING_MIN_BYTES);
	if (h.ring_bytes > max_ring_bytes)
		return fail(KMON_HELLO_TOO_BIG, err, errlen,
			    "ring size %llu is above the agent's limit %llu (--max-ring-size)",
			    (unsigned long long)h.ring_bytes, (unsigned long long)max_ring_bytes);
	if (h.replay_bytes > max_replay_bytes)
		return fail(KMON_HELLO_TOO_BIG, err, errlen,
			    "replay of %llu bytes is above the agent's history %llu (--history-bytes)",
			    (unsigned long long)h.replay_bytes, (unsigned long long)max_replay_bytes);
	return KMON_HELLO_OK;
}

int kmon_hello_reply_check(const void *msg, size_t msg_len, char *err, size_t errlen)
{
	const struct kmon_hello_reply *r = msg;

	if (msg_len != sizeof(*r) || r->magic != KMON_PROTO_MAGIC) {
		snprintf(err, errlen, "agent sent a malformed reply (%zu bytes)", msg_len);
		return -EPROTO;
	}
	if (r->version != KMON_PROTO_VERSION) {
		snprintf(err, errlen, "agent speaks protocol %u, this consumer %u", r->version,
			 KMON_PROTO_VERSION);
		return -EPROTO;
	}
	if (!memchr(r->node, '\0', sizeof(r->node)) || !memchr(r->error, '\0', sizeof(r->error))) {
		snprintf(err, errlen, "agent sent unterminated strings");
		return -EPROTO;
	}
	if (r->step != KMON_STEP_OFFER && r->step != KMON_STEP_ATTACHED) {
		snprintf(err, errlen, "agent sent a reply of unknown step %u", r->step);
		return -EPROTO;
	}
	if (r->flags & ~(uint16_t)KMON_REPLY_F_SHARED ||
	    (r->flags && r->step != KMON_STEP_ATTACHED)) {
		snprintf(err, errlen, "agent sent reply flags 0x%x at step %u", r->flags, r->step);
		return -EPROTO;
	}
	return 0;
}

int kmon_ready_check(const void *msg, size_t msg_len, char *err, size_t errlen)
{
	const struct kmon_ready *r = msg;

	if (msg_len != sizeof(*r) || r->magic != KMON_PROTO_MAGIC ||
	    r->version != KMON_PROTO_VERSION || r->flags) {
		snprintf(err, errlen, "malformed ready message (%zu bytes, expected %zu)", msg_len,
			 sizeof(*r));
		return -EPROTO;
	}
	return 0;
}

const char *kmon_hello_status_name(enum kmon_hello_status s)
{
	switch (s) {
	case KMON_HELLO_OK: return "ok";
	case KMON_HELLO_BAD_MESSAGE: return "bad message";
	case KMON_HELLO_BAD_VERSION: return "unsupported version";
	case KMON_HELLO_TOO_BIG: return "too big";
	case KMON_HELLO_TOO_MANY: return "too many consumers";
	case KMON_HELLO_INTERNAL: return "internal error";
	case KMON_HELLO_NO_BUDGET: return "shared-memory budget exhausted";
	case KMON_HELLO_UID_LIMIT: return "too many consumers for this uid";
	case KMON_HELLO_NOT_POPULATED: return "ring not populated";
	}
	return "unknown";
}

long kmon_proto_send(int sock, const void *msg, size_t len, const int *fds, unsigned n_fds)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	union {
		char buf[CMSG_SPACE(KMON_PROTO_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	if (n_fds > KMON_PROTO_FDS)
		return -EINVAL;
	if (n_fds) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
	}
	n = sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? -errno : (long)n;
}

long kmon_proto_recv(int sock, void *buf, size_t len, int fds[KMON_PROTO_FDS], unsigned *n_fds,
		     int flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	ssize_t n;

	*n_fds = 0;
	n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_TRUNC | flags);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		size_t k, cnt;
		int got[8];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (cnt > 8)
			cnt = 8;
		memcpy(got, CMSG_DATA(cm), cnt * sizeof(int));
		for (k = 0; k < cnt; k++) {
			/* A peer sending more than the protocol has must not leak
			 * descriptors into us. */
			if (*n_fds < KMON_PROTO_FDS)
				fds[(*n_fds)++] = got[k];
			else
				close(got[k]);
		}
	}
	return (long)n;
}
