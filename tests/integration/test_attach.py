#!/usr/bin/env python3
"""Attaching consumers on the real kernel (issue 13): an attach builds the new
consumer's ring and its history replay without holding up the drain, and the
replay meets the live events exactly; and /metrics lists every consumer up to
--max-consumers, not only the first 64.

The ground truth is a consumer attached before a paced kmalloc flood that
loses nothing: every event the agent drained, in order. Each late consumer's
stream (replay, then live) must be a slice of it: replayed records first, no
duplicate, no event missing between the replay and the live events.
"""
import os
import re
import struct
import subprocess
import sys
import time
import unittest

from agentproc import Consumer
from kmoncase import KmonTestCase
from servers import free_port, http_get, promtool_problems

FLOOD = os.environ.get("KMON_FLOOD", "kmalloc_flood")
TC = os.environ.get("KMON_TESTCONSUMER", "testconsumer")
REPLAY = 8 << 20


def read_dump(path):
    """As testconsumer --dump wrote them: events as (identity hash, seq,
    replayed) and LOST reports as (0, count, None), in arrival order."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for h, s in struct.iter_unpack("<QQ", data):
        out.append((h, s, None) if h == 0 else (h, s & ~(1 << 63), bool(s >> 63)))
    return out


class AttachTest(KmonTestCase):
    TMP_MODE = 0o777  # the consumers (user nobody) write their dumps here

    @staticmethod
    def walk(stream, pos, items):
        """None if items, from stream[pos] on, are the stream's events in
        order with each LOST report of n standing for exactly n of them;
        else where they part."""
        skipped = 0
        for j, (h, n, rep) in enumerate(items):
            if not h:
                pos += n
                skipped += n
                continue
            if pos >= len(stream) or stream[pos][0] != h:
                return ("record %d of %d (replayed: %s, %d lost before it) is not the "
                        "steady stream's next event" % (j, len(items), rep, skipped))
            pos += 1
        return None

    def test_replaying_attaches_under_flood_meet_live_events_exactly(self):
        a = self.agent("--history-bytes", "8M", "--max-ring-size", "64M")
        truth = os.path.join(self.tmp, "steady.bin")
        steady = self.consumer(a, "steady", "--ring-size", str(64 << 20), "--dump", truth)
        # Two flood threads paced well below what the drain and a consumer
        # sustain on this machine, so the steady consumer loses nothing and
        # any loss is the attaches' doing.
        flood = subprocess.Popen([FLOOD, str(10 ** 12), "2", "--rate=50000"],
                                 stdout=subprocess.DEVNULL)
        self.procs.append(flood)
        time.sleep(2.0)  # a full history before the first late consumer
        lates = []
        for i in range(6):
            self.assertIsNone(flood.poll(), "the flood stopped")
            name = "late%d" % i
            dump = os.path.join(self.tmp, name + ".bin")
            c = self.consumer(a, name, "--ring-size", str(16 << 20), "--replay", str(REPLAY),
                              "--dump", dump)
            time.sleep(0.3)
            c.stop()
            lates.append((name, c, dump))
        flood.kill()
        flood.wait()
        time.sleep(0.5)
        self.assertEqual(a.stop(), 0)
        steady.wait_for_log("agent closed the connection", timeout=120)
        steady.stop()

        # The honest consumer lost nothing while the others attached.
        rs = steady.result()
        d = a.consumer_log("steady")[0]
        self.assertEqual(d["delivered"] + d["lost"], d["produced"], d)
        self.assertEqual(rs["lost"], 0, "the steady consumer lost events while others attached")
        self.assertEqual(rs["seq_errors"], 0, rs)
        self.assertEqual(rs["events"], d["delivered"])
        stream = read_dump(truth)
        self.assertEqual(len(stream), rs["events"])
        self.assertTrue(all(h for h, _, _ in stream))
        # Two kernel events can look the same (a kmalloc loop reusing one
        # pointer within one clock tick), so an identity may have several
        # places; the walk below compares whole sequences.
        where = {}
        for i, (h, _, _) in enumerate(stream):
            where.setdefault(h, []).append(i)

        for name, c, dump in lates:
            r = c.result()
            logs = a.consumer_log(name)
            self.assertEqual(len(logs), 1, a.log())
            d = logs[0]
            self.assertEqual(d["delivered"] + d["lost"], d["produced"], (name, d))
            self.assertEqual(r["seq_errors"], 0, (name, r))
            self.assertEqual(r["replay_after_live"], 0, (name, r))
            self.assertGreater(r["replay"], 10000, (name, r))
            self.assertGreater(r["events"], r["replay"], "%s got no live event" % name)
            items = read_dump(dump)
            evs = [it for it in items if it[2] is not None]
            self.assertEqual(len(evs), r["events"])
            self.assertEqual(sum(n for h, n, _ in items if not h), r["lost"])
            # Replayed records first, then live ones.
            flags = [rep for _, _, rep in evs]
            k = flags.index(False)
            self.assertTrue(all(flags[:k]) and not any(flags[k:]), name)
            # History from before the steady consumer attached is not in its
            # stream; from the first event it has on, the late stream is the
            # steady one, in the same order, where a LOST report of n stands
            # for exactly the next n events: no gap, no duplicate.
            first = next(i for i, it in enumerate(items) if it[0] in where)
            self.assertTrue(all(it[2] is not False for it in items[:first]), name)
            errors = []
            for start in where[items[first][0]]:
                e = self.walk(stream, start, items[first:])
                if e is None:
                    break
                errors.append(e)
            else:
                self.fail("%s (%d replayed in all): %s" % (name, k, errors[0]))
            print("%s: %d replayed, %d live, %d lost" % (name, k, len(evs) - k, r["lost"]),
                  file=sys.stderr)
        stall = a.totals["max_batch_ns"] / 1e6
        print("longest drain batch while 6 consumers attached with %d MiB of replay: %.2f ms"
              % (REPLAY >> 20, stall), file=sys.stderr)

    def test_metrics_lists_every_consumer(self):
        port = free_port()
        # All 70 run as nobody: the per-uid limit (8 by default) must allow them.
        a = self.agent("--max-consumers", "100", "--max-consumers-per-uid", "100",
                       "--max-pending-per-uid", "100", "--metrics-addr", "127.0.0.1:%d" % port)
        names = ["m%02d" % i for i in range(69)] + ['q"\\x']
        for n in names:
            c = Consumer([TC, "--socket", a.socket, "--name", n, "--ring-size", "65536"])
            self.consumers.append(c)
        # Under load a consumer may give up on a slow reply and reconnect:
        # wait until the agent says all 70 are attached at once.
        deadline = time.monotonic() + 180
        while True:
            log = a.log()
            if log.count("' attached: ") - log.count(") detached: ") == len(names):
                break
            self.assertLess(time.monotonic(), deadline, log[-3000:])
            for c in self.consumers:
                self.assertIsNone(c.proc.poll(), c.log())
            time.sleep(0.5)
        body = http_get("http://127.0.0.1:%d/metrics" % port)
        self.assertIn("\nkmon_consumers 70\n", body)
        self.assertEqual(promtool_problems(body), "")
        ids = set()
        for fam in ("kmon_consumer_delivered_total", "kmon_consumer_dropped_total",
                    "kmon_consumer_ring_fill_ratio"):
            rows = re.findall(r'^%s\{consumer="((?:[^"\\]|\\.)*)",id="(\d+)"\} ' % fam, body,
                              re.M)
            self.assertEqual(len(rows), 70, "%s lists %d consumers of 70" % (fam, len(rows)))
            ids |= {int(i) for _, i in rows}
            self.assertIn('q\\"\\\\x', [n for n, _ in rows], "hostile name not escaped")
        self.assertEqual(len(ids), 70)
        for c in self.consumers:
            c.stop()
        self.assertEqual(a.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
