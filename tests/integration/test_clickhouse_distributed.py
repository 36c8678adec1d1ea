#!/usr/bin/env python3
"""The ClickHouse cluster variant (issue 17 §2) applied to a real cluster:
ZooKeeper from Debian and two clickhouse-server instances from Debian as two
shards of one replica each (cluster `kmon`), configured as
charts/clickhouse/README.md tells users (remote_servers, zookeeper, macros,
distributed_ddl, interserver_http_*), and the SHIPPED cluster.sql applied the
way that README says: `sed -f compat-18.16.sed | envsubst | clickhouse-client
--multiquery` on one server, ON CLUSTER doing the rest.

Why two shards rather than one shard of two replicas: the Distributed table
then really routes rows by the shipped sharding key (cityHash64(namespace,
pod)) to a local and a remote shard, and every table is a
Replicated*MergeTree registered in ZooKeeper (ON CLUSTER DDL, block
deduplication); fetching parts between replicas is what this layout leaves
out.

Eight simulated nodes (eight kmon-forward processes with their own
--node-name, attached to one real agent) post into kmon.events, four through
each server. Asserted: for every node, rows read through the Distributed
table on each server == that forward's `sent` exactly, and == the sum of the
rows in the two shards' local tables; every row sits on the shard its key
names, and both shards hold some; the materialized-view rollup (through the
Distributed kmon.pod_minutes and in each shard's pod_minutes_local) equals
the rollup computed here from the raw rows; the example queries
(queries.sql, verbatim) give the answers computed from the raw rows, on both
servers.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import chschema
from chcheck import (MY_PODS, NODES, PODS, check_queries, delivered, last_counters,
                     query_rows, run_execs, start_pods)
from agentproc import Agent, Consumer
from servers import ClickHouse, ZooKeeper, free_port
from waits import wait_for

AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
CLUSTER = "kmon"
# cluster.sql's parameters, as the README's envsubst example sets them.
PARAMS = {"KMON_CLUSTER": CLUSTER, "KMON_ZK_PATH": "/clickhouse/tables/kmon",
          "KMON_TTL_DAYS": "30", "KMON_ROLLUP_TTL_DAYS": "365",
          "KMON_SHARD_KEY": "cityHash64(namespace, pod)"}

# What charts/clickhouse/README.md tells users to put in each server's
# config.d/ (the values a user changes are the hosts, ports, macros).
CLUSTER_XML = """<?xml version="1.0"?>
<yandex>
  <remote_servers>
    <kmon>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>{tcp1}</port></replica>
      </shard>
      <shard>
        <internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>{tcp2}</port></replica>
      </shard>
    </kmon>
  </remote_servers>
  <zookeeper>
    <node><host>127.0.0.1</host><port>{zk}</port></node>
  </zookeeper>
  <macros><shard>{shard}</shard><replica>{replica}</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>{inter}</interserver_http_port>
</yandex>
"""
# ON CLUSTER DDL runs in each server's DDL worker with the server's default
# profile, not the client's settings: on 18.16 LowCardinality columns need
# the setting there (the README's step for 18.16 clusters). The forwards log
# in as `default`: its profile answers an insert into the Distributed table
# once the shards have the rows (the README's advice for the forwards' user).
USERS_XML = """<?xml version="1.0"?>
<yandex>
  <profiles><default>
    <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
    <insert_distributed_sync>1</insert_distributed_sync>
  </default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"""


def apply_cluster_sql(ch):
    """cluster.sql exactly as the README's commands apply it."""
    sql = os.path.join(chschema.CHART, "cluster.sql")
    cmd = ("sed -f %s %s | envsubst | clickhouse-client --port %d "
           "--allow_experimental_low_cardinality_type=1 --multiquery"
           % (chschema.COMPAT, sql, ch.tcp)) if chschema.needs_compat(ch) else \
        ("envsubst < %s | clickhouse-client --port %d --multiquery" % (sql, ch.tcp))
    return subprocess.run(cmd, shell=True, env=dict(os.environ, **PARAMS),
                          capture_output=True, text=True, timeout=300)


def zk_ready(ch):
    try:
        return int(ch.query("SELECT count() FROM system.zookeeper WHERE path = '/'")) > 0
    except OSError:
        return False


