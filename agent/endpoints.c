// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/endpoints.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "shm/common/metrics_text.h"
#include "shm/common/clock.h"
#include "shm/common/parse.h"

#define HEARTBEAT_STALE_SEC 10
/* One MHD_run accepts up to ~11 connections before we see them (libmicrohttpd
 * 0.9.75 accepts in series of 10); shed ones close on the next run. MHD's own
 * limit sits this far above ours so it never refuses a connection itself:
 * past it, MHD stops accepting and new connections wait in the backlog. */
#define MHD_SLACK 16
#define SLOTS (ENDPOINTS_MAX_CONNS + MHD_SLACK)
#define SWEEP_MS 250
/* Bytes of request MHD buffers per connection (headers bigger get 431). */
#define CONN_MEMORY (16u << 10)

enum shed_reason { SHED_PEER_LIMIT, SHED_TOTAL_LIMIT, SHED_HEADER_DEADLINE,
		   SHED_RESPONSE_DEADLINE, SHED_REASONS };
static const char *const shed_names[SHED_REASONS] = {
	"peer_limit", "total_limit", "header_deadline", "response_deadline",
};

/* One open connection (MHD's socket context). Only the listener's thread
 * touches slots: MHD runs in external mode on that thread, so the fd of a
 * used slot is open (MHD reports CLOSED before it closes it). */
struct conn {
	bool used;
	bool shed;      /* shut down by us; MHD closes it on its next run */
	bool answering; /* headers complete, response under way */
	int fd;
	unsigned char peer[17]; /* family byte + IPv4 address or IPv6 /64 */
	int64_t since_ms;       /* start of the current request cycle */
};

struct listener {
	struct endpoints *e;
	const char *name;   /* "metrics" or "health": label and messages */
	const char *option; /* the option it came from, for errors */
	bool metrics;       /* serves /metrics */
	struct MHD_Daemon *d;
	int stop_fd;
	pthread_t thread;
	bool running;
	struct conn slots[SLOTS];
	_Atomic uint64_t shed[SHED_REASONS];
	_Atomic unsigned open;
};

struct endpoints {
	struct endpoints_opts o;
	_Atomic int64_t heartbeat; /* monotonic seconds */
	struct metrics_text *m;    /* only the metrics listener's thread renders */
	struct listener ls[2];
	unsigned n_ls;
};

/* Peers are addresses; an IPv6 peer usually owns a whole /64, so that is one
 * peer. IPv4-mapped IPv6 (a dual-stack listener) counts as the IPv4 address. */
static void peer_key(const struct sockaddr *sa, unsigned char key[17])
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(key, 0, 17);
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (!memcmp(a, mapped, sizeof(mapped))) {
			key[0] = 4;
			memcpy(key + 1, a + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, a, 8);
		}
	}
}

static void conn__shed(struct listener *l, struct conn *c, enum shed_reason why)
{
	/* MHD owns the descriptor: shutting it down makes MHD's next read see
	 * EOF, and MHD closes it and reports CLOSED. */
	(void)shutdown(c->fd, SHUT_RDWR);
	c->shed = true;
	atomic_fetch_add(&l->shed[why], 1);
}

static unsigned peer_count(const struct listener *l, const unsigned char *peer)
{
	unsigned n = 0;

	for (unsigned i = 0; i < SLOTS; i++)
		if (l->slots[i].used && !l->slots[i].shed && !memcmp(l->slots[i].peer, peer, 17))
			n++;
	return n;
}

/* A whole request head waits in the kernel: MHD serves it on its next run.
 * (An attacker cannot hold this state: a complete request gets answered.) */
static bool conn__ready(const struct conn *c)
{
	char buf[2048];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);

	return n >= 2 && (memmem(buf, (size_t)n, "\r\n\r\n", 4) || memmem(buf, (size_t)n, "\n\n", 2));
}

/* Which connection to shed first: one idle without a request on its way
 * (slowloris), then one whose response is slow to be taken, then a newcomer
 * that has sent nothing yet, last one with a whole request waiting (a
 * probe). Within a rank the oldest goes first. */
static int shed_rank(const struct conn *c, const struct conn *newcomer)
{
	if (c != newcomer && !c->answering && !conn__ready(c))
		return 0;
	if (c != newcomer && c->answering)
		return 1;
	if (c == newcomer && !conn__ready(c))
		return 2;
	return 3;
}

/* The connection of `peer` (NULL: of any peer holding `most`) to shed. */
static struct conn *pick_victim(struct listener *l, const unsigned char *peer, unsigned most,
				const struct conn *newcomer)
{
	struct conn *best = NULL;
	int best_rank = 4;

	for (unsigned i = 0; i < SLOTS; i++) {
		struct conn *c = &l->slots[i];
		int rank;

		if (!c->used || c->shed)
			continue;
		if (peer ? memcmp(c->peer, peer, 17) != 0 : peer_count(l, c->peer) != most)
			continue;
		rank = shed_rank(c, newcomer);
		if (rank < best_rank || (rank == best_rank && c->since_ms < best->since_ms)) {
			best = c;
			best_rank = rank;
		}
	}
	return best;
}

