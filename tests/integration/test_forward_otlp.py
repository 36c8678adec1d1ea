#!/usr/bin/env python3
"""kmon-forward's OpenTelemetry output (issue 17, section 3) against a
receiver built on the official OpenTelemetry JavaScript packages.

One real agent tracks two runc containers in two pods (annotated through the
stand-in kubelet). Three forwards attach to it side by side:
  - the NDJSON line to stdout: the reference, the encoder every other output
    shares;
  - --format otlp (protobuf, gzip) to receiver A, which answers its first
    request 429 Retry-After: 1 (delta-seconds), the resend 503 with
    Retry-After as an HTTP-date, then 200 with a partial success;
  - --format otlp-json --no-gzip to receiver B, which answers its first
    request with a partial success.
The receivers (otlp_receiver.js) decode with the protobufjs classes generated
from opentelemetry-proto that @opentelemetry/otlp-transformer ships. The test
asserts that every event of our containers reached each receiver exactly once
with every field equal to the reference line's, grouped into one
ResourceLogs per container with the semantic-convention attributes, and that
the retries waited what the server said and resent the same bytes.
"""
import calendar
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
from agentproc import Agent, Consumer, tracked
from fake_kubelet import serve_podlist
from kubenode import Node, new_pod_uid
from kmoncase import KmonTestCase
from waits import wait_for


AGENT = os.environ.get("KMON_AGENT", "kmon-agent")
FORWARD = os.environ.get("KMON_FORWARD", "kmon-forward")
NPM_DIR = os.environ.get("KMON_NPM_DIR") or os.path.join(tempfile.gettempdir(), "kmon-npm-otlp")
# The last release that ships the generated decoder (build/src/generated).
TRANSFORMER = "@opentelemetry/otlp-transformer@0.57.2"
NODE_NAME = "otlp-node-7"
EXECS = 60
EVENTS = "process_exec,memory_alloc,memory_free"
# Namespaces of our own: the forwards subscribe to them only, so other
# containers on the machine (other tests' floods) never reach them.
NAMESPACES = ("otlp-shop", "otlp-web")

# The workload, once /tmp/go exists: EXECS runs of /bin/true, then a program
# whose name is not UTF-8 (a tenant chooses its process names).
WORK = ("while [ ! -e /tmp/go ]; do usleep 50000; done; "
        "ln -s /bin/true \"/tmp/$(printf '\\377')bad\"; "
        "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; "
        "\"/tmp/$(printf '\\377')bad\"" % EXECS)


def npm_install():
    """The OpenTelemetry package, installed once into NPM_DIR with the
    machine's npm configuration."""
    root = os.path.join(NPM_DIR, "node_modules", "@opentelemetry", "otlp-transformer",
                        "build", "src", "generated", "root.js")
    if not os.path.exists(root):
        os.makedirs(NPM_DIR, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save",
                        "--prefix", NPM_DIR, TRANSFORMER], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
    return os.path.join(NPM_DIR, "node_modules")


def rfc3339_ns(s):
    date, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac)


def anyvalue(v):
    for k in ("stringValue", "intValue", "boolValue"):
        if k in v:
            return v[k]
    raise AssertionError("unexpected AnyValue %r" % v)


def kv(attrs):
    out = {}
    for a in attrs or []:
        assert a["key"] not in out, "attribute %s twice" % a["key"]
        out[a["key"]] = anyvalue(a["value"])
    return out


