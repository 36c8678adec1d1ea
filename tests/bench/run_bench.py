#!/usr/bin/env python3
"""kmon benchmarks, side by side with baselines in one run (issue 7).

  run_bench.py [--short] [--only a,b] [--out results.json]  (root; KMON_BUILD=build dir)

Everything is reported as ratios against a baseline measured in the same run,
because this machine is shared and noisy. Sections:
  kmalloc   per-event cost: kmalloc/kfree loop with no probe, an empty tp_btf
            program, a bare 108-byte reserve/submit program + libbpf reader,
            kmon tp_btf, kmon classic tracepoints, bpftrace count and printf;
            in-kernel ns per run from kernel.bpf_stats_enabled
  exec      exec storm with nothing, kmon (+ forward + aggregate) in all scope,
            in containers scope (the storm in a kubelet-style container cgroup)
            and with exec events only, execsnoop, bpftrace count and printf
  ring      shm ring throughput vs memcpy, one-way latency spinning and sleeping
  fanout    0, 1, 2, 4 consumers under a two-thread flood, flat out and paced:
            delivered, lost, agent and consumer CPU per event and per copy;
            and the fan-out alone (no kernel): drain ns per copy vs memcpy
  attach    drain stall while consumers attach with 8 MiB of history replay
            and detach in a loop under a two-thread flood, vs nobody
            attaching (KMON_BASELINE_AGENT: an older agent side by side);
            and in-process, the drain's longest wait for the fan-out lock
  drain     kmon-agent with no consumer vs a bare libbpf reader
  wakeups   the ring's sleep path at 10k/100k/1M records/s
  micro     consumer ceilings: JSON, gzip, aggregate ns per event
  make      make -j2 of kmon's sources under each tool (also containers scope)
  forward   kmon-forward to a discarding HTTP sink vs /dev/null vs checksum only
  tracked   agent scan time, RSS and drain stall under a flood, 100 vs 10k PIDs
  podlist   PodList parse time and peak RSS for 110 and 500 pods
  clickhouse  8 kmon-forwards (own node names) into one real clickhouse-server
            (charts/clickhouse schema) vs the same 8 into a discarding HTTP
            sink, paced flood: rows/s the server ingests, forward CPU per event
Not pass/fail: it fails only when a tool cannot run.
"""
import argparse
import json
import os
import shutil
import signal
from statistics import median
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from agentproc import Agent, Consumer  # noqa: E402

B = os.environ.get("KMON_BUILD", os.path.join(HERE, "..", "..", "build"))
AGENT = os.path.join(B, "agent", "kmon-agent")
FORWARD = os.path.join(B, "consumers", "kmon-forward")
AGGREGATE = os.path.join(B, "consumers", "kmon-aggregate")
FLOOD = os.path.join(B, "tests", "kmalloc_flood")
PROBE = os.path.join(B, "tests", "bench_probe")
TC = os.path.join(B, "tests", "testconsumer")
RING = os.path.join(B, "tests", "ring_twoproc")
PODLIST = os.path.join(B, "tests", "bench_podlist")
MICRO = os.path.join(B, "tests", "bench_micro")
BARE = os.path.join(B, "tests", "bench_bare_reader")
FANOUT = os.path.join(B, "tests", "bench_fanout")


def sh(*a, **kw):
    return subprocess.run(a, check=True, capture_output=True, text=True, **kw).stdout


