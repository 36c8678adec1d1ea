"""The set-up and tear-down every agent/consumer test repeats.

A test case starts a real kmon-agent and consumers through agent() and
consumer(); whatever the test did, tearDown kills what is left in an order
that cannot hang (other processes, then consumers, then agents, then
cgroups, which are only removable once empty) and removes the temp dir.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from agentproc import Agent, Consumer
from kubenode import Node

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
TESTCONSUMER = os.environ.get("KMON_TESTCONSUMER", "testconsumer")


def reap(p):
    """Stops one thing a test started, whatever state it is in."""
    if isinstance(p, Consumer):
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        p.close()
    elif isinstance(p, subprocess.Popen):
        if p.poll() is None:
            p.kill()
            p.wait()
    elif hasattr(p, "kill"):
        p.kill()
    elif hasattr(p, "remove"):
        p.remove()


class KmonTestCase(unittest.TestCase):
    # The consumers run as user nobody: 0o777 when they write into tmp.
    TMP_MODE = 0o755
    # An agent that sees every process and never rescans: the tests make
    # their own load and need no container.
    AGENT_ARGS = ("--scope", "all", "--rescan-interval", "0")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-%s-" % type(self).__name__.lower())
        os.chmod(self.tmp, self.TMP_MODE)
        self.agents, self.consumers, self.procs, self.cgroups = [], [], [], []

    def tearDown(self):
        for group in (self.procs, self.consumers, self.agents, self.cgroups):
            for p in group:
                reap(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def agent(self, *args, base=None, env=None):
        """A running agent, attached to its programs."""
        a = Agent(AGENT, list(self.AGENT_ARGS if base is None else base) + list(args), env=env)
        self.agents.append(a)
        a.wait_attached()
        return a

    def consumer(self, a, name, *args, user=None, attach=True):
        """testconsumer `name` attached to agent a (as nobody, or as `user`,
        an argv prefix such as a setpriv line)."""
        argv = [TESTCONSUMER, "--socket", a.socket, "--name", name] + list(args)
        c = Consumer(list(user) + argv, as_nobody=False) if user else Consumer(argv)
        self.consumers.append(c)
        if attach:
            c.wait_for_log("attached to")
            a.wait_for_log("'%s' attached" % name)
        return c


class NodeTestCase(KmonTestCase):
    """KmonTestCase on a node of real runc containers (self.node, removed
    last), with the stand-in kubelet a test may start as self.fk (stopped
    once the processes are gone)."""

    def setUp(self):
        super().setUp()
        self.node = Node()
        self.addCleanup(self.node.close)
        self.fk = None

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            if self.fk:
                self.fk.stop()
