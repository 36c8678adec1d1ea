// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kmon-agent: options -> preflight -> load/attach -> drain thread + libuv loop
 * (signals, control socket, scans, kubelet, endpoints) -> one cleanup path.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <uv.h>

#include "agent/addrmask.h"
#include "agent/agent_metrics.h"
#include "agent/control.h"
#include "agent/endpoints.h"
#include "agent/drain.h"
#include "agent/fanout.h"
#include "agent/ksyms.h"
#include "agent/kubelet_proc.h"
#include "agent/loader.h"
#include "shm/common/log.h"
#include "agent/options.h"
#include "agent/privs.h"
#include "agent/tracker.h"
#include "bpf/event_util.h"
#include "shm/common/event_json.h"
#include "k8s/cgroup.h"
#include "shm/symtab.h"

#ifndef KMON_VERSION
#define KMON_VERSION "0.0.0"
#endif

struct agent {
	struct agent_options opts;
	uv_loop_t loop;
	uv_signal_t sigint;
	uv_signal_t sigterm;
	uv_signal_t sighup;
	struct loader *loader;
	struct drain *drain;
	struct fanout *fanout;
	struct control *control;
	struct tracker *tracker;
	struct kubelet_proc *kubelet; /* until the tracker takes it over */
	struct endpoints *endpoints;
	struct ksyms *ksyms;        /* the kernel's symbols, read while privileged */
	struct addrmask *addrmask;  /* hides addresses before the fan-out */
	struct kmon_symtab *symtab; /* --print's view of the consumers' table */
	uv_timer_t heartbeat;
	/* What the HTTP thread may read: a copy the loop thread refreshes. */
	pthread_mutex_t snap_lock;
	struct tracker_stats tracker_snap;
	_Atomic bool attached, scanned;
	char node_buf[256];
	uint64_t boot_offset_ns; /* --print: kernel timestamps to wall-clock time */
	char run_gid_buf[16]; /* the default socket group: the agent's own */
	int exit_code;
};

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n;

	if (level == LIBBPF_DEBUG && log_get_level() < LOG_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_msg(level == LIBBPF_WARN ? LOG_WARN : LOG_DEBUG, "libbpf: %s", line);
	return 0;
}

/* Only the drain thread prints (and reads opts.print). */
static void print_failed(struct agent *a)
{
	log_warn("--print: cannot write to stdout (%s); events are no longer printed",
		 strerror(errno));
	a->opts.print = false;
}

/* The consumers' encoder: comm and filename are whatever a process chose to
 * call itself, so they are escaped like every other output's. The drain does
 * not know the containers' metadata, so those fields stay empty here. */
static void print_event(struct agent *a, const struct kmon_event *ev)
{
	char line[KMON_EVENT_JSON_MAX];
	int n = event_json__write_sym(line, sizeof(line), ev, NULL, a->opts.node_name,
				      a->boot_offset_ns, a->symtab);

	if (n > 0 && fwrite(line, 1, (size_t)n, stdout) != (size_t)n)
		print_failed(a);
}

static void on_event(void *ctx, const struct kmon_event *ev)
{
	struct agent *a = ctx;
	struct kmon_event masked = *ev;

	/* History included: what any consumer or --print sees is masked. */
	addrmask__apply(a->addrmask, &masked);
	fanout__publish(a->fanout, &masked);
	if (a->opts.print)
		print_event(a, &masked);
}

static void on_batch(void *ctx)
{
	struct agent *a = ctx;

	fanout__flush(a->fanout);
	if (a->opts.print && fflush(stdout))
		print_failed(a);
}

static void on_bad_consumer(void *ctx)
{
	struct agent *a = ctx;

	control__notify_bad(a->control);
}

/* The fan-out and the control socket exist before the user switch: binding
 * in a root-owned directory and giving the socket its group (the --run-as gid
 * unless --socket-group says otherwise) need root or membership of the group. */