def ensure_tracefs():
    if not os.path.exists("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)


def prog_stats():
    out = json.loads(sh("bpftool", "-j", "prog", "show"))
    return {p["id"]: (p.get("name", ""), p.get("run_cnt", 0), p.get("run_time_ns", 0))
            for p in out}


def timed(argv, pin="0", pod=None, tool=None):
    """Seconds argv takes, pinned to a CPU. With pod, argv runs in that
    container cgroup and, when tool is kmon in containers scope, starts only
    once the agent tracks it (as a container process running for a while)."""
    if pod is None:
        t0 = time.perf_counter()
        subprocess.run(["taskset", "-c", pin] + argv, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0
    held = pod.start_held(["taskset", "-c", pin] + argv)
    if tool is not None:
        tool.wait_tracked(held.pid, pod.path)
    t0 = time.perf_counter()
    pod.go(held)
    rc = held.wait()
    secs = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError("%s exited %d" % (argv, rc))
    return secs


def proc_cpu(pid):
    """CPU seconds (user + system) pid has used so far, all threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_cgroup(procs, argv, fifo=None):
    """argv run by a shell that first moves itself into every cgroup.procs
    file given (and, with fifo, waits for a line on it before exec)."""
    script = ('for p in "$@"; do case $p in --) break;; esac; echo $$ > "$p"; shift; done; '
              'shift; %s exec "$@"' % ("read x < %s;" % fifo if fifo else ""))
    return ["/bin/sh", "-c", script, "sh"] + list(procs) + ["--"] + list(argv)


class PodCgroup:
    """A container cgroup shaped as kubelet + containerd make it, on every
    mounted hierarchy, for workloads kmon must see in containers scope."""

    def __init__(self):
        from kubenode import Node, cgroups_path, new_container_id, new_pod_uid
        self.node = Node()
        self.path = cgroups_path("cgroupfs-containerd", new_pod_uid(), new_container_id())
        self.procs = self.node.make_cgroup(self.path)
        self.fifo_dir = tempfile.mkdtemp(prefix="kmon-pod-")

    def start_held(self, argv):
        """argv in the cgroup, held before exec until go()."""
        fifo = os.path.join(self.fifo_dir, "go-%d" % len(os.listdir(self.fifo_dir)))
        os.mkfifo(fifo)
        p = subprocess.Popen(in_cgroup(self.procs, argv, fifo), stdout=subprocess.DEVNULL)
        p.fifo = fifo
        return p

    def go(self, p):
        with open(p.fifo, "w") as f:
            f.write("go\n")

    def close(self):
        self.node.close()
        shutil.rmtree(self.fifo_dir, ignore_errors=True)


def metrics(addr):
    m = sh("curl", "-s", "http://%s/metrics" % addr)
    return {l.split()[0]: float(l.split()[1]) for l in m.splitlines()
            if l and not l.startswith("#") and "{" not in l}


class Tool:
    """A tracer running beside the workload: started, waited for, stopped."""

    def __init__(self, kind, tmp):
        self.kind, self.tmp, self.p, self.agent, self.consumers = kind, tmp, None, None, []

    METRICS = "127.0.0.1:19482"

    def start(self):
        k = self.kind
        if k in ("kmon", "kmon-tracepoint", "kmon-consumers", "kmon-containers",
                 "kmon-exec-only"):
            args = ["--scope", "all", "--rescan-interval", "0"]
            if k == "kmon-exec-only":
                # Like for like with execsnoop and bpftrace: exec events only.
                args += ["--events", "process_exec"]
            if k == "kmon-containers":
                args = ["--scope", "containers", "--rescan-interval", "0.5",
                        "--metrics-addr", self.METRICS]
            if k == "kmon-tracepoint":
                ensure_tracefs()
                args += ["--attach", "tracepoint"]
            self.agent = Agent(AGENT, args)
            self.agent.wait_attached()
            if k in ("kmon-consumers", "kmon-containers", "kmon-exec-only"):
                for argv in ([FORWARD, "--socket", self.agent.socket, "--output", "/dev/null"],
                             [AGGREGATE, "--socket", self.agent.socket, "--listen",
                              "127.0.0.1:0"]):
                    c = Consumer(argv)
                    c.wait_for_log("attached to")
                    self.consumers.append(c)
        elif k in ("empty", "reserve"):
            self.p = subprocess.Popen([PROBE, k], stdout=subprocess.PIPE, text=True)
            assert self.p.stdout.readline().strip() == "attached"
        elif k.startswith("bpftrace") or k == "execsnoop":
            ensure_tracefs()
            scripts = {
                "bpftrace-count-kmalloc": "tracepoint:kmem:kmalloc { @c = count(); } "
                                          "tracepoint:kmem:kfree { @f = count(); }",
                "bpftrace-printf-kmalloc": 'tracepoint:kmem:kmalloc { printf("%d %d %s %d\\n", '
                                           'pid, tid, comm, args->bytes_alloc); } '
                                           'tracepoint:kmem:kfree { printf("%d %d %s\\n", '
                                           'pid, tid, comm); }',
                "bpftrace-count-exec": "tracepoint:sched:sched_process_exec { @c = count(); }",
                "bpftrace-printf-exec": 'tracepoint:sched:sched_process_exec { printf("%d %d '
                                        '%s %s\\n", pid, tid, comm, str(args->filename)); }',
            }
            argv = (["execsnoop"] if k == "execsnoop" else ["bpftrace", "-e", scripts[k]])
            self.out = open(os.path.join(self.tmp, k + ".out"), "w")
            self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT)
            time.sleep(3.0)  # bpftrace prints "Attaching" before it is attached
            assert self.p.poll() is None, "%s exited" % k
        return self

    def wait_tracked(self, pid, path, timeout=30):
        """Containers scope: until a /proc scan has run since pid joined the
        container cgroup path (so it is in the agent's PID map)."""
        if self.kind != "kmon-containers":
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open("/proc/%d/cgroup" % pid) as f:
                if path in f.read():
                    break
            time.sleep(0.02)
        start = metrics(self.METRICS).get("kmon_rescans_total", 0)
        while metrics(self.METRICS).get("kmon_rescans_total", 0) < start + 2:
            if time.monotonic() > deadline:
                raise RuntimeError("kmon did not rescan within %ds" % timeout)
            time.sleep(0.05)

    def stop(self):
        res = {}
        if self.agent:
            self.agent.stop()
            res = dict(self.agent.totals or {})
            for c in self.consumers:
                c.stop()
        if self.p:
            self.p.send_signal(signal.SIGINT)
            try:
                out, _ = self.p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                out, _ = self.p.communicate()
            if self.kind in ("empty", "reserve") and out:
                res = json.loads(out.strip().splitlines()[-1])
        return res


def kmon_prog_ns(before, after, names):
    runs = ns = 0
    for pid, (name, cnt, t) in after.items():
        if name in names:
            b = before.get(pid, (name, 0, 0))
            runs += cnt - b[1]
            ns += t - b[2]
    return (ns / runs) if runs else None, runs


def bench_kmalloc(n, tmp):
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=False)
    rows = []
    base = None
    pod = PodCgroup()
    for kind in ["none", "empty", "reserve", "kmon", "kmon-tracepoint", "kmon-containers",
                 "bpftrace-count-kmalloc", "bpftrace-printf-kmalloc"]:
        tool = Tool(kind, tmp).start() if kind != "none" else None
        before = prog_stats()
        # The loop runs in a container cgroup, tracked in containers scope.
        secs = min(timed([FLOOD, str(n)], pod=pod, tool=tool) for _ in range(3))
        after = prog_stats()
        res = tool.stop() if tool else {}
        names = {"kmon": ("kmon_kmalloc", "kmon_kfree"),
                 "kmon-containers": ("kmon_kmalloc", "kmon_kfree"),
                 "kmon-tracepoint": ("kmon_kmalloc_tp", "kmon_kfree_tp"),
                 "empty": ("empty_kmalloc",), "reserve": ("reserve_kmalloc",)}.get(kind)
        if kind.startswith("bpftrace"):
            names = tuple(v[0] for k, v in after.items() if k not in before and v[1] > 0) or \
                tuple(v[0] for k, v in after.items() if "kmalloc" in v[0] or "kfree" in v[0])
        ns_run, runs = kmon_prog_ns(before, after, names or ())
        per_iter = secs / n * 1e9
        if base is None:
            base = per_iter
        rows.append({"tool": kind, "ns_per_iteration": round(per_iter, 1),
                     "slowdown": round(per_iter / base, 3),
                     "bpf_ns_per_run": round(ns_run, 1) if ns_run else None,
                     "bpf_runs": runs, "drops": res.get("dropped") if kind in ("empty", "reserve")
                     else (res.get("kernel_dropped") or None),
                     "recursion_misses": res.get("recursion_misses")})
    pod.close()
    return rows


def bench_exec(n, tmp, rounds):
    """Each tool's run sits between two runs with nothing attached, and its
    slowdown is against the mean of those two: this machine drifts by more
    than the 5% being measured over the minutes a section takes. Several
    rounds; the median slowdown is reported with its range."""
    loop = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % n]
    kinds = ["kmon-consumers", "kmon-containers", "kmon-exec-only", "execsnoop",
             "bpftrace-count-exec", "bpftrace-printf-exec"]
    pod = PodCgroup()
    bases, secs, ratios, last = [], {k: [] for k in kinds}, {k: [] for k in kinds}, {}

    def baseline():
        b = min(timed(loop, pod=pod) for _ in range(3))
        bases.append(b)
        return b

    for _ in range(rounds):
        before = baseline()
        for kind in kinds:
            tool = Tool(kind, tmp).start()
            t = min(timed(loop, pod=pod, tool=tool) for _ in range(3))
            last[kind] = tool.stop()
            after = baseline()
            secs[kind].append(t)
            ratios[kind].append(t / ((before + after) / 2))
            before = after
    pod.close()
    rows = [{"tool": "none", "us_per_exec": round(median(bases) / n * 1e6, 2), "slowdown": 1.0,
             "slowdown_range": "%.3f-%.3f" % (min(bases) / median(bases),
                                              max(bases) / median(bases)),
             "kernel_dropped": None, "events_read": None}]
    for kind in kinds:
        res = last[kind]
        rows.append({"tool": kind, "us_per_exec": round(median(secs[kind]) / n * 1e6, 2),
                     "slowdown": round(median(ratios[kind]), 3),
                     "slowdown_range": "%.3f-%.3f" % (min(ratios[kind]), max(ratios[kind])),
                     "kernel_dropped": (res.get("kernel_dropped") or {}).get("process_exec"),
                     "events_read": (res.get("read") or {}).get("process_exec")})
    return rows


def bench_fanout(n, tmp, rate=None):
    """0/1/2/4 consumers (16 MiB rings, checksumming) fed by a kmalloc flood
    on both CPUs: flat out (rate None: the flood, the drain and the consumers
    compete for the same 2 vCPUs, so more consumers also mean fewer events)
    or paced to `rate` iterations/s, a fixed offered load the fan-out must
    deliver to every consumer."""
    rows = []
    for k in (0, 1, 2, 4):
        a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0"])
        a.wait_attached()
        cs = []
        for i in range(k):
            # SCHED_BATCH like kmon-forward and kmon-aggregate
            c = Consumer([TC, "--socket", a.socket, "--name", "c%d" % i, "--ring-size",
                          str(16 << 20), "--sched-batch"])
            c.wait_for_log("attached to")
            cs.append(c)
        cpu0 = proc_cpu(a.proc.pid)
        ccpu0 = sum(proc_cpu(c.proc.pid) for c in cs)
        t0 = time.perf_counter()
        subprocess.run([FLOOD, str(n), "2"] + (["--rate=%d" % rate] if rate else []),
                       check=True, stdout=subprocess.DEVNULL)
        secs = time.perf_counter() - t0
        time.sleep(0.5)  # the drain's last batches (an idle agent uses ~0 CPU)
        cpu = proc_cpu(a.proc.pid) - cpu0
        ccpu = sum(proc_cpu(c.proc.pid) for c in cs) - ccpu0
        a.stop()
        for c in cs:
            c.wait_for_log("agent closed the connection", timeout=120)
            c.stop()
        res = [c.result() for c in cs]
        read = sum(a.totals["read"].values())
        kdrop = sum(a.totals["kernel_dropped"].values())
        delivered = sum(r["events"] for r in res) if cs else read
        lost = sum(r["lost"] for r in res)
        wakes = sum(r["wakeups"] for r in res)
        per = delivered / max(k, 1) / secs
        rows.append({"offered": "%d/s" % rate if rate else "flat out", "consumers": k,
                     "events_per_s_per_consumer": round(per),
                     "vs_1_consumer": round(per / rows[1]["events_per_s_per_consumer"], 3)
                     if k > 1 else None,
                     "lost": lost, "records_per_wakeup": round(delivered / max(wakes, 1), 1)
                     if cs else None,
                     "kernel_dropped": kdrop,
                     "agent_cpu_ns_per_event": round(cpu / max(read, 1) * 1e9, 1),
                     "agent_cpu_ns_per_copy": round((cpu / max(read, 1) * 1e9 -
                                                     rows[0]["agent_cpu_ns_per_event"]) / k, 1)
                     if k else None,
                     "consumer_cpu_ns_per_copy": round(ccpu / max(delivered, 1) * 1e9, 1)
                     if k else None,
                     "max_batch_ms": round(a.totals["max_batch_ns"] / 1e6, 2)})
    return rows


def bench_attach(secs, tmp):
    """Longest drain stall (kmon_drain_stall_max_seconds: a batch's first
    record to its publication) under a two-thread kmalloc flood with one
    reading consumer, while consumers attach with 16 MiB rings and 8 MiB of
    history replay and go again (attach, replay, detach) in a loop, and
    with nobody attaching; for this build's agent and, if KMON_BASELINE_AGENT
    names one, an older agent measured side by side in the same run."""
    agents = [("this build", AGENT)]
    if os.environ.get("KMON_BASELINE_AGENT"):
        agents.append(("baseline", os.environ["KMON_BASELINE_AGENT"]))
    rows = []
    for label, binary in agents:
        for attaching in (False, True):
            a = Agent(binary, ["--scope", "all", "--rescan-interval", "0",
                               "--max-ring-size", "16M", "--history-bytes", "8M"])
            a.wait_attached()
            c = Consumer([TC, "--socket", a.socket, "--name", "steady", "--ring-size",
                          str(16 << 20), "--sched-batch"])
            c.wait_for_log("attached to")
            flood = subprocess.Popen([FLOOD, str(10 ** 12), "2"], stdout=subprocess.DEVNULL)
            n, rtts, end = 0, [], time.monotonic() + secs
            try:
                time.sleep(1.0)  # a full history
                while time.monotonic() < end:
                    if not attaching:
                        time.sleep(0.1)
                        continue
                    # A real consumer through the whole exchange (hello, its
                    # populated ring, ready, replay), then gone again.
                    t0 = time.perf_counter()
                    late = Consumer([TC, "--socket", a.socket, "--name", "late%d" % n,
                                     "--ring-size", str(16 << 20), "--replay", str(8 << 20)])
                    late.wait_for_log("attached to", timeout=120)
                    rtts.append(time.perf_counter() - t0)
                    late.stop()
                    n += 1
            finally:
                flood.kill()
                flood.wait()
            a.stop()
            c.stop()
            rows.append({"agent": label, "attaching": attaching, "attaches": n,
                         "attach_round_trip_ms": round(median(rtts) * 1e3, 1) if rtts else None,
                         "longest_drain_stall_ms": round(a.totals["max_batch_ns"] / 1e6, 2),
                         "events_read": sum(a.totals["read"].values()),
                         "kernel_dropped": sum(a.totals["kernel_dropped"].values())})
    return rows


def bench_drain(n):
    """kmon-agent with zero consumers vs a bare libbpf reader of the same
    programs, under one and two flood threads."""
    rows = []
    for threads in (1, 2):
        for kind in ("bare-reader", "kmon-agent"):
            if kind == "bare-reader":
                p = subprocess.Popen([BARE], stdout=subprocess.PIPE, text=True)
                assert p.stdout.readline().strip() == "attached"
            else:
                a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0"])
                a.wait_attached()
            t0 = time.perf_counter()
            subprocess.run([FLOOD, str(n), str(threads)], check=True, stdout=subprocess.DEVNULL)
            secs = time.perf_counter() - t0
            if kind == "bare-reader":
                p.send_signal(signal.SIGINT)
                r = json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1])
                read, dropped = r["read"], r["dropped"]
            else:
                a.stop()
                read = sum(a.totals["read"].values())
                dropped = sum(a.totals["kernel_dropped"].values())
            rows.append({"reader": kind, "threads": threads, "events_per_s": round(read / secs),
                         "dropped": dropped})
    return rows