/* A connection was accepted. At a limit, shed from the peer holding the
 * most (a flooding peer only loses its own connections), the connection
 * least likely to be an honest request (see shed_rank). */
static void listener__admit(struct listener *l, struct conn *c)
{
	unsigned live = 0, most = 0;
	struct conn *victim;

	if (peer_count(l, c->peer) > ENDPOINTS_MAX_PER_PEER) {
		victim = pick_victim(l, c->peer, 0, c);
		if (victim)
			conn__shed(l, victim, SHED_PEER_LIMIT);
	}
	for (unsigned i = 0; i < SLOTS; i++) {
		if (l->slots[i].used && !l->slots[i].shed) {
			unsigned n = peer_count(l, l->slots[i].peer);

			live++;
			if (n > most)
				most = n;
		}
	}
	if (live > ENDPOINTS_MAX_CONNS) {
		victim = pick_victim(l, NULL, most, c);
		if (victim)
			conn__shed(l, victim, SHED_TOTAL_LIMIT);
	}
}

/* The header deadline: an idle timeout alone lets a client sending one
 * byte every few seconds hold a connection for hours. */
static void listener__sweep(struct listener *l)
{
	int64_t now = kmon_clock__ms();

	for (unsigned i = 0; i < SLOTS; i++) {
		struct conn *c = &l->slots[i];

		if (!c->used || c->shed)
			continue;
		if (!c->answering && now - c->since_ms > ENDPOINTS_HEADER_DEADLINE_SEC * 1000)
			conn__shed(l, c, SHED_HEADER_DEADLINE);
		else if (c->answering && now - c->since_ms > ENDPOINTS_RESPONSE_DEADLINE_SEC * 1000)
			conn__shed(l, c, SHED_RESPONSE_DEADLINE);
	}
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct listener *l = cls;
	const union MHD_ConnectionInfo *fd, *addr;
	struct conn *c = NULL;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		c = *socket_context;
		if (c) {
			c->used = false;
			atomic_fetch_sub(&l->open, 1);
		}
		*socket_context = NULL;
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	fd = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	addr = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	for (unsigned i = 0; i < SLOTS && !c; i++)
		if (!l->slots[i].used)
			c = &l->slots[i];
	if (!c || !fd) {
		/* Cannot happen: MHD's limit is SLOTS. Refuse rather than track
		 * nothing. */
		if (fd)
			(void)shutdown(fd->connect_fd, SHUT_RDWR);
		atomic_fetch_add(&l->shed[SHED_TOTAL_LIMIT], 1);
		*socket_context = NULL;
		return;
	}
	memset(c, 0, sizeof(*c));
	c->used = true;
	c->fd = fd->connect_fd;
	c->since_ms = kmon_clock__ms();
	peer_key(addr ? addr->client_addr : NULL, c->peer);
	*socket_context = c;
	atomic_fetch_add(&l->open, 1);
	listener__admit(l, c);
}

/* A response went out (or the request failed): on keep-alive the next
 * request's headers get a fresh deadline. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = ci ? ci->socket_context : NULL;

	(void)cls;
	(void)req_cls;
	(void)toe;
	if (c) {
		c->answering = false;
		c->since_ms = kmon_clock__ms();
	}
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
			     const char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	if (MHD_add_response_header(r, "Content-Type", type) != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static void render_shed(struct endpoints *e, struct metrics_text *m)
{
	static const char *const names[] = { "listener", "reason" };
	static const char *const lname[] = { "listener" };

	metrics_text__family(m, "kmon_http_connections_shed_total", "counter",
			     "HTTP connections the agent closed: peer_limit/total_limit (a newer "
			     "connection needed the slot), header_deadline/response_deadline "
			     "(too slow)");
	for (unsigned i = 0; i < e->n_ls; i++) {
		for (unsigned r = 0; r < SHED_REASONS; r++) {
			const char *vals[] = { e->ls[i].name, shed_names[r] };

			metrics_text__sample_u64(m, "kmon_http_connections_shed_total", names, vals,
						 2, atomic_load(&e->ls[i].shed[r]));
		}
	}
	metrics_text__family(m, "kmon_http_connections", "gauge",
			     "HTTP connections open on each listener");
	for (unsigned i = 0; i < e->n_ls; i++) {
		const char *vals[] = { e->ls[i].name };

		metrics_text__sample_u64(m, "kmon_http_connections", lname, vals, 1,
					 atomic_load(&e->ls[i].open));
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **req_cls)
{
	struct listener *l = cls;
	struct endpoints *e = l->e;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *c = ci ? ci->socket_context : NULL;
	char body[256];
	const char *why;
	int n;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)req_cls;
	if (c)
		c->answering = true; /* headers are in: the header deadline is met */
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(mc, 405, "text/plain", "method not allowed\n", 19);
	if (!strcmp(url, "/healthz")) {
		int64_t age = kmon_clock__ms() / 1000 - atomic_load(&e->heartbeat);
		if (age > HEARTBEAT_STALE_SEC) {
			n = snprintf(body, sizeof(body), "event loop stalled for %lld s\n",
				     (long long)age);
			return reply(mc, 503, "text/plain", body, (size_t)n);
		}
		return reply(mc, 200, "text/plain", "ok\n", 3);
	}
	if (!strcmp(url, "/readyz")) {
		why = e->o.not_ready ? e->o.not_ready(e->o.ctx) : NULL;
		if (why) {
			n = snprintf(body, sizeof(body), "not ready: %s\n", why);
			return reply(mc, 503, "text/plain", body, (size_t)n);
		}
		return reply(mc, 200, "text/plain", "ready\n", 6);
	}
	if (!strcmp(url, "/metrics") && l->metrics) {
		const char *data;
		size_t len;

		metrics_text__reset(e->m);
		if (e->o.render_metrics)
			e->o.render_metrics(e->o.ctx, e->m);
		render_shed(e, e->m);
		data = metrics_text__data(e->m, &len);
		return reply(mc, 200, "text/plain; version=0.0.4", data, len);
	}
	if (!strcmp(url, "/metrics")) {
		n = snprintf(body, sizeof(body), "not found: /metrics is served on --metrics-addr\n");
		return reply(mc, 404, "text/plain", body, (size_t)n);
	}
	n = snprintf(body, sizeof(body), "not found: try /healthz, /readyz%s\n",
		     l->metrics ? ", /metrics" : "");
	return reply(mc, 404, "text/plain", body, (size_t)n);
}

