// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/control.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/fanout.h"
#include "agent/log.h"
#include "shm/proto.h"

struct peer {
	struct control *ctl;
	struct peer *next;
	int fd;
	uv_poll_t poll;
	uv_timer_t timer;
	struct ucred cred;
	char comm[32];
	char name[KMON_PROTO_NAME_MAX];
	uint32_t id; /* fan-out consumer id once attached, else 0 */
	int open_handles;
	bool closing;
};

struct control {
	struct control_opts o;
	char path[108];
	int fd;
	uv_poll_t poll;
	uv_async_t bad_async;
	struct peer *peers;
	unsigned pending;
	uint64_t refused_pending;
	int open_handles;
	bool closing;
};

static void peer_comm(pid_t pid, char *out, size_t n)
{
	char p[64];
	FILE *f;

	snprintf(out, n, "?");
	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return;
	if (fgets(out, (int)n, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

static void peer_handle_closed(uv_handle_t *h)
{
	struct peer *p = h->data;

	if (--p->open_handles == 0)
		free(p);
}

static void peer_close(struct peer *p, const char *why)
{
	struct control *c = p->ctl;
	struct fanout_consumer_stats st;
	struct peer **pp;

	if (p->closing)
		return;
	p->closing = true;
	for (pp = &c->peers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->id) {
		if (!fanout__detach(c->o.fanout, p->id, &st))
			log_info("consumer %u '%s' (uid %u pid %d) detached: %s; produced %llu "
				 "delivered %llu lost %llu",
				 p->id, p->name, (unsigned)p->cred.uid, (int)p->cred.pid, why,
				 (unsigned long long)st.produced, (unsigned long long)st.delivered,
				 (unsigned long long)st.lost);
	} else {
		c->pending--;
		if (why)
			log_info("control client uid %u pid %d (%s): %s", (unsigned)p->cred.uid,
				 (int)p->cred.pid, p->comm, why);
	}
	uv_close((uv_handle_t *)&p->poll, peer_handle_closed);
	uv_close((uv_handle_t *)&p->timer, peer_handle_closed);
	close(p->fd);
	p->fd = -1;
}

static void send_reply(struct peer *p, enum kmon_hello_status st, const char *errtxt,
		       uint32_t id, size_t ring_bytes, size_t replayed, const int *fds)
{
	struct kmon_hello_reply r;
	long n;

	memset(&r, 0, sizeof(r));
	r.magic = KMON_PROTO_MAGIC;
	r.version = KMON_PROTO_VERSION;
	r.status = (uint16_t)st;
	r.consumer_id = id;
	r.ring_bytes = ring_bytes;
	r.replay_bytes = replayed;
	snprintf(r.node, sizeof(r.node), "%s", p->ctl->o.node_name ? p->ctl->o.node_name : "");
	snprintf(r.error, sizeof(r.error), "%s", errtxt ? errtxt : "");
	/* A nonblocking socket with an empty buffer: a full one means the peer
	 * is not reading, which ends it anyway. */
	n = kmon_proto_send(p->fd, &r, sizeof(r), fds, fds ? KMON_PROTO_FDS : 0);
	if (n != (long)sizeof(r))
		log_debug("reply to pid %d failed: %s", (int)p->cred.pid,
			  n < 0 ? strerror((int)-n) : "short");
}

static void on_hello(struct peer *p)
{
	struct control *c = p->ctl;
	struct kmon_hello h;
	struct fanout_sub sub;
	enum kmon_hello_status st;
	char err[KMON_PROTO_ERR_MAX], why[300];
	size_t ring_bytes = 0, replayed = 0;
	ssize_t n;
	int fds[3], ret;

	memset(&h, 0, sizeof(h));
	n = recv(p->fd, &h, sizeof(h), MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN)
			return;
		peer_close(p, strerror(errno));
		return;
	}
	if (n == 0) {
		peer_close(p, "closed before hello");
		return;
	}
	st = kmon_hello_check(&h, (size_t)n, c->o.max_ring_bytes, c->o.history_bytes, err,
			      sizeof(err));
	if (st != KMON_HELLO_OK) {
		send_reply(p, st, err, 0, 0, 0, NULL);
		snprintf(why, sizeof(why), "hello refused (%s): %s", kmon_hello_status_name(st), err);
		peer_close(p, why);
		return;
	}
	memcpy(p->name, h.name, sizeof(p->name));
	memset(&sub, 0, sizeof(sub));
	sub.name = p->name;
	sub.uid = p->cred.uid;
	sub.pid = p->cred.pid;
	sub.event_mask = h.event_mask;
	sub.namespaces = (const char(*)[64])h.namespaces;
	sub.n_namespaces = h.n_namespaces;
	sub.ring_bytes = h.ring_bytes;
	sub.replay_bytes = h.replay_bytes;
	ret = fanout__attach(c->o.fanout, &sub, &p->id, fds, &ring_bytes, &replayed);
	if (ret) {
		st = ret == -ENOSPC ? KMON_HELLO_TOO_MANY : KMON_HELLO_INTERNAL;
		if (ret == -ENOSPC)
			snprintf(err, sizeof(err), "the agent already has its maximum of consumers "
				 "(--max-consumers)");
		else
			snprintf(err, sizeof(err), "cannot create the ring: %s", strerror(-ret));
		p->id = 0;
		send_reply(p, st, err, 0, 0, 0, NULL);
		snprintf(why, sizeof(why), "hello '%s' refused: %s", p->name, err);
		peer_close(p, why);
		return;
	}
	c->pending--;
	uv_timer_stop(&p->timer);
	send_reply(p, KMON_HELLO_OK, NULL, p->id, ring_bytes, replayed, fds);
	log_info("consumer %u '%s' attached: uid %u pid %d (%s), ring %zu bytes, mask 0x%x, "
		 "%u namespaces, replayed %zu bytes",
		 p->id, p->name, (unsigned)p->cred.uid, (int)p->cred.pid, p->comm, ring_bytes,
		 h.event_mask, h.n_namespaces, replayed);
}

static void on_peer_io(uv_poll_t *h, int status, int events)
{
	struct peer *p = h->data;
	char b[16];
	ssize_t n;

	if (p->closing)
		return;
	if (status < 0) {
		peer_close(p, uv_strerror(status));
		return;
	}
	if (!p->id) {
		if (events & (UV_READABLE | UV_DISCONNECT))
			on_hello(p);
		return;
	}
	/* Attached: the socket carries nothing more; EOF is the detach. */
	n = recv(p->fd, b, sizeof(b), MSG_DONTWAIT);
	if (n == 0)
		peer_close(p, "socket closed");
	else if (n > 0)
		peer_close(p, "unexpected message after hello");
	else if (errno != EAGAIN)
		peer_close(p, strerror(errno));
}

static void on_hello_timeout(uv_timer_t *t)
{
	struct peer *p = t->data;

	if (!p->id)
		peer_close(p, "no hello in time");
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	struct control *c = h->data;
	struct peer *p;
	socklen_t len;
	int fd;

	(void)events;
	if (status < 0 || c->closing)
		return;
	for (;;) {
		fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("control socket accept: %s", strerror(errno));
			return;
		}
		if (c->pending >= c->o.max_pending) {
			/* Connection floods cost one descriptor for an instant. */
			if (c->refused_pending++ % 1000 == 0)
				log_warn("control socket: %u connections without hello; refusing "
					 "more (%llu so far)", c->pending,
					 (unsigned long long)c->refused_pending);
			close(fd);
			continue;
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			continue;
		}
		p->ctl = c;
		p->fd = fd;
		len = sizeof(p->cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &p->cred, &len) < 0)
			p->cred.pid = -1;
		peer_comm(p->cred.pid, p->comm, sizeof(p->comm));
		if (uv_poll_init(c->o.loop, &p->poll, fd) || uv_timer_init(c->o.loop, &p->timer)) {
			/* uv_poll_init fails only on a bad fd; nothing to close then. */
			close(fd);
			free(p);
			continue;
		}
		p->poll.data = p;
		p->timer.data = p;
		p->open_handles = 2;
		p->next = c->peers;
		c->peers = p;
		c->pending++;
		uv_poll_start(&p->poll, UV_READABLE | UV_DISCONNECT, on_peer_io);
		uv_timer_start(&p->timer, on_hello_timeout, (uint64_t)(c->o.hello_timeout * 1000), 0);
	}
}