def bench_wakeups(secs):
    """The shm ring's sleep path at fixed rates: wake-ups per record, latency."""
    rows = []
    for rate in (10000, 100000, 1000000):
        n = int(rate * secs)
        out = json.loads(sh(RING, "paced", str(n), str(rate)).strip().splitlines()[-1])
        out["rate"] = rate
        rows.append(out)
    return rows


def bench_micro():
    return json.loads(sh(MICRO).strip().splitlines()[-1])


def bench_make(tmp, jobs=2):
    """Observer effect on a real C build: kmon's own user-space sources
    compiled with make -jN, with nothing, kmon (+ forward + aggregate),
    bpftrace count-only and bpftrace printf on the same tracepoints."""
    src = os.path.abspath(os.path.join(HERE, "..", ".."))
    files = []
    for d in ("agent", "shm", "k8s", "consumers", "bpf"):
        files += [os.path.join(src, d, f) for f in sorted(os.listdir(os.path.join(src, d)))
                  if f.endswith(".c") and not f.endswith(".bpf.c")]
    mk = os.path.join(tmp, "Makefile")
    objs = " ".join("o/%d.o" % i for i in range(len(files)))
    with open(mk, "w") as f:
        f.write("all: %s\n" % objs)
        for i, c in enumerate(files):
            f.write("o/%d.o: %s\n\tgcc -O2 -D_GNU_SOURCE -I%s -I%s/bpf -I/usr/include/cjson "
                    "-c $< -o $@\n" % (i, c, src, B))
    rows, base = [], None
    scripts = {"bpftrace-count": "bpftrace-count-kmalloc", "bpftrace-printf":
               "bpftrace-printf-kmalloc"}
    pod = PodCgroup()
    for kind in ["none", "kmon-consumers", "kmon-containers", "bpftrace-count",
                 "bpftrace-printf"]:
        tool = Tool(scripts.get(kind, kind), tmp).start() if kind != "none" else None
        times = []
        for _ in range(2):
            shutil.rmtree(os.path.join(tmp, "o"), ignore_errors=True)
            os.mkdir(os.path.join(tmp, "o"))
            times.append(timed(["make", "-s", "-C", tmp, "-j%d" % jobs, "-f", mk],
                               pin="0-%d" % (jobs - 1), pod=pod, tool=tool))
        res = tool.stop() if tool else {}
        secs = min(times)
        base = base or secs
        rows.append({"tool": kind, "seconds": round(secs, 2), "slowdown": round(secs / base, 3),
                     "kernel_dropped": sum((res.get("kernel_dropped") or {}).values())
                     if kind.startswith("kmon") else None,
                     "events_read": sum((res.get("read") or {}).values())
                     if kind.startswith("kmon") else None})
    pod.close()
    return rows


