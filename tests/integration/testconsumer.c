// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A consumer for the fan-out tests. Modes:
 *   count   (default) counts EVENT records and LOST reports through the client
 *           library; --slow-us N sleeps N us per event (a consumer that cannot
 *           keep up); --stall-after N stops reading after N events (one that
 *           never reads again); --sched-batch runs as kmon-forward and
 *           kmon-aggregate do by default. Prints one JSON line with its counts on exit
 *           (SIGINT/SIGTERM, or when the agent goes away with --once).
 *           It also checks the replay: a replayed record after a live one
 *           (replay_after_live) and the same kernel event twice (duplicates,
 *           over the first DUP_CHECK events) are counted; --no-dup-check
 *           leaves the second out (its 8 MiB table, touched at random, is a
 *           cache miss per event: benchmarks measure the fan-out, not it).
 *           --private-ring asks for copies of the events in its own ring
 *           instead of reading them from the agent's shared history.
 *           --dump FILE writes each event as two little-endian u64: its
 *           identity hash and its seq with bit 63 set for a replayed one, and
 *           each LOST report as 0 and its count, for comparing streams.
 *   hostile speaks the raw protocol, maps its control page and writes the
 *           positions given by --garbage (comma list: huge, back, max, zero,
 *           rand) in a loop; prints what it did.
 *   raw-hello sends the bytes of a file as its hello and prints the reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <linux/types.h>
#include "bpf/kmon_event.h"
#include "consumers/lib/client.h"
#include "shm/meta.h"
#include "shm/proto.h"

/* Events identified by timestamp, thread, type and size/pointer, in an open
 * addressing set of their hashes: a kernel event has one such identity. */
#define DUP_SLOTS (1u << 20)
#define DUP_CHECK (DUP_SLOTS / 2)

struct tc {
	uv_loop_t loop;
	struct kmon_client *client;
	uv_signal_t sigint, sigterm;
	uint64_t events, lost, lost_reports, replay, exec_events, with_meta, by_type[4];
	uint64_t first_seq, last_seq;
	uint64_t *seen; /* DUP_SLOTS hashes, 0 = empty */
	uint64_t n_seen, duplicates, replay_after_live, live;
	FILE *dump;
	uint64_t checksum;
	unsigned slow_us;
	uint64_t stall_after;
	bool once;
	bool stalled;
	char last_state[300];
};

/* One field into the identity: the splitmix64 finalizer of h + v. For a
 * fixed v it is a bijection of h, so two events that differ in one field
 * never hash alike (but for 0, taken as 1 below). The boost-style combine
 * used before was not one: two kmallocs of the flood 47,691 ns apart, equal
 * in every other field, hashed alike and were counted as a duplicate (the
 * trust_ring test's rare failure). */