static int start_control(struct agent *a, char *err, size_t errlen)
{
	struct fanout_opts fo = {
		.sz = sizeof(fo),
		.max_consumers = a->opts.max_consumers,
		.max_ring_bytes = a->opts.max_ring_size,
		.history_bytes = a->opts.history_bytes,
		.on_bad = on_bad_consumer,
		.ctx = a,
	};
	struct control_opts co = {
		.sz = sizeof(co),
		.loop = &a->loop,
		.path = a->opts.socket_path,
		.group = a->opts.socket_group ? a->opts.socket_group : a->run_gid_buf,
		.mode = a->opts.socket_mode,
		.node_name = a->opts.node_name,
		.max_ring_bytes = a->opts.max_ring_size,
		.default_ring_bytes = a->opts.max_ring_size < (4u << 20) ? a->opts.max_ring_size
									 : (4u << 20),
		.history_bytes = a->opts.history_bytes,
		.shm_budget = a->opts.shm_budget,
		.max_pending_per_uid = a->opts.max_pending_per_uid,
		.max_consumers_per_uid = a->opts.max_consumers_per_uid,
		.max_consumers = a->opts.max_consumers,
		.symtab_fd = ksyms__memfd(a->ksyms),
	};

	if (fo.default_ring_bytes > fo.max_ring_bytes)
		fo.default_ring_bytes = fo.max_ring_bytes;
	a->fanout = fanout__new(&fo);
	if (!a->fanout) {
		snprintf(err, errlen, "cannot set up the fan-out: %s", strerror(errno));
		return -1;
	}
	co.fanout = a->fanout;
	a->control = control__new(&co, err, errlen);
	return a->control ? 0 : -1;
}

/* The symbol table is read as root, before the user switch: afterwards
 * kallsyms shows zeros and the ksym iterator cannot be loaded. */
static int start_symbols(struct agent *a)
{
	struct ksyms_opts ko = { .sz = sizeof(ko), .mode = (enum ksyms_mode)a->opts.kernel_symbols };
	char err[256];

	a->ksyms = ksyms__load(&ko);
	if (!a->ksyms) {
		log_error("cannot build the kernel symbol table: %s", strerror(errno));
		return -1;
	}
	if (ksyms__source(a->ksyms) == KMON_SYMTAB_NONE)
		log_warn("kernel call sites will not be resolved to names (kmon_kernel_symbols 0): %s",
			 ksyms__why(a->ksyms));
	else
		log_info("kernel symbols: %u from %s (%zu bytes shared with consumers)",
			 ksyms__count(a->ksyms), kmon_symtab__source_name(ksyms__source(a->ksyms)),
			 ksyms__memfd_bytes(a->ksyms));
	if (a->opts.raw_kernel_addresses)
		log_warn("--raw-kernel-addresses: consumers see kernel pointers and code addresses, "
			 "which defeats KASLR for every member of the socket's group");
	a->addrmask = addrmask__new(a->ksyms, a->opts.raw_kernel_addresses);
	if (!a->addrmask) {
		log_error("cannot set up address masking: %s", strerror(errno));
		return -1;
	}
	/* --print reads the table the way a consumer does. */
	a->symtab = kmon_symtab__open(ksyms__memfd(a->ksyms), err, sizeof(err));
	if (!a->symtab) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;

	log_info("received %s, detaching", strsignal(signum));
	uv_stop(&a->loop);
}

