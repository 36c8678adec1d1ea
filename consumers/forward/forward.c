// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon-forward: attaches to kmon-agent as an unprivileged consumer and writes
 * every event as one JSON line to stdout, a file, or an HTTP endpoint.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <linux/types.h>
#include "bpf/event_util.h"
#include "bpf/kmon_event.h"
#include "consumers/common/cli.h"
#include "consumers/lib/client.h"
#include "shm/common/event_json.h"
#include "consumers/forward/http_sink.h"
#include "consumers/forward/otlp.h"
#include "consumers/forward/sink.h"
#include "shm/meta.h"
#include "shm/proto.h"
#include "shm/common/log.h"
#include "shm/common/parse.h"

#define MAX_HEADERS 16

#ifndef KMON_VERSION
#define KMON_VERSION "0.0.0"
#endif

struct forward {
	uv_loop_t loop;
	struct kmon_client *client;
	struct sink *sink;
	uv_signal_t sig[5];
	uv_check_t check;
	struct consumer_cli cli; /* --socket, --name, --sched */
	const char *output;
	uint32_t mask;
	const char *ns[KMON_PROTO_NS_MAX];
	unsigned n_ns;
	const char *headers[MAX_HEADERS];
	unsigned n_headers;
	char *env_headers[MAX_HEADERS]; /* built by --header-env, owned here */
	unsigned n_env_headers;
	const char *node_name; /* --node-name: overrides the agent's node name */
	double flush_interval;
	size_t max_queue_bytes;
	size_t batch_bytes;
	unsigned batch_lines;
	enum compress_codec codec;
	int level; /* 0: the codec's default */
	bool level_set, codec_set;
	struct event_json_cache *json_cache;
	int format; /* -1: NDJSON, else enum otlp_encoding */
	char *otlp_url;
	struct otlp_encoder *otlp;
	struct http_sink_encoder encoder;
	struct file_sink_opts rot;
	size_t ring_bytes;
	size_t replay_bytes;
	bool once; /* exit when the agent goes away instead of reconnecting */
	uint64_t boot_offset;
	uint64_t encode_errors;
	bool dirty;
	int exit_code;
	bool stopping;
	struct kmon_client_stats final_cs;
	struct sink_stats final_ss;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kmon-forward [options]\n"
		"Attach to kmon-agent and forward events as JSON lines.\n\n"
		"  --socket PATH          agent control socket (default /run/kmon/kmon.sock)\n"
		"  --output DEST          - (stdout, default), a file (appended; reopened on SIGHUP),\n"
		"                         or an http:// / https:// URL (NDJSON batches, POST)\n"
		"  --rotate-size SIZE     file: rotate before it would pass SIZE (FILE -> FILE.1 ...)\n"
		"  --rotate-keep N        file: rotated files kept, 1 to 1000 (default 5)\n"
		"  --rotate-gzip          file: gzip rotated files (FILE.N.gz), off the event path\n"
		"  --events LIST          memory_alloc,memory_free,process_exec (default all)\n"
		"  --namespace NS         only pods in NS (repeatable, up to %d)\n"
		"  --header 'K: V'        extra HTTP header (repeatable)\n"
		"  --header-env K=VAR     HTTP header K with the value of environment variable\n"
		"                         VAR (repeatable), for secrets: not on the command line\n"
		"  --node-name NAME       node name written in every event (default: the agent's)\n"
		"  --flush-interval SEC   HTTP: send a batch at least this often (default 1)\n"
		"  --batch-bytes SIZE     HTTP: uncompressed bytes per batch (default 1M)\n"
		"  --batch-lines N        HTTP: lines per batch (default 10000)\n"
		"  --max-queue-bytes SIZE HTTP: bytes waiting to be sent; beyond, the oldest\n"
		"                         batch is dropped and counted (default 64M)\n"
		"  --compress CODEC       HTTP: gzip (default), zstd (Content-Encoding: zstd, for\n"
		"                         sinks that accept it) or none\n"
		"  --compress-level N     HTTP: gzip 1-12, zstd -7..19 (default 1 for both)\n"
		"  --no-gzip              HTTP: same as --compress none\n"
		"  --format FMT           HTTP: ndjson (default), otlp (OpenTelemetry logs,\n"
		"                         OTLP/HTTP protobuf) or otlp-json; a URL without a\n"
		"                         path gets /v1/logs\n"
		"  --ring-size SIZE       ring to ask the agent for (default: agent's choice)\n"
		"  --replay SIZE          ask for up to SIZE of history before live events\n"
		"  --name NAME            name in the agent's logs (default kmon-forward)\n"
		"  --once                 exit when the agent goes away (default: reconnect)\n"
		"  --sched batch|normal   CPU policy: batch (default) never preempts the workload\n"
		"Counters go to stderr as one JSON line on SIGUSR1 and at exit.\n",
		KMON_PROTO_NS_MAX);
}

