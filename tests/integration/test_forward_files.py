#!/usr/bin/env python3
"""kmon-forward's own file rotation (issue 17 §4): by size, a kept count,
optional gzip of rotated files. What a user checks: across every file the
lines are exactly the events forward received (nothing lost, nothing twice),
each file stays under the size asked for, only `keep` rotated files remain,
and compressed ones are whole gzip files.
"""
import glob
import gzip
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from agentproc import Agent, Consumer

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
FLOOD = os.environ.get("KMON_FLOOD", "kmalloc_flood")
ROTATE = 64 * 1024


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", errors="strict") as f:
        return f.read().splitlines()


class ForwardFilesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-files-")
        os.chmod(self.tmp, 0o777)
        self.agent = Agent(AGENT, ["--scope", "all", "--events", "memory_alloc,process_exec",
                                   "--rescan-interval", "0"])
        self.agent.wait_attached()

    def tearDown(self):
        self.agent.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_forward(self, extra, seconds, hup_at=None):
        out = os.path.join(self.tmp, "events.jsonl")
        fwd = Consumer([FORWARD, "--socket", self.agent.socket, "--output", out] + extra)
        fwd.wait_for_log("attached")
        # A steady load of our own (one kmalloc and one kfree per iteration):
        # a quiet machine alone would not fill many files.
        flood = subprocess.Popen([FLOOD, str(int(seconds * 20000)), "1", "--rate=20000"],
                                 stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        hupped = False
        while time.monotonic() - t0 < seconds:
            if hup_at is not None and not hupped and time.monotonic() - t0 > hup_at:
                fwd.proc.send_signal(signal.SIGHUP)  # an outside logrotate, as well
                hupped = True
            time.sleep(0.1)
        flood.wait(60)
        self.assertEqual(fwd.stop(), 0, fwd.log())
        counters = [json.loads(l) for l in fwd.log().splitlines()
                    if l.startswith('{"counters"')][-1]["counters"]
        return out, counters, fwd.log()

    def test_rotate_gzip_nothing_lost_or_doubled(self):
        out, c, log = self.run_forward(["--rotate-size", str(ROTATE), "--rotate-keep", "1000",
                                        "--rotate-gzip"], 6, hup_at=3)
        files = sorted(glob.glob(out + "*"))
        self.assertFalse([f for f in files if f.endswith(".tmp")], files)
        rotated = [f for f in files if f != out]
        self.assertGreaterEqual(c["rotations"], 3, (c, files))
        self.assertEqual(c["rotate_errors"], 0, log)
        # Every rotated file compressed (none left plain once forward exited).
        self.assertTrue(all(f.endswith(".gz") for f in rotated), files)
        self.assertEqual(len(rotated), c["rotations"])
        total = 0
        for f in files:
            lines = read_lines(f)
            size = sum(len(l) + 1 for l in lines)
            self.assertLessEqual(size, ROTATE, f)
            for l in lines:
                json.loads(l)
            total += len(lines)
        self.assertGreater(c["received"], 1000, c)
        self.assertEqual(c["dropped_in_queue"], 0, c)
        self.assertEqual(c["sent"], c["received"] - c["encode_errors"], c)
        self.assertEqual(total, c["sent"], "lines in all files vs events forwarded: %s" % c)
        print("rotations %d, files %d, lines %d == sent %d" %
              (c["rotations"], len(files), total, c["sent"]))

    def test_keep_count_removes_the_oldest(self):
        out, c, log = self.run_forward(["--rotate-size", str(ROTATE), "--rotate-keep", "2"], 4)
        self.assertGreater(c["rotations"], 2, c)
        files = sorted(glob.glob(out + "*"))
        self.assertEqual(files, [out, out + ".1", out + ".2"])
        for f in files:
            self.assertLessEqual(os.path.getsize(f), ROTATE)

    def test_bad_rotation_options(self):
        for argv, why in (
                (["--output", "-", "--rotate-size", "1M"], "only a file --output can rotate"),
                (["--output", "x", "--rotate-size", "1"], "--rotate-size: '1' is not a size"),
                (["--output", "x", "--rotate-keep", "0"], "--rotate-keep: '0' is not a count"),
                (["--output", "x", "--rotate-gzip"], "--rotate-gzip: needs --rotate-size")):
            r = subprocess.run([FORWARD] + argv, capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, argv)
            self.assertIn(why, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
