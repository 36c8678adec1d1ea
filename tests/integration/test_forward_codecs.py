#!/usr/bin/env python3
"""kmon-forward's HTTP compression codecs end to end (issue 18, target 4).

The real agent and kmon-forward (as nobody) send this test's own execs, made
with a binary of a name only this test uses, to
  - an HTTP server that decodes each POST with the real libraries for what its
    Content-Encoding says: Python's gzip (zlib) for gzip, python3-zstandard
    (libzstd) for zstd, nothing for none; every line must be JSON, and exactly
    the execs made must arrive, for each codec and a non-default level;
  - the real ClickHouse from Debian (18.16): gzip batches are inserted, row
    for row; zstd is refused by that version ("Unknown Content-Encoding",
    HTTP 500) and kmon-forward says so in its log, quoting the server.
Other agents may run on this machine in --scope all: only lines with this
test's binary are counted as the test's, and the totals are checked against
kmon-forward's own counters.
"""
import gzip
import json
import os
import shutil
import subprocess
import threading
import unittest

import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
from agentproc import Agent, Consumer
from servers import ClickHouse, HttpSink
from kmoncase import KmonTestCase
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
EXECS = 150


class DecodingSink:
    """Decodes every POST body by its Content-Encoding with the real library,
    keeps the lines, answers 204 (or 400 when the body does not decode)."""

    def __init__(self):
        self.lines, self.encodings, self.bad = [], set(), []
        self.wire = self.raw = 0
        self.lock = threading.Lock()
        self.http = HttpSink(self.on_post, http11=True)
        self.url = self.http.url

    def on_post(self, headers, body):
        enc = headers.get("Content-Encoding", "none")
        try:
            if enc == "gzip":
                data = gzip.decompress(body)
            elif enc == "zstd":
                data = zstandard.ZstdDecompressor().decompress(body)
            elif enc == "none":
                data = body
            else:
                raise ValueError("unknown Content-Encoding " + enc)
        except Exception as e:  # noqa: BLE001 - any decode failure is the finding
            with self.lock:
                self.bad.append("%s: %s" % (enc, e))
            return 400, b""
        with self.lock:
            self.encodings.add(enc)
            self.wire += len(body)
            self.raw += len(data)
            self.lines += data.decode().splitlines()
        return 204, b""

    def mine(self, marker):
        with self.lock:
            return sum(1 for l in self.lines if marker in l)

    def stop(self):
        self.http.stop()


def counters(c):
    got = [json.loads(l)["counters"] for l in c.log().splitlines()
           if l.startswith('{"counters"')]
    if not got:
        raise AssertionError("kmon-forward printed no counters:\n" + c.log()[-2000:])
    return got[-1]


class ForwardCodecsTest(KmonTestCase):
    # tmp, procs and their reaping: KmonTestCase.

    def execs(self, name, n=EXECS):
        """n execs of a copy of /bin/true called name: the marker of this run."""
        path = os.path.join(self.tmp, name)
        shutil.copy("/bin/true", path)
        for _ in range(n):
            subprocess.run([path], check=True)
        return path

    def agent(self):
        a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0"])
        self.procs.append(a)
        a.wait_attached()
        return a

    def run_forward(self, a, url, extra, name):
        """kmon-forward attached to a, then this run's execs."""
        fwd = Consumer([FORWARD, "--socket", a.socket, "--events", "process_exec", "--once",
                        "--output", url, "--flush-interval", "0.2"] + extra)
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")
        path = self.execs(name)
        return fwd, path

    def test_every_codec_delivers_every_event(self):
        a = self.agent()
        for codec, extra in (("gzip", []), ("gzip9", ["--compress-level", "9"]),
                             ("zstd", ["--compress", "zstd"]),
                             ("zstd-5", ["--compress", "zstd", "--compress-level", "-5"]),
                             ("none", ["--no-gzip"])):
            with self.subTest(codec=codec):
                sink = DecodingSink()
                self.addCleanup(sink.stop)
                fwd, path = self.run_forward(a, sink.url, extra, "t-" + codec)
                marker = '"filename":"%s"' % path
                wait_for(lambda: sink.mine(marker) >= EXECS, 60, "%d execs" % EXECS,
                         lambda: (sink.mine(marker), sink.bad, fwd.log()[-800:]))
                # SIGINT: forward delivers what its ring holds and sends it.
                self.assertEqual(fwd.stop(), 0)
                c = counters(fwd)
                self.assertEqual(sink.bad, [])
                self.assertEqual(sink.encodings, {codec.split("-")[0].rstrip("9")})
                self.assertEqual(sink.mine(marker), EXECS)
                # Everything received was sent and decoded, line for line.
                self.assertEqual(c["lost_in_ring"], 0, c)
                self.assertEqual(c["dropped_in_queue"], 0, c)
                self.assertEqual(c["sent"], c["received"], c)
                self.assertEqual(len(sink.lines), c["sent"], c)
                for line in sink.lines:
                    ev = json.loads(line)
                    self.assertEqual(ev["type"], "process_exec")
                if codec != "none":
                    self.assertLess(sink.wire, sink.raw / 3, "compressed")

    def test_clickhouse_gzip_rows_and_zstd_refused(self):
        ch = ClickHouse().start()
        self.addCleanup(ch.close)
        ch.query("CREATE TABLE events (type String, pid UInt32, filename String) "
                 "ENGINE = MergeTree ORDER BY pid")
        a = self.agent()
        fwd, path = self.run_forward(a, ch.insert_url("events"), ["--compress", "gzip"],
                                     "ch-gz")

        def rows(cond=""):
            return int(ch.query("SELECT count() FROM events" + cond).strip())
        mine = " WHERE filename = '%s'" % path
        wait_for(lambda: rows(mine) == EXECS, 60, "%d rows" % EXECS,
                 lambda: (rows(mine), fwd.log()[-800:]))
        self.assertEqual(fwd.stop(), 0)
        c = counters(fwd)
        self.assertEqual(rows(), c["sent"], c)
        self.assertEqual(c["sent"], c["received"], c)

        # zstd: this ClickHouse does not know it. kmon-forward keeps the batch,
        # retries, and its log quotes why.
        fwd, path = self.run_forward(a, ch.insert_url("events"), ["--compress", "zstd"],
                                     "ch-zstd")
        fwd.wait_for_log("Unknown Content-Encoding of HTTP request: zstd", timeout=30)
        self.assertIn("retrying with backoff", fwd.log())
        self.assertEqual(rows(" WHERE filename = '%s'" % path), 0)
        fwd.stop()
        a.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
