"""The workload and checks shared by the ClickHouse tests (one server and a
cluster): eight simulated nodes, three pods running /bin/true, the forwards'
counters, and queries.sql checked against answers computed from raw rows."""
import json
import signal

import chschema
from agentproc import tracked
from cluster import GATED
from fake_kubelet import serve_podlist
from kubenode import Node, new_pod_uid
from waits import wait_for

NODES = ["node-%d" % i for i in range(1, 9)]
# (namespace, pod, /bin/true execs); queries.sql's timeline query names shop/checkout-1.
PODS = [("shop", "checkout-1", 60), ("shop", "cart-2", 30), ("analytics", "report-7", 12)]
# Other engineers' agents and containers run on this machine: this agent tracks
# every container cgroup it sees, but only ours carry these pod names.
MY_PODS = ", ".join("'%s'" % p[1] for p in PODS)


def start_pods(test):
    """test.node (a runc node) with PODS each in one container
    (test.containers, by pod name), and test.fk, a stand-in kubelet listing
    them; both cleaned up with the test. test.tmp holds the kubelet's files."""
    test.node = Node()
    test.addCleanup(test.node.close)
    test.containers = {}
    pods = []
    for ns, pod, _ in PODS:
        c = test.node.start_container(
            flavor="systemd-containerd", pod_uid=new_pod_uid(), name="app",
            cmd=["/bin/sleep", "3600"])
        test.containers[pod] = c
        pods.append({"name": pod, "namespace": ns, "containers": [c]})
    test.fk = serve_podlist(test.tmp, test.node.podlist(pods))
    test.addCleanup(test.fk.stop)


def last_counters(fwd):
    # Whole lines only: the forward may be writing one right now.
    for line in reversed(fwd.log().split("\n")[:-1]):
        if line.startswith('{"counters"'):
            return json.loads(line)["counters"]
    return None


def query_rows(ch, q):
    out = ch.query(q + " FORMAT JSONEachRow")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def delivered(fwd):
    """Whether the forward sent all it received (its counters on SIGUSR1)."""
    before = fwd.log().count('{"counters"')
    fwd.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: fwd.log().count('{"counters"') > before and fwd.log().endswith("\n"),
             30, "counters on SIGUSR1")
    c = last_counters(fwd)
    return c["sent"] + c["dropped_in_queue"] == c["received"]


def run_execs(c, rnd, count):
    """Starts count runs of /bin/true in container c once the returned go() is called."""
    pid = c.spawn(["/bin/sh", "-c", GATED % (rnd, count, "true")])
    wait_for(lambda: tracked(pid), 30, "pid %d in the agent's PID map" % pid)
    return lambda: c.exec(["/bin/touch", "/tmp/go%d" % rnd])


def check_queries(test, ch):
    """queries.sql, verbatim, against answers computed from the raw rows."""
    raw = query_rows(ch, "SELECT type, toString(toStartOfMinute(time)) AS minute, "
                     "namespace, pod, size, filename, pid FROM kmon.events")
    top_q, timeline_q, memory_q = chschema.queries()

    # 1. Top pods by exec rate in the last hour (every row is recent).
    execs = {}
    for r in raw:
        if r["type"] == "process_exec":
            k = (r["namespace"], r["pod"])
            execs[k] = execs.get(k, 0) + 1
    want = sorted(execs.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    got = query_rows(ch, top_q)
    test.assertEqual([((r["namespace"], r["pod"]), int(r["execs_1h"])) for r in got], want)
    for r in got:
        test.assertAlmostEqual(float(r["execs_per_s"]), int(r["execs_1h"]) / 3600, delta=6e-4)
    # ... and the pods rank as the workload made them: every node saw every exec.
    for ns, pod, count in PODS:
        test.assertGreaterEqual(execs[(ns, pod)], count * len(NODES))
    test.assertEqual([k[1] for k, _ in want if k[1] in {p[1] for p in PODS}], [p[1] for p in PODS])

    # 2. shop/checkout-1's exec timeline.
    tl = {}
    for r in raw:
        if (r["type"], r["namespace"], r["pod"]) == ("process_exec", "shop", "checkout-1"):
            e = tl.setdefault((r["minute"], r["filename"]), [0, set()])
            e[0] += 1
            e[1].add(r["pid"])
    want = sorted(((m, f, n, len(p)) for (m, f), (n, p) in tl.items()),
                  key=lambda t: (t[0], -t[2], t[1]))
    got = [(r["minute"], r["filename"], int(r["execs"]), int(r["pids"]))
           for r in query_rows(ch, timeline_q)]
    test.assertEqual(got, want)
    true_rows = [g for g in got if g[1] == "/bin/true"]
    test.assertEqual(sum(g[2] for g in true_rows), PODS[0][2] * len(NODES))
    # Each exec is its own process, seen once per node.
    test.assertEqual(sum(g[3] for g in true_rows), PODS[0][2])

    # 3. Pods by outstanding kernel memory over time.
    delta = {}
    for r in raw:
        sign = {"memory_alloc": 1, "slab_alloc": 1, "memory_free": -1,
                "slab_free": -1}.get(r["type"])
        if sign:
            k = (r["namespace"], r["pod"])
            d = delta.setdefault(k, {})
            d[r["minute"]] = d.get(r["minute"], 0) + sign * int(r["size"])
    want = []
    for (ns, pod), per_min in delta.items():
        run = 0
        for m in sorted(per_min):
            run += per_min[m]
            want.append((ns, pod, m, run))
    want.sort(key=lambda t: (t[2], -t[3], t[0], t[1]))
    got = [(r["namespace"], r["pod"], r["minute"], int(r["outstanding_bytes"]))
           for r in query_rows(ch, memory_q)]
    test.assertEqual(got, want)
    # The workload allocated kernel memory in every pod.
    test.assertLessEqual({(p[0], p[1]) for p in PODS}, {(g[0], g[1]) for g in got})