static void report_totals(struct agent *a)
{
	struct loader_counters kc;
	struct drain_stats ds;
	int ret;

	drain__get_stats(a->drain, &ds);
	ret = loader__read_counters(a->loader, &kc);
	if (ret) {
		log_warn("cannot read kernel counters: %s", strerror(-ret));
		memset(&kc, 0, sizeof(kc));
	}
	/* One JSON line, so scripts (and the tests) can check the accounting:
	 * read / attempted / kernel_dropped by event type, then the rest. */
	{
		static const char *const objs[] = { "read", "attempted", "kernel_dropped" };

		fputs("{\"totals\":{", stderr);
		for (int o = 0; o < 3; o++) {
			fprintf(stderr, "%s\"%s\":{", o ? "," : "", objs[o]);
			for (uint32_t t = 1; t <= KMON_EV_TYPE_MAX; t++)
				fprintf(stderr, "%s\"%s\":%" PRIu64, t > 1 ? "," : "",
					kmon_event_type_name(t),
					o == 0 ? ds.events[t]
					: o == 1 ? kc.c[KMON_CTR_ATTEMPT_BASE + t]
						 : kc.c[KMON_CTR_DROP_BASE + t]);
			fputc('}', stderr);
		}
	}
	fprintf(stderr,
		",\"irq_skipped\":%" PRIu64 ",\"sampled_out\":%" PRIu64
		",\"pid_map_full\":%" PRIu64 ",\"fork_tracked\":%" PRIu64
		",\"recursion_misses\":%" PRIu64 ",\"invalid\":%" PRIu64 ",\"max_batch_ns\":%" PRIu64
		",\"ledger\":{\"recorded\":%" PRIu64 ",\"matched\":%" PRIu64
		",\"matched_elsewhere\":%" PRIu64 ",\"unknown\":%" PRIu64 ",\"map_full\":%" PRIu64
		",\"stale\":%" PRIu64 "}}}\n",
		kc.c[KMON_CTR_IRQ_SKIPPED], kc.c[KMON_CTR_SAMPLED_OUT], kc.c[KMON_CTR_PIDMAP_FULL],
		kc.c[KMON_CTR_FORK_TRACKED], kc.recursion_misses, ds.invalid, ds.max_batch_ns,
		kc.c[KMON_CTR_LIVE_RECORDED], kc.c[KMON_CTR_FREE_MATCHED],
		kc.c[KMON_CTR_FREE_ELSEWHERE], kc.c[KMON_CTR_FREE_UNKNOWN], kc.c[KMON_CTR_LIVE_FULL],
		kc.c[KMON_CTR_LIVE_STALE]);
}

/*
 * Detach first so nothing new arrives, then drain what is left until every
 * attempt the kernel counted is read or counted as dropped. Programs still
 * running on another CPU at detach may add a record a moment later, hence the
 * short bounded wait.
 */
static void finish_drain(struct agent *a)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };
	struct loader_counters kc;
	struct drain_stats ds;

	loader__detach(a->loader);
	drain__stop(a->drain);
	for (int i = 0; i < 100; i++) {
		uint64_t want = 0, got = 0;

		if (loader__read_counters(a->loader, &kc))
			return;
		drain__get_stats(a->drain, &ds);
		for (int t = 1; t <= KMON_EV_TYPE_MAX; t++) {
			want += kc.c[KMON_CTR_ATTEMPT_BASE + t] - kc.c[KMON_CTR_DROP_BASE + t];
			got += ds.events[t];
		}
		if (got >= want)
			goto out;
		nanosleep(&tick, NULL);
		drain__consume_stopped(a->drain);
	}
	log_warn("records still missing from the ring buffer after detach");
out:
	fanout__finish(a->fanout);
}

static int start_signals(struct agent *a)
{
	int ret;

	a->sigint.data = a;
	a->sigterm.data = a;
	a->sighup.data = a;
	/* SIGHUP: the terminal of an agent run by hand went away. Without a
	 * handler it would kill the agent before it detaches and reports its
	 * totals; there is no configuration to reload, so it stops cleanly. */
	if ((ret = uv_signal_init(&a->loop, &a->sigint)) ||
	    (ret = uv_signal_init(&a->loop, &a->sigterm)) ||
	    (ret = uv_signal_init(&a->loop, &a->sighup)) ||
	    (ret = uv_signal_start(&a->sigint, on_signal, SIGINT)) ||
	    (ret = uv_signal_start(&a->sigterm, on_signal, SIGTERM)) ||
	    (ret = uv_signal_start(&a->sighup, on_signal, SIGHUP))) {
		log_error("cannot install signal handlers: %s", uv_err_name(ret));
		return ret;
	}
	return 0;
}

static void snapshot_tracker(struct agent *a)
{
	struct tracker_stats ts;

	if (!a->tracker)
		return;
	tracker__get_stats(a->tracker, &ts);
	pthread_mutex_lock(&a->snap_lock);
	a->tracker_snap = ts;
	pthread_mutex_unlock(&a->snap_lock);
	if (ts.first_scan_done)
		atomic_store(&a->scanned, true);
}

static void on_tracker_update(void *ctx)
{
	snapshot_tracker(ctx);
}

static void on_heartbeat(uv_timer_t *t)
{
	struct agent *a = t->data;

	endpoints__heartbeat(a->endpoints);
	snapshot_tracker(a);
}

