// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/types.h>
#include "bpf/event_util.h"
#include "shm/err.h"
#include "shm/common/parse.h"
#include "shm/proto.h"

enum {
	OPT_SCOPE = 0x100,
	OPT_ATTACH,
	OPT_RINGBUF,
	OPT_EVENTS,
	OPT_SAMPLE,
	OPT_PIDMAP,
	OPT_LIVEMAP,
	OPT_PID,
	OPT_PRINT,
	OPT_LOGLEVEL,
	OPT_SOCKET,
	OPT_SOCKET_GROUP,
	OPT_SOCKET_MODE,
	OPT_MAX_CONSUMERS,
	OPT_MAX_RING,
	OPT_HISTORY,
	OPT_SHM_BUDGET,
	OPT_MAX_PENDING_UID,
	OPT_MAX_CONSUMERS_UID,
	OPT_PROC_ROOT,
	OPT_RESCAN,
	OPT_DRAIN_NICE,
	OPT_DRAIN_RT_PRIORITY,
	OPT_RUN_AS,
	OPT_KUBELET_URL,
	OPT_KUBELET_TOKEN,
	OPT_KUBELET_CA,
	OPT_KUBELET_INSECURE,
	OPT_KUBELET_REFRESH,
	OPT_KUBELET_HELPER,
	OPT_NODE_NAME,
	OPT_METRICS_ADDR,
	OPT_HEALTH_ADDR,
	OPT_CLASSIFY,
	OPT_VERSION,
	OPT_HELP,
	OPT_RAW_ADDRS,
	OPT_KSYMS,
};

static const struct option long_opts[] = {
	{ "scope", required_argument, NULL, OPT_SCOPE },
	{ "attach", required_argument, NULL, OPT_ATTACH },
	{ "ringbuf-size", required_argument, NULL, OPT_RINGBUF },
	{ "events", required_argument, NULL, OPT_EVENTS },
	{ "sample", required_argument, NULL, OPT_SAMPLE },
	{ "pid-map-size", required_argument, NULL, OPT_PIDMAP },
	{ "live-map-size", required_argument, NULL, OPT_LIVEMAP },
	{ "pid", required_argument, NULL, OPT_PID },
	{ "print", no_argument, NULL, OPT_PRINT },
	{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "max-consumers", required_argument, NULL, OPT_MAX_CONSUMERS },
	{ "max-ring-size", required_argument, NULL, OPT_MAX_RING },
	{ "history-bytes", required_argument, NULL, OPT_HISTORY },
	{ "shm-budget", required_argument, NULL, OPT_SHM_BUDGET },
	{ "max-pending-per-uid", required_argument, NULL, OPT_MAX_PENDING_UID },
	{ "max-consumers-per-uid", required_argument, NULL, OPT_MAX_CONSUMERS_UID },
	{ "proc-root", required_argument, NULL, OPT_PROC_ROOT },
	{ "rescan-interval", required_argument, NULL, OPT_RESCAN },
	{ "drain-nice", required_argument, NULL, OPT_DRAIN_NICE },
	{ "drain-rt-priority", required_argument, NULL, OPT_DRAIN_RT_PRIORITY },
	{ "run-as", required_argument, NULL, OPT_RUN_AS },
	{ "kubelet-url", required_argument, NULL, OPT_KUBELET_URL },
	{ "kubelet-token-file", required_argument, NULL, OPT_KUBELET_TOKEN },
	{ "kubelet-ca-file", required_argument, NULL, OPT_KUBELET_CA },
	{ "kubelet-insecure-skip-tls-verify", no_argument, NULL, OPT_KUBELET_INSECURE },
	{ "kubelet-refresh", required_argument, NULL, OPT_KUBELET_REFRESH },
	{ "kubelet-helper", required_argument, NULL, OPT_KUBELET_HELPER },
	{ "node-name", required_argument, NULL, OPT_NODE_NAME },
	{ "metrics-addr", required_argument, NULL, OPT_METRICS_ADDR },
	{ "health-addr", required_argument, NULL, OPT_HEALTH_ADDR },
	{ "classify-cgroup", required_argument, NULL, OPT_CLASSIFY },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "raw-kernel-addresses", no_argument, NULL, OPT_RAW_ADDRS },
	{ "kernel-symbols", required_argument, NULL, OPT_KSYMS },
	{ 0 },
};

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

