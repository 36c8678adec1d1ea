#!/usr/bin/env python3
"""kmon on real container engines (issue 14 §3 and §4).

Each test starts one engine from Debian on private state and sockets
(tests/support/engines.py), with containers where the kubelet puts them:
  - Docker (docker.io 20.10): --cgroup-parent the pod cgroup, as dockershim
    did (/kubepods/besteffort/pod<uid>/<id>), a k8s_POD_ sandbox next to
    the app container;
  - containerd 1.6 driven by ctr: real containerd-shim-runc-v2 processes,
    containers in /kubepods/besteffort/pod<uid>/<id> (sandbox and app);
  - podman 4 pods: infra container as the sandbox, conmon, runc.
The stand-in kubelet lists the app containers with their real ids; the
agent runs in containers scope with a 60 s rescan interval, so after its
first scan only the kernel can notice a process entering a container.

Asserted per engine, as a user would check it:
  - the command started by the engine's exec (docker exec, ctr task exec,
    podman exec) and by nsenter (after joining the container's cgroups, as
    runc exec does) is reported by kmon-forward, annotated with pod,
    namespace and container, and the agent did no second scan;
  - the sandbox is recognised (its events carry the pod, no container name);
  - the engine's daemons, shims and conmon are never tracked.
systemd is not PID 1 on the test machines: the systemd-driver layouts
(docker-<id>.scope, cri-containerd-<id>.scope, libpod-<id>.scope) stay
covered by the fixtures in tests/fixtures/cgroup-cases.txt, as do crun's
(crun 1.8 refuses hybrid cgroup hosts, so podman runs with runc here).
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import types
import unittest
import urllib.request
import uuid

from agentproc import Agent, Consumer
from engines import Containerd, Dockerd, Podman, busybox_archive
from fake_kubelet import FakeKubelet
from kubenode import Node
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
# Processes of the engines themselves: never container processes.
ENGINE_COMMS = ("containerd", "containerd-shim", "containerd-shim-runc-v2", "dockerd",
                "conmon", "podman")
SLEEP = ["/bin/sleep", "100000"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cgroup_mounts():
    """{'': cgroup2 mount, frozenset(v1 options): mount} of this machine."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            mnt = left.split()[4]
            if fstype == "cgroup2":
                out.setdefault("", mnt)
            elif fstype == "cgroup":
                out[frozenset(opts.split(","))] = mnt
    return out


def cgroup_procs_files(pid):
    """The cgroup.procs files of every hierarchy pid is in."""
    mounts = cgroup_mounts()
    files = []
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f.read().splitlines():
            hid, ctrls, path = line.split(":", 2)
            if hid == "0":
                mnt = mounts.get("")
            else:
                want = set(ctrls.split(","))
                mnt = next((m for o, m in mounts.items() if o and want <= o), None)
            if mnt:
                files.append(os.path.join(mnt + path, "cgroup.procs"))
    return files


def printed_events(agent):
    """The agent's --print output so far; a line still being written (the
    agent flushes per batch, stdio may cut a long batch) is left for later."""
    out = []
    with open(agent.out_path, errors="replace") as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def v2_cgroup_id(pid):
    """The id of pid's cgroup v2 (what the kernel puts in events)."""
    with open("/proc/%d/cgroup" % pid) as f:
        path = [l[3:] for l in f.read().splitlines() if l.startswith("0::")][0]
    return os.stat(cgroup_mounts()[""] + path).st_ino


def nsenter(pid, argv):
    """What `kubectl debug`/node tooling does: join the container's cgroups,
    then nsenter all its namespaces and run argv. The process is a child of
    this (untracked) test, never of a container process."""
    files = cgroup_procs_files(pid)

    def join():
        for p in files:
            with open(p, "w") as f:
                f.write("0")
    return subprocess.run(["nsenter", "-t", str(pid), "-a"] + argv, preexec_fn=join,
                          capture_output=True, text=True, timeout=60)


