// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon-aggregate: attaches to kmon-agent as an unprivileged consumer, keeps
 * per-(namespace, pod, container) counts and serves them as Prometheus
 * metrics. libmicrohttpd runs without its own thread, driven by the libuv
 * loop through its epoll descriptor, so the table needs no lock.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <uv.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "consumers/aggregate/aggtable.h"
#include "consumers/aggregate/memcg.h"
#include "consumers/common/cli.h"
#include "consumers/lib/client.h"
#include "shm/common/metrics_text.h"
#include "shm/meta.h"
#include "shm/proto.h"
#include "shm/common/clock.h"
#include "shm/common/log.h"
#include "shm/common/parse.h"

struct agg {
	uv_loop_t loop;
	struct kmon_client *client;
	struct aggtable *table;
	struct metrics_text *m;
	struct MHD_Daemon *httpd;
	uv_poll_t http_poll;
	uv_timer_t http_timer, expire_timer, summary_timer, memcg_timer;
	struct memcg *memcg;
	const char *cgroup_root;
	double memcg_interval;
	unsigned ledger_top;
	uv_signal_t sig[3];
	struct consumer_cli cli; /* --socket, --name, --sched */
	const char *listen;
	double expire, summary_interval;
	unsigned max_series, top_n;
	uint64_t lost, received;
	bool attached;
	int exit_code; /* 1 once the agent refused for good */
};

static void usage(void)
{
	printf("Usage: kmon-aggregate [options]\n"
	       "Attach to kmon-agent and serve per-pod counts as Prometheus metrics.\n\n"
	       "  --socket PATH            agent control socket (default /run/kmon/kmon.sock)\n"
	       "  --listen HOST:PORT       serve /metrics here (default 127.0.0.1:9471)\n"
	       "  --expire SEC             drop series of pods unseen this long (default 300)\n"
	       "  --summary-interval SEC   print a JSON summary line every SEC (default off)\n"
	       "  --max-series N           series limit (default 10000)\n"
	       "  --top N                  filenames kept per series (default 5)\n"
	       "  --ledger-top K           call sites and caches reported per container in the\n"
	       "                           kernel memory ledger, the rest as \"other\" (default 10)\n"
	       "  --memcg-interval SEC     read containers' memory cgroups this often; 0 = never\n"
	       "                           (default 10)\n"
	       "  --cgroup-root PATH       where the cgroup hierarchies are mounted\n"
	       "                           (default /sys/fs/cgroup)\n"
	       "  --name NAME              name in the agent's logs (default kmon-aggregate)\n"
	       "  --sched batch|normal     CPU policy: batch (default) never preempts the workload\n");
}

static int num(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < lo || *out > hi)
		return log_fail("%s: '%s' is not a number from %g to %g", opt, s, lo, hi);
	return 0;
}

/* One of kmon-aggregate's own options (consumer_cli_fn); --socket, --name
 * and --sched are consumer_cli's. */
static int aggregate_option(void *ctx, int c, const char *arg)
{
	struct agg *g = ctx;
	double v;

	switch (c) {
	case 'l': {
		char host[256], why[200];
		uint16_t port;

		if (kmon_parse__hostport(arg, host, sizeof(host), &port, why, sizeof(why)))
			return log_fail("--listen: %s", why);
		g->listen = arg;
		break;
	}
	case 'e':
		return num("--expire", arg, 1, 86400 * 7, &g->expire);
	case 'i':
		return num("--summary-interval", arg, 0.1, 86400, &g->summary_interval);
	case 'm':
		if (num("--max-series", arg, 1, 1000000, &v))
			return -1;
		g->max_series = (unsigned)v;
		break;
	case 't':
		if (num("--top", arg, 1, 100, &v))
			return -1;
		g->top_n = (unsigned)v;
		break;
	case 'K':
		if (num("--ledger-top", arg, 1, LEDGER_TOP_MAX, &v))
			return -1;
		g->ledger_top = (unsigned)v;
		break;
	case 'M':
		if (strcmp(arg, "0") &&
		    num("--memcg-interval", arg, 0.1, 3600, &g->memcg_interval))
			return -1;
		if (!strcmp(arg, "0"))
			g->memcg_interval = 0;
		break;
	case 'C':
		if (!*arg || strlen(arg) >= 4096)
			return log_fail("--cgroup-root: path must be 1 to 4095 bytes long");
		g->cgroup_root = arg;
		break;
	}
	return 0;
}

static int parse_args(struct agg *g, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "expire", required_argument, NULL, 'e' },
		{ "summary-interval", required_argument, NULL, 'i' },
		{ "max-series", required_argument, NULL, 'm' },
		{ "top", required_argument, NULL, 't' },
		{ "ledger-top", required_argument, NULL, 'K' },
		{ "memcg-interval", required_argument, NULL, 'M' },
		{ "cgroup-root", required_argument, NULL, 'C' },
		{ 0 }
	};

	g->listen = "127.0.0.1:9471";
	g->expire = 300;
	g->max_series = 10000;
	g->top_n = 5;
	g->ledger_top = 10;
	g->memcg_interval = 10;
	g->cgroup_root = "/sys/fs/cgroup";
	if (consumer_cli__parse(&g->cli, CONSUMER_CLI_SOCKET | CONSUMER_CLI_NAME | CONSUMER_CLI_SCHED,
				"kmon-aggregate", lo, aggregate_option, g, argc, argv))
		return -1;
	if (g->cli.help) {
		usage();
		exit(0);
	}
	return 0;
}

