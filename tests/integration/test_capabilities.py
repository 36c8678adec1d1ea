#!/usr/bin/env python3
"""Least privilege, proven on the real kernel (issue 6): the agent runs with
exactly the capability set the Helm chart grants (read from
charts/kmon/values.yaml) and sees events; without BPF or without PERFMON it
refuses with a message naming what is missing; after attaching it holds no
capability at all (/proc/<pid>/status of every thread). With SYS_NICE the
drain thread alone runs at --drain-nice; without it the agent says so and
works at nice 0.
"""
import os
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from agentproc import Agent  # noqa: E402

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
VALUES = os.path.join(HERE, "..", "..", "charts", "kmon", "values.yaml")


def chart_caps():
    with open(VALUES) as f:
        return [c.lower() for c in yaml.safe_load(f)["agent"]["capabilities"]]


def limited(caps):
    """As the container runtime does: uid 0, but only these capabilities in
    the bounding set (so also in the permitted and effective sets)."""
    return ["setpriv", "--bounding-set", "-all," + ",".join("+" + c for c in caps),
            "--inh-caps", "-all", "--"]


def thread_nices(pid):
    """{thread name: set of nice values}"""
    out = {}
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, task)) as f:
            name = f.read().strip()
        out.setdefault(name, set()).add(os.getpriority(os.PRIO_PROCESS, int(task)))
    return out


def cap_lines(pid):
    out = {}
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, task)) as f:
            for line in f:
                if line.startswith(("CapEff", "CapPrm", "CapInh", "CapAmb")):
                    k, v = line.split(":")
                    out.setdefault(k, set()).add(int(v.strip(), 16))
    return out


class CapabilitiesTest(unittest.TestCase):
    def test_chart_set_works_and_is_dropped_after_attach(self):
        caps = chart_caps()
        self.assertIn("bpf", caps)
        # No --socket-group: giving the socket a group the agent is not in
        # would need CAP_CHOWN (the chart makes the agent a member instead).
        sock = os.path.join(tempfile.mkdtemp(), "kmon.sock")
        a = Agent(limited(caps)[0], limited(caps)[1:] + [AGENT, "--scope", "all",
                                                         "--rescan-interval", "1", "--print",
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
            self.assertEqual(nices.pop("kmon-drain"), {-5}, "drain not at --drain-nice")
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
                                                         "--socket", sock])
        try:
            a.wait_attached()
            nices = thread_nices(a.proc.pid)
        finally:
            a.stop()
        self.assertEqual(nices["kmon-drain"], {0})
        self.assertIn("--drain-nice -5: Permission denied", a.log())
        self.assertIn("grant CAP_SYS_NICE", a.log())

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
