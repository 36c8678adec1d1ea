#!/usr/bin/env python3
"""The consumers against real servers (issue 5, and the agent endpoints of
issue 6): agent -> kmon-forward -> the real ClickHouse from Debian (HTTP,
gzip'd JSONEachRow), including an outage; agent -> kmon-aggregate and the
agent's own /metrics scraped by the real Prometheus from Debian. Workloads run
in real runc containers annotated through the stand-in kubelet.
"""
import json
import os
import subprocess
import time
import unittest

from agentproc import Agent, Consumer
from cluster import Cluster
from kmoncase import KmonTestCase
from servers import (ClickHouse, HttpSink, Prometheus, free_port, http_get,
                     promtool_problems)
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
AGGREGATE = os.environ.get("KMON_AGGREGATE", "kmon-aggregate")

class ConsumersTest(KmonTestCase):
    # tmp, procs and their reaping: KmonTestCase.

    def agent(self, cluster, *extra):
        a = Agent(AGENT, cluster.agent_args() + list(extra))
        self.procs.append(a)
        a.wait_attached()
        a.wait_for_log("kubelet https://127.0.0.1", timeout=30)
        return a

    def annotated_ready(self, a, cluster):
        # Metadata is in place before the workload starts.
        wait_for(lambda: "annotating events with pod names" in a.log(), 30, "kubelet answer")

    def test_forward_to_clickhouse_with_outage(self):
        cl = Cluster(self.tmp, "shop", "checkout-1", "true")
        self.addCleanup(cl.close)
        ch = ClickHouse().start()
        self.addCleanup(ch.close)
        ch.query("CREATE TABLE events (type String, timestamp UInt64, time String, pid UInt32, "
                 "comm String, size UInt64, filename String, container_id String, "
                 "pod String, namespace String, container String, node String) "
                 "ENGINE = MergeTree ORDER BY timestamp")
        a = self.agent(cl)
        self.annotated_ready(a, cl)
        fwd = Consumer([FORWARD, "--socket", a.socket, "--events", "process_exec",
                        "--output", ch.insert_url("events"), "--flush-interval", "0.3",
                        "--max-queue-bytes", "16M"])
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")

        def rows(cond=""):
            return int(ch.query("SELECT count() FROM events" + cond).strip())

        mine = " WHERE filename = '/bin/true' AND pod = 'checkout-1' AND namespace = 'shop'"
        cl.run_execs(300)
        wait_for(lambda: rows(mine) == 300, 60, "300 execs in ClickHouse")

        # ClickHouse goes away mid-stream, comes back a few seconds later.
        ch.stop()
        cl.run_execs(200)
        time.sleep(4)
        fwd.wait_for_log("retrying with backoff")
        ch.start()
        wait_for(lambda: rows(mine) == 500, 90, "the queued execs after the outage",
                 lambda: (rows(mine), rows(), fwd.log()[-1500:]))
        a.stop()
        fwd.wait_for_log("agent closed the connection")
        fwd.stop()
        counters = [json.loads(l)["counters"] for l in fwd.log().splitlines()
                    if l.startswith('{"counters"')][-1]
        self.assertEqual(counters["dropped_in_queue"], 0, counters)
        self.assertEqual(counters["lost_in_ring"], 0, counters)
        self.assertGreater(counters["retried"], 0, counters)
        self.assertEqual(rows(), counters["sent"], "rows in ClickHouse != kmon-forward's sent")
        self.assertEqual(counters["sent"], counters["received"], counters)
        # Every row is a well-formed event of this node.
        bad = ch.query("SELECT count() FROM events WHERE type != 'process_exec' OR pid = 0 "
                       "OR container_id = ''").strip()
        self.assertEqual(bad, "0")

    def test_forward_queue_overflow_is_counted_exactly(self):
        cl = Cluster(self.tmp, "shop", "burst-1", "true")
        self.addCleanup(cl.close)
        ch = ClickHouse().start()
        self.addCleanup(ch.close)
        ch.query("CREATE TABLE events (type String, pid UInt32, filename String, pod String) "
                 "ENGINE = MergeTree ORDER BY pid")
        a = self.agent(cl)
        self.annotated_ready(a, cl)
        fwd = Consumer([FORWARD, "--socket", a.socket, "--events", "process_exec",
                        "--output", ch.insert_url("events"), "--flush-interval", "0.2",
                        "--batch-lines", "20", "--max-queue-bytes", "4K"])
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")
        ch.stop()
        cl.run_execs(400)
        time.sleep(3)
        ch.start()
        time.sleep(4)
        a.stop()
        fwd.wait_for_log("agent closed the connection")
        fwd.stop()
        counters = [json.loads(l)["counters"] for l in fwd.log().splitlines()
                    if l.startswith('{"counters"')][-1]
        rows = int(ch.query("SELECT count() FROM events").strip())
        self.assertGreater(counters["dropped_in_queue"], 0, counters)
        self.assertEqual(rows, counters["sent"], counters)
        self.assertEqual(counters["sent"] + counters["dropped_in_queue"], counters["received"],
                         counters)

    def test_aggregate_and_agent_metrics_in_prometheus(self):
        cl = Cluster(self.tmp, "analytics", "report-7", "hostname")
        self.addCleanup(cl.close)
        agent_port, agg_port = free_port(), free_port()
        a = self.agent(cl, "--metrics-addr", "127.0.0.1:%d" % agent_port)
        self.annotated_ready(a, cl)
        agg = Consumer([AGGREGATE, "--socket", a.socket,
                        "--listen", "127.0.0.1:%d" % agg_port])
        self.procs.append(agg)
        agg.wait_for_log("attached to")
        cl.run_execs(57)
        prom = Prometheus({"kmon-agent": "127.0.0.1:%d" % agent_port,
                           "kmon-aggregate": "127.0.0.1:%d" % agg_port}).start()
        self.addCleanup(prom.close)
        sel = '{namespace="analytics",pod="report-7",container="app"}'

        def value(q):
            r = prom.query(q)
            return float(r[0]["value"][1]) if r else None

        wait_for(lambda: value('kmon_exec_filename_total{namespace="analytics",pod="report-7",'
                               'container="app",filename="/bin/hostname"}') == 57, 60,
                 "57 hostname execs in Prometheus",
                 lambda: (prom.query("kmon_exec_filename_total"), agg.log()[-500:],
                          http_get("http://127.0.0.1:%d/metrics" % agg_port)[-1500:]))
        self.assertGreaterEqual(value("kmon_exec_total" + sel), 57)
        self.assertGreater(value("kmon_alloc_total" + sel), 0)
        self.assertGreater(value("kmon_alloc_bytes_total" + sel), 0)
        wait_for(lambda: value('up{job="kmon-agent"}') == 1, 30, "agent scraped")
        self.assertEqual(value('up{job="kmon-aggregate"}'), 1)
        self.assertEqual(value('kmon_ready{job="kmon-agent"}'), 1)
        self.assertGreaterEqual(value('kmon_consumers{job="kmon-agent"}'), 1)
        self.assertGreaterEqual(value('kmon_tracked_pids{job="kmon-agent"}'), 1)
        self.assertEqual(value('kmon_kernel_dropped_total{type="process_exec"}'), 0)
        t = prom.targets()
        health = {x["labels"]["job"]: x["health"] for x in t["data"]["activeTargets"]}
        self.assertEqual(health, {"kmon-agent": "up", "kmon-aggregate": "up"}, t)
        # The agent's probes.
        self.assertEqual(http_get("http://127.0.0.1:%d/healthz" % agent_port), "ok\n")
        self.assertEqual(http_get("http://127.0.0.1:%d/readyz" % agent_port), "ready\n")
        # Both expositions are valid text format, whatever Prometheus tolerates.
        for port in (agent_port, agg_port):
            body = http_get("http://127.0.0.1:%d/metrics" % port)
            self.assertEqual(promtool_problems(body), "", body[-3000:])

    def test_forward_http_headers_gzip_and_4xx(self):
        """What a collector behind kmon-forward receives: gzip'd NDJSON with
        the user's headers; a 4xx answer drops the batch, counted, said once."""
        import gzip
        got, status = [], [200]

        def on_post(headers, body):
            got.append((dict(headers), body))
            return status[0], b""

        srv = HttpSink(on_post)
        self.addCleanup(srv.stop)
        a = Agent(AGENT, ["--scope", "all", "--rescan-interval", "0"])
        self.procs.append(a)
        a.wait_attached()
        fwd = Consumer([FORWARD, "--socket", a.socket, "--events", "process_exec",
                        "--output", srv.url,
                        "--header", "Authorization: Bearer s3cret", "--header", "X-Tenant: t1",
                        "--flush-interval", "0.2"])
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")
        marker = os.path.join(self.tmp, "http-marker")
        os.symlink("/bin/true", marker)
        subprocess.run([marker], check=True)
        wait_for(lambda: any(b"http-marker" in gzip.decompress(b) for _, b in got), 30,
                 "the marker exec at the sink")
        h, body = got[0]
        self.assertEqual(h.get("Content-Encoding"), "gzip")
        self.assertEqual(h.get("Content-Type"), "application/x-ndjson")
        self.assertEqual(h.get("Authorization"), "Bearer s3cret")
        self.assertEqual(h.get("X-Tenant"), "t1")
        for _, b in got:
            for line in gzip.decompress(b).decode().splitlines():
                self.assertEqual(json.loads(line)["type"], "process_exec")
        status[0] = 400
        n = len(got)
        for _ in range(3):
            subprocess.run([marker], check=True)
            wait_for(lambda: len(got) > n, 30, "a batch answered 400")
            n = len(got)
            time.sleep(0.3)
        fwd.wait_for_log("answered HTTP 400; dropping the batch")
        self.assertEqual(fwd.log().count("answered HTTP 400"), 1, fwd.log())
        a.stop()
        fwd.wait_for_log("agent closed the connection")
        fwd.stop()
        c = [json.loads(l)["counters"] for l in fwd.log().splitlines()
             if l.startswith('{"counters"')][-1]
        self.assertGreaterEqual(c["dropped_batches"], 3, c)
        self.assertEqual(c["sent"] + c["dropped_in_queue"], c["received"], c)

    def test_consumers_never_preempt_the_workload(self):
        """Unprivileged consumers switch themselves to SCHED_BATCH (a record
        arriving does not take the CPU from what runs there); --sched normal
        keeps SCHED_OTHER; a bad value is named."""
        sock = os.path.join(self.tmp, "none.sock")  # no agent: they keep retrying
        for argv, policy in (([FORWARD], os.SCHED_BATCH),
                             ([AGGREGATE, "--listen", "127.0.0.1:0"], os.SCHED_BATCH),
                             ([FORWARD, "--sched", "normal"], os.SCHED_OTHER),
                             ([AGGREGATE, "--listen", "127.0.0.1:0", "--sched", "normal"],
                              os.SCHED_OTHER)):
            c = Consumer(argv + ["--socket", sock])
            self.procs.append(c)
            c.wait_for_log("cannot connect")
            self.assertEqual(os.sched_getscheduler(c.proc.pid), policy, argv)
            self.assertNotIn("SCHED_BATCH", c.log())
            c.stop()
        for prog in (FORWARD, AGGREGATE):
            out = subprocess.run([prog, "--sched", "fast"], capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(out.returncode, 2)
            self.assertIn("--sched: 'fast' is not batch or normal", out.stderr)

    def test_wrong_socket_and_refused_hello(self):
        out = subprocess.run([FORWARD, "--socket", "/nonexistent/k.sock", "--once"],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("cannot connect to /nonexistent/k.sock", out.stderr)
        out = subprocess.run([FORWARD, "--output", "-", "--flush-interval", "0"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2)
        self.assertIn("--flush-interval", out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