/* --header-env 'Name=VAR': the header's value comes from the environment, so
 * a credential (a Kubernetes Secret mapped to an env variable) never shows in
 * the command line, which every user of the node can read in /proc. */
static int header_from_env(struct forward *f, const char *arg)
{
	const char *eq = strchr(arg, '='), *p, *val;
	size_t nlen, vlen;
	char *h;

	if (!eq || eq == arg || !eq[1])
		return log_fail("--header-env: '%s' is not 'Header-Name=ENV_VARIABLE'", arg);
	nlen = (size_t)(eq - arg);
	for (p = arg; p < eq; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return log_fail("--header-env: '%.*s' is not a header name", (int)nlen, arg);
	val = getenv(eq + 1);
	if (!val || !*val)
		return log_fail("--header-env: environment variable %s is not set or empty", eq + 1);
	if (strpbrk(val, "\r\n"))
		return log_fail("--header-env: environment variable %s holds a line break", eq + 1);
	vlen = strlen(val);
	if (vlen > 8192)
		return log_fail("--header-env: environment variable %s is longer than 8192 bytes",
			    eq + 1);
	h = malloc(nlen + vlen + 3);
	if (!h)
		return log_fail("--header-env: out of memory");
	memcpy(h, arg, nlen);
	memcpy(h + nlen, ": ", 2);
	memcpy(h + nlen + 2, val, vlen + 1);
	f->env_headers[f->n_env_headers++] = h;
	f->headers[f->n_headers++] = h;
	return 0;
}

enum { O_OUTPUT = 256, O_EVENTS, O_NS, O_HEADER, O_FLUSH, O_QUEUE, O_NOGZIP, O_RING,
       O_REPLAY, O_ONCE, O_BBYTES, O_BLINES, O_ROT_SIZE, O_ROT_KEEP, O_ROT_GZIP,
       O_COMPRESS, O_LEVEL, O_FORMAT, O_HEADER_ENV, O_NODE_NAME };

/* One of kmon-forward's own options (consumer_cli_fn); --socket, --name and
 * --sched are consumer_cli's. */
static int forward_option(void *ctx, int c, const char *arg)
{
	struct forward *f = ctx;
	const char *bad;
	size_t bad_len;
	char *end;

	switch (c) {
	case O_OUTPUT:
		if (!*arg)
			return log_fail("--output: empty destination");
		f->output = arg;
		break;
	case O_EVENTS:
		if (kmon_event_mask_parse(arg, &f->mask, &bad, &bad_len))
			return log_fail("--events: unknown event type '%.*s' (known: memory_alloc, "
				    "memory_free, process_exec)", (int)bad_len, bad);
		break;
	case O_NS:
		if (f->n_ns >= KMON_PROTO_NS_MAX)
			return log_fail("--namespace: at most %d may be given", KMON_PROTO_NS_MAX);
		if (!*arg || strlen(arg) >= KMON_PROTO_NS_LEN)
			return log_fail("--namespace: '%s' is not a namespace name", arg);
		f->ns[f->n_ns++] = arg;
		break;
	case O_HEADER:
		if (f->n_headers >= MAX_HEADERS)
			return log_fail("--header: at most %d may be given", MAX_HEADERS);
		/* The value may be a credential (from a Secret): the
		 * error names the header, never shows its value. */
		if (!strchr(arg, ':') || strpbrk(arg, "\r\n"))
			return log_fail("--header: '%.*s' is not 'Name: value' on one line "
				    "(value not shown)",
				    (int)strcspn(arg, ":\r\n"), arg);
		f->headers[f->n_headers++] = arg;
		break;
	case O_HEADER_ENV:
		if (f->n_headers >= MAX_HEADERS)
			return log_fail("--header/--header-env: at most %d may be given",
				    MAX_HEADERS);
		if (header_from_env(f, arg))
			return -1;
		break;
	case O_NODE_NAME: {
		const char *p;

		/* A Kubernetes node name: a DNS subdomain (RFC 1123). */
		for (p = arg; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			      *p == '-' || *p == '.'))
				break;
		if (!*arg || *p || p - arg > 253)
			return log_fail("--node-name: '%s' is not a node name (1 to 253 of a-z, "
				    "0-9, '-', '.')", arg);
		f->node_name = arg;
		break;
	}
	case O_FLUSH:
		errno = 0;
		f->flush_interval = strtod(arg, &end);
		if (errno || *end || end == arg || f->flush_interval < 0.01 ||
		    f->flush_interval > 3600)
			return log_fail("--flush-interval: '%s' is not seconds from 0.01 to 3600",
				    arg);
		break;
	case O_ROT_SIZE: {
		size_t v;

		if (kmon_parse__size(arg, &v) || v < 4096)
			return log_fail("--rotate-size: '%s' is not a size of at least 4K", arg);
		f->rot.rotate_bytes = v;
		break;
	}
	case O_ROT_KEEP: {
		unsigned long v;

		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno || *end || end == arg || v < 1 || v > 1000)
			return log_fail("--rotate-keep: '%s' is not a count from 1 to 1000", arg);
		f->rot.keep = (unsigned)v;
		break;
	}
	case O_ROT_GZIP:
		f->rot.gzip = true;
		break;
	case O_QUEUE:
		if (kmon_parse__size(arg, &f->max_queue_bytes) || f->max_queue_bytes < 4096)
			return log_fail("--max-queue-bytes: '%s' is not a size of at least 4K",
				    arg);
		break;
	case O_BBYTES:
		if (kmon_parse__size(arg, &f->batch_bytes) || f->batch_bytes < 1024 ||
		    f->batch_bytes > (256u << 20))
			return log_fail("--batch-bytes: '%s' is not a size from 1K to 256M", arg);
		break;
	case O_BLINES: {
		unsigned long v;
		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno || *end || end == arg || v < 1 || v > 10000000)
			return log_fail("--batch-lines: '%s' is not a number from 1 to 10000000",
				    arg);
		f->batch_lines = (unsigned)v;
		break;
	}
	case O_NOGZIP:
		f->codec = COMPRESS_NONE;
		break;
	case O_COMPRESS:
		if (compress__parse_codec(arg, &f->codec))
			return log_fail("--compress: '%s' is not gzip, zstd or none", arg);
		f->codec_set = true;
		break;
	case O_LEVEL: {
		long v;

		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno || *end || end == arg || v < -1000 || v > 1000)
			return log_fail("--compress-level: '%s' is not a number", arg);
		f->level = (int)v;
		f->level_set = true;
		break;
	}
	case O_FORMAT:
		if (!strcmp(arg, "ndjson"))
			f->format = -1;
		else if (!strcmp(arg, "otlp"))
			f->format = OTLP_PROTOBUF;
		else if (!strcmp(arg, "otlp-json"))
			f->format = OTLP_JSON;
		else
			return log_fail("--format: '%s' is not ndjson, otlp or otlp-json", arg);
		break;
	case O_RING:
		if (kmon_parse__size(arg, &f->ring_bytes) || f->ring_bytes < 4096 ||
		    (f->ring_bytes & (f->ring_bytes - 1)))
			return log_fail("--ring-size: '%s' is not a power of two of at least 4K",
				    arg);
		break;
	case O_REPLAY:
		if (kmon_parse__size(arg, &f->replay_bytes))
			return log_fail("--replay: '%s' is not a size", arg);
		break;
	case O_ONCE:
		f->once = true;
		break;
	}
	return 0;
}

