#!/usr/bin/env python3
"""The agent against a misbehaving stand-in kubelet (issue 4): each failure
gets one clear log line saying what is wrong and what fixes it, and the agent
keeps running; the explicit insecure opt-in works and is warned about.

And against a hostile kubelet helper (--kubelet-helper, the child the agent
runs per refresh, agent/kubelet_proc.h): whatever it does or sends, the agent
names it, keeps running, and leaves no child behind; and the child gets
nothing of the agent's (descriptors, environment, root).
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
from agentproc import Agent
from fake_kubelet import FakeKubelet

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
HELPER = os.path.join(os.path.dirname(os.path.abspath(AGENT)), "kmon-kubelet-get")
FIXTURE = os.path.join(HERE, "..", "fixtures", "kubelet-pods.json")


class KubeletErrors(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-kl-")
        # The agent reads the token and CA as its --run-as user after attach.
        os.chmod(self.tmp, 0o755)
        self.token = os.path.join(self.tmp, "token")
        with open(self.token, "w") as f:
            f.write("tok\n")
        self.fk = FakeKubelet(os.path.join(self.tmp, "k"), FIXTURE, self.token).start()
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            a.kill()
        self.fk.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_agent(self, *extra, ca=True, token=None):
        args = ["--scope", "all", "--rescan-interval", "0", "--kubelet-url", self.fk.url(),
                "--kubelet-token-file", token or self.token, "--kubelet-refresh", "1"]
        if ca:
            args += ["--kubelet-ca-file", self.fk.ca]
        a = Agent(AGENT, args + list(extra))
        self.agents.append(a)
        a.wait_attached()
        return a

    def expect(self, a, *texts):
        for t in texts:
            a.wait_for_log(t, timeout=30)
        self.assertIsNone(a.proc.poll(), "agent died")
        a.stop()
        self.assertEqual(a.proc.returncode, 0)

    def test_ok(self):
        a = self.run_agent()
        self.expect(a, "kubelet %s: 7 pods" % self.fk.url())

    def test_untrusted_certificate_names_the_flags(self):
        a = self.run_agent("--kubelet-ca-file", "/etc/ssl/certs/ca-certificates.crt", ca=False)
        self.expect(a, "TLS verification failed", "not signed by the cluster CA",
                    "--kubelet-ca-file", "--kubelet-insecure-skip-tls-verify")

    def test_insecure_opt_in(self):
        a = self.run_agent("--kubelet-insecure-skip-tls-verify", ca=False)
        self.expect(a, "the kubelet's identity is not checked", ": 7 pods")

    def test_bad_answers(self):
        for mode, text in [("garbage", "not JSON"), ("500", "HTTP 500"),
                           ("huge", "larger than 16777216 bytes"),
                           ("401", "rejected the service-account token"),
                           # An old kubelet wants nodes/proxy: the line names the chart value.
                           ("403", "rbac.nodesProxy=true")]:
            self.fk.set_mode(mode)
            a = self.run_agent()
            self.expect(a, text, "events keep flowing")
            # One line per state change, not one per failed request.
            self.assertEqual(a.log().count(text), 1, a.log())
        self.fk.set_mode("ok")

    def test_missing_token_file(self):
        a = self.run_agent(token=os.path.join(self.tmp, "nope"))
        self.expect(a, "cannot read the token file", "--kubelet-token-file")

    def test_slow_kubelet_times_out(self):
        self.fk.set_mode("slow")
        a = self.run_agent()
        self.expect(a, "no answer within 10000 ms")
        self.fk.set_mode("ok")


def children_of(pid):
    """Live processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            # The fields after the command's closing parenthesis: state, ppid.
            rest = st[st.rindex(")") + 2:].split()
            if int(rest[1]) == pid and rest[0] != "Z":
                out.append(int(d))
    return out


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return [int(l.split()[1]) for l in f if l.startswith("VmRSS")][0]