static const char *not_ready(void *ctx)
{
	struct agent *a = ctx;

	if (!atomic_load(&a->attached))
		return "BPF programs not attached yet";
	if (!atomic_load(&a->scanned))
		return "first /proc scan not done yet";
	return NULL;
}

static void render_metrics(void *ctx, struct metrics_text *m)
{
	struct agent *a = ctx;
	/* Room for every consumer the agent accepts (up to 1024, ~130 KiB):
	 * on the heap, not the HTTP thread's stack. */
	unsigned cap = a->opts.max_consumers;
	struct fanout_consumer_stats *cs = calloc(cap, sizeof(*cs));
	struct loader_counters kc;
	struct drain_stats ds;
	struct tracker_stats ts;
	struct agent_metrics_src src = { 0 };
	struct control_stats cts;

	drain__get_stats(a->drain, &ds);
	if (cs) {
		src.n_consumers = fanout__consumer_stats(a->fanout, cs, cap);
		src.n_listed = src.n_consumers < cap ? src.n_consumers : cap;
	} else {
		src.n_consumers = fanout__consumer_count(a->fanout);
	}
	src.drain = &ds;
	src.kernel = loader__read_counters(a->loader, &kc) ? NULL : &kc;
	src.consumers = cs;
	if (a->tracker) {
		pthread_mutex_lock(&a->snap_lock);
		ts = a->tracker_snap;
		pthread_mutex_unlock(&a->snap_lock);
		src.tracker = &ts;
	}
	if (a->control) {
		control__get_stats(a->control, &cts);
		src.control = &cts;
	}
	src.ready = !not_ready(a);
	src.kernel_symbols = a->ksyms ? ksyms__count(a->ksyms) : 0;
	src.symbols_source = a->ksyms ? ksyms__source(a->ksyms) : KMON_SYMTAB_NONE;
	src.raw_kernel_addresses = a->opts.raw_kernel_addresses;
	agent_metrics_render(m, &src);
	free(cs);
}

static int start_services(struct agent *a)
{
	char err[512];

	if (a->opts.rescan_interval > 0 || a->opts.kubelet_url) {
		struct tracker_opts to = {
			.sz = sizeof(to),
			.loop = &a->loop,
			.loader = a->loader,
			.fanout = a->fanout,
			.proc_root = a->opts.proc_root,
			.rescan_interval = a->opts.rescan_interval,
			.pid_map_size = a->opts.pid_map_size,
			.kubelet = a->kubelet,
			.kubelet_url = a->opts.kubelet_url,
			.kubelet_refresh = a->opts.kubelet_refresh,
			.node_name = a->opts.node_name,
			.on_update = on_tracker_update,
			.ctx = a,
		};
		if (a->opts.kubelet_insecure)
			log_warn("--kubelet-insecure-skip-tls-verify: the kubelet's identity is not "
				 "checked");
		if (!a->opts.kubelet_url)
			log_info("no kubelet configured (set NODE_IP or --kubelet-url): events carry "
				 "container ids and pod uids, without pod names");
		a->tracker = tracker__new(&to);
		a->kubelet = NULL; /* the tracker's now, even when it failed */
		if (!a->tracker) {
			log_error("cannot start the container tracker: %s", strerror(errno));
			return -1;
		}
		tracker__start(a->tracker);
	} else {
		atomic_store(&a->scanned, true);
	}
	if (a->opts.metrics_addr || a->opts.health_addr) {
		struct endpoints_opts eo = {
			.sz = sizeof(eo),
			.addr = a->opts.metrics_addr,
			.health_addr = a->opts.health_addr,
			.not_ready = not_ready,
			.render_metrics = render_metrics,
			.ctx = a,
		};
		a->endpoints = endpoints__start(&eo, err, sizeof(err));
		if (!a->endpoints) {
			log_error("%s", err);
			return -1;
		}
		if (a->opts.metrics_addr)
			log_info("serving /healthz, /readyz and /metrics on %s", a->opts.metrics_addr);
		if (a->opts.health_addr)
			log_info("serving /healthz and /readyz on %s", a->opts.health_addr);
	}
	uv_timer_init(&a->loop, &a->heartbeat);
	a->heartbeat.data = a;
	uv_timer_start(&a->heartbeat, on_heartbeat, 1000, 1000);
	return 0;
}