static int parse_args(struct forward *f, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, O_OUTPUT },
		{ "events", required_argument, NULL, O_EVENTS },
		{ "namespace", required_argument, NULL, O_NS },
		{ "header", required_argument, NULL, O_HEADER },
		{ "header-env", required_argument, NULL, O_HEADER_ENV },
		{ "node-name", required_argument, NULL, O_NODE_NAME },
		{ "flush-interval", required_argument, NULL, O_FLUSH },
		{ "max-queue-bytes", required_argument, NULL, O_QUEUE },
		{ "batch-bytes", required_argument, NULL, O_BBYTES },
		{ "batch-lines", required_argument, NULL, O_BLINES },
		{ "no-gzip", no_argument, NULL, O_NOGZIP },
		{ "compress", required_argument, NULL, O_COMPRESS },
		{ "compress-level", required_argument, NULL, O_LEVEL },
		{ "ring-size", required_argument, NULL, O_RING },
		{ "replay", required_argument, NULL, O_REPLAY },
		{ "once", no_argument, NULL, O_ONCE },
		{ "rotate-size", required_argument, NULL, O_ROT_SIZE },
		{ "rotate-keep", required_argument, NULL, O_ROT_KEEP },
		{ "rotate-gzip", no_argument, NULL, O_ROT_GZIP },
		{ "format", required_argument, NULL, O_FORMAT },
		{ 0 }
	};

	f->output = "-";
	f->flush_interval = 1.0;
	f->max_queue_bytes = 64u << 20;
	f->batch_bytes = 1u << 20;
	f->batch_lines = 10000;
	f->codec = COMPRESS_GZIP;
	f->format = -1;
	f->rot.sz = sizeof(f->rot);
	f->rot.keep = 5;
	if (consumer_cli__parse(&f->cli, CONSUMER_CLI_SOCKET | CONSUMER_CLI_NAME | CONSUMER_CLI_SCHED,
				"kmon-forward", lo, forward_option, f, argc, argv))
		return -1;
	if (f->cli.help) {
		usage(stdout);
		exit(0);
	}
	if ((f->rot.rotate_bytes || f->rot.gzip) &&
	    (!strcmp(f->output, "-") || !strncmp(f->output, "http://", 7) ||
	     !strncmp(f->output, "https://", 8)))
		return log_fail("--rotate-size/--rotate-gzip: only a file --output can rotate");
	if (f->rot.gzip && !f->rot.rotate_bytes)
		return log_fail("--rotate-gzip: needs --rotate-size");
	if ((f->level_set || f->codec_set) && strncmp(f->output, "http://", 7) &&
	    strncmp(f->output, "https://", 8))
		return log_fail("--compress/--compress-level: only an http:// or https:// --output is "
			    "compressed (files: --rotate-gzip)");
	if (f->level_set && !compress__level_ok(f->codec, f->level)) {
		int min, max, dflt;

		compress__level_range(f->codec, &min, &max, &dflt);
		if (f->codec == COMPRESS_NONE)
			return log_fail("--compress-level: --compress none takes no level");
		return log_fail("--compress-level: %d is not a %s level (%d to %d)", f->level,
			    compress__codec_name(f->codec), min, max);
	}
	if (f->format >= 0 && strncmp(f->output, "http://", 7) && strncmp(f->output, "https://", 8))
		return log_fail("--format %s: needs an http:// or https:// --output",
			    f->format == OTLP_JSON ? "otlp-json" : "otlp");
	return 0;
}

