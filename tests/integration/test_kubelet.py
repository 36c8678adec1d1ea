#!/usr/bin/env python3
"""The agent against a misbehaving stand-in kubelet (issue 4): each failure
gets one clear log line saying what is wrong and what fixes it, and the agent
keeps running; the explicit insecure opt-in works and is warned about.
"""
import os
import shutil
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
from agentproc import Agent
from fake_kubelet import FakeKubelet

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
