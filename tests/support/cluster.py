"""One pod with one container in a real runc container, annotated through
the stand-in kubelet: the workload of the consumer tests (test_consumers,
test_sdk), with GATED, the shell loop that makes a known number of execs
once told to (test_clickhouse runs it too)."""

from agentproc import tracked
from fake_kubelet import serve_podlist
from kubenode import Node, new_pod_uid
from waits import wait_for

GATED = ("while [ ! -e /tmp/go%d ]; do usleep 50000; done; "
         "i=0; while [ $i -lt %d ]; do /bin/%s; i=$((i+1)); done")


class Cluster:
    """One pod with one container that runs `count` execs of an applet
    each time it is told to, annotated through the stand-in kubelet."""

    def __init__(self, tmp, ns, pod, applet):
        self.node = Node()
        self.applet = applet
        uid = new_pod_uid()
        self.rounds = 0
        self.c = self.node.start_container(
            flavor="systemd-containerd", pod_uid=uid, name="app",
            cmd=["/bin/sh", "-c", "while :; do usleep 100000; done"])
        self.fk = serve_podlist(tmp, self.node.podlist([{"name": pod, "namespace": ns,
                                                         "containers": [self.c]}]))
        self.token = self.fk.token_file

    def agent_args(self):
        return ["--scope", "containers", "--rescan-interval", "0.5"] + self.fk.agent_args()

    def run_execs(self, count):
        """Exactly `count` execs of /bin/<applet> inside the container, once
        the agent tracks the process that makes them (a process entering a
        container from outside, as runc exec does, is found by the next scan)."""
        self.rounds += 1
        script = GATED % (self.rounds, count, self.applet)
        pid = self.c.spawn(["/bin/sh", "-c", script])
        wait_for(lambda: tracked(pid), 30, "pid %d in the agent's PID map" % pid)
        self.c.exec(["/bin/touch", "/tmp/go%d" % self.rounds])
        return pid

    def close(self):
        self.fk.stop()
        self.node.close()
