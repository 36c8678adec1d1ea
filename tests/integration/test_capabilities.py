#!/usr/bin/env python3
"""Least privilege, proven on the real kernel (issues 6 and 13): the agent runs
with exactly the capability set the Helm chart grants (read from
charts/kmon/values.yaml) and the pod's groups, and sees events; without BPF or
without PERFMON it refuses with a message naming what is missing, and without
SETUID, SETGID or SETPCAP it refuses rather than stay root. After attaching it
is an unprivileged user (--run-as): every thread's /proc/<pid>/task/*/status
shows that uid and gid, no supplementary group, no capability in any set
(bounding and ambient included) and no_new_privs; and it keeps doing its job:
a runc container started after the switch is found by the /proc rescan, its
events reach a consumer that attaches after the switch, annotated through a
kubelet whose rotated token the agent reads as that user, and SIGTERM stops
it. A process of the agent's own uid cannot read its memory, a consumer cannot
signal it. With SYS_NICE the drain thread alone runs at --drain-nice, and with
--drain-rt-priority it alone is SCHED_FIFO; without SYS_NICE the agent says so
and works at nice 0, SCHED_OTHER.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
from agentproc import NOBODY, Agent, Consumer
from fake_kubelet import FakeKubelet
from kubenode import Node, NodeError, new_pod_uid
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
VALUES = os.path.join(HERE, "..", "..", "charts", "kmon", "values.yaml")
# The agent's user in these tests: the chart's default uid; its group is the
# socket group the consumers (nobody:nogroup here) are in, as in the chart.
RUN_UID, RUN_GID = 65532, 65534


def chart_values():
    with open(VALUES) as f:
        return yaml.safe_load(f)


def chart_caps():
    return [c.lower() for c in chart_values()["agent"]["capabilities"]]


def limited(caps, groups=(RUN_GID,)):
    """As the container runtime does for the chart's agent: uid 0, the pod's
    supplementalGroups/fsGroup, and only these capabilities in the bounding
    set (so also in the permitted and effective sets)."""
    return ["setpriv", "--groups", ",".join(str(g) for g in groups),
            "--bounding-set", "-all," + ",".join("+" + c for c in caps),
            "--inh-caps", "-all", "--"]


def status(path):
    """/proc/.../status as {field: value string}."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def thread_nices(pid):
    """{thread name: set of nice values}"""
    out = {}
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, task)) as f:
            name = f.read().strip()
        out.setdefault(name, set()).add(os.getpriority(os.PRIO_PROCESS, int(task)))
    return out


def thread_policies(pid):
    """{thread name: set of (policy, rt priority)}: /proc/<pid>/task/<tid>/stat
    fields 41 and 40 (0 SCHED_OTHER, 1 SCHED_FIFO)."""
    out = {}
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, task)) as f:
            name = f.read().strip()
        with open("/proc/%d/task/%s/stat" % (pid, task)) as f:
            fields = f.read().rsplit(")", 1)[1].split()  # fields[0] is field 3
        out.setdefault(name, set()).add((int(fields[38]), int(fields[37])))
    return out


def cap_lines(pid):
    out = {}
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, task)) as f:
            for line in f:
                if line.startswith(("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd")):
                    k, v = line.split(":")
                    out.setdefault(k, set()).add(int(v.strip(), 16))
    return out