class DiscardSink:
    """An HTTP server that reads every POST body and answers 204: kmon-forward's
    whole network path with nothing downstream."""

    def __init__(self):
        import http.server
        import threading
        sink = self
        self.requests = self.bytes = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                while n > 0:
                    got = self.rfile.read(min(n, 1 << 20))
                    if not got:
                        break
                    n -= len(got)
                    sink.bytes += len(got)
                sink.requests += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/ingest" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_rusage(proc, timeout=120):
    """Wait for a child and return (returncode, CPU seconds it used)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime
        time.sleep(0.05)
    raise RuntimeError("consumer did not exit")


def bench_forward(n, micro):
    """kmon-forward end to end, JSON + gzip + HTTP batches to a local sink that
    discards, beside kmon-forward to /dev/null and a consumer that only
    checksums: CPU per event of each consumer, and against the zlib-only
    cost of the same JSON (bench_micro)."""
    rows = []
    for kind in ("checksum-only", "forward-devnull", "forward-http"):
        a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0"])
        a.wait_attached()
        sink = DiscardSink() if kind == "forward-http" else None
        if kind == "checksum-only":
            argv = [TC, "--socket", a.socket, "--ring-size", str(16 << 20)]
        else:
            argv = [FORWARD, "--socket", a.socket, "--once", "--ring-size", str(16 << 20),
                    "--output", sink.url if sink else "/dev/null"]
        c = Consumer(argv)
        c.wait_for_log("attached to")
        t0 = time.perf_counter()
        subprocess.run([FLOOD, str(n), "1"], check=True, stdout=subprocess.DEVNULL)
        a.stop()
        if kind == "checksum-only":
            c.wait_for_log("agent closed the connection", timeout=120)
            c.proc.send_signal(signal.SIGINT)
        rc, cpu = wait_rusage(c.proc)
        secs = time.perf_counter() - t0
        c.out.close()
        c.err.close()
        if kind == "checksum-only":
            r = json.loads(c.output().strip().splitlines()[-1])
            got, lost, sent = r["events"], r["lost"], None
        else:
            r = [json.loads(l) for l in c.log().splitlines() if l.startswith('{"counters"')][-1]
            r = r["counters"]
            got, lost, sent = r["received"], r["lost_in_ring"], r["sent"]
        if sink:
            sink.stop()
        rows.append({"consumer": kind, "events": got, "lost": lost, "sent": sent,
                     "events_per_s": round(got / secs),
                     "cpu_ns_per_event": round(cpu / max(got, 1) * 1e9, 1),
                     "http_requests": sink.requests if sink else None,
                     "http_bytes_per_event": round(sink.bytes / max(got, 1), 1) if sink
                     else None,
                     "zlib_only_ns_over_this": round(micro["gzip_ns"] /
                                                     (cpu / max(got, 1) * 1e9), 3)
                     if kind == "forward-http" else None})
    return rows


def bench_clickhouse(n, rate):
    """Eight kmon-forward processes, each with its own --node-name (eight
    simulated nodes), attached to one agent and posting to one real
    clickhouse-server with kmon's schema (materialized rollup included), side
    by side with the same eight posting to a sink that discards. The flood is
    paced (`rate` kmalloc+kfree iterations/s, one thread). Measured: rows the
    server stored per second from the flood's start until every forward had
    delivered its queue (sustained ingest), and forwards' CPU per event."""
    import chschema
    from servers import ClickHouse
    rows = []
    for kind in ("discard-sink", "clickhouse"):
        ch = sink = None
        if kind == "clickhouse":
            ch = ClickHouse().start()
            chschema.apply(ch)
            url = chschema.insert_url(ch)
        else:
            sink = DiscardSink()
            url = sink.url
        a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0"])
        a.wait_for_log("attached:", timeout=120)
        fwds = []
        for i in range(8):
            # Not --once: on this loaded machine an attach can time out and
            # is retried; the forwards are stopped after the agent.
            c = Consumer([FORWARD, "--socket", a.socket, "--name", "fwd%d" % i,
                          "--node-name", "bench-node-%d" % i, "--ring-size", str(16 << 20),
                          "--max-queue-bytes", "256M", "--output", url])
            c.wait_for_log("attached to", timeout=60)
            fwds.append(c)

        def last(c):
            # Whole lines only: the forward may be writing one right now.
            for line in reversed(c.log().split("\n")[:-1]):
                if line.startswith('{"counters"'):
                    return json.loads(line)["counters"]
            return None

        def counters(c):
            before = c.log().count('{"counters"')
            c.proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                log = c.log()
                if log.count('{"counters"') > before and log.endswith("\n"):
                    break
                time.sleep(0.05)
            return last(c)
        t0 = time.perf_counter()
        subprocess.run([FLOOD, str(n), "1", "--rate=%d" % rate], check=True,
                       stdout=subprocess.DEVNULL)
        flood_s = time.perf_counter() - t0
        # Until every forward has delivered (or dropped, counted) what it got.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            cs = [counters(c) for c in fwds]
            if all(x["sent"] + x["dropped_in_queue"] == x["received"] for x in cs):
                break
            time.sleep(0.5)
        secs = time.perf_counter() - t0
        a.stop()
        cpu = 0.0
        for c in fwds:
            c.wait_for_log("agent closed the connection", timeout=120)
            c.proc.send_signal(signal.SIGINT)
            cpu += wait_rusage(c.proc)[1]
            c.out.close()
            c.err.close()
        final = [last(c) for c in fwds]
        received = sum(x["received"] for x in final)
        sent = sum(x["sent"] for x in final)
        stored = None
        if ch:
            stored = int(ch.query("SELECT count() FROM kmon.events").strip())
            ch.stop()
        if sink:
            sink.stop()
        rows.append({"output": kind, "forwards": len(fwds), "flood_s": round(flood_s, 1),
                     "events_per_forward": received // len(fwds), "sent": sent,
                     "stored": stored,
                     "dropped": sum(x["dropped_in_queue"] for x in final),
                     "lost_in_ring": sum(x["lost_in_ring"] for x in final),
                     "delivered_in_s": round(secs, 1),
                     "rows_per_s": round((stored if stored is not None else sent) / secs),
                     "forward_cpu_ns_per_event": round(cpu / max(received, 1) * 1e9, 1)})
    rows[1]["cpu_vs_discard"] = round(rows[1]["forward_cpu_ns_per_event"] /
                                      max(rows[0]["forward_cpu_ns_per_event"], 1e-9), 3)
    rows[0]["cpu_vs_discard"] = 1.0
    return rows