static void print_counters(struct forward *f)
{
	struct kmon_client_stats cs;
	struct sink_stats ss;

	cs = f->final_cs;
	ss = f->final_ss;
	if (f->client)
		kmon_client__get_stats(f->client, &cs);
	if (f->sink)
		f->sink->get_stats(f->sink, &ss);
	fprintf(stderr,
		"{\"counters\":{\"received\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"retried\":%" PRIu64
		",\"dropped_in_queue\":%" PRIu64 ",\"dropped_batches\":%" PRIu64
		",\"lost_in_ring\":%" PRIu64 ",\"replayed\":%" PRIu64 ",\"reconnects\":%" PRIu64
		",\"encode_errors\":%" PRIu64 ",\"seq_errors\":%" PRIu64 ",\"wakeups\":%" PRIu64
		",\"rotations\":%" PRIu64 ",\"rotate_errors\":%" PRIu64
		",\"response_bytes\":%" PRIu64 ",\"rejected\":%" PRIu64
		",\"retry_after\":%" PRIu64 "}}\n",
		cs.received, ss.sent, ss.retried, ss.dropped, ss.dropped_batches, cs.lost,
		cs.replayed, cs.reconnects, f->encode_errors, cs.seq_errors, cs.wakeups, ss.rotations,
		ss.rotate_errors, ss.response_bytes, ss.rejected, ss.retry_after);
	fflush(stderr);
}