void agent_options_usage(FILE *out)
{
	fputs("Usage: kmon-agent [OPTIONS]\n"
	      "Streams kernel memory and exec events from container processes to kmon consumers.\n"
	      "\n"
	      "Collection:\n"
	      "  --scope containers|all     trace only container processes (default) or every process\n"
	      "  --events LIST              memory_alloc,memory_free,slab_alloc,slab_free,\n"
	      "                             process_exec,oom_kill (default: all)\n"
	      "  --sample N                 keep 1 in N memory events (default 1 = all)\n"
	      "  --ringbuf-size BYTES       BPF ring buffer, power of two >= page size (default 16M)\n"
	      "  --pid-map-size N           tracked processes at most (default 65536)\n"
	      "  --live-map-size N          containers' live kernel allocations remembered so any\n"
	      "                             free is charged to its owner (default 262144, ~25M of\n"
	      "                             kernel memory; when full, counted, never silent)\n"
	      "  --pid PID                  also track this process and its children (repeatable)\n"
	      "  --attach tp_btf|tracepoint BTF tracepoints (default, no tracefs needed) or classic\n"
	      "                             ones (need tracefs mounted)\n"
	      "  --drain-nice N             nice value of the drain thread, -20..0 (default -15):\n"
	      "                             under a flood it gets the CPU before the kernel ring\n"
	      "                             overflows; needs CAP_SYS_NICE, else stays 0 with a warning\n"
	      "  --drain-rt-priority N      0 (default) or 1..99: run the drain thread SCHED_FIFO at\n"
	      "                             this priority, so a busy CPU cannot hold it back a\n"
	      "                             scheduler slice; needs CAP_SYS_NICE, else --drain-nice\n"
	      "                             alone with a warning\n"
	      "  --run-as UID:GID           user and group the agent becomes once attached, with\n"
	      "                             no capability and no supplementary group (default\n"
	      "                             65532:65532; needs CAP_SETUID, CAP_SETGID, CAP_SETPCAP)\n"
	      "  --print                    print events as JSON lines on stdout (debugging aid:\n"
	      "                             a slow stdout slows the drain)\n"
	      "  --kernel-symbols auto|kallsyms|ksym-iter|off  where call sites get their names\n"
	      "                             (default auto: /proc/kallsyms, else the BPF ksym\n"
	      "                             iterator when kptr_restrict hides addresses)\n"
	      "  --raw-kernel-addresses     give consumers (and --print) raw kernel pointers and\n"
	      "                             call-site addresses instead of opaque ids and symbol\n"
	      "                             references: this defeats KASLR for anyone in the\n"
	      "                             socket's group (default: off)\n"
	      "Consumers:\n"
	      "  --socket PATH              control socket (default /run/kmon/kmon.sock)\n"
	      "  --socket-group GROUP       group owning the socket (default: the --run-as gid)\n"
	      "  --socket-mode MODE         octal mode of the socket (default 0660)\n"
	      "  --max-consumers N          default 16\n"
	      "  --max-ring-size BYTES      largest ring a consumer may ask for (default 64M)\n"
	      "  --history-bytes BYTES      events kept for late consumers (default 8M, 0 = none)\n"
	      "  --shm-budget BYTES         shared memory of all rings at once (each ring: its size\n"
	      "                             + 8K); a hello beyond it is refused (default 256M)\n"
	      "  --max-pending-per-uid N    connections without hello from one uid (default 4)\n"
	      "  --max-consumers-per-uid N  consumers attached or attaching per uid (default 8)\n"
	      "Kubernetes:\n"
	      "  --proc-root PATH           /proc of the host (default /proc)\n"
	      "  --rescan-interval SEC      /proc scan period (default 2, 0 = never)\n"
	      "  --kubelet-url URL          default https://$NODE_IP:10250 when NODE_IP is set\n"
	      "  --kubelet-token-file FILE  default " SA_DIR "/token (re-read per request)\n"
	      "  --kubelet-ca-file FILE     default " SA_DIR "/ca.crt\n"
	      "  --kubelet-insecure-skip-tls-verify  do not verify the kubelet's certificate\n"
	      "  --kubelet-refresh SEC      pod list refresh period (default 10)\n"
	      "  --kubelet-helper PATH      the kubelet client run per refresh (default\n"
	      "                             kmon-kubelet-get next to kmon-agent)\n"
	      "  --node-name NAME           default $NODE_NAME, else the host name\n"
	      "  --classify-cgroup FILE     print how a /proc/<pid>/cgroup file is classified, exit\n"
	      "Operations:\n"
	      "  --metrics-addr HOST:PORT   serve /healthz, /readyz and /metrics\n"
	      "  --health-addr HOST:PORT    also serve /healthz and /readyz alone here, for the\n"
	      "                             kubelet's probes: scrapers cannot delay them\n"
	      "  --log-level LEVEL          error|warn|info|debug (default info)\n"
	      "  --version, --help\n",
	      out);
}