/* libmicrohttpd in external mode on our own thread: accepting, the
 * deadline sweep and the slot table all run here, so no locks. */
static void *listener__run(void *arg)
{
	struct listener *l = arg;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	int epfd = di ? di->epoll_fd : -1;

	for (;;) {
		struct pollfd p[2] = { { .fd = epfd, .events = POLLIN },
				       { .fd = l->stop_fd, .events = POLLIN } };
		MHD_UNSIGNED_LONG_LONG to;
		int timeout = SWEEP_MS;

		if (MHD_get_timeout(l->d, &to) == MHD_YES && to < (MHD_UNSIGNED_LONG_LONG)timeout)
			timeout = (int)to;
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		(void)MHD_run(l->d);
		listener__sweep(l);
	}
	return NULL;
}

static int listener__start(struct endpoints *e, struct listener *l, const char *option,
			   const char *addr, bool metrics, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_EPOLL;
	int r;

	memset(&ss, 0, sizeof(ss));
	l->e = e;
	l->option = option;
	l->name = metrics ? "metrics" : "health";
	l->metrics = metrics;
	l->stop_fd = -1;
	if (kmon_parse__listen_addr(option, addr, &ss, NULL, err, errlen))
		return -1;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	l->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)SLOTS,
				/* Idle timeout; the deadlines above bound the rest. */
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ENDPOINTS_HEADER_DEADLINE_SEC,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
				MHD_OPTION_END);
	if (!l->d) {
		snprintf(err, errlen, "%s %s: cannot listen (%s)", option, addr,
			 errno ? strerror(errno) : "libmicrohttpd refused");
		return -1;
	}
	l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->stop_fd < 0) {
		snprintf(err, errlen, "%s: eventfd: %s", option, strerror(errno));
		return -1;
	}
	r = pthread_create(&l->thread, NULL, listener__run, l);
	if (r) {
		snprintf(err, errlen, "%s: cannot start its thread: %s", option, strerror(r));
		return -1;
	}
	l->running = true;
	return 0;
}

static void listener__stop(struct listener *l)
{
	uint64_t one = 1;

	if (l->running) {
		if (write(l->stop_fd, &one, sizeof(one)) != sizeof(one))
			pthread_cancel(l->thread); /* cannot happen on an eventfd */
		pthread_join(l->thread, NULL);
		l->running = false;
	}
	if (l->d)
		MHD_stop_daemon(l->d);
	l->d = NULL;
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	l->stop_fd = -1;
}

struct endpoints *endpoints__start(const struct endpoints_opts *o, char *err, size_t errlen)
{
	struct endpoints *e;

	if (!o->addr && !o->health_addr) {
		snprintf(err, errlen, "no address to serve on");
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->o = *o;
	atomic_store(&e->heartbeat, kmon_clock__ms() / 1000);
	e->m = metrics_text__new();
	if (!e->m) {
		snprintf(err, errlen, "out of memory");
		free(e);
		return NULL;
	}
	if (o->addr && listener__start(e, &e->ls[e->n_ls++], "--metrics-addr", o->addr, true,
				       err, errlen))
		goto fail;
	if (o->health_addr && listener__start(e, &e->ls[e->n_ls++], "--health-addr",
					      o->health_addr, false, err, errlen))
		goto fail;
	return e;
fail:
	endpoints__stop(e);
	return NULL;
}

void endpoints__heartbeat(struct endpoints *e)
{
	if (e)
		atomic_store(&e->heartbeat, kmon_clock__ms() / 1000);
}

void endpoints__stop(struct endpoints *e)
{
	if (!e)
		return;
	for (unsigned i = 0; i < e->n_ls; i++)
		listener__stop(&e->ls[i]);
	metrics_text__free(e->m);
	free(e);
}