static void on_event(void *ctx, const struct kmon_event *ev, const struct kmon_meta *meta,
		     uint64_t seq, bool replay)
{
	struct forward *f = ctx;
	char line[KMON_EVENT_JSON_MAX > OTLP_ITEM_MAX ? KMON_EVENT_JSON_MAX : OTLP_ITEM_MAX];
	int n;

	(void)seq;
	(void)replay;
	if (f->otlp)
		n = otlp__item(line, sizeof(line), ev, meta);
	else
		n = event_json__write_cached(f->json_cache, line, sizeof(line), ev, meta,
					     f->node_name ? f->node_name : kmon_client__node(f->client),
					     f->boot_offset, kmon_client__symtab(f->client));
	if (n < 0) {
		f->encode_errors++;
		return;
	}
	(void)f->sink->write(f->sink, line, (size_t)n);
	f->dirty = true;
}

/* A container's strings changed in place: the encoder's copies are stale. */
static void on_meta(void *ctx, const struct kmon_meta *meta)
{
	struct forward *f = ctx;

	(void)meta;
	event_json_cache__invalidate(f->json_cache);
}

/* The client's table at the time of the encode: the one a re-attach brings
 * replaces the old, which is freed then. */
static int otlp_encode(void *ctx, const char *items, size_t len, uint64_t n, char **body,
		       size_t *body_len)
{
	struct forward *f = ctx;

	otlp_encoder__set_symtab(f->otlp, f->client ? kmon_client__symtab(f->client) : NULL);
	return otlp_encoder__encode(f->otlp, items, len, n, body, body_len);
}

static uint64_t otlp_rejected(void *ctx, const char *answer, size_t len)
{
	struct forward *f = ctx;

	return otlp_encoder__rejected(f->otlp, answer, len);
}

/* OTLP/HTTP's convention (OTEL_EXPORTER_OTLP_ENDPOINT): a base URL without a
 * path means the signal's path, /v1/logs; a URL with a path is used as is. */
static char *otlp_url(const char *url)
{
	const char *path = strchr(strstr(url, "://") + 3, '/');
	char *out;

	if (path && strcmp(path, "/"))
		return strdup(url);
	if (asprintf(&out, "%.*s/v1/logs", (int)(path ? (size_t)(path - url) : strlen(url)),
		     url) < 0)
		return NULL;
	return out;
}