def bench_tracked(counts, tmp, flood_n):
    """Agent cost against the number of container processes it tracks:
    scan time and agent RSS, read from /metrics and /proc."""
    from kubenode import Node, new_pod_uid
    rows = []
    for k in counts:
        with Node() as n:
            c = n.start_container(flavor="cgroupfs-containerd", pod_uid=new_pod_uid(),
                                  name="many", cmd=["/bin/sh", "-c",
                                                    "i=0; while [ $i -lt %d ]; do sleep 3600 & "
                                                    "i=$((i+1)); done; wait" % k])
            deadline = time.monotonic() + 300
            while len(c.host_pids()) < k and time.monotonic() < deadline:
                time.sleep(0.5)
            a = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "1",
                              "--pid-map-size", str(max(16384, 2 * k)),
                              "--metrics-addr", "127.0.0.1:19480"])
            a.wait_attached()
            # A kmalloc flood from the same container while the agent rescans
            # every second: how long the drain stalls while scans update the map.
            procs = [m + c.cgroup_path + "/cgroup.procs" for m in c.node.cgroup_mounts
                     if os.path.exists(m + c.cgroup_path + "/cgroup.procs")]
            flood = subprocess.Popen(in_cgroup(procs, [FLOOD, str(flood_n), "1"]),
                                     stdout=subprocess.DEVNULL)
            time.sleep(5)
            val = metrics("127.0.0.1:19480")
            flood.wait()
            with open("/proc/%d/status" % a.proc.pid) as f:
                rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS")][0]
            a.stop()
            a_read = sum(a.totals["read"].values())
            rows.append({"tracked_pids": int(val.get("kmon_tracked_pids", 0)),
                         "flood_events_read": a_read,
                         "kernel_dropped": sum(a.totals["kernel_dropped"].values()),
                         "scan_ms": round(val.get("kmon_last_scan_seconds", 0) * 1e3, 2),
                         "agent_rss_kb": rss,
                         "drain_stall_max_ms": round(val.get("kmon_drain_stall_max_seconds",
                                                             0) * 1e3, 2)})
    return rows


