#!/usr/bin/env python3
"""ClickHouse for a whole cluster (issue 17 §2), against the real
clickhouse-server from Debian: the shipped schema (charts/clickhouse/schema.sql
through its documented compatibility step), eight simulated nodes (eight
kmon-forward processes, each with its own --node-name, attached to one real
agent) posting into one server with credentials taken from the environment as
the chart passes a Kubernetes Secret, and the README's example queries
(charts/clickhouse/queries.sql, run verbatim) checked against answers computed
here from the raw rows.

Workload: three pods (real runc containers annotated through the stand-in
kubelet) running a known number of /bin/true execs each.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
import chschema
from agentproc import Agent, Consumer
from chcheck import (MY_PODS, NODES, PODS, check_queries, delivered, last_counters,
                     query_rows, run_execs, start_pods)
from servers import ClickHouse
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
CH_USER, CH_PASSWORD = "kmon", "Zq8-not-on-the-command-line"
USERS_XML = """<?xml version="1.0"?>
<yandex><profiles><default></default></profiles>
<users>
<default><password></password><networks><ip>127.0.0.1</ip></networks>
<profile>default</profile><quota>default</quota></default>
<{u}><password>{p}</password><networks><ip>127.0.0.1</ip></networks>
<profile>default</profile><quota>default</quota></{u}>
</users>
<quotas><default></default></quotas></yandex>
"""


class ClickHouseClusterTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-chc-")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        start_pods(self)
        self.ch = ClickHouse()
        with open(os.path.join(self.ch.dir, "users.xml"), "w") as f:
            f.write(USERS_XML.format(u=CH_USER, p=CH_PASSWORD))
        self.ch.start()
        self.addCleanup(self.ch.close)
        # The chart maps the Secret's key to this variable (forward.clickhouse).
        os.environ["KMON_CLICKHOUSE_PASSWORD"] = CH_PASSWORD

    def tearDown(self):
        os.environ.pop("KMON_CLICKHOUSE_PASSWORD", None)
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_eight_nodes_into_one_server(self):
        ch = self.ch
        chschema.apply(ch)
        a = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0.5"]
                         + self.fk.agent_args())
        self.procs.append(a)
        a.wait_attached()
        wait_for(lambda: "annotating events with pod names" in a.log(), 30, "kubelet answer")

        fwds = {}
        for n in NODES:
            fwd = Consumer([FORWARD, "--socket", a.socket, "--name", "fwd-" + n,
                            "--node-name", n, "--output", chschema.insert_url(ch),
                            "--header", "X-ClickHouse-User: " + CH_USER,
                            "--header-env", "X-ClickHouse-Key=KMON_CLICKHOUSE_PASSWORD",
                            "--flush-interval", "0.5", "--max-queue-bytes", "64M",
                            # Only our pods: this agent also tracks the
                            # containers of other tests on the machine.
                            "--namespace", "shop", "--namespace", "analytics"])
            self.procs.append(fwd)
            fwds[n] = fwd
        for n, fwd in fwds.items():
            fwd.wait_for_log("attached to")
            # The secret is in no process's command line (readable by every
            # user of the node), only in the forward's environment.
            with open("/proc/%d/cmdline" % fwd.proc.pid, "rb") as f:
                self.assertNotIn(CH_PASSWORD.encode(), f.read())

        go = [run_execs(self.containers[pod], i + 1, count)
              for i, (_, pod, count) in enumerate(PODS)]
        for g in go:
            g()

        def true_execs():
            return {(r["node"], r["pod"]): int(r["n"]) for r in query_rows(
                ch, "SELECT node, pod, count() AS n FROM kmon.events "
                "WHERE type = 'process_exec' AND filename = '/bin/true' AND pod IN (%s) "
                "GROUP BY node, pod" % MY_PODS)}
        want = {(n, pod): count for n in NODES for _, pod, count in PODS}
        wait_for(lambda: true_execs() == want, 180, "every node's /bin/true execs in ClickHouse",
                 lambda: (true_execs(), [f.log()[-300:] for f in fwds.values()]))

        # The agent goes; each forward delivers what it holds (on a loaded
        # machine that can take longer than its bound at exit, so wait for it
        # here), then ends: what it sent is what the server stored.
        a.stop()
        for n, fwd in fwds.items():
            fwd.wait_for_log("agent closed the connection", timeout=60)
        wait_for(lambda: all(delivered(f) for f in fwds.values()), 180,
                 "every forward's queue delivered", lambda: [last_counters(f) for f in fwds.values()])
        counters = {}
        for n, fwd in fwds.items():
            fwd.stop()
            counters[n] = last_counters(fwd)
        stored = {r["node"]: int(r["n"]) for r in query_rows(
            ch, "SELECT node, count() AS n FROM kmon.events GROUP BY node")}
        for n in NODES:
            c = counters[n]
            self.assertGreater(c["sent"], sum(p[2] for p in PODS), (n, c))
            self.assertEqual(stored.get(n), c["sent"], "node %s: rows stored != sent %r\n%s"
                             % (n, c, fwds[n].log()[-2000:]))
            self.assertEqual(c["sent"], c["received"], (n, c, fwds[n].log()[-3000:]))
            self.assertEqual(c["dropped_in_queue"], 0, (n, c))
            self.assertEqual(c["lost_in_ring"], 0, (n, c))
        # One agent fed all eight: each node stored the same events.
        self.assertEqual(len(set(stored.values())), 1, stored)
        # Nothing arrived unannotated or under another name. (A free charged
        # back to its owner from an interrupt has pid 0: the freeing context.)
        self.assertEqual(sorted(stored), NODES)
        mine = ", ".join("'%s'" % c.id for c in self.containers.values())
        bad = query_rows(ch, "SELECT * FROM kmon.events WHERE container_id IN (%s) AND "
                         "(pod NOT IN (%s) OR namespace = '' OR container = '' OR "
                         "(pid = 0 AND charged_elsewhere = 0)) LIMIT 5" % (mine, MY_PODS))
        self.assertEqual(bad, [])

        check_queries(self, ch)

    def test_wrong_credentials_are_refused_and_counted(self):
        """A forward with a wrong key: the server refuses it (401), the
        forward says so and counts what it could not deliver."""
        ch = self.ch
        chschema.apply(ch)
        os.environ["KMON_CLICKHOUSE_PASSWORD"] = "wrong"
        a = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0.5"]
                         + self.fk.agent_args())
        self.procs.append(a)
        a.wait_attached()
        fwd = Consumer([FORWARD, "--socket", a.socket, "--node-name", "node-x",
                        "--output", chschema.insert_url(ch),
                        "--header", "X-ClickHouse-User: " + CH_USER,
                        "--header-env", "X-ClickHouse-Key=KMON_CLICKHOUSE_PASSWORD",
                        "--flush-interval", "0.3", "--namespace", "shop"])
        self.procs.append(fwd)
        fwd.wait_for_log("attached to")
        run_execs(self.containers["checkout-1"], 1, 20)()
        wait_for(lambda: "401" in fwd.log(), 60, "the server's 401 in the forward's log",
                 lambda: fwd.log()[-500:])
        a.stop()
        fwd.wait_for_log("agent closed the connection", timeout=60)
        wait_for(lambda: delivered(fwd), 120, "the forward's queue done with",
                 lambda: last_counters(fwd))
        fwd.stop()
        c = last_counters(fwd)
        self.assertEqual(c["sent"], 0, c)
        self.assertGreater(c["received"], 0, c)
        # Every event it could not deliver is counted as dropped.
        self.assertEqual(c["dropped_in_queue"], c["received"], c)
        self.assertGreater(c["dropped_batches"], 0, c)
        self.assertEqual(int(ch.query("SELECT count() FROM kmon.events").strip()), 0)


class ClusterSchemaTest(unittest.TestCase):
    """cluster.sql is schema.sql's tables on ReplicatedMergeTree behind
    Distributed tables: same columns, same rollup, every parameter named in
    its header. (test_clickhouse_distributed.py applies it to a cluster.)"""

    def test_readme_shows_the_tested_queries(self):
        with open(os.path.join(chschema.CHART, "..", "..", "README.md")) as f:
            readme = f.read()
        for q in chschema.queries():
            self.assertIn("```sql\n" + q + ";\n```", readme)

    def test_cluster_schema_is_made_from_the_one_server_schema(self):
        """schema.sql is the one source of the columns and the rollup: the
        shipped cluster.sql is what cluster.sed makes of it."""
        made = subprocess.run(["sed", "-f", os.path.join(chschema.CHART, "cluster.sed"),
                               os.path.join(chschema.CHART, "schema.sql")],
                              check=True, capture_output=True, text=True).stdout
        with open(os.path.join(chschema.CHART, "cluster.sql")) as f:
            shipped = f.read()
        self.assertEqual(shipped, made, "charts/clickhouse/cluster.sql is not what "
                         "`sed -f cluster.sed schema.sql` makes: run it again")

    def test_cluster_schema_follows_the_one_server_schema(self):
        import re
        with open(os.path.join(chschema.CHART, "schema.sql")) as f:
            one = f.read()
        with open(os.path.join(chschema.CHART, "cluster.sql")) as f:
            cl = f.read()

        def block(text, head):
            return text.split(head + "\n(", 1)[1].split("\n)\n", 1)[0]
        self.assertEqual(block(cl, "CREATE TABLE IF NOT EXISTS kmon.events_local ON CLUSTER "
                                   "'${KMON_CLUSTER}'"),
                         block(one, "CREATE TABLE IF NOT EXISTS kmon.events"))
        self.assertEqual(block(cl, "CREATE TABLE IF NOT EXISTS kmon.pod_minutes_local ON CLUSTER "
                                   "'${KMON_CLUSTER}'"),
                         block(one, "CREATE TABLE IF NOT EXISTS kmon.pod_minutes"))
        mv = one.split("TO kmon.pod_minutes AS\n", 1)[1].replace("kmon.events", "kmon.events_local")
        self.assertIn(mv, cl)
        used = set(re.findall(r"\$\{(\w+)\}", cl.split("\nCREATE", 1)[1]))
        header = cl.split("\nCREATE", 1)[0]
        self.assertEqual(used, {"KMON_CLUSTER", "KMON_ZK_PATH", "KMON_TTL_DAYS",
                                "KMON_ROLLUP_TTL_DAYS", "KMON_SHARD_KEY"})
        for p in used:
            self.assertIn("--   ${%s}" % p, header, "parameter %s not documented" % p)
        # The compatibility step applies to it as to schema.sql.
        out = subprocess.run(["sed", "-f", chschema.COMPAT, os.path.join(chschema.CHART, "cluster.sql")],
                             check=True, capture_output=True, text=True).stdout
        self.assertNotIn("DateTime64", out)
        self.assertNotIn("\nTTL ", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
