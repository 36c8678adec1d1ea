#!/usr/bin/env python3
"""What processes call themselves, through the real kernel (issue 13).

comm and exec filenames are chosen by whoever runs in a pod: quotes,
backslashes, newlines, control characters, invalid UTF-8. The agent's --print
goes through the consumers' one event encoder, so every line is valid JSON
and decodes to exactly those bytes (invalid UTF-8 as U+FFFD per byte). The
exec filename keeps 63 bytes: a name of exactly 63 bytes is whole and must
not be flagged, 64 and more are cut and must be.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from agentproc import Agent

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FILENAME_KEPT = 63  # KMON_FILENAME_LEN - 1: the NUL takes the last byte

# Renames itself (prctl PR_SET_NAME = 15), makes the kernel allocate as that
# name, then execs the path it was given.
CHILD = r"""
import ctypes, os, sys
comm, path = bytes.fromhex(sys.argv[1]), os.fsencode(bytes.fromhex(sys.argv[2]))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(15, ctypes.c_char_p(comm), 0, 0, 0) != 0:
    sys.exit("prctl: errno %d" % ctypes.get_errno())
for _ in range(20):
    with open("/proc/self/status", "rb") as f:
        f.read()
os.execv(path, [path])
"""


class Gated:
    """argv, started only when go() is called: the agent tracks its pid
    before it does anything."""

    def __init__(self, tmp, argv):
        self.fifo = os.path.join(tmp, "go")
        os.mkfifo(self.fifo)
        self.proc = subprocess.Popen([b"/bin/sh", b"-c", b'read x < "$1"; shift; exec "$@"',
                                      b"sh", os.fsencode(self.fifo)] + list(argv))
        self.pid = self.proc.pid

    def go(self):
        with open(self.fifo, "w") as f:
            f.write("go\n")

    def wait(self):
        return self.proc.wait(timeout=120)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ExecNamesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-names-")
        self.cleanups = []

    def tearDown(self):
        for f in reversed(self.cleanups):
            f()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_traced(self, argv):
        """Runs argv gated, tracked by --pid, under an agent with --print;
        returns (pid, every event the agent printed)."""
        c = Gated(self.tmp, argv)
        self.cleanups.append(c.kill)
        a = Agent(AGENT, ["--rescan-interval", "0", "--print", "--pid", str(c.pid)])
        self.cleanups.append(a.kill)
        a.wait_attached()
        c.go()
        self.assertEqual(c.wait(), 0)
        self.assertEqual(a.stop(), 0)
        # Strict: every byte of stdout is UTF-8 and every line one JSON object.
        return c.pid, a.events()

    def test_hostile_comm_and_filename_print_as_valid_json(self):
        # 15 bytes each (comm keeps 15): quote, backslash, newline, control
        # characters, DEL, a lone 0xff, a cut 2-byte sequence, valid UTF-8.
        comm = b'p"q\\r\ns\x01\x7f\xff\xc3(\xc3\xa9t'
        comm_text = 'p"q\\r\ns\x01\x7f\ufffd\ufffd(\u00e9t'
        base = b'f"g\\h\ni\x1b\x7f\xfe\xc3)\xc3\xa9j'
        base_text = 'f"g\\h\ni\x1b\x7f\ufffd\ufffd)\u00e9j'
        self.assertEqual(len(comm), 15)
        self.assertEqual(len(base), 15)
        path = os.fsencode(self.tmp) + b"/" + base
        self.assertLess(len(path), FILENAME_KEPT)
        os.symlink("/bin/true", path)
        pid, evs = self.run_traced([sys.executable.encode(), b"-c", CHILD.encode(),
                                    comm.hex().encode(), path.hex().encode()])
        mine = [e for e in evs if e["pid"] == pid]
        allocs = [e for e in mine if e["type"] == "memory_alloc" and e["comm"] == comm_text]
        self.assertGreater(len(allocs), 0, "no allocation under the prctl name: %r"
                           % sorted({e["comm"] for e in mine}))
        execs = [e for e in mine if e["type"] == "process_exec"
                 and e["filename"].startswith(self.tmp)]
        self.assertEqual(len(execs), 1, execs)
        self.assertEqual(execs[0]["filename"], self.tmp + "/" + base_text)
        # The kernel names a process after the file it execs.
        self.assertEqual(execs[0]["comm"], base_text)
        self.assertIs(execs[0]["filename_truncated"], False)

    def test_filename_of_63_bytes_is_whole_64_is_cut(self):
        paths = {}
        for n in (62, 63, 64, 65):
            prefix = os.path.join(self.tmp, "n%d-" % n)
            paths[n] = prefix + "x" * (n - len(prefix))
            self.assertEqual(len(paths[n].encode()), n)
            os.symlink("/bin/true", paths[n])
        script = 'for p in "$@"; do "$p" || exit 1; done'
        _, evs = self.run_traced([b"/bin/sh", b"-c", script.encode(), b"sh"] +
                                 [paths[n].encode() for n in sorted(paths)])
        execs = [e for e in evs if e["type"] == "process_exec"
                 and e["filename"].startswith(self.tmp)]
        got = {e["filename"]: e["filename_truncated"] for e in execs}
        self.assertEqual(len(execs), 4, execs)
        for n in (62, 63):
            self.assertIn(paths[n], got, "%d-byte path not reported whole: %r" % (n, got))
            self.assertIs(got[paths[n]], False, "%d-byte path flagged truncated" % n)
        for n in (64, 65):
            cut = paths[n][:FILENAME_KEPT]
            self.assertIn(cut, got, "%d-byte path not cut to %d: %r" % (n, FILENAME_KEPT, got))
            self.assertIs(got[cut], True, "%d-byte path not flagged truncated" % n)


if __name__ == "__main__":
    unittest.main(verbosity=2)