class Receiver:
    def __init__(self, tmp, name, plan, node_path):
        self.out = os.path.join(tmp, name + ".jsonl")
        port_file = os.path.join(tmp, name + ".port")
        self.log = open(os.path.join(tmp, name + ".log"), "wb")
        env = dict(os.environ, NODE_PATH=node_path)
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "otlp_receiver.js"),
                                      "--out", self.out, "--port-file", port_file,
                                      "--plan", plan], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(port_file) or self.proc.poll() is not None, 30,
                 "the receiver listening")
        if self.proc.poll() is not None:
            raise AssertionError("receiver exited: %s" % open(self.log.name).read())
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%s" % f.read().strip()

    def requests(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            return [json.loads(l) for l in f]

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def counters(consumer):
    return [json.loads(l)["counters"] for l in consumer.log().splitlines()
            if l.startswith('{"counters"')][-1]


class ForwardOtlpTest(KmonTestCase):
    # tmp, procs and their reaping: KmonTestCase.

    def cluster(self):
        node = Node()
        self.addCleanup(node.close)
        pods = []
        # The containers stay quiet (one sleep) until the workload starts, after
        # every forward attached: all three see the same events of them.
        for ns, pod, cname in ((NAMESPACES[0], "checkout-1", "app"),
                               (NAMESPACES[1], "front-2", "nginx")):
            c = node.start_container(flavor="systemd-containerd", pod_uid=new_pod_uid(),
                                     name=cname,
                                     cmd=["/bin/sleep", "100000"])
            pods.append({"name": pod, "namespace": ns, "containers": [c]})
        fk = serve_podlist(self.tmp, node.podlist(pods))
        self.addCleanup(fk.stop)
        args = ["--scope", "containers", "--rescan-interval", "0.5", "--node-name", NODE_NAME
                ] + fk.agent_args()
        return pods, args

    def test_otlp_protobuf_and_json_against_the_opentelemetry_decoder(self):
        node_path = npm_install()
        pods, agent_args = self.cluster()
        ra = Receiver(self.tmp, "a", "429:1,503:date:2,200:partial:3", node_path)
        self.addCleanup(ra.stop)
        rb = Receiver(self.tmp, "b", "200:partial:2", node_path)
        self.addCleanup(rb.stop)
        # A hostile (or broken) receiver asks for a pause of 31 years.
        rc = Receiver(self.tmp, "c", ",".join(["429:999999999"] * 100), node_path)
        self.addCleanup(rc.stop)
        a = Agent(AGENT, agent_args)
        self.procs.append(a)
        a.wait_attached()
        wait_for(lambda: "annotating events with pod names" in a.log(), 30, "kubelet answer")
        version = subprocess.run([AGENT, "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]

        common = ["--socket", a.socket, "--events", EVENTS, "--ring-size", "16M",
                  "--namespace", NAMESPACES[0], "--namespace", NAMESPACES[1]]
        ref = Consumer([FORWARD] + common + ["--name", "otlp-ref"])
        fa = Consumer([FORWARD] + common + ["--name", "otlp-a", "--format", "otlp",
                                            "--output", ra.url, "--flush-interval", "0.3"])
        fb = Consumer([FORWARD] + common + ["--name", "otlp-b", "--format", "otlp-json",
                                            "--no-gzip", "--output", rb.url + "/v1/logs",
                                            "--flush-interval", "0.3"])
        fc = Consumer([FORWARD] + common + ["--name", "otlp-c", "--format", "otlp",
                                            "--output", rc.url, "--flush-interval", "0.3"])
        for c in (ref, fa, fb, fc):
            self.procs.append(c)
            c.wait_for_log("attached to")

        pids = []
        for p in pods:
            pid = p["containers"][0].spawn(["/bin/sh", "-c", WORK])
            wait_for(lambda: tracked(pid), 30, "pid %d in the PID map" % pid)
            pids.append(pid)
        for p in pods:
            p["containers"][0].exec(["/bin/touch", "/tmp/go"])
        ids = {p["containers"][0].id: p for p in pods}

        def ref_lines():
            out = []
            for l in ref.output().splitlines():
                if l.startswith("{"):
                    e = json.loads(l)
                    if e["container_id"] in ids:
                        out.append(e)
            return out

        def execs_done(lines):
            return all(sum(1 for e in lines if e["type"] == "process_exec" and
                           e["container_id"] == cid and e["filename"] == "/bin/true") == EXECS
                       for cid in ids)

        wait_for(lambda: execs_done(ref_lines()), 90, "the reference saw every exec")
        # Both receivers answered the last flush of the workload.
        time.sleep(1.5)
        a.stop()
        for c in (ref, fa, fb, fc):
            c.wait_for_log("agent closed the connection")
            self.assertEqual(c.stop(), 0, c.log()[-2000:])
        reference = ref_lines()
        self.assertTrue(execs_done(reference))

        self.check_receiver(ra, fa, reference, ids, version, "application/x-protobuf", "gzip")
        self.check_receiver(rb, fb, reference, ids, version, "application/json", "")

        # A: 429 with delta-seconds, then 503 with an HTTP-date, then 200:
        # the same bytes each time, each retry at least a second later.
        reqs = ra.requests()
        self.assertEqual([r["status"] for r in reqs[:3]], [429, 503, 200], reqs[:3])
        self.assertEqual(reqs[0]["retryAfter"], "1")
        self.assertTrue(reqs[1]["retryAfter"].endswith(" GMT"), reqs[1]["retryAfter"])
        self.assertEqual(reqs[0]["sha256"], reqs[1]["sha256"])
        self.assertEqual(reqs[1]["sha256"], reqs[2]["sha256"])
        self.assertGreaterEqual(reqs[1]["t"] - reqs[0]["t"], 1000, reqs[:2])
        self.assertGreaterEqual(reqs[2]["t"] - reqs[1]["t"], 1000, reqs[1:3])
        ca = counters(fa)
        self.assertEqual(ca["retry_after"], 2, ca)
        self.assertEqual(ca["retried"], 2, ca)
        self.assertIn("answered HTTP 429; retrying in 1 s as its Retry-After says", fa.log())

        # C: the wait is bounded (60 s), and at exit what could not be sent
        # within the close timeout is counted, not lost silently.
        self.assertIn("answered HTTP 429; retrying in 60 s as its Retry-After says", fc.log())
        rq = rc.requests()
        self.assertEqual({r["status"] for r in rq}, {429})
        # On a slow machine the test outlives 60 s: then the resend came 60 s
        # later, not 31 years.
        for x, y in zip(rq, rq[1:]):
            self.assertGreaterEqual(y["t"] - x["t"], 59000, (x, y))
            self.assertEqual(x["sha256"], y["sha256"])
        cc = counters(fc)
        self.assertEqual(cc["retry_after"], len(rq), cc)
        self.assertEqual(cc["sent"], 0, cc)
        self.assertEqual(cc["dropped_in_queue"], cc["received"], cc)

    def check_receiver(self, rcv, fwd, reference, ids, version, ctype, cenc):
        reqs = rcv.requests()
        c = counters(fwd)
        what = "%s: %s" % (ctype, fwd.log()[-1500:])
        self.assertTrue(reqs, what)
        for r in reqs:
            self.assertNotIn("error", r, r)
            self.assertEqual(r["path"], "/v1/logs")
            self.assertEqual(r["contentType"], ctype)
            self.assertEqual(r["contentEncoding"], cenc)
        ok = [r for r in reqs if r["status"] == 200]

        # Every event forward received was delivered once; the partial
        # success is counted, not resent.
        records = []
        for r in ok:
            for rl in r["request"]["resourceLogs"]:
                res = kv(rl["resource"].get("attributes"))
                self.assertEqual(len(rl["scopeLogs"]), 1, rl)
                sl = rl["scopeLogs"][0]
                self.assertEqual(sl["scope"], {"name": "kmon", "version": version})
                for lr in sl["logRecords"]:
                    records.append((r["n"], res, lr))
        partial = [r for r in ok if r["partial"]]
        self.assertEqual(len(partial), 1, [r["n"] for r in ok])
        in_partial = sum(1 for n, _, _ in records if n == partial[0]["n"])
        self.assertEqual(c["rejected"], min(partial[0]["partial"], in_partial), c)
        self.assertEqual(len(records), c["received"], c)
        self.assertEqual(c["sent"] + c["rejected"], c["received"], c)
        self.assertEqual(c["dropped_in_queue"], 0, c)
        self.assertEqual(c["lost_in_ring"], 0, c)
        self.assertEqual(c["encode_errors"], 0, c)

        # One ResourceLogs per container in each request.
        for r in ok:
            seen = [kv(rl["resource"].get("attributes")).get("container.id")
                    for rl in r["request"]["resourceLogs"]]
            self.assertEqual(len(seen), len(set(seen)), seen)

        # Our containers' records, field by field against the reference line.
        def from_ref(e):
            t = (e["type"], e["timestamp"], e["pid"], e["tid"], e["comm"], e["size"],
                 e["cgroup_id"], e.get("filename"), e.get("filename_truncated"),
                 e.get("ptr"), e.get("call_site"), e["container_id"], e["pod_uid"], e["pod"],
                 e["namespace"], e["container"], e["node"])
            return t

        def from_otlp(res, lr):
            at = kv(lr.get("attributes"))
            self.assertEqual(lr["severityNumber"], 9, lr)
            self.assertEqual(lr["severityText"], "INFO", lr)
            self.assertEqual(lr["body"], {"stringValue": at["kmon.type"]}, lr)
            self.assertEqual(res["service.name"], "kmon", res)
            self.assertIn("observedTimeUnixNano", lr)
            return (at["kmon.type"], int(at["kmon.timestamp"]), int(at["process.pid"]),
                    int(at["thread.id"]), at["kmon.comm"], int(at["kmon.size"]),
                    int(at["kmon.cgroup_id"]), at.get("kmon.filename"),
                    at.get("kmon.filename_truncated"), at.get("kmon.ptr"),
                    at.get("kmon.call_site"), res.get("container.id", ""),
                    res.get("k8s.pod.uid", ""), res.get("k8s.pod.name", ""),
                    res.get("k8s.namespace.name", ""), res.get("k8s.container.name", ""),
                    res.get("k8s.node.name", ""))

        mine = [(res, lr) for _, res, lr in records if res.get("container.id") in ids]
        got = collections.Counter(from_otlp(res, lr) for res, lr in mine)
        want = collections.Counter(from_ref(e) for e in reference)
        self.assertEqual(got - want, collections.Counter(), "%s: records not in the reference"
                         % ctype)
        self.assertEqual(want - got, collections.Counter(), "%s: reference lines missing"
                         % ctype)
        types = collections.Counter(k[0] for k in got.elements())
        print("%s: %d requests (%d answered 200), %d records, %d of our containers' "
              "compared field by field %r, %d rejected as partial success"
              % (ctype, len(reqs), len(ok), len(records), len(mine), dict(types),
                 c["rejected"]), file=sys.stderr)
        for t in ("process_exec", "memory_alloc", "memory_free"):
            self.assertGreater(types[t], 0, types)

        # Wall-clock time: the reference's, to within the two processes'
        # reading of the boot offset.
        ref_time = {(e["timestamp"], e["tid"], e["type"]): rfc3339_ns(e["time"])
                    for e in reference}
        for res, lr in mine:
            at = kv(lr["attributes"])
            key = (int(at["kmon.timestamp"]), int(at["thread.id"]), at["kmon.type"])
            self.assertLess(abs(int(lr["timeUnixNano"]) - ref_time[key]), 10**6, (lr, key))

        # Per container: its pod's names, exactly EXECS runs of /bin/true,
        # and the non-UTF-8 program name as U+FFFD.
        for cid, p in ids.items():
            res = [r for r, _ in mine if r.get("container.id") == cid][0]
            cont = p["containers"][0]
            self.assertEqual(res, {"service.name": "kmon", "k8s.node.name": NODE_NAME,
                                   "k8s.namespace.name": p["namespace"],
                                   "k8s.pod.name": p["name"], "k8s.pod.uid": cont.pod_uid,
                                   "k8s.container.name": cont.name, "container.id": cid})
            execs = [kv(lr["attributes"]) for r, lr in mine
                     if r.get("container.id") == cid and kv(lr["attributes"])["kmon.type"] ==
                     "process_exec"]
            self.assertEqual(sum(1 for x in execs if x["kmon.filename"] == "/bin/true"), EXECS)
            bad = [x for x in execs if x["kmon.filename"] == "/tmp/\ufffdbad"]
            self.assertEqual(len(bad), 1, [x["kmon.filename"] for x in execs][-5:])
            self.assertEqual(bad[0]["kmon.comm"], "\ufffdbad")
            self.assertIs(bad[0]["kmon.filename_truncated"], False)


if __name__ == "__main__":
    unittest.main(verbosity=2)
