#!/usr/bin/env python3
"""The consumer client library's close path under valgrind (issue 13).

kmon_client embeds its libuv handles (two polls, an idle, a timer). libuv runs
close callbacks in the reverse order of the uv_close calls and still touches
each handle after its own callback, so freeing the client from the first
callback to run is a use-after-free inside libuv, which ASan cannot see
(libuv is not instrumented). A consumer built without sanitizers runs under
valgrind through what a consumer lives through: attach to a real agent, the
agent killed, a new agent on the same socket, re-attach, then SIGTERM (close
while attached); and a --once consumer that closes when the agent goes away.
valgrind must report no error at all.
"""
import os
import re
import shutil
import signal
import subprocess
import time
import unittest

from agentproc import Consumer
from kmoncase import KmonTestCase

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
TC = os.environ.get("KMON_TESTCONSUMER_VG", "testconsumer_vg")
VALGRIND = os.environ.get("KMON_VALGRIND") or shutil.which("valgrind") or ""
VG_ERR = 99


class ClientLifecycleTest(KmonTestCase):
    def setUp(self):
        if not VALGRIND or "NOTFOUND" in VALGRIND:
            self.fail("valgrind is needed for this test (.ci/deps --tests installs it)")
        super().setUp()
        # A process that keeps allocating in the kernel, tracked by --pid, so
        # the consumer has real events to read whatever else runs here.
        self.busy = subprocess.Popen(
            ["/bin/sh", "-c", "while :; do cat /proc/self/status >/dev/null; sleep 0.05; done"])
        self.procs.append(self.busy)

    def agent(self, socket=None):
        args = ["--rescan-interval", "0", "--pid", str(self.busy.pid)]
        if socket:
            args += ["--socket", socket, "--socket-group", "nogroup"]
        return super().agent(*args, base=[])

    def consumer(self, sock, *extra):
        # valgrind runs as nobody and reads the binary itself: a copy in the
        # test's own directory, whatever the mode of the checkout's path.
        tc = os.path.join(self.tmp, os.path.basename(TC))
        if not os.path.exists(tc):
            shutil.copy2(TC, tc)
            os.chmod(tc, 0o755)
        c = Consumer([VALGRIND, "--error-exitcode=%d" % VG_ERR, "--track-origins=no",
                      "--leak-check=no", tc, "--socket", sock] + list(extra))
        self.procs.append(c)
        return c

    def assert_valgrind_clean(self, c, rc):
        log = c.log()
        invalid = [l for l in log.splitlines()
                   if re.search(r"Invalid (read|write|free)|uninitialised|Mismatched", l)]
        self.assertEqual(invalid, [], log[-6000:])
        self.assertNotEqual(rc, VG_ERR, "valgrind reported errors:\n" + log[-6000:])
        self.assertEqual(rc, 0, log[-3000:])
        m = re.search(r"ERROR SUMMARY: (\d+) errors", log)
        self.assertIsNotNone(m, "no valgrind summary:\n" + log[-3000:])
        self.assertEqual(int(m.group(1)), 0, log[-6000:])
        # It printed its counts: close ran to the end and delivered.
        self.assertIn('"events":', c.output())

    def test_close_after_agent_restart_and_while_attached(self):
        a = self.agent()
        c = self.consumer(a.socket)
        c.wait_for_log("attached to", timeout=120)
        # The agent dies without a goodbye; the client closes both polls and
        # waits on its timer to retry.
        a.proc.kill()
        a.proc.wait()
        c.wait_for_log("agent closed the connection", timeout=120)
        b = self.agent(socket=a.socket)
        # Re-attached: the poll handles were initialised again on the same
        # memory after their earlier close completed.
        t0 = time.monotonic()
        while c.log().count("attached to") < 2:
            self.assertLess(time.monotonic() - t0, 120, c.log()[-3000:])
            self.assertIsNone(c.proc.poll(), c.log()[-3000:])
            time.sleep(0.1)
        c.proc.send_signal(signal.SIGTERM)
        rc = c.proc.wait(timeout=120)
        c.close()
        self.assert_valgrind_clean(c, rc)
        self.assertGreater(c.result()["events"], 0, c.output())
        self.assertEqual(c.result()["reconnects"], 1, c.output())
        self.assertEqual(b.stop(), 0)

    def test_once_consumer_closes_when_the_agent_stops(self):
        a = self.agent()
        c = self.consumer(a.socket, "--once")
        c.wait_for_log("attached to", timeout=120)
        self.assertEqual(a.stop(), 0)
        rc = c.proc.wait(timeout=120)
        c.close()
        self.assert_valgrind_clean(c, rc)


if __name__ == "__main__":
    unittest.main(verbosity=2)
