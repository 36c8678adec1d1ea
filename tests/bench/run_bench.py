#!/usr/bin/env python3
"""kmon benchmarks, side by side with baselines in one run (issue 7).

  run_bench.py [--short] [--out results.json]      (root; KMON_BUILD=build dir)

Everything is reported as ratios against a baseline measured in the same run,
because this machine is shared and noisy. Sections:
  kmalloc   per-event cost: kmalloc/kfree loop with no probe, an empty tp_btf
            program, a bare 108-byte reserve/submit program + libbpf reader,
            kmon tp_btf, kmon classic tracepoints, bpftrace count and printf;
            in-kernel ns per run from kernel.bpf_stats_enabled
  exec      exec storm with nothing, kmon (+ forward + aggregate), execsnoop,
            bpftrace count and printf
  ring      shm ring throughput vs memcpy, one-way latency spinning and sleeping
  fanout    1, 2, 4 consumers under a two-thread flood: delivered, lost
  podlist   PodList parse time and peak RSS for 110 and 500 pods
Not pass/fail: it fails only when a tool cannot run.
"""
import argparse
import json
import os
import shutil
import signal
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


def sh(*a, **kw):
    return subprocess.run(a, check=True, capture_output=True, text=True, **kw).stdout


def ensure_tracefs():
    if not os.path.exists("/sys/kernel/tracing/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"], check=False)


def prog_stats():
    out = json.loads(sh("bpftool", "-j", "prog", "show"))
    return {p["id"]: (p.get("name", ""), p.get("run_cnt", 0), p.get("run_time_ns", 0))
            for p in out}


def timed(argv, pin="0"):
    t0 = time.perf_counter()
    subprocess.run(["taskset", "-c", pin] + argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


class Tool:
    """A tracer running beside the workload: started, waited for, stopped."""

    def __init__(self, kind, tmp):
        self.kind, self.tmp, self.p, self.agent, self.consumers = kind, tmp, None, None, []

    def start(self):
        k = self.kind
        if k in ("kmon", "kmon-tracepoint", "kmon-consumers"):
            args = ["--scope", "all", "--rescan-interval", "0"]
            if k == "kmon-tracepoint":
                ensure_tracefs()
                args += ["--attach", "tracepoint"]
            self.agent = Agent(AGENT, args)
            self.agent.wait_attached()
            if k == "kmon-consumers":
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
    for kind in ["none", "empty", "reserve", "kmon", "kmon-tracepoint",
                 "bpftrace-count-kmalloc", "bpftrace-printf-kmalloc"]:
        tool = Tool(kind, tmp).start() if kind != "none" else None
        before = prog_stats()
        secs = min(timed([FLOOD, str(n)]) for _ in range(3))
        after = prog_stats()
        res = tool.stop() if tool else {}
        names = {"kmon": ("kmon_kmalloc", "kmon_kfree"),
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
    return rows


def bench_exec(n, tmp):
    loop = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % n]
    rows, base = [], None
    for kind in ["none", "kmon-consumers", "execsnoop", "bpftrace-count-exec",
                 "bpftrace-printf-exec"]:
        tool = Tool(kind, tmp).start() if kind != "none" else None
        secs = min(timed(loop) for _ in range(3))
        res = tool.stop() if tool else {}
        per = secs / n * 1e6
        base = base or per
        rows.append({"tool": kind, "us_per_exec": round(per, 2), "slowdown": round(per / base, 3),
                     "kernel_dropped": (res.get("kernel_dropped") or {}).get("process_exec")})
    return rows


def bench_fanout(n, tmp):
    rows = []
    for k in (1, 2, 4):
        a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0"])
        a.wait_attached()
        cs = []
        for i in range(k):
            c = Consumer([TC, "--socket", a.socket, "--name", "c%d" % i, "--ring-size",
                          str(16 << 20)])
            c.wait_for_log("attached to")
            cs.append(c)
        t0 = time.perf_counter()
        subprocess.run([FLOOD, str(n), "2"], check=True, stdout=subprocess.DEVNULL)
        secs = time.perf_counter() - t0
        a.stop()
        for c in cs:
            c.wait_for_log("agent closed the connection", timeout=120)
            c.stop()
        res = [c.result() for c in cs]
        delivered = sum(r["events"] for r in res)
        lost = sum(r["lost"] for r in res)
        wakes = sum(r["wakeups"] for r in res)
        rows.append({"consumers": k, "events_per_s_per_consumer": round(delivered / k / secs),
                     "lost": lost, "records_per_wakeup": round(delivered / max(wakes, 1), 1), "kernel_dropped": sum(a.totals["kernel_dropped"].values()),
                     "max_batch_ms": round(a.totals["max_batch_ns"] / 1e6, 2)})
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
    for kind in ["none", "kmon-consumers", "bpftrace-count", "bpftrace-printf"]:
        tool = Tool(scripts.get(kind, kind), tmp).start() if kind != "none" else None
        times = []
        for _ in range(2):
            shutil.rmtree(os.path.join(tmp, "o"), ignore_errors=True)
            os.mkdir(os.path.join(tmp, "o"))
            t0 = time.perf_counter()
            subprocess.run(["make", "-s", "-j%d" % jobs, "-f", mk], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        res = tool.stop() if tool else {}
        secs = min(times)
        base = base or secs
        rows.append({"tool": kind, "seconds": round(secs, 2), "slowdown": round(secs / base, 3),
                     "kernel_dropped": sum((res.get("kernel_dropped") or {}).values())
                     if kind.startswith("kmon") else None})
    return rows


def bench_tracked(counts, tmp):
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
            time.sleep(5)
            m = sh("curl", "-s", "http://127.0.0.1:19480/metrics")
            val = {l.split()[0]: float(l.split()[1]) for l in m.splitlines()
                   if l and not l.startswith("#") and "{" not in l}
            with open("/proc/%d/status" % a.proc.pid) as f:
                rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS")][0]
            a.stop()
            rows.append({"tracked_pids": int(val.get("kmon_tracked_pids", 0)),
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
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kmon-bench-")
    s = a.short
    res = {"machine": sh("uname", "-r").strip(), "short": s}
    res["kmalloc"] = bench_kmalloc(200000 if s else 2000000, tmp)
    table("kmalloc/kfree loop (per-event cost)", res["kmalloc"])
    res["exec"] = bench_exec(300 if s else 3000, tmp)
    table("exec storm", res["exec"])
    r = bench_ring(2000000 if s else 20000000)
    res["ring"] = r
    table("shm ring throughput (vs memcpy)", r["throughput"])
    table("shm ring one-way latency (ns, 108-byte records)", [r["latency_ns"]])
    res["fanout"] = bench_fanout(100000 if s else 1000000, tmp)
    table("fan-out under a 2-thread kmalloc flood", res["fanout"])
    res["drain"] = bench_drain(100000 if s else 1000000)
    table("drain: kmon-agent (no consumers) vs bare libbpf reader, same programs", res["drain"])
    res["wakeups"] = bench_wakeups(0.5 if s else 3)
    table("shm ring sleep path at fixed rates", res["wakeups"])
    res["micro"] = bench_micro()
    table("consumer ceilings (ns per event)", [res["micro"]])
    res["make"] = bench_make(tmp)
    table("make -j2 of kmon's own sources", res["make"])
    res["tracked"] = bench_tracked([100, 2000] if s else [100, 10000], tmp)
    table("agent cost vs tracked container processes", res["tracked"])
    res["podlist"] = bench_podlist()
    table("kubelet PodList parse", res["podlist"])
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("\nresults: " + a.out)


if __name__ == "__main__":
    main()