static void on_lost(void *ctx, uint64_t count, uint64_t since)
{
	(void)ctx;
	fprintf(stderr, "kmon-forward: lost %" PRIu64 " events in the ring from seq %" PRIu64
		" (reading too slowly)\n", count, since);
}

static void stop(struct forward *f, int code);

static void on_state(void *ctx, enum kmon_client_state s, const char *why)
{
	struct forward *f = ctx;

	switch (s) {
	case KMON_CLIENT_CONNECTING:
		break;
	case KMON_CLIENT_ATTACHED:
		/* maybe another agent, another node name */
		event_json_cache__invalidate(f->json_cache);
		fprintf(stderr, "kmon-forward: %s\n", why);
		if (f->otlp && otlp_encoder__set_node(f->otlp, f->node_name ? f->node_name :
							      kmon_client__node(f->client)))
			fprintf(stderr, "kmon-forward: out of memory for the node name\n");
		break;
	case KMON_CLIENT_DISCONNECTED:
		fprintf(stderr, "kmon-forward: %s%s\n", why, f->once ? "" : "; reconnecting");
		break;
	case KMON_CLIENT_REFUSED:
		fprintf(stderr, "kmon-forward: %s\n", why);
		/* With --once the agent going away is the normal end; anything
		 * else (refused, unreachable, protocol, no answer) is a failure. */
		stop(f, f->once && kmon_client__reason(f->client) == KMON_REASON_AGENT_GONE ? 0 : 1);
		break;
	}
}

/* After each loop turn: make what this turn produced visible downstream. */
static void on_check(uv_check_t *h)
{
	struct forward *f = h->data;

	if (f->dirty) {
		f->dirty = false;
		f->sink->flush(f->sink);
	}
}

static void on_sink_closed(void *ctx)
{
	struct forward *f = ctx;

	f->sink->get_stats(f->sink, &f->final_ss);
	f->sink = NULL;
}