static uint64_t mix(uint64_t h, uint64_t v)
{
	h += v;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static void check_unique(struct tc *t, const struct kmon_event *ev, uint64_t seq, bool replay)
{
	uint64_t h;
	uint32_t i;

	/* The identity hash only where it is used: hashing every event of a
	 * flood after the window cost this consumer as much as reading it. */
	if (!t->dump && (!t->seen || t->n_seen >= DUP_CHECK))
		return;
	h = mix(mix(mix(mix(mix(0, ev->timestamp), ev->tid), ev->event_type), ev->size),
		ev->data.mem.ptr);
	h += !h; /* 0 marks an empty slot */
	i = (uint32_t)(h >> 32) & (DUP_SLOTS - 1);
	if (t->dump) {
		uint64_t rec[2] = { h, seq | (replay ? 1ull << 63 : 0) };

		if (fwrite(rec, sizeof(rec), 1, t->dump) != 1) {
			perror("testconsumer: --dump");
			exit(1);
		}
	}
	if (!t->seen || t->n_seen >= DUP_CHECK)
		return;
	while (t->seen[i]) {
		if (t->seen[i] == h) {
			t->duplicates++;
			return;
		}
		i = (i + 1) & (DUP_SLOTS - 1);
	}
	t->seen[i] = h;
	t->n_seen++;
}

static void on_event(void *ctx, const struct kmon_event *ev, const struct kmon_meta *m,
		     uint64_t seq, bool replay)
{
	struct tc *t = ctx;
	struct timespec ts;

	if (t->stall_after && t->events >= t->stall_after) {
		/* Never read again: block the loop (the ring fills up). */
		t->stalled = true;
		for (;;)
			pause();
	}
	if (!t->events)
		t->first_seq = seq;
	t->last_seq = seq;
	t->events++;
	t->checksum = t->checksum * 31 + ev->pid + ev->size + ev->timestamp;
	if (ev->event_type < 4)
		t->by_type[ev->event_type]++;
	if (replay) {
		t->replay++;
		if (t->live)
			t->replay_after_live++;
	} else {
		t->live++;
	}
	check_unique(t, ev, seq, replay);
	if (m)
		t->with_meta++;
	if (t->slow_us) {
		ts.tv_sec = 0;
		ts.tv_nsec = (long)t->slow_us * 1000;
		nanosleep(&ts, NULL);
	}
}

static void on_lost(void *ctx, uint64_t count, uint64_t since)
{
	struct tc *t = ctx;

	(void)since;
	t->lost += count;
	t->lost_reports++;
	if (t->dump) {
		uint64_t rec[2] = { 0, count };

		if (fwrite(rec, sizeof(rec), 1, t->dump) != 1) {
			perror("testconsumer: --dump");
			exit(1);
		}
	}
}

static void on_state(void *ctx, enum kmon_client_state s, const char *why)
{
	struct tc *t = ctx;

	snprintf(t->last_state, sizeof(t->last_state), "%s", why ? why : "");
	fprintf(stderr, "testconsumer: state %d: %s\n", (int)s, why ? why : "");
	if (s == KMON_CLIENT_REFUSED || (s == KMON_CLIENT_DISCONNECTED && t->once))
		uv_stop(&t->loop);
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct tc *t = h->data;

	(void)sig;
	uv_stop(&t->loop);
}

static void print_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static int run_count(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' }, { "name", required_argument, NULL, 'n' },
		{ "slow-us", required_argument, NULL, 'w' }, { "stall-after", required_argument, NULL, 'a' },
		{ "ring-size", required_argument, NULL, 'r' }, { "replay", required_argument, NULL, 'p' },
		{ "mask", required_argument, NULL, 'm' }, { "namespace", required_argument, NULL, 'N' },
		{ "once", no_argument, NULL, 'o' }, { "sched-batch", no_argument, NULL, 'b' },
		{ "dump", required_argument, NULL, 'd' },
		{ "no-dup-check", no_argument, NULL, 'D' },
		{ "private-ring", no_argument, NULL, 'P' },
		{ 0 }
	};
	struct tc t;
	struct kmon_client_opts o;
	struct kmon_client_cbs cb = { .on_event = on_event, .on_lost = on_lost, .on_state = on_state };
	struct kmon_client_stats st;
	const char *ns[16];
	bool dup_check = true;
	int c;

	memset(&t, 0, sizeof(t));
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.name = "testconsumer";
	o.reconnect = true;
	o.namespaces = ns;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.socket_path = optarg; break;
		case 'b':
			if (kmon_client__sched_batch()) {
				perror("testconsumer: SCHED_BATCH");
				return 1;
			}
			break;
		case 'n': o.name = optarg; break;
		case 'w': t.slow_us = (unsigned)atoi(optarg); break;
		case 'a': t.stall_after = strtoull(optarg, NULL, 10); break;
		case 'r': o.ring_bytes = strtoull(optarg, NULL, 10); break;
		case 'p': o.replay_bytes = strtoull(optarg, NULL, 10); break;
		case 'm': o.event_mask = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'N': if (o.n_namespaces < 16) ns[o.n_namespaces++] = optarg; break;
		case 'o': t.once = true; o.reconnect = false; break;
		case 'D': dup_check = false; break;
		case 'P': o.private_ring = true; break;
		case 'd':
			t.dump = fopen(optarg, "we");
			if (!t.dump) {
				perror(optarg);
				return 1;
			}
			break;
		default: return 2;
		}
	}
	if (dup_check) {
		t.seen = calloc(DUP_SLOTS, sizeof(*t.seen));
		if (!t.seen) {
			perror("testconsumer: calloc");
			return 1;
		}
	}
	if (uv_loop_init(&t.loop))
		return 1;
	t.client = kmon_client__new(&t.loop, &o, &cb, &t);
	if (!t.client) {
		perror("kmon_client__new");
		return 1;
	}
	uv_signal_init(&t.loop, &t.sigint);
	uv_signal_init(&t.loop, &t.sigterm);
	t.sigint.data = t.sigterm.data = &t;
	uv_signal_start(&t.sigint, on_signal, SIGINT);
	uv_signal_start(&t.sigterm, on_signal, SIGTERM);
	kmon_client__start(t.client);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	kmon_client__get_stats(t.client, &st);
	/* Close delivers what is still in the ring. */
	kmon_client__close(t.client, NULL);
	uv_close((uv_handle_t *)&t.sigint, NULL);
	uv_close((uv_handle_t *)&t.sigterm, NULL);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	printf("{\"events\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"lost_reports\":%" PRIu64
	       ",\"replay\":%" PRIu64 ",\"with_meta\":%" PRIu64 ",\"memory_alloc\":%" PRIu64
	       ",\"memory_free\":%" PRIu64 ",\"process_exec\":%" PRIu64 ",\"seq_errors\":%" PRIu64
	       ",\"meta\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",\"wakeups\":%" PRIu64
	       ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"duplicates\":%" PRIu64
	       ",\"dup_checked\":%" PRIu64 ",\"replay_after_live\":%" PRIu64 ",\"last_state\":",
	       t.events, t.lost, t.lost_reports, t.replay, t.with_meta, t.by_type[1], t.by_type[2],
	       t.by_type[3], st.seq_errors, st.meta, st.reconnects, st.wakeups, t.first_seq,
	       t.last_seq, t.duplicates, t.n_seen, t.replay_after_live);
	print_json_str(t.last_state);
	printf("}\n");
	fflush(stdout);
	if (t.dump && fclose(t.dump)) {
		perror("testconsumer: --dump");
		return 1;
	}
	free(t.seen);
	uv_loop_close(&t.loop);
	return 0;
}