static void on_event(void *ctx, const struct kmon_event *ev, const struct kmon_meta *meta,
		     uint64_t seq, bool replay)
{
	struct agg *g = ctx;

	(void)seq;
	(void)replay;
	g->received++;
	aggtable__add(g->table, ev, meta, kmon_clock__sec());
}

/* Call sites by name: the agent hides addresses by default and hands over its
 * symbol table at attach; libkmon resolves locally. Raw addresses (agent run
 * with --raw-kernel-addresses) stay hex (ledger__site_name). */
static int name_site(void *ctx, uint64_t site, bool opaque, char *buf, size_t n)
{
	struct agg *g = ctx;
	int r;

	if (!opaque || !g->client)
		return -1;
	r = kmon_client__symbolize(g->client, site, buf, n);
	return r >= 0 || r == -ENOSPC ? 0 : -1;
}

static void on_meta(void *ctx, const struct kmon_meta *meta)
{
	struct agg *g = ctx;

	if (meta)
		aggtable__meta_changed(g->table, meta->key);
}

static void on_lost(void *ctx, uint64_t count, uint64_t since)
{
	struct agg *g = ctx;

	(void)since;
	g->lost += count;
}

static void on_state(void *ctx, enum kmon_client_state s, const char *why)
{
	struct agg *g = ctx;

	if (s == KMON_CLIENT_CONNECTING)
		return;
	fprintf(stderr, "kmon-aggregate: %s%s\n", why,
		s == KMON_CLIENT_DISCONNECTED ? "; reconnecting" : "");
	g->attached = s == KMON_CLIENT_ATTACHED;
	if (s == KMON_CLIENT_REFUSED) {
		g->exit_code = 1;
		uv_stop(&g->loop);
	}
}

static void render(struct agg *g)
{
	struct kmon_client_stats cs;

	metrics_text__reset(g->m);
	aggtable__write_metrics(g->table, g->m);
	kmon_client__get_stats(g->client, &cs);
	metrics_text__family(g->m, "kmon_aggregate_received_total", "counter",
			     "Events this aggregator received");
	metrics_text__sample_u64(g->m, "kmon_aggregate_received_total", NULL, NULL, 0, cs.received);
	metrics_text__family(g->m, "kmon_aggregate_lost_total", "counter",
			     "Events lost in this aggregator's ring (it read too slowly)");
	metrics_text__sample_u64(g->m, "kmon_aggregate_lost_total", NULL, NULL, 0, cs.lost);
	metrics_text__family(g->m, "kmon_aggregate_attached", "gauge",
			     "1 while attached to the agent");
	metrics_text__sample_u64(g->m, "kmon_aggregate_attached", NULL, NULL, 0, g->attached);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **req_cls)
{
	struct agg *g = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	const char *body;
	size_t len;
	unsigned code = 200;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)req_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		body = "method not allowed\n";
		code = 405;
		len = strlen(body);
	} else if (!strcmp(url, "/metrics")) {
		render(g);
		body = metrics_text__data(g->m, &len);
	} else if (!strcmp(url, "/healthz")) {
		body = "ok\n";
		len = 3;
	} else {
		body = "not found: try /metrics\n";
		code = 404;
		len = strlen(body);
	}
	r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type",
				code == 200 && !strcmp(url, "/metrics") ? "text/plain; version=0.0.4"
									: "text/plain");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static void on_http_timer(uv_timer_t *t)
{
	struct agg *g = t->data;

	MHD_run(g->httpd);
}

static void on_http_io(uv_poll_t *p, int status, int events)
{
	struct agg *g = p->data;
	MHD_UNSIGNED_LONG_LONG to;

	(void)status;
	(void)events;
	MHD_run(g->httpd);
	if (MHD_get_timeout(g->httpd, &to) == MHD_YES)
		uv_timer_start(&g->http_timer, on_http_timer, to, 0);
}

