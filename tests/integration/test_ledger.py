#!/usr/bin/env python3
"""The memory ledger on the real kernel (issue 15 items 5-7), as a user of
kmon-aggregate sees it on /metrics, with a real agent, real runc pods
annotated through the stand-in kubelet, and kmon-aggregate as nobody:

- a pod that holds kernel memory (N files with long names in an emptyDir of
  medium Memory, a host tmpfs mounted into it): its ledger grows by about
  what its memory cgroup's kernel memory grows, and the ledger names the
  caches that hold it (dentry, shmem_inode_cache) and the call sites;
- the pod exits: its outstanding memory stays charged to it; the host
  removes the files (another process; the kernel frees dentries and inodes
  from RCU callbacks): the frees are charged back to the pod; then, its own
  tasks unseen for --expire, the series goes;
- a process of a memory-limited pod is OOM-killed: kmon_oom_kills_total of
  that pod reads 1.
Every /metrics body passes `promtool check metrics`.

Needs the agent's slab and oom_kill events (issue 15 items 1, 2, 7): without
them the test says so and skips.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
from agentproc import Agent, Consumer
from fake_kubelet import serve_podlist
from kubenode import Node, new_pod_uid
from servers import free_port, http_get
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
AGGREGATE = os.environ.get("KMON_AGGREGATE", "kmon-aggregate")
PROMTOOL = shutil.which("promtool")
NS = "ledger"
N_FILES = 3000
EXPIRE = 30
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(body):
    """[(name, {label: value}, float)] of a Prometheus text body."""
    out = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise AssertionError("unparsable line %r" % line)
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def agent_has_ledger_events():
    r = subprocess.run([AGENT, "--help"], capture_output=True, text=True)
    return "slab_alloc" in r.stdout + r.stderr and "oom_kill" in r.stdout + r.stderr


class LedgerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not agent_has_ledger_events():
            raise unittest.SkipTest("kmon-agent has no slab_alloc/oom_kill events yet "
                                    "(issue 15 items 1, 2, 7)")
        cls.tmp = tempfile.mkdtemp(prefix="kmon-ledger-")
        os.chmod(cls.tmp, 0o755)
        # The pod's emptyDir (medium: Memory): a tmpfs of the node, mounted
        # into the container; it outlives the container, as on a kubelet.
        cls.emptydir = os.path.join(cls.tmp, "emptydir")
        os.mkdir(cls.emptydir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=256m", "kmon-ledger",
                        cls.emptydir], check=True)
        cls.node = Node()

        def volume(spec):
            spec["mounts"].append({"destination": "/data", "type": "bind",
                                   "source": cls.emptydir, "options": ["rbind", "rw"]})

        def limited(spec):
            spec["linux"].setdefault("resources", {})["memory"] = {
                "limit": 48 << 20, "swap": 48 << 20}

        # holder: generates some allocations while idle (reads /proc), then
        # on /data/go makes N files with 58- to 61-character names (past
        # the dentry's inline 40: an external name, a dentry, an inode each;
        # no fork per file), then idles until /data/exit.
        cls.holder = cls.node.start_container(
            flavor="cgroupfs-containerd", pod_uid=new_pod_uid(), name="app", customize=volume,
            cmd=["/bin/sh", "-c",
                 "while [ ! -e /data/go ]; do read x < /proc/self/stat; usleep 50000; done; "
                 "p=%s; i=0; while [ $i -lt %d ]; do "
                 ": > /data/f$p$i; i=$((i+1)); done; : > /data/done; "
                 "while [ ! -e /data/exit ]; do read x < /proc/self/stat; usleep 50000; done"
                 % ("n" * 56, N_FILES)])
        # victim: on /tmp/go (gated by an exec), grows an awk string past
        # its 48 MiB limit.
        cls.victim = cls.node.start_container(
            flavor="cgroupfs-containerd", pod_uid=new_pod_uid(), name="eater", customize=limited,
            cmd=["/bin/sh", "-c",
                 "while [ ! -e /tmp/go ]; do read x < /proc/self/stat; usleep 50000; done; "
                 "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; "
                 "while :; do usleep 100000; done"])
        cls.fk = serve_podlist(cls.tmp, cls.node.podlist([
            {"name": "holder-0", "namespace": NS, "containers": [cls.holder]},
            {"name": "victim-0", "namespace": NS, "containers": [cls.victim]}]))
        cls.agent = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0.5",
                                  "--events", "memory_alloc,memory_free,process_exec,"
                                  "slab_alloc,slab_free,oom_kill"]
                          + cls.fk.agent_args())
        # Loading the programs and reading 100k+ kernel symbols takes a while
        # on a loaded 2-core machine: a liveness bound, not a timing.
        cls.agent.wait_for_log("attached:", timeout=90)
        wait_for(lambda: "annotating events with pod names" in cls.agent.log(), 30,
                 "kubelet answer", cls.agent.log)
        cls.port = free_port()
        cls.agg = Consumer([AGGREGATE, "--socket", cls.agent.socket, "--listen",
                            "127.0.0.1:%d" % cls.port, "--memcg-interval", "1",
                            "--ledger-top", "10", "--expire", str(EXPIRE)])
        cls.agg.wait_for_log("attached to")

    @classmethod
    def tearDownClass(cls):
        for p in (getattr(cls, "agg", None), getattr(cls, "agent", None)):
            if p and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        if hasattr(cls, "fk"):
            cls.fk.stop()
        if hasattr(cls, "node"):
            cls.node.close()
        if hasattr(cls, "emptydir"):
            subprocess.run(["umount", "-l", cls.emptydir], check=False)
        if hasattr(cls, "tmp"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def metrics(self):
        body = http_get("http://127.0.0.1:%d/metrics" % self.port)
        if PROMTOOL:
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + body[-3000:])
        return parse(body)

    def value(self, m, name, pod, **labels):
        want = dict(namespace=NS, pod=pod, **labels)
        vals = [v for n, lv, v in m if n == name and all(lv.get(k) == x for k, x in want.items())]
        return vals[0] if vals else None

    def by(self, m, name, pod, label):
        return {lv[label]: v for n, lv, v in m if n == name and lv.get("namespace") == NS
                and lv.get("pod") == pod}

    def test_1_holder_ledger_matches_memcg_then_exits_and_is_freed(self):
        pod = "holder-0"
        wait_for(lambda: self.value(self.metrics(), "kmon_memcg_kernel_bytes", pod) is not None
                 and self.value(self.metrics(), "kmon_ledger_outstanding_bytes", pod) is not None,
                 30, "the holder's ledger and memory cgroup on /metrics",
                 lambda: (self.agg.log()[-1000:],))
        time.sleep(2)
        m = self.metrics()
        l0 = self.value(m, "kmon_ledger_outstanding_bytes", pod)
        k0 = self.value(m, "kmon_memcg_kernel_bytes", pod)
        with open(os.path.join(self.emptydir, "go"), "w"):
            pass
        wait_for(lambda: os.path.exists(os.path.join(self.emptydir, "done")), 120,
                 "%d files made" % N_FILES)
        time.sleep(3)  # two memcg reads
        m = self.metrics()
        l1 = self.value(m, "kmon_ledger_outstanding_bytes", pod)
        k1 = self.value(m, "kmon_memcg_kernel_bytes", pod)
        dl, dk = l1 - l0, k1 - k0
        caches = self.by(m, "kmon_ledger_outstanding_objects_by_cache", pod, "cache")
        sites = self.by(m, "kmon_ledger_outstanding_bytes_by_site", pod, "site")
        print("\nholder: %d files; ledger %d -> %d (+%d) bytes; memcg kernel %d -> %d (+%d); "
              "ratio %.2f\n  caches (objects): %s\n  sites (bytes): %s"
              % (N_FILES, l0, l1, dl, k0, k1, dk, dl / dk if dk else 0,
                 sorted(caches.items(), key=lambda x: -x[1])[:6],
                 sorted(sites.items(), key=lambda x: -x[1])[:6]), flush=True)
        # The kernel grew by the files (about 1 KiB each: dentry, inode, name).
        self.assertGreater(dk, N_FILES * 500)
        # The ledger counts the objects, the memcg whole slab pages (partly
        # filled pages, per-cpu slabs) plus what the ledger does not see
        # (page tables, stacks, per-cpu memory): near 1, within a factor 2.
        self.assertGreater(dl, dk / 2, "ledger +%d vs memcg +%d" % (dl, dk))
        self.assertLess(dl, dk * 2, "ledger +%d vs memcg +%d" % (dl, dk))
        # By name: the caches that hold the files, one object per file each.
        self.assertGreaterEqual(caches.get("dentry", 0), N_FILES * 0.9, caches)
        self.assertGreaterEqual(caches.get("shmem_inode_cache", 0), N_FILES * 0.9, caches)
        # The kernel functions holding them, by name (the agent hides
        # addresses by default; kmon-aggregate resolves through its table):
        # the inode and dentry allocators, each with the files' share.
        def held_by(fn):
            return sum(v for k, v in sites.items() if re.match(r"^_*%s\+0x[0-9a-f]+" % fn, k))
        self.assertGreater(held_by("shmem_alloc_inode"), N_FILES * 300, sites)
        self.assertGreater(held_by("d_alloc"), N_FILES * 100, sites)

        # The pod exits (its files stay in the emptyDir): still charged.
        with open(os.path.join(self.emptydir, "exit"), "w"):
            pass
        wait_for(lambda: not self.holder.host_pids(), 30, "the holder's processes gone")
        time.sleep(5)
        m = self.metrics()
        l2 = self.value(m, "kmon_ledger_outstanding_bytes", pod)
        print("after exit: ledger %s bytes" % l2, flush=True)
        self.assertIsNotNone(l2, "an exited pod's memory must stay charged until --expire")
        self.assertGreater(l2, l1 - dl * 0.1)
        matched0 = self.value(m, "kmon_ledger_frees_matched_elsewhere_total", None) or 0

        # The node removes the files: another process, the kernel frees the
        # dentries and inodes later from RCU callbacks. Charged back.
        subprocess.run(["find", self.emptydir, "-name", "f*", "-delete"], check=True)
        wait_for(lambda: (self.value(self.metrics(), "kmon_ledger_outstanding_bytes", pod)
                          or 0) < l2 - dl * 0.8, 30, "the removed files charged back to holder-0",
                 lambda: self.by(self.metrics(), "kmon_ledger_outstanding_bytes_by_cache", pod,
                                 "cache"))
        m = self.metrics()
        matched = [v for n, lv, v in m if n == "kmon_ledger_frees_matched_elsewhere_total"][0]
        print("after rm: ledger %s bytes; frees matched elsewhere +%d"
              % (self.value(m, "kmon_ledger_outstanding_bytes", pod), matched - matched0),
              flush=True)
        self.assertGreaterEqual(matched - matched0, N_FILES)
        # Unseen for --expire: the series goes.
        wait_for(lambda: self.value(self.metrics(), "kmon_ledger_outstanding_bytes", pod) is None,
                 EXPIRE * 2 + 10, "holder-0's series expired")

    def test_2_oom_kill_counted_per_pod(self):
        pod = "victim-0"
        wait_for(lambda: self.value(self.metrics(), "kmon_oom_kills_total", pod) is not None, 30,
                 "victim-0 on /metrics")
        self.assertEqual(self.value(self.metrics(), "kmon_oom_kills_total", pod), 0)
        self.victim.exec(["/bin/touch", "/tmp/go"])
        wait_for(lambda: self.value(self.metrics(), "kmon_oom_kills_total", pod) == 1, 60,
                 "one OOM kill of victim-0", lambda: self.agg.log()[-500:])
        time.sleep(2)
        m = self.metrics()
        self.assertEqual(self.value(m, "kmon_oom_kills_total", pod), 1)
        self.assertEqual(self.value(m, "kmon_oom_kills_total", "holder-0") or 0, 0)

    def test_3_clean_exit(self):
        """kmon-aggregate and the agent stop cleanly (sanitizer builds: no
        report, no leak)."""
        self.assertEqual(self.agg.stop(), 0, self.agg.log()[-2000:])
        self.assertEqual(self.agent.stop(), 0, self.agent.log()[-2000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
