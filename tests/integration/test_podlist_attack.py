#!/usr/bin/env python3
"""Issue 13 defect 4: one pod must not stop annotation for the whole node.

A tenant can make the kubelet's PodList as odd and as large as it likes for
its own pods: 33 containers restarted once (66 instances, which used to fail
the whole list), a pod with more container instances than the agent keeps
from one list, plus a null item. The real agent, against a stand-in kubelet
serving that list next to a normal pod with a real runc container, must keep
annotating the normal pod (a namespace-filtered kmon-forward receives its
events, with pod names), count what it skipped on /metrics and say so in its
log, and still stop at once on SIGTERM.
"""
import json
import os
import re
import signal
import unittest

from agentproc import Agent, Consumer
from fake_kubelet import serve_podlist
from kmoncase import NodeTestCase
from kubenode import new_pod_uid
from servers import free_port, http_get
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")


def tenant_pod(name, n, restarted, seed):
    """A pod of n containers (ids only, no processes), each restarted once
    when restarted: what a tenant's Deployment can make the kubelet list."""
    statuses = []
    for i in range(n):
        st = {"name": "c%d" % i, "ready": True, "restartCount": 0,
              "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}},
              "containerID": "containerd://%064x" % (seed + i)}
        if restarted:
            st["restartCount"] = 1
            st["lastState"] = {"terminated": {
                "exitCode": 137, "reason": "OOMKilled",
                "containerID": "containerd://%064x" % (seed + 0x100000 + i)}}
        statuses.append(st)
    return {"metadata": {"name": name, "namespace": "tenant", "uid": new_pod_uid()},
            "status": {"phase": "Running", "containerStatuses": statuses}}


def metric(text, name, labels):
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


class PodListAttack(NodeTestCase):
    # tmp, procs, node and fk and their tear-down: NodeTestCase.

    def test_one_pod_cannot_stop_annotation(self):
        api = self.node.start_container(
            flavor="cgroupfs-containerd", pod_uid=new_pod_uid(), name="api",
            cmd=["/bin/sh", "-c", "while :; do /bin/true; sleep 0.2; done"])
        pl = self.node.podlist([{"name": "api-0", "namespace": "shop", "containers": [api]}],
                               node_name="kmon-node")
        restarted = tenant_pod("restarted-33", 33, True, 0x1000)
        huge = tenant_pod("huge", 6000, True, 0x200000)
        # The attack: the normal pod between the tenant's pods and a null item.
        pl["items"] = [restarted, None, pl["items"][0], huge]
        self.fk = serve_podlist(self.tmp, pl)
        port = free_port()
        a = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0.5",
                          "--node-name", "kmon-node", "--metrics-addr", "127.0.0.1:%d" % port]
                  + self.fk.agent_args())
        self.procs.append(a)
        a.wait_attached()
        shop = Consumer([FORWARD, "--socket", a.socket, "--namespace", "shop"])
        self.procs.append(shop)
        shop.wait_for_log("attached to")

        # The list is used: 3 pods, annotation on.
        a.wait_for_log("kubelet %s: 3 pods; annotating events with pod names" % self.fk.url(),
                       timeout=60)
        # The namespace-filtered consumer gets the normal pod's events, named.
        def shop_execs():
            out = []
            for line in shop.lines():
                e = json.loads(line)
                if e["type"] == "process_exec" and e["filename"] == "/bin/true":
                    out.append(e)
            return out
        ev = wait_for(shop_execs, 40, "annotated /bin/true execs at the shop-only consumer")[-1]
        self.assertEqual((ev["pod"], ev["namespace"], ev["container"], ev["container_id"]),
                         ("api-0", "shop", "api", api.id), ev)
        self.assertTrue(all(e["namespace"] == "shop" for e in shop_execs()))

        # What was skipped: named in one log line, with its counts.
        a.wait_for_log("PodList parts skipped", timeout=30)
        line = [l for l in a.log().splitlines() if "PodList parts skipped" in l][0]
        m = re.search(r"(\d+) pods, (\d+) container instances over the bound of (\d+), "
                      r"(\d+) container ids not understood, (\d+) malformed fields", line)
        self.assertIsNotNone(m, line)
        items, instances, bound, ids, fields = (int(x) for x in m.groups())
        wanted = 1 + 2 * 33 + 2 * 6000  # api, restarted-33, huge (current + previous)
        self.assertGreater(wanted, bound)
        self.assertEqual((items, instances, ids, fields), (1, wanted - bound, 0, 0), line)
        self.assertIn("first: pod #2: null item", line)
        # Said once, not on every refresh.
        wait_for(lambda: len(self.fk.requests) >= 4, 30, "more PodList refreshes")
        self.assertEqual(a.log().count("PodList parts skipped"), 1, a.log())

        # And visible on /metrics.
        text = http_get("http://127.0.0.1:%d/metrics" % port)
        self.assertEqual(metric(text, "kmon_kubelet_podlist_skipped", 'part="pod"'), 1, text)
        self.assertEqual(metric(text, "kmon_kubelet_podlist_skipped",
                                'part="container_instance"'), wanted - bound)
        self.assertEqual(metric(text, "kmon_kubelet_podlist_skipped", 'part="container_id"'), 0)
        self.assertEqual(metric(text, "kmon_kubelet_podlist_skipped", 'part="field"'), 0)
        self.assertIn("\nkmon_pods 3\n", text)
        self.assertIn("kmon_ready 1", text)

        # The agent stays in charge: stops on SIGTERM, cleanly.
        self.assertEqual(shop.stop(), 0)
        a.proc.send_signal(signal.SIGTERM)
        self.assertEqual(a.stop(timeout=5), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