static int start_http(struct agg *g)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	char err[300];

	if (kmon_parse__listen_addr("--listen", g->listen, &ss, NULL, err, sizeof(err)))
		return log_fail("%s", err);
	g->httpd = MHD_start_daemon(MHD_USE_EPOLL | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				    0, NULL, NULL, on_request, g, MHD_OPTION_SOCK_ADDR,
				    (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (!g->httpd)
		return log_fail("--listen %s: cannot listen (%s)", g->listen,
			    errno ? strerror(errno) : "refused");
	info = MHD_get_daemon_info(g->httpd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || uv_poll_init(&g->loop, &g->http_poll, info->epoll_fd))
		return log_fail("cannot drive the HTTP server from the event loop");
	g->http_poll.data = g;
	uv_timer_init(&g->loop, &g->http_timer);
	g->http_timer.data = g;
	uv_poll_start(&g->http_poll, UV_READABLE, on_http_io);
	return 0;
}

static void on_expire(uv_timer_t *t)
{
	struct agg *g = t->data;

	aggtable__expire(g->table, kmon_clock__sec(), g->expire);
}

/* Bounded work per tick: at most this many /proc lookups (one per new
 * container), then one read per container whose memory cgroup is known. */
#define MEMCG_LOCATE_PER_TICK 256

static void on_memcg(uv_timer_t *t)
{
	struct agg *g = t->data;

	aggtable__memcg_refresh(g->table, g->memcg, MEMCG_LOCATE_PER_TICK);
}

static void on_summary(uv_timer_t *t)
{
	struct agg *g = t->data;

	aggtable__write_summary(g->table, stdout);
	fflush(stdout);
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct agg *g = h->data;

	(void)sig;
	uv_stop(&g->loop);
}

static void close_all(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	struct agg g;
	struct kmon_client_opts co;
	struct kmon_client_cbs cb = { .on_event = on_event, .on_lost = on_lost,
				      .on_state = on_state, .on_meta = on_meta };
	struct kmon_client_stats cs;
	double ms;
	unsigned i;

	log_init("kmon-aggregate", LOG_INFO);
	memset(&g, 0, sizeof(g));
	if (parse_args(&g, argc, argv))
		return 2;
	consumer_cli__apply_sched(&g.cli, "kmon-aggregate");
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&g.loop))
		return 1;
	g.table = aggtable__new(g.max_series, g.top_n);
	if (g.table && aggtable__set_ledger(g.table, g.ledger_top, name_site, &g))
		return log_fail("--ledger-top: cannot set"), 1;
	g.m = metrics_text__new();
	if (!g.table || !g.m || start_http(&g)) {
		if (!g.table || !g.m)
			log_fail("out of memory");
		if (g.httpd)
			MHD_stop_daemon(g.httpd);
		aggtable__free(g.table);
		metrics_text__free(g.m);
		uv_walk(&g.loop, close_all, NULL);
		uv_run(&g.loop, UV_RUN_DEFAULT);
		uv_loop_close(&g.loop);
		return 1;
	}
	consumer_cli__client_opts(&g.cli, &co);
	co.reconnect = true;
	g.client = kmon_client__new(&g.loop, &co, &cb, &g);
	if (!g.client)
		return log_fail("cannot create the client: %s", strerror(errno)), 1;
	uv_timer_init(&g.loop, &g.expire_timer);
	g.expire_timer.data = &g;
	ms = g.expire * 1000 / 10;
	uv_timer_start(&g.expire_timer, on_expire, (uint64_t)ms, (uint64_t)ms);
	uv_timer_init(&g.loop, &g.memcg_timer);
	g.memcg_timer.data = &g;
	if (g.memcg_interval > 0) {
		g.memcg = memcg__new("/proc", g.cgroup_root);
		if (!g.memcg)
			fprintf(stderr,
				"kmon-aggregate: no memory cgroup under %s (%s): kmon_memcg_* not "
				"exported (see --cgroup-root)\n",
				g.cgroup_root, strerror(errno));
		else
			uv_timer_start(&g.memcg_timer, on_memcg, (uint64_t)(g.memcg_interval * 1000),
				       (uint64_t)(g.memcg_interval * 1000));
	}
	uv_timer_init(&g.loop, &g.summary_timer);
	g.summary_timer.data = &g;
	if (g.summary_interval > 0)
		uv_timer_start(&g.summary_timer, on_summary, (uint64_t)(g.summary_interval * 1000),
			       (uint64_t)(g.summary_interval * 1000));
	for (i = 0; i < 2; i++) {
		uv_signal_init(&g.loop, &g.sig[i]);
		g.sig[i].data = &g;
		uv_signal_start(&g.sig[i], on_signal, sigs[i]);
	}
	fprintf(stderr, "kmon-aggregate: serving /metrics on %s\n", g.listen);
	kmon_client__start(g.client);
	uv_run(&g.loop, UV_RUN_DEFAULT);

	kmon_client__get_stats(g.client, &cs);
	kmon_client__close(g.client, NULL);
	uv_walk(&g.loop, close_all, NULL);
	uv_run(&g.loop, UV_RUN_DEFAULT);
	fprintf(stderr,
		"{\"counters\":{\"received\":%" PRIu64 ",\"lost_in_ring\":%" PRIu64
		",\"series\":%u,\"overflow\":%" PRIu64 ",\"reconnects\":%" PRIu64 "}}\n",
		cs.received, cs.lost, aggtable__series(g.table), aggtable__overflow(g.table),
		cs.reconnects);
	MHD_stop_daemon(g.httpd);
	aggtable__free(g.table);
	memcg__free(g.memcg);
	metrics_text__free(g.m);
	uv_loop_close(&g.loop);
	return g.exit_code;
}
