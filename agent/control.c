// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/fanout.h"
#include "shm/common/log.h"
#include "shm/proto.h"
#include "shm/ring.h"

enum peer_state {
	PEER_HELLO,    /* connected, no hello yet (counts as pending) */
	PEER_OFFERED,  /* ring offered, waiting for the consumer's ready */
	PEER_ATTACHED, /* in the fan-out */
};

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
	enum peer_state state;
	struct kmon_hello hello;  /* kept from the hello to the ready */
	struct ring_prod *ring;   /* offered, not yet the fan-out's */
	size_t ring_bytes;
	size_t shm_bytes;         /* charged to the budget until closed */
	int open_handles;
	bool closing;
};

struct control {
	struct control_opts o;
	char path[KMON_PROTO_PATH_MAX];
	int fd;
	uv_poll_t poll;
	uv_async_t bad_async;
	struct peer *peers;
	unsigned pending;
	/* Written on the loop thread, read by the HTTP thread's /metrics
	 * (control__get_stats): atomics, relaxed on the read side, since each is
	 * a count on its own and nothing is ordered by them. */
	_Atomic uint64_t refused_pending;
	_Atomic uint64_t refused_budget, refused_uid, refused_populate;
	_Atomic size_t shm_used;
	unsigned offers;
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
	if (p->ring) {
		/* Offered, never attached: the ring is still ours. */
		ring_prod__free(p->ring);
		p->ring = NULL;
	}
	c->shm_used -= p->shm_bytes;
	p->shm_bytes = 0;
	if (p->id) {
		if (!fanout__detach(c->o.fanout, p->id, &st))
			log_info("consumer %u '%s' (uid %u pid %d) detached: %s; produced %llu "
				 "delivered %llu lost %llu wakeups %llu%s",
				 p->id, p->name, (unsigned)p->cred.uid, (int)p->cred.pid, why,
				 (unsigned long long)st.produced, (unsigned long long)st.delivered,
				 (unsigned long long)st.lost, (unsigned long long)st.wakeups,
				 st.shared ? " (shared history: lost as the consumer reports it)" : "");
	} else {
		if (p->state == PEER_HELLO)
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

static long send_reply(struct peer *p, uint32_t step, enum kmon_hello_status st,
		       const char *errtxt, uint32_t id, size_t ring_bytes, size_t replayed,
		       const int *fds, unsigned n_fds, uint16_t flags)
{
	struct kmon_hello_reply r;
	long n;

	memset(&r, 0, sizeof(r));
	r.magic = KMON_PROTO_MAGIC;
	r.version = KMON_PROTO_VERSION;
	r.status = (uint16_t)st;
	r.consumer_id = id;
	r.step = step;
	r.ring_bytes = ring_bytes;
	r.replay_bytes = replayed;
	r.flags = flags;
	snprintf(r.node, sizeof(r.node), "%s", p->ctl->o.node_name ? p->ctl->o.node_name : "");
	snprintf(r.error, sizeof(r.error), "%s", errtxt ? errtxt : "");
	/* A nonblocking socket with an empty buffer: a full one means the peer
	 * is not reading, which ends it anyway. */
	n = kmon_proto_send(p->fd, &r, sizeof(r), fds, n_fds);
	if (n != (long)sizeof(r))
		log_debug("reply to pid %d failed: %s", (int)p->cred.pid,
			  n < 0 ? strerror((int)-n) : "short");
	return n;
}

/* Peers of this uid in the given states (the lists are bounded by the
 * limits themselves). */
static unsigned count_uid(const struct control *c, uid_t uid, bool pending)
{
	const struct peer *p;
	unsigned n = 0;

	for (p = c->peers; p; p = p->next)
		if (p->cred.uid == uid && !p->closing && ((p->state == PEER_HELLO) == pending))
			n++;
	return n;
}

static void on_hello_timeout(uv_timer_t *t);

static unsigned count_attaching(const struct control *c)
{
	const struct peer *p;
	unsigned n = 0;

	for (p = c->peers; p; p = p->next)
		if (!p->closing && p->state != PEER_HELLO)
			n++;
	return n;
}

static void refuse(struct peer *p, uint32_t step, enum kmon_hello_status st, const char *err)
{
	char why[300];

	send_reply(p, step, st, err, 0, 0, 0, NULL, 0, 0);
	snprintf(why, sizeof(why), "%s '%s' refused (%s): %s",
		 step == KMON_STEP_OFFER ? "hello" : "ready", p->name[0] ? p->name : "?",
		 kmon_hello_status_name(st), err);
	peer_close(p, why);
}

/* One message of the attach exchange, zero-filled first. Returns its real
 * length (MSG_TRUNC: longer than buf means too long), or 0 when there is
 * nothing to do now: no message yet, or the peer was closed (why_eof when it
 * hung up). */
static ssize_t recv_step(struct peer *p, void *buf, size_t len, const char *why_eof)
{
	ssize_t n;

	memset(buf, 0, len);
	n = recv(p->fd, buf, len, MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0 && errno != EAGAIN)
		peer_close(p, strerror(errno));
	else if (n == 0)
		peer_close(p, why_eof);
	return n < 0 ? 0 : n;
}

/* The hello: validated, then a ring is created untouched and offered. The
 * consumer populates it (and so pays for it) before the ready step. */
static void on_hello(struct peer *p)
{
	struct control *c = p->ctl;
	struct kmon_hello *h = &p->hello;
	enum kmon_hello_status st;
	char err[KMON_PROTO_ERR_MAX], rname[96];
	size_t ring_bytes, total;
	ssize_t n;
	int fds[KMON_PROTO_FDS];

	n = recv_step(p, h, sizeof(*h), "closed before hello");
	if (n <= 0)
		return;
	st = kmon_hello_check(h, (size_t)n, c->o.max_ring_bytes, c->o.history_bytes, err,
			      sizeof(err));
	if (st != KMON_HELLO_OK) {
		refuse(p, KMON_STEP_OFFER, st, err);
		return;
	}
	memcpy(p->name, h->name, sizeof(p->name));
	/* Refused before the consumer populates a ring for nothing (the
	 * fan-out checks again at the ready). */
	if (c->o.max_consumers && count_attaching(c) >= c->o.max_consumers) {
		snprintf(err, sizeof(err), "the agent already has its maximum of consumers "
			 "(--max-consumers)");
		refuse(p, KMON_STEP_OFFER, KMON_HELLO_TOO_MANY, err);
		return;
	}
	if (count_uid(c, p->cred.uid, false) >= c->o.max_consumers_per_uid) {
		c->refused_uid++;
		snprintf(err, sizeof(err), "uid %u already has %u consumers "
			 "(--max-consumers-per-uid)", (unsigned)p->cred.uid,
			 c->o.max_consumers_per_uid);
		refuse(p, KMON_STEP_OFFER, KMON_HELLO_UID_LIMIT, err);
		return;
	}
	ring_bytes = h->ring_bytes ? h->ring_bytes : c->o.default_ring_bytes;
	total = ring_prod__total_bytes(ring_bytes);
	size_t used = c->shm_used; /* only this thread writes it */

	if (total > c->o.shm_budget - used || used > c->o.shm_budget) {
		c->refused_budget++;
		snprintf(err, sizeof(err), "a ring of %zu bytes would exceed the shared-memory "
			 "budget: %zu of %zu bytes in use (--shm-budget)", ring_bytes,
			 used, c->o.shm_budget);
		refuse(p, KMON_STEP_OFFER, KMON_HELLO_NO_BUDGET, err);
		return;
	}
	/* Numbered like the fan-out's ids when every offer attaches. */
	snprintf(rname, sizeof(rname), "%u-%s", ++c->offers, p->name);
	p->ring = ring_prod__create(ring_bytes, rname);
	if (!p->ring) {
		snprintf(err, sizeof(err), "cannot create the ring: %s", strerror(errno));
		refuse(p, KMON_STEP_OFFER, KMON_HELLO_INTERNAL, err);
		return;
	}
	p->ring_bytes = ring_bytes;
	p->shm_bytes = total;
	c->shm_used += total;
	c->pending--;
	p->state = PEER_OFFERED;
	(void)ring_prod__consumer_fds(p->ring, &fds[0], &fds[1], &fds[2]);
	/* One table for all: sealed, so a consumer can neither change it for
	 * others nor make it bigger; its pages count toward no consumer. */
	fds[3] = c->o.symtab_fd;
	if (send_reply(p, KMON_STEP_OFFER, KMON_HELLO_OK, NULL, 0, ring_bytes, 0, fds,
		       KMON_PROTO_FDS, 0) !=
	    (long)sizeof(struct kmon_hello_reply)) {
		peer_close(p, "cannot send the hello reply");
		return;
	}
	/* The ready must come within the hello timeout too. */
	uv_timer_start(&p->timer, on_hello_timeout, (uint64_t)(c->o.hello_timeout * 1000), 0);
}

/* The ready: the consumer says it mapped the ring; the agent checks that
 * every page is in memory before writing a byte, so none is charged to it. */
static void on_ready(struct peer *p)
{
	struct control *c = p->ctl;
	struct kmon_hello *h = &p->hello;
	struct kmon_ready rd;
	struct fanout_sub sub;
	char err[KMON_PROTO_ERR_MAX];
	size_t ring_bytes = 0, replayed = 0;
	ssize_t n;
	int fds[4], ret;

	n = recv_step(p, &rd, sizeof(rd), "closed before ready");
	if (n <= 0)
		return;
	if (kmon_ready_check(&rd, (size_t)n, err, sizeof(err))) {
		refuse(p, KMON_STEP_ATTACHED, KMON_HELLO_BAD_MESSAGE, err);
		return;
	}
	if (!ring_prod__resident(p->ring)) {
		c->refused_populate++;
		snprintf(err, sizeof(err), "the ring's pages are not all in memory: the consumer "
			 "must fault its ring in (MAP_POPULATE) before the ready, and pays for it; "
			 "is its memory limit below the ring size?");
		refuse(p, KMON_STEP_ATTACHED, KMON_HELLO_NOT_POPULATED, err);
		return;
	}
	ring_prod__start(p->ring);
	memset(&sub, 0, sizeof(sub));
	sub.name = p->name;
	sub.uid = p->cred.uid;
	sub.pid = p->cred.pid;
	sub.event_mask = h->event_mask;
	sub.namespaces = (const char(*)[KMON_PROTO_NS_LEN])h->namespaces;
	sub.n_namespaces = h->n_namespaces;
	sub.ring_bytes = p->ring_bytes;
	sub.replay_bytes = h->replay_bytes;
	sub.ring = p->ring;
	sub.shared = h->flags & KMON_HELLO_F_SHARED;
	ret = fanout__attach(c->o.fanout, &sub, &p->id, fds, &ring_bytes, &replayed);
	if (ret) {
		p->id = 0;
		if (ret == -ENOSPC) {
			snprintf(err, sizeof(err), "the agent already has its maximum of consumers "
				 "(--max-consumers)");
			refuse(p, KMON_STEP_ATTACHED, KMON_HELLO_TOO_MANY, err);
		} else {
			snprintf(err, sizeof(err), "cannot attach: %s", strerror(-ret));
			refuse(p, KMON_STEP_ATTACHED, KMON_HELLO_INTERNAL, err);
		}
		return;
	}
	p->ring = NULL; /* the fan-out's now */
	p->state = PEER_ATTACHED;
	uv_timer_stop(&p->timer);
	/* The history is sealed and read-only: a shared consumer can neither
	 * change an event for the others nor free a page under the drain. */
	send_reply(p, KMON_STEP_ATTACHED, KMON_HELLO_OK, NULL, p->id, ring_bytes, replayed,
		   &fds[3], fds[3] >= 0, fds[3] >= 0 ? KMON_REPLY_F_SHARED : 0);
	log_info("consumer %u '%s' attached: uid %u pid %d (%s), ring %zu bytes, mask 0x%x, "
		 "%u namespaces, replayed %zu bytes%s",
		 p->id, p->name, (unsigned)p->cred.uid, (int)p->cred.pid, p->comm, ring_bytes,
		 h->event_mask, h->n_namespaces, replayed,
		 fds[3] >= 0 ? ", events from the shared history" : "");
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
	if (p->state != PEER_ATTACHED) {
		if (events & (UV_READABLE | UV_DISCONNECT))
			p->state == PEER_HELLO ? on_hello(p) : on_ready(p);
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

	if (p->state == PEER_HELLO)
		peer_close(p, "no hello in time");
	else if (p->state == PEER_OFFERED)
		peer_close(p, "no ready in time");
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
		p = calloc(1, sizeof(*p));
		if (!p) {
			close(fd);
			continue;
		}
		len = sizeof(p->cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &p->cred, &len) < 0) {
			p->cred.pid = -1;
			p->cred.uid = (uid_t)-1;
		}
		/* Per uid first: one uid flooding connections must not use up the
		 * global limit that every other consumer needs too. */
		if (c->pending >= c->o.max_pending ||
		    count_uid(c, p->cred.uid, true) >= c->o.max_pending_per_uid) {
			/* Connection floods cost one descriptor for an instant. */
			if (c->refused_pending++ % 1000 == 0)
				log_warn("control socket: uid %u has %u connections without hello "
					 "(%u in all); refusing more (%llu so far)",
					 (unsigned)p->cred.uid, count_uid(c, p->cred.uid, true),
					 c->pending, (unsigned long long)c->refused_pending);
			close(fd);
			free(p);
			continue;
		}
		p->ctl = c;
		p->fd = fd;
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

void control__get_stats(const struct control *c, struct control_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	out->refused_pending = atomic_load_explicit(&c->refused_pending, memory_order_relaxed);
	out->refused_uid = atomic_load_explicit(&c->refused_uid, memory_order_relaxed);
	out->refused_budget = atomic_load_explicit(&c->refused_budget, memory_order_relaxed);
	out->refused_populate = atomic_load_explicit(&c->refused_populate, memory_order_relaxed);
	out->shm_bytes = atomic_load_explicit(&c->shm_used, memory_order_relaxed);
	out->shm_budget = c->o.shm_budget;
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

/* The first entry of the directory fd other than ., .. and keep (the
 * socket's own name) into name; 0 when there is none, -errno when it
 * cannot be read. fd stays open. */
static int other_entry(int fd, const char *keep, char *name, size_t namelen)
{
	struct dirent *d;
	DIR *dir;
	int dfd, ret = 0;

	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	dir = fdopendir(dfd);
	if (!dir) {
		ret = -errno;
		close(dfd);
		return ret;
	}
	errno = 0;
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..") || !strcmp(d->d_name, keep))
			continue;
		snprintf(name, namelen, "%s", d->d_name);
		ret = 1;
		break;
	}
	if (!ret && errno)
		ret = -errno;
	closedir(dir);
	return ret;
}

/* The socket's directory: the agent's own, mode 0750, group gid, so only the
 * agent can add, remove or rename entries in it and only the group can reach
 * the socket. An existing directory is taken over only if the agent already
 * owns it (a directory someone else made could hold anything) and it holds
 * nothing but the socket (a previous agent's): taking over a shared one
 * would shut every other user out of it, as `--socket /tmp/kmon.sock` once
 * did to /tmp (mode 0750, the agent's group) and `/run/kmon.sock` would to
 * /run. A directory made for it, or a volume mounted for it (the chart's),
 * is empty the first time. */
static int secure_dir(const char *path, gid_t gid, char *err, size_t errlen)
{
	char dir[KMON_PROTO_PATH_MAX], parent[KMON_PROTO_PATH_MAX + 4], name[256];
	struct statx sd, sp;
	struct stat st;
	char *slash;
	int fd, other;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir) {
		/* The agent changes its directory's owner and mode: never the
		 * working directory's or /'s by accident. */
		snprintf(err, errlen, "--socket %s: give the socket a directory of its own, e.g. "
			 "/run/kmon/kmon.sock", path);
		return -1;
	}
	*slash = '\0';
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "--socket: cannot create directory %s: %s", dir,
			 strerror(errno));
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "--socket: directory %s: %s", dir,
			 errno == ELOOP ? "is a symbolic link" : strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "--socket: directory %s belongs to uid %u, not to the agent "
			 "(uid %u): remove it or choose another path", dir, (unsigned)st.st_uid,
			 (unsigned)geteuid());
		close(fd);
		return -1;
	}
	other = other_entry(fd, slash + 1, name, sizeof(name));
	if (other) {
		if (other > 0)
			snprintf(err, errlen, "--socket: directory %s holds other files (%s): the "
				 "agent makes its socket's directory its own (mode 0750, its group), "
				 "which would shut others out of them; give the socket a directory of "
				 "its own, e.g. /run/kmon/kmon.sock", dir, name);
		else
			snprintf(err, errlen, "--socket: cannot list directory %s: %s", dir,
				 strerror(-other));
		close(fd);
		return -1;
	}
	if (fchown(fd, (uid_t)-1, gid == (gid_t)-1 ? getegid() : gid) < 0 || fchmod(fd, 0750) < 0) {
		snprintf(err, errlen, "--socket: cannot make directory %s mode 0750: %s", dir,
			 strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	/* Whoever may write the parent may rename our directory away and put
	 * their own in its place, unless the sticky bit restricts that to the
	 * owner, or the directory is a mount point (which cannot be renamed). */
	snprintf(parent, sizeof(parent), "%s/..", dir);
	if (statx(AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW, STATX_MODE | STATX_MNT_ID, &sd) < 0 ||
	    statx(AT_FDCWD, parent, 0, STATX_MODE | STATX_MNT_ID, &sp) < 0) {
		snprintf(err, errlen, "--socket: cannot check the parent of %s: %s", dir,
			 strerror(errno));
		return -1;
	}
	if ((sp.stx_mode & (S_IWOTH | S_IWGRP)) && !(sp.stx_mode & S_ISVTX) &&
	    sd.stx_mnt_id == sp.stx_mnt_id) {
		if (chmod(parent, (sp.stx_mode & 07777) | S_ISVTX) < 0) {
			snprintf(err, errlen, "--socket: %s is writable by others, who could replace "
				 "the socket's directory, and adding the sticky bit failed: %s",
				 parent, strerror(errno));
			return -1;
		}
		log_warn("--socket: %s was writable by others without the sticky bit; added it so "
			 "nobody can rename %s away", parent, dir);
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
	if (!c->o.max_pending_per_uid)
		c->o.max_pending_per_uid = 4;
	if (!c->o.max_consumers_per_uid)
		c->o.max_consumers_per_uid = 8;
	if (!c->o.shm_budget)
		c->o.shm_budget = 256u << 20;
	if (!c->o.default_ring_bytes)
		c->o.default_ring_bytes = 4u << 20;
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
	if (secure_dir(c->path, gid, err, errlen) || clear_stale(c->path, err, errlen))
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