class HostileHelper(KubeletErrors):
    """Each helper is a script (--kubelet-helper takes any executable): what it
    does stands for what a broken or compromised kmon-kubelet-get could do."""

    def helper(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        return path

    def no_child_left(self, a):
        deadline = time.monotonic() + 10
        while children_of(a.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(children_of(a.proc.pid), [], "the agent left its helper running")

    def test_helper_gets_nothing_of_the_agents(self):
        # Records what it was given, then runs the real helper: a wrapper
        # works, and the pods arrive through it. A copy of the helper, which
        # the agent's user can reach wherever the build tree is.
        real = os.path.join(self.tmp, "kmon-kubelet-get")
        shutil.copy2(HELPER, real)
        seen = os.path.join(self.tmp, "seen.json")
        h = self.helper("record", """#!/usr/bin/python3
import json, os, sys
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass
with open(%r, "w") as f:
    json.dump({"uid": os.getuid(), "euid": os.geteuid(), "env": dict(os.environ),
               "fds": fds, "argv": sys.argv[1:],
               "caps": [l for l in open("/proc/self/status") if l.startswith("Cap")]}, f)
os.execv(%r, ["kmon-kubelet-get"] + sys.argv[1:])
""" % (seen, real))
        os.chmod(self.tmp, 0o777)  # the agent's user writes seen.json
        a = self.run_agent("--kubelet-helper", h)
        a.wait_for_log("kubelet %s: 7 pods" % self.fk.url(), timeout=30)
        with open(seen) as f:
            got = json.load(f)
        # Not root, and no capability left.
        self.assertEqual((got["uid"], got["euid"]), (65532, 65532))
        for line in got["caps"]:
            if line.startswith(("CapPrm", "CapEff", "CapInh", "CapAmb")):
                self.assertEqual(int(line.split()[1], 16), 0, line)
        # No environment: a node's proxy variables must not route the
        # kubelet's traffic (python adds nothing to an empty one but LC_CTYPE).
        self.assertEqual({k: v for k, v in got["env"].items() if k != "LC_CTYPE"}, {})
        # 0: /dev/null, 1: the reply pipe, 2: the agent's log; the script's
        # own file (how its interpreter reads it) and python's reading of
        # /proc/self/fd. No BPF map or program, ring, socket, memfd or
        # consumer of the agent's.
        self.assertEqual(got["fds"].get("0"), "/dev/null")
        self.assertTrue(got["fds"].get("1", "").startswith("pipe:"), got["fds"])
        for fd, target in got["fds"].items():
            self.assertFalse(target.startswith(("anon_inode:", "socket:", "/memfd:")),
                             "helper inherited fd %s -> %s" % (fd, target))
            if int(fd) > 2:
                self.assertTrue(target == h or target.startswith("/proc/"),
                                "helper inherited fd %s -> %s" % (fd, target))
        self.assertIn("--url", got["argv"])
        self.assertIn(self.fk.url(), got["argv"])
        self.expect(a, ": 7 pods")

    def test_silent_helper_is_killed(self):
        h = self.helper("silent", "#!/bin/sh\nexec sleep 987654\n")
        a = self.run_agent("--kubelet-helper", h)
        # The request's 10 s and the 5 s margin.
        a.wait_for_log("no complete reply within the deadline", timeout=40)
        self.no_child_left(a)
        self.expect(a, "events keep flowing")

    def test_huge_reply_refused_before_it_is_read(self):
        # A header announcing 1 TiB, then bytes for as long as anyone reads.
        h = self.helper("huge", """#!/usr/bin/python3
import os, struct
hdr = b"KMKUBE01" + struct.pack("=iIqQ", 0, 0, 200, 1 << 40)
os.write(1, hdr)
while True:
    os.write(1, b"x" * 65536)
""")
        a = self.run_agent("--kubelet-helper", h)
        before = vm_rss_kb(a.proc.pid)
        a.wait_for_log("body of 1099511627776 bytes over the 16777216-byte cap", timeout=30)
        self.no_child_left(a)
        # Refused from the header: nothing of the stream was kept.
        self.assertLess(vm_rss_kb(a.proc.pid) - before, 64 << 10)
        self.expect(a, "events keep flowing")

    def test_lying_and_dying_helpers_are_named(self):
        cases = [
            ("short", "#!/usr/bin/python3\nimport os, struct\n"
             "os.write(1, b'KMKUBE01' + struct.pack('=iIqQ', 0, 0, 200, 1000) + b'{}')\n",
             "reply cut short in its body"),
            # An HTTP answer where the reply belongs (longer than a header).
            ("junk", "#!/bin/sh\necho 'HTTP/1.1 200 OK Content-Type: application/json'\n",
             "not a reply (bad magic)"),
            ("crash", "#!/bin/sh\nkill -SEGV $$\n", "killed by signal 11"),
            ("unrunnable", "#!/nonexistent/interpreter\n", "cannot be run by the agent's user"),
        ]
        for name, text, expected in cases:
            a = self.run_agent("--kubelet-helper", self.helper(name, text))
            a.wait_for_log(expected, timeout=30)
            self.no_child_left(a)
            self.expect(a, "events keep flowing")
            self.assertEqual(a.log().count(expected), 1, a.log())

    def test_missing_helper_stops_the_start(self):
        a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0",
                          "--kubelet-url", self.fk.url(), "--kubelet-token-file", self.token,
                          "--kubelet-helper", os.path.join(self.tmp, "nope")])
        self.agents.append(a)
        self.assertEqual(a.proc.wait(timeout=60), 1)
        a.stop()
        self.assertIn("--kubelet-helper %s: No such file or directory" %
                      os.path.join(self.tmp, "nope"), a.log())

    # The parent class's tests run once, there.
    test_ok = test_untrusted_certificate_names_the_flags = test_insecure_opt_in = None
    test_bad_answers = test_missing_token_file = test_slow_kubelet_times_out = None


if __name__ == "__main__":
    unittest.main(verbosity=2)
