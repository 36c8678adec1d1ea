#!/usr/bin/env python3
"""kmon-forward against an HTTP sink that talks back (issue 13).

The sink is a network peer: whatever it answers must not reach forward's
stdout (libcurl's default is to write the body there, and stdout is the
event stream with --output - or the pod's log), must not grow forward's
memory, and may show up in the log only as a short, escaped excerpt that
says why a request failed, never as lines of its own.
"""
import gzip
import json
import os
import subprocess
import unittest

from agentproc import Consumer
from kmoncase import KmonTestCase
from servers import HttpSink
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")

OK_BODY = b"Ok.\n" + b"OKBODY-" * (512 * 1024 // 7)
# A ClickHouse-like error, then a terminal escape and a forged log line.
ERR_BODY = (b"Code: 60. DB::Exception: Table default.nope does not exist\n"
            b"\x1b[31mFORGED kmon-forward: all good\n" + b"ERRBODY-" * 20000)


class ForwardSinkTest(KmonTestCase):
    def sink(self):
        """An HTTP sink answering (status, body) from self.answer; records
        what it received and how many body bytes it answered per status."""
        self.answer = (200, OK_BODY)
        self.got, self.answered = [], {}

        def on_post(headers, body):
            status, answer = self.answer
            self.got.append((status, gzip.decompress(body)))
            self.answered[status] = self.answered.get(status, 0) + len(answer)
            return status, answer

        srv = HttpSink(on_post)
        self.addCleanup(srv.stop)
        return srv.url

    def test_sink_answers_never_reach_stdout_or_the_log(self):
        url = self.sink()
        marker = os.path.join(self.tmp, "fwd-sink-marker")
        os.symlink("/bin/true", marker)
        # Our own tracked process execs the marker a few times a second.
        loop = subprocess.Popen(["/bin/sh", "-c", 'while :; do "$0"; sleep 0.2; done', marker])
        self.procs.append(loop)
        a = self.agent("--rescan-interval", "0", "--pid", str(loop.pid), base=[])
        a.wait_attached()
        fwd = Consumer([FORWARD, "--socket", a.socket, "--events", "process_exec",
                        "--output", url, "--flush-interval", "0.2"])
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")

        # Only our tracked loop's execs are sent (the marker's and sleep's):
        # count requests, since a retried batch may hold no marker.
        def batches(status):
            return sum(1 for s, _ in self.got if s == status)

        def state():
            return "sink got %r; forward (exit %r): %s" % (
                [s for s, _ in self.got], fwd.proc.poll(), fwd.log()[-3000:])

        wait_for(lambda: batches(200) >= 3 and any(b"fwd-sink-marker" in b for _, b in self.got),
                 60, "3 batches answered 200 with a body, one with the marker", show=state)
        ok_bytes = self.answered[200]
        self.answer = (400, ERR_BODY)
        wait_for(lambda: batches(400) >= 2, 60, "2 batches answered 400", show=state)
        fwd.wait_for_log("answered HTTP 400")
        self.answer = (503, ERR_BODY)
        wait_for(lambda: batches(503) >= 2, 60, "2 batches answered 503", show=state)
        fwd.wait_for_log("answered HTTP 503")
        self.answer = (200, OK_BODY)
        n = batches(200)
        wait_for(lambda: batches(200) > n, 60, "delivery after the errors", show=state)

        self.assertEqual(a.stop(), 0)
        fwd.wait_for_log("agent closed the connection")
        self.assertEqual(fwd.stop(), 0)
        out, log = fwd.output(), fwd.log()

        # Nothing the sink said reaches stdout: it stays empty.
        self.assertEqual(out, "", out[:500])
        # A successful answer is not logged at all.
        self.assertNotIn("OKBODY", log)
        self.assertNotIn("Ok.", log)
        # A failure's answer is quoted once, escaped, on the line saying why.
        self.assertNotIn("\x1b", log)
        lines = log.splitlines()
        for l in lines:
            self.assertFalse(l.startswith("FORGED"), l)
        said = [l for l in lines if "Table default.nope does not exist" in l]
        self.assertEqual(len(said), 2, log[-3000:])
        self.assertTrue(any("answered HTTP 400; dropping the batch" in l for l in said), said)
        self.assertTrue(any("answered HTTP 503; retrying with backoff" in l for l in said), said)
        for l in said:
            self.assertIn("\\x0a\\x1b[31mFORGED", l)
            # Bounded: the first 200 bytes of an answer of 160 kB.
            self.assertLess(l.count("ERRBODY-"), 200 // 8 + 1, l)
            self.assertLess(len(l), 1200, l)
        # Every answer was read (and counted) rather than left in the socket.
        c = [json.loads(l)["counters"] for l in lines if l.startswith('{"counters"')][-1]
        self.assertGreaterEqual(c["response_bytes"], ok_bytes + 2 * len(ERR_BODY), c)
        self.assertLessEqual(c["response_bytes"], sum(self.answered.values()), c)


if __name__ == "__main__":
    unittest.main(verbosity=2)
