#!/usr/bin/env python3
"""Fan-out tests on the real kernel (issue 3): the agent's shared-memory rings
with real consumers running as user nobody, real BPF events, exact per-consumer
accounting, consumers dying and misbehaving.
"""
import json
import os
import signal
import struct
import subprocess
import time
import unittest

from agentproc import Agent, Consumer
from kmoncase import KmonTestCase

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FLOOD = os.environ.get("KMON_FLOOD", "kmalloc_flood")
TC = os.environ.get("KMON_TESTCONSUMER", "testconsumer")
HELLO_SIZE = 4 + 2 + 2 + 4 + 4 + 8 + 8 + 64 + 16 * 64


def hello(version=4, mask=0, flags=0, ring=0, replay=0, name=b"raw", n_ns=0, magic=0x4e4f4d4b):
    body = struct.pack("<IHHIIQQ", magic, version, n_ns, mask, flags, ring, replay)
    body += name.ljust(64, b"\0")[:64] + b"\0" * (16 * 64)
    assert len(body) == HELLO_SIZE
    return body


def read_file(path):
    with open(path) as f:
        return f.read()


def flood(n, threads=1):
    out = subprocess.run([FLOOD, str(n), str(threads)], check=True, capture_output=True,
                         text=True).stdout
    return int(out.split("=")[1])