/* Every option error is -EINVAL with its message in err. */
#define fail(err, errlen, ...) kmon_err__set(err, errlen, -EINVAL, __VA_ARGS__)

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

static int parse_seconds(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v))
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static bool is_pow2(size_t v)
{
	return v && !(v & (v - 1));
}

/* Checked here so a bad address fails at start, not when the listener opens. */
static bool hostport_ok(const char *arg, char *why, size_t whylen)
{
	char host[256];
	uint16_t port;

	return kmon_parse__hostport(arg, host, sizeof(host), &port, why, whylen) == 0;
}

static void set_defaults(struct agent_options *o)
{
	const char *node_ip = getenv("NODE_IP");

	memset(o, 0, sizeof(*o));
	o->ringbuf_size = 16u << 20;
	o->event_mask = KMON_EV_MASK_ALL;
	o->sample_every = 1;
	o->pid_map_size = 65536;
	o->live_map_size = 262144;
	o->log_level = LOG_INFO;
	o->socket_path = "/run/kmon/kmon.sock";
	o->socket_mode = 0660;
	o->max_consumers = 16;
	o->max_ring_size = 64u << 20;
	o->history_bytes = 8u << 20;
	o->shm_budget = 256u << 20;
	o->max_pending_per_uid = 4;
	o->max_consumers_per_uid = 8;
	o->proc_root = "/proc";
	o->rescan_interval = 2.0;
	o->drain_nice = -15;
	o->drain_rt_priority = 0; /* opt-in: a real-time thread on every node is a surprise */
	/* Like distroless' nonroot; the chart's socket group is the same gid. */
	o->run_uid = 65532;
	o->run_gid = 65532;
	o->kubelet_token_file = SA_DIR "/token";
	o->kubelet_ca_file = SA_DIR "/ca.crt";
	o->kubelet_refresh = 10.0;
	o->node_name = getenv("NODE_NAME");
	if (node_ip && *node_ip) {
		/* An IPv6 host IP needs brackets in a URL. */
		if (strchr(node_ip, ':'))
			snprintf(o->kubelet_url_buf, sizeof(o->kubelet_url_buf), "https://[%s]:10250", node_ip);
		else
			snprintf(o->kubelet_url_buf, sizeof(o->kubelet_url_buf), "https://%s:10250", node_ip);
		o->kubelet_url = o->kubelet_url_buf;
	}
}