class CapabilitiesTest(unittest.TestCase):
    def test_chart_set_works_and_is_dropped_after_attach(self):
        caps = chart_caps()
        self.assertIn("bpf", caps)
        # No --socket-group: the socket gets the --run-as gid, which the
        # agent is a member of (the pod's fsGroup), so no CAP_CHOWN needed.
        sock = os.path.join(tempfile.mkdtemp(), "kmon.sock")
        a = Agent(limited(caps)[0], limited(caps)[1:] + [AGENT, "--scope", "all",
                                                         "--rescan-interval", "1", "--print",
                                                         "--run-as", "%d:%d" % (RUN_UID, RUN_GID),
                                                         "--socket", sock])
        try:
            a.wait_attached()
            a.wait_for_log("first scan")
            marker = os.path.join(tempfile.mkdtemp(), "kmon-cap-marker")
            os.symlink("/bin/true", marker)
            subprocess.run([marker], check=True)
            time.sleep(0.5)
            caps_now = cap_lines(a.proc.pid)
            for k, vals in caps_now.items():
                self.assertEqual(vals, {0}, "agent still holds capabilities (%s)" % k)
            self.assertGreater(len(os.listdir("/proc/%d/task" % a.proc.pid)), 2,
                               "expected the drain and worker threads to be checked too")
            nices = thread_nices(a.proc.pid)
            self.assertEqual(nices.pop("kmon-drain"), {-15}, "drain not at --drain-nice")
            self.assertEqual(set().union(*nices.values()), {0},
                             "threads other than the drain left at a raised priority: %s" % nices)
            self.assertNotIn("--drain-nice", a.log())
        finally:
            a.stop()
        execs = [e for e in a.events() if e["type"] == "process_exec"]
        self.assertTrue(any(e["filename"] == marker for e in execs),
                        "no exec event with the chart's capability set")

    def test_without_sys_nice_the_drain_runs_at_nice_0_and_says_why(self):
        caps = [c for c in chart_caps() if c != "sys_nice"]
        sock = os.path.join(tempfile.mkdtemp(), "kmon.sock")
        a = Agent(limited(caps)[0], limited(caps)[1:] + [AGENT, "--scope", "all",
                                                         "--rescan-interval", "0",
                                                         "--run-as", "%d:%d" % (RUN_UID, RUN_GID),
                                                         "--socket", sock])
        try:
            a.wait_attached()
            nices = thread_nices(a.proc.pid)
        finally:
            a.stop()
        self.assertEqual(nices["kmon-drain"], {0})
        self.assertIn("--drain-nice -15: Permission denied", a.log())
        self.assertIn("grant CAP_SYS_NICE", a.log())

    def run_agent(self, caps, extra, during=None, wrap=()):
        """The agent as the chart runs it (only caps, --run-as), plus extra
        arguments, started through wrap; once attached: (agent, its threads'
        policies, their nice values), after during(agent) if given."""
        sock = os.path.join(tempfile.mkdtemp(), "kmon.sock")
        argv = list(wrap) + limited(caps) + [
            AGENT, "--scope", "all", "--rescan-interval", "0", "--socket", sock,
            "--run-as", "%d:%d" % (RUN_UID, RUN_GID)] + list(extra)
        a = Agent(argv[0], argv[1:])
        try:
            a.wait_attached()
            pols, nices = thread_policies(a.proc.pid), thread_nices(a.proc.pid)
            if during:
                during(a)
        finally:
            a.stop()
        return a, pols, nices

    def test_drain_rt_priority_makes_the_drain_alone_sched_fifo(self):
        marker = os.path.join(tempfile.mkdtemp(), "kmon-rt-marker")
        os.symlink("/bin/true", marker)

        def exec_seen(a):
            subprocess.run([marker], check=True)

            def printed():
                with open(a.out_path) as f:
                    return marker in f.read()
            wait_for(printed, 10, "the exec event, with the drain SCHED_FIFO")
        a, pols, nices = self.run_agent(chart_caps(), ["--print", "--drain-rt-priority", "7"],
                                        exec_seen)
        self.assertTrue(any(e["type"] == "process_exec" and e["filename"] == marker
                            for e in a.events()))
        self.assertEqual(pols.pop("kmon-drain"), {(1, 7)}, "drain not SCHED_FIFO at 7")
        self.assertEqual(set().union(*pols.values()), {(0, 0)},
                         "threads other than the drain left real-time: %s" % pols)
        self.assertEqual(nices.pop("kmon-drain"), {-15})
        self.assertEqual(set().union(*nices.values()), {0})
        self.assertIn("drain thread: SCHED_FIFO priority 7", a.log())

    def test_drain_rt_priority_without_sys_nice_says_why(self):
        a, pols, _ = self.run_agent([c for c in chart_caps() if c != "sys_nice"],
                                    ["--drain-rt-priority", "7"])
        self.assertEqual(set().union(*pols.values()), {(0, 0)})
        self.assertIn("--drain-rt-priority 7: Operation not permitted", a.log())
        self.assertIn("the drain runs at nice 0 instead", a.log())

    def test_drain_rt_priority_without_rt_time_for_the_cgroup_says_why(self):
        # Kernels with CONFIG_RT_GROUP_SCHED (this project's test kernel has
        # it) give a new cpu cgroup no real-time time: a pod's, by default.
        # There even CAP_SYS_NICE cannot make the drain SCHED_FIFO.
        root = "/sys/fs/cgroup/cpu"
        if not os.path.exists(os.path.join(root, "cpu.rt_runtime_us")):
            self.skipTest("no cgroup v1 cpu hierarchy with RT group scheduling here")
        cg = os.path.join(root, "kmon-rt-%d" % os.getpid())
        os.mkdir(cg)
        self.addCleanup(os.rmdir, cg)
        with open(os.path.join(cg, "cpu.rt_runtime_us")) as f:
            self.assertEqual(f.read().strip(), "0")
        a, pols, _ = self.run_agent(
            chart_caps(), ["--drain-rt-priority", "7"],
            wrap=["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"',
                  os.path.join(cg, "cgroup.procs")])
        self.assertEqual(set().union(*pols.values()), {(0, 0)})
        self.assertIn("--drain-rt-priority 7: Operation not permitted; the drain runs at "
                      "nice -15 instead", a.log())
        self.assertIn("cpu.rt_runtime_us", a.log())

    def test_each_missing_capability_is_named(self):
        caps = chart_caps()
        for missing in ("bpf", "perfmon"):
            rest = [c for c in caps if c != missing]
            with tempfile.TemporaryDirectory() as d:
                out = subprocess.run(limited(rest) + [AGENT, "--scope", "all", "--socket",
                                                      os.path.join(d, "s")],
                                     capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0, "agent ran without CAP_%s" % missing.upper())
            self.assertIn("CAP_BPF and CAP_PERFMON", out.stderr)
            self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)

    def test_without_the_user_switch_capabilities_it_refuses_to_stay_root(self):
        """An agent that cannot become --run-as must not go on as root."""
        caps = chart_caps()
        for missing in ("setuid", "setgid", "setpcap"):
            self.assertIn(missing, caps, "the chart must grant CAP_%s" % missing.upper())
            rest = [c for c in caps if c != missing]
            with tempfile.TemporaryDirectory() as d:
                out = subprocess.run(limited(rest) + [AGENT, "--scope", "all", "--socket",
                                                      os.path.join(d, "s"), "--run-as",
                                                      "%d:%d" % (RUN_UID, RUN_GID),
                                                      "--rescan-interval", "0"],
                                     capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 1, "agent ran without CAP_%s:\n%s"
                             % (missing.upper(), out.stderr))
            self.assertIn("grant CAP_%s" % missing.upper(), out.stderr)
            self.assertNotIn("attached:", out.stderr)