def bench_ring(n):
    out = sh(RING, "bench", str(n))
    return json.loads(out.strip().splitlines()[-1])


def bench_podlist():
    return [json.loads(sh(PODLIST, str(p), "20")) for p in (110, 500)]


def table(title, rows):
    print("\n## " + title)
    if not rows:
        return
    keys = list(rows[0].keys())
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--out", default="bench-results.json")
    ap.add_argument("--only", help="comma-separated sections (default: all)")
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None

    def want(section):
        return only is None or section in only

    tmp = tempfile.mkdtemp(prefix="kmon-bench-")
    s = a.short
    res = {"machine": sh("uname", "-r").strip(), "short": s}
    if want("kmalloc"):
        res["kmalloc"] = bench_kmalloc(200000 if s else 2000000, tmp)
        table("kmalloc/kfree loop (per-event cost)", res["kmalloc"])
    if want("exec"):
        res["exec"] = bench_exec(300 if s else 2000, tmp, 2 if s else 5)
        table("exec storm", res["exec"])
    if want("ring"):
        r = bench_ring(2000000 if s else 20000000)
        res["ring"] = r
        table("shm ring throughput (vs memcpy)", r["throughput"])
        table("shm ring one-way latency (ns, 108-byte records)", [r["latency_ns"]])
    if want("fanout"):
        res["fanout"] = bench_fanout(100000 if s else 1000000, tmp)
        table("fan-out under a 2-thread kmalloc flood, flat out", res["fanout"])
        # Below saturation: what a node offers, delivered to every consumer.
        res["fanout_paced"] = bench_fanout(100000 if s else 1000000, tmp, rate=100000)
        table("fan-out, flood paced to 100k iterations/s", res["fanout_paced"])
        r = json.loads(sh(FANOUT, "5" if s else "40").strip().splitlines()[-1])
        res["fanout_copy"] = r
        table("fan-out alone, drain thread CPU (memcpy of a record: %.1f ns)"
              % r["memcpy_ns_per_record"], r["rows"])
    if want("attach"):
        res["attach"] = bench_attach(3 if s else 20, tmp)
        table("drain stall while consumers attach with 8 MiB replay, two-thread flood",
              res["attach"])
        r = json.loads(sh(FANOUT, "attach", "2" if s else "10").strip().splitlines()[-1])
        res["attach_inprocess"] = r["rows"]
        table("fan-out alone: drain's wait for the lock while consumers attach with 8 MiB "
              "replay (1M events/s)", r["rows"])
    if want("drain"):
        res["drain"] = bench_drain(100000 if s else 1000000)
        table("drain: kmon-agent (no consumers) vs bare libbpf reader, same programs", res["drain"])
    if want("wakeups"):
        res["wakeups"] = bench_wakeups(0.5 if s else 3)
        table("shm ring sleep path at fixed rates", res["wakeups"])
    if want("micro"):
        res["micro"] = bench_micro()
        table("consumer ceilings (ns per event)", [res["micro"]])
    if want("make"):
        res["make"] = bench_make(tmp)
        table("make -j2 of kmon's own sources", res["make"])
    if want("forward"):
        res["forward"] = bench_forward(100000 if s else 1000000,
                                       res.get("micro") or bench_micro())
        table("kmon-forward end to end (1 flood thread, CPU per event)", res["forward"])
    if want("tracked"):
        res["tracked"] = bench_tracked([100, 2000] if s else [100, 10000], tmp,
                                       1000000 if s else 5000000)
        table("agent cost vs tracked container processes", res["tracked"])
    if want("podlist"):
        res["podlist"] = bench_podlist()
        table("kubelet PodList parse", res["podlist"])
    if want("clickhouse"):
        res["clickhouse"] = bench_clickhouse(100000 if s else 1000000, 20000)
        table("8 kmon-forwards (8 node names) into one clickhouse-server vs a discarding "
              "sink, flood paced to 20k iterations/s", res["clickhouse"])
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("\nresults: " + a.out)


if __name__ == "__main__":
    main()