/* --classify-cgroup: what the parser makes of one /proc/<pid>/cgroup file. */
static int classify_file(const char *path)
{
	char buf[65536];
	struct cgroup_info info;
	size_t n;
	FILE *f = fopen(path, "r");
	char *json;

	if (!f) {
		fprintf(stderr, "kmon-agent: --classify-cgroup %s: %s\n", path, strerror(errno));
		return 1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (cgroup__classify(buf, n, &info)) {
		fprintf(stderr, "kmon-agent: --classify-cgroup %s: not a /proc/<pid>/cgroup file "
			"(lines must look like 'ID:CONTROLLERS:/PATH')\n", path);
		return 1;
	}
	json = cgroup__to_json(&info);
	if (!json)
		return 1;
	printf("%s\n", json);
	free(json);
	return 0;
}

/* What the agent reads after the user switch, checked once right after it,
 * so a file only root could read is named at start, with the user and the
 * fix, rather than show up as a bare "Permission denied" from a kubelet
 * refresh later. Warnings only: a token may be rewritten (rotated) with the
 * right mode after the agent starts. */
static void check_access(struct agent *a)
{
	const struct {
		bool used;
		const char *opt, *path;
		int mode;
	} files[] = {
		{ a->opts.rescan_interval > 0, "--proc-root", a->opts.proc_root, R_OK | X_OK },
		{ a->opts.kubelet_url != NULL, "--kubelet-token-file", a->opts.kubelet_token_file,
		  R_OK },
		{ a->opts.kubelet_url && !a->opts.kubelet_insecure, "--kubelet-ca-file",
		  a->opts.kubelet_ca_file, R_OK },
	};

	if (a->opts.run_uid == 0)
		log_warn("--run-as %u:%u keeps the root user (still without capabilities): "
			 "files owned by root stay writable to the agent",
			 (unsigned)a->opts.run_uid, (unsigned)a->opts.run_gid);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		/* Only what the switch caused: a missing file is reported where
		 * it is used, with what that means. */
		if (!files[i].used || !files[i].path || access(files[i].path, files[i].mode) == 0 ||
		    errno != EACCES)
			continue;
		log_warn("%s %s: not readable as uid %u gid %u (--run-as): %s; make it readable "
			 "by that group (the chart does so with fsGroup)", files[i].opt,
			 files[i].path, (unsigned)a->opts.run_uid, (unsigned)a->opts.run_gid,
			 strerror(errno));
	}
}

/* Opens the kubelet client's helper while still root (agent/kubelet_proc.h):
 * --kubelet-helper, else kmon-kubelet-get in the agent's own directory. */
static int open_kubelet_helper(struct agent *a, char *err, size_t errlen)
{
	char self[4096], path[4096 + 32];
	const char *helper = a->opts.kubelet_helper;
	struct kubelet_proc_opts ko = {
		.sz = sizeof(ko),
		.url = a->opts.kubelet_url,
		.token_file = a->opts.kubelet_token_file,
		.ca_file = a->opts.kubelet_ca_file,
		.insecure = a->opts.kubelet_insecure,
		.timeout_ms = 10000,
		/* Generous for 1000 pods; a larger answer is refused before it is
		 * parsed, so a broken or hostile kubelet cannot balloon the agent. */
		.max_body = 16u << 20,
	};

	if (!a->opts.kubelet_url)
		return 0;
	if (!helper) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *slash;

		if (n < 0)
			return snprintf(err, errlen, "cannot find the agent's own directory for "
					"kmon-kubelet-get (/proc/self/exe: %s); pass --kubelet-helper",
					strerror(errno)), -1;
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(path, sizeof(path), "%s/kmon-kubelet-get", self);
		helper = path;
	}
	ko.helper = helper;
	a->kubelet = kubelet_proc__new(&ko, err, errlen);
	return a->kubelet ? 0 : -1;
}

