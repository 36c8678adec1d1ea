/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's HTTP endpoints (libmicrohttpd):
 *   /healthz  200 while the event loop keeps ticking (heartbeat < 10 s old)
 *   /readyz   200 once programs are attached, the drain runs and the first
 *             /proc scan is done; 503 with the reason before
 *   /metrics  Prometheus text, rendered by the caller's callback
 * Up to two listeners, each with its own thread: `addr` serves all three,
 * `health_addr` (optional) only the probes, so a scraper or a slow client of
 * /metrics cannot delay a probe.
 *
 * Every peer is hostile. Per listener: at most ENDPOINTS_MAX_CONNS
 * connections and ENDPOINTS_MAX_PER_PEER per peer (an IPv4 address, an IPv6
 * /64); a request's headers must be complete ENDPOINTS_HEADER_DEADLINE_SEC
 * after the connection opened (or after the previous response on a
 * keep-alive connection), whatever the client trickles in; a response must be
 * taken within ENDPOINTS_RESPONSE_DEADLINE_SEC. At a limit one connection of
 * the peer holding the most is closed, so a peer flooding the port only loses
 * its own: first the oldest idle one with no request on its way (slowloris),
 * then one slow to take its response, then the newcomer if it has sent
 * nothing yet, never before those one whose whole request already waits (a
 * probe, which sends it at once). Every closed connection is counted in
 * kmon_http_connections_shed_total{listener,reason}.
 *
 * Started after capabilities are dropped, so the threads have none: ports
 * must be >= 1024 (the chart uses 9470 and 9472).
 */
#ifndef KMON_AGENT_ENDPOINTS_H
#define KMON_AGENT_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>

#define ENDPOINTS_MAX_CONNS 64
#define ENDPOINTS_MAX_PER_PEER 8
#define ENDPOINTS_HEADER_DEADLINE_SEC 5
#define ENDPOINTS_RESPONSE_DEADLINE_SEC 30

struct metrics_text;
struct endpoints;

struct endpoints_opts {
	size_t sz;
	const char *addr;        /* HOST:PORT serving all three paths; NULL: none */
	const char *health_addr; /* HOST:PORT serving /healthz and /readyz; NULL: none */
	/* Called on an HTTP thread, possibly two at once; must be thread-safe.
	 * Returns NULL when ready, else a short reason. */
	const char *(*not_ready)(void *ctx);
	/* Called on the `addr` thread; fills m. */
	void (*render_metrics)(void *ctx, struct metrics_text *m);
	void *ctx;
};

/* NULL with a one-line reason naming the option (--metrics-addr or
 * --health-addr) in err. */
struct endpoints *endpoints__start(const struct endpoints_opts *o, char *err, size_t errlen);
/* Called by the loop thread on a timer: the liveness signal. */
void endpoints__heartbeat(struct endpoints *e);
void endpoints__stop(struct endpoints *e);

#endif