static int connect_sock(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static int recv_reply(int fd, struct kmon_hello_reply *r, int fds[KMON_PROTO_FDS])
{
	unsigned n_fds;
	long n;

	fds[0] = fds[1] = fds[2] = fds[3] = -1;
	n = kmon_proto_recv(fd, r, sizeof(*r), fds, &n_fds, 0);
	return (int)n;
}

/* The raw attach: hello, offer, populate, ready, attached. Returns the
 * socket, fds[] the ring's descriptors; exits on failure. */
static int raw_attach(const char *path, const char *name, int fds[KMON_PROTO_FDS])
{
	struct kmon_hello h;
	struct kmon_ready rd = { .magic = KMON_PROTO_MAGIC, .version = KMON_PROTO_VERSION };
	struct kmon_hello_reply r;
	int fd, more[KMON_PROTO_FDS];

	memset(&h, 0, sizeof(h));
	h.magic = KMON_PROTO_MAGIC;
	h.version = KMON_PROTO_VERSION;
	snprintf(h.name, sizeof(h.name), "%s", name);
	fd = connect_sock(path);
	if (send(fd, &h, sizeof(h), 0) != sizeof(h))
		exit(1);
	if (recv_reply(fd, &r, fds) <= 0 || r.status != KMON_HELLO_OK || fds[2] < 0) {
		fprintf(stderr, "%s: hello refused\n", name);
		exit(1);
	}
	if (mmap(NULL, 4096 + r.ring_bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, fds[0], 0) ==
		    MAP_FAILED ||
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fds[1], 0) ==
		    MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	if (send(fd, &rd, sizeof(rd), 0) != sizeof(rd) || recv_reply(fd, &r, more) <= 0 ||
	    r.status != KMON_HELLO_OK) {
		fprintf(stderr, "%s: ready refused: %s\n", name, r.error);
		exit(1);
	}
	return fd;
}

/* Writes garbage into the only page a consumer may write. */
static int run_hostile(int argc, char **argv)
{
	const char *path = argc > 2 ? argv[2] : "/run/kmon/kmon.sock";
	const char *what = argc > 3 ? argv[3] : "huge";
	_Atomic uint64_t *ctl;
	const _Atomic uint64_t *hdr;
	int fd, fds[KMON_PROTO_FDS], i;
	char buf[8];

	fd = raw_attach(path, "hostile", fds);
	ctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
	if (ctl == MAP_FAILED)
		return 1;
	/* The producer's page (read-only): its position is at offset 64. */
	hdr = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fds[0], 0);
	if (hdr == MAP_FAILED)
		return 1;
	/* Also try what must fail: writing the data area, resizing the ctl page. */
	printf("{\"data_writable\":%s,\"ctl_truncatable\":%s}\n",
	       mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0) == MAP_FAILED ?
		       "false" : "true",
	       ftruncate(fds[1], 0) == 0 ? "true" : "false");
	fflush(stdout);
	srand((unsigned)getpid());
	for (i = 0; i < 200000; i++) {
		uint64_t v;
		if (!strcmp(what, "huge"))
			v = 1ull << 60;
		else if (!strcmp(what, "max"))
			v = UINT64_MAX;
		else if (!strcmp(what, "back"))
			/* A valid position (all read), then back to 0: the agent must
			 * notice the position going backwards. */
			v = (i & 1) ? atomic_load(&hdr[8]) : 0;
		else
			v = ((uint64_t)rand() << 32) ^ (uint64_t)rand();
		atomic_store(&ctl[0], v);
		/* the wait word too (offset 64) */
		atomic_store(&ctl[8], v | 1);
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0) {
			printf("{\"detached_after\":%d}\n", i);
			return 0;
		}
		usleep(100);
	}
	printf("{\"detached_after\":-1}\n");
	return 0;
}

static int run_raw_hello(int argc, char **argv)
{
	const char *path = argv[2];
	char msg[65536];
	struct kmon_hello_reply r;
	int fd, fds[KMON_PROTO_FDS], n;
	FILE *f = fopen(argv[3], "rb");
	size_t len;

	(void)argc;
	if (!f)
		return 1;
	len = fread(msg, 1, sizeof(msg), f);
	fclose(f);
	fd = connect_sock(path);
	if (send(fd, msg, len, 0) < 0) {
		printf("{\"send_error\":\"%s\"}\n", strerror(errno));
		return 0;
	}
	memset(&r, 0, sizeof(r));
	n = recv_reply(fd, &r, fds);
	printf("{\"reply_bytes\":%d,\"status\":%u,\"error\":", n, r.status);
	r.error[sizeof(r.error) - 1] = '\0';
	print_json_str(n > 0 ? r.error : "");
	printf(",\"fds\":%d}\n", fds[0] >= 0);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "hostile"))
		return run_hostile(argc, argv);
	if (argc > 3 && !strcmp(argv[1], "raw-hello"))
		return run_raw_hello(argc, argv);
	return run_count(argc, argv);
}
