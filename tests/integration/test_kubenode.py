#!/usr/bin/env python3
"""Root test of the fake-node harness (tests/support/kubenode.py) that the
Kubernetes end-to-end tests stand on (issue 4): real runc containers must
sit in kubelet-style cgroups, exactly as a user's node shows them in
/proc/<pid>/cgroup, and leave nothing behind.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import kubenode
from kubenode import Node, new_pod_uid, parse_cgroup_text

# v1 controllers runc's cgroupfs driver always joins when they are mounted.
CORE_V1 = {"memory", "pids", "cpu", "cpuacct", "cpuset", "devices",
           "freezer", "blkio", "name=systemd"}

CASES = [
    # flavor, qos, expected path with {uid}, {uid_} (systemd) and {id}
    ("cgroupfs-containerd", "burstable",
     "/kubepods/burstable/pod{uid}/{id}"),
    ("systemd-containerd", "burstable",
     "/kubepods.slice/kubepods-burstable.slice/"
     "kubepods-burstable-pod{uid_}.slice/cri-containerd-{id}.scope"),
    ("systemd-crio", "besteffort",
     "/kubepods.slice/kubepods-besteffort.slice/"
     "kubepods-besteffort-pod{uid_}.slice/crio-{id}.scope"),
    ("systemd-containerd", "guaranteed",
     "/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{id}.scope"),
    ("cgroupfs-crio", "guaranteed", "/kubepods/pod{uid}/crio-{id}"),
]

SLEEP = ["/bin/sh", "-c", "echo started; exec sleep 1000"]


def proc_cgroup(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return f.read()


class KubeNodeTest(unittest.TestCase):
    def setUp(self):
        self.assertEqual(os.geteuid(), 0, "this test must run as root")
        self.tmp = tempfile.TemporaryDirectory(prefix="kmon-kn-test-")
        self.addCleanup(self.tmp.cleanup)

    def expected_path(self, tmpl, c):
        return tmpl.format(uid=c.pod_uid, uid_=c.pod_uid.replace("-", "_"),
                           id=c.id)

    def assert_in_cgroup(self, text, path, mode):
        """Every core v1 line (and the 0:: line on v2/hybrid) names path."""
        lines = parse_cgroup_text(text)
        v1 = [(ctrls, p) for _, ctrls, p in lines
              if set(ctrls) & CORE_V1]
        unified = [p for hid, ctrls, p in lines if hid == 0 and not ctrls]
        if mode == "v2":
            # No v1 hierarchy is mounted, so nothing puts the process in one;
            # (real v2-only kernels print just the 0:: line).
            self.assertEqual(unified, [path], text)
            return
        self.assertGreaterEqual(len(v1), 1, text)
        for ctrls, p in v1:
            self.assertEqual(p, path, "controllers %s in:\n%s" % (ctrls, text))
        if mode == "hybrid":
            # runc (1.1) joins the unified hierarchy too on hybrid hosts;
            # real nodes may show the runtime's service there instead.
            self.assertEqual(unified, [path], text)

    def test_flavors_exec_and_cleanup(self):
        with Node(workdir=self.tmp.name) as node:
            self.assertIn(node.cgroup_mode, ("v1", "hybrid", "v2"))
            print("cgroup mode: %s" % node.cgroup_mode, file=sys.stderr)
            runc_root = node.runc_root
            started = []
            for flavor, qos, tmpl in CASES:
                c = node.start_container(flavor=flavor, pod_uid=new_pod_uid(),
                                         name="c-" + flavor, qos=qos,
                                         cmd=SLEEP)
                started.append((c, self.expected_path(tmpl, c)))
            sandbox = node.start_container(
                flavor="systemd-containerd", pod_uid=started[1][0].pod_uid,
                name="POD", cmd=["/bin/sleep", "1000"], sandbox=True)
            started.append((sandbox, self.expected_path(CASES[1][2], sandbox)))

            pids = []
            cg_dirs = []
            for c, path in started:
                with self.subTest(flavor=c.flavor, qos=c.qos):
                    self.assertRegex(c.id, r"^[0-9a-f]{64}$")
                    self.assertIn(c.id, path)
                    self.assertEqual(c.cgroup_path, path)
                    text = c.cgroup_text
                    self.assertEqual(text, proc_cgroup(c.host_pid))
                    self.assert_in_cgroup(text, path, node.cgroup_mode)

                    r = c.exec(["/bin/true"])
                    self.assertEqual(r.returncode, 0, r.stderr)
                    r = c.exec(["/bin/sh", "-c", "echo $((6*7)); exit 3"])
                    self.assertEqual((r.returncode, r.stdout), (3, "42\n"))
                    # The container has its own pid namespace: init is 1.
                    r = c.exec(["/bin/cat", "/proc/1/cmdline"])
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertTrue(r.stdout.startswith(
                        "/bin/sleep" if c.sandbox else "sleep"), r.stdout)

                    # A process started inside shows up on the host with a
                    # host pid in the very same cgroup.
                    xpid = c.spawn(["/bin/sleep", "1000"])
                    self.assertNotEqual(xpid, c.host_pid)
                    self.assertEqual(proc_cgroup(xpid), text)
                    with open("/proc/%d/cmdline" % xpid, "rb") as f:
                        self.assertEqual(f.read(), b"/bin/sleep\x001000\x00")
                    self.assertEqual(c.host_pids(),
                                     sorted([c.host_pid, xpid]))
                    pids += [c.host_pid, xpid]
                    for mnt in node.cgroup_mounts:
                        d = mnt + path
                        if os.path.isdir(d):
                            cg_dirs.append(d)
            self.assertGreater(len(cg_dirs), 0)
            if not started[0][0].sandbox:
                out, _ = node.container_output(started[0][0])
                self.assertEqual(out, "started\n")

            # PodList shape kmon's kubelet client parses.
            c1, c2, c3 = (started[i][0] for i in range(3))
            pl = node.podlist([
                {"name": "web-0", "namespace": "shop", "containers": [c1]},
                {"name": "api-0", "namespace": "shop",
                 "containers": [c2, sandbox], "previous": {c2.name: "ab" * 32}},
                {"name": "db-0", "namespace": "data", "containers": [c3]},
            ])
            pl = json.loads(json.dumps(pl))
            self.assertEqual(pl["kind"], "PodList")
            self.assertEqual(len(pl["items"]), 3)
            web, api, db = pl["items"]
            self.assertEqual(web["metadata"]["uid"], c1.pod_uid)
            self.assertEqual(
                [(s["name"], s["containerID"])
                 for s in web["status"]["containerStatuses"]],
                [(c1.name, "containerd://" + c1.id)])
            self.assertEqual(
                [s["containerID"] for s in api["status"]["containerStatuses"]],
                ["containerd://" + c2.id])  # sandbox never listed
            self.assertEqual(api["status"]["containerStatuses"][0]["lastState"]
                             ["terminated"]["containerID"],
                             "containerd://" + "ab" * 32)
            self.assertEqual(db["status"]["containerStatuses"][0]
                             ["containerID"], "cri-o://" + c3.id)
            self.assertEqual(db["status"]["qosClass"], "BestEffort")
            self.assertEqual(db["metadata"]["namespace"], "data")

            # stop() of one container removes it at once.
            c1.stop()
            self.assertFalse(kubenode._pid_alive(c1.host_pid))
            self.assertNotIn(c1.runc_name, self.runc_list(runc_root))

        # After the node: no container, no process, no cgroup dir, no files.
        self.assertEqual(self.runc_list(runc_root), [])
        for pid in pids:
            self.assertFalse(kubenode._pid_alive(pid), "pid %d alive" % pid)
        for d in cg_dirs:
            self.assertFalse(os.path.exists(d), d)
        for mnt in node.cgroup_mounts:
            for top in ("kubepods", "kubepods.slice"):
                if os.path.isdir(os.path.join(mnt, top)):
                    # Only acceptable if it was there before us (a real node).
                    self.assertNotIn(os.path.join(mnt, top),
                                     node.created_cgroups)
        self.assertEqual(os.listdir(self.tmp.name), [])
        self.assertFalse(os.path.exists(runc_root))

    def runc_list(self, root):
        if not os.path.isdir(root):
            return []
        r = subprocess.run([kubenode.RUNC, "--root", root, "list", "-q"],
                           capture_output=True, text=True, check=True)
        return r.stdout.split()

    def test_cleanup_on_failure(self):
        """A body that raises still leaves nothing behind, and a bad
        argument is refused with a message naming it."""
        with self.assertRaises(ZeroDivisionError):
            with Node(workdir=self.tmp.name) as node:
                c = node.start_container(flavor="cgroupfs-containerd",
                                         pod_uid=new_pod_uid(), name="x",
                                         cmd=SLEEP, qos="besteffort")
                with self.assertRaisesRegex(ValueError, "unknown flavor"):
                    node.start_container(flavor="docker", pod_uid="u",
                                         name="y", cmd=SLEEP)
                with self.assertRaisesRegex(ValueError, "unknown qos"):
                    node.start_container(flavor="systemd-crio", pod_uid="u",
                                         name="y", cmd=SLEEP, qos="gold")
                with self.assertRaisesRegex(ValueError, "conmon"):
                    node.start_container(flavor="systemd-containerd",
                                         pod_uid="u", name="y", cmd=SLEEP,
                                         conmon=True)
                # A command that does not exist fails at create/start.
                with self.assertRaisesRegex(kubenode.NodeError, "runc"):
                    node.start_container(flavor="systemd-crio",
                                         pod_uid=new_pod_uid(), name="bad",
                                         cmd=["/bin/no-such-binary"])
                dirs = list(node.created_cgroups)
                1 / 0
        self.assertFalse(kubenode._pid_alive(c.host_pid))
        for d in dirs:
            self.assertFalse(os.path.exists(d), d)
        self.assertEqual(os.listdir(self.tmp.name), [])

    def test_conmon_scope(self):
        with Node(workdir=self.tmp.name) as node:
            c = node.start_container(flavor="systemd-crio",
                                     pod_uid=new_pod_uid(), name="conmon",
                                     cmd=SLEEP, conmon=True)
            self.assertTrue(c.cgroup_path.endswith(
                "/crio-conmon-%s.scope" % c.id))
            self.assertRegex(c.cgroup_text,
                             re.escape("crio-conmon-%s.scope" % c.id))


if __name__ == "__main__":
    unittest.main(verbosity=2)