static void close_all(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void stop(struct forward *f, int code)
{
	if (f->stopping)
		return;
	f->stopping = true;
	f->exit_code = code;
	uv_stop(&f->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct forward *f = h->data;
	int err;

	switch (signum) {
	case SIGUSR1:
		print_counters(f);
		break;
	case SIGHUP:
		if (f->sink->reopen && (err = f->sink->reopen(f->sink)))
			fprintf(stderr, "kmon-forward: cannot reopen %s: %s\n", f->output,
				strerror(-err));
		break;
	default:
		stop(f, 0);
	}
}

/* The client delivers what its ring still holds while closing: its counts
 * are final only now (taken earlier, they missed those last events). */
static void on_client_closed(void *ctx)
{
	struct forward *f = ctx;

	kmon_client__get_stats(f->client, &f->final_cs);
	f->client = NULL;
}

static void free_env_headers(struct forward *f)
{
	unsigned i;

	for (i = 0; i < f->n_env_headers; i++) {
		explicit_bzero(f->env_headers[i], strlen(f->env_headers[i]));
		free(f->env_headers[i]);
	}
	f->n_env_headers = 0;
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };
	struct forward f;
	struct kmon_client_opts co;
	struct kmon_client_cbs cb = { .on_event = on_event, .on_lost = on_lost,
				      .on_state = on_state, .on_meta = on_meta };
	unsigned i;

	log_init("kmon-forward", LOG_INFO);
	memset(&f, 0, sizeof(f));
	if (parse_args(&f, argc, argv)) {
		free_env_headers(&f);
		return 2;
	}
	consumer_cli__apply_sched(&f.cli, "kmon-forward");
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&f.loop)) {
		free_env_headers(&f);
		return log_fail("cannot create the event loop"), 1;
	}
	f.boot_offset = event_json__boot_offset_ns();
	/* A slot per container: a node runs at most a few hundred. */
	f.json_cache = event_json_cache__new(512);
	if (!f.json_cache) {
		free_env_headers(&f);
		uv_loop_close(&f.loop);
		return log_fail("cannot allocate the encoder's cache"), 1;
	}
	if (!strncmp(f.output, "http://", 7) || !strncmp(f.output, "https://", 8)) {
		struct http_sink_opts ho = {
			.sz = sizeof(ho), .loop = &f.loop, .url = f.output,
			.headers = f.headers, .n_headers = f.n_headers,
			.flush_interval = f.flush_interval, .batch_bytes = f.batch_bytes,
			.batch_lines = f.batch_lines, .max_queue_bytes = f.max_queue_bytes,
			.codec = f.codec, .level = f.level,
		};

		if (f.format >= 0) {
			f.otlp = otlp_encoder__new((enum otlp_encoding)f.format, KMON_VERSION,
						   f.boot_offset);
			f.otlp_url = otlp_url(f.output);
			if (!f.otlp || !f.otlp_url) {
				log_fail("out of memory");
				otlp_encoder__free(f.otlp);
				free(f.otlp_url);
				event_json_cache__free(f.json_cache);
				free_env_headers(&f);
				uv_loop_close(&f.loop);
				return 1;
			}
			f.encoder.content_type = otlp_encoder__content_type(f.otlp);
			f.encoder.encode = otlp_encode;
			f.encoder.rejected = otlp_rejected;
			f.encoder.ctx = &f;
			ho.encoder = &f.encoder;
			ho.url = f.otlp_url;
		}
		f.sink = http_sink__new(&ho);
	} else {
		f.sink = file_sink__new(f.output, &f.rot);
	}
	/* The sink copied the headers; a secret does not stay around longer. */
	free_env_headers(&f);
	f.n_headers = 0;
	if (!f.sink) {
		log_fail("--output %s: %s", f.output, strerror(errno));
		otlp_encoder__free(f.otlp);
		free(f.otlp_url);
		event_json_cache__free(f.json_cache);
		uv_loop_close(&f.loop);
		return 1;
	}

	consumer_cli__client_opts(&f.cli, &co);
	co.event_mask = f.mask;
	co.namespaces = f.ns;
	co.n_namespaces = f.n_ns;
	co.ring_bytes = f.ring_bytes;
	co.replay_bytes = f.replay_bytes;
	co.reconnect = !f.once;
	f.client = kmon_client__new(&f.loop, &co, &cb, &f);
	if (!f.client) {
		log_fail("cannot create the client: %s", strerror(errno));
		f.sink->close(f.sink, NULL, NULL);
		uv_run(&f.loop, UV_RUN_DEFAULT);
		uv_loop_close(&f.loop);
		otlp_encoder__free(f.otlp);
		free(f.otlp_url);
		event_json_cache__free(f.json_cache);
		return 1;
	}
	for (i = 0; i < 4; i++) {
		uv_signal_init(&f.loop, &f.sig[i]);
		f.sig[i].data = &f;
		uv_signal_start(&f.sig[i], on_signal, sigs[i]);
		uv_unref((uv_handle_t *)&f.sig[i]);
	}
	uv_check_init(&f.loop, &f.check);
	f.check.data = &f;
	uv_check_start(&f.check, on_check);
	uv_unref((uv_handle_t *)&f.check);
	kmon_client__start(f.client);
	uv_run(&f.loop, UV_RUN_DEFAULT);

	/* Shutdown: deliver what the ring still holds, then let the sink send
	 * what it can within its own bound. */
	kmon_client__close(f.client, on_client_closed);
	f.sink->flush(f.sink);
	f.sink->close(f.sink, on_sink_closed, &f);
	for (i = 0; i < 4; i++)
		uv_close((uv_handle_t *)&f.sig[i], NULL);
	uv_close((uv_handle_t *)&f.check, NULL);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	print_counters(&f);
	uv_walk(&f.loop, close_all, NULL);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&f.loop))
		fprintf(stderr, "kmon-forward: loop closed with handles open\n");
	event_json_cache__free(f.json_cache);
	otlp_encoder__free(f.otlp);
	free(f.otlp_url);
	return f.exit_code;
}