static void on_bad(uv_async_t *a)
{
	struct control *c = a->data;
	uint32_t ids[64];
	unsigned n, i;
	struct peer *p, *next;

	while ((n = fanout__take_bad(c->o.fanout, ids, 64)) > 0) {
		for (i = 0; i < n; i++) {
			bool found = false;
			for (p = c->peers; p; p = next) {
				next = p->next;
				if (p->id == ids[i]) {
					log_warn("consumer %u '%s' (uid %u pid %d) wrote an invalid ring "
						 "position into its shared page",
						 p->id, p->name, (unsigned)p->cred.uid, (int)p->cred.pid);
					peer_close(p, "invalid ring position");
					found = true;
					break;
				}
			}
			if (!found)
				(void)fanout__detach(c->o.fanout, ids[i], NULL);
		}
	}
}

void control__notify_bad(struct control *c)
{
	uv_async_send(&c->bad_async);
}

/* A socket file left by a previous agent that died: replace it only when
 * nobody answers on it, so two agents never steal each other's consumers. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "--socket %s: %s", path,
						       strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "--socket %s: exists and is not a socket", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	if (r == 0) {
		snprintf(err, errlen, "--socket %s: another kmon-agent is listening there", path);
		return -1;
	}
	if (unlink(path) < 0) {
		snprintf(err, errlen, "--socket %s: cannot remove stale socket: %s", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int make_parent(const char *path, char *err, size_t errlen)
{
	char dir[108];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "--socket: cannot create directory %s: %s", dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

struct control *control__new(const struct control_opts *opts, char *err, size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct control *c;
	struct group *g;
	gid_t gid = (gid_t)-1;

	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->o = *opts;
	c->fd = -1;
	if (!c->o.max_pending)
		c->o.max_pending = 32;
	if (c->o.hello_timeout <= 0)
		c->o.hello_timeout = 5;
	snprintf(c->path, sizeof(c->path), "%s", opts->path);
	if (opts->group) {
		char *end;
		unsigned long v;

		g = getgrnam(opts->group);
		if (g) {
			gid = g->gr_gid;
		} else {
			/* A numeric gid works without an /etc/group entry (images). */
			errno = 0;
			v = strtoul(opts->group, &end, 10);
			if (errno || *end || end == opts->group || v >= (gid_t)-1) {
				snprintf(err, errlen, "--socket-group: no group named '%s'",
					 opts->group);
				goto fail;
			}
			gid = (gid_t)v;
		}
	}
	if (make_parent(c->path, err, errlen) || clear_stale(c->path, err, errlen))
		goto fail;
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", c->path);
	if (bind(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(err, errlen, "--socket %s: bind: %s", c->path, strerror(errno));
		goto fail;
	}
	if (chmod(c->path, c->o.mode) < 0 ||
	    (gid != (gid_t)-1 && chown(c->path, (uid_t)-1, gid) < 0)) {
		snprintf(err, errlen, "--socket %s: cannot set mode/group: %s", c->path,
			 strerror(errno));
		unlink(c->path);
		goto fail;
	}
	if (listen(c->fd, 64) < 0) {
		snprintf(err, errlen, "--socket %s: listen: %s", c->path, strerror(errno));
		unlink(c->path);
		goto fail;
	}
	if (uv_poll_init(c->o.loop, &c->poll, c->fd) ||
	    uv_async_init(c->o.loop, &c->bad_async, on_bad)) {
		snprintf(err, errlen, "cannot watch the control socket");
		unlink(c->path);
		goto fail;
	}
	c->poll.data = c;
	c->bad_async.data = c;
	uv_poll_start(&c->poll, UV_READABLE, on_accept);
	return c;
fail:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

static void control_handle_closed(uv_handle_t *h)
{
	struct control *c = h->data;

	if (--c->open_handles == 0)
		free(c);
}

void control__close(struct control *c)
{
	if (!c || c->closing)
		return;
	c->closing = true;
	while (c->peers)
		peer_close(c->peers, "agent stopping");
	unlink(c->path);
	c->open_handles = 2;
	uv_close((uv_handle_t *)&c->poll, control_handle_closed);
	uv_close((uv_handle_t *)&c->bad_async, control_handle_closed);
	close(c->fd);
}