def loop(applet):
    """A container command that keeps exec'ing one busybox applet."""
    return ["/bin/sh", "-c", "while :; do /bin/%s >/dev/null; sleep 0.2; done" % applet]


def close_node(node):
    """node.close(), except that a parent cgroup (kubepods.slice) this node
    created but another test running at the same time still has pods in is
    not this test's leak: its own directories are gone (deepest first), so a
    leftover that still has child cgroups belongs to someone else."""
    try:
        node.close()
    except NodeError:
        left = [d for d in node.created_cgroups if os.path.isdir(d)]
        if any(not any(os.path.isdir(os.path.join(d, x)) for x in os.listdir(d))
               for d in left):
            raise


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


class UnprivilegedUserTest(unittest.TestCase):
    """Issue 13 defect 7: after attach the agent is an unprivileged user and
    still does everything a user relies on."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-user-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # Like the pod's volume mounts: directories anyone may traverse,
        # files readable by the agent's group only (projected volume with
        # fsGroup and defaultMode 0440).
        os.chmod(self.tmp, 0o755)
        self.token = os.path.join(self.tmp, "token")
        self.write_token("secret-token-1")
        self.pods_file = os.path.join(self.tmp, "pods.json")
        with open(self.pods_file, "w") as f:
            json.dump({"kind": "PodList", "apiVersion": "v1", "items": []}, f)
        self.node = Node()
        self.addCleanup(close_node, self.node)
        self.fk = FakeKubelet(os.path.join(self.tmp, "kubelet"), self.pods_file,
                              self.token).start()
        self.addCleanup(self.fk.stop)
        os.chown(self.fk.ca, 0, RUN_GID)
        os.chmod(self.fk.ca, 0o440)
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()

    def write_token(self, value):
        tmp = self.token + ".new"
        with open(tmp, "w") as f:
            f.write(value + "\n")
        os.chown(tmp, 0, RUN_GID)
        os.chmod(tmp, 0o440)
        os.replace(tmp, self.token)

    def get(self, path):
        with urllib.request.urlopen("http://%s%s" % (self.metrics, path), timeout=5) as r:
            return r.status, r.read().decode()

    def ready(self):
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def annotated(self, fwd, applet, pod, cid):
        for line in fwd.lines():
            e = json.loads(line)
            if (e["type"] == "process_exec" and e["filename"] == "/bin/" + applet
                    and e["pod"] == pod):
                self.assertEqual((e["namespace"], e["container_id"]), ("shop", cid), e)
                return e
        return None

    def test_after_attach_an_unprivileged_user_that_keeps_working(self):
        caps = chart_caps()
        self.metrics = "127.0.0.1:%d" % free_port()
        a = Agent(limited(caps)[0], limited(caps)[1:] + [
            AGENT, "--scope", "containers", "--rescan-interval", "0.5",
            "--run-as", "%d:%d" % (RUN_UID, RUN_GID),
            "--kubelet-url", self.fk.url(), "--kubelet-token-file", self.token,
            "--kubelet-ca-file", self.fk.ca, "--kubelet-refresh", "1",
            "--node-name", "kmon-node", "--metrics-addr", self.metrics])
        self.procs.append(a)
        wait_for(self.ready, 30, "/readyz 200", show=a.log)
        pid = a.proc.pid

        # Every thread, the drain, libuv workers and the HTTP thread
        # included: capability sets and the bounding set are per thread.
        tasks = os.listdir("/proc/%d/task" % pid)
        self.assertGreater(len(tasks), 2, "expected the drain and worker threads too")
        for task in [None] + tasks:
            path = ("/proc/%d/status" % pid if task is None
                    else "/proc/%d/task/%s/status" % (pid, task))
            st = status(path)
            with self.subTest(status=path):
                self.assertEqual(st["Uid"].split(), [str(RUN_UID)] * 4)
                self.assertEqual(st["Gid"].split(), [str(RUN_GID)] * 4)
                self.assertEqual(st["Groups"], "")
                for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                    self.assertEqual(int(st[k], 16), 0, "%s is %s" % (k, st[k]))
                self.assertEqual(st["NoNewPrivs"], "1")

        # Attack: a process of the agent's own uid (another workload that
        # happens to run as it) reads the agent's environment and memory map:
        # refused, the agent is not dumpable. A consumer cannot signal it.
        for f in ("environ", "maps"):
            r = subprocess.run(["setpriv", "--reuid", str(RUN_UID), "--regid", str(RUN_GID),
                                "--clear-groups", "--", "cat", "/proc/%d/%s" % (pid, f)],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, "uid %d read /proc/<agent>/%s" % (RUN_UID, f))
            self.assertIn("Permission denied", r.stderr)
        r = subprocess.run(NOBODY + ["kill", "-TERM", str(pid)], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, "a consumer's uid could signal the agent")
        self.assertIsNone(a.proc.poll())

        # A consumer attaches after the switch (socket group = --run-as gid).
        fwd = Consumer([FORWARD, "--socket", a.socket])
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")

        _, before = self.get("/metrics")
        scans_before = metric(before, "kmon_rescans_total")
        self.assertIsNotNone(scans_before, before)

        # The token rotates after the switch: only an agent that re-reads the
        # group-readable file as its new user gets the pod list now.
        self.write_token("secret-token-2")
        # Guaranteed QoS: the pod's cgroup sits right under kubepods.slice,
        # the fewest directories shared with other tests running meanwhile.
        late = self.node.start_container(flavor="systemd-containerd", pod_uid=new_pod_uid(),
                                         name="late", cmd=loop("uname"), qos="guaranteed")
        self.fk.set_pods(self.node.podlist(
            [{"name": "late-1", "namespace": "shop", "containers": [late]}],
            node_name="kmon-node"))
        e = wait_for(lambda: self.annotated(fwd, "uname", "late-1", late.id), 60,
                     "exec events of a container started after the switch, annotated",
                     show=lambda: (fwd.output()[-2000:], a.log()[-3000:]))
        self.assertEqual(e["container"], "late")
        self.assertIn(("/pods", "Bearer secret-token-2"), self.fk.requests)
        _, after = self.get("/metrics")
        self.assertGreater(metric(after, "kmon_rescans_total"), scans_before)
        self.assertGreaterEqual(metric(after, "kmon_tracked_pids"), 1)
        self.assertGreater(metric(after, "kmon_kubelet_refreshes_total", '{result="ok"}'), 0)
        self.assertNotIn("not readable as uid", a.log())

        # SIGTERM: detaches, reports its totals and exits 0 within seconds.
        a.proc.send_signal(signal.SIGTERM)
        try:
            rc = a.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("agent did not exit within 5 s of SIGTERM as uid %d" % RUN_UID)
        self.assertEqual(rc, 0, a.log()[-3000:])
        a.stop()
        self.assertIsNotNone(a.totals, "no totals line after SIGTERM")
        fwd.stop()

    def test_files_the_user_cannot_read_are_named_at_start(self):
        """A token only root may read: the agent says which file, as which
        user, instead of failing kubelet refreshes without a reason."""
        os.chmod(self.token, 0o400)
        a = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0",
                          "--run-as", "%d:%d" % (RUN_UID, RUN_GID),
                          "--kubelet-url", self.fk.url(), "--kubelet-token-file", self.token,
                          "--kubelet-ca-file", self.fk.ca])
        self.procs.append(a)
        a.wait_attached()
        a.wait_for_log("--kubelet-token-file %s: not readable as uid %d gid %d (--run-as)"
                       % (self.token, RUN_UID, RUN_GID))
        self.assertEqual(a.stop(), 0)
        self.assertNotIn("--kubelet-ca-file %s: not readable" % self.fk.ca, a.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
