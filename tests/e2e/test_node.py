#!/usr/bin/env python3
"""End-to-end test on a node as a user runs kmon (issue 4): real runc
containers in kubelet-style cgroups (cgroupfs + containerd, systemd +
containerd, systemd + cri-o), a loopback HTTPS stand-in kubelet with its own
CA and bearer-token check, kmon-agent in containers scope finding them by
itself, and kmon-forward as user nobody printing annotated events.
"""
import json
import os
import signal
import subprocess
import unittest

from agentproc import Agent, Consumer
from fake_kubelet import FakeKubelet
from kmoncase import NodeTestCase
from kubenode import new_pod_uid
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")


def loop(applet):
    """A container command that keeps exec'ing one busybox applet."""
    return ["/bin/sh", "-c", "while :; do /bin/%s >/dev/null; sleep 0.2; done" % applet]


class NodeE2E(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.token = os.path.join(self.tmp, "token")
        self.pods_file = os.path.join(self.tmp, "pods.json")
        self.write_token("secret-token-1")

    def write_token(self, value, path=None):
        tmp = (path or self.token) + ".new"
        with open(tmp, "w") as f:
            f.write(value + "\n")
        os.replace(tmp, path or self.token)

    def events(self, fwd):
        out = []
        for line in fwd.lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                self.fail("kmon-forward printed a line that is not JSON: %r" % line)
        return out

    def execs_of(self, fwd, applet):
        return [e for e in self.events(fwd)
                if e["type"] == "process_exec" and e["filename"] == "/bin/" + applet]

    def start_agent(self, kubelet_token=None):
        a = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0.5",
                          "--kubelet-url", self.fk.url(),
                          "--kubelet-token-file", kubelet_token or self.token,
                          "--kubelet-ca-file", self.fk.ca, "--kubelet-refresh", "1",
                          "--node-name", "kmon-node", "--metrics-addr", "127.0.0.1:19471"])
        self.procs.append(a)
        a.wait_attached()
        return a

    def start_forward(self, a):
        f = Consumer([FORWARD, "--socket", a.socket])
        self.procs.append(f)
        f.wait_for_log("attached to")
        return f

    def annotated(self, fwd, applet, pod, ns, container, cid):
        evs = [e for e in self.execs_of(fwd, applet) if e["pod"] == pod]
        if not evs:
            return False
        e = evs[-1]
        self.assertEqual((e["namespace"], e["container"], e["container_id"], e["node"]),
                         (ns, container, cid, "kmon-node"), e)
        return e

    def test_node(self):
        n = self.node
        uid_a, uid_b, uid_c = new_pod_uid(), new_pod_uid(), new_pod_uid()
        api = n.start_container(flavor="cgroupfs-containerd", pod_uid=uid_a, name="api",
                                cmd=loop("true"))
        web = n.start_container(flavor="systemd-containerd", pod_uid=uid_b, name="web",
                                cmd=loop("date"), qos="guaranteed")
        work = n.start_container(flavor="systemd-crio", pod_uid=uid_c, name="worker",
                                 cmd=loop("hostname"), qos="besteffort")
        # The pod's sandbox: same pod cgroup, an id the kubelet never lists.
        pause = n.start_container(flavor="cgroupfs-containerd", pod_uid=uid_a, name="pause",
                                  cmd=loop("pwd"), sandbox=True)
        pods = [
            {"name": "api-0", "namespace": "payments", "containers": [api, pause]},
            {"name": "web-7f9", "namespace": "shop", "containers": [web]},
            {"name": "worker-x", "namespace": "batch", "containers": [work]},
        ]
        with open(self.pods_file, "w") as f:
            json.dump(n.podlist(pods, node_name="kmon-node"), f)
        self.fk = FakeKubelet(os.path.join(self.tmp, "kubelet"), self.pods_file,
                              self.token).start()

        # A busy host process outside containers: must never show up.
        host_marker = os.path.join(self.tmp, "host-busy-marker")
        os.symlink("/bin/true", host_marker)
        host = subprocess.Popen(["/bin/sh", "-c",
                                 'while :; do "%s"; sleep 0.05; done' % host_marker])
        self.addCleanup(lambda: (host.kill(), host.wait()))

        # Start with a wrong token: the kubelet answers 401.
        wrong = os.path.join(self.tmp, "token-wrong")
        self.write_token("not-the-token", wrong)
        a = self.start_agent(kubelet_token=wrong)
        fwd = self.start_forward(a)
        # A second consumer subscribes to one namespace, into a file.
        outdir = os.path.join(self.tmp, "out")
        os.mkdir(outdir)
        os.chmod(outdir, 0o1777)
        shop_file = os.path.join(outdir, "shop.jsonl")
        shop = Consumer([FORWARD, "--socket", a.socket, "--namespace", "shop",
                         "--output", shop_file, "--name", "shop-only"])
        self.procs.append(shop)
        shop.wait_for_log("attached to")
        a.wait_for_log("rejected the service-account token", timeout=30)
        self.assertIn("nodes/pods", a.log())
        # Events flow anyway, with ids from the cgroup path and no pod name.
        e = wait_for(lambda: self.execs_of(fwd, "true"), 30, "api execs without kubelet")[-1]
        self.assertEqual((e["container_id"], e["pod_uid"], e["pod"]), (api.id, uid_a, ""))

        # The token file is rotated to the right token: picked up, annotation starts.
        self.write_token("secret-token-1", wrong)
        for applet, pod, ns, c in [("true", "api-0", "payments", api),
                                   ("date", "web-7f9", "shop", web),
                                   ("hostname", "worker-x", "batch", work)]:
            ev = wait_for(lambda: self.annotated(fwd, applet, pod, ns, c.name, c.id), 40,
                          "%s annotated with %s/%s" % (applet, ns, pod))
            self.assertEqual(ev["pod_uid"], c.pod_uid)
        # The sandbox is annotated with its pod, and no container name.
        wait_for(lambda: self.annotated(fwd, "pwd", "api-0", "payments", "", pause.id), 40,
                 "sandbox annotated with its pod")
        # Memory events carry the pod too.
        mem = [e for e in self.events(fwd) if e["type"] == "memory_alloc" and e["pod"] == "api-0"
               and e["container_id"] == api.id]
        self.assertTrue(mem, "no memory_alloc event annotated with api-0")
        self.assertTrue(all(m["container"] == "api" and m["size"] > 0 for m in mem))

        # A container started after the agent is found and annotated too.
        late = n.start_container(flavor="systemd-containerd", pod_uid=new_pod_uid(),
                                 name="late", cmd=loop("uname"))
        pods.append({"name": "late-1", "namespace": "shop", "containers": [late]})
        self.fk.set_pods(n.podlist(pods, node_name="kmon-node"))
        wait_for(lambda: self.annotated(fwd, "uname", "late-1", "shop", "late", late.id), 40,
                 "late container annotated")

        # The kubelet goes away: events keep flowing with container ids; the
        # agent says why once; a new container shows up unannotated.
        said = a.log().count("events keep flowing with container ids only")
        self.fk.stop()
        port = self.fk.port
        gone = n.start_container(flavor="cgroupfs-containerd", pod_uid=new_pod_uid(),
                                 name="during-outage", cmd=loop("whoami"))
        e = wait_for(lambda: self.execs_of(fwd, "whoami"), 40, "events during the outage")[-1]
        self.assertEqual((e["container_id"], e["pod"]), (gone.id, ""))
        pods.append({"name": "outage-pod", "namespace": "ops", "containers": [gone]})
        with open(self.pods_file, "w") as f:
            json.dump(n.podlist(pods, node_name="kmon-node"), f)
        wait_for(lambda: a.log().count("events keep flowing with container ids only") > said,
                 60, "the agent saying the kubelet is unreachable")
        # Back: annotation resumes by itself.
        self.fk = FakeKubelet(os.path.join(self.tmp, "kubelet"), self.pods_file, self.token,
                              port=port).start()
        wait_for(lambda: self.annotated(fwd, "whoami", "outage-pod", "ops", "during-outage",
                                        gone.id), 90, "annotation after the kubelet returned")

        host_pids = {host.pid}
        for e in self.events(fwd):
            self.assertNotEqual(e.get("filename"), host_marker, "host process leaked: %s" % e)
            # A free charged back to its owner container names whoever
            # freed it (here the host process may have): only those may.
            if not e.get("charged_elsewhere"):
                self.assertNotIn(e["pid"], host_pids, e)
            self.assertTrue(e["container_id"], "event without container id: %s" % e)
        # "Why is my container not detected?": the parser's view, as any user.
        out = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                              "--clear-groups", AGENT, "--classify-cgroup",
                              "/proc/%d/cgroup" % web.host_pid],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        cls = json.loads(out.stdout)
        self.assertEqual((cls["runtime"], cls["container_id"], cls["pod_uid"], cls["qos"],
                          cls["kind"]), ("containerd", web.id, uid_b, "guaranteed", "container"))

        # The namespace subscription: only shop's pods, and the file is
        # reopened on SIGHUP (log rotation).
        def shop_events(path):
            with open(path) as f:
                return [json.loads(l) for l in f]
        wait_for(lambda: shop_events(shop_file), 30, "shop events in the file")
        os.rename(shop_file, shop_file + ".1")
        shop.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(shop_file) and shop_events(shop_file), 30,
                 "events in the reopened file")
        every = shop_events(shop_file + ".1") + shop_events(shop_file)
        self.assertTrue(every)
        self.assertEqual({e["namespace"] for e in every}, {"shop"})
        self.assertTrue({"web-7f9"} <= {e["pod"] for e in every})

        # Said once per state change, not once per failed request.
        self.assertLessEqual(a.log().count("events keep flowing"), said + 1, a.log())
        metrics = subprocess.run(["curl", "-s", "http://127.0.0.1:19471/metrics"],
                                 capture_output=True, text=True).stdout
        self.assertIn('kmon_kubelet_refreshes_total{result="ok"}', metrics)
        a.stop()
        fwd.wait_for_log("agent closed the connection")
        fwd.stop()
        # The drain's worst stall during scans and kubelet refreshes, reported.
        print("drain max stall: %.3f ms" % (a.totals["max_batch_ns"] / 1e6))


if __name__ == "__main__":
    unittest.main(verbosity=2)