class FanoutTest(KmonTestCase):
    # The fan-out's accounting is what is checked, against floods of kmalloc:
    # the slab events those syscalls also raise (on by default) would double
    # the BPF ring's load and turn "saw every kmalloc" into a race with the
    # kernel's drops on a slow (sanitizer) build.
    AGENT_ARGS = KmonTestCase.AGENT_ARGS + ("--events", "memory_alloc,memory_free,process_exec")

    def stop_all(self, a, *consumers):
        """Agent first: its last LOST reports reach the consumers, which read
        their rings to the end before they are stopped."""
        a.stop()
        for c in consumers:
            c.wait_for_log("agent closed the connection", timeout=120)
            c.stop()

    def assert_exact(self, a, c, name):
        """delivered + lost == produced, seen from both sides."""
        r = c.result()
        logs = a.consumer_log(name)
        self.assertEqual(len(logs), 1, "agent logged no detach line for %s:\n%s" % (name, a.log()))
        d = logs[0]
        self.assertEqual(d["delivered"] + d["lost"], d["produced"], d)
        self.assertEqual(r["events"], d["delivered"], "consumer %s received %s, agent delivered %s"
                         % (name, r["events"], d["delivered"]))
        self.assertEqual(r["lost"], d["lost"], "consumer %s was told of %s lost, agent counted %s"
                         % (name, r["lost"], d["lost"]))
        self.assertEqual(r["seq_errors"], 0, r)
        return r, d

    def test_sighup_stops_the_agent_cleanly(self):
        """An agent run by hand whose terminal goes away detaches and reports
        its totals, as on SIGTERM, instead of dying mid-batch."""
        a = self.agent()
        c = self.consumer(a, "hup")
        a.proc.send_signal(signal.SIGHUP)
        self.assertEqual(a.proc.wait(timeout=10), 0, a.log()[-2000:])
        self.assertIn("received Hangup, detaching", a.log())
        self.assertIn('{"totals"', a.log())
        # The consumer saw the agent go, as on any clean stop.
        c.wait_for_log("agent closed the connection")

    def test_slow_consumer_gets_lost_records_and_exact_counts(self):
        a = self.agent()
        slow = self.consumer(a, "slow", "--ring-size", "16384", "--slow-us", "300")
        fast = self.consumer(a, "fast", "--ring-size", str(32 << 20))
        flood(200000)
        time.sleep(1.0)
        self.stop_all(a, slow, fast)
        rs, ds = self.assert_exact(a, slow, "slow")
        self.assertGreater(rs["lost"], 0, "a consumer sleeping 300us per event must lose some")
        self.assertGreater(rs["lost_reports"], 0)
        rf, df = self.assert_exact(a, fast, "fast")
        self.assertEqual(rf["lost"], 0, "the fast consumer must not pay for the slow one")
        self.assertGreaterEqual(rf["memory_alloc"], 200000,
                                "the fast consumer saw every kmalloc of the flood")

    def test_three_consumers_one_killed(self):
        a = self.agent()
        big = str(64 << 20)
        c1 = self.consumer(a, "one", "--ring-size", big)
        flood(20000)
        c2 = self.consumer(a, "two", "--ring-size", big)
        flood(20000)
        victim = self.consumer(a, "victim", "--ring-size", big)
        with open("/proc/%d/maps" % a.proc.pid) as f:
            maps = f.read()
        self.assertIn("kmon-ring-3-victim", maps)
        flood(20000)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        a.wait_for_log("'victim'")
        flood(20000)
        self.assertIsNone(a.proc.poll(), "agent died with a consumer")
        # The dead consumer's shared memory is gone from the agent.
        deadline = time.monotonic() + 5
        while "kmon-ring-3-victim" in read_file("/proc/%d/maps" % a.proc.pid):
            self.assertLess(time.monotonic(), deadline, "victim's ring still mapped")
            time.sleep(0.1)
        fds = os.listdir("/proc/%d/fd" % a.proc.pid)
        links = [os.readlink("/proc/%d/fd/%s" % (a.proc.pid, f)) for f in fds]
        self.assertFalse([l for l in links if "victim" in l], links)
        self.stop_all(a, c1, c2)
        r1, _ = self.assert_exact(a, c1, "one")
        r2, _ = self.assert_exact(a, c2, "two")
        self.assertEqual(r1["lost"], 0)
        self.assertEqual(r2["lost"], 0)
        # One attached first: it saw all four floods, two saw three.
        self.assertGreaterEqual(r1["memory_alloc"], 80000)
        self.assertGreaterEqual(r2["memory_alloc"], 60000)
        self.assertGreater(r1["memory_alloc"], r2["memory_alloc"])

    def test_hostile_consumer_is_detached_others_unaffected(self):
        a = self.agent()
        good = self.consumer(a, "good", "--ring-size", str(32 << 20))
        for mode in ["huge", "max", "rand"]:
            h = Consumer([TC, "hostile", a.socket, mode])
            self.consumers.append(h)
            t0 = time.monotonic()
            # Keep events flowing so the agent looks at the position.
            while h.proc.poll() is None and time.monotonic() - t0 < 60:
                flood(2000)
            self.assertEqual(h.proc.wait(timeout=60), 0, h.log())
            out = [json.loads(l) for l in h.output().splitlines()]
            self.assertFalse(out[0]["data_writable"], "a consumer could map its ring writable")
            self.assertFalse(out[0]["ctl_truncatable"], "a consumer could resize its ctl page")
            self.assertGreaterEqual(out[-1]["detached_after"], 0,
                                    "agent never detached the hostile consumer (%s)" % mode)
        self.assertIn("wrote an invalid ring position", a.log())
        self.assertIsNone(a.proc.poll())
        flood(10000)
        self.stop_all(a, good)
        r, _ = self.assert_exact(a, good, "good")
        self.assertEqual(r["lost"], 0)

    def test_hello_validation(self):
        a = self.agent("--max-consumers", "1", "--max-ring-size", "1M")
        cases = [
            (hello(version=7), 2, "protocol version 7 not supported"),
            (hello()[:100], 1, "hello of 100 bytes"),
            (hello() + b"x", 1, "expected %d" % HELLO_SIZE),
            (hello(magic=1), 1, "not a kmon hello"),
            (hello(ring=4 << 20), 3, "above the agent's limit"),
            (hello(ring=5000), 1, "not a power of two"),
            (hello(name=b""), 1, "consumer name"),
            (hello(flags=8), 1, "unknown hello flags"),
            (hello(mask=1 << 9), 1, "unknown event types"),
            (hello(n_ns=40), 1, "namespaces, at most"),
        ]
        for i, (msg, status, text) in enumerate(cases):
            path = os.path.join(self.tmp, "hello%d" % i)
            with open(path, "wb") as f:
                f.write(msg)
            os.chmod(path, 0o644)
            out = subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                                  "--clear-groups", TC, "raw-hello", a.socket, path],
                                 capture_output=True, text=True, timeout=30)
            r = json.loads(out.stdout)
            self.assertEqual(r["status"], status, (text, r))
            self.assertIn(text, r["error"])
            self.assertEqual(r["fds"], 0)
        c = self.consumer(a, "first")
        # The limit is one consumer: the next is refused with a clear reason.
        second = Consumer([TC, "--socket", a.socket, "--name", "second", "--once"])
        self.consumers.append(second)
        second.proc.wait(timeout=30)
        self.assertIn("maximum of consumers", second.log())
        c.stop()
        self.assertIsNone(a.proc.poll())
        a.stop()

    def test_wrong_socket_path_is_a_clear_error(self):
        c = Consumer([TC, "--socket", "/nonexistent/kmon.sock", "--once"])
        self.consumers.append(c)
        c.proc.wait(timeout=30)
        self.assertIn("cannot connect to /nonexistent/kmon.sock", c.log())

    def test_replay_for_late_consumer(self):
        a = self.agent("--history-bytes", "8M")
        name = "replay-marker-%d" % os.getpid()
        path = os.path.join(self.tmp, name)
        os.symlink("/bin/true", path)
        for _ in range(5):
            subprocess.run([path], check=True)
        time.sleep(0.5)
        late = self.consumer(a, "late", "--replay", str(8 << 20), "--mask", "0x8")
        time.sleep(0.5)
        late.stop()
        a.stop()
        r = late.result()
        self.assertGreaterEqual(r["replay"], 5, "execs from before attach were not replayed")
        self.assertEqual(r["memory_alloc"], 0, "mask 0x8 asks for process_exec only")
        self.assertEqual(r["lost"], 0)

    def test_agent_restart_consumer_reconnects(self):
        a = self.agent()
        c = self.consumer(a, "stay", "--ring-size", str(8 << 20))
        sock = a.socket
        a.stop()
        c.wait_for_log("agent closed the connection")
        a2 = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0", "--socket", sock,
                           "--socket-group", "nogroup"])
        self.agents.append(a2)
        a2.wait_attached()
        deadline = time.monotonic() + 20
        while "consumer 1 'stay' attached" not in a2.log():
            self.assertLess(time.monotonic(), deadline, "consumer did not reconnect:\n" + c.log())
            time.sleep(0.1)
        flood(1000)
        c.stop()
        a2.stop()
        self.assertEqual(c.result()["reconnects"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
