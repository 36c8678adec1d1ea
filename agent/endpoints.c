// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/endpoints.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "consumers/metrics_text.h"

#define HEARTBEAT_STALE_SEC 10

struct endpoints {
	struct endpoints_opts o;
	struct MHD_Daemon *d;
	_Atomic int64_t heartbeat; /* monotonic seconds */
	pthread_mutex_t render_lock; /* one render at a time: bounded memory */
	struct metrics_text *m;
};

static int64_t mono_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
			     const char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **req_cls)
{
	struct endpoints *e = cls;
	char body[256];
	const char *why;
	int n;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)req_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, 405, "text/plain", "method not allowed\n", 19);
	if (!strcmp(url, "/healthz")) {
		int64_t age = mono_sec() - atomic_load(&e->heartbeat);
		if (age > HEARTBEAT_STALE_SEC) {
			n = snprintf(body, sizeof(body), "event loop stalled for %lld s\n",
				     (long long)age);
			return reply(c, 503, "text/plain", body, (size_t)n);
		}
		return reply(c, 200, "text/plain", "ok\n", 3);
	}
	if (!strcmp(url, "/readyz")) {
		why = e->o.not_ready ? e->o.not_ready(e->o.ctx) : NULL;
		if (why) {
			n = snprintf(body, sizeof(body), "not ready: %s\n", why);
			return reply(c, 503, "text/plain", body, (size_t)n);
		}
		return reply(c, 200, "text/plain", "ready\n", 6);
	}
	if (!strcmp(url, "/metrics")) {
		const char *data;
		size_t len;
		enum MHD_Result r;

		pthread_mutex_lock(&e->render_lock);
		metrics_text__reset(e->m);
		e->o.render_metrics(e->o.ctx, e->m);
		data = metrics_text__data(e->m, &len);
		r = reply(c, 200, "text/plain; version=0.0.4", data, len);
		pthread_mutex_unlock(&e->render_lock);
		return r;
	}
	return reply(c, 404, "text/plain", "not found: try /healthz, /readyz, /metrics\n", 44);
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV },
			*res = NULL;
	int r;

	if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
		snprintf(err, errlen, "--metrics-addr: '%s' is not HOST:PORT", addr);
		return -1;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	r = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (r) {
		snprintf(err, errlen, "--metrics-addr: %s: %s", addr, gai_strerror(r));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

struct endpoints *endpoints__start(const struct endpoints_opts *o, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct endpoints *e;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

	memset(&ss, 0, sizeof(ss));
	if (parse_addr(o->addr, &ss, err, errlen))
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->o = *o;
	e->m = metrics_text__new();
	pthread_mutex_init(&e->render_lock, NULL);
	atomic_store(&e->heartbeat, mono_sec());
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	e->d = e->m ? MHD_start_daemon(flags, 0, NULL, NULL, on_request, e,
				       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				       MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
				       MHD_OPTION_END)
		    : NULL;
	if (!e->d) {
		snprintf(err, errlen, "--metrics-addr %s: cannot listen (%s)", o->addr,
			 errno ? strerror(errno) : "libmicrohttpd refused");
		metrics_text__free(e->m);
		pthread_mutex_destroy(&e->render_lock);
		free(e);
		return NULL;
	}
	return e;
}

void endpoints__heartbeat(struct endpoints *e)
{
	if (e)
		atomic_store(&e->heartbeat, mono_sec());
}

void endpoints__stop(struct endpoints *e)
{
	if (!e)
		return;
	MHD_stop_daemon(e->d);
	metrics_text__free(e->m);
	pthread_mutex_destroy(&e->render_lock);
	free(e);
}