static int parse_one(int c, const char *arg, struct agent_options *o, char *err, size_t errlen)
{
	const char *bad;
	size_t bad_len;
	char why[200];
	uint32_t v;
	size_t sz;
	int ret;

	switch (c) {
	case OPT_SCOPE:
		if (strcmp(arg, "containers") == 0)
			o->scope_all = false;
		else if (strcmp(arg, "all") == 0)
			o->scope_all = true;
		else
			return fail(err, errlen, "--scope: '%s' is not one of containers, all", arg);
		return 0;
	case OPT_ATTACH:
		if (strcmp(arg, "tp_btf") == 0)
			o->classic_tracepoints = false;
		else if (strcmp(arg, "tracepoint") == 0)
			o->classic_tracepoints = true;
		else
			return fail(err, errlen, "--attach: '%s' is not one of tp_btf, tracepoint", arg);
		return 0;
	case OPT_RINGBUF: {
		long page = sysconf(_SC_PAGESIZE);

		if (kmon_parse__size(arg, &sz))
			return fail(err, errlen, "--ringbuf-size: '%s' is not a size (e.g. 4M, 65536)", arg);
		if (!is_pow2(sz) || page <= 0 || sz < (size_t)page || sz % (size_t)page)
			return fail(err, errlen,
				    "--ringbuf-size: %zu must be a power of two and a multiple of the page size (%ld)",
				    sz, page);
		if (sz > (1u << 30))
			return fail(err, errlen, "--ringbuf-size: %zu is above the 1G limit", sz);
		o->ringbuf_size = sz;
		return 0;
	}
	case OPT_EVENTS:
		if (kmon_event_mask_parse(arg, &v, &bad, &bad_len))
			return fail(err, errlen,
				    "--events: unknown event type '%.*s' (known: memory_alloc, memory_free, slab_alloc, "
				    "slab_free, process_exec, oom_kill)",
				    (int)bad_len, bad);
		o->event_mask = v;
		return 0;
	case OPT_SAMPLE:
		if (parse_u32(arg, 1, 1000000, &v))
			return fail(err, errlen, "--sample: '%s' is not a whole number from 1 to 1000000", arg);
		o->sample_every = v;
		return 0;
	case OPT_PIDMAP:
		if (parse_u32(arg, 16, 1u << 22, &v))
			return fail(err, errlen, "--pid-map-size: '%s' is not a whole number from 16 to 4194304", arg);
		o->pid_map_size = v;
		return 0;
	case OPT_LIVEMAP:
		if (parse_u32(arg, 1024, 1u << 24, &v))
			return fail(err, errlen, "--live-map-size: '%s' is not a whole number from 1024 to 16777216", arg);
		o->live_map_size = v;
		return 0;
	case OPT_PID:
		if (parse_u32(arg, 1, INT32_MAX, &v))
			return fail(err, errlen, "--pid: '%s' is not a process id", arg);
		if (o->n_pids >= AGENT_MAX_PIDS)
			return fail(err, errlen, "--pid: at most %d may be given", AGENT_MAX_PIDS);
		o->pids[o->n_pids++] = v;
		return 0;
	case OPT_PRINT:
		o->print = true;
		return 0;
	case OPT_RAW_ADDRS:
		o->raw_kernel_addresses = true;
		return 0;
	case OPT_KSYMS:
		if (strcmp(arg, "auto") == 0)
			o->kernel_symbols = 0;
		else if (strcmp(arg, "kallsyms") == 0)
			o->kernel_symbols = 1;
		else if (strcmp(arg, "ksym-iter") == 0)
			o->kernel_symbols = 2;
		else if (strcmp(arg, "off") == 0)
			o->kernel_symbols = 3;
		else
			return fail(err, errlen, "--kernel-symbols: '%s' is not one of auto, kallsyms, "
				    "ksym-iter, off", arg);
		return 0;
	case OPT_LOGLEVEL:
		if (log_level_parse(arg, &o->log_level))
			return fail(err, errlen, "--log-level: '%s' is not one of error, warn, info, debug", arg);
		return 0;
	case OPT_SOCKET:
		if (!*arg || strlen(arg) >= KMON_PROTO_PATH_MAX)
			return fail(err, errlen, "--socket: path must be 1 to %d bytes long",
				    KMON_PROTO_PATH_MAX - 1);
		o->socket_path = arg;
		return 0;
	case OPT_SOCKET_GROUP:
		if (!*arg)
			return fail(err, errlen, "--socket-group: empty group name");
		o->socket_group = arg;
		return 0;
	case OPT_SOCKET_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(arg, &end, 8);
		if (errno || !*arg || *end || m > 0777)
			return fail(err, errlen, "--socket-mode: '%s' is not an octal mode like 0660", arg);
		if (m & 0007)
			return fail(err, errlen, "--socket-mode: '%s' would let any user attach; use 0660 and --socket-group", arg);
		o->socket_mode = (unsigned)m;
		return 0;
	}
	case OPT_MAX_CONSUMERS:
		if (parse_u32(arg, 1, 1024, &v))
			return fail(err, errlen, "--max-consumers: '%s' is not a whole number from 1 to 1024", arg);
		o->max_consumers = v;
		return 0;
	case OPT_MAX_RING:
		if ((ret = kmon_parse__size(arg, &sz)) || !is_pow2(sz) || sz < 4096 || sz > (1u << 30))
			return fail(err, errlen, "--max-ring-size: '%s' must be a power of two from 4K to 1G", arg);
		o->max_ring_size = sz;
		return 0;
	case OPT_HISTORY:
		if (kmon_parse__size(arg, &sz) || sz > (1u << 30))
			return fail(err, errlen, "--history-bytes: '%s' is not a size up to 1G", arg);
		o->history_bytes = sz;
		return 0;
	case OPT_SHM_BUDGET:
		if (kmon_parse__size(arg, &sz) || sz < (16u << 10) || sz > ((size_t)1 << 40))
			return fail(err, errlen, "--shm-budget: '%s' is not a size from 16K to 1T", arg);
		o->shm_budget = sz;
		return 0;
	case OPT_MAX_PENDING_UID:
		if (parse_u32(arg, 1, 1024, &v))
			return fail(err, errlen, "--max-pending-per-uid: '%s' is not a whole number from 1 to 1024", arg);
		o->max_pending_per_uid = v;
		return 0;
	case OPT_MAX_CONSUMERS_UID:
		if (parse_u32(arg, 1, 1024, &v))
			return fail(err, errlen, "--max-consumers-per-uid: '%s' is not a whole number from 1 to 1024", arg);
		o->max_consumers_per_uid = v;
		return 0;
	case OPT_PROC_ROOT:
		if (!*arg)
			return fail(err, errlen, "--proc-root: empty path");
		o->proc_root = arg;
		return 0;
	case OPT_DRAIN_NICE: {
		char *end;
		long n;

		errno = 0;
		n = strtol(arg, &end, 10);
		if (errno || end == arg || *end || n < -20 || n > 0)
			return fail(err, errlen, "--drain-nice: '%s' is not a whole number from -20 to 0", arg);
		o->drain_nice = (int)n;
		return 0;
	}
	case OPT_DRAIN_RT_PRIORITY: {
		char *end;
		long n;

		errno = 0;
		n = strtol(arg, &end, 10);
		if (errno || end == arg || *end || n < 0 || n > 99)
			return fail(err, errlen,
				    "--drain-rt-priority: '%s' is not a whole number from 0 (off) to 99",
				    arg);
		o->drain_rt_priority = (int)n;
		return 0;
	}
	case OPT_RUN_AS: {
		unsigned long long u, g;
		char *end;

		/* Numbers only: the agent's image has no user database to trust,
		 * and -1 (the kernel's "unchanged") must never be accepted. */
		errno = 0;
		u = strtoull(arg, &end, 10);
		if (errno || end == arg || *end != ':' || !isdigit((unsigned char)*arg))
			return fail(err, errlen, "--run-as: '%s' is not UID:GID (numbers, e.g. 65532:65532)", arg);
		arg = end + 1;
		g = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || !isdigit((unsigned char)*arg))
			return fail(err, errlen, "--run-as: GID '%s' is not a number", arg);
		if (u >= (uid_t)-1 || g >= (gid_t)-1)
			return fail(err, errlen, "--run-as: ids must be below 4294967295");
		o->run_uid = (uid_t)u;
		o->run_gid = (gid_t)g;
		return 0;
	}
	case OPT_RESCAN:
		if (parse_seconds(arg, 0, 3600, &o->rescan_interval) ||
		    (o->rescan_interval > 0 && o->rescan_interval < 0.1))
			return fail(err, errlen, "--rescan-interval: '%s' is not 0 or seconds from 0.1 to 3600", arg);
		return 0;
	case OPT_KUBELET_URL:
		if (strncmp(arg, "https://", 8) && strncmp(arg, "http://", 7))
			return fail(err, errlen, "--kubelet-url: '%s' must start with https:// (or http://)", arg);
		o->kubelet_url = arg;
		return 0;
	case OPT_KUBELET_TOKEN:
		o->kubelet_token_file = arg;
		return 0;
	case OPT_KUBELET_CA:
		o->kubelet_ca_file = arg;
		return 0;
	case OPT_KUBELET_HELPER:
		if (!arg[0])
			return fail(err, errlen, "--kubelet-helper: empty path");
		o->kubelet_helper = arg;
		return 0;
	case OPT_KUBELET_INSECURE:
		o->kubelet_insecure = true;
		return 0;
	case OPT_KUBELET_REFRESH:
		if (parse_seconds(arg, 0.1, 3600, &o->kubelet_refresh))
			return fail(err, errlen, "--kubelet-refresh: '%s' is not seconds from 0.1 to 3600", arg);
		return 0;
	case OPT_NODE_NAME:
		if (!*arg || strlen(arg) > 253)
			return fail(err, errlen, "--node-name: must be 1 to 253 characters");
		o->node_name = arg;
		return 0;
	case OPT_METRICS_ADDR:
		if (!hostport_ok(arg, why, sizeof(why)))
			return fail(err, errlen, "--metrics-addr: %s", why);
		o->metrics_addr = arg;
		return 0;
	case OPT_HEALTH_ADDR:
		if (!hostport_ok(arg, why, sizeof(why)))
			return fail(err, errlen, "--health-addr: %s", why);
		o->health_addr = arg;
		return 0;
	case OPT_CLASSIFY:
		o->classify_cgroup = arg;
		return 0;
	case OPT_VERSION:
		o->show_version = true;
		return 0;
	case OPT_HELP:
		o->show_help = true;
		return 0;
	}
	return fail(err, errlen, "unknown option");
}

int agent_options_parse(int argc, char **argv, struct agent_options *o, char *err, size_t errlen)
{
	int c, ret;

	set_defaults(o);
	err[0] = '\0';
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
		if (c == '?')
			return fail(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
		if (c == ':')
			return fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
		ret = parse_one(c, optarg, o, err, errlen);
		if (ret)
			return ret;
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
	if (o->health_addr && o->metrics_addr && !strcmp(o->health_addr, o->metrics_addr))
		return fail(err, errlen, "--health-addr: '%s' is also --metrics-addr; give it its "
			    "own port (or leave it out: the probes are served on --metrics-addr too)",
			    o->health_addr);
	return 0;
}