def engine_pids(tmp):
    """pid -> comm of the engine processes serving this test (their command
    lines name its private directory)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                comm = f.read().strip()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if comm in ENGINE_COMMS and tmp in cmd:
            out[int(d)] = comm
    return out


class EnginesE2E(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-engines-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.image = busybox_archive(self.tmp)
        self.token = os.path.join(self.tmp, "token")
        with open(self.token, "w") as f:
            f.write("engines-token\n")
        self.pods_file = os.path.join(self.tmp, "pods.json")
        self.pod_uid = str(uuid.uuid4())
        self.pod_cgroup = "/kubepods/besteffort/pod" + self.pod_uid

    def podlist(self, app_id, scheme):
        app = types.SimpleNamespace(name="app", id=app_id, sandbox=False, runtime="containerd",
                                    qos="besteffort", pod_uid=self.pod_uid)
        # Node.podlist builds the kubelet's answer; it needs no Node.
        return Node.podlist(None, [{"name": "web-0", "namespace": "engines", "scheme": scheme,
                                    "containers": [app]}], node_name="kmon-node")

    def own_cgroupns(self):
        """How a pod runs the agent on a cgroup v2 node: in a cgroup of its
        own, in its own cgroup namespace, so it reads other pods' paths as
        /../<path> and the hierarchy's mount root as /... Returns the argv
        prefix that starts the agent that way."""
        mnt = cgroup_mounts().get("")
        self.assertTrue(mnt, "no cgroup v2 hierarchy on this machine")
        d = os.path.join(mnt, "kmon-agent-" + secrets.token_hex(4))
        os.mkdir(d)
        self.addCleanup(lambda: os.path.isdir(d) and os.rmdir(d))
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec unshare --cgroup "$@"',
                d]

    def start_kmon(self, app_id, scheme, prefix=None):
        with open(self.pods_file, "w") as f:
            json.dump(self.podlist(app_id, scheme), f)
        fk = FakeKubelet(os.path.join(self.tmp, "kubelet"), self.pods_file, self.token).start()
        self.addCleanup(fk.stop)
        self.metrics_port = free_port()
        # Rescans 60 s apart: after the first one, only the kernel's cgroup
        # map can explain a process entering a container being reported.
        argv = (prefix or []) + [AGENT]
        a = Agent(argv[0], argv[1:] + ["--scope", "containers", "--rescan-interval", "60",
                          "--kubelet-url", fk.url(), "--kubelet-token-file", self.token,
                          "--kubelet-ca-file", fk.ca, "--kubelet-refresh", "1",
                          "--node-name", "kmon-node", "--print",
                          "--metrics-addr", "127.0.0.1:%d" % self.metrics_port])
        self.addCleanup(a.kill)
        a.wait_attached()
        # Exec events only: every container on the node is tracked (other
        # tests' too), and their memory events could fill this consumer's
        # ring under a sanitizer build. The agent's --print output has all.
        fwd = Consumer([FORWARD, "--socket", a.socket, "--events", "process_exec"])
        self.addCleanup(lambda: fwd.proc.poll() is None and fwd.stop())
        fwd.wait_for_log("attached to")
        a.wait_for_log("first scan of", timeout=30)
        a.wait_for_log("annotating events with pod names", timeout=30)
        return a, fwd

    def metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, v = line.rpartition(" ")
                out[name] = float(v)
        return out

    def events(self, fwd):
        return [json.loads(l) for l in fwd.lines() if l.startswith("{")]

    def exec_event(self, fwd, cid, filename):
        evs = [e for e in self.events(fwd) if e["type"] == "process_exec"
               and e["container_id"] == cid and e["filename"] == filename]
        return evs[-1] if evs else None

    def check(self, a, fwd, app, app_pid, sandbox, sandbox_pid, engine_exec):
        """The assertions every engine shares; app/sandbox are container ids."""
        # The sandbox is recognised once a PodList fetched after the first
        # scan omits it: its events carry the pod and no container name.
        wait_for(lambda: self.metrics().get("kmon_kubelet_refreshes_total{result=\"ok\"}", 0)
                 >= 2, 30, "a second PodList")
        app_cg, sandbox_cg = v2_cgroup_id(app_pid), v2_cgroup_id(sandbox_pid)
        r = engine_exec(app, ["/bin/true"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = nsenter(app_pid, ["/bin/hostname"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = engine_exec(sandbox, ["/bin/pwd"])
        self.assertEqual(r.returncode, 0, r.stderr)

        # The agent reads each exec (its --print output, flushed per batch)...
        def read(cg, filename):
            return [e for e in printed_events(a) if e["type"] == "process_exec"
                    and e["cgroup_id"] == cg and e["filename"] == filename]
        for cg, filename, how in ((app_cg, "/bin/true", "the engine's exec"),
                                  (app_cg, "/bin/hostname", "nsenter"),
                                  (sandbox_cg, "/bin/pwd", "the engine's exec into the sandbox")):
            wait_for(lambda: read(cg, filename), 30, "the agent reading %s (%s)" % (filename, how))
        # ...found by the kernel, not by a scan.
        m = self.metrics()
        self.assertEqual(m["kmon_rescans_total"], 1, "a rescan happened: %s" % m)
        self.assertGreaterEqual(m["kmon_kernel_cgroup_tracked_total"], 3, m)
        self.assertGreaterEqual(m["kmon_cgroups_mapped"], 2, m)
        self.assertEqual(m["kmon_cgroup_map_full_total"], 0, m)
        engines = engine_pids(self.tmp)
        self.assertTrue(engines, "no engine process found")
        self.assertEqual(a.stop(), 0, a.log())
        # ...and the consumer has them annotated (all it was sent, at the
        # latest once the agent is gone).
        fwd.wait_for_log("agent closed the connection", timeout=30)
        for filename in ("/bin/true", "/bin/hostname"):
            e = self.exec_event(fwd, app, filename)
            self.assertTrue(e, "kmon-forward did not print the exec of %s: %s"
                            % (filename, self.events(fwd)[-5:]))
            self.assertEqual((e["pod"], e["namespace"], e["container"], e["pod_uid"],
                              e["node"]),
                             ("web-0", "engines", "app", self.pod_uid, "kmon-node"), e)
        # The sandbox is recognised: its pod, no container name.
        e = self.exec_event(fwd, sandbox, "/bin/pwd")
        self.assertTrue(e, "kmon-forward did not print the exec into the sandbox")
        self.assertEqual((e["pod"], e["namespace"], e["container"]), ("web-0", "engines", ""), e)
        # Every event the agent read (all types), not only what the consumer got.
        printed = a.events()
        # A free charged back to the container that allocated (the memory
        # ledger) names the context that freed it, which may be an engine
        # process: it is the container's event, not the engine being tracked.
        leaked = [e for e in printed if e["pid"] in engines and not e.get("charged_elsewhere")]
        self.assertEqual(leaked, [], "engine processes %s were tracked" % engines)
        # And what the scan makes of them, as a user would ask it.
        for pid, comm in engines.items():
            r = subprocess.run([AGENT, "--classify-cgroup", "/proc/%d/cgroup" % pid],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0 and not os.path.exists("/proc/%d" % pid):
                continue  # exited meanwhile
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(json.loads(r.stdout)["kind"], ("host", "conmon"),
                          "%s (pid %d) classified as a container: %s" % (comm, pid, r.stdout))
        return engines

    def test_docker(self):
        ctd = Containerd(self.tmp)
        self.addCleanup(ctd.close)
        d = Dockerd(self.tmp, ctd)
        self.addCleanup(d.close)
        d.load(self.image)
        # dockershim's names and placement: both in the pod's cgroup.
        sandbox, sandbox_pid = d.run_container("k8s_POD_web-0_engines_%s_0" % self.pod_uid,
                                     self.pod_cgroup, SLEEP)
        app, app_pid = d.run_container("k8s_app_web-0_engines_%s_0" % self.pod_uid,
                                       self.pod_cgroup, SLEEP)
        a, fwd = self.start_kmon(app, "docker")
        engines = self.check(a, fwd, app, app_pid, sandbox, sandbox_pid, d.exec)
        self.assertIn("dockerd", engines.values())
        self.assertIn("containerd-shim", {c[:15] for c in engines.values()})

    def test_containerd(self):
        ctd = Containerd(self.tmp)
        self.addCleanup(ctd.close)
        ctd.import_image(self.image)
        sandbox, app = secrets.token_hex(32), secrets.token_hex(32)
        sandbox_pid = ctd.run_container(sandbox, "%s/%s" % (self.pod_cgroup, sandbox), SLEEP)
        app_pid = ctd.run_container(app, "%s/%s" % (self.pod_cgroup, app), SLEEP)
        a, fwd = self.start_kmon(app, "containerd")
        engines = self.check(a, fwd, app, app_pid, sandbox, sandbox_pid, ctd.exec)
        self.assertIn("containerd-shim", {c[:15] for c in engines.values()})

    def test_agent_in_own_cgroup_namespace(self):
        """containerd again, the agent in its own cgroup namespace: the
        cgroup map is still filled (the agent finds where its namespace
        root is), so the exec'd processes are still reported at once."""
        ctd = Containerd(self.tmp)
        self.addCleanup(ctd.close)
        ctd.import_image(self.image)
        sandbox, app = secrets.token_hex(32), secrets.token_hex(32)
        sandbox_pid = ctd.run_container(sandbox, "%s/%s" % (self.pod_cgroup, sandbox), SLEEP)
        app_pid = ctd.run_container(app, "%s/%s" % (self.pod_cgroup, app), SLEEP)
        a, fwd = self.start_kmon(app, "containerd", prefix=self.own_cgroupns())
        self.assertIn("(namespace root /kmon-agent-", a.log())
        self.check(a, fwd, app, app_pid, sandbox, sandbox_pid, ctd.exec)

    def test_podman(self):
        p = Podman(self.tmp)
        self.addCleanup(p.close)
        p.load(self.image)
        pod = p.create_pod("web-0", self.pod_cgroup)
        app, app_pid = p.run_container(pod, "app", SLEEP)
        infra, infra_pid = p.infra(pod)
        # No kubelet runs podman: the stand-in lists the app under a scheme
        # the kubelet knows.
        a, fwd = self.start_kmon(app, "containerd")
        engines = self.check(a, fwd, app, app_pid, infra, infra_pid, p.exec)
        self.assertIn("conmon", engines.values())


if __name__ == "__main__":
    unittest.main(verbosity=2)