static int run(struct agent *a)
{
	struct loader_opts lo = {
		.sz = sizeof(lo),
		.scope_all = a->opts.scope_all,
		.event_mask = a->opts.event_mask,
		.sample_every = a->opts.sample_every,
		.pid_map_size = a->opts.pid_map_size,
		.ringbuf_size = a->opts.ringbuf_size,
		.self_tgid = (uint32_t)getpid(),
		.classic_tracepoints = a->opts.classic_tracepoints,
		.live_map_size = a->opts.live_map_size,
	};
	struct drain_opts dopts = {
		.sz = sizeof(dopts), .on_event = on_event, .on_batch = on_batch, .ctx = a,
	};
	char err[512];
	int ret;

	if (loader_preflight(err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	libbpf_set_print(libbpf_log);
	a->loader = loader__new(&lo, err, sizeof(err));
	if (!a->loader) {
		log_error("%s", err);
		return 1;
	}
	for (unsigned i = 0; i < a->opts.n_pids; i++) {
		ret = loader__track(a->loader, a->opts.pids[i], 0, KMON_PIDF_FROM_SCAN);
		if (ret) {
			log_error("--pid %u: cannot add it to the PID map: %s", a->opts.pids[i],
				  strerror(-ret));
			return 1;
		}
	}
	if (start_symbols(a))
		return 1;
	if (start_control(a, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	/* A thread starts with the nice value of the thread creating it, and
	 * lowering one needs CAP_SYS_NICE: so this thread takes the drain's value
	 * while still privileged and gives it up once the drain exists. Under a
	 * flood on a busy node, the drain then gets the CPU before the kernel
	 * ring overflows. */
	if (a->opts.drain_nice && setpriority(PRIO_PROCESS, (id_t)gettid(), a->opts.drain_nice)) {
		log_warn("--drain-nice %d: %s; the drain runs at nice 0 and may fall behind a "
			 "flood on a busy node (grant CAP_SYS_NICE, or pass --drain-nice 0)",
			 a->opts.drain_nice, strerror(errno));
		a->opts.drain_nice = 0;
	}
	if (open_kubelet_helper(a, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	/* Opt-in: the drain as a real-time thread. At any nice value a fair-class
	 * thread can wait a scheduler slice or two behind the busy threads on
	 * its CPU (5-8 ms in target 2's two-thread flood on 2 vCPUs); a
	 * SCHED_FIFO one runs as soon as it wakes (0.3-0.45 ms there). The drain sleeps between
	 * passes, so it takes no more CPU than at nice -15, and the kernel's RT
	 * throttling (sched_rt_runtime_us) bounds it all the same. Set after
	 * the kubelet helper is forked, which must not inherit it, inherited by
	 * the drain thread and given up by this one once the drain exists. */
	if (a->opts.drain_rt_priority) {
		struct sched_param sp = { .sched_priority = a->opts.drain_rt_priority };

		if (sched_setscheduler(0, SCHED_FIFO, &sp)) {
			log_warn("--drain-rt-priority %d: %s; the drain runs at nice %d instead "
				 "(it needs CAP_SYS_NICE and, on kernels with CONFIG_RT_GROUP_SCHED, "
				 "real-time time for the agent's cgroup, cpu.rt_runtime_us; or pass "
				 "--drain-rt-priority 0)",
				 a->opts.drain_rt_priority, strerror(errno), a->opts.drain_nice);
			a->opts.drain_rt_priority = 0;
		}
	}
	/* Everything privileged is done, and no other thread exists yet: the
	 * threads created from here on (drain, endpoints, libuv workers) start
	 * as the unprivileged user with nothing to give up. */
	if (privs_drop_to(a->opts.run_uid, a->opts.run_gid, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	a->boot_offset_ns = event_json__boot_offset_ns();
	check_access(a);
	dopts.ringbuf_fd = loader__ringbuf_fd(a->loader);
	dopts.polling = loader__drain_polling(a->loader);
	a->drain = drain__start(&dopts);
	if (!a->drain) {
		log_error("cannot start the drain thread: %s", strerror(errno));
		return 1;
	}
	/* Leaving SCHED_FIFO for SCHED_OTHER at the same nice value, and raising
	 * a nice value, need no privilege. */
	if (a->opts.drain_rt_priority) {
		struct sched_param sp = { .sched_priority = 0 };

		if (sched_setscheduler(0, SCHED_OTHER, &sp)) {
			log_error("cannot return the main thread to SCHED_OTHER: %s", strerror(errno));
			return 1;
		}
		log_info("drain thread: SCHED_FIFO priority %d", a->opts.drain_rt_priority);
	}
	if (a->opts.drain_nice && setpriority(PRIO_PROCESS, (id_t)gettid(), 0)) {
		log_error("cannot return the main thread to nice 0: %s", strerror(errno));
		return 1;
	}
	atomic_store(&a->attached, true);
#ifdef __GLIBC__
	/* The load freed what libbpf parsed (the kernel's BTF, the object's
	 * sections) and building the symbol table used: about 7 MiB that glibc
	 * keeps in the heap until trimmed (measured with gdb calling
	 * malloc_trim in an agent run with --rescan-interval 0, where no scan
	 * ever trims). The tracker trims after each scan and PodList. */
	(void)malloc_trim(0);
#endif
	log_info("attached: scope %s, ring buffer %zu bytes, PID map %u entries, node %s, "
		 "running as uid %u gid %u without capabilities",
		 a->opts.scope_all ? "all" : "containers", a->opts.ringbuf_size,
		 a->opts.pid_map_size, a->opts.node_name, (unsigned)a->opts.run_uid,
		 (unsigned)a->opts.run_gid);
	if (start_signals(a) || start_services(a))
		return 1;
	ret = uv_run(&a->loop, UV_RUN_DEFAULT);
	(void)ret;
	endpoints__stop(a->endpoints);
	a->endpoints = NULL;
	tracker__close(a->tracker);
	a->tracker = NULL;
	finish_drain(a);
	report_totals(a);
	control__close(a->control);
	a->control = NULL;
	return 0;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int main(int argc, char **argv)
{
	struct agent a;
	char err[512];
	int ret;

	memset(&a, 0, sizeof(a));
#ifdef __GLIBC__
	/* One malloc arena for every thread. glibc gives each thread pool
	 * worker that allocates an arena of its own, and the scans' and
	 * PodLists' freed memory stayed in them, fragmented (4.5 MiB of the
	 * agent's 22.8 with 10,000 tracked PIDs; 0.1 MiB with one arena). The
	 * drain never allocates, and the workers run a scan or a PodList now
	 * and then: nothing contends for the lock. Under a sanitizer, whose
	 * allocator replaces glibc's, this does nothing (and says so by
	 * returning 0): nothing to report. */
	(void)mallopt(M_ARENA_MAX, 1);
#endif
	log_init("kmon-agent", LOG_INFO);
	if (agent_options_parse(argc, argv, &a.opts, err, sizeof(err))) {
		fprintf(stderr, "kmon-agent: %s\n", err);
		return 2;
	}
	if (a.opts.show_help) {
		agent_options_usage(stdout);
		return 0;
	}
	if (a.opts.show_version) {
		printf("kmon-agent %s (event record v%d)\n", KMON_VERSION, KMON_EVENT_VERSION);
		return 0;
	}
	if (a.opts.classify_cgroup)
		return classify_file(a.opts.classify_cgroup);
	snprintf(a.run_gid_buf, sizeof(a.run_gid_buf), "%u", (unsigned)a.opts.run_gid);
	log_init("kmon-agent", a.opts.log_level);
	if (!a.opts.node_name || !a.opts.node_name[0]) {
		if (gethostname(a.node_buf, sizeof(a.node_buf) - 1))
			snprintf(a.node_buf, sizeof(a.node_buf), "unknown");
		a.opts.node_name = a.node_buf;
	}
	pthread_mutex_init(&a.snap_lock, NULL);
	ret = uv_loop_init(&a.loop);
	if (ret) {
		log_error("cannot create the event loop: %s", uv_err_name(ret));
		return 1;
	}
	a.exit_code = run(&a);

	endpoints__stop(a.endpoints);
	tracker__close(a.tracker);
	kubelet_proc__free(a.kubelet);
	control__close(a.control);
	drain__free(a.drain);
	loader__free(a.loader);
	uv_walk(&a.loop, close_walk_cb, NULL);
	uv_run(&a.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&a.loop))
		log_warn("event loop closed with handles still open");
	fanout__free(a.fanout);
	addrmask__free(a.addrmask);
	kmon_symtab__free(a.symtab);
	ksyms__free(a.ksyms);
	return a.exit_code;
}
