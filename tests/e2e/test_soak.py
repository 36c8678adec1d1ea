#!/usr/bin/env python3
"""Soak (issue 8): the agent (an ASan+UBSan build in CI) under load from real
containers for KMON_SOAK_SECONDS (default 600), while consumers attach and
detach at random, one never reads, one is killed with SIGKILL now and then,
the stand-in kubelet flaps (down, slow, 401, garbage, a 50 MB body, 500) and
the agent is restarted once. At the end: no sanitizer or leak report from any
process, the agent's RSS flat after warm-up, and for every consumer
delivered + lost == produced (from both sides where both can know).
"""
import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import unittest

from agentproc import Agent, Consumer
from fake_kubelet import FakeKubelet
from kubenode import Node, new_pod_uid

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
TC = os.environ.get("KMON_TESTCONSUMER", "testconsumer")
SECONDS = float(os.environ.get("KMON_SOAK_SECONDS", "600"))
ROTATE_SIZE = 8 << 20
ROTATE_KEEP = 2

LOAD = ("while :; do i=0; while [ $i -lt 50 ]; do /bin/true; cat /proc/self/status >/dev/null;"
        " i=$((i+1)); done; dd if=/dev/zero of=/tmp/x bs=4k count=64 2>/dev/null; done")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak(unittest.TestCase):
    def test_soak(self):
        rnd = random.Random(int(os.environ.get("KMON_SOAK_SEED", "42")))
        tmp = tempfile.mkdtemp(prefix="kmon-soak-")
        os.chmod(tmp, 0o755)
        self.addCleanup(shutil.rmtree, tmp, True)
        node = Node()
        self.addCleanup(node.close)
        cs = [node.start_container(flavor=f, pod_uid=new_pod_uid(), name="load%d" % i,
                                   cmd=["/bin/sh", "-c", LOAD])
              for i, f in enumerate(["systemd-containerd", "cgroupfs-containerd"])]
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write("soak-token\n")
        pods = os.path.join(tmp, "pods.json")
        with open(pods, "w") as f:
            json.dump(node.podlist([{"name": "load-%d" % i, "namespace": "soak",
                                     "containers": [c]} for i, c in enumerate(cs)]), f)
        fk = FakeKubelet(os.path.join(tmp, "kubelet"), pods, token).start()
        port = fk.port
        sock = os.path.join(tmp, "sock", "kmon.sock")  # a directory of its own
        # ASan's quarantine would make RSS grow to its cap: keep it small so
        # "flat" means flat.
        env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                   ":quarantine_size_mb=8:malloc_context_size=10")
        args = ["--scope", "containers", "--rescan-interval", "0.5", "--socket", sock,
                "--socket-group", "nogroup", "--kubelet-url", fk.url(),
                "--kubelet-token-file", token, "--kubelet-ca-file", fk.ca,
                "--kubelet-refresh", "1", "--max-consumers", "8", "--ringbuf-size", "256K"]
        agents = [Agent(AGENT, args, env=env)]
        agents[0].wait_attached()
        stop = threading.Event()
        errors = []

        def flap():
            modes = ["ok", "slow", "401", "garbage", "huge", "500", "down", "ok"]
            while not stop.is_set():
                m = rnd.choice(modes)
                try:
                    if m == "down":
                        fk.stop()
                        stop.wait(3)
                        fk.__init__(os.path.join(tmp, "kubelet"), pods, token, port=port)
                        fk.start()
                    else:
                        fk.set_mode(m)
                        stop.wait(3)
                except Exception as e:  # noqa: BLE001
                    errors.append("flapper: %r" % e)
                    return
            fk.set_mode("ok")

        flapper = threading.Thread(target=flap, daemon=True)
        flapper.start()
        self.addCleanup(fk.stop)

        outdir = os.path.join(tmp, "out")
        os.mkdir(outdir)
        os.chmod(outdir, 0o1777)
        # The load makes about 25 MB of JSON a second: unrotated, ten minutes
        # filled a CI machine's disk. Rotation, as a node would run it, bounds
        # it, and the soak checks that bound at the end.
        steady = Consumer([FORWARD, "--socket", sock, "--output", os.path.join(outdir, "o.jsonl"),
                           "--rotate-size", str(ROTATE_SIZE), "--rotate-keep", str(ROTATE_KEEP),
                           "--name", "steady"])
        stalled = Consumer([TC, "--socket", sock, "--name", "stalled", "--stall-after", "100",
                            "--ring-size", "65536"])
        counter = Consumer([TC, "--socket", sock, "--name", "counter", "--ring-size",
                            str(16 << 20)])
        transient, finished = [], []
        t0 = time.monotonic()
        restarted = False
        rss = []
        n = 0
        while time.monotonic() - t0 < SECONDS:
            el = time.monotonic() - t0
            if not restarted and el > SECONDS / 2:
                # The agent restarts once; consumers reconnect by themselves.
                agents[-1].stop()
                agents.append(Agent(AGENT, args, env=env))
                agents[-1].wait_attached()
                restarted = True
                rss = []
            # Random attach / detach, sometimes SIGKILL.
            if len(transient) < 3 and rnd.random() < 0.5:
                n += 1
                transient.append(Consumer([TC, "--socket", sock, "--name", "t%d" % n,
                                           "--ring-size", str(rnd.choice([4096, 65536, 1 << 20]))]))
            if transient and rnd.random() < 0.4:
                c = transient.pop(rnd.randrange(len(transient)))
                c.stop(sig=signal.SIGKILL if rnd.random() < 0.3 else signal.SIGINT)
                finished.append(c)
            rss.append(rss_kb(agents[-1].proc.pid))
            self.assertIsNone(agents[-1].proc.poll(), "agent died:\n" + agents[-1].log()[-3000:])
            time.sleep(1.0)
        stop.set()
        flapper.join(timeout=60)
        last = agents[-1]
        last.stop()
        for c in [steady, counter] + transient:
            c.wait_for_log("agent closed the connection", timeout=120)
            c.stop()
        stalled.proc.kill()
        stalled.proc.wait()
        stalled.close()
        self.assertFalse(errors, errors)

        # RSS flat after warm-up (measured over the second agent's life).
        warm = rss[len(rss) // 3] if rss else 0
        self.assertLessEqual(max(rss[len(rss) // 3:]), warm * 1.25 + 4096,
                             "agent RSS grew: %s" % rss[::10])
        # Every consumer's accounting, as the agents counted it.
        lines = 0
        for a in agents:
            for name in ["steady", "counter", "stalled"] + ["t%d" % i for i in range(1, n + 1)]:
                for d in a.consumer_log(name):
                    self.assertEqual(d["delivered"] + d["lost"], d["produced"], (name, d))
                    lines += 1
        self.assertGreater(lines, 6)
        # Consumers alive through the end read their rings to the last LOST
        # report: received + told-lost == what both agents produced for them.
        r = counter.result()
        prod = sum(x["produced"] for a in agents for x in a.consumer_log("counter"))
        self.assertEqual(r["events"] + r["lost"], prod, (r, prod))
        self.assertEqual(r["seq_errors"], 0, r)
        fc = [json.loads(l)["counters"] for l in steady.log().splitlines()
              if l.startswith('{"counters"')][-1]
        prod = sum(x["produced"] for a in agents for x in a.consumer_log("steady"))
        self.assertEqual(fc["received"] + fc["lost_in_ring"], prod, (fc, prod))
        self.assertEqual(fc["sent"], fc["received"], fc)
        self.assertGreater(fc["rotations"], ROTATE_KEEP, fc)
        self.assertEqual(fc["rotate_errors"], 0, fc)
        out = sorted(os.listdir(outdir))
        self.assertEqual(out, ["o.jsonl"] + ["o.jsonl.%d" % i for i in range(1, ROTATE_KEEP + 1)],
                         "the forward's rotated files")
        for f in out:
            self.assertLessEqual(os.path.getsize(os.path.join(outdir, f)), ROTATE_SIZE, f)
        self.assertTrue(any(x["lost"] > 0 for x in last.consumer_log("stalled")) or
                        any(x["lost"] > 0 for x in agents[0].consumer_log("stalled")),
                        "the consumer that never reads lost nothing?")
        print("soak: %d s, %d transient consumers, agent RSS %s kB (warm) -> %s kB (end)"
              % (SECONDS, n, warm, rss[-1] if rss else 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