def rollup_of(raw):
    """pod_minutes as the materialized view defines it, from raw rows."""
    out = {}
    for r in raw:
        k = (r["minute"], r["node"], r["namespace"], r["pod"], r["container"])
        e = out.setdefault(k, [0] * 7)
        t, size = r["type"], int(r["size"])
        e[0] += 1
        e[1] += t == "process_exec"
        if t in ("memory_alloc", "slab_alloc"):
            e[2] += 1
            e[3] += size
        if t in ("memory_free", "slab_free"):
            e[4] += 1
            e[5] += size
        e[6] += t == "oom_kill"
    return out


RAW_Q = ("SELECT type, toString(toStartOfMinute(time)) AS minute, node, namespace, pod, "
         "container, size FROM kmon.%s")
ROLLUP_Q = ("SELECT toString(minute) AS minute, node, namespace, pod, container, "
            "sum(events) AS a, sum(execs) AS b, sum(allocs) AS c, sum(alloc_bytes) AS d, "
            "sum(frees) AS e, sum(freed_bytes) AS f, sum(oom_kills) AS g FROM kmon.%s "
            "GROUP BY minute, node, namespace, pod, container")


class ClickHouseDistributedTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kmon-chd-")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        start_pods(self)

        self.zk = ZooKeeper().start()
        self.addCleanup(self.zk.stop)
        self.chs = [ClickHouse(), ClickHouse()]
        for i, ch in enumerate(self.chs):
            os.makedirs(os.path.join(ch.dir, "config.d"))
            with open(os.path.join(ch.dir, "config.d", "kmon-cluster.xml"), "w") as f:
                f.write(CLUSTER_XML.format(tcp1=self.chs[0].tcp, tcp2=self.chs[1].tcp,
                                           zk=self.zk.port, shard="%02d" % (i + 1),
                                           replica="ch%d" % (i + 1), inter=free_port()))
            with open(os.path.join(ch.dir, "users.xml"), "w") as f:
                f.write(USERS_XML)
        for ch in self.chs:
            self.addCleanup(ch.close)  # its data too, even if it does not start
            ch.start()
        # Each server has a ZooKeeper session before any ON CLUSTER DDL.
        for i, ch in enumerate(self.chs):
            wait_for(lambda: zk_ready(ch), 60, "server %d's ZooKeeper session" % (i + 1),
                     lambda: ch.log()[-2000:])

    def tearDown(self):
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_eight_nodes_into_a_two_shard_cluster(self):
        r = apply_cluster_sql(self.chs[0])
        self.assertEqual(r.returncode, 0, "cluster.sql: %s%s\n%s" % (r.stdout, r.stderr,
                                                                     self.chs[0].log()))
        # ON CLUSTER made every table on both servers, on the engines named.
        for ch in self.chs:
            tables = dict(l.split("\t") for l in ch.query(
                "SELECT name, engine FROM system.tables WHERE database = 'kmon' "
                "FORMAT TSV").splitlines())
            self.assertEqual(tables, {"events": "Distributed",
                                      "events_local": "ReplicatedMergeTree",
                                      "pod_minutes": "Distributed",
                                      "pod_minutes_local": "ReplicatedSummingMergeTree",
                                      "pod_minutes_mv": "MaterializedView"})
        # Both shards registered their replicas where KMON_ZK_PATH says.
        for shard in ("01", "02"):
            names = self.chs[0].query(
                "SELECT name FROM system.zookeeper WHERE path = '%s/%s/events_local/replicas' "
                "FORMAT TSV" % (PARAMS["KMON_ZK_PATH"], shard)).split()
            self.assertEqual(names, ["ch%d" % int(shard)])

        a = Agent(AGENT, ["--scope", "containers", "--rescan-interval", "0.5"]
                  + self.fk.agent_args())
        self.procs.append(a)
        # Loading the BPF programs takes long on a loaded machine.
        a.wait_for_log("attached:", timeout=120)
        wait_for(lambda: "annotating events with pod names" in a.log(), 30, "kubelet answer")

        fwds = {}
        for i, n in enumerate(NODES):
            # Half the nodes through each server, with the URL the chart
            # builds for one server.
            fwd = Consumer([FORWARD, "--socket", a.socket, "--name", "fwd-" + n,
                            "--node-name", n, "--output", chschema.insert_url(self.chs[i % 2]),
                            "--flush-interval", "0.5", "--max-queue-bytes", "64M",
                            "--namespace", "shop", "--namespace", "analytics"])
            self.procs.append(fwd)
            fwds[n] = fwd
        for fwd in fwds.values():
            fwd.wait_for_log("attached to")

        go = [run_execs(self.containers[pod], i + 1, count)
              for i, (_, pod, count) in enumerate(PODS)]
        for g in go:
            g()

        dist = self.chs[0]

        def true_execs():
            return {(r["node"], r["pod"]): int(r["n"]) for r in query_rows(
                dist, "SELECT node, pod, count() AS n FROM kmon.events "
                "WHERE type = 'process_exec' AND filename = '/bin/true' AND pod IN (%s) "
                "GROUP BY node, pod" % MY_PODS)}
        want = {(n, pod): count for n in NODES for _, pod, count in PODS}
        wait_for(lambda: true_execs() == want, 180, "every node's /bin/true execs in ClickHouse",
                 lambda: (true_execs(), [f.log()[-300:] for f in fwds.values()]))

        a.stop()
        for fwd in fwds.values():
            fwd.wait_for_log("agent closed the connection", timeout=60)
        wait_for(lambda: all(delivered(f) for f in fwds.values()),
                 180, "every forward's queue delivered",
                 lambda: [last_counters(f) for f in fwds.values()])
        counters = {}
        for n, fwd in fwds.items():
            fwd.stop()
            counters[n] = last_counters(fwd)
        for n in NODES:
            c = counters[n]
            self.assertGreater(c["sent"], sum(p[2] for p in PODS), (n, c))
            self.assertEqual(c["sent"], c["received"], (n, c, fwds[n].log()[-3000:]))
            self.assertEqual(c["dropped_in_queue"], 0, (n, c))
            self.assertEqual(c["lost_in_ring"], 0, (n, c))

        def per_node(ch, table):
            return {r["node"]: int(r["n"]) for r in query_rows(
                ch, "SELECT node, count() AS n FROM kmon.%s GROUP BY node" % table)}
        sent = {n: counters[n]["sent"] for n in NODES}
        # Through the Distributed table, on either server: exactly what was sent.
        for i, ch in enumerate(self.chs):
            self.assertEqual(per_node(ch, "events"), sent, "Distributed kmon.events on server %d"
                             % (i + 1))
        # Each shard's own rows: together, exactly what was sent; each on the
        # shard its key names (shard k of 2 takes key %% 2 == k-1); both used.
        local = [per_node(ch, "events_local") for ch in self.chs]
        self.assertEqual({n: sum(s.get(n, 0) for s in local) for n in NODES}, sent, local)
        for i, ch in enumerate(self.chs):
            wrong = int(ch.query("SELECT count() FROM kmon.events_local WHERE "
                                 "%s %% 2 != %d" % (PARAMS["KMON_SHARD_KEY"], i)).strip())
            self.assertEqual(wrong, 0, "rows on shard %d that its key does not name" % (i + 1))
            mine = int(ch.query("SELECT count() FROM kmon.events_local WHERE pod IN (%s)"
                                % MY_PODS).strip())
            self.assertGreater(mine, 0, "shard %d got none of the pods' rows" % (i + 1))

        # The rollup: per shard from that shard's rows, and gathered.
        for i, ch in enumerate(self.chs):
            for raw_t, roll_t in (("events", "pod_minutes"), ("events_local", "pod_minutes_local")):
                want = rollup_of(query_rows(ch, RAW_Q % raw_t))
                got = {(r["minute"], r["node"], r["namespace"], r["pod"], r["container"]):
                       [int(r[x]) for x in "abcdefg"] for r in query_rows(ch, ROLLUP_Q % roll_t)}
                self.assertEqual(got, want, "server %d: %s vs %s" % (i + 1, roll_t, raw_t))
            self.assertTrue(want)

        # The README's queries, verbatim, through either server.
        for ch in self.chs:
            check_queries(self, ch)


if __name__ == "__main__":
    unittest.main(verbosity=2)
